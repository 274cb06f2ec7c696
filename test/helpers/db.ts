import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { loadConfig, type Config } from '../../lib/config';
import { environmentCredentials } from '../../lib/postgres/credentials';
import { Database } from '../../lib/postgres/database';
import { createSql, type Sql } from '../../lib/postgres/client';
import { applySchema } from '../../scripts/db/migrations';
import { startLocalDatabase, type DatabaseEnv } from '../../scripts/local-db';
import { CONSUMER_TABLES, tableIdentifiers, type Table } from '../../lib/postgres/table-names';

export interface TestDatabase {
  config: Config;
  /** A client for the test's own queries. */
  sql: Sql;
  /** The consumer's view of the same database, as a Lambda environment would have it. */
  database: Database;
  env: Record<string, string>;
  close(): Promise<void>;
}

/**
 * A fresh schema at the newest version (every migration applied), on the run's PostgreSQL server (or on `server`), so
 * that test files running in parallel never see each other's rows. Retries are fast here so that failure paths finish
 * quickly.
 */
export async function testDatabase(
  extraEnv: Record<string, string> = {},
  server: DatabaseEnv = inject('database'),
): Promise<TestDatabase> {
  const schema = `t_${randomBytes(5).toString('hex')}`;
  const env = {
    ...server,
    DB_SCHEMA: schema,
    MAX_RETRIES: '2',
    RETRY_BACKOFF_MS: '20',
    TIME_RESERVE_MS: '1000',
    // A deployment-class failure answers at once here; the tests of the hold set their own.
    SETUP_FAILURE_HOLD_SECONDS: '0',
    LOG_LEVEL: 'error',
    ...extraEnv,
  };
  const config = loadConfig(env);
  const sql = createSql(config.db, { max: 4, connection: { application_name: 'trace-consumer-tests' } });
  await applySchema(sql, schema);
  const database = consumerDatabase(config);
  return {
    config,
    sql,
    database,
    env,
    async close() {
      await database.end();
      await sql`drop schema if exists ${sql(schema)} cascade`;
      await sql.end({ timeout: 5 });
    },
  };
}

/** Row counts of every table in the test's schema. */
export async function countRows(db: TestDatabase): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  const t = tableIdentifiers(db.sql, db.config.db.schema);
  for (const table of CONSUMER_TABLES) {
    const [row] = await db.sql<{ n: number }[]>`select count(*)::int as n from ${t[table]}`;
    counts[table] = row?.n ?? 0;
  }
  return counts;
}

/** Another Lambda environment's database: its own client and connection, credentials from the environment. */
export function consumerDatabase(config: Config, overrides: Parameters<typeof createSql>[1] = {}): Database {
  return new Database(config.db, environmentCredentials(config.db), overrides);
}

/**
 * A PostgreSQL server of the test file's own, for tests that stop and start it, with a schema applied. `close`
 * ends the clients without waiting on a server that may be gone, then removes the server and its data.
 */
export async function ownServer(extraEnv: Record<string, string> = {}) {
  const server = await startLocalDatabase({ useConfigured: false });
  const db = await testDatabase(extraEnv, server.env);
  return {
    server,
    db,
    async close() {
      await db.sql.end({ timeout: 1 });
      await db.database.end();
      await server.destroy();
    },
  };
}

/**
 * Terminates the sessions `which` selects from pg_stat_activity and waits until those sessions are gone.
 * pg_terminate_backend only signals: a loaded machine may not have run the backend yet when the test's next query
 * arrives on its connection, which then still works, and the test would not exercise the broken connection it means
 * to. It waits for the terminated backends by pid, not for every session of the name: the consumer reconnects at once
 * with the same application_name, and waiting for the name to vanish then timed out whenever the new session came
 * first (the lock the test held was then never released, and every later test of the file timed out).
 */
export async function terminateSessions(
  sql: Sql,
  which: { applicationName: string } | { user: string },
): Promise<number> {
  const matches =
    'applicationName' in which ? sql`application_name = ${which.applicationName}` : sql`usename = ${which.user}`;
  // Selected first (materialized), then signalled: no other session is ever handed to pg_terminate_backend.
  const killed = await sql<{ pid: number }[]>`
    with chosen as materialized (select pid from pg_stat_activity where ${matches} and pid <> pg_backend_pid())
    select pid from chosen where pg_terminate_backend(pid)`;
  const pids = killed.map((k) => k.pid);
  for (let i = 0; ; i++) {
    const [left] = await sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity where pid = any(${pids}::int[])`;
    if (left?.n === 0) return pids.length;
    if (i >= 500) throw new Error(`sessions ${JSON.stringify(which)} still open 10 s after pg_terminate_backend`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Waits until a backend of `application` is blocked on a lock, i.e. the consumer is inside its transaction. */
export async function waitForLockWait(db: TestDatabase, application: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const [row] = await db.sql<
      { n: number }[]
    >`select count(*)::int as n from pg_stat_activity where application_name = ${application}
      and wait_event_type = 'Lock'`;
    if ((row?.n ?? 0) > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`${application} never waited for a lock`);
}

/**
 * Holds a lock on `table` of the test schema from another session (its own client) until `release` is called.
 * Returns once the lock is held: a fixed pause is not enough on a loaded machine, where the locker's connection can
 * take longer to open than the consumer's, which then takes the table first and never waits.
 */
export async function holdTableLock(
  db: TestDatabase,
  table: Table,
  mode: 'exclusive' | 'access exclusive' = 'exclusive',
) {
  const locker = createSql(db.config.db, { max: 1 });
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let locked!: () => void;
  const isLocked = new Promise<void>((r) => (locked = r));
  // The session may die with the server in a test that stops it: keep its failure from going unhandled.
  const holding = locker
    .begin(async (tx) => {
      const name = tableIdentifiers(tx, db.config.db.schema)[table];
      // access exclusive: readers wait too (VACUUM FULL, most ALTER TABLE forms)
      await (mode === 'exclusive'
        ? tx`lock table ${name} in exclusive mode`
        : tx`lock table ${name} in access exclusive mode`);
      locked();
      await released;
    })
    .catch((error: unknown) => error);
  const failure = await Promise.race([isLocked, holding]);
  if (failure !== undefined) throw new Error(`could not lock the ${table} table: ${String(failure)}`);
  return {
    release: async () => {
      release();
      await holding;
      await locker.end({ timeout: 1 });
    },
  };
}
