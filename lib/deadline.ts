/*
 * One deadline per invocation. The handler fixes it once, as an absolute time (epoch milliseconds: Lambda's end
 * less TIME_RESERVE_MS), and every step below it measures its time against that same instant: the schema check,
 * every database attempt, each reconnect and re-login inside one, every retry's wait. A duration handed down
 * instead would restart with each step that received it: a reconnect after a lost connection then got the whole
 * timeout again, and a batch with 4 s left ended after 5.6 s (issue 21).
 */

/** Epoch milliseconds by which work must be finished; Infinity when nothing bounds it. */
export type Deadline = number;

/**
 * The least time worth starting a database attempt with. A batch transaction takes some ten round trips; an attempt
 * started with less than this would almost surely be cut off, and only add a cancelled transaction to the server's
 * load. Units that cannot start are reported failed (OutOfTimeError) for Lambda to deliver again.
 */
export const MIN_ATTEMPT_MS = 500;

/**
 * How much earlier than the deadline PostgreSQL's statement_timeout ends a statement. The server's cancel keeps the
 * connection usable and names the cause (57014); the client-side timer, at the deadline itself, is the backstop for
 * a connection that stopped answering altogether.
 */
const STATEMENT_GRACE_MS = 100;

/** Milliseconds left until `deadline` (negative once it has passed). */
export function timeLeft(deadline: Deadline, now: () => number = Date.now): number {
  return deadline - now();
}

/**
 * True when an attempt may still start: at least `minMs` (MIN_ATTEMPT_MS unless the work is one short query) is left.
 */
export function canStartAttempt(
  deadline: Deadline,
  now: () => number = Date.now,
  minMs: number = MIN_ATTEMPT_MS,
): boolean {
  return timeLeft(deadline, now) >= minMs;
}

/** The statement_timeout for work that starts now: what is left, less STATEMENT_GRACE_MS. */
export function statementTimeoutMs(deadline: Deadline, now: () => number = Date.now): number {
  return timeLeft(deadline, now) - STATEMENT_GRACE_MS;
}

/**
 * The longest timeout both Node's timers and PostgreSQL's statement_timeout accept (2^31 - 1 ms, about 24.8 days).
 * Beyond it Node fires a timer after 1 ms and PostgreSQL refuses the setting (SQLSTATE 22023, which would read as
 * bad data): a caller with no deadline (Infinity, or a month) must get "no timeout to speak of", never those.
 */
const MAX_TIMEOUT_MS = 2_147_483_647;

/** `ms` as a timeout both accept: at least `min`, at most MAX_TIMEOUT_MS, `min` when it is not a number at all. */
export function boundedTimeout(ms: number, min: number): number {
  return Number.isNaN(ms) ? min : Math.min(MAX_TIMEOUT_MS, Math.max(min, Math.floor(ms)));
}

/**
 * `work`, or the error `onTimeout()` returns once `deadline` passes, whichever comes first. The timer is cleared
 * either way; a result that arrives late is ignored (nobody waits for it any more). With no deadline (Infinity),
 * `work` itself. The one way this code bounds a promise in time: the database client's timer, health's checks and
 * the local mapping's handler timeout all use it.
 */
export function raceDeadline<T>(
  work: Promise<T>,
  deadline: Deadline,
  onTimeout: () => Error,
  now: () => number = Date.now,
): Promise<T> {
  if (deadline === Infinity) return work;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), boundedTimeout(timeLeft(deadline, now), 0));
  });
  work.catch(() => {});
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}
