import type { Database } from '../postgres/database';
import type { Logger } from '../log';
import type { TransactionOptions } from '../postgres/retry';

/** What every dead-letter operation needs: the database, where the tables are, and how its work is run there. */
export interface OperationContext {
  database: Database;
  schema: string;
  logger: Logger;
  /**
   * For runInTransaction (lib/postgres/retry.ts): retries, the invocation's one deadline (its end less
   * TIME_RESERVE_MS) with its clock, the server-side timeouts as shares of the time left (ACTION_TIMEOUTS), and the
   * log line of a retry. Every statement of an action runs so, reads included.
   */
  attempts: TransactionOptions & { now: () => number };
}

/**
 * The server-side timeouts of every transaction of a dead-letter action, as shares of the time left when it starts:
 * lock_timeout, then statement_timeout, both before the deadline at which the client drops the connection.
 * PostgreSQL does not notice a vanished client while its backend waits for a lock, so without them a read queued
 * behind a migration's ALTER TABLE (or a VACUUM FULL) kept its backend, and a connection slot, after the invocation
 * gave up, and then ran the query for nobody. The lock wait ends first, so that a locked table is named as such
 * (55P03); the consumer's schema check uses the same shares (lib/postgres/schema-version-gate.ts).
 */
export const ACTION_TIMEOUTS = { statement: 0.9, lock: 0.25 };
