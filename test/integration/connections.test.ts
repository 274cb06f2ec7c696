import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildKafkaEvent } from '../../scripts/encode-kafka-event';
import { consumerDatabase, countRows, terminateSessions, testDatabase, type TestDatabase } from '../helpers/db';
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
      expect(await terminateSessions(db.sql, { applicationName: 'frozen-consumer' })).toBe(1);

      const next = await runBatch(db, batch(), { database: consumer });
      expect(next.error).toBeUndefined();
      expect(next.result?.summary).toMatchObject({ stored: 2, failed: 0 });
      // Replaced at once: no retry, so the 5 s backoff was never waited for.
      expect(next.logs.some((l) => l.message === 'database write failed, retrying')).toBe(false);
      expect((await countRows(db)).processed_traces).toBe(4);
    } finally {
      await consumer.end();
    }
  });
});

describe('settings for RDS Proxy', () => {
  it('should store a batch with prepared statements off and a pool of two', async () => {
    const proxied = await testDatabase({ DB_PREPARE: 'false', DB_POOL_MAX: '2' });
    try {
      expect(proxied.config.db).toMatchObject({ prepare: false, poolMax: 2 });
      const run = await runBatch(proxied, batch());
      expect(run.result?.summary).toMatchObject({ stored: 2, failed: 0 });
      // With prepare off, postgres.js leaves no named prepared statements behind on the server.
      const [row] = await proxied.database.run(
        (sql) => sql<{ n: number }[]>`select count(*)::int as n from pg_prepared_statements`,
      );
      expect(row?.n).toBe(0);
    } finally {
      await proxied.close();
    }
  });
});
