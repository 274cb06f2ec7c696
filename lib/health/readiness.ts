import type { Database } from '../postgres/database';
import type { Queryable } from '../postgres/client';
import { runInTransaction } from '../postgres/retry';
import { raceDeadline } from '../deadline';
import { publicReason } from '../postgres/diagnose-failure';
import { HealthCheckTimeoutError, OutOfTimeError, SchemaMissingError, SchemaVersionError } from '../errors';
import { errorCode } from '../postgres/failure-kind';
import { checkSchemaVersion } from '../postgres/schema-version-gate';
import { CONSUMER_TABLES, tableName } from '../postgres/table-names';

/*
 * Readiness and freshness, for uptime monitors and dashboards. Answers say which check failed and why in words a
 * person can act on, never a connection string, a password or a stack trace.
 */

interface CheckResult {
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
  /** Milliseconds each check may take (HEALTH_TIMEOUT_MS). */
  timeoutMs: number;
  /** Resolves the database credentials (from Secrets Manager, when configured); throws when they cannot be had. */
  resolveCredentials: () => Promise<unknown>;
}

/**
 * Can the consumer do its work now? Credentials resolve, the database answers within the timeout, the schema is at
 * a version this code works with (checkSchemaVersion), and every table of the schema exists. Checks run in order; one
 * that cannot run because an earlier one failed is reported as skipped, so the answer always names every check.
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
      await raceDeadline(check(), Date.now() + deps.timeoutMs, () => new HealthCheckTimeoutError(deps.timeoutMs));
      checks.push({ name, ok: true, durationMs: elapsed(started) });
    } catch (error) {
      checks.push({ name, ok: false, durationMs: elapsed(started), error: describeFailure(error) });
    }
  };

  await run('credentials', async () => {
    await deps.resolveCredentials();
  });
  await run('database', async () => {
    await healthQuery(deps.database, deps.timeoutMs, (sql) => sql`select 1`);
  });
  await run('schema', async () => {
    // The version first: a schema that is behind, or not there at all (version 0), needs npm run db:apply.
    await checkSchemaVersion((work) => healthQuery(deps.database, deps.timeoutMs, work), deps.schema);
    const missing = await healthQuery(deps.database, deps.timeoutMs, (sql) => missingTables(sql, deps.schema));
    if (missing.length > 0) throw new SchemaMissingError(missing);
  });
  return {
    status: checks.every((c) => c.ok) ? 'ready' : 'not_ready',
    checkedAt: new Date().toISOString(),
    checks,
  };
}

async function missingTables(sql: Queryable, schema: string): Promise<string[]> {
  const names = CONSUMER_TABLES.map((table) => tableName(schema, table));
  const rows = await sql<{ name: string; found: boolean }[]>`
    select name, to_regclass(name) is not null as found from unnest(${names}::text[]) as t(name)`;
  return rows.filter((r) => !r.found).map((r) => r.name);
}

/**
 * Shares of a health query's time after which the server gives up by itself (lock_timeout, then statement_timeout):
 * its error reaches the client before the client's own timeout fires, and the answer names the cause (a locked
 * table, a slow query) instead of a bare "no answer". The lock wait ends first, so a lock is named as such.
 */
const LOCK_SHARE = 0.6;
const STATEMENT_SHARE = 0.75;

/**
 * Runs one health query so that it cannot hurt the database, whoever calls the public URL how often: in a
 * transaction whose lock_timeout and statement_timeout end the backend's work on the server (shares of the time, so
 * that the server's error, naming the cause, comes first), and under the client's timer, which drops the connection
 * when the server does not answer at all. A request behind a locked table therefore leaves no backend queued for the
 * lock after it gave up: PostgreSQL does not notice a vanished client while a backend waits for a lock, only
 * lock_timeout ends that wait. `timeoutMs` bounds the whole call (fetching the credentials, a reconnect, a re-login):
 * it becomes one deadline. Not retried: a monitor asks again.
 */
export async function healthQuery<T>(
  database: Database,
  timeoutMs: number,
  work: (sql: Queryable) => Promise<T>,
): Promise<T> {
  try {
    return await runInTransaction(database, work, {
      deadline: Date.now() + timeoutMs,
      maxRetries: 0,
      backoffMs: 0,
      // A health query is one short statement: it may start with whatever time is left.
      minAttemptMs: 0,
      timeoutShares: { statement: STATEMENT_SHARE, lock: LOCK_SHARE },
    });
  } catch (error) {
    // The client's timer dropped the silent connection; to a monitor that is "no answer in time".
    if (error instanceof OutOfTimeError) throw new HealthCheckTimeoutError(timeoutMs);
    throw error;
  }
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
  '55P03': 'a table it reads is locked (lock_timeout): the answer is unknown, ask again later',
  '57014': 'the query took too long and was cancelled (statement_timeout): the answer is unknown, ask again later',
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
