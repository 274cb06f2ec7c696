import type { Database } from '../postgres/database';
import type { Deadline } from '../deadline';
import type { Sql } from '../postgres/client';
import type { Logger } from '../log';
import { withRetry } from '../postgres/retry';

/** What every dead-letter operation needs: the database, where the tables are, and how much time is left. */
export interface OperationContext {
  database: Database;
  schema: string;
  logger: Logger;
  retry: { maxRetries: number; backoffMs: number };
  /** When the work must be finished (epoch ms): the invocation's end less TIME_RESERVE_MS. */
  deadline: Deadline;
  /** The clock of `deadline`. */
  now: () => number;
  /** Milliseconds left until `deadline`. */
  remainingMs: () => number;
}

/**
 * Runs `work` on the database as the consumer runs a batch: transient failures retried with backoff, and no attempt
 * allowed to outlast the invocation (a silent connection is dropped when the remaining time is up).
 */
export function withDatabase<T>(ctx: OperationContext, work: (sql: Sql) => Promise<T>): Promise<T> {
  return withRetry(() => ctx.database.run(work, ctx.deadline, ctx.now), {
    ...ctx.retry,
    deadline: ctx.deadline,
    now: ctx.now,
    onRetry: (error, attempt, delayMs) => ctx.logger.warn('dead-letter database work failed, retrying', { error, attempt, delayMs }),
  });
}
