import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../lib/postgres/database';
import { buildKafkaEvent, type RecordInput } from '../../scripts/encode-kafka-event';
import { consumerDatabase, testDatabase, type TestDatabase } from '../helpers/db';
import { surveyMessage } from '../helpers/factories';
import { runBatch, snapshot } from '../helpers/run';

// Hostile batches that once stalled a partition (issue 11): each must settle every record, with no failure while the
// database is up, in a bounded number of transactions.
let db: TestDatabase;
let consumer: Database;
let begins = 0;
beforeAll(async () => {
  db = await testDatabase();
  consumer = consumerDatabase(db.config, {
    debug: (_c, query) => void (query.trim().toLowerCase() === 'begin' && begins++),
  });
});
afterAll(async () => {
  await consumer.end();
  await db.close();
});

const table = (name: string) => db.sql(`${db.config.db.schema}.${name}`);
let batch = 0;

/** Runs `records` with a clock that really runs down (20 s), so that a loop ends in failures instead of hanging. */
async function run(records: readonly RecordInput[], partitions = 1) {
  batch += 1;
  begins = 0;
  const deadline = Date.now() + 20_000;
  const result = await runBatch(db, buildKafkaEvent(records, { partitions, firstOffset: batch * 1000 }), {
    database: consumer,
    deadline,
  });
  return { ...result, transactions: begins };
}

/**
 * The stated bound: n units of which k are rejected cost at most 1 + k(2⌈log2 n⌉ + 1) write transactions, plus one
 * that settles the instructors first (every batch here holds a valid report, if only one PostgreSQL rejects).
 */
const bound = (n: number, k: number) => 1 + 1 + k * (2 * Math.ceil(Math.log2(n)) + 1);

/**
 * Valid ISO-8601, but year 0 is outside PostgreSQL's timestamptz: the database rejects the report, validation cannot.
 */
const rejected = (traceId?: string) =>
  surveyMessage({ processedAt: '0000-06-15T00:00:00Z', ...(traceId ? { traceId } : {}) });
const KINDS: Record<string, () => RecordInput> = {
  rejected: () => ({ value: rejected() }),
  tombstone: () => ({ value: null }),
  undecodable: () => ({ value: Buffer.from([0xc3, 0x28, 0xff]) }),
  invalid: () => ({ value: { traceId: 'x', course: 7 } }),
  good: () => ({ value: surveyMessage() }),
};

describe('isolation', () => {
  it.each([
    ['rejected', 'tombstone'],
    ['tombstone', 'rejected'],
    ['rejected', 'undecodable', 'invalid'],
    ['undecodable', 'rejected', 'good', 'tombstone', 'rejected', 'invalid', 'good'],
    ['good', 'good', 'good', 'rejected', 'rejected', 'rejected', 'tombstone', 'tombstone', 'good'],
  ])('should settle %s ... in bounded transactions, however candidates and dead letters mix', async (...kinds) => {
    const records = kinds.map((kind) => KINDS[kind]!());
    for (const partitions of [1, 2]) {
      const result = await run(
        records.map((r) => ({
          ...r,
          value: r.value === null || Buffer.isBuffer(r.value) ? r.value : freshTraceIds(r.value),
        })),
        partitions,
      );
      expect(result.result?.summary).toMatchObject({ received: kinds.length, failed: 0 });
      const k = kinds.filter((x) => x === 'rejected').length;
      expect(result.result?.summary.deadLettered).toBe(kinds.length - kinds.filter((x) => x === 'good').length);
      expect(result.result?.outcomes.filter((o) => o.reason === 'db_rejected')).toHaveLength(k);
      expect(result.transactions).toBeLessThanOrEqual(bound(kinds.length, k));
    }
  });

  it('should stop writing once the remaining time is spent and report the rest for retry', async () => {
    const records = ['rejected', 'tombstone', 'good', 'rejected', 'good', 'undecodable', 'good', 'good'].map((kind) =>
      KINDS[kind]!(),
    );
    begins = 0;
    // Time for a few tries only: once three transactions have begun, every look at the clock finds it spent.
    const result = await runBatch(db, buildKafkaEvent(records, { firstOffset: 90_000 }), {
      database: consumer,
      deadline: Date.now() + 60_000,
      now: () => Date.now() + (begins < 3 ? 0 : 120_000),
    });
    // Reported for retry: as failed records, or as a thrown BatchFailedError when none could be settled.
    const failed =
      result.error === undefined
        ? (result.result?.outcomes ?? []).filter((o) => o.state === 'failed').length
        : records.length;
    expect(failed).toBeGreaterThan(0);
    expect(begins).toBeLessThanOrEqual(3);
  });
});

/** A record's value with fresh trace ids, so that repeated runs of one mix write new traces. */
function freshTraceIds(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || !('traceId' in value)) return value;
  return { ...value, traceId: `${String(value.traceId)}-${batch}-${Math.random().toString(36).slice(2, 7)}` };
}

describe('the dead-letter path', () => {
  const binaryHeaders = [
    { key: 'trace-id', value: Buffer.from([0x00, 0x01, 0xff, 0xfe]) },
    { key: 'not-utf8', value: Buffer.from([0xc3, 0x28]) },
    { key: 'trace-id', value: Buffer.from('repeated key, second value') },
    { key: 'ключ\u0000\ud800', value: Buffer.alloc(0) },
    { key: 'large', value: Buffer.alloc(256 * 1024, 0xab) },
  ];
  /** Headers read back in order, as the README shows (convert_from gives a key as text unless it holds 0x00). */
  const headersOf = (offset: number) => db.sql<{ key: Buffer; value: Buffer }[]>`
    select h.key, h.value
    from ${table('dead_letters')} d, unnest(d.header_keys, d.header_values) with ordinality as h(key, value, n)
    where d.kafka_offset = ${offset} order by h.n`;

  it.each([
    ['alone', ['tombstone']],
    ['beside a rejected report and valid ones', ['good', 'tombstone', 'rejected', 'good']],
  ])(
    'should dead-letter a record with binary, non-UTF-8, repeated and large headers, byte-exact and in order (%s)',
    async (_name, kinds) => {
      const records = kinds.map((kind) => ({ ...KINDS[kind]!(), headers: binaryHeaders }));
      const result = await run(records);
      expect(result.result?.summary).toMatchObject({ failed: 0, received: kinds.length });
      const tombstone = result.result!.outcomes.find((o) => o.reason === 'tombstone')!;
      expect(await headersOf(tombstone.record.offset)).toEqual(
        binaryHeaders.map((h) => ({ key: Buffer.from(h.key, 'utf8'), value: h.value })),
      );
      const [text] = await db.sql`
      select array_agg(convert_from(h.key, 'UTF8') order by h.n) as keys
      from ${table('dead_letters')} d, unnest(d.header_keys, d.header_values) with ordinality as h(key, value, n)
      where d.kafka_offset = ${tombstone.record.offset} and position(decode('00', 'hex') in h.key) = 0`;
      expect(text?.keys).toEqual(['trace-id', 'not-utf8', 'trace-id', 'large']);
    },
  );

  it('should write a minimal row (bytes and reason) when PostgreSQL still rejects the full one', async () => {
    // A constraint the consumer does not know about stands for any rejection of the full row.
    await db.sql`alter table ${table('dead_letters')} add constraint few_headers check
      (cardinality(header_keys) < 3) not valid`;
    try {
      const records = [
        { value: null, key: 'k', headers: binaryHeaders },
        KINDS.good!(),
        { value: rejected(), headers: binaryHeaders },
      ];
      const result = await run(records);
      expect(result.result?.summary).toMatchObject({ failed: 0, deadLettered: 2, stored: 1 });
      const rows = await db.sql`
        select reason, detail, key, value, cardinality(header_keys) as headers from ${table('dead_letters')}
        where kafka_offset = any(${result.result!.outcomes.map((o) => o.record.offset)})
          and kafka_partition = 0 order by kafka_offset`;
      expect(rows.map((r) => [r.reason, r.headers])).toEqual([
        ['tombstone', 0],
        ['db_rejected', 0],
      ]);
      expect(rows[0]?.key).toEqual(Buffer.from('k'));
      expect(rows[1]?.value).toEqual(Buffer.from(JSON.stringify(records[2]!.value)));
      for (const r of rows) expect(r.detail).toMatch(/headers, timestamp and trace id not kept: 23514: .*few_headers/);
    } finally {
      await db.sql`alter table ${table('dead_letters')} drop constraint few_headers`;
    }
  });

  it(
    "should keep a readable trace id on an invalid_message dead letter and a null timestamp for Kafka's " + '-1',
    async () => {
      const result = await run([{ value: { traceId: ' kept-trace ', course: 'not an object' }, timestamp: -1 }]);
      const [row] = await db.sql`select reason, trace_id, kafka_timestamp from ${table('dead_letters')}
        where kafka_offset = ${result.result!.outcomes[0]!.record.offset}`;
      expect(row).toEqual({ reason: 'invalid_message', trace_id: 'kept-trace', kafka_timestamp: null });
    },
  );
});

describe('a corrected resend in the same batch', () => {
  it.each([
    [['rejected', 'good'], 1],
    [['rejected', 'rejected', 'good', 'good'], 2],
    [['good', 'rejected'], 0],
  ])('should end as separate batches would: copies %j, the good copy at %i stored', async (copies, stored) => {
    const traceId = `resend-${batch}-${Math.random().toString(36).slice(2, 7)}`;
    const records: RecordInput[] = copies.map((kind, i) => ({
      value:
        kind === 'rejected' ? rejected(traceId) : surveyMessage({ traceId, comments: [{ commentText: `copy ${i}` }] }),
    }));
    // Neighbours, so the resend is not alone: a tombstone and a valid report.
    const result = await run([{ value: null }, ...records, { value: surveyMessage() }]);
    const outcomes = result.result!.outcomes.slice(1, 1 + copies.length);
    expect(outcomes.map((o) => o.state)).toEqual(
      copies.map((kind, i) =>
        i < stored
          ? 'dead_lettered'
          : i === stored
            ? 'stored'
            : kind === 'rejected' || i > stored
              ? 'duplicate'
              : 'stored',
      ),
    );
    const [claim] = await db.sql`select kafka_offset from ${table('processed_traces')} where trace_id = ${traceId}`;
    expect(Number(claim?.kafka_offset)).toBe(outcomes[stored]!.record.offset);
    const comments = await db.sql`select comment_text from ${table('comments')} where trace_id = ${traceId}`;
    expect(comments.map((c) => c.comment_text)).toEqual([`copy ${stored}`]);
  });

  it('should leave the same rows as one batch per record', async () => {
    const traceId = 'resend-equivalence';
    const records: RecordInput[] = [
      {
        value: surveyMessage({ traceId: 'neighbour', processedAt: '2024-01-02T00:00:00Z' }, { courseId: 'EQ-1' }),
        partition: 0,
      },
      { value: rejected(traceId), partition: 1 },
      { value: null, partition: 0 },
      { value: surveyMessage({ traceId, processedAt: '2024-01-01T00:00:00Z' }, { courseId: 'EQ-1' }), partition: 1 },
      { value: surveyMessage({ traceId, processedAt: '2024-01-03T00:00:00Z' }, { courseId: 'EQ-1' }), partition: 1 },
    ];
    const event = buildKafkaEvent(records, { partitions: 2 });
    const [whole, separate] = [await testDatabase(), await testDatabase()];
    try {
      const run = await runBatch(whole, event);
      expect(run.result?.summary).toMatchObject({
        failed: 0,
        stored: 1,
        superseded: 1,
        deadLettered: 2,
        duplicates: 1,
      });
      for (const [key, list] of Object.entries(event.records)) {
        for (const record of list) await runBatch(separate, { ...event, records: { [key]: [record] } });
      }
      expect(await snapshot(whole).then(onlyEquivalence)).toEqual(await snapshot(separate).then(onlyEquivalence));
    } finally {
      await whole.close();
      await separate.close();
    }
  });
});

/** What both ways must agree on: every table but the statuses that depend on write order (stored vs superseded). */
const onlyEquivalence = (s: Awaited<ReturnType<typeof snapshot>>) => ({
  ...s,
  processed: s.processed.map(({ status, ...rest }) => ({ ...rest, survey: status !== 'upstream_error' })),
  deadLetters: s.deadLetters.map(({ detail, ...rest }) => rest),
});

describe('exact ids', () => {
  it('should store integer ids beyond 2^53 with their exact digits, two neighbours as two traces', async () => {
    const message = (traceId: string, courseId: string) =>
      `{"traceId": ${traceId}, "course": {"courseId": ${courseId}}, "instructor": {"name": "Big Ids"}, ` +
      `"processedAt": "2024-01-01T00:00:00Z"}`;
    const result = await run([
      { value: message('9007199254740993', '12345678901234567891') },
      { value: message('9007199254740992', '12345678901234567890') },
    ]);
    expect(result.result?.summary).toMatchObject({ stored: 2, duplicates: 0 });
    const rows = await db.sql`select trace_id, course_id from ${table('courses')} where trace_id like '900719925474099%'
        order by trace_id`;
    expect(rows).toEqual([
      { trace_id: '9007199254740992', course_id: '12345678901234567890' },
      { trace_id: '9007199254740993', course_id: '12345678901234567891' },
    ]);
  });
});
