import { afterEach, describe, expect, it } from 'vitest';
import { BatchFailedError } from '../../lib/errors';
import { buildKafkaEvent } from '../../scripts/encode-kafka-event';
import { consumerDatabase, countRows, testDatabase, type TestDatabase } from '../helpers/db';
import { surveyMessage } from '../helpers/factories';
import { runBatch } from '../helpers/run';

let db: TestDatabase;
const table = (name: string) => db.sql(`${db.config.db.schema}.${name}`);

/**
 * A batch whose last message the database rejects, and an invocation that runs out of time after the first half
 * of the isolation: the first half is stored, the second half is not started and must be reported for retry.
 */
async function runOutOfTimeMidway(extraEnv: Record<string, string> = {}) {
  db = await testDatabase(extraEnv);
  await db.sql`alter table ${table('courses')} add constraint no_poison check (course_name is distinct from 'poison')`;
  const messages = [
    surveyMessage(),
    surveyMessage(),
    surveyMessage(),
    surveyMessage({}, { courseId: 'P', courseName: 'poison' }),
  ];
  const event = buildKafkaEvent(
    messages.map((value) => ({ value })),
    { partitions: 2, firstOffset: 10 },
  );
  // The clock runs out as soon as the first half's transaction sends its COMMIT (the second COMMIT: the instructors'
  // own short transaction sends the first): the whole batch's transaction was rolled back (the poison), the first
  // half is stored, and the second half finds no time to start.
  let commits = 0;
  const database = consumerDatabase(db.config, {
    debug: (_connection: number, query: string) => void (/^\s*commit/i.test(query) && commits++),
  });
  const run = await runBatch(db, event, {
    database,
    deadline: Date.now() + 60_000,
    now: () => Date.now() + (commits > 1 ? 120_000 : 0),
  });
  await database.end();
  return run;
}

afterEach(() => db.close());

describe('a batch that cannot be finished', () => {
  it("should report exactly the unfinished records, with Kafka's identifiers", async () => {
    const run = await runOutOfTimeMidway();
    expect(run.error).toBeUndefined();
    expect(run.result?.summary).toMatchObject({ received: 4, stored: 2, failed: 2 });
    // Decoded in event order, partition 0 (messages 0 and 2) comes first and forms the first half, which is
    // stored; partition 1 (message 1 and the poison) is the half that was never started.
    expect(run.result?.response).toEqual({
      batchItemFailures: [
        { itemIdentifier: { partition: 'trace-survey-processed-1', offset: 10 } },
        { itemIdentifier: { partition: 'trace-survey-processed-1', offset: 11 } },
      ],
    });
    expect(await countRows(db)).toMatchObject({ processed_traces: 2 });
    const failedWarnings = run.logs.filter((l) => l.message === 'record failed, reported for retry');
    expect(failedWarnings).toHaveLength(2);
  });

  it('should throw instead when partial batch responses are turned off', async () => {
    const run = await runOutOfTimeMidway({ REPORT_BATCH_ITEM_FAILURES: 'false' });
    expect(run.error).toBeInstanceOf(BatchFailedError);
    expect((run.error as BatchFailedError).failed).toBe(2);
  });
});
