import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../lib/postgres/database';
import { buildKafkaEvent } from '../../scripts/encode-kafka-event';
import { sampleMessage } from '../../scripts/sample-events';
import { consumerDatabase, countRows, testDatabase, type TestDatabase } from '../helpers/db';
import { runBatch } from '../helpers/run';

let db: TestDatabase;
let client: Database;
const statements: string[] = [];

beforeAll(async () => {
  db = await testDatabase();
  client = consumerDatabase(db.config, { debug: (_connection, query) => void statements.push(query) });
  await client.run((sql) => sql`select 1`); // the client's one-off type lookup happens here, not inside a batch
});
afterAll(async () => {
  await client.end();
  await db.close();
});

async function statementsFor(event: unknown) {
  statements.length = 0;
  const run = await runBatch(db, event, { database: client });
  return { run, statements: [...statements] };
}

describe("Lambda's largest batch", () => {
  it('should store 10,000 records with the same statements as 10, far beyond 65,535 bind parameters', async () => {
    // Messages 0 and 420 share a course and instructor, so the small batch takes every path the large one does.
    const smallIds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 420];
    const small = await statementsFor(buildKafkaEvent(smallIds.map((i) => ({ value: sampleMessage(i, '2024FA') }))));
    expect(small.run.result?.summary.failed).toBe(0);

    const records = Array.from({ length: 10_000 }, (_, i) => ({ value: sampleMessage(i, '2024SP') }));
    const large = await statementsFor(buildKafkaEvent(records, { partitions: 10 }));

    expect(large.run.error).toBeUndefined();
    const summary = large.run.result!.summary;
    expect(summary).toMatchObject({ received: 10_000, failed: 0, deadLettered: 0, duplicates: 0 });
    expect(summary.stored + summary.superseded).toBe(10_000);
    const counts = await countRows(db);
    expect(counts.processed_traces).toBe(10_010);
    expect(counts.course_instructors).toBe(small.run.result!.summary.stored + summary.stored);
    expect(counts.ratings).toBe(4 * (counts.course_instructors ?? 0));

    // A constant number of statements, whatever the batch size: no statement per row or per message.
    expect(large.statements).toEqual(small.statements);
    // At most 12 in the batch's transaction, and 4 in the short one that settles its instructors first
    // (begin, statement timeout, insert, commit).
    expect(large.statements.length).toBeLessThanOrEqual(12 + 4);
  });
});
