import { canStartAttempt, MIN_ATTEMPT_MS, timeLeft, type Deadline } from '../deadline';
import { OutOfTimeError } from '../errors';
import { classifyFailure } from './failure-kind';

export interface RetryOptions {
  maxRetries: number;
  /** Delay before the first retry in milliseconds; doubled for each further retry, with jitter. */
  backoffMs: number;
  /** When the work must be finished (epoch ms, see lib/deadline.ts); no attempt starts, or wait ends, past it. */
  deadline: Deadline;
  /** The clock the deadline is measured on; Date.now unless a test drives time. */
  now?: () => number;
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
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
  for (let retry = 0; ; retry++) {
    if (!canStartAttempt(options.deadline, now)) throw new OutOfTimeError();
    try {
      return await attempt();
    } catch (error) {
      if (classifyFailure(error) !== 'transient' || retry >= options.maxRetries) throw error;
      const ceiling = options.backoffMs * 2 ** retry;
      const delay = Math.round(ceiling / 2 + random() * (ceiling / 2));
      // A wait is worth it only if an attempt can still start after it.
      if (delay + MIN_ATTEMPT_MS > timeLeft(options.deadline, now)) throw new OutOfTimeError(error);
      options.onRetry?.(error, retry + 1, delay);
      await sleep(delay);
    }
  }
}
