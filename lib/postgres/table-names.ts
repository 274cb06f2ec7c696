import type postgres from 'postgres';

/*
 * The one way to name a table of the target schema: `tableName` for text (to_regclass, logs, messages) and
 * `tableIdentifiers` for queries (postgres.js quotes each part). Every table is qualified by its schema, so that no
 * query depends on the search_path.
 */

/** The tables the consumer writes; a table comes after those it refers to (empty them in reverse). */
export const CONSUMER_TABLES = [
  'instructors',
  'courses',
  'course_instructors',
  'ratings',
  'comments',
  'processed_traces',
  'dead_letters',
] as const;

/**
 * The table in the target schema where the migration runner (and schema.sql) records each applied migration. The
 * code reads it to know the version; it never needs the migration files, so the Lambda bundles do not carry them.
 */
export const VERSION_TABLE = 'schema_migrations';

type ConsumerTable = (typeof CONSUMER_TABLES)[number];
export type Table = ConsumerTable | typeof VERSION_TABLE;

/** `schema.table`, as text. */
export function tableName(schema: string, table: Table): string {
  return `${schema}.${table}`;
}

/** Every table of `schema` as a postgres.js identifier, for `${t.courses}` in a query. */
export function tableIdentifiers(sql: postgres.ISql, schema: string): Record<Table, postgres.Helper<string, []>> {
  const tables: readonly Table[] = [...CONSUMER_TABLES, VERSION_TABLE];
  return Object.fromEntries(tables.map((table) => [table, sql(tableName(schema, table))])) as Record<
    Table,
    postgres.Helper<string, []>
  >;
}
