import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { catalogDifferences, describeCatalog } from './catalog';
import { inTransaction, type Queryable, type Sql } from '../../lib/postgres/client';
import { tableIdentifiers, VERSION_TABLE } from '../../lib/postgres/table-names';
import { MigrationError } from '../errors';
import { describeDatabaseError } from '../../lib/postgres/failure-kind';

/*
 * The migration runner behind npm run db:apply, the tests and npm start (never the Lambda functions). Why our own
 * and not a library: see docs/schema-upgrades.md. In short, each migration runs in its own transaction under a
 * per-schema advisory lock, in a schema chosen at run time, and the version table records whether each migration
 * is compatible with older code, which the consumer reads to allow a rollback.
 */

export const MIGRATIONS_DIR = join(__dirname, '..', '..', 'migrations');

const FILE_NAME = /^(\d{4})_([a-z0-9_]+)\.sql$/;
const COMPATIBLE = /^--\s*compatible:\s*true$/;
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

export interface Migration {
  version: number;
  name: string;
  file: string;
  /** The header declares `-- compatible: true`: code built for the previous version still works at this one. */
  compatible: boolean;
  /** SHA-256 of the file, recorded when applied, so that a file edited afterwards is noticed. */
  checksum: string;
  sql: string;
}

/** The migrations in `dir`, in order; throws when a file is misnamed or the numbers have a gap or a repeat. */
export function readMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  let files: string[];
  try {
    files = readdirSync(dir)
      .filter((f) => f.endsWith('.sql'))
      .sort();
  } catch (error) {
    throw new MigrationError(
      `The migrations folder ${dir} cannot be read: run from a checkout of the project, or name the right folder.`,
      { cause: error },
    );
  }
  const migrations = files.map((file): Migration => {
    const match = FILE_NAME.exec(file);
    if (!match)
      throw new MigrationError(
        `${join(dir, file)} is not named NNNN_snake_case.sql: rename it (for example 0004_add_index.sql) or ` +
          `move it out of the folder.`,
      );
    const sql = readFileSync(join(dir, file), 'utf8');
    return {
      version: Number(match[1]),
      name: match[2]!,
      file,
      compatible: headerLines(sql).some((l) => COMPATIBLE.test(l)),
      checksum: sha256(sql),
      sql,
    };
  });
  if (migrations.length === 0)
    throw new MigrationError(
      `${dir} holds no migrations: run from a checkout of the project, or name the right folder.`,
    );
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) {
      throw new MigrationError(
        `${m.file} should be number ${String(i + 1).padStart(4, '0')}: migrations are numbered from 0001 ` +
          `without gaps or repeats; renumber the file.`,
      );
    }
  });
  return migrations;
}

/** The comment lines a file starts with (blank lines allowed), where `-- compatible: true` is looked for. */
function headerLines(text: string): string[] {
  const lines: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (!line.startsWith('--')) break;
    lines.push(line);
  }
  return lines;
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

export interface MigrateResult {
  /** The version before this run (0: an empty schema). */
  from: number;
  /** The version after this run. Above the newest migration here when newer code migrated the database. */
  to: number;
  applied: Migration[];
  /** The schema held tables from before versioned migrations, equal to version 1, and was recorded as version 1. */
  baselined: boolean;
}

interface AppliedRow {
  version: number;
  name: string;
  checksum: string | null;
}

/**
 * Brings `schema` to the newest migration in `dir`: creates the schema and its version table if missing, then
 * applies each pending migration in a transaction of its own, with search_path set to the schema, and records it.
 * Every transaction first takes the schema's advisory lock and reads the version again, so concurrent appliers
 * apply each migration once. A migration that fails is rolled back whole and stops the run; the ones before it
 * stay applied. Applied migrations are never applied again, and one whose file changed since is refused.
 */
export async function applySchema(sql: Sql, schema: string, dir: string = MIGRATIONS_DIR): Promise<MigrateResult> {
  if (!IDENTIFIER.test(schema))
    throw new MigrationError(`"${schema}" is not a lower-case identifier: set DB_SCHEMA to one ([a-z_][a-z0-9_]*).`);
  const migrations = readMigrations(dir);

  const { from, baselined } = await underLock(sql, schema, async (tx) => {
    // Not CREATE SCHEMA IF NOT EXISTS: PostgreSQL checks the right to create schemas before it looks, and a
    // migrating user that owns an existing schema need not have that right.
    const [found] = await tx<
      { exists: boolean }[]
    >`select exists (select 1 from pg_namespace where nspname = ${schema}) as exists`;
    if (!found?.exists) await tx`create schema ${tx(schema)}`;
    // The same definition as in schema.sql; the catalog test keeps the two equal.
    await tx`
      create table if not exists ${tableIdentifiers(tx, schema)[VERSION_TABLE]} (
        version    integer PRIMARY KEY,
        name       text NOT NULL,
        compatible boolean NOT NULL,
        checksum   text,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`;
    let applied = await tx<
      AppliedRow[]
    >`select version, name, checksum from ${tableIdentifiers(tx, schema)[VERSION_TABLE]} order by version`;
    let baselined = false;
    if (applied.length === 0 && (await holdsTables(tx, schema))) {
      await baseline(tx, schema, migrations[0]!);
      baselined = true;
      applied = await tx<
        AppliedRow[]
      >`select version, name, checksum from ${tableIdentifiers(tx, schema)[VERSION_TABLE]} order by version`;
    }
    verifyApplied(applied, migrations, schema);
    return { from: applied.at(-1)?.version ?? 0, baselined };
  });

  const applied: Migration[] = [];
  let to = from;
  for (const migration of migrations.filter((m) => m.version > from)) {
    to = await underLock(sql, schema, async (tx) => {
      const [row] = await tx<
        { version: number }[]
      >`select coalesce(max(version), 0)::int as version from ${tableIdentifiers(tx, schema)[VERSION_TABLE]}`;
      const current = row?.version ?? 0;
      if (current >= migration.version) return current; // another applier got here first
      await tx`select set_config('search_path', ${schema}, true)`;
      try {
        await tx.unsafe(migration.sql);
      } catch (error) {
        throw new MigrationError(
          `Migration ${migration.file} failed on schema "${schema}": ${describeDatabaseError(error)}. ` +
            `It was rolled back whole; the schema stays at version ${current}. Fix the migration or the data it ` +
            `trips on, then run npm run db:apply again.`,
          { cause: error },
        );
      }
      await tx`
        insert into ${tableIdentifiers(tx, schema)[VERSION_TABLE]} (version, name, compatible, checksum)
        values (${migration.version}, ${migration.name}, ${migration.compatible}, ${migration.checksum})`;
      applied.push(migration);
      return migration.version;
    });
  }
  return { from, to: Math.max(to, from), applied, baselined };
}

/** Runs `work` in a transaction that holds the schema's advisory lock until it ends. */
function underLock<T>(sql: Sql, schema: string, work: (tx: Queryable) => Promise<T>): Promise<T> {
  return inTransaction(sql, async (tx) => {
    await tx`select pg_advisory_xact_lock(hashtext(${'trace-consumer schema ' + schema}))`;
    return work(tx);
  });
}

async function holdsTables(tx: Queryable, schema: string): Promise<boolean> {
  const [row] = await tx<{ found: boolean }[]>`
    select exists (
      select 1 from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = ${schema} and c.relkind in ('r', 'p') and c.relname <> ${VERSION_TABLE}
    ) as found`;
  return row?.found ?? false;
}

/**
 * A schema created by schema.sql before migrations were versioned has the tables but no version table. When its
 * structure equals what migration 0001 builds (built as temporary tables and rolled back), it is recorded as
 * version 1 and upgraded from there; otherwise nothing is changed and the differences are reported.
 */
async function baseline(tx: Queryable, schema: string, first: Migration): Promise<void> {
  // The scratch tables are the session's temporary ones: creating them needs no right to create schemas.
  await tx`savepoint baseline_check`;
  await tx`select set_config('search_path', 'pg_temp', true)`;
  await tx.unsafe(first.sql);
  const [scratch] = await tx<
    { name: string }[]
  >`select nspname as name from pg_namespace where oid = pg_my_temp_schema()`;
  const expected = await describeCatalog(tx, scratch!.name, [VERSION_TABLE]);
  await tx`rollback to savepoint baseline_check`;
  const actual = await describeCatalog(tx, schema, [VERSION_TABLE]);
  const differences = catalogDifferences(expected, actual);
  if (differences.length > 0) {
    throw new MigrationError(
      `Schema "${schema}" holds tables but no ${VERSION_TABLE} table, and they differ from what ${first.file} ` +
        `creates ("-" expected, "+" found):\n  ${differences.slice(0, 20).join('\n  ')}\n` +
        `Nothing was changed. Bring the tables in line with ${first.file} (or move them to another schema), ` +
        `then run npm run db:apply again.`,
    );
  }
  await tx`
    insert into ${tableIdentifiers(tx, schema)[VERSION_TABLE]} (version, name, compatible, checksum)
    values (${first.version}, ${first.name}, ${first.compatible}, ${first.checksum})`;
}

/** Each applied migration must still be the file it was: same name, and same content where a checksum was recorded. */
function verifyApplied(applied: readonly AppliedRow[], migrations: readonly Migration[], schema: string): void {
  for (const row of applied) {
    const migration = migrations[row.version - 1];
    if (!migration) continue; // applied by newer code; this checkout does not know it
    if (migration.name !== row.name || (row.checksum !== null && row.checksum !== migration.checksum)) {
      throw new MigrationError(
        `Migration ${migration.file} changed after it was applied to schema "${schema}" (applied as "${row.name}", ` +
          `checksum ${row.checksum ?? 'not recorded'}). Applied migrations are never edited: restore the file ` +
          `as it was and put the change in a new migration, then run npm run db:apply again.`,
      );
    }
  }
}
