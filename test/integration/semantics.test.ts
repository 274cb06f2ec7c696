import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeEvent } from '../../lib/aws/kafka-event';
import { buildKafkaEvent } from '../../scripts/encode-kafka-event';
import { countRows, testDatabase, type TestDatabase } from '../helpers/db';
import { surveyMessage } from '../helpers/factories';
import { runBatch, snapshot, summaryLine } from '../helpers/run';

let db: TestDatabase;
beforeEach(async () => {
  db = await testDatabase();
});
afterEach(() => db.close());

const table = (name: string) => db.sql(`${db.config.db.schema}.${name}`);
const mixedEvent = () => JSON.parse(readFileSync(join(__dirname, '../../events/mixed-batch.json'), 'utf8'));

describe('a mixed batch', () => {
  it('should settle every record with no failures, in the tables and in the summary', async () => {
    const event = mixedEvent();
    const run = await runBatch(db, event);

    expect(run.error).toBeUndefined();
    expect(run.result?.response).toEqual({ batchItemFailures: [] });
    const summary = {
      received: 9,
      stored: 2,
      duplicates: 1,
      superseded: 0,
      upstreamErrors: 1,
      deadLettered: 5,
      failed: 0,
    };
    expect(run.result?.summary).toEqual(summary);
    expect(summaryLine(run)).toMatchObject(summary);

    const counts = await countRows(db);
    expect(counts.processed_traces).toBe(3); // two stored, one upstream error
    expect(counts.dead_letters).toBe(5);
    const statuses = await db.sql`select trace_id, status, error from ${table('processed_traces')} order by trace_id`;
    expect(statuses).toEqual([
      { trace_id: 'sample-2023FA-0100', status: 'stored', error: null },
      { trace_id: 'sample-2023FA-0102', status: 'stored', error: null },
      {
        trace_id: 'sample-upstream-error',
        status: 'upstream_error',
        error: 'PDF could not be parsed: page 2 is empty',
      },
    ]);
  });

  it("should keep each dead letter's raw bytes exactly as received, with a reason code", async () => {
    const event = mixedEvent();
    await runBatch(db, event);
    const records = decodeEvent(event);
    const rows = await db.sql<
      { kafka_partition: number; kafka_offset: string; key: Buffer | null; value: Buffer | null; reason: string }[]
    >`
      select kafka_partition, kafka_offset, key, value, reason from ${table('dead_letters')}
        order by kafka_partition, kafka_offset`;
    expect(rows.map((r) => r.reason)).toEqual([
      'invalid_utf8',
      'not_an_object',
      'tombstone',
      'invalid_json',
      'invalid_message',
    ]);
    for (const row of rows) {
      const record = records.find((r) => r.partition === row.kafka_partition && r.offset === Number(row.kafka_offset));
      expect(row.value === null ? null : Buffer.compare(row.value, record!.value!)).toBe(
        record!.value === null ? null : 0,
      );
      expect(row.key?.toString()).toBe(record!.key?.toString());
    }
  });

  it('should log one warning per dead letter with its identifiers and reason', async () => {
    const run = await runBatch(db, mixedEvent());
    const warnings = run.logs.filter((l) => l.message === 'record dead-lettered');
    expect(warnings).toHaveLength(5);
    expect(warnings.map((w) => w.reason).sort()).toEqual([
      'invalid_json',
      'invalid_message',
      'invalid_utf8',
      'not_an_object',
      'tombstone',
    ]);
    for (const w of warnings)
      expect(w).toMatchObject({
        topic: 'trace-survey-processed',
        partition: expect.any(Number),
        offset: expect.any(Number),
      });
  });
});

describe('idempotence', () => {
  it('should leave the same rows however often a batch is replayed', async () => {
    const event = buildKafkaEvent(
      [
        surveyMessage(),
        surveyMessage({ instructor: { name: 'Grace Hopper' } }),
        { traceId: 'e1', error: 'failed' },
        'not json',
      ].map((value) => ({ value })),
      { partitions: 2 },
    );
    await runBatch(db, event);
    const first = await snapshot(db);
    for (let i = 0; i < 3; i++) {
      const run = await runBatch(db, event);
      expect(run.result?.summary).toMatchObject({ received: 4, duplicates: 3, deadLettered: 1, stored: 0 });
    }
    expect(await snapshot(db)).toEqual(first);
  });

  it('should treat a trace id seen in an earlier batch as a duplicate that changes nothing', async () => {
    const message = surveyMessage();
    await runBatch(db, buildKafkaEvent([{ value: message }]));
    const before = await snapshot(db);
    const changed = {
      ...message,
      course: { ...message.course, courseName: 'Renamed' },
      processedAt: '2030-01-01T00:00:00Z',
    };
    const run = await runBatch(db, buildKafkaEvent([{ value: changed }], { firstOffset: 50 }));
    expect(run.result?.summary).toMatchObject({ duplicates: 1, stored: 0 });
    expect(await snapshot(db)).toEqual(before);
  });

  it('should store a trace id that appears twice in one batch once', async () => {
    const message = surveyMessage();
    const run = await runBatch(
      db,
      buildKafkaEvent([{ value: message }, { value: message }, { value: message }], { partitions: 2 }),
    );
    expect(run.result?.summary).toMatchObject({ stored: 1, duplicates: 2 });
    expect(await countRows(db)).toMatchObject({ processed_traces: 1, ratings: 2, comments: 1 });
  });
});

describe('ordering', () => {
  const course = 'ORD-101';
  const report = (traceId: string, processedAt: string, extra: Record<string, unknown> = {}) =>
    surveyMessage(
      {
        traceId,
        processedAt,
        ratings: [{ questionText: `rating from ${traceId}`, courseMean: 4 }],
        comments: [{ commentText: `comment from ${traceId}` }, { commentText: `second from ${traceId}` }],
        ...extra,
      },
      { courseId: course, courseName: `name from ${traceId}` },
    );

  async function pairState() {
    const [pair] = await db.sql`select trace_id from ${table('course_instructors')}`;
    const ratings = await db.sql`select question_text from ${table('ratings')} order by 1`;
    const comments = await db.sql`select comment_text from ${table('comments')} order by 1`;
    const [c] = await db.sql`select course_name, trace_id from ${table('courses')} where course_id = ${course}`;
    const statuses = await db.sql`select trace_id, status from ${table('processed_traces')} order by 1`;
    return {
      pair: pair?.trace_id,
      ratings: ratings.map((r) => r.question_text),
      comments: comments.map((r) => r.comment_text),
      course: c,
      statuses,
    };
  }

  it('should replace the ratings and comments of an older report with those of a newer one', async () => {
    await runBatch(db, buildKafkaEvent([{ value: report('old', '2023-01-01T00:00:00Z') }]));
    await runBatch(db, buildKafkaEvent([{ value: report('new', '2023-02-01T00:00:00Z') }], { firstOffset: 10 }));
    const state = await pairState();
    expect(state.pair).toBe('new');
    expect(state.ratings).toEqual(['rating from new']);
    expect(state.comments).toEqual(['comment from new', 'second from new']);
    expect(state.course).toEqual({ course_name: 'name from new', trace_id: 'new' });
    expect(state.statuses).toEqual([
      { trace_id: 'new', status: 'stored' },
      { trace_id: 'old', status: 'stored' },
    ]);
  });

  it('should record an older report that arrives later as superseded and change nothing', async () => {
    await runBatch(db, buildKafkaEvent([{ value: report('new', '2023-02-01T00:00:00Z') }], { firstOffset: 10 }));
    const before = await pairState();
    const run = await runBatch(
      db,
      buildKafkaEvent([{ value: report('old', '2023-01-01T00:00:00Z') }], { firstOffset: 20 }),
    );
    expect(run.result?.summary).toMatchObject({ superseded: 1, stored: 0 });
    const after = await pairState();
    expect({ ...after, statuses: undefined }).toEqual({ ...before, statuses: undefined });
    expect(after.statuses).toContainEqual({ trace_id: 'old', status: 'superseded' });
  });

  it('should break a tie in processedAt by Kafka offset', async () => {
    const at = '2023-03-01T00:00:00Z';
    await runBatch(db, buildKafkaEvent([{ value: report('high', at) }], { firstOffset: 90 }));
    const run = await runBatch(db, buildKafkaEvent([{ value: report('low', at) }], { firstOffset: 80 }));
    expect(run.result?.summary).toMatchObject({ superseded: 1 });
    expect((await pairState()).pair).toBe('high');
  });

  it('should pick the newest report when the same pair appears several times in one batch', async () => {
    const run = await runBatch(
      db,
      buildKafkaEvent([
        { value: report('b', '2023-02-01T00:00:00Z') },
        { value: report('c', '2023-03-01T00:00:00Z') },
        { value: report('a', '2023-01-01T00:00:00Z') },
      ]),
    );
    expect(run.result?.summary).toMatchObject({ stored: 1, superseded: 2 });
    const state = await pairState();
    expect(state.pair).toBe('c');
    expect(state.ratings).toEqual(['rating from c']);
    expect(state.course).toEqual({ course_name: 'name from c', trace_id: 'c' });
  });

  it('should keep course attributes from the newest report even when an older one adds a new instructor', async () => {
    await runBatch(db, buildKafkaEvent([{ value: report('new', '2023-05-01T00:00:00Z') }]));
    const run = await runBatch(
      db,
      buildKafkaEvent(
        [{ value: report('old-other', '2023-01-01T00:00:00Z', { instructor: { name: 'Second Teacher' } }) }],
        { firstOffset: 5 },
      ),
    );
    expect(run.result?.summary).toMatchObject({ stored: 1 }); // a new pair: its ratings are stored
    const [c] = await db.sql`select course_name, trace_id from ${table('courses')}`;
    expect(c).toEqual({ course_name: 'name from new', trace_id: 'new' });
    expect(await countRows(db)).toMatchObject({ course_instructors: 2, ratings: 2, comments: 4 });
  });
});

describe('instructors and courses', () => {
  it('should find an instructor by normalised name and upsert a course by course_id', async () => {
    await runBatch(
      db,
      buildKafkaEvent([
        { value: surveyMessage({ instructor: { name: 'Ada  Lovelace' } }, { courseId: 'X1' }) },
        { value: surveyMessage({ instructor: { name: ' Ada Lovelace\t' } }, { courseId: 'X2' }) },
      ]),
    );
    await runBatch(
      db,
      buildKafkaEvent(
        [
          {
            value: surveyMessage(
              { instructor: { name: 'Ada Lovelace' }, processedAt: '2024-01-01T00:00:00Z' },
              { courseId: 'X1', courseName: 'Newer' },
            ),
          },
        ],
        { firstOffset: 9 },
      ),
    );
    expect(await db.sql`select name from ${table('instructors')}`).toEqual([{ name: 'Ada Lovelace' }]);
    expect(await db.sql`select course_id, course_name from ${table('courses')} order by 1`).toEqual([
      { course_id: 'X1', course_name: 'Newer' },
      { course_id: 'X2', course_name: 'Fundamentals of Computer Science' },
    ]);
  });

  it('should store text and numbers exactly as sent', async () => {
    const message = surveyMessage({
      comments: [
        {
          category: 'Ünïcödé',
          questionText: 'Q?\tTabbed',
          responseNumber: 3,
          commentText: "Robert'); DROP TABLE comments;-- 👍 课程\nline two\r\n\\N back\\slash",
        },
      ],
      ratings: [{ questionText: 'precise', courseMean: 4.123456789012345, responseRate: '0.875', responses: '12' }],
    });
    await runBatch(db, buildKafkaEvent([{ value: message }]));
    const [comment] =
      await db.sql`select category, question_text, response_number, comment_text from ${table('comments')}`;
    expect(comment).toEqual({
      category: 'Ünïcödé',
      question_text: 'Q?\tTabbed',
      response_number: 3,
      comment_text: "Robert'); DROP TABLE comments;-- 👍 课程\nline two\r\n\\N back\\slash",
    });
    const [rating] = await db.sql`select course_mean, response_rate, responses from ${table('ratings')}`;
    expect(rating).toEqual({ course_mean: 4.123456789012345, response_rate: 0.875, responses: 12 });
  });
});

describe('a message the database rejects', () => {
  it('should be dead-lettered as db_rejected while the rest of the batch is stored', async () => {
    // A constraint the consumer does not know about stands for any rejection validation cannot foresee.
    await db.sql`alter table ${table('courses')} add constraint no_poison check (course_name is distinct
      from 'poison')`;
    const good = Array.from({ length: 7 }, () => surveyMessage());
    const poison = surveyMessage({}, { courseId: 'POISON-1', courseName: 'poison' });
    const event = buildKafkaEvent(
      [...good.slice(0, 3), poison, ...good.slice(3)].map((value) => ({ value })),
      { partitions: 2 },
    );

    const run = await runBatch(db, event);

    expect(run.result?.response).toEqual({ batchItemFailures: [] });
    expect(run.result?.summary).toMatchObject({ received: 8, stored: 7, deadLettered: 1, failed: 0 });
    const [dead] =
      await db.sql`select reason, detail, trace_id, convert_from(value, 'UTF8') as value from ${table('dead_letters')}`;
    expect(dead).toMatchObject({ reason: 'db_rejected', trace_id: poison.traceId });
    expect(dead?.detail).toMatch(/^23514: .*no_poison/);
    expect(JSON.parse(dead?.value)).toEqual(poison);
    expect(await countRows(db)).toMatchObject({ processed_traces: 7, courses: expect.any(Number) });
    const [poisonCourse] =
      await db.sql`select count(*)::int as n from ${table('courses')} where course_id = 'POISON-1'`;
    expect(poisonCourse?.n).toBe(0);
  });
});
