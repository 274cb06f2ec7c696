/** The tables the consumer writes, as `schema.table` names for postgres.js identifiers. */
export const TABLES = [
  'instructors',
  'courses',
  'course_instructors',
  'ratings',
  'comments',
  'processed_traces',
  'dead_letters',
] as const;

export type Table = (typeof TABLES)[number];

export function qualifiedTables(schema: string): Record<Table, string> {
  return Object.fromEntries(TABLES.map((t) => [t, `${schema}.${t}`])) as Record<Table, string>;
}
