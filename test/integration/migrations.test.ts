import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql } from '../../lib/postgres/client';
import { applySchema } from '../../scripts/db/migrations';
import { VERSION_TABLE } from '../../lib/postgres/table-names';
import { testDatabase, type TestDatabase } from '../helpers/db';
import {
  catalogOf,
  fixtureFile,
  lostData,
  MIGRATIONS,
  NEWEST,
  runIn,
  schemaAtVersion,
  schemaWorkspace,
  tableData,
  versionRows,
} from '../helpers/schemas';
import { schemaSql } from '../helpers/schema-file';
import { MigrationError } from '../../scripts/errors';

let db: TestDatabase;
let workspace: ReturnType<typeof schemaWorkspace>;
let newestCatalog: string[];
const oldSchemaFile = readFileSync(join(__dirname, '../fixtures/pre-migration-schema.sql'), 'utf8');
const expectedVersions = MIGRATIONS.map((m) => ({ version: m.version, name: m.name, compatible: m.compatible }));

beforeAll(async () => {
  db = await testDatabase();
  workspace = schemaWorkspace(db.sql);
  const fresh = workspace.name();
  await applySchema(db.sql, fresh);
  newestCatalog = await catalogOf(db.sql, fresh);
});
afterAll(async () => {
  await workspace.cleanUp();
  await db.close();
});

/** Every table except the version table has at least one row, so that an upgrade has data to keep. */
async function expectRowsInEveryTable(schema: string, version: number) {
  for (const [table, { rows }] of await tableData(db.sql, schema)) {
    expect(
      rows.length,
      `table ${table} is empty at version ${version}: add rows for it to ${fixtureFile(version)}`,
    ).toBeGreaterThan(0);
  }
}

describe('upgrading', () => {
  const earlier = Array.from({ length: NEWEST }, (_, v) => v); // 0 (an empty schema) .. NEWEST - 1

  it.each(earlier)(
    'should bring a schema at version %i, with rows in every table, to the newest version with its data',
    async (version) => {
      const schema = await schemaAtVersion(db.sql, workspace, version);
      if (version > 0) await expectRowsInEveryTable(schema, version);
      const before = await tableData(db.sql, schema);

      const result = await applySchema(db.sql, schema);

      expect(result).toMatchObject({ from: version, to: NEWEST, baselined: false });
      expect(result.applied.map((m) => m.version)).toEqual(
        MIGRATIONS.filter((m) => m.version > version).map((m) => m.version),
      );
      expect(lostData(before, await tableData(db.sql, schema))).toEqual([]);
      expect(await catalogOf(db.sql, schema)).toEqual(newestCatalog);
      expect(await versionRows(db.sql, schema)).toEqual(expectedVersions);
    },
  );

  it('should keep the data through a further migration, and notice when one loses rows', async () => {
    const keeps = workspace.folder(NEWEST, {
      [`${String(NEWEST + 1).padStart(4, '0')}_adds_a_column.sql`]:
        "ALTER TABLE courses ADD COLUMN note text NOT NULL DEFAULT 'none';",
    });
    const loses = workspace.folder(NEWEST, {
      [`${String(NEWEST + 1).padStart(4, '0')}_loses_rows.sql`]: 'DELETE FROM comments WHERE response_number = 1;',
    });
    for (const [folder, lost] of [
      [keeps, []],
      [loses, ['comments']],
    ] as const) {
      const schema = await schemaAtVersion(db.sql, workspace, NEWEST);
      await expectRowsInEveryTable(schema, NEWEST);
      const before = await tableData(db.sql, schema);
      await applySchema(db.sql, schema, folder);
      expect((await versionRows(db.sql, schema)).at(-1)?.version).toBe(NEWEST + 1);
      expect(lostData(before, await tableData(db.sql, schema)).map((p) => p.split(':')[0])).toEqual(lost);
    }
  });

  it('should change nothing when applied twice', async () => {
    const schema = await schemaAtVersion(db.sql, workspace, NEWEST);
    const state = async () => ({
      catalog: await catalogOf(db.sql, schema),
      data: JSON.stringify([...(await tableData(db.sql, schema))].map(([t, d]) => [t, d.rows])),
      versions: await db.sql`select * from ${db.sql(`${schema}.${VERSION_TABLE}`)} order by version`,
    });
    const before = await state();
    const again = await applySchema(db.sql, schema);
    expect(again).toMatchObject({ from: NEWEST, to: NEWEST, applied: [], baselined: false });
    expect(await state()).toEqual(before);
  });

  it('should leave the previous version intact when a migration fails, and apply nothing after it', async () => {
    const failing = `${String(NEWEST + 1).padStart(4, '0')}_adds_then_fails.sql`;
    const folder = workspace.folder(NEWEST, {
      [failing]:
        'ALTER TABLE courses ADD COLUMN doomed integer;\nINSERT INTO instructors (name) VALUES ' +
        "('doomed');\nSELECT 1 / 0;\n",
      [`${String(NEWEST + 2).padStart(4, '0')}_after.sql`]: 'CREATE TABLE never_created (x integer);\n',
    });
    const schema = await schemaAtVersion(db.sql, workspace, NEWEST);
    const before = { catalog: await catalogOf(db.sql, schema), data: await tableData(db.sql, schema) };

    const error = await applySchema(db.sql, schema, folder).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(MigrationError);
    expect((error as MigrationError).message).toMatch(
      new RegExp(`^Migration ${failing} failed on schema "${schema}": division by zero \\(SQLSTATE 22012\\)\\.`),
    );
    expect((error as MigrationError).message).toContain(`the schema stays at version ${NEWEST}. Fix the migration`);
    expect(await versionRows(db.sql, schema)).toEqual(expectedVersions);
    expect(await catalogOf(db.sql, schema)).toEqual(before.catalog);
    expect(lostData(before.data, await tableData(db.sql, schema))).toEqual([]);
    const [doomed] =
      await db.sql`select count(*)::int as n from ${db.sql(`${schema}.instructors`)} where name = 'doomed'`;
    expect(doomed?.n).toBe(0);
  });

  it('should apply each migration once when several appliers run at the same time', async () => {
    const schema = workspace.name();
    const clients = Array.from({ length: 4 }, () =>
      createSql(db.config.db, { max: 1, connection: { application_name: 'trace-consumer-tests' } }),
    );
    try {
      const results = await Promise.all(clients.map((sql) => applySchema(sql, schema)));
      expect(results.flatMap((r) => r.applied.map((m) => m.version)).sort((a, b) => a - b)).toEqual(
        MIGRATIONS.map((m) => m.version),
      );
      expect(results.every((r) => r.to === NEWEST)).toBe(true);
    } finally {
      await Promise.all(clients.map((sql) => sql.end({ timeout: 5 })));
    }
    expect(await versionRows(db.sql, schema)).toEqual(expectedVersions);
    expect(await catalogOf(db.sql, schema)).toEqual(newestCatalog);
  });

  it('should refuse to run when an applied migration file was edited afterwards', async () => {
    const schema = workspace.name();
    await applySchema(db.sql, schema, workspace.folder(1));
    const edited = workspace.folder(0, {
      [MIGRATIONS[0]!.file]: `${MIGRATIONS[0]!.sql}\nCREATE INDEX sneaky_idx ON courses (year);\n`,
    });
    await expect(applySchema(db.sql, schema, edited)).rejects.toThrow(
      new RegExp(
        `^Migration ${MIGRATIONS[0]!.file} changed after it was applied to schema "${schema}".*restore the file`,
      ),
    );
    expect(await catalogOf(db.sql, schema)).not.toContainEqual(expect.stringContaining('sneaky_idx'));
  });

  it(
    'should upgrade, and record a pre-migration schema, as a user that owns its schema but may not create ' + 'schemas',
    async () => {
      const role = `migrator_${workspace.name()}`;
      const [empty, old] = [workspace.name(), workspace.name()];
      await db.sql`create role ${db.sql(role)} login password 'migrator-password'`;
      const migrator = createSql({ ...db.config.db, user: role, password: 'migrator-password' }, { max: 1 });
      try {
        for (const schema of [empty, old]) await db.sql`create schema ${db.sql(schema)} authorization ${db.sql(role)}`;
        await migrator.unsafe(schemaSql(old, oldSchemaFile.replace(/^CREATE SCHEMA .*$/m, '')));
        // The premise: PostgreSQL refuses even CREATE SCHEMA IF NOT EXISTS on the existing schema to this user.
        await expect(migrator`create schema if not exists ${migrator(empty)}`).rejects.toMatchObject({ code: '42501' });

        expect(await applySchema(migrator, empty)).toMatchObject({ from: 0, to: NEWEST, baselined: false });
        expect(await applySchema(migrator, old)).toMatchObject({ from: 1, to: NEWEST, baselined: true });
        for (const schema of [empty, old]) expect(await catalogOf(db.sql, schema)).toEqual(newestCatalog);
      } finally {
        await migrator.end({ timeout: 5 });
        for (const schema of [empty, old]) await db.sql`drop schema if exists ${db.sql(schema)} cascade`;
        await db.sql`drop role ${db.sql(role)}`;
      }
    },
  );

  it('should leave a database ahead of this checkout as it is', async () => {
    const schema = workspace.name();
    const ahead = `${String(NEWEST + 1).padStart(4, '0')}_from_newer_code.sql`;
    await applySchema(
      db.sql,
      schema,
      workspace.folder(NEWEST, { [ahead]: '-- compatible: true\nCREATE INDEX newer_idx ON courses (year);\n' }),
    );
    const result = await applySchema(db.sql, schema);
    expect(result).toMatchObject({ from: NEWEST + 1, to: NEWEST + 1, applied: [] });
    expect((await versionRows(db.sql, schema)).at(-1)).toEqual({
      version: NEWEST + 1,
      name: 'from_newer_code',
      compatible: true,
    });
  });
});

describe('a schema from before versioned migrations', () => {
  it('should be recorded as version 1 when its tables match, then upgraded with its data', async () => {
    const schema = workspace.name();
    await db.sql.unsafe(schemaSql(schema, oldSchemaFile));
    await runIn(db.sql, schema, readFileSync(fixtureFile(1), 'utf8'));
    const before = await tableData(db.sql, schema);

    const result = await applySchema(db.sql, schema);

    expect(result).toMatchObject({ from: 1, to: NEWEST, baselined: true });
    expect(lostData(before, await tableData(db.sql, schema))).toEqual([]);
    expect(await catalogOf(db.sql, schema)).toEqual(newestCatalog);
    expect(await versionRows(db.sql, schema)).toEqual(expectedVersions);
  });

  it('should be refused, unchanged, when its tables differ from version 1', async () => {
    const schema = workspace.name();
    await db.sql.unsafe(schemaSql(schema, oldSchemaFile));
    await db.sql`alter table ${db.sql(`${schema}.comments`)} drop column comment_text`;
    await db.sql`create index extra_idx on ${db.sql(`${schema}.courses`)} (year)`;
    const before = await catalogOf(db.sql, schema);

    const error = await applySchema(db.sql, schema).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(MigrationError);
    const message = (error as Error).message;
    expect(message).toContain(
      `Schema "${schema}" holds tables but no ${VERSION_TABLE} table, and they differ from what ` +
        `0001_initial.sql creates`,
    );
    expect(message).toContain('- column comments.comment_text text');
    expect(message).toContain('+ index CREATE INDEX extra_idx ON courses USING btree (year)');
    expect(message).toContain('Nothing was changed.');
    expect(await catalogOf(db.sql, schema)).toEqual(before);
  });
});
