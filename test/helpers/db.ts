import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { loadConfig, type Config } from '../../lib/config';
import { applySchema, createSql, type Sql } from '../../lib/db';
import type { DatabaseEnv } from '../../scripts/local-db';

export interface TestDatabase {
  config: Config;
  /** A client for the test's own queries. */
  sql: Sql;
  env: Record<string, string>;
  close(): Promise<void>;
}

/**
 * A fresh schema with schema.sql applied, on the run's PostgreSQL server (or on `database`), so that test files
 * running in parallel never see each other's rows. Retries are fast here so that failure paths finish quickly.
 */
export async function testDatabase(
  extraEnv: Record<string, string> = {},
  database: DatabaseEnv = inject('database'),
): Promise<TestDatabase> {
  const schema = `t_${randomBytes(5).toString('hex')}`;
  const env = {
    ...database,
    DB_SCHEMA: schema,
    MAX_RETRIES: '2',
    RETRY_BACKOFF_MS: '20',
    TIME_RESERVE_MS: '1000',
    LOG_LEVEL: 'error',
    ...extraEnv,
  };
  const config = loadConfig(env);
  const sql = createSql(config.db, { max: 4 });
  await applySchema(sql, schema);
  return {
    config,
    sql,
    env,
    async close() {
      await sql`drop schema if exists ${sql(schema)} cascade`;
      await sql.end({ timeout: 5 });
    },
  };
}

/** Row counts of every table in the test's schema. */
export async function countRows(db: TestDatabase): Promise<Record<string, number>> {
  const schema = db.config.db.schema;
  const counts: Record<string, number> = {};
  for (const table of ['instructors', 'courses', 'course_instructors', 'ratings', 'comments', 'processed_traces', 'dead_letters']) {
    const [row] = await db.sql<{ n: number }[]>`select count(*)::int as n from ${db.sql(`${schema}.${table}`)}`;
    counts[table] = row?.n ?? 0;
  }
  return counts;
}
