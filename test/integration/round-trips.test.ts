/**
 * A clean batch takes five round trips to the database, whatever its size (docs/performance.md, "Round trips"):
 * the instructors' own transaction and the batch's BEGIN with the claims; the instructors, courses, pairs and the
 * start of the ratings' COPY; the ratings, then the deletes of replaced rows and the start of the comments' COPY;
 * the comments; COMMIT. Counted at the socket, as the bench counts them, for new and for replacing reports.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { environmentCredentials } from '../../lib/postgres/credentials';
import { Database } from '../../lib/postgres/database';
import { buildKafkaEvent } from '../../scripts/encode-kafka-event';
import { RoundTripCounter } from '../../bench/round-trips';
import { countRows, testDatabase, type TestDatabase } from '../helpers/db';
import { surveyMessage } from '../helpers/factories';
import { runBatch } from '../helpers/run';

let db: TestDatabase;
let counted: Database;
const counter = new RoundTripCounter();

beforeAll(async () => {
  db = await testDatabase();
  counted = new Database(db.config.db, environmentCredentials(db.config.db), {
    socket: counter.socket as never, // the same counting socket as the bench's
  });
});
afterAll(async () => {
  await counted.end();
  await db.close();
});

const batchOf = (n: number, instructor = (i: number) => `Instructor ${i % 7}`) =>
  Array.from({ length: n }, (_, i) => surveyMessage({ instructor: { name: instructor(i) } }));

/** The same reports again under new trace ids, newer by their processedAt, so that they replace the older. */
let generation = 0;
const newerOf = (messages: unknown[], suffix = '-v2') => {
  generation += 1;
  const processedAt = new Date(Date.UTC(2024, 0, 1, 0, 0, generation)).toISOString();
  return messages.map((m) => ({
    ...(m as object),
    traceId: `${(m as { traceId: string }).traceId}${suffix}`,
    course: { ...(m as { course: object }).course, processedAt },
  }));
};

async function roundTrips(messages: unknown[]): Promise<number> {
  counter.reset();
  const run = await runBatch(db, buildKafkaEvent(messages.map((value) => ({ value }))), { database: counted });
  expect(run.error).toBeUndefined();
  expect(run.result?.summary.failed).toBe(0);
  return counter.count;
}

describe('round trips per batch', () => {
  it('should take at most five for a clean batch of new reports, at 1, 100 and 1,000 records', async () => {
    // Warm, as an execution environment is after its first batches: the schema version check, and every
    // statement's description (postgres.js describes a statement on its first run on a connection).
    const first = batchOf(4);
    await roundTrips(first);
    await roundTrips([...newerOf(first), ...newerOf(first, '-v3')]); // replaced pairs, superseded in the batch
    const counts: number[] = [];
    for (const n of [1, 100, 1_000]) counts.push(await roundTrips(batchOf(n)));
    expect(Math.max(...counts), `round trips at 1, 100, 1,000: ${counts.join(', ')}`).toBeLessThanOrEqual(5);
    expect(counts).toEqual([counts[0], counts[0], counts[0]]); // the same whatever the size
  });

  it('should take at most five when every report replaces an older one of its pair, and replace its rows', async () => {
    const older = batchOf(50);
    await roundTrips(older);
    const newer = newerOf(older);
    const ratingsBefore = (await countRows(db)).ratings;
    expect(await roundTrips(newer)).toBeLessThanOrEqual(5);
    // The replaced pairs hold the newer reports' rows only: as many rows as before, none of the older trace ids.
    expect((await countRows(db)).ratings).toBe(ratingsBefore);
    const [stale] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from ${db.sql(`${db.config.db.schema}.ratings`)}
      where trace_id = any(${older.map((m) => (m as { traceId: string }).traceId)}::text[])`;
    expect(stale?.n).toBe(0);
  });
});
