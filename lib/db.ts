import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import postgres from 'postgres';
import type { Config } from './config';
import { databaseSocket, type TlsSettings } from './db-socket';
import { CaFileMissingError, CommitUnconfirmedError } from './errors';
import { CONNECTION_LOST, errorCode } from './retry';

export type Sql = postgres.Sql;

type ClientOptions = postgres.Options<Record<string, postgres.PostgresType>>;

/**
 * A postgres.js client with the pool and TLS settings of the configuration. In Lambda there is one per execution
 * environment (see Database): an environment handles one invocation at a time, and a batch's statements are
 * pipelined on one connection, so DB_POOL_MAX defaults to 1. An idle connection is closed before a frozen
 * environment's socket can go stale; one that broke anyway fails as a transient error and the retry opens a new
 * one. https://docs.aws.amazon.com/lambda/latest/dg/services-rds.html
 */
export function createSql(db: Config['db'], overrides: ClientOptions = {}): Sql {
  const target = { host: db.host, port: db.port, database: db.database, user: db.user };
  const options: ClientOptions & { socket: ReturnType<typeof databaseSocket> } = {
    host: db.host,
    port: db.port,
    database: db.database,
    username: db.user,
    password: db.password,
    max: db.poolMax,
    idle_timeout: db.idleTimeoutSeconds || undefined, // seconds; 0 keeps idle connections
    max_lifetime: db.maxLifetimeSeconds || undefined, // seconds
    connect_timeout: db.connectTimeoutSeconds,
    prepare: db.prepare,
    // TLS is negotiated by the socket (lib/db-socket.ts), which also keeps the password from an unverified server.
    ssl: false,
    socket: databaseSocket(target, tlsSettings(db), Number(overrides.connect_timeout ?? db.connectTimeoutSeconds)),
    connection: { application_name: 'trace-consumer' },
    onnotice: () => {},
    ...overrides,
  };
  return postgres(options); // `socket` is a documented option that postgres.js's type definitions leave out
}

/** How the connection is encrypted; the CA bundle is read when the client is created, so a missing one fails at once. */
function tlsSettings(db: Config['db']): TlsSettings {
  return db.ssl === 'verify-full' ? { mode: 'verify-full', ca: readCaBundle(db.sslCa) } : { mode: db.ssl };
}

/** The CA bundle, or an error naming DB_SSL_CA: a missing file is a setup mistake, never retried as transient. */
function readCaBundle(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new CaFileMissingError(path, error);
  }
}

/**
 * The longest timeout both Node's timers and PostgreSQL's statement_timeout accept (2^31 - 1 ms, about 24.8 days).
 * Beyond it Node fires a timer after 1 ms and PostgreSQL refuses the setting (SQLSTATE 22023, which would read as
 * bad data): a caller with no deadline (Infinity, or a month) must get "no timeout to speak of", never those.
 */
export const MAX_TIMEOUT_MS = 2_147_483_647;

/** `ms` as a timeout both accept: at least `min`, at most MAX_TIMEOUT_MS, `min` when it is not a number at all. */
export function boundedTimeout(ms: number, min: number): number {
  return Number.isNaN(ms) ? min : Math.min(MAX_TIMEOUT_MS, Math.max(min, Math.floor(ms)));
}

/** The tables the consumer writes, as `schema.table` names for postgres.js identifiers. */
export const TABLES = [
  'instructors',
  'courses',
  'course_instructors',
  'ratings',
  'comments',
  'processed_traces',
  'dead_letters',
] as const;
export type Table = (typeof TABLES)[number];

export function qualifiedTables(schema: string): Record<Table, string> {
  return Object.fromEntries(TABLES.map((t) => [t, `${schema}.${t}`])) as Record<Table, string>;
}

/** Brings a schema to the newest migration: the one entry point for scripts and tests (see lib/migrations.ts). */
export { applySchema } from './migrations';

/**
 * The SQL of schema.sql (or of `text`) for `schema`, without its psql meta-commands, so that it runs through any
 * client as `psql -v schema=<schema> -f schema.sql` would. Tests use it; `schema` must be a validated identifier.
 */
export function schemaSql(schema: string, text = readFileSync(join(__dirname, '..', 'schema.sql'), 'utf8')): string {
  return text
    .split('\n')
    .filter((line) => !line.startsWith('\\'))
    .join('\n')
    .replaceAll(':"schema"', `"${schema}"`);
}

/**
 * Runs `work` in a transaction on one reserved connection. Unlike postgres.js's `sql.begin`, it sends no ROLLBACK
 * on a connection that is gone: the server rolls back by itself, and postgres.js 3.4 throws an uncaught TypeError
 * (crashing the process) when a statement is written to a socket that has closed.
 *
 * When the connection is lost while COMMIT is on its way, the transaction may or may not have committed: it throws
 * CommitUnconfirmedError with the transaction's id and the work's result, for `commitStatus` to settle on another
 * connection. The id is asked for together with BEGIN (pipelined: no extra round trip).
 */
export async function inTransaction<T>(sql: Sql, work: (tx: postgres.ReservedSql) => Promise<T>): Promise<T> {
  const tx = await sql.reserve();
  try {
    const [, [started]] = await Promise.all([tx`begin`, tx<{ id: string }[]>`select txid_current()::text as id`]);
    const result = await work(tx);
    try {
      await tx`commit`;
    } catch (error) {
      if (started !== undefined && CONNECTION_LOST.has(errorCode(error) ?? '')) throw new CommitUnconfirmedError(started.id, result, error);
      throw error;
    }
    return result;
  } catch (error) {
    if (!CONNECTION_LOST.has(errorCode(error) ?? '') && !(error instanceof CommitUnconfirmedError)) await tx`rollback`.catch(() => {});
    throw error;
  } finally {
    tx.release();
  }
}

/**
 * What became of transaction `transactionId` (from txid_current): committed, aborted, or still in progress (its
 * backend has not yet noticed that its client is gone). Null when the server no longer knows (far too old).
 * https://www.postgresql.org/docs/current/functions-info.html#FUNCTIONS-INFO-SNAPSHOT
 */
export async function commitStatus(sql: Sql, transactionId: string): Promise<'committed' | 'aborted' | 'in progress' | null> {
  const [row] = await sql<{ status: 'committed' | 'aborted' | 'in progress' | null }[]>`select txid_status(${transactionId}::bigint) as status`;
  return row?.status ?? null;
}

/**
 * Connects to the `postgres` maintenance database and creates the target database when it is missing, so that a
 * new server needs no step before this one. Returns true when it created it. A concurrent creator is no error.
 */
export async function createDatabaseIfMissing(settings: Config['db']): Promise<boolean> {
  const probe = createSql(settings, { max: 1 });
  try {
    await probe`select 1`;
    return false;
  } catch (error) {
    if (errorCode(error) !== '3D000') throw error; // 3D000: the database does not exist
  } finally {
    await probe.end({ timeout: 5 });
  }
  const admin: Sql = createSql({ ...settings, database: 'postgres' }, { max: 1 });
  try {
    await admin`create database ${admin(settings.database)}`;
    return true;
  } catch (error) {
    if (errorCode(error) === '42P04') return false; // created meanwhile by another applier
    if (errorCode(error) === '42501') {
      throw new Error(
        `Database "${settings.database}" does not exist and user "${settings.user}" may not create it. ` +
          `Create it as an administrator (CREATE DATABASE "${settings.database}"), or set DB_NAME to an existing database, then run npm run db:apply again.`,
      );
    }
    throw error;
  } finally {
    await admin.end({ timeout: 5 });
  }
}
