import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchFailedError } from '../../lib/errors';
import { buildKafkaEvent } from '../../scripts/encode-kafka-event';
import type { LocalDatabase } from '../../scripts/local-db';
import {
  consumerDatabase,
  countRows,
  holdTableLock,
  ownServer,
  terminateSessions,
  waitForLockWait as waitForLockWaitOf,
  type TestDatabase,
} from '../helpers/db';
import { surveyMessage } from '../helpers/factories';
import { runBatch, snapshot, type Run } from '../helpers/run';

/*
 * Database faults injected against a real PostgreSQL server of this file's own (it is stopped and started). After
 * each: nothing partial is visible, the response names exactly the unfinished records (or the batch throws), and a
 * replay once healthy stores everything exactly once.
 */

let server: LocalDatabase;
let db: TestDatabase;
let close: () => Promise<void>;
beforeAll(async () => {
  ({ server, db, close } = await ownServer({ MAX_RETRIES: '3', RETRY_BACKOFF_MS: '50', DB_CONNECT_TIMEOUT: '2' }));
});
afterAll(() => close());

const table = (name: string) => db.sql(`${db.config.db.schema}.${name}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A batch of fresh reports, some sharing a course or an instructor, all new to the database. */
function batch(tag: string, n = 6) {
  return buildKafkaEvent(
    Array.from({ length: n }, (_, i) => ({
      value: surveyMessage(
        { traceId: `${tag}-${i}`, instructor: { name: `${tag} teacher ${i % 3}` } },
        { courseId: `${tag}-COURSE-${i % 2}` },
      ),
    })),
    { partitions: 2 },
  );
}

async function traceCount(tag: string) {
  const [row] =
    await db.sql`select count(*)::int as n from ${table('processed_traces')} where trace_id like ${tag + '-%'}`;
  return row?.n ?? 0;
}

/** Replays the batch once healthy and checks that every record is stored exactly once, and again changes nothing. */
async function replayStoresExactlyOnce(event: unknown, tag: string, n = 6) {
  const replay = await runBatch(db, event);
  expect(replay.error).toBeUndefined();
  expect(replay.result?.summary.failed).toBe(0);
  expect(await traceCount(tag)).toBe(n);
  const once = await snapshot(db);
  await runBatch(db, event);
  expect(await snapshot(db)).toEqual(once);
}

const holdCoursesLock = () => holdTableLock(db, 'courses');
const waitForLockWait = (application: string) => waitForLockWaitOf(db, application);

describe('database faults', () => {
  it('should survive a connection terminated mid-transaction', async () => {
    const tag = 'terminated';
    const event = batch(tag);
    const consumer = consumerDatabase(db.config, { connection: { application_name: 'fault-terminate' } });
    const lock = await holdCoursesLock();
    const running = runBatch(db, event, { database: consumer });
    await waitForLockWait('fault-terminate');
    await terminateSessions(db.sql, { applicationName: 'fault-terminate' });
    expect(await traceCount(tag)).toBe(0); // the claim rolled back with the connection
    await sleep(100);
    await lock.release();
    const run: Run = await running;
    expect(run.error).toBeUndefined();
    expect(run.result?.summary).toMatchObject({ stored: 6, failed: 0 });
    await consumer.end();
    await replayStoresExactlyOnce(event, tag);
  });

  it('should wait out a lock held by another session', async () => {
    const tag = 'locked';
    const lock = await holdCoursesLock();
    const running = runBatch(db, batch(tag));
    await sleep(500);
    expect(await traceCount(tag)).toBe(0);
    await lock.release();
    expect((await running).result?.summary).toMatchObject({ stored: 6, failed: 0 });
  });

  it('should report the batch when a statement times out against a lock, and store it on replay', async () => {
    const tag = 'timeout';
    const event = batch(tag);
    const lock = await holdCoursesLock();
    // 1.5 s to the deadline: each attempt's statement_timeout is what remains of it, so the lock outlasts them all.
    const run = await runBatch(db, event, { deadline: Date.now() + 1_500 });
    await lock.release();
    expect(run.error).toBeInstanceOf(BatchFailedError);
    expect(JSON.stringify(run.logs)).toContain('"code":"57014"'); // canceling statement due to statement timeout
    expect(await traceCount(tag)).toBe(0);
    await replayStoresExactlyOnce(event, tag);
  });

  it('should retry a deadlock with another session and store everything once', async () => {
    const tag = 'deadlock';
    const event = batch(tag, 2);
    // The other session locks the pair row the consumer will need, then waits on a course the consumer has just
    // inserted: each waits for the other, and PostgreSQL aborts one with 40P01. (Not on an instructor: those are
    // committed before the batch's transaction begins, so that no one waits on them.)
    await runBatch(
      db,
      buildKafkaEvent([
        {
          value: surveyMessage(
            { traceId: `${tag}-seed`, instructor: { name: `${tag} teacher 0` }, processedAt: '2000-01-01T00:00:00Z' },
            { courseId: `${tag}-COURSE-0` },
          ),
        },
      ]),
    );
    const consumer = consumerDatabase(db.config, {
      connection: { application_name: 'fault-deadlock', deadlock_timeout: '100ms' },
    });
    let release!: () => void;
    const done = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const pairLocked = new Promise<void>((r) => (locked = r));
    const other = db.sql
      .begin(async (tx) => {
        await tx`set local deadlock_timeout = '2s'`;
        await tx`select 1 from ${table('course_instructors')} ci join ${table('courses')} c
          on c.id = ci.course_id where c.course_id = ${`${tag}-COURSE-0`} for update of ci`;
        locked();
        await waitForLockWait('fault-deadlock');
        await tx`insert into ${table('courses')} (course_id, trace_id, report_at, report_offset, report_partition)
               values (${`${tag}-COURSE-1`}, ${`${tag}-other`}, '1999-01-01', 0, 0)
                 on conflict (course_id) do nothing`.catch(() => {});
        release();
      })
      .catch(() => release());
    // The consumer starts once the pair row is locked: started together, it could take the row first on a slow
    // machine, finish without waiting, and no deadlock would happen.
    await Promise.race([pairLocked, other]);
    const run = await runBatch(db, event, { database: consumer });
    await done;
    await other;
    expect(run.error).toBeUndefined();
    expect(run.logs.some((l) => (l.error as { code?: string } | undefined)?.code === '40P01')).toBe(true);
    expect(run.result?.summary).toMatchObject({ failed: 0 });
    await consumer.end();
    await replayStoresExactlyOnce(event, tag, 3); // the two and the seed
  });

  it('should retry a serialization failure between two sessions and store everything once', async () => {
    const tag = 'serialization';
    const event = batch(tag, 2);
    await runBatch(
      db,
      buildKafkaEvent([
        {
          value: surveyMessage(
            { traceId: `${tag}-seed` },
            { courseId: `${tag}-COURSE-0`, processedAt: '2000-01-01T00:00:00Z' },
          ),
          timestamp: 0,
        },
      ]),
    );
    // The consumer runs at REPEATABLE READ here: a row another session changes and commits after its snapshot was
    // taken cannot be updated, and PostgreSQL answers 40001.
    const consumer = consumerDatabase(db.config, {
      connection: { application_name: 'fault-serial', default_transaction_isolation: 'repeatable read' },
    });
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let updated!: () => void;
    const rowUpdated = new Promise<void>((r) => (updated = r));
    const other = db.sql.begin(async (tx) => {
      await tx`update ${table('courses')} set updated_at = now() where course_id = ${`${tag}-COURSE-0`}`;
      updated();
      await released;
    });
    // The consumer starts once the row is changed: started together, it could update the row first and never wait.
    await Promise.race([rowUpdated, other]);
    const running = runBatch(db, event, { database: consumer });
    await waitForLockWait('fault-serial');
    release();
    await other;
    const run = await running;
    expect(run.error).toBeUndefined();
    expect(run.logs.some((l) => (l.error as { code?: string } | undefined)?.code === '40001')).toBe(true);
    expect(run.result?.summary).toMatchObject({ stored: 2, failed: 0 });
    await consumer.end();
    await replayStoresExactlyOnce(event, tag, 3); // the two and the seed
  });

  it('should throw when the server stops during a batch, with nothing partial, and store it once back up', async () => {
    const tag = 'stopped';
    const event = batch(tag);
    const consumer = consumerDatabase(db.config, { connection: { application_name: 'fault-stop' } });
    const lock = await holdCoursesLock();
    // A real invocation's clock: whatever the dying server does, the batch must answer within it.
    const deadline = Date.now() + 20_000;
    const running = runBatch(db, event, { database: consumer, deadline });
    await waitForLockWait('fault-stop');
    await server.stop();
    const run = await running;
    await lock.release().catch(() => {});
    expect(run.error).toBeInstanceOf(BatchFailedError);
    expect((run.error as BatchFailedError).failed).toBe(6);
    await server.start();
    await consumer.end();
    expect(await traceCount(tag)).toBe(0);
    await replayStoresExactlyOnce(event, tag);
    expect((await countRows(db)).dead_letters).toBe(0);
  });
});
