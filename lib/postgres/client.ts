import { readFileSync } from 'node:fs';
import postgres from 'postgres';
import type { Config } from '../config';
import { CaFileMissingError, CommitUnconfirmedError, TransactionRolledBackError } from '../errors';
import { CONNECTION_LOST, errorCode } from './failure-kind';
import { boundedTimeout } from '../deadline';
import { guardScramIterations } from './scram-iterations';
import { subscribe } from './connect-failures';
import { type TcpSockets, tcpSockets } from './tcp-socket';

export type Sql = postgres.Sql;
/** What runs queries: the pool, a transaction or a reserved connection (postgres.js 4's common interface). */
export type Queryable = postgres.ISql;

type ClientOptions = postgres.Options<Record<string, postgres.PostgresType>>;

/** A client and what its sockets saw (lib/postgres/tcp-socket.ts). */
export interface Client {
  sql: Sql;
  sockets: TcpSockets;
}

/**
 * A postgres.js client with the pool and TLS settings of the configuration. In Lambda there is one per execution
 * environment (see Database): an environment handles one invocation at a time, and a batch's statements are
 * pipelined on one connection, so DB_POOL_MAX defaults to 1. An idle connection is closed before a frozen
 * environment's socket can go stale; one that broke anyway fails as a transient error and the retry opens a new
 * one. https://docs.aws.amazon.com/lambda/latest/dg/services-rds.html
 *
 * TLS and authentication are the driver's (docs/design.md, "TLS and authentication"): DB_SSL is its `ssl` mode,
 * verify-full against the CA bundle DB_SSL_CA; on a connection whose server is not verified (disable, require),
 * `require_auth` lets the server ask for SCRAM-SHA-256 only (or nothing), so a cleartext or MD5 request is refused
 * before anything is sent; channel binding (SCRAM-SHA-256-PLUS) as DB_CHANNEL_BINDING says; direct TLS as
 * DB_SSL_NEGOTIATION says. The one guard the driver lacks, a bound on SCRAM's iteration count, is
 * lib/postgres/scram-iterations.ts.
 */
export function createClient(db: Config['db'], overrides: ClientOptions = {}): Client {
  guardScramIterations();
  subscribe(); // connection errors name their target (lib/postgres/connect-failures.ts)
  const sockets = tcpSockets(db.host, db.port);
  const verified = db.ssl === 'verify-full';
  const options: ClientOptions = {
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
    ssl: sslOption(db),
    ...(db.sslNegotiation === 'direct' ? { sslnegotiation: 'direct' as const } : {}),
    channel_binding: db.channelBinding,
    ...(verified ? {} : { require_auth: UNVERIFIED_AUTH }),
    // postgres.js's SocketLike type is narrower than the net.Socket its own connect returns, which this is too.
    socket: sockets.open as unknown as ClientOptions['socket'],
    connection: { application_name: 'trace-consumer' },
    onnotice: false,
    ...overrides,
  };
  return { sql: postgres(options), sockets };
}

/** A client's `sql` alone, for tools and tests that need no more. */
export function createSql(db: Config['db'], overrides: ClientOptions = {}): Sql {
  return createClient(db, overrides).sql;
}

/**
 * What an unverified server may ask for: a SCRAM-SHA-256 exchange (the server only ever gets a proof the password
 * cannot be read from) or no authentication at all (nothing is sent). Never the password in cleartext or as MD5.
 */
const UNVERIFIED_AUTH = 'scram-sha-256,none';

/**
 * postgres.js's `ssl` for DB_SSL: false, 'require' (encrypted, certificate not checked), or TLS options that verify
 * the certificate against the CA bundle and the host name (an IP address against its IP SANs). The bundle is read
 * when the client is created, so a missing one fails at once.
 */
function sslOption(db: Config['db']): ClientOptions['ssl'] {
  if (db.ssl === 'disable') return false;
  if (db.ssl === 'require') return 'require';
  return { ca: readCaBundle(db.sslCa), rejectUnauthorized: true };
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
 * A short transaction of its own that goes out ahead of the work's, on the same connection and in the same round
 * trip: BEGIN, its statement, COMMIT, then the work's BEGIN. It commits before the work's transaction begins, so
 * that what it writes is there for everyone at once (the batch's new instructors, docs/design.md "Shared reference
 * rows"), without a round trip of its own. Best effort: its failure is handed to `onError` and the work goes on.
 */
export interface Prelude {
  statement: (tx: postgres.ReservedSql) => postgres.PendingQuery<postgres.Row[]>;
  onError: (error: unknown) => void;
}

/**
 * Runs `work` in a transaction on one reserved connection. Unlike postgres.js's `sql.begin`, it sends no ROLLBACK
 * on a connection that is gone (the server rolls back by itself) and it resolves a lost COMMIT: when the connection
 * is lost while COMMIT is on its way, the transaction may or may not have committed, so it throws
 * CommitUnconfirmedError with the transaction's id and the work's result, for `commitStatus` to settle on another
 * connection. The id is asked for together with BEGIN and the `timeouts`, pipelined with the work's first statements
 * (and behind the `prelude`, when there is one).
 */
export async function inTransaction<T>(
  sql: Sql,
  work: (tx: postgres.ReservedSql) => Promise<T>,
  timeouts: TransactionTimeouts = {},
  prelude?: Prelude,
): Promise<T> {
  const tx = await sql.reserve();
  try {
    const setting = (name: string, ms: number | undefined) =>
      ms === undefined ? tx`` : tx`, set_config(${name}, ${String(boundedTimeout(ms, 1))}, true)`;
    // idle_in_transaction_session_timeout with the statement timeout: a connection that goes silent mid-transaction
    // is dropped by the client at the deadline, but the server does not notice a silent client, and its backend
    // would hold the transaction's claims and row locks until TCP keepalive ends it (hours), stalling every
    // redelivery of the batch (test/integration/frozen-commit.test.ts).
    const settings = () => tx<{ id: string }[]>`select txid_current()::text as id
      ${setting('statement_timeout', timeouts.statementMs)}
        ${setting('idle_in_transaction_session_timeout', timeouts.statementMs)}
          ${setting('lock_timeout', timeouts.lockMs)}`;
    if (prelude) {
      // A failure of its statement leaves its transaction aborted; its COMMIT then ends it (as a rollback), and the
      // work's BEGIN starts clean.
      const statements = [tx`begin`, settings(), prelude.statement(tx), tx`commit`].map((q) => q.execute());
      void Promise.all(statements).catch(prelude.onError);
    }
    // execute(): each statement is sent now, in this order. postgres.js sends a query only once it is awaited (a
    // tick later) unless told to, so one that work() sends at once (a COPY, lib/postgres/copy-rows.ts) would go
    // first.
    const opening = Promise.all([tx`begin`.execute(), settings().execute()]);
    // The work's first statements go out behind BEGIN and the settings, not after their answer: one round trip
    // fewer per transaction. Answers come in order, so a failed BEGIN or setting rejects before the work's statements
    // (which then fail in the aborted transaction) and is the error seen.
    const [[, [started]], result] = await Promise.all([opening, work(tx)]);
    try {
      const committed = await tx`commit`;
      // PostgreSQL answers COMMIT with ROLLBACK when a statement of the transaction failed, even one whose error
      // the work caught: nothing was kept, so the work's result must not be taken as stored.
      if (committed.command === 'ROLLBACK') throw new TransactionRolledBackError();
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
