import type postgres from 'postgres';
import { canStartAttempt, MIN_ATTEMPT_MS, statementTimeoutMs, timeLeft, type Deadline } from '../deadline';
import { CommitUnconfirmedError, CommitUnknownError, OutOfTimeError } from '../errors';
import { commitStatus, inTransaction, type Prelude, type TransactionTimeouts } from './client';
import type { Database } from './database';
import { classifyFailure } from './failure-kind';

/*
 * The one way work runs on the database: retried on transient failures with backoff, every attempt (and every
 * reconnect and re-login inside one, see Database.run) started only with MIN_ATTEMPT_MS left before the one deadline
 * and cut off at it, and, for a transaction, PostgreSQL's own timeouts set from the time left when the attempt starts.
 */

export interface RetryOptions {
  maxRetries: number;
  /** Delay before the first retry in milliseconds; doubled for each further retry, with jitter. */
  backoffMs: number;
  /** When the work must be finished (epoch ms, see lib/deadline.ts); no attempt starts, or wait ends, past it. */
  deadline: Deadline;
  /** The clock the deadline is measured on; Date.now unless a test drives time. */
  now?: () => number;
  /** The least time left with which an attempt starts; MIN_ATTEMPT_MS unless the work is one short query (health). */
  minAttemptMs?: number;
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

export interface TransactionOptions extends RetryOptions {
  /**
   * The server-side timeouts of each attempt, as shares of the time left when it starts, for work that should be
   * told apart by its cause (health: a locked table, then a slow query, before the client's timer). Without it the
   * statement_timeout is what is left less STATEMENT_GRACE_MS, and there is no lock_timeout.
   */
  timeoutShares?: { statement: number; lock: number };
  /**
   * When whether a COMMIT happened cannot be learnt in time (its answer was lost and txid_status did not tell):
   * 'retry' (the default) runs the work again, as the consumer may (its trace-id claims keep a batch exactly once,
   * only its report may then say duplicate); `{ stop: what }` throws CommitUnknownError naming `what` instead, for
   * work that must never happen twice (a redrive or purge batch would act on a second set of letters and report one).
   */
  onUnknownCommit?: 'retry' | { stop: string };
  /** A short transaction sent ahead of the first pass only, in its round trip (see Prelude in client.ts). */
  prelude?: Prelude;
}

/**
 * Runs `attempt` until it succeeds, fails with a non-transient error, or `maxRetries` retries are spent. Waits
 * grow exponentially with "equal jitter" (half fixed, half random) so that concurrent invocations that failed
 * together do not retry together. https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/
 */
export async function withRetry<T>(attempt: () => Promise<T>, options: RetryOptions): Promise<T> {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const random = options.random ?? Math.random;
  const now = options.now ?? Date.now;
  const minAttemptMs = options.minAttemptMs ?? MIN_ATTEMPT_MS;
  for (let retry = 0; ; retry++) {
    if (!canStartAttempt(options.deadline, now, minAttemptMs)) throw new OutOfTimeError();
    try {
      return await attempt();
    } catch (error) {
      if (classifyFailure(error) !== 'transient' || retry >= options.maxRetries) throw error;
      const ceiling = options.backoffMs * 2 ** retry;
      const delay = Math.round(ceiling / 2 + random() * (ceiling / 2));
      // A wait is worth it only if an attempt can still start after it.
      if (delay + minAttemptMs > timeLeft(options.deadline, now)) throw new OutOfTimeError(error);
      options.onRetry?.(error, retry + 1, delay);
      await sleep(delay);
    }
  }
}

/**
 * `work` in a transaction of its own, retried on transient failures, every attempt bounded by the deadline: the
 * statement (and optionally lock) timeout set with BEGIN from the time left, the client's timer at the deadline
 * itself (Database.run). A transaction whose COMMIT lost its answer is not run again blindly: a new connection asks
 * whether it committed (txid_status), and if it did its result is the answer; if it was aborted it runs again at
 * once; if that cannot be learnt in time, `onUnknownCommit` decides.
 */
export function runInTransaction<T>(
  database: Database,
  work: (tx: postgres.ReservedSql) => Promise<T>,
  options: TransactionOptions,
): Promise<T> {
  const now = options.now ?? Date.now;
  const timeouts = (): TransactionTimeouts => {
    const shares = options.timeoutShares;
    if (!shares) return { statementMs: statementTimeoutMs(options.deadline, now) };
    const left = timeLeft(options.deadline, now);
    return { statementMs: left * shares.statement, lockMs: left * shares.lock };
  };
  // The timeouts are computed when each pass starts (each reconnect inside Database.run too), from the one deadline.
  // The prelude goes out with the first pass only: a retry finds what it wrote, or writes what is missing itself.
  let prelude = options.prelude;
  const once = () =>
    database.run(
      (sql) => {
        const ahead = prelude;
        prelude = undefined;
        return inTransaction(sql, work, timeouts(), ahead);
      },
      options.deadline,
      now,
      options.minAttemptMs,
    );
  return withRetry(async () => {
    for (let rerun = false; ; rerun = true) {
      try {
        return await once();
      } catch (error) {
        if (!(error instanceof CommitUnconfirmedError)) throw error;
        const status = await commitOutcome(database, error.transactionId, options.deadline, now);
        if (status === 'committed') return error.result as T;
        // Aborted: nothing of it committed, as after any lost connection, so it runs again at once (once).
        if (status === 'aborted' && !rerun) continue;
        if (status === 'unknown' && typeof options.onUnknownCommit === 'object')
          throw new CommitUnknownError(options.onUnknownCommit.stop, error);
        throw error;
      }
    }
  }, options);
}

/** How long to keep asking whether a transaction whose COMMIT lost its answer committed, when no deadline is given. */
const COMMIT_CHECK_MS = 10_000;
/** The pause between two such questions while the server still has the transaction in progress. */
const COMMIT_POLL_MS = 50;

/**
 * What became of a transaction whose COMMIT lost its answer, asked on new connections until the server knows: its
 * backend may still be finishing when we ask. 'unknown' when the deadline (or, with none, COMMIT_CHECK_MS) passes
 * first, or the question itself keeps failing.
 */
async function commitOutcome(
  database: Database,
  transactionId: string,
  deadline: Deadline,
  now: () => number,
): Promise<'committed' | 'aborted' | 'unknown'> {
  const giveUpAt = Math.min(deadline, now() + COMMIT_CHECK_MS);
  let failures = 0;
  while (canStartAttempt(giveUpAt, now)) {
    let status: Awaited<ReturnType<typeof commitStatus>>;
    try {
      status = await database.run((sql) => commitStatus(sql, transactionId), giveUpAt, now);
    } catch {
      if (++failures > 2) return 'unknown';
      continue;
    }
    if (status === 'committed' || status === 'aborted') return status;
    if (status === null) return 'unknown';
    await new Promise((resolve) => setTimeout(resolve, COMMIT_POLL_MS));
  }
  return 'unknown';
}
