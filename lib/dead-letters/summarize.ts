import type { Queryable } from '../postgres/client';
import type { Selection } from './request';
import { selectionFilter } from './selection-filter';
import { tableIdentifiers } from '../postgres/table-names';
import { resolvedByReport, unresolved } from './resolution';

export interface DeadLetterSummary {
  total: number;
  /**
   * Neither settled by a redrive nor resolved by a report stored under their trace id (lib/dead-letters/resolution.ts):
   * what still needs a person.
   */
  unresolved: number;
  /** Resolved by a report stored under their trace id (by the consumer or a redrive), whether redriven or not. */
  resolvedByReport: number;
  oldest: string | null;
  newest: string | null;
  byReason: {
    reason: string;
    letters: number;
    unresolved: number;
    resolvedByReport: number;
    oldest: string;
    newest: string;
  }[];
  /** Per UTC day of created_at, newest day first. */
  byDay: { day: string; letters: number }[];
  byPartition: {
    topic: string;
    partition: number;
    letters: number;
    firstOffset: number;
    lastOffset: number;
    oldest: string;
    newest: string;
  }[];
  /** Outcomes of past redrives; `never` counts those not redriven yet. */
  byRedriveResult: { result: string; letters: number }[];
}

/** Counts of the selected dead letters by reason, day, partition and redrive result; reads only. */
export async function summarizeDeadLetters(
  sql: Queryable,
  schema: string,
  selection: Selection,
): Promise<DeadLetterSummary> {
  const table = tableIdentifiers(sql, schema).dead_letters;
  const where = () => sql`d where true ${selectionFilter(sql, selection)}`;
  // Fresh fragments per use: a fragment is a query object, built into the statement that embeds it.
  const counts = () => sql`count(*) filter (where ${unresolved(sql, schema)})::int as unresolved,
    count(*) filter (where ${resolvedByReport(sql, schema)})::int as "resolvedByReport"`;
  const oldest = () => sql`to_char(min(created_at) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
  const newest = () => sql`to_char(max(created_at) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
  const [[totals], byReason, byDay, byPartition, byRedriveResult] = await Promise.all([
    sql<
      { total: number; unresolved: number; resolvedByReport: number; oldest: string | null; newest: string | null }[]
    >`
      select count(*)::int as total, ${counts()},
        ${oldest()} as oldest, ${newest()} as newest
      from ${table} ${where()}`,
    sql<DeadLetterSummary['byReason']>`
      select reason, count(*)::int as letters, ${counts()},
        ${oldest()} as oldest, ${newest()} as newest
      from ${table} ${where()} group by reason order by letters desc, reason`,
    sql<DeadLetterSummary['byDay']>`
      select to_char(created_at at time zone 'UTC', 'YYYY-MM-DD') as day, count(*)::int as letters
      from ${table} ${where()} group by 1 order by 1 desc`,
    sql<DeadLetterSummary['byPartition']>`
      select kafka_topic as topic, kafka_partition as partition, count(*)::int as letters,
        min(kafka_offset)::float8 as "firstOffset", max(kafka_offset)::float8 as "lastOffset",
        ${oldest()} as oldest, ${newest()} as newest
      from ${table} ${where()} group by 1, 2 order by 1, 2`,
    sql<DeadLetterSummary['byRedriveResult']>`
      select coalesce(redrive_result, 'never') as result, count(*)::int as letters
      from ${table} ${where()} group by 1 order by 2 desc, 1`,
  ]);
  return {
    total: totals?.total ?? 0,
    unresolved: totals?.unresolved ?? 0,
    resolvedByReport: totals?.resolvedByReport ?? 0,
    oldest: totals?.oldest ?? null,
    newest: totals?.newest ?? null,
    byReason: [...byReason],
    byDay: [...byDay],
    byPartition: [...byPartition],
    byRedriveResult: [...byRedriveResult],
  };
}
