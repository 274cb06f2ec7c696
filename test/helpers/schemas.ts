import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeCatalog } from '../../scripts/db/catalog';
import type { Sql } from '../../lib/postgres/client';
import { applySchema, MIGRATIONS_DIR, readMigrations } from '../../scripts/db/migrations';
import { VERSION_TABLE } from '../../lib/postgres/table-names';

/** Every migration in migrations/, and the newest version: the upgrade tests cover whatever the folder holds. */
export const MIGRATIONS = readMigrations();
export const NEWEST = MIGRATIONS.length;

const FIXTURES = join(__dirname, '..', 'fixtures', 'schema-rows');

/**
 * Creates and drops the schemas of one test file, on `sql`'s server, and the temporary migration folders it uses.
 */
export function schemaWorkspace(sql: Sql) {
  const schemas: string[] = [];
  const folders: string[] = [];
  return {
    /** A new schema name, dropped by `cleanUp`. */
    name(): string {
      const schema = `m_${randomBytes(5).toString('hex')}`;
      schemas.push(schema);
      return schema;
    },
    /** A temporary folder with migrations 0001..`upTo` from migrations/ and `extra` files (name to SQL). */
    folder(upTo: number = NEWEST, extra: Record<string, string> = {}): string {
      const dir = mkdtempSync(join(tmpdir(), 'trace-migrations-'));
      folders.push(dir);
      for (const m of MIGRATIONS.slice(0, upTo)) copyFileSync(join(MIGRATIONS_DIR, m.file), join(dir, m.file));
      for (const [file, text] of Object.entries(extra)) writeFileSync(join(dir, file), text);
      return dir;
    },
    async cleanUp(): Promise<void> {
      for (const schema of schemas) await sql`drop schema if exists ${sql(schema)} cascade`;
      for (const dir of folders) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The name of the row fixture that fills the tables new at `version`. */
export const fixtureFile = (version: number) => join(FIXTURES, `${String(version).padStart(4, '0')}.sql`);

/** Runs SQL text (a fixture, an old schema file) with search_path set to `schema`, in one transaction. */
export async function runIn(sql: Sql, schema: string, text: string): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`select set_config('search_path', ${schema}, true)`;
    await tx.unsafe(text);
  });
}

/**
 * A schema at `version` holding rows: migrated one version at a time, each version's fixture run right after its
 * migration, as rows would have arrived while that version was deployed.
 */
export async function schemaAtVersion(
  sql: Sql,
  workspace: ReturnType<typeof schemaWorkspace>,
  version: number,
): Promise<string> {
  const schema = workspace.name();
  for (let v = 1; v <= version; v++) {
    await applySchema(sql, schema, workspace.folder(v));
    if (existsSync(fixtureFile(v))) await runIn(sql, schema, readFileSync(fixtureFile(v), 'utf8'));
  }
  return schema;
}

export async function catalogOf(sql: Sql, schema: string): Promise<string[]> {
  return sql.begin((tx) => describeCatalog(tx, schema));
}

export async function versionRows(sql: Sql, schema: string) {
  return sql<{ version: number; name: string; compatible: boolean }[]>`
    select version, name, compatible from ${sql(`${schema}.${VERSION_TABLE}`)} order by version`;
}

/** Every table's columns (name to type) and rows (as sorted JSON text), the version table left out. */
export async function tableData(
  sql: Sql,
  schema: string,
): Promise<Map<string, { columns: Map<string, string>; rows: Record<string, unknown>[] }>> {
  const columns = await sql<{ table_name: string; column_name: string; type: string }[]>`
    select c.relname as table_name, a.attname as column_name, format_type(a.atttypid, a.atttypmod) as type
    from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = ${schema} and c.relkind = 'r' and a.attnum > 0 and not a.attisdropped
      and c.relname <> ${VERSION_TABLE}
    order by 1, 2`;
  const data = new Map<string, { columns: Map<string, string>; rows: Record<string, unknown>[] }>();
  for (const c of columns) {
    if (!data.has(c.table_name)) data.set(c.table_name, { columns: new Map(), rows: [] });
    data.get(c.table_name)!.columns.set(c.column_name, c.type);
  }
  for (const [table, entry] of data) {
    const rows = await sql<
      { row: Record<string, unknown> }[]
    >`select to_jsonb(t) as row from ${sql(`${schema}.${table}`)} t`;
    entry.rows = rows.map((r) => r.row);
  }
  return data;
}

/**
 * What an upgrade lost: for every table before it, the rows of the columns that still exist with the same type
 * after it must be the same rows. Columns a migration dropped or converted are its own test's business.
 */
export function lostData(
  before: Awaited<ReturnType<typeof tableData>>,
  after: Awaited<ReturnType<typeof tableData>>,
): string[] {
  const problems: string[] = [];
  for (const [table, old] of before) {
    const now = after.get(table);
    if (!now) {
      problems.push(`table ${table} is gone`);
      continue;
    }
    const kept = [...old.columns].filter(([name, type]) => now.columns.get(name) === type).map(([name]) => name);
    const project = (rows: Record<string, unknown>[]) => rows.map((r) => JSON.stringify(kept.map((k) => r[k]))).sort();
    const a = project(old.rows);
    const b = project(now.rows);
    if (JSON.stringify(a) !== JSON.stringify(b))
      problems.push(`${table}: ${a.length} rows before, ${b.length} after, or their values changed`);
  }
  return problems;
}
