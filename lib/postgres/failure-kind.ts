/**
 * How a database failure is handled depends on who caused it:
 * - `data`: this batch's data (a value PostgreSQL rejects). Retrying cannot help; the message responsible is found
 *   and dead-lettered so the rest of the batch is stored.
 * - `transient`: the database or the network (connection lost, timeout, deadlock, serialization failure, server
 *   shutting down). Retried with backoff, then reported to Lambda for a later retry.
 * - `fatal`: the deployment (schema missing, permissions) or a bug. Retrying in process cannot help; the records are
 *   reported for retry and the error is logged for a person to fix.
 */
export type FailureKind = 'data' | 'transient' | 'fatal';

/**
 * An established connection is gone: reset by the network or a failover, or closed by the server (terminated, shut
 * down). The server has rolled back whatever was open on it.
 */
export const CONNECTION_LOST = new Set([
  'ECONNRESET',
  'EPIPE',
  'CONNECTION_CLOSED',
  'CONNECTION_DESTROYED',
  'CONNECTION_ENDED',
  '57P01',
  '57P02',
  '57P03',
]);

/** SQLSTATEs with which PostgreSQL rejects a login: wrong password, unknown or disabled user. */
export const LOGIN_REJECTED = new Set(['28P01', '28000']);

/**
 * A connection could not be made at all, or not finished: refused, unresolved, timed out, closed by the server before
 * it was ready (lib/postgres/connect-failures.ts), or refused TLS (SSL_NOT_SUPPORTED: PostgreSQL with ssl = off, or
 * something between that strips it). Each is one failed attempt, retried with backoff, never reconnected at once.
 */
export const CONNECT_FAILED = new Set([
  'DB_CLOSED_IN_STARTUP',
  'SSL_NOT_SUPPORTED',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'CONNECT_TIMEOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
]);

/**
 * The way to the database failed, not a statement: the connection was lost or never made (or lost with a COMMIT
 * whose outcome could not be learnt), Secrets Manager was unreachable, or there was no time left to try.
 */
const TRANSIENT_CODES = new Set([
  ...CONNECTION_LOST,
  ...CONNECT_FAILED,
  'SECRET_UNAVAILABLE',
  'OUT_OF_TIME',
  'COMMIT_UNCONFIRMED',
]);

/** SQLSTATE classes caused by the data itself: data exception, integrity constraint, program limit (row too big). */
const DATA_CLASSES = new Set(['22', '23', '54']);
/** SQLSTATE classes caused by how the database is set up, not by the data or the moment. */
/**
 * 28 is a rejected login: not retried with backoff, since the same password fails the same way. Database.run has
 * already fetched the secret again once (the rotation case); past that, the records go back to Lambda and the log
 * says what to fix.
 */
const FATAL_CLASSES = new Set(['3D', '3F', '42', '0A', '2B', '44', '28']);

export function classifyFailure(error: unknown): FailureKind {
  const code = errorCode(error);
  if (code === undefined) return 'fatal';
  if (TRANSIENT_CODES.has(code)) return 'transient';
  if (!isPostgresError(error)) return code.startsWith('E') ? 'transient' : 'fatal';
  const cls = code.slice(0, 2);
  if (DATA_CLASSES.has(cls)) return 'data';
  if (FATAL_CLASSES.has(cls)) return 'fatal';
  // 08 connection, 40 rollback (deadlock, serialization), 53 resources, 55 lock, 57 shutdown/timeout
  return 'transient';
}

/**
 * Failures of the deployment rather than of the moment or the data: the schema is behind (or ahead) of the code, the
 * login is rejected even with the secret fetched again, the database, schema, a table or a grant is missing, the
 * CA bundle or the secret cannot be used, the server would take the password unverified. Only a person ends them,
 * so no retry can help until one acts.
 */
const DEPLOYMENT_CODES = new Set([
  'SCHEMA_VERSION_MISMATCH',
  'SCHEMA_MISSING',
  'DB_LOGIN_REJECTED',
  'DB_NOT_FOUND',
  'DB_SSL_CA_MISSING',
  'SECRET_INVALID',
  'DB_INSECURE_AUTH',
  'AUTH_METHOD_REFUSED',
  'SCRAM_ITERATIONS_REFUSED',
  'CHANNEL_BINDING_REQUIRED',
  'DB_CHANNEL_BINDING',
  '28000',
  '28P01',
  '3D000',
  '3F000',
  '42501',
  '42P01',
]);

export function isDeploymentFailure(error: unknown): boolean {
  return DEPLOYMENT_CODES.has(errorCode(error) ?? '');
}

/** The SQLSTATE or system error code of an error, if it has one. */
export function errorCode(error: unknown): string | undefined {
  if (error !== null && typeof error === 'object' && 'code' in error && typeof error.code === 'string')
    return error.code;
  return undefined;
}

/**
 * The detail of a `db_rejected` dead letter, "<SQLSTATE>: <message>" (stored data, documented in docs/dead-letters.md):
 * the same words whether the consumer or a redrive found the rejection.
 */
export function failureDetail(error: unknown): string {
  return `${errorCode(error) ?? 'unknown'}: ${error instanceof Error ? error.message : String(error)}`;
}

/**
 * How every log line and error names a failure: "<message> (SQLSTATE 23505)" for PostgreSQL's errors, "<message>
 * (ECONNRESET)" for a system or driver error with a code, the message alone otherwise. (Public answers, which must
 * not carry messages, name the code only: lib/health/readiness.ts.)
 */
export function describeDatabaseError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const code = errorCode(error);
  if (code === undefined) return message;
  return isPostgresError(error) ? `${message} (SQLSTATE ${code})` : `${message} (${code})`;
}

function isPostgresError(error: unknown): boolean {
  return error instanceof Error && error.name === 'PostgresError';
}
