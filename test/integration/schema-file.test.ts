import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalogDifferences } from '../../scripts/db/catalog';
import { applySchema } from '../../scripts/db/migrations';
import { testDatabase, type TestDatabase } from '../helpers/db';
import { catalogOf, NEWEST, schemaAtVersion, schemaWorkspace, versionRows } from '../helpers/schemas';
import { schemaSql } from '../helpers/schema-file';

/*
 * schema.sql is the whole schema in one file for psql users; migrations/ is how deployed databases get there. The
 * two must build the same thing: same catalog, same version rows (so the consumer accepts either).
 */

let db: TestDatabase;
let workspace: ReturnType<typeof schemaWorkspace>;
let migrated: { catalog: string[]; versions: unknown[] };
const schemaFile = readFileSync(join(__dirname, '../../schema.sql'), 'utf8');

beforeAll(async () => {
  db = await testDatabase();
  workspace = schemaWorkspace(db.sql);
  const schema = workspace.name();
  await applySchema(db.sql, schema);
  migrated = { catalog: await catalogOf(db.sql, schema), versions: await versionRows(db.sql, schema) };
});
afterAll(async () => {
  await workspace.cleanUp();
  await db.close();
});

/** What schema.sql (or an altered copy) builds in a fresh schema, and how it differs from applying migrations/. */
async function differencesFromMigrations(text: string): Promise<string[]> {
  const schema = workspace.name();
  await db.sql.unsafe(schemaSql(schema, text));
  const versions = await versionRows(db.sql, schema);
  return [
    ...catalogDifferences(migrated.catalog, await catalogOf(db.sql, schema)),
    ...catalogDifferences(
      migrated.versions.map((v) => `version row ${JSON.stringify(v)}`),
      versions.map((v) => `version row ${JSON.stringify(v)}`),
    ),
  ];
}

describe('schema.sql', () => {
  it(
    'should build the same tables, columns, constraints, indexes and version rows as applying every ' + 'migration',
    async () => {
      expect(
        await differencesFromMigrations(schemaFile),
        'schema.sql must equal migrations/: update it, its version rows and its "newest" number',
      ).toEqual([]);
      expect(migrated.catalog.length).toBeGreaterThan(50); // the comparison covers the real catalog, not an empty one
    },
  );

  // Each alteration is one kind of drift; the comparison must notice every one.
  const alterations: [string, (text: string) => string][] = [
    ['an index left out', (t) => t.replace(/^CREATE INDEX IF NOT EXISTS [^\n]*\n/m, '')],
    ['a column type changed', (t) => t.replace(/(\n\s+\w+\s+)bigint NOT NULL/, '$1integer NOT NULL')],
    ['a NOT NULL dropped', (t) => t.replace(/(\n\s+\w+\s+text) NOT NULL,/, '$1,')],
    ['a default changed', (t) => t.replace(/DEFAULT now\(\)/, "DEFAULT '2000-01-01'")],
    [
      'a constraint changed',
      (t) => t.replace(/CHECK \(status IN \('stored', /, "CHECK (status IN ('stored', 'other', "),
    ],
    [
      'a table left out',
      (t) => t.replace(/CREATE TABLE IF NOT EXISTS comments \([\s\S]*?\n\);\nCREATE INDEX [^\n]*\n/, ''),
    ],
    // An identity's options appear nowhere in the column's definition: only its sequence (pg_sequence) holds them.
    [
      'an identity cache left out',
      (t) => t.replace('GENERATED ALWAYS AS IDENTITY (CACHE 1000)', 'GENERATED ALWAYS AS IDENTITY'),
    ],
    [
      'an identity increment changed',
      (t) =>
        t.replace('GENERATED ALWAYS AS IDENTITY PRIMARY KEY', 'GENERATED ALWAYS AS IDENTITY (INCREMENT 2) PRIMARY KEY'),
    ],
    [
      'an identity start changed',
      (t) =>
        t.replace(
          'GENERATED ALWAYS AS IDENTITY (CACHE 1000)',
          'GENERATED ALWAYS AS IDENTITY (START WITH 100 CACHE 1000)',
        ),
    ],
    [
      'a sequence no column owns added',
      (t) =>
        t.replace(
          /\nINSERT INTO schema_migrations /,
          '\nCREATE SEQUENCE IF NOT EXISTS extra_seq;\nINSERT INTO schema_migrations ',
        ),
    ],
    [
      'a function body changed',
      (t) =>
        t.replace(
          '|| int4send(coalesce(cardinality(header_keys), -1))',
          '|| int4send(coalesce(cardinality(header_keys), -2))',
        ),
    ],
    [
      'a version row changed',
      (t) =>
        t.replace(
          /\((\d+), '(\w+)', (true|false)\)/,
          (_, v, n, c) => `(${v}, '${n}', ${c === 'true' ? 'false' : 'true'})`,
        ),
    ],
  ];
  it.each(alterations)('should notice a copy with %s', async (_kind, alter) => {
    const altered = alter(schemaFile);
    expect(altered).not.toBe(schemaFile);
    expect(await differencesFromMigrations(altered)).not.toEqual([]);
  });

  it('should be safe to run again on the schema it created', async () => {
    const schema = workspace.name();
    await db.sql.unsafe(schemaSql(schema));
    await db.sql.unsafe(schemaSql(schema));
    expect(await catalogOf(db.sql, schema)).toEqual(migrated.catalog);
    expect(await versionRows(db.sql, schema)).toEqual(migrated.versions);
  });

  it(
    'should refuse a schema at any earlier version, or from before versioned migrations, and say to run npm ' +
      'run db:apply',
    async () => {
      const cases: { label: string; schema: string; message: RegExp }[] = [];
      for (let version = 1; version < NEWEST; version++) {
        cases.push({
          label: `version ${version}`,
          schema: await schemaAtVersion(db.sql, workspace, version),
          message: new RegExp(
            `is at version ${version}, schema.sql is version ${NEWEST}: upgrade it with npm run db:apply`,
          ),
        });
      }
      const old = workspace.name();
      await db.sql.unsafe(
        schemaSql(old, readFileSync(join(__dirname, '../fixtures/pre-migration-schema.sql'), 'utf8')),
      );
      cases.push({
        label: 'pre-migration',
        schema: old,
        message: /has tables but no schema_migrations table: run npm run db:apply/,
      });

      for (const { label, schema, message } of cases) {
        const before = await catalogOf(db.sql, schema);
        await expect(db.sql.unsafe(schemaSql(schema)), label).rejects.toThrow(message);
        expect(await catalogOf(db.sql, schema), label).toEqual(before);
      }
    },
  );
});
