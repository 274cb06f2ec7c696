import type { Database } from '../postgres/database';
import type { Logger } from '../log';
import type { RetryOptions } from '../postgres/retry';

/** What every dead-letter operation needs: the database, where the tables are, and how its work is run there. */
export interface OperationContext {
  database: Database;
  schema: string;
  logger: Logger;
  /**
   * For runWithRetry and runInTransaction (lib/postgres/retry.ts): retries, the invocation's one deadline (its end
   * less TIME_RESERVE_MS) with its clock, and the log line of a retry. The work is run as the consumer runs a batch.
   */
  attempts: RetryOptions & { now: () => number };
}
