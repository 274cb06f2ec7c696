import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildKafkaEvent, type RecordInput } from '../../scripts/encode-kafka-event';
import { consumerDatabase, testDatabase, type TestDatabase } from '../helpers/db';
import { relaxedParse, runAction } from '../helpers/dead-letters';
import { surveyMessage } from '../helpers/factories';
import { runBatch } from '../helpers/run';

let db: TestDatabase;
beforeAll(async () => {
  db = await testDatabase();
});
afterAll(() => db.close());
const table = (name: string) => db.sql(`${db.config.db.schema}.${name}`);
let n = 0;
const uniq = () => `${++n}-${Math.random().toString(36).slice(2, 7)}`;

function report(courseId: string, processedAt: string, ratings: number, extra: Record<string, unknown> = {}) {
  const m = surveyMessage({ processedAt, ...extra }, { courseId });
  m.ratings = Array.from({ length: ratings }, (_, i) => ({ ...m.ratings[0]!, questionText: `q${i}-${m.traceId}` }));
  return m;
}
async function pairRatings(courseId: string) {
  return db.sql<
    { trace_id: string; n: number }[]
  >`select r.trace_id, count(*)::int as n from ${table('ratings')} r join ${table('courses')} c
    on c.id = r.course_id where c.course_id = ${courseId} group by 1 order by 1`;
}
async function pairTrace(courseId: string) {
  const rows = await db.sql<
    { trace_id: string }[]
  >`select ci.trace_id from ${table('course_instructors')} ci join ${table('courses')} c on c.id = ci.course_id
    where c.course_id = ${courseId}`;
  return rows.map((r) => r.trace_id);
}

// Hostile inputs combined rather than one kind at a time (review of issues 11, 15 and 18): each must settle every
// record in the state separate batches would give, with the newest report's rows and nothing else.
describe('combined kinds', () => {
  it(
    'should keep only the newest report ratings when a new pair gets two reports in a batch split by ' + 'isolation',
    async () => {
      const orders = [
        [0, 1, 2],
        [2, 1, 0],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
      ];
      for (const order of orders) {
        const course = `C-${uniq()}`;
        const older = report(course, '2023-01-01T00:00:00Z', 2);
        const newer = report(course, '2023-02-01T00:00:00Z', 3);
        const rejected = report(`R-${uniq()}`, '0000-06-15T00:00:00Z', 1);
        const msgs = [older, rejected, newer];
        const run = await runBatch(
          db,
          buildKafkaEvent(
            order.map((i) => ({ value: msgs[i] })),
            { topic: `t-${uniq()}` },
          ),
        );
        expect(run.error).toBeUndefined();
        expect(await pairTrace(course)).toEqual([newer.traceId]);
        expect(await pairRatings(course)).toEqual([{ trace_id: newer.traceId, n: 3 }]);
      }
    },
  );

  it(
    'should write a new pair once when the batch holds two reports of it, a repeat, and a corrected resend of ' +
      'the newer',
    async () => {
      for (const partitions of [1, 2, 3]) {
        const course = `N-${uniq()}`;
        const older = report(course, '2023-01-01T00:00:00Z', 2);
        const newer = report(course, '2023-02-01T00:00:00Z', 3);
        // PostgreSQL rejects the first copy of the newer report (its course's processedAt is in year 0); the copy after
        // it is corrected.
        const rejectedCopy = { ...newer, course: { ...newer.course, processedAt: '0000-06-15T00:00:00Z' } };
        // The rejected copy first in event order (partition 0 is listed first), the others spread over the partitions.
        const records = [rejectedCopy, older, older, newer, newer].map((value, i) => ({
          value,
          partition: i === 0 ? 0 : i % partitions,
        }));
        const run = await runBatch(db, buildKafkaEvent(records, { topic: `n-${uniq()}`, partitions }));
        expect(run.error).toBeUndefined();
        const byTrace = (id: string) =>
          run
            .result!.outcomes.filter((o) => o.traceId === id)
            .map((o) => o.state)
            .sort();
        // Stored when isolation wrote it in a transaction before the corrected copy (as an earlier batch would), else
        // superseded.
        expect([
          ['duplicate', 'stored'],
          ['duplicate', 'superseded'],
        ]).toContainEqual(byTrace(older.traceId));
        expect(byTrace(newer.traceId)).toEqual(['dead_lettered', 'duplicate', 'stored']);
        expect(await pairTrace(course)).toEqual([newer.traceId]);
        expect(await pairRatings(course)).toEqual([{ trace_id: newer.traceId, n: 3 }]);
      }
    },
  );

  it('should keep only the newest ratings when concurrent invocations write the same new pair', async () => {
    const other = consumerDatabase(db.config);
    try {
      for (let i = 0; i < 15; i++) {
        const course = `K-${uniq()}`;
        const a = report(course, '2023-01-01T00:00:00Z', 2);
        const b = report(course, '2023-02-01T00:00:00Z', 3);
        const [ra, rb] = await Promise.all([
          runBatch(db, buildKafkaEvent([{ value: a }], { topic: `ta-${uniq()}` })),
          runBatch(db, buildKafkaEvent([{ value: b }], { topic: `tb-${uniq()}` }), { database: other }),
        ]);
        expect(ra.error ?? rb.error).toBeUndefined();
        expect(await pairTrace(course)).toEqual([b.traceId]);
        expect(await pairRatings(course)).toEqual([{ trace_id: b.traceId, n: 3 }]);
      }
    } finally {
      await other.end();
    }
  });

  it('should pick the same winner for equal processedAt across partitions whether in one batch or two', async () => {
    const course = `E-${uniq()}`;
    const course2 = `E2-${uniq()}`;
    const at = '2023-05-05T05:05:05Z';
    const topic = `te-${uniq()}`;
    const a = report(course, at, 1);
    const b = report(course, at, 2);
    // one batch: a on partition 0, b on partition 1, both offset 0 → partition 1 wins
    await runBatch(
      db,
      buildKafkaEvent(
        [
          { value: a, partition: 0 },
          { value: b, partition: 1 },
        ],
        { topic },
      ),
    );
    const a2 = report(course2, at, 1);
    const b2 = report(course2, at, 2);
    await runBatch(db, buildKafkaEvent([{ value: b2, partition: 1 }], { topic: `${topic}x` }));
    await runBatch(db, buildKafkaEvent([{ value: a2, partition: 0 }], { topic: `${topic}x` }));
    expect(await pairTrace(course)).toEqual([b.traceId]);
    expect(await pairTrace(course2)).toEqual([b2.traceId]);
  });

  it(
    'should let a valid copy win after an earlier db-rejected, invalid and rejected upstream copy across ' +
      'partitions',
    async () => {
      const topic = `tr-${uniq()}`;
      const good = report(`G-${uniq()}`, '2023-03-01T00:00:00Z', 2);
      const records: RecordInput[] = [
        { value: { ...good, processedAt: '0000-06-15T00:00:00Z' }, partition: 0 },
        { value: { ...good, course: 7 }, partition: 1 },
        { value: { traceId: good.traceId, error: 'boom', processedAt: '0000-01-01T00:00:00Z' }, partition: 2 },
        { value: good, partition: 1 },
        { value: good, partition: 2 },
      ];
      const run = await runBatch(db, buildKafkaEvent(records, { topic }));
      expect(run.error).toBeUndefined();
      expect(run.result!.outcomes.map((o) => o.state)).toEqual([
        'dead_lettered',
        'dead_lettered',
        'stored',
        'duplicate',
        'duplicate',
      ]);
    },
  );

  it(
    'should keep ratings of the newest report when a redrive writes two reports of a new pair split by ' + 'isolation',
    async () => {
      const topic = `rd-${uniq()}`;
      const course = `RD-${uniq()}`;
      const neg = (m: ReturnType<typeof report>) => ({ ...m, course: { ...m.course, enrollment: -1 } });
      const older = report(course, '2023-01-01T00:00:00Z', 2);
      const newer = report(course, '2023-02-01T00:00:00Z', 3);
      const bad = report(`RB-${uniq()}`, '0000-06-15T00:00:00Z', 1);
      await runBatch(
        db,
        buildKafkaEvent([{ value: neg(older) }, { value: neg(bad) }, { value: neg(newer) }], { topic }),
      );
      const r = await runAction(db, { action: 'redrive', topic }, { parse: relaxedParse });
      expect(r.error).toBeUndefined();
      expect(await pairTrace(course)).toEqual([newer.traceId]);
      expect(await pairRatings(course)).toEqual([{ trace_id: newer.traceId, n: 3 }]);
    },
  );

  it('should redrive a big-integer trace id with its exact digits', async () => {
    const topic = `bi-${uniq()}`;
    const base = JSON.stringify({ ...report(`BI-${uniq()}`, '2023-01-01T00:00:00Z', 1), traceId: 'PLACEHOLDER' });
    const text = base.replace('"PLACEHOLDER"', '9007199254740995');
    const text2 = base.replace('"PLACEHOLDER"', '9007199254740994');
    // dead letters as an older deployment left them (a rule since relaxed): the stored bytes are valid today
    await db.sql`insert into ${table('dead_letters')} (kafka_topic, kafka_partition, kafka_offset, value,
      reason, detail, header_keys, header_values)
      values (${topic}, 0, 1, ${Buffer.from(text)}, 'invalid_message', 'old rule',
        array[${Buffer.from('k\u0000ey')}::bytea, ${Buffer.from('k\u0000ey')}::bytea],
          array[${Buffer.from([0, 255, 0])}::bytea, ${Buffer.alloc(70000, 1)}::bytea]),
             (${topic}, 0, 2, ${Buffer.from(text2)}, 'invalid_message', 'old rule', '{}', '{}')`;
    const show = await runAction(db, { action: 'show', topic });
    expect(show.error).toBeUndefined();
    const r = await runAction(db, { action: 'redrive', topic });
    expect(r.error).toBeUndefined();
    const rows = await db.sql`select trace_id, status from ${table('processed_traces')}
        where trace_id like '90071992547409%' order by 1`;
    expect(rows.map((x) => x.trace_id)).toEqual(['9007199254740994', '9007199254740995']);
    const again = await runAction(db, { action: 'redrive', topic });
    expect((again.response as { redriven: number }).redriven).toBe(0);
  });
});

describe('values beyond an index entry', () => {
  it(
    'should dead-letter reports whose trace id, course id or instructor name no index can hold, and store the ' +
      'rest',
    async () => {
      const huge = (tag: string) =>
        `${tag}-${Buffer.from(Array.from({ length: 6000 }, () => Math.floor(Math.random() * 256))).toString('base64')}`;
      const topic = `big-${uniq()}`;
      const longTrace = huge('t');
      const records: RecordInput[] = [
        { value: surveyMessage({ traceId: longTrace }) },
        { value: surveyMessage({}, { courseId: huge('c') }) },
        { value: surveyMessage({ instructor: { name: huge('i') } }) },
        { value: surveyMessage() },
        { value: surveyMessage({ traceId: longTrace }) },
        { value: { traceId: longTrace, course: 5 } },
      ];
      const run = await runBatch(db, buildKafkaEvent(records, { topic, partitions: 2 }));
      expect(run.error).toBeUndefined();
      expect(run.result!.summary).toMatchObject({ stored: 1, deadLettered: 5, failed: 0 });
      const r = await runAction(db, { action: 'redrive', topic });
      expect(r.error).toBeUndefined();
      expect(r.response!.results).toMatchObject({ dead_lettered: 5 });
    },
  );
});

describe('odd envelopes', () => {
  it('should settle records with null, absent and empty keys and values at offsets near 2^53', async () => {
    const topic = `odd-${uniq()}`;
    const base = Number.MAX_SAFE_INTEGER - 10;
    const good = () => Buffer.from(JSON.stringify(surveyMessage())).toString('base64');
    const rec = (offset: number, extra: Record<string, unknown>) => ({
      topic,
      partition: 2_147_483_647,
      offset,
      timestamp: -1,
      timestampType: 'NO_TIMESTAMP_TYPE',
      headers: [],
      ...extra,
    });
    const event = {
      eventSource: 'aws:kafka',
      records: {
        [`${topic}-2147483647`]: [
          rec(base, { key: null, value: null }),
          rec(base + 1, { key: '', value: '' }),
          rec(base + 2, {}),
          rec(base + 3, {
            key: '',
            value: good(),
            headers: [{ 'a\u0000b': [0, 255, -1, 256] }, { 'a\u0000b': [] }, { x: 'nope' }, null, 7],
          }),
          rec(base + 4, { value: good(), timestamp: null }),
          rec(base + 5, { value: Buffer.from('\ufeff' + JSON.stringify(surveyMessage())).toString('base64') }),
          rec(Number.MAX_SAFE_INTEGER, {
            value: '////',
            headers: [{ k: Array.from({ length: 100_000 }, (_, i) => i) }],
          }),
        ],
      },
    };
    const run = await runBatch(db, event);
    expect(run.error).toBeUndefined();
    expect(run.result!.outcomes.map((o) => o.state)).toEqual([
      'dead_lettered',
      'dead_lettered',
      'dead_lettered',
      'stored',
      'stored',
      'stored',
      'dead_lettered',
    ]);
    const rows = await db.sql`select kafka_offset::text as o, key, value, header_keys, header_values, kafka_timestamp
        from ${table('dead_letters')} where kafka_topic = ${topic} order by kafka_offset`;
    expect(rows.map((r) => r.o)).toEqual([
      String(base),
      String(base + 1),
      String(base + 2),
      String(Number.MAX_SAFE_INTEGER),
    ]);
    expect(rows.map((r) => r.kafka_timestamp)).toEqual([null, null, null, null]);
    expect(rows[1]!.key).toEqual(Buffer.alloc(0));
    expect(rows[2]!.key).toBeNull();
    expect(rows[3]!.header_values[0]).toHaveLength(100_000);
    const again = await runBatch(db, event);
    expect(again.result!.outcomes.map((o) => o.state)).toEqual([
      'dead_lettered',
      'dead_lettered',
      'dead_lettered',
      'duplicate',
      'duplicate',
      'duplicate',
      'dead_lettered',
    ]);
    const shown = await runAction(db, { action: 'show', topic });
    expect(shown.error).toBeUndefined();
    const r = await runAction(db, { action: 'redrive', topic, dryRun: true });
    expect(r.error).toBeUndefined();
  });
});

describe('clock', () => {
  it('should store a batch whatever the remaining time a caller without a Lambda deadline passes', async () => {
    for (const remaining of [3_000_000_000, Number.MAX_SAFE_INTEGER, Infinity]) {
      const m = surveyMessage();
      const run = await runBatch(db, buildKafkaEvent([{ value: m }, { value: null }], { topic: `clk-${uniq()}` }), {
        deadline: Date.now() + remaining,
      });
      expect(run.error).toBeUndefined();
      expect(run.result!.outcomes.map((o) => o.state)).toEqual(['stored', 'dead_lettered']);
    }
  });

  it('should redrive whatever the remaining time a terminal run without a deadline passes', async () => {
    const topic = `clkr-${uniq()}`;
    const m = surveyMessage();
    await runBatch(db, buildKafkaEvent([{ value: { ...m, course: { ...m.course, enrollment: -1 } } }], { topic }));
    const r = await runAction(db, { action: 'redrive', topic }, { parse: relaxedParse, deadline: Infinity });
    expect(r.error).toBeUndefined();
    expect(r.response!.results.stored).toBe(1);
  });
});
