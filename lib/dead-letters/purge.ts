import type { OperationContext } from './operation-context';
import { runInTransaction } from '../postgres/retry';
import type { PurgeRequest } from './request';
import type { Queryable } from '../postgres/client';
import { selectionFilter } from './selection-filter';
import { tableIdentifiers } from '../postgres/table-names';
import { inBatches } from './in-batches';
import { SETTLED, unresolved } from './resolution';

export interface PurgeReport {
  dryRun: boolean;
  /** Dead letters deleted, or that would be deleted by a dry run. */
  purged: number;
  byReason: Record<string, number>;
  /** False when the invocation ran out of time or reached `limit` first; run it again to go on. */
  done: boolean;
  /** The last dead letter id a committed batch reached: pass it as `after` to resume (a dry run needs it). */
  cursor: number;
}

/**
 * Deletes the selected dead letters that match the purge criteria (settled by a redrive, resolved by a stored report,
 * older than the retention period, or named by id), in batches of `batchSize`, each its own transaction, while time
 * remains and until `limit` are gone (inBatches). Rows another session holds (a redrive in progress) are skipped. A
 * dry run counts what would go (at most `limit`), in batches of the same size, and deletes nothing. A batch whose
 * COMMIT answer was lost, and whose outcome could not be learnt, is not run again (CommitUnknownError): it would
 * delete a further batch, past `limit`, and count one.
 */
export async function purge(ctx: OperationContext, request: PurgeRequest): Promise<PurgeReport> {
  const matches = (sql: Queryable, after: number) => sql`
    where id > ${after} ${selectionFilter(sql, request)}
    ${request.redriven ? sql`and d.redrive_result = any(${SETTLED}::text[])` : sql``}
    ${request.resolved ? sql`and not (${unresolved(sql, ctx.schema)})` : sql``}
    ${
      request.olderThanDays === undefined
        ? sql``
        : sql`and created_at < now() - make_interval(days => ${request.olderThanDays})`
    }`;
  const report: PurgeReport = { dryRun: request.dryRun, purged: 0, byReason: {}, done: false, cursor: request.after };
  const run = await inBatches(ctx, { ...request, what: 'purge' }, async (after, size) => {
    const rows = await runInTransaction(
      ctx.database,
      (tx) => {
        const table = tableIdentifiers(tx, ctx.schema).dead_letters;
        // A dry run reads the batch a real one would delete (without locking it); each batch ends at its last id.
        const chosen = request.dryRun
          ? tx`select id, reason from ${table} d ${matches(tx, after)} order by id limit ${size}`
          : tx`delete from ${table} d using (
              select id from ${table} d ${matches(tx, after)} order by id limit ${size} for update skip locked
            ) as doomed where d.id = doomed.id returning d.id, d.reason`;
        return tx<{ reason: string; n: number; last: string }[]>`
          with chosen as (${chosen})
          select reason, count(*)::int as n, max(id)::text as last from chosen group by reason`;
      },
      request.dryRun ? ctx.attempts : { ...ctx.attempts, onUnknownCommit: { stop: 'a purge batch' } },
    );
    let handled = 0;
    for (const { reason, n } of rows) {
      report.byReason[reason] = (report.byReason[reason] ?? 0) + n;
      handled += n;
    }
    report.purged += handled;
    const last = rows.reduce((max, r) => Math.max(max, Number(r.last)), 0);
    return { handled, selected: handled, lastId: last === 0 ? null : last };
  });
  report.byReason = Object.fromEntries(Object.entries(report.byReason).sort(([a], [b]) => (a < b ? -1 : 1)));
  return { ...report, ...run };
}
