import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildKafkaEvent, type RecordInput } from '../../scripts/encode-kafka-event';
import { normaliseName, storableText } from '../../lib/batch/storable-text';
import { anyJson, hostileSurvey } from '../helpers/arbitraries';
import { countRows, testDatabase, type TestDatabase } from '../helpers/db';
import { runBatch } from '../helpers/run';

let db: TestDatabase;
beforeAll(async () => {
  db = await testDatabase();
});
afterAll(() => db.close());

const table = (name: string) => db.sql(`${db.config.db.schema}.${name}`);
const STATES = ['stored', 'duplicate', 'superseded', 'upstream_error', 'dead_lettered', 'failed'];
let run = 0;

/** One record of a hostile batch: mostly surveys with hostile text, plus garbage of every kind. */
const hostileRecord = (prefix: string) =>
  fc.oneof(
    {
      weight: 6,
      arbitrary: hostileSurvey(fc.nat({ max: 30 }).map((n) => `${prefix}-${n}`)).map(
        (value): RecordInput => ({ value }),
      ),
    },
    {
      weight: 1,
      arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes): RecordInput => ({ value: Buffer.from(bytes) })),
    },
    { weight: 1, arbitrary: anyJson.map((value): RecordInput => ({ value: JSON.stringify(value) ?? 'null' })) },
    { weight: 1, arbitrary: fc.constant<RecordInput>({ value: null }) },
    {
      weight: 1,
      arbitrary: fc
        .record({ traceId: fc.nat({ max: 30 }).map((n) => `${prefix}-${n}`), error: fc.string({ minLength: 1 }) })
        .map((value): RecordInput => ({ value })),
    },
  );

describe('hostile batches against the real database', () => {
  it('should settle every record in exactly one state and store text exactly', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .integer({ min: 1, max: 40 })
          .chain((n) => fc.array(hostileRecord(`p${run}`), { minLength: n, maxLength: n })),
        fc.integer({ min: 1, max: 4 }),
        async (records, partitions) => {
          run += 1;
          const before = await countRows(db);
          const result = (await runBatch(db, buildKafkaEvent(records, { partitions, firstOffset: run * 1000 }))).result;
          expect(result).toBeDefined();
          const { summary, outcomes } = result!;
          expect(outcomes).toHaveLength(records.length);
          for (const o of outcomes) expect(STATES).toContain(o.state);
          expect(summary.failed).toBe(0);
          expect(
            summary.stored + summary.duplicates + summary.superseded + summary.upstreamErrors + summary.deadLettered,
          ).toBe(records.length);

          const after = await countRows(db);
          expect(after.dead_letters! - before.dead_letters!).toBe(summary.deadLettered);
          expect(after.processed_traces! - before.processed_traces!).toBe(
            summary.stored + summary.superseded + summary.upstreamErrors,
          );

          // Every stored survey's comments are the input's text, as PostgreSQL can hold it.
          for (const o of outcomes.filter((x) => x.state === 'stored')) {
            const input = JSON.parse(o.record.value!.toString('utf8'));
            const stored = await db.sql<
              { comment_text: string | null }[]
            >`select comment_text from ${table('comments')} where trace_id = ${o.traceId} order by id`;
            expect(stored.map((c) => c.comment_text)).toEqual(
              input.comments.map((c: { commentText: string }) => storableText(c.commentText)),
            );
            const [instructor] =
              await db.sql`select i.name from ${table('course_instructors')} ci join ${table('instructors')} i
                on i.id = ci.instructor_id where ci.trace_id = ${o.traceId}`;
            expect(instructor?.name).toBe(normaliseName(storableText(input.instructor.name)));
          }
        },
      ),
      { numRuns: process.env.LONG_TESTS === '1' ? 150 : 25 },
    );
  });
});
