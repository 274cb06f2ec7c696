import type postgres from 'postgres';
import { inTransaction } from '../postgres/client';
import { CommitUnconfirmedError, CommitUnknownError } from '../errors';
import { withDatabase, type OperationContext } from './operation-context';

/**
 * Runs `work` in one transaction, retried as withDatabase retries, but never done twice. When a COMMIT's answer is
 * lost, Database.run asks PostgreSQL what became of the transaction (txid_status) and answers with the work's result
 * when it committed. Only when that cannot be learnt in time does the error come up here; the consumer may then run
 * its batch again (the trace-id claims keep it exactly once), but a redrive batch would mark a second set of letters
 * (past `limit`) and report one set, a purge delete a second batch and count one. So the retry stops there and the
 * operator is told to run the action again, which skips what committed.
 */
export function inTransactionOnce<T>(ctx: OperationContext, what: string, work: (tx: postgres.ReservedSql) => Promise<T>): Promise<T> {
  let unconfirmed: CommitUnconfirmedError | undefined;
  return withDatabase(ctx, async (sql) => {
    if (unconfirmed) throw new CommitUnknownError(what, unconfirmed);
    try {
      return await inTransaction(sql, work);
    } catch (error) {
      if (error instanceof CommitUnconfirmedError) unconfirmed = error;
      throw error;
    }
  });
}
