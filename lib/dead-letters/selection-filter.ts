import type postgres from 'postgres';
import type { Queryable } from '../postgres/client';
import type { Selection } from './request';

/**
 * The selection as SQL conditions on dead_letters, each starting with `and`, for `where true ${filter}`. Values
 * travel as parameters; only the fixed column names are SQL text.
 */
export function selectionFilter(sql: Queryable, s: Selection): postgres.PendingQuery<postgres.Row[]> {
  const empty = sql``;
  return sql`
    ${s.ids ? sql`and id = any(${s.ids}::bigint[])` : empty}
    ${s.reasons ? sql`and reason = any(${s.reasons}::text[])` : empty}
    ${s.from ? sql`and created_at >= ${s.from}::timestamptz` : empty}
    ${s.to ? sql`and created_at < ${s.to}::timestamptz` : empty}
    ${s.topic ? sql`and kafka_topic = ${s.topic}` : empty}
    ${s.partition === undefined ? empty : sql`and kafka_partition = ${s.partition}`}
    ${s.offsetFrom === undefined ? empty : sql`and kafka_offset >= ${s.offsetFrom}`}
    ${s.offsetTo === undefined ? empty : sql`and kafka_offset <= ${s.offsetTo}`}
    ${s.traceId ? sql`and trace_id = ${s.traceId}` : empty}`;
}
