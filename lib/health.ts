import type { Database } from './database';
import type { Sql } from './db';
import { qualifiedTables } from './db';
import { publicReason } from './diagnose';
import { HealthCheckTimeoutError, SchemaMissingError, SchemaVersionError } from './errors';
import { errorCode } from './retry';
import { readAppliedMigrations, verifySchemaVersion } from './schema-check';

/*
 * Readiness and freshness, for uptime monitors and dashboards. Answers say which check failed and why in words a
 * person can act on, never a connection string, a password or a stack trace.
 */

export interface CheckResult {
  name: 'credentials' | 'database' | 'schema';
  ok: boolean;
  durationMs: number;
  /** Why the check failed, safe to show to anyone who can reach the endpoint. */
  error?: string;
}

export interface Readiness {
  status: 'ready' | 'not_ready';
  checkedAt: string;
  checks: CheckResult[];
}

export interface ReadinessDependencies {
  database: Database;
  schema: string;
  timeoutMs: number;
  /** Resolves the database credentials (from Secrets Manager, when configured); throws when they cannot be had. */
  resolveCredentials: () => Promise<unknown>;
}

/**
 * Can the consumer do its work now? Credentials resolve, the database answers within the timeout, the schema is at
 * a version this code works with (lib/schema-check.ts), and every table of the schema exists. Checks run in order; one that cannot run because an earlier one failed is reported as
 * skipped, so the answer always names every check.
 */
export async function checkReadiness(deps: ReadinessDependencies): Promise<Readiness> {
  const checks: CheckResult[] = [];
  const run = async (name: CheckResult['name'], check: () => Promise<void>) => {
    if (checks.some((c) => !c.ok)) {
      checks.push({ name, ok: false, durationMs: 0, error: 'skipped: an earlier check failed' });
      return;
    }
    const started = performance.now();
    try {
      await withTimeout(check(), deps.timeoutMs);
      checks.push({ name, ok: true, durationMs: elapsed(started) });
    } catch (error) {
      checks.push({ name, ok: false, durationMs: elapsed(started), error: describeFailure(error) });
    }
  };

  await run('credentials', async () => {
    await deps.resolveCredentials();
  });
  await run('database', async () => {
    await deps.database.run((sql) => sql`select 1`);
  });
  await run('schema', async () => {
    // The version first: a schema that is behind, or not there at all (version 0), needs npm run db:apply.
    verifySchemaVersion(await deps.database.run((sql) => readAppliedMigrations(sql, deps.schema)));
    const missing = await deps.database.run((sql) => missingTables(sql, deps.schema));
    if (missing.length > 0) throw new SchemaMissingError(missing);
  });
  return {
    status: checks.every((c) => c.ok) ? 'ready' : 'not_ready',
    checkedAt: new Date().toISOString(),
    checks,
  };
}

async function missingTables(sql: Sql, schema: string): Promise<string[]> {
  const names = Object.values(qualifiedTables(schema));
  const rows = await sql<{ name: string; found: boolean }[]>`
    select name, to_regclass(name) is not null as found from unnest(${names}::text[]) as t(name)`;
  return rows.filter((r) => !r.found).map((r) => r.name);
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HealthCheckTimeoutError(ms)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const elapsed = (started: number) => Math.round((performance.now() - started) * 10) / 10;

/**
 * Failures that are not setup mistakes (see publicReason), in plain words. Unknown errors are named by code only: their
 * text may hold secrets.
 */
const REASONS: Record<string, string> = {
  ECONNRESET: 'connection reset by the database',
  CONNECTION_CLOSED: 'the database closed the connection',
  CONNECTION_DESTROYED: 'the connection was destroyed',
  CONNECTION_ENDED: 'the client was shut down',
  '57P03': 'the database is starting up or shutting down',
  '53300': 'too many connections',
};

export function describeFailure(error: unknown): string {
  if (error instanceof SchemaVersionError || error instanceof HealthCheckTimeoutError) return error.message;
  const known = publicReason(error);
  if (known) return known;
  const code = errorCode(error);
  if (code && REASONS[code]) return REASONS[code];
  if (code && /^[0-9A-Z]{5}$/.test(code)) return `the database answered with error ${code}`;
  return code ? `failed (${code})` : 'failed';
}

export interface Freshness {
  lastStoredAt: string | null;
  secondsSinceLastStored: number | null;
  stored: { lastHour: number; lastDay: number };
  deadLettered: { lastHour: number; lastDay: number };
  stale: boolean;
  staleAfterSeconds: number | null;
}

/**
 * When the last trace was stored and how much was stored and dead-lettered lately. `stale` is true when nothing
 * was stored for longer than `staleAfterSeconds` (never, when that is null). One round trip, served by the
 * processed_at and created_at indexes.
 */
export async function readFreshness(sql: Sql, schema: string, staleAfterSeconds: number | null): Promise<Freshness> {
  const t = qualifiedTables(schema);
  const [row] = await sql<
    { last_stored_at: Date | null; seconds_since: number | null; stored_hour: number; stored_day: number; dead_hour: number; dead_day: number }[]
  >`
    select last.at as last_stored_at,
      extract(epoch from now() - last.at)::float8 as seconds_since,
      (select count(*)::int from ${sql(t.processed_traces)} where status = 'stored' and processed_at > now() - interval '1 hour') as stored_hour,
      (select count(*)::int from ${sql(t.processed_traces)} where status = 'stored' and processed_at > now() - interval '1 day') as stored_day,
      (select count(*)::int from ${sql(t.dead_letters)} where created_at > now() - interval '1 hour') as dead_hour,
      (select count(*)::int from ${sql(t.dead_letters)} where created_at > now() - interval '1 day') as dead_day
    from (select max(processed_at) as at from ${sql(t.processed_traces)} where status = 'stored') as last`;
  if (!row) throw new Error('The freshness query returned no row.');
  const secondsSince = row.seconds_since === null ? null : Math.round(row.seconds_since);
  return {
    lastStoredAt: row.last_stored_at?.toISOString() ?? null,
    secondsSinceLastStored: secondsSince,
    stored: { lastHour: row.stored_hour, lastDay: row.stored_day },
    deadLettered: { lastHour: row.dead_hour, lastDay: row.dead_day },
    stale: staleAfterSeconds !== null && (secondsSince === null || secondsSince > staleAfterSeconds),
    staleAfterSeconds,
  };
}

/**
 * Reuses a readiness result for `intervalSeconds`, so that however many monitors poll, the database sees at most
 * one check per interval per execution environment. Concurrent callers share one check in flight.
 */
export function cachedReadiness(check: () => Promise<Readiness>, intervalSeconds: number, now: () => number = Date.now) {
  let last: { at: number; result: Readiness } | undefined;
  let inFlight: Promise<Readiness> | undefined;
  return async (): Promise<{ result: Readiness; cached: boolean }> => {
    if (last && now() - last.at < intervalSeconds * 1000) return { result: last.result, cached: true };
    inFlight ??= check().finally(() => (inFlight = undefined));
    const result = await inFlight;
    last = { at: now(), result };
    return { result, cached: false };
  };
}
