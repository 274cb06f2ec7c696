import type { Sql } from '../lib/postgres/client';

/**
 * Server-side time per statement, from pg_stat_statements on the benchmark's own server: reset before a timed
 * batch, read after it, so that each sample holds exactly one batch of one writer. Execution time of a COPY ... FROM
 * STDIN includes receiving its rows, so the client's serialising of COPY lines shows up there too.
 */

/** postgresFlags that load pg_stat_statements into an embedded server, with planning time and utility statements. */
export const STATEMENT_STATS_FLAGS = [
  '-c',
  'shared_preload_libraries=pg_stat_statements',
  '-c',
  'pg_stat_statements.track_planning=on',
  '-c',
  'pg_stat_statements.track_utility=on',
];

/** Milliseconds (planning + execution) per statement kind, e.g. `copy ratings` or `insert course_instructors`. */
export type StatementTimes = Record<string, number>;

export class StatementStats {
  private constructor(
    private readonly admin: Sql,
    readonly available: boolean,
  ) {}

  /** Enables the extension if the server has it loaded; without it, samples are empty and the report says so. */
  static async open(admin: Sql): Promise<StatementStats> {
    try {
      await admin`create extension if not exists pg_stat_statements`;
      await admin`select pg_stat_statements_reset()`;
      return new StatementStats(admin, true);
    } catch {
      return new StatementStats(admin, false);
    }
  }

  async reset(): Promise<void> {
    if (this.available) await this.admin`select pg_stat_statements_reset()`;
  }

  /** What ran since the last reset in `schema` (and the transaction control around it), by statement kind. */
  async read(schema: string): Promise<StatementTimes> {
    if (!this.available) return {};
    const rows = await this.admin<{ query: string; ms: number; calls: number }[]>`
      select query, (total_plan_time + total_exec_time)::float8 as ms, calls::int as calls from pg_stat_statements`;
    const times: StatementTimes = {};
    for (const row of rows) {
      const kind = statementKind(row.query, schema);
      if (kind !== null) times[kind] = (times[kind] ?? 0) + row.ms;
    }
    return times;
  }
}

const TABLE_STATEMENT = /^\s*(insert into|copy|delete from|update|select)\s+(?:"?(\w+)"?\.)?"?(\w+)"?/i;

/**
 * A short name for a statement: transaction control by its verb, table statements by verb and table. Statements on
 * other schemas (the other writers, the benchmark's own bookkeeping) are left out.
 */
function statementKind(query: string, schema: string): string | null {
  const text = query.trim().toLowerCase();
  if (text === 'begin' || text === 'commit') return text;
  if (text.startsWith('select set_config')) return 'statement timeout';
  const m = TABLE_STATEMENT.exec(text);
  if (!m || m[2] !== schema.toLowerCase()) return null;
  return `${m[1]!.split(' ')[0]} ${m[3]}`;
}
