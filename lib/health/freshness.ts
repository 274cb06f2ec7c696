import type { Database } from '../postgres/database';
import type { Queryable } from '../postgres/client';
import { tableIdentifiers } from '../postgres/table-names';
import { healthQuery, describeFailure } from './readiness';

interface Freshness {
  lastStoredAt: string | null;
  secondsSinceLastStored: number | null;
  stored: { lastHour: number };
  deadLettered: { lastHour: number };
  stale: boolean;
  staleAfterSeconds: number | null;
}

/**
 * When the last trace was stored and how much was stored and dead-lettered in the last hour. `stale` is true when
 * nothing was stored for longer than `staleAfterSeconds` (never, when that is null). One round trip whose cost does
 * not grow with the table: the last stored trace is the first entry of a backward scan of the processed_at index
 * (almost every row is `stored`, so it stops at once), and the counts read one hour of the processed_at and
 * created_at indexes. Counts over a day would read a day's rows (about 250 ms of database time at 1M traces a
 * day); the daily totals are in the RecordsStored and RecordsDeadLettered metrics instead.
 */
async function readFreshness(sql: Queryable, schema: string, staleAfterSeconds: number | null): Promise<Freshness> {
  const t = tableIdentifiers(sql, schema);
  const [row] = await sql<
    { last_stored_at: Date | null; seconds_since: number | null; stored_hour: number; dead_hour: number }[]
  >`
    select last.at as last_stored_at,
      extract(epoch from now() - last.at)::float8 as seconds_since,
      (select count(*)::int from ${t.processed_traces} where status = 'stored'
        and processed_at > now() - interval '1 hour') as stored_hour,
      (select count(*)::int from ${t.dead_letters} where created_at > now() - interval '1 hour') as dead_hour
    from (select (select processed_at from ${t.processed_traces} where status = 'stored'
      order by processed_at desc limit 1) as at) as last`;
  if (!row) throw new Error('The freshness query returned no row.');
  const secondsSince = row.seconds_since === null ? null : Math.round(row.seconds_since);
  return {
    lastStoredAt: row.last_stored_at?.toISOString() ?? null,
    secondsSinceLastStored: secondsSince,
    stored: { lastHour: row.stored_hour },
    deadLettered: { lastHour: row.dead_hour },
    stale: staleAfterSeconds !== null && (secondsSince === null || secondsSince > staleAfterSeconds),
    staleAfterSeconds,
  };
}

/** A freshness answer as it is cached: the figures, or why they could not be read (failures are cached too). */
export type FreshnessCheck = { checkedAt: string } & (
  | { ok: true; freshness: Freshness }
  | { ok: false; error: string; cause: unknown }
);

/**
 * Reads freshness under the health timeouts (see healthQuery). Never throws: a failure is an answer too, and is
 * cached like one, so that a locked or unreachable database is not asked again by every request.
 */
export async function checkFreshness(
  database: Database,
  schema: string,
  staleAfterSeconds: number | null,
  timeoutMs: number,
): Promise<FreshnessCheck> {
  const checkedAt = new Date().toISOString();
  try {
    return {
      checkedAt,
      ok: true,
      freshness: await healthQuery(database, timeoutMs, (sql) => readFreshness(sql, schema, staleAfterSeconds)),
    };
  } catch (error) {
    return { checkedAt, ok: false, error: describeFailure(error), cause: error };
  }
}
