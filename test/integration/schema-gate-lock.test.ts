/**
 * The schema check of a new execution environment behind a locked version table (VACUUM FULL, an ALTER, a person's
 * LOCK TABLE). PostgreSQL does not notice a vanished client while a backend waits for a lock, so a check that was cut
 * off by the client alone left one backend queued per invocation until the lock went, and used the batch's whole
 * time: every record failed. Found by the hostile review of issue 21.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SchemaGate } from '../../lib/postgres/schema-version-gate';
import { VERSION_TABLE } from '../../lib/postgres/table-names';
import { buildKafkaEvent } from '../../scripts/encode-kafka-event';
import { consumerDatabase, holdTableLock, testDatabase, type TestDatabase } from '../helpers/db';
import { surveyMessage } from '../helpers/factories';
import { runBatch } from '../helpers/run';

let db: TestDatabase;
beforeAll(async () => {
  db = await testDatabase();
});
afterAll(() => db.close());

it(
  'should give up on a locked version table in time, leave no backend waiting for the lock, and store the ' + 'batch',
  async () => {
    const tag = `gate-${randomBytes(3).toString('hex')}`;
    const lock = await holdTableLock(db, VERSION_TABLE, 'access exclusive');
    const consumer = consumerDatabase(db.config, { connection: { application_name: tag } });
    try {
      const event = buildKafkaEvent([{ value: surveyMessage({ traceId: `${tag}-0` }, { courseId: `${tag}-C0` }) }], {
        topic: tag,
      });
      const deadline = Date.now() + 4_000;
      const run = await runBatch(db, event, {
        database: consumer,
        deadline,
        schemaGate: new SchemaGate(db.config.db.schema),
      });
      expect(run.logs.map((l) => l.message)).toContain(
        'schema version could not be read; checked again on the next invocation',
      );
      expect(run.result?.summary).toMatchObject({ stored: 1, failed: 0 });
      // The lock is still held: a backend the check left behind would still be queued for it.
      const waiting =
        await db.sql`select pid from pg_stat_activity where application_name = ${tag} and wait_event_type = 'Lock'`;
      expect(waiting).toHaveLength(0);
    } finally {
      await lock.release();
      await consumer.end();
    }
  },
);
