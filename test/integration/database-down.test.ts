import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchFailedError } from '../../lib/errors';
import type { LocalDatabase } from '../../scripts/local-db';
import { consumerDatabase, countRows, ownServer, type TestDatabase } from '../helpers/db';
import { runBatch, snapshot } from '../helpers/run';

// This file stops and starts PostgreSQL, so it runs its own embedded server rather than the shared one.
let server: LocalDatabase;
let db: TestDatabase;
let close: () => Promise<void>;
beforeAll(async () => {
  ({ server, db, close } = await ownServer({ MAX_RETRIES: '2', RETRY_BACKOFF_MS: '50', DB_CONNECT_TIMEOUT: '2' }));
});
afterAll(() => close());

const mixedEvent = () => JSON.parse(readFileSync(join(__dirname, '../../events/mixed-batch.json'), 'utf8'));

describe('the database is down', () => {
  it('should throw for the whole batch, then store everything exactly once on replay', async () => {
    const event = mixedEvent();
    const consumer = consumerDatabase(db.config); // the Lambda environment's client, connected while the server was up
    await consumer.run((sql) => sql`select 1`);

    await server.stop();
    const down = await runBatch(db, event, { database: consumer });
    expect(down.error).toBeInstanceOf(BatchFailedError);
    expect((down.error as BatchFailedError).failed).toBe(9);
    const summary = down.logs.find((l) => l.message === 'batch processed');
    expect(summary).toMatchObject({ received: 9, failed: 9, stored: 0 });
    expect(down.logs.filter((l) => l.message === 'database write failed, retrying')).toHaveLength(2);

    await server.start();
    expect(await countRows(db)).toMatchObject({ processed_traces: 0, dead_letters: 0 });
    const replay = await runBatch(db, event, { database: consumer });
    expect(replay.error).toBeUndefined();
    expect(replay.result?.summary).toMatchObject({
      received: 9,
      stored: 2,
      duplicates: 1,
      upstreamErrors: 1,
      deadLettered: 5,
      failed: 0,
    });
    const once = await snapshot(db);

    const again = await runBatch(db, event, { database: consumer });
    expect(again.result?.summary).toMatchObject({ duplicates: 4, deadLettered: 5, stored: 0 });
    expect(await snapshot(db)).toEqual(once);
    expect(await countRows(db)).toMatchObject({ processed_traces: 3, dead_letters: 5 });
    await consumer.end();
  });

  it('should fail fast when there is no time left, and retry nothing', async () => {
    const run = await runBatch(db, mixedEvent(), { deadline: Date.now() - 1 });
    expect(run.error).toBeInstanceOf(BatchFailedError);
    expect(run.logs.find((l) => l.message === 'batch processed')).toMatchObject({ failed: 9 });
  });
});
