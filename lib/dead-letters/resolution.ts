import type postgres from 'postgres';
import type { Queryable } from '../postgres/client';
import { tableIdentifiers } from '../postgres/table-names';

/*
 * When a dead letter needs no one any more. Computed from what is stored, never kept in a column of its own, so that it
 * can never disagree with processed_traces: a dead letter is resolved when a redrive settled it (SETTLED), or when its
 * trace id is in processed_traces, stored by the consumer (a corrected report republished by the producer) or by the
 * redrive of another dead letter. Whichever came first: once a trace id is processed, a redrive of the letter could
 * only answer `duplicate` (exactly once per trace id). Dead letters without a trace id (unreadable records) are
 * resolved only by a redrive. The statements below read dead_letters as `d`.
 */

/** Redrive results after which a dead letter has nothing left to tell: its record reached a final state. */
export const SETTLED = ['stored', 'duplicate', 'superseded', 'upstream_error'];

/** True for a dead letter `d` whose trace id is in processed_traces: one index probe of its primary key. */
export function resolvedByReport(sql: Queryable, schema: string): postgres.PendingQuery<postgres.Row[]> {
  return sql`exists (select from ${tableIdentifiers(sql, schema).processed_traces} p where p.trace_id = d.trace_id)`;
}

/** True for a dead letter `d` that still needs a person: neither settled by a redrive nor resolved by a report. */
export function unresolved(sql: Queryable, schema: string): postgres.PendingQuery<postgres.Row[]> {
  return sql`(d.redrive_result is null or d.redrive_result <> all(${SETTLED}::text[]))
    and not ${resolvedByReport(sql, schema)}`;
}
