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

/** SQLSTATE classes caused by the data itself: data exception, integrity constraint, program limit (row too big). */
const DATA_CLASSES = new Set(['22', '23', '54']);
/** SQLSTATE classes caused by how the database is set up, not by the data or the moment. */
const FATAL_CLASSES = new Set(['3D', '3F', '42', '0A', '2B', '44']);
/**
 * Node.js socket errors, postgres.js connection errors and an unreachable Secrets Manager: the way to the database
 * failed, not a statement.
 */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
  'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'SECRET_UNAVAILABLE',
  'OUT_OF_TIME', // not tried for lack of time: Lambda's retry is the next attempt
]);

export function classifyFailure(error: unknown): FailureKind {
  const code = errorCode(error);
  if (code === undefined) return 'fatal';
  if (CONNECTION_CODES.has(code)) return 'transient';
  if (!isPostgresError(error)) return code.startsWith('E') ? 'transient' : 'fatal';
  const cls = code.slice(0, 2);
  if (DATA_CLASSES.has(cls)) return 'data';
  if (FATAL_CLASSES.has(cls)) return 'fatal';
  return 'transient'; // 08 connection, 40 rollback (deadlock, serialization), 53 resources, 55 lock, 57 shutdown/timeout, 28 auth
}

/** The SQLSTATE or system error code of an error, if it has one. */
export function errorCode(error: unknown): string | undefined {
  if (error !== null && typeof error === 'object' && 'code' in error && typeof error.code === 'string') return error.code;
  return undefined;
}

function isPostgresError(error: unknown): boolean {
  return error instanceof Error && error.name === 'PostgresError';
}

export interface RetryOptions {
  maxRetries: number;
  /** Delay before the first retry in milliseconds; doubled for each further retry, with jitter. */
  backoffMs: number;
  /** Milliseconds the invocation can still spend before it must answer; no attempt or wait outlasts it. */
  remainingMs: () => number;
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

/** Thrown by {@link withRetry} when there is no time left to start an attempt. */
export class OutOfTimeError extends Error {
  readonly code = 'OUT_OF_TIME';
  constructor(cause?: unknown) {
    super('The invocation is about to time out; the work was not started and is left for Lambda to retry.', { cause });
    this.name = 'OutOfTimeError';
  }
}

/**
 * Runs `attempt` until it succeeds, fails with a non-transient error, or `maxRetries` retries are spent. Waits
 * grow exponentially with "equal jitter" (half fixed, half random) so that concurrent invocations that failed
 * together do not retry together. https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
 */
export async function withRetry<T>(attempt: () => Promise<T>, options: RetryOptions): Promise<T> {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const random = options.random ?? Math.random;
  for (let retry = 0; ; retry++) {
    if (options.remainingMs() <= 0) throw new OutOfTimeError();
    try {
      return await attempt();
    } catch (error) {
      if (classifyFailure(error) !== 'transient' || retry >= options.maxRetries) throw error;
      const ceiling = options.backoffMs * 2 ** retry;
      const delay = Math.round(ceiling / 2 + random() * (ceiling / 2));
      if (delay >= options.remainingMs()) throw new OutOfTimeError(error);
      options.onRetry?.(error, retry + 1, delay);
      await sleep(delay);
    }
  }
}
