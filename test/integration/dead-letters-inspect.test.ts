import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config';
import { applySchema } from '../../scripts/db/migrations';
import { SCHEMA_VERSION } from '../../lib/postgres/schema-version';
import { HEADERS_SHOWN_BYTES } from '../../lib/dead-letters/show';
import { buildKafkaEvent, type RecordInput } from '../../scripts/encode-kafka-event';
import { consumerDatabase, holdTableLock, testDatabase, type TestDatabase } from '../helpers/db';
import { relaxedParse, runAction } from '../helpers/dead-letters';
import { surveyMessage } from '../helpers/factories';
import { runBatch } from '../helpers/run';

let db: TestDatabase;
beforeAll(async () => {
  db = await testDatabase();
});
afterAll(() => db.close());

const table = (name: string) => db.sql(`${db.config.db.schema}.${name}`);
let topics = 0;
const newTopic = () => `inspect-${++topics}-${Math.random().toString(36).slice(2, 7)}`;
const runs = (n: number) => (process.env.LONG_TESTS === '1' ? n * 5 : n);
const DAY = 86_400_000;
// Ages are counted back from now, half a day off any whole day, so that a retention boundary never ties.
const NOW = Date.now() - DAY / 2;

interface Letter {
  reason: 'tombstone' | 'invalid_json' | 'invalid_message' | 'db_rejected';
  partition: number;
  daysAgo: number;
  redrive: null | 'stored' | 'duplicate' | 'dead_lettered';
}
const letterArb = fc.record({
  reason: fc.constantFrom('tombstone', 'invalid_json', 'invalid_message', 'db_rejected'),
  partition: fc.integer({ min: 0, max: 2 }),
  daysAgo: fc.integer({ min: 0, max: 40 }),
  redrive: fc.constantFrom(null, 'stored', 'duplicate', 'dead_lettered'),
}) as fc.Arbitrary<Letter>;

/** Dead letters written directly, so that their age and redrive state can be anything. Offsets follow the order. */
async function insertLetters(topic: string, letters: readonly Letter[]) {
  const rows = letters.map((l, i) => ({
    kafka_topic: topic,
    kafka_partition: l.partition,
    kafka_offset: i,
    reason: l.reason,
    detail: `detail ${i}`,
    created_at: new Date(NOW - l.daysAgo * DAY - i * 1000).toISOString(),
    redriven_at: l.redrive === null ? null : new Date(NOW).toISOString(),
    redrive_result: l.redrive,
    redrive_count: l.redrive === null ? 0 : 1,
  }));
  await db.sql`
    insert into ${table('dead_letters')} (kafka_topic, kafka_partition, kafka_offset, reason, detail, value,
      created_at, redriven_at, redrive_result, redrive_count)
    select kafka_topic, kafka_partition, kafka_offset, reason, detail, convert_to('{}', 'UTF8'), created_at,
      redriven_at, redrive_result, redrive_count
    from json_to_recordset(${JSON.stringify(rows)}::text::json) as x(kafka_topic text, kafka_partition int,
      kafka_offset bigint, reason text,
      detail text, created_at timestamptz, redriven_at timestamptz, redrive_result text, redrive_count int)`;
  return rows;
}

const countBy = <T>(items: readonly T[], key: (x: T) => string) => {
  const counts: Record<string, number> = {};
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return counts;
};
const day = (iso: string) => iso.slice(0, 10);

describe('summary', () => {
  it(
    'should count the selection by reason, day, partition and redrive result, with the oldest and ' + 'newest',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(letterArb, { minLength: 1, maxLength: 25 }), async (letters) => {
          const topic = newTopic();
          const rows = await insertLetters(topic, letters);
          const run = await runAction(db, { action: 'summary', topic });
          expect(run.error).toBeUndefined();
          const s = run.response!;
          const created = rows.map((r) => r.created_at).sort();
          const unresolved = letters.filter((l) => l.redrive === null || l.redrive === 'dead_lettered');
          expect(s.total).toBe(letters.length);
          expect(s.unresolved).toBe(unresolved.length);
          expect(s.oldest?.slice(0, 23)).toBe(created[0]!.slice(0, 23));
          expect(s.newest?.slice(0, 23)).toBe(created.at(-1)!.slice(0, 23));
          expect(Object.fromEntries(s.byReason.map((r) => [r.reason, r.letters]))).toEqual(
            countBy(letters, (l) => l.reason),
          );
          expect(Object.fromEntries(s.byReason.map((r) => [r.reason, r.unresolved]))).toEqual(
            Object.fromEntries(
              Object.keys(countBy(letters, (l) => l.reason)).map((reason) => [
                reason,
                unresolved.filter((l) => l.reason === reason).length,
              ]),
            ),
          );
          expect(Object.fromEntries(s.byDay.map((d) => [d.day, d.letters]))).toEqual(
            countBy(rows, (r) => day(r.created_at)),
          );
          expect(s.byDay.map((d) => d.day)).toEqual([...s.byDay.map((d) => d.day)].sort().reverse());
          expect(Object.fromEntries(s.byPartition.map((p) => [p.partition, p.letters]))).toEqual(
            countBy(letters, (l) => String(l.partition)),
          );
          for (const p of s.byPartition) {
            const offsets = rows.filter((r) => r.kafka_partition === p.partition).map((r) => r.kafka_offset);
            expect([p.topic, p.firstOffset, p.lastOffset]).toEqual([topic, Math.min(...offsets), Math.max(...offsets)]);
          }
          expect(Object.fromEntries(s.byRedriveResult.map((r) => [r.result, r.letters]))).toEqual(
            countBy(letters, (l) => l.redrive ?? 'never'),
          );
          expect(run.metrics[0]).toMatchObject({
            action: 'summary',
            DeadLetters: letters.length,
            DeadLettersUnresolved: unresolved.length,
          });
        }),
        { numRuns: runs(10) },
      );
    },
  );

  it('should narrow by reason, time range and Kafka coordinates', async () => {
    const topic = newTopic();
    const letters: Letter[] = [
      { reason: 'tombstone', partition: 0, daysAgo: 10, redrive: null },
      { reason: 'invalid_json', partition: 1, daysAgo: 5, redrive: null },
      { reason: 'invalid_json', partition: 1, daysAgo: 1, redrive: null },
      { reason: 'db_rejected', partition: 2, daysAgo: 0, redrive: null },
    ];
    await insertLetters(topic, letters);
    const total = async (selection: Record<string, unknown>) =>
      (await runAction(db, { action: 'summary', topic, ...selection })).response?.total;
    expect(await total({ reasons: ['invalid_json', 'tombstone'] })).toBe(3);
    expect(
      await total({ from: new Date(NOW - 6 * DAY).toISOString(), to: new Date(NOW - DAY / 2).toISOString() }),
    ).toBe(2);
    expect(await total({ partition: 1, offsetFrom: 2 })).toBe(1);
    expect(await total({ offsetTo: 1 })).toBe(2);
    expect(await total({ topic: `${topic}-none` })).toBe(0);
  });
});

describe('show', () => {
  it('should decode each dead letter for a person and log none of its content', async () => {
    const topic = newTopic();
    const invalid = surveyMessage({}, { enrollment: -1 });
    const records = [
      {
        value: invalid,
        key: invalid.traceId,
        headers: [
          { key: 'source', value: 'pdf-parser' },
          { key: 'attempt', value: '2' },
          { key: 'source', value: Buffer.from([0x00, 0xff]) },
        ],
      },
      { value: 'not json at all', key: 'k-text' },
      { value: Buffer.from([0xff, 0xfe, 0x00, 0x41]), key: Buffer.from([0xc3, 0x28]) },
      { value: null, key: 'k-tombstone' },
    ];
    await runBatch(db, buildKafkaEvent(records, { topic, timestamp: 1_700_000_000_000 }));

    const run = await runAction(db, { action: 'show', topic });
    const letters = run.response!.letters;
    expect(letters.map((l) => l.reason)).toEqual(['invalid_message', 'invalid_json', 'invalid_utf8', 'tombstone']);
    expect(letters[0]).toMatchObject({
      topic,
      partition: 0,
      offset: 0,
      timestamp: '2023-11-14T22:13:20.000Z',
      key: { format: 'text', text: invalid.traceId },
      value: { format: 'json', json: invalid },
      headers: [
        { key: 'source', value: { format: 'text', bytes: 10, text: 'pdf-parser' } },
        { key: 'attempt', value: { format: 'text', bytes: 1, text: '2' } },
        { key: 'source', value: { format: 'base64', bytes: 2, base64: Buffer.from([0x00, 0xff]).toString('base64') } },
      ],
      detail: 'course.enrollment: must not be negative',
      redrive: null,
    });
    expect(letters[1]?.value).toEqual({ format: 'text', bytes: 15, text: 'not json at all' });
    expect(letters[2]?.value).toEqual({
      format: 'base64',
      bytes: 4,
      base64: Buffer.from([0xff, 0xfe, 0x00, 0x41]).toString('base64'),
    });
    expect(letters[2]?.key).toEqual({ format: 'base64', bytes: 2, base64: 'wyg=' });
    expect(letters[3]?.value).toBeNull();

    const logged = JSON.stringify(run.logs) + JSON.stringify(run.metrics);
    for (const secret of [invalid.comments[0]!.commentText, invalid.traceId, 'not json at all', 'pdf-parser'])
      expect(logged).not.toContain(secret);
    expect(run.logs.filter((l) => l.message === 'dead-letter action done')).toEqual([
      expect.objectContaining({ action: 'show', shown: 4, ids: letters.map((l) => l.id) }),
    ]);
  });

  it('should page through a selection with nextAfter, and show one dead letter by id with its redrive', async () => {
    const topic = newTopic();
    await runBatch(
      db,
      buildKafkaEvent(
        Array.from({ length: 5 }, () => ({ value: surveyMessage({}, { enrollment: -1 }) })),
        { topic },
      ),
    );
    const first = await runAction(db, { action: 'show', topic, limit: 2 });
    const second = await runAction(db, { action: 'show', topic, limit: 2, after: first.response!.nextAfter });
    const last = await runAction(db, { action: 'show', topic, limit: 2, after: second.response!.nextAfter });
    const offsets = [first, second, last].flatMap((r) => r.response!.letters.map((l) => l.offset));
    expect(offsets).toEqual([0, 1, 2, 3, 4]);
    expect(last.response!.nextAfter).toBeNull();

    const id = first.response!.letters[0]!.id;
    await runAction(db, { action: 'redrive', ids: id }, { parse: relaxedParse });
    const one = await runAction(db, { action: 'show', ids: [id] });
    expect(one.response!.letters).toHaveLength(1);
    expect(one.response!.letters[0]!.redrive).toMatchObject({
      result: 'stored',
      reason: null,
      count: 1,
      at: expect.any(String),
    });
  });
});

describe('show of large records', () => {
  it(
    "should keep every page inside Lambda's 6 MB response, however large the values and headers, and page " +
      'through them all',
    async () => {
      const topic = newTopic();
      // Up to 1 MB values (Kafka's default limit), binary so that they are shown as base64, some with large headers.
      const sizes = [900_000, 1_000_000, 10, 1_000_000, 600_000, 1_000_000, 1_000_000, 50];
      await runBatch(
        db,
        buildKafkaEvent(
          sizes.map((n, i) => ({
            value: Buffer.alloc(n, 0xff),
            headers:
              i % 3 === 0
                ? [
                    { key: 'trace\u0000bin', value: Buffer.alloc(200_000, 0xfe) },
                    { key: 'trace\u0000bin', value: Buffer.alloc(0) },
                  ]
                : [],
          })),
          { topic },
        ),
      );
      const offsets: number[] = [];
      let after = 0;
      for (let pages = 0; pages < sizes.length; pages++) {
        const page = await runAction(db, { action: 'show', topic, limit: 100, after });
        expect(page.error).toBeUndefined();
        expect(Buffer.byteLength(JSON.stringify(page.response))).toBeLessThan(6 * 1024 * 1024);
        offsets.push(...page.response!.letters.map((l) => l.offset));
        if (page.response!.nextAfter === null) break;
        after = page.response!.nextAfter;
      }
      expect(offsets).toEqual(sizes.map((_, i) => i));
    },
  );
});

describe('show of values that grow when shown (issue 21, point 7)', () => {
  it(
    'should answer under 6 MB for control characters and deep nesting, marking what it cut and giving the full ' +
      'size',
    async () => {
      const topic = newTopic();
      const depth = 100_000;
      const deepWithLongInteger =
        `{"traceId": "deep-${topic}", "course": {"courseId": "c"}, "x": ` +
        `${'['.repeat(depth)}12345678901234567890${']'.repeat(depth)}}`;
      const controls = Buffer.alloc(1_100_000, 0x01);
      const run = await runBatch(
        db,
        buildKafkaEvent(
          [
            { value: deepWithLongInteger },
            { value: `{"a": ${'['.repeat(depth)}${']'.repeat(depth)}}` },
            {
              value: controls,
              key: Buffer.alloc(300_000, 0x02),
              headers: [
                { key: 'h', value: Buffer.alloc(700_000, 0x03) },
                { key: 'h2', value: Buffer.alloc(700_000, 0x04) },
              ],
            },
            { value: Buffer.from(JSON.stringify({ s: '\u0001'.repeat(150_000) })) },
          ],
          { topic },
        ),
      );
      // The deep message is read, not misreported as invalid_json: it lacks its instructor, and says so.
      expect(run.result!.outcomes.map((o) => [o.reason, o.detail])).toEqual([
        ['invalid_message', 'instructor: is required but missing'],
        // Over 64 KiB: validation stops at the first problem (lib/batch/trace-message.ts, FULL_DETAIL_MAX_BYTES).
        ['invalid_message', 'traceId: is required but missing'],
        ['too_large', expect.stringContaining('1100000 bytes')],
        ['invalid_message', expect.any(String)],
      ]);
      const ids: number[] = [];
      let after = 0;
      for (let pages = 0; pages < 4; pages++) {
        const page = await runAction(db, { action: 'show', topic, limit: 100, after });
        expect(page.error).toBeUndefined();
        expect(Buffer.byteLength(JSON.stringify(page.response))).toBeLessThan(6 * 1024 * 1024);
        ids.push(...page.response!.letters.map((l) => l.offset));
        for (const letter of page.response!.letters) {
          if (letter.offset === 0 || letter.offset === 1) expect(letter.value).toMatchObject({ format: 'text' });
          if (letter.offset === 2) {
            expect(letter.value).toMatchObject({
              format: 'text',
              bytes: 1_100_000,
              truncated: true,
              shownBytes: expect.any(Number),
            });
            expect(letter.key).toMatchObject({ bytes: 300_000, truncated: true });
            expect(letter.headers.map((h) => h.value.bytes)).toEqual([700_000, 700_000]);
            expect(letter.headers.map((h) => h.value)).toContainEqual(expect.objectContaining({ truncated: true }));
          }
        }
        if (page.response!.nextAfter === null) break;
        after = page.response!.nextAfter;
      }
      expect(ids).toEqual([0, 1, 2, 3]);
    },
  );
});

describe('show of a record with very many headers', () => {
  it('should count each header as shown, frame and all, list what fits and say how many it left out', async () => {
    const topic = newTopic();
    // Empty headers take two bytes each in Kafka, so a 1 MiB record can carry hundreds of thousands: shown one by
    // one, 100,000 of them made an 8 MB answer, beyond Lambda's 6 MB.
    const count = 100_000;
    await runBatch(
      db,
      buildKafkaEvent(
        [
          {
            value: 'not json',
            headers: Array.from({ length: count }, (_, i) => ({ key: i % 2 ? '' : 'h', value: Buffer.alloc(0) })),
          },
        ],
        { topic },
      ),
    );
    const page = await runAction(db, { action: 'show', topic });
    expect(page.error).toBeUndefined();
    expect(Buffer.byteLength(JSON.stringify(page.response))).toBeLessThan(6 * 1024 * 1024);
    const [letter] = page.response!.letters;
    expect(Buffer.byteLength(JSON.stringify(letter!.headers))).toBeLessThanOrEqual(HEADERS_SHOWN_BYTES);
    expect(letter!.headers.length).toBeGreaterThan(1000);
    expect(letter!.headers.length + (letter!.headersOmitted ?? 0)).toBe(count);
    expect(letter!.headers.slice(0, 2)).toEqual([
      { key: 'h', value: { format: 'text', bytes: 0, text: '' } },
      { key: '', value: { format: 'text', bytes: 0, text: '' } },
    ]);
  });
});

describe('purge', () => {
  it('should delete what the criteria select, only when dryRun is false', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(letterArb, { minLength: 1, maxLength: 20 }),
        fc.record({ redriven: fc.constantFrom(undefined, true), olderThanDays: fc.constantFrom(undefined, 0, 7, 30) }),
        fc.integer({ min: 1, max: 5 }),
        async (letters, criteria, batchSize) => {
          fc.pre(criteria.redriven !== undefined || criteria.olderThanDays !== undefined);
          const topic = newTopic();
          const rows = await insertLetters(topic, letters);
          const age = async () =>
            Number((await db.sql`select extract(epoch from now())::float8 * 1000 as now`)[0]!.now);
          const now = await age();
          const doomed = rows.filter(
            (r) =>
              (criteria.redriven === undefined || ['stored', 'duplicate'].includes(String(r.redrive_result))) &&
              (criteria.olderThanDays === undefined || Date.parse(r.created_at) < now - criteria.olderThanDays * DAY),
          );
          const request = { action: 'purge' as const, topic, batchSize, ...criteria };
          const remaining = async () =>
            (
              await db.sql`select kafka_offset::int from ${table('dead_letters')} where kafka_topic = ${topic}
                order by 1`
            ).map((r) => r.kafka_offset);

          const dry = await runAction(db, request);
          expect(dry.response).toMatchObject({
            dryRun: true,
            purged: doomed.length,
            byReason: countBy(doomed, (r) => r.reason),
            done: true,
          });
          expect(await remaining()).toHaveLength(rows.length);

          const real = await runAction(db, { ...request, dryRun: false });
          expect(real.response).toMatchObject({
            dryRun: false,
            purged: doomed.length,
            byReason: countBy(doomed, (r) => r.reason),
            done: true,
          });
          expect(await remaining()).toEqual(rows.filter((r) => !doomed.includes(r)).map((r) => r.kafka_offset));
          expect(real.metrics[0]).toMatchObject({ action: 'purge', DeadLettersPurged: doomed.length });
        },
      ),
      { numRuns: runs(10) },
    );
  });
});

describe('requests the function cannot run', () => {
  it.each([
    [{ action: 'delete' }, 'action'],
    [{ action: 'show', ids: [] }, 'ids'],
    [{ action: 'show', limit: 1000 }, 'limit'],
    [{ action: 'redrive', from: 'yesterday' }, 'from'],
    [{ action: 'redrive', dryrun: true }, 'dryrun'],
    [{ action: 'purge' }, 'purge needs'],
    [{ action: 'purge', olderThanDays: -1 }, 'olderThanDays'],
    // In the words an operator reads, not the validator's ("Expected never", "Expected (number | Array)").
    [{ action: 'redrive', bogus: 1 }, 'bogus: unknown option'],
    [{ action: 'show', ids: ['abc'] }, 'ids: must be a dead letter id (a whole number from 1), or a list of them'],
    [{ action: 'show', limit: true }, 'limit: must be a whole number from 1 to 100'],
    [{ action: 'redrive', dryRun: 'yes' }, 'dryRun: must be true or false'],
    [{ action: 'purge', resolved: false }, 'resolved: must be true, or left out'],
    [{ action: 'summary', resolved: true }, 'resolved: unknown option of summary (resolved belongs to purge)'],
    [{ action: 'show', reason: 'tombstone' }, 'reason: unknown option (did you mean reasons?)'],
  ])('should refuse %j with DEAD_LETTER_REQUEST_INVALID naming %s', async (request, named) => {
    const run = await runAction(db, request as { action: 'show' });
    expect(run.error).toMatchObject({ code: 'DEAD_LETTER_REQUEST_INVALID' });
    expect((run.error as Error).message).toContain(named);
    expect(run.logs).toEqual([
      expect.objectContaining({
        level: 'ERROR',
        message: 'dead-letter action failed',
        error: expect.objectContaining({ code: 'DEAD_LETTER_REQUEST_INVALID' }),
      }),
    ]);
  });
});

describe('a database the actions cannot use', () => {
  // Each setup mistake an operator makes, for every action: the typed error that names the fix, in the answer and
  // in the one log line, never the driver's raw error (or a missing column of a schema behind the code).
  let behind: string;
  let migrationsDir: string;
  beforeAll(async () => {
    // A schema one migration behind the code: a database the newest migration was not applied to yet.
    migrationsDir = mkdtempSync(join(tmpdir(), 'trace-dl-behind-'));
    for (const file of readdirSync('migrations').filter((f) => Number(f.slice(0, 4)) < SCHEMA_VERSION))
      cpSync(join('migrations', file), join(migrationsDir, file));
    behind = `${db.config.db.schema}_behind`;
    await applySchema(db.sql, behind, migrationsDir);
  });
  afterAll(async () => {
    await db.sql`drop schema if exists ${db.sql(behind)} cascade`;
    rmSync(migrationsDir, { recursive: true, force: true });
  });

  const mistakes = [
    {
      mistake: 'a wrong password',
      env: () => ({ DB_PASSWORD: 'wrong' }),
      code: 'DB_LOGIN_REJECTED',
      says: 'Check DB_USER and DB_PASSWORD',
    },
    {
      mistake: 'a missing database',
      env: () => ({ DB_NAME: 'no_such_database' }),
      code: 'DB_NOT_FOUND',
      says: 'npm run db:apply',
    },
    {
      mistake: 'a missing schema',
      env: () => ({ DB_SCHEMA: 'no_such_schema' }),
      code: 'SCHEMA_VERSION_MISMATCH',
      says: 'set DB_SCHEMA',
    },
    {
      mistake: 'a schema behind the code',
      env: () => ({ DB_SCHEMA: behind }),
      code: 'SCHEMA_VERSION_MISMATCH',
      says: `needs ${SCHEMA_VERSION}: run npm run db:apply`,
    },
  ];
  const requests = [
    { action: 'summary' },
    { action: 'show' },
    { action: 'redrive', dryRun: true },
    { action: 'purge', olderThanDays: 0 },
  ] as const;
  const cases = mistakes.flatMap((m) => requests.map((request) => ({ ...m, request, action: request.action })));

  it.each(cases)(
    'should answer $action on $mistake with $code, naming the fix',
    async ({ env, code, says, request }) => {
      const config = loadConfig({ ...db.env, ...env() });
      const database = consumerDatabase(config);
      try {
        const run = await runAction(db, { ...request }, { database, config: { ...db.config, db: config.db } });
        expect(run.error).toMatchObject({ code });
        expect((run.error as Error).message).toContain(says);
        expect(run.logs.filter((l) => l.level === 'ERROR')).toEqual([
          expect.objectContaining({
            message: 'dead-letter action failed',
            action: request.action,
            error: expect.objectContaining({ code }),
          }),
        ]);
      } finally {
        await database.end();
      }
    },
  );
});

describe('a table the actions read, locked by another session', () => {
  // As a migration's ALTER TABLE (or a VACUUM FULL) holds it: the action must give up by its deadline, naming the
  // lock, and leave no backend behind. PostgreSQL does not notice a vanished client while its backend waits for a
  // lock, so only lock_timeout and statement_timeout, set below the deadline, end that wait; before, the schema check,
  // summary, show and the purge's dry run had neither, and their backends stayed queued after the invocation ended.
  const requests = [
    { action: 'summary' },
    { action: 'show' },
    { action: 'redrive' },
    { action: 'redrive', dryRun: true },
    { action: 'purge', olderThanDays: 0 },
    { action: 'purge', olderThanDays: 0, dryRun: false },
  ] as const;
  // processed_traces: read by every action that tells resolved letters apart; redrive and purge of the one letter
  // (not JSON, no trace id) do not read it.
  const reading = [{ action: 'summary' }, { action: 'show' }, { action: 'purge', resolved: true }] as const;
  const cases = [
    ...(['schema_migrations', 'dead_letters'] as const).flatMap((locked) =>
      requests.map((request) => ({ locked, request })),
    ),
    ...reading.map((request) => ({ locked: 'processed_traces' as const, request })),
  ].map((c) => ({ ...c, json: JSON.stringify(c.request) }));
  let n = 0;

  it.each(cases)(
    'should answer $json with $locked locked by its deadline, naming the lock, and leave no backend',
    async ({ locked, request }) => {
      const topic = newTopic();
      await insertLetters(topic, [{ reason: 'invalid_json', partition: 0, daysAgo: 1, redrive: null }]);
      const application = `dl-locked-${++n}`;
      const database = consumerDatabase(db.config, { connection: { application_name: application } });
      const lock = await holdTableLock(db, locked, 'access exclusive');
      try {
        const deadline = Date.now() + 1200;
        const run = await runAction(db, { ...request, topic }, { database, deadline });
        const answeredAt = Date.now();
        const busy = await db.sql<{ state: string; wait: string | null; query: string }[]>`
          select state, wait_event_type as wait, query from pg_stat_activity
          where application_name = ${application} and state <> 'idle'`;
        expect(busy).toEqual([]);
        expect(answeredAt).toBeLessThan(deadline + 200);
        // Redrive and purge answer done: false when a batch committed; none can here, so the lock is the answer.
        expect(run.error).toMatchObject({ code: 'DEAD_LETTER_OUT_OF_TIME' });
        expect((run.error as Error).message).toContain('locked by another session (lock_timeout)');
        expect((run.error as Error).message).toContain(`${db.config.db.host}:${db.config.db.port}`);
      } finally {
        await lock.release();
        await database.end();
      }
    },
  );
});

describe('dead letters resolved by a later report', () => {
  /**
   * What becomes of each trace after its record was dead-lettered: nothing (unresolved); a corrected report stored by
   * the consumer, or an upstream failure report; a second dead letter of the same trace redriven (under a fixed
   * rule) and stored; a redrive that dead-lettered it again, then a corrected report; or an unreadable record, which
   * has no trace id and which no report can resolve.
   */
  const FATES = [
    'none',
    'stored_later',
    'upstream_error_later',
    'other_letter_redriven',
    'redriven_again_then_stored',
    'unreadable',
  ] as const;
  const invalid = (m: ReturnType<typeof surveyMessage>) => ({ ...m, course: { ...m.course, enrollment: -1 } });

  it(
    'should count a letter whose trace id was stored later as resolved, overall and by reason, show by what, and ' +
      'purge it as resolved',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(fc.constantFrom(...FATES), { minLength: 1, maxLength: 8 }), async (fates) => {
          const topic = newTopic();
          const messages = fates.map((_, i) => surveyMessage({}, { courseId: `${topic}-${i}` }));
          // First the dead letters, one per trace (two for a trace whose other letter is redriven), in one batch.
          const letters = fates.flatMap((fate, i): RecordInput[] => {
            const m = messages[i]!;
            if (fate === 'unreadable') return [{ value: `{"traceId": "${m.traceId}"` }];
            if (fate === 'redriven_again_then_stored') return [{ value: { ...m, instructor: { name: ' ' } } }];
            return fate === 'other_letter_redriven'
              ? [{ value: invalid(m) }, { value: invalid(m) }]
              : [{ value: invalid(m) }];
          });
          expect((await runBatch(db, buildKafkaEvent(letters, { topic }))).result?.summary.deadLettered).toBe(
            letters.length,
          );
          const rows = await db.sql<{ id: string; trace_id: string | null; reason: string }[]>`
            select id, trace_id, reason from ${table('dead_letters')} where kafka_topic = ${topic} order by id`;
          const lettersOf = (i: number) => rows.filter((r) => r.trace_id === messages[i]!.traceId);

          // Then what happens to each trace.
          const redriven = fates.flatMap((fate, i) =>
            fate === 'other_letter_redriven' || fate === 'redriven_again_then_stored'
              ? [Number(lettersOf(i)[0]!.id)]
              : [],
          );
          if (redriven.length > 0)
            expect(
              (await runAction(db, { action: 'redrive', ids: redriven }, { parse: relaxedParse })).error,
            ).toBeUndefined();
          const later = fates.flatMap((fate, i): RecordInput[] =>
            fate === 'stored_later' || fate === 'redriven_again_then_stored'
              ? [{ value: messages[i] }]
              : fate === 'upstream_error_later'
                ? [{ value: { traceId: messages[i]!.traceId, error: 'the report could not be read' } }]
                : [],
          );
          if (later.length > 0)
            expect(
              (await runBatch(db, buildKafkaEvent(later, { topic: `${topic}-fixed` }))).result?.summary.deadLettered,
            ).toBe(0);

          // The model: which letters are resolved, and by what.
          const expected = new Map<string, { traceStatus: string; redriveOf: number | null } | null>();
          fates.forEach((fate, i) => {
            const [first] = lettersOf(i);
            for (const letter of lettersOf(i))
              expected.set(
                letter.id,
                fate === 'none'
                  ? null
                  : fate === 'upstream_error_later'
                    ? { traceStatus: 'upstream_error', redriveOf: null }
                    : fate === 'other_letter_redriven'
                      ? { traceStatus: 'stored', redriveOf: Number(first!.id) }
                      : { traceStatus: 'stored', redriveOf: null },
              );
          });
          for (const r of rows) if (!expected.has(r.id)) expected.set(r.id, null); // unreadable: no trace id
          const resolved = rows.filter((r) => expected.get(r.id) !== null);
          const unresolved = rows.filter((r) => expected.get(r.id) === null);

          const summary = (await runAction(db, { action: 'summary', topic })).response!;
          expect([summary.total, summary.unresolved, summary.resolvedByReport]).toEqual([
            rows.length,
            unresolved.length,
            resolved.length,
          ]);
          expect(
            Object.fromEntries(summary.byReason.map((r) => [r.reason, [r.unresolved, r.resolvedByReport]])),
          ).toEqual(
            Object.fromEntries(
              Object.keys(countBy(rows, (r) => r.reason)).map((reason) => [
                reason,
                [
                  unresolved.filter((r) => r.reason === reason).length,
                  resolved.filter((r) => r.reason === reason).length,
                ],
              ]),
            ),
          );

          const shown = (await runAction(db, { action: 'show', topic, limit: 100 })).response!.letters;
          for (const letter of shown) {
            const want = expected.get(String(letter.id))!;
            if (want === null) expect(letter.resolvedBy).toBeNull();
            else expect(letter.resolvedBy).toMatchObject({ ...want, at: expect.stringMatching(/^\d{4}-/) });
          }

          const purge = (await runAction(db, { action: 'purge', topic, resolved: true })).response!;
          expect([purge.purged, purge.byReason]).toEqual([resolved.length, countBy(resolved, (r) => r.reason)]);
        }),
        { numRuns: runs(6) },
      );
    },
  );
});
