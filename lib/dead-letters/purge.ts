import type { OperationContext } from './operation-context';
import { runInTransaction, runWithRetry } from '../postgres/retry';
import { timeLeft } from '../deadline';
import type { PurgeRequest } from './request';
import type { Queryable } from '../postgres/client';
import { selectionFilter } from './selection-filter';
import { tableIdentifiers } from '../postgres/table-names';

export interface PurgeReport {
  dryRun: boolean;
  /** Dead letters deleted, or that would be deleted by a dry run. */
  purged: number;
  byReason: Record<string, number>;
  /** False when the invocation ran out of time or reached `limit` first; run it again to go on. */
  done: boolean;
}

/** Redrive results after which a dead letter has nothing left to tell: its record reached a final state. */
const SETTLED = ['stored', 'duplicate', 'superseded', 'upstream_error'];

/**
 * Deletes the selected dead letters that match the purge criteria (settled by a redrive, older than the retention
 * period, or named by id), in batches of `batchSize`, each its own transaction, while time remains and until
 * `limit` are gone. Rows another session holds (a redrive in progress) are skipped. A dry run counts what would go
 * (at most `limit`) and deletes nothing. A batch whose COMMIT answer was lost, and whose outcome could not be learnt,
 * is not run again (CommitUnknownError): it would delete a further batch, past `limit`, and count one.
 */
export async function purge(ctx: OperationContext, request: PurgeRequest): Promise<PurgeReport> {
  const matches = (sql: Queryable) => sql`
    where true ${selectionFilter(sql, request)}
    ${request.redriven ? sql`and redrive_result = any(${SETTLED}::text[])` : sql``}
    ${
      request.olderThanDays === undefined
        ? sql``
        : sql`and created_at < now() - make_interval(days => ${request.olderThanDays})`
    }`;
  const report: PurgeReport = { dryRun: request.dryRun, purged: 0, byReason: {}, done: false };
  const add = (rows: readonly { reason: string; n: number }[]) => {
    for (const { reason, n } of rows) {
      report.byReason[reason] = (report.byReason[reason] ?? 0) + n;
      report.purged += n;
    }
  };

  const limit = request.limit ?? Infinity;
  if (request.dryRun) {
    add(
      await runWithRetry(
        ctx.database,
        (sql) => sql<{ reason: string; n: number }[]>`
        select reason, count(*)::int as n from (
          select reason from ${tableIdentifiers(sql, ctx.schema).dead_letters} ${matches(sql)} order by id
          ${limit === Infinity ? sql`` : sql`limit ${limit}`}
        ) as doomed group by reason order by reason`,
        ctx.attempts,
      ),
    );
    report.done = report.purged < limit;
    return report;
  }
  while (timeLeft(ctx.attempts.deadline, ctx.attempts.now) > 0) {
    const size = Math.min(request.batchSize, limit - report.purged);
    if (size <= 0) break;
    const deleted = await runInTransaction(
      ctx.database,
      (tx) => {
        const table = tableIdentifiers(tx, ctx.schema).dead_letters;
        return tx<{ reason: string; n: number }[]>`
          with doomed as (
            select id from ${table} ${matches(tx)} order by id limit ${size} for update skip locked
          ), gone as (
            delete from ${table} d using doomed where d.id = doomed.id returning d.reason
          )
          select reason, count(*)::int as n from gone group by reason`;
      },
      { ...ctx.attempts, onUnknownCommit: { stop: 'a purge batch' } },
    );
    add(deleted);
    if (deleted.reduce((sum, r) => sum + r.n, 0) < size) {
      report.done = true;
      break;
    }
  }
  report.byReason = Object.fromEntries(Object.entries(report.byReason).sort(([a], [b]) => (a < b ? -1 : 1)));
  return report;
}
