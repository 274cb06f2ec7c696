import type { Database } from '../database';
import type { Sql } from '../db';
import type { Logger } from '../log';
import { withRetry } from '../retry';

/** What every dead-letter operation needs: the database, where the tables are, and how much time is left. */
export interface OperationContext {
  database: Database;
  schema: string;
  logger: Logger;
  retry: { maxRetries: number; backoffMs: number };
  /** Milliseconds that may still be spent (the invocation's remaining time less TIME_RESERVE_MS). */
  remainingMs: () => number;
}

/** How long after the statement timeout the client gives up on a silent connection (as the consumer does). */
const DEADLINE_GRACE_MS = 250;

/**
 * Runs `work` on the database as the consumer runs a batch: transient failures retried with backoff, and no attempt
 * allowed to outlast the invocation (a silent connection is dropped when the remaining time is up).
 */
export function withDatabase<T>(ctx: OperationContext, work: (sql: Sql) => Promise<T>): Promise<T> {
  return withRetry(() => ctx.database.run(work, ctx.remainingMs() + DEADLINE_GRACE_MS), {
    ...ctx.retry,
    remainingMs: ctx.remainingMs,
    onRetry: (error, attempt, delayMs) => ctx.logger.warn('dead-letter database work failed, retrying', { error, attempt, delayMs }),
  });
}
