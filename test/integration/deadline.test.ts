import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Credentials, CredentialSource } from '../../lib/postgres/credentials';
import { Database } from '../../lib/postgres/database';
import { buildKafkaEvent } from '../../scripts/encode-kafka-event';
import { holdTableLock, terminateSessions, testDatabase, waitForLockWait, type TestDatabase } from '../helpers/db';
import { surveyMessage } from '../helpers/factories';
import { runBatch } from '../helpers/run';

/*
 * One deadline, everywhere: a batch held mid-write by a lock (so the timing is the test's, not the machine's) loses
 * its backend near the deadline, alone or with a password rotation, once or twice, with short or long backoff, the
 * lock released soon after or never. Whatever the combination, the batch answers before the invocation's end
 * (the deadline plus TIME_RESERVE_MS), and every record is either stored, with its claim row, or failed, with none.
 * Before the fix a reconnect restarted the time budget: the same batch answered seconds after Lambda's end.
 */

/** Epoch ms of the work deadline, from the batch's start: Lambda's 5 s less the tests' 1 s TIME_RESERVE_MS. */
const DEADLINE_MS = 4_000;
const KILL_AT = 2_500;
const SECOND_KILL_AT = 3_000;

let db: TestDatabase;
beforeAll(async () => {
  db = await testDatabase();
});
afterAll(() => db.close());

const sleepUntil = (at: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())));

/** A login of its own, so that its password can be rotated without touching the other tests'. */
async function createWriter(password: string): Promise<string> {
  const role = `deadline_${randomBytes(4).toString('hex')}`;
  const schema = db.sql(db.config.db.schema);
  await db.sql`create role ${db.sql(role)} login password ${db.sql.unsafe(`'${password}'`)}`;
  await db.sql`grant usage on schema ${schema} to ${db.sql(role)}`;
  await db.sql`grant select, insert, update, delete on all tables in schema ${schema} to ${db.sql(role)}`;
  await db.sql`grant usage on all sequences in schema ${schema} to ${db.sql(role)}`;
  return role;
}

type Fault = 'terminate' | 'rotate' | 'terminate twice' | 'rotate, then terminate';
const FAULTS: Fault[] = ['terminate', 'rotate', 'terminate twice', 'rotate, then terminate'];
/** Every fault with the lock released soon after its last kill, and never; short and long backoff alternating. */
const SCENARIOS = FAULTS.flatMap((fault, i) =>
  [true, false].map((released, j) => ({ fault, released, backoffMs: (i + j) % 2 === 0 ? 50 : 400 })),
);

describe('a batch near its deadline', () => {
  it.each(SCENARIOS)(
    'should settle before the invocation ends: $fault, lock released: $released, backoff $backoffMs ms',
    async ({ fault, released, backoffMs }) => {
      const tag = `dl-${randomBytes(3).toString('hex')}`;
      const application = `deadline-${tag}`;
      const first = `pw-${randomBytes(6).toString('hex')}`;
      const role = await createWriter(first);
      // The secret as Secrets Manager holds it, and what the environment cached of it.
      let secret = first;
      let cached = first;
      const credentials = (password: string): Credentials => ({
        host: db.config.db.host,
        port: db.config.db.port,
        database: db.config.db.database,
        user: role,
        password,
      });
      const source: CredentialSource = {
        get: async () => credentials(cached),
        refresh: async () => {
          cached = secret;
          return credentials(cached);
        },
      };
      const consumer = new Database(db.config.db, source, { connection: { application_name: application } });
      const event = buildKafkaEvent(
        Array.from({ length: 4 }, (_, i) => ({
          value: surveyMessage({ traceId: `${tag}-${i}` }, { courseId: `${tag}-C${i}` }),
        })),
        { topic: tag },
      );
      const lock = await holdTableLock(db, 'courses');

      const started = Date.now();
      const deadline = started + DEADLINE_MS;
      let finished = Infinity;
      const running = runBatch(db, event, {
        database: consumer,
        deadline,
        config: { ...db.config, retry: { maxRetries: 3, backoffMs } },
      }).finally(() => (finished = Date.now()));
      await waitForLockWait(db, application);
      await sleepUntil(started + KILL_AT);
      if (fault.startsWith('rotate')) {
        secret = `pw-${randomBytes(6).toString('hex')}`;
        await db.sql`alter role ${db.sql(role)} password ${db.sql.unsafe(`'${secret}'`)}`;
      }
      await terminateSessions(db.sql, { applicationName: application });
      let lastKill = KILL_AT;
      if (fault === 'terminate twice' || fault === 'rotate, then terminate') {
        // The reconnect (or re-login) is waiting on the lock again by now; lose that connection too.
        await waitForLockWait(db, application).catch(() => {});
        await sleepUntil(started + SECOND_KILL_AT);
        await terminateSessions(db.sql, { applicationName: application });
        lastKill = SECOND_KILL_AT;
      }
      if (released) {
        await sleepUntil(started + lastKill + 200);
        await lock.release();
      }
      const run = await running;
      if (!released) await lock.release();
      await consumer.end();

      // Before Lambda's end: the deadline plus TIME_RESERVE_MS.
      expect(finished - started).toBeLessThan(DEADLINE_MS + db.config.timeReserveMs);
      // Every record in a known state, and the database agreeing with it.
      const outcomes = run.result?.outcomes ?? [];
      const states = run.error === undefined ? outcomes.map((o) => o.state) : Array(4).fill('failed');
      expect(states).toHaveLength(4);
      for (const state of states) expect(['stored', 'failed']).toContain(state);
      const claims = await db.sql<{ trace_id: string; status: string; kafka_offset: string }[]>`
      select trace_id, status, kafka_offset::text from ${db.sql(`${db.config.db.schema}.processed_traces`)}
        where trace_id like ${tag + '-%'} order by trace_id`;
      const stored = states.flatMap((s, i) => (s === 'stored' ? [`${tag}-${i}`] : []));
      expect(claims.map((c) => c.trace_id)).toEqual(stored);
      for (const c of claims) expect(c.status).toBe('stored');
      if (run.error === undefined)
        expect(run.result?.summary).toMatchObject({ stored: stored.length, failed: 4 - stored.length });
    },
  );
});
