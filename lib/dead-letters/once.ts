import type postgres from 'postgres';
import { inTransaction } from '../db';
import { CommitUnknownError } from '../errors';
import { withDatabase, type OperationContext } from './context';

/**
 * Runs `work` in one transaction, retried as withDatabase retries, but never done twice. A retry after a broken
 * connection would otherwise run the work again even when the first COMMIT reached the server and only its answer
 * was lost: a redrive batch would then mark a second set of letters (past `limit`) and report one set, a purge
 * delete a second batch and count one. So the transaction's id is read first, and before any retry of work whose
 * COMMIT was sent, PostgreSQL is asked what became of it (txid_status): committed means the work's result stands
 * and is returned; aborted means nothing of it happened, and it runs again.
 */
export function inTransactionOnce<T>(ctx: OperationContext, what: string, work: (tx: postgres.ReservedSql) => Promise<T>): Promise<T> {
  let sent: { xid: string; result: T } | undefined;
  return withDatabase(ctx, async (sql) => {
    if (sent) {
      if ((await commitStatus(sql, sent.xid, ctx, what)) === 'committed') return sent.result;
      sent = undefined;
    }
    return inTransaction(sql, async (tx) => {
      const [row] = await tx<{ xid: string }[]>`select txid_current()::text as xid`;
      const result = await work(tx);
      sent = { xid: row!.xid, result }; // from here on the COMMIT may reach the server whatever the client hears
      return result;
    });
  });
}

/** How often to ask again while the old backend has not yet noticed that its client is gone. */
const POLL_MS = 20;

/**
 * Committed or aborted, once the transaction has ended. It is 'in progress' until the old backend notices that its
 * client left (at once, for a closed socket) or finishes the COMMIT it received; its locks keep the rows meanwhile.
 */
async function commitStatus(sql: postgres.Sql, xid: string, ctx: OperationContext, what: string): Promise<'committed' | 'aborted'> {
  for (;;) {
    const [row] = await sql<{ status: string | null }[]>`select txid_status(${xid}::bigint) as status`;
    if (row?.status === 'committed' || row?.status === 'aborted') return row.status;
    if (row?.status !== 'in progress' || ctx.remainingMs() <= POLL_MS) throw new CommitUnknownError(what);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
