import { readFileSync } from 'node:fs';
import postgres from 'postgres';
import type { Config } from '../config';
import { databaseSocket, type TlsSettings } from './socket';
import { CaFileMissingError, CommitUnconfirmedError } from '../errors';
import { CONNECTION_LOST, errorCode } from './failure-kind';
import { boundedTimeout } from '../deadline';

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
    // TLS is negotiated by the socket (lib/postgres/socket.ts), which also keeps the password from an unverified
    // server.
    ssl: false,
    socket: databaseSocket(target, tlsSettings(db), Number(overrides.connect_timeout ?? db.connectTimeoutSeconds)),
    connection: { application_name: 'trace-consumer' },
    onnotice: () => {},
    ...overrides,
  };
  return postgres(options); // `socket` is a documented option that postgres.js's type definitions leave out
}

/**
 * How the connection is encrypted; the CA bundle is read when the client is created, so a missing one fails at once.
 */
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

/** Server-side limits of one transaction in milliseconds, set with set_config(..., true): this transaction only. */
export interface TransactionTimeouts {
  statementMs?: number;
  lockMs?: number;
}

/**
 * Runs `work` in a transaction on one reserved connection. Unlike postgres.js's `sql.begin`, it sends no ROLLBACK
 * on a connection that is gone: the server rolls back by itself, and postgres.js 3.4 throws an uncaught TypeError
 * (crashing the process) when a statement is written to a socket that has closed.
 *
 * When the connection is lost while COMMIT is on its way, the transaction may or may not have committed: it throws
 * CommitUnconfirmedError with the transaction's id and the work's result, for `commitStatus` to settle on another
 * connection. The id is asked for together with BEGIN and the `timeouts`, pipelined with the work's first statements.
 */
export async function inTransaction<T>(
  sql: Sql,
  work: (tx: postgres.ReservedSql) => Promise<T>,
  timeouts: TransactionTimeouts = {},
): Promise<T> {
  const tx = await sql.reserve();
  try {
    const setting = (name: string, ms: number | undefined) =>
      ms === undefined ? tx`` : tx`, set_config(${name}, ${String(boundedTimeout(ms, 1))}, true)`;
    const opening = Promise.all([
      tx`begin`,
      // idle_in_transaction_session_timeout with the statement timeout: a connection that goes silent mid-transaction
      // is dropped by the client at the deadline, but the server does not notice a silent client, and its backend
      // would hold the transaction's claims and row locks until TCP keepalive ends it (hours), stalling every
      // redelivery of the batch (test/integration/frozen-commit.test.ts).
      tx<{ id: string }[]>`select txid_current()::text as id ${setting('statement_timeout', timeouts.statementMs)}
        ${setting('idle_in_transaction_session_timeout', timeouts.statementMs)}
          ${setting('lock_timeout', timeouts.lockMs)}`,
    ]);
    // The work's first statements go out behind BEGIN and the settings, not after their answer: one round trip
    // fewer per transaction. Answers come in order, so a failed BEGIN or setting rejects before the work's statements
    // (which then fail in the aborted transaction) and is the error seen.
    const [[, [started]], result] = await Promise.all([opening, work(tx)]);
    try {
      await tx`commit`;
    } catch (error) {
      if (started !== undefined && CONNECTION_LOST.has(errorCode(error) ?? ''))
        throw new CommitUnconfirmedError(started.id, result, error);
      throw error;
    }
    return result;
  } catch (error) {
    if (!CONNECTION_LOST.has(errorCode(error) ?? '') && !(error instanceof CommitUnconfirmedError))
      await tx`rollback`.catch(() => {});
    throw error;
  } finally {
    tx.release();
  }
}

/**
 * Runs `work` inside a savepoint of the transaction `tx`: released when it succeeds; when it fails, the transaction is
 * rolled back to the savepoint (so that it can go on) and the error rethrown. As inTransaction, nothing is sent on a
 * connection that is gone. Savepoints of one name nest: each statement names the newest.
 */
export async function inSavepoint<T>(tx: postgres.ReservedSql, work: () => Promise<T>): Promise<T> {
  await tx`savepoint in_savepoint`;
  try {
    const result = await work();
    await tx`release savepoint in_savepoint`;
    return result;
  } catch (error) {
    if (!CONNECTION_LOST.has(errorCode(error) ?? '')) {
      await tx`rollback to savepoint in_savepoint`;
      await tx`release savepoint in_savepoint`;
    }
    throw error;
  }
}

/**
 * What became of transaction `transactionId` (from txid_current): committed, aborted, or still in progress (its
 * backend has not yet noticed that its client is gone). Null when the server no longer knows (far too old).
 * https://www.postgresql.org/docs/current/functions-info.html#FUNCTIONS-INFO-SNAPSHOT
 */
export async function commitStatus(
  sql: Sql,
  transactionId: string,
): Promise<'committed' | 'aborted' | 'in progress' | null> {
  const [row] = await sql<
    { status: 'committed' | 'aborted' | 'in progress' | null }[]
  >`select txid_status(${transactionId}::bigint) as status`;
  return row?.status ?? null;
}
