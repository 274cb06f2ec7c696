import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildKafkaEvent } from '../../scripts/event-builder';
import { consumerDatabase, countRows, testDatabase, type TestDatabase } from '../helpers/db';
import { surveyMessage } from '../helpers/factories';
import { runBatch } from '../helpers/run';

let db: TestDatabase;
beforeAll(async () => {
  db = await testDatabase({ RETRY_BACKOFF_MS: '5000', MAX_RETRIES: '1' });
});
afterAll(() => db.close());

const batch = () => buildKafkaEvent([{ value: surveyMessage() }, { value: surveyMessage() }]);

describe('a connection broken between invocations', () => {
  it('should be replaced at once, without failing the batch or waiting for a retry', async () => {
    const consumer = consumerDatabase(db.config, { connection: { application_name: 'frozen-consumer' } });
    try {
      expect((await runBatch(db, batch(), { database: consumer })).result?.summary.stored).toBe(2);
      // While the environment is frozen, the server (or a failover, or a NAT timeout) drops the connection.
      const [killed] = await db.sql`select count(pg_terminate_backend(pid))::int as n from pg_stat_activity where application_name = 'frozen-consumer'`;
      expect(killed?.n).toBe(1);

      const started = Date.now();
      const next = await runBatch(db, batch(), { database: consumer });
      expect(next.error).toBeUndefined();
      expect(next.result?.summary).toMatchObject({ stored: 2, failed: 0 });
      expect(next.logs.some((l) => l.message === 'database write failed, retrying')).toBe(false);
      expect(Date.now() - started).toBeLessThan(2_500); // the 5 s backoff was never needed
      expect((await countRows(db)).processed_traces).toBe(4);
    } finally {
      await consumer.end();
    }
  });
});
