import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/log';
import { processBatch, type BatchDependencies } from '../../lib/process-batch';
import { buildKafkaEvent } from '../../scripts/event-builder';
import { countRows, testDatabase, type TestDatabase } from '../helpers/db';
import { surveyMessage } from '../helpers/factories';

let db: TestDatabase;
let logs: Record<string, unknown>[];
let deps: BatchDependencies;

beforeAll(async () => {
  db = await testDatabase();
  logs = [];
  deps = {
    sql: db.sql,
    config: db.config,
    logger: createLogger('debug', {}, (line) => logs.push(JSON.parse(line))),
    remainingMs: () => 60_000,
  };
});
afterAll(() => db.close());

describe('processBatch', () => {
  it('should store a valid message in every table', async () => {
    const message = surveyMessage();
    const result = await processBatch(buildKafkaEvent([{ value: message }]), deps);
    expect(result.response).toEqual({ batchItemFailures: [] });
    expect(result.summary).toMatchObject({ received: 1, stored: 1, failed: 0 });
    const counts = await countRows(db);
    expect(counts).toMatchObject({ instructors: 1, courses: 1, course_instructors: 1, ratings: 2, comments: 1, processed_traces: 1, dead_letters: 0 });
  });
});
