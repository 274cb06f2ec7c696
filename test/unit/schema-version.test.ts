import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SchemaVersionError } from '../../lib/errors';
import { readMigrations } from '../../scripts/db/migrations';
import { classifyFailure } from '../../lib/postgres/failure-kind';
import { verifySchemaVersion, type AppliedMigration } from '../../lib/postgres/schema-version-gate';
import { SCHEMA_VERSION } from '../../lib/postgres/schema-version';
import { MigrationError } from '../../scripts/errors';

const root = join(__dirname, '../..');

describe('SCHEMA_VERSION', () => {
  it('should equal the number of the newest migration', () => {
    const migrations = readMigrations();
    expect(migrations.length).toBeGreaterThan(0);
    expect(SCHEMA_VERSION, 'bump SCHEMA_VERSION in lib/schema-version.ts when adding a migration').toBe(
      migrations.at(-1)!.version,
    );
  });

  it('should equal the newest version schema.sql builds and guards', () => {
    const text = readFileSync(join(root, 'schema.sql'), 'utf8');
    expect(Number(/newest CONSTANT integer := (\d+);/.exec(text)?.[1])).toBe(SCHEMA_VERSION);
    const rows = [...text.matchAll(/^\s+\((\d+), '(\w+)', (true|false)\)/gm)].map((m) => ({
      version: Number(m[1]),
      name: m[2],
      compatible: m[3] === 'true',
    }));
    expect(rows).toEqual(readMigrations().map((m) => ({ version: m.version, name: m.name, compatible: m.compatible })));
  });
});

describe('readMigrations', () => {
  let dir: string;
  const folder = (files: Record<string, string>) => {
    dir = mkdtempSync(join(tmpdir(), 'trace-migrations-'));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    return dir;
  };
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('should read the compatible flag from the header only, for every placement', () => {
    const headers: [string, boolean][] = [
      ['-- compatible: true\nALTER TABLE t ADD COLUMN c int;', true],
      ['-- Adds a column.\n\n-- compatible: true\nALTER TABLE t ADD COLUMN c int;', true],
      ['  --   compatible:   true  \nSELECT 1;', true],
      ['-- compatible: false\nSELECT 1;', false],
      ['-- Adds a column.\nSELECT 1;\n-- compatible: true\n', false],
      ['SELECT 1; -- compatible: true', false],
      ['-- not compatible: true\nSELECT 1;', false],
    ];
    const files = Object.fromEntries(
      headers.map(([text], i) => [`${String(i + 1).padStart(4, '0')}_case_${i + 1}.sql`, text]),
    );
    const migrations = readMigrations(folder({ ...files, 'README.md': 'not a migration' }));
    expect(migrations.map((m) => m.compatible)).toEqual(headers.map(([, compatible]) => compatible));
    expect(migrations.map((m) => m.version)).toEqual(headers.map((_, i) => i + 1));
    expect(migrations[0]).toMatchObject({
      name: 'case_1',
      file: '0001_case_1.sql',
      checksum: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
  });

  it.each([
    ['a gap', { '0001_a.sql': '', '0003_c.sql': '' }, /^0003_c\.sql should be number 0002/],
    ['a repeat', { '0001_a.sql': '', '0001_b.sql': '' }, /^0001_b\.sql should be number 0002/],
    ['a start above 1', { '0002_b.sql': '' }, /^0002_b\.sql should be number 0001/],
    [
      'a misnamed file',
      { '0001_a.sql': '', '2_Add-Index.sql': '' },
      /2_Add-Index\.sql is not named NNNN_snake_case\.sql: rename it/,
    ],
    ['no file', {}, /holds no migrations/],
  ])('should refuse a folder with %s, saying what to fix', (_label, files, message) => {
    expect(() => readMigrations(folder(files))).toThrow(MigrationError);
    expect(() => readMigrations(folder(files))).toThrow(message);
  });
});

describe('verifySchemaVersion', () => {
  /** Every database of up to 4 migrations, each compatible or not, against code needing 1 to 4. */
  const databases: AppliedMigration[][] = [[]];
  for (let n = 1; n <= 4; n++) {
    for (let flags = 0; flags < 2 ** n; flags++) {
      databases.push(Array.from({ length: n }, (_, i) => ({ version: i + 1, compatible: ((flags >> i) & 1) === 1 })));
    }
  }
  const cases = databases.flatMap((applied) => [1, 2, 3, 4].map((required) => ({ applied, required })));

  it(
    `should accept exactly the databases at the version, or ahead through compatible migrations only ` +
      `(${cases.length} cases)`,
    () => {
      for (const { applied, required } of cases) {
        const current = applied.length;
        const above = applied.filter((m) => m.version > required);
        const label = `database ${JSON.stringify(applied)}, code needs ${required}`;
        if (current < required) {
          expect(() => verifySchemaVersion(applied, required), label).toThrow(
            new SchemaVersionError(current, required),
          );
          expect(() => verifySchemaVersion(applied, required), label).toThrow(
            `schema version ${current}, needs ${required}: run npm run db:apply`,
          );
        } else if (above.some((m) => !m.compatible)) {
          const incompatible = above.filter((m) => !m.compatible).map((m) => m.version);
          expect(() => verifySchemaVersion(applied, required), label).toThrow(
            `schema version ${current}, needs ${required}: migration${incompatible.length > 1 ? 's' : ''} ` +
              `${incompatible.join(', ')} ${incompatible.length > 1 ? 'are' : 'is'} not marked compatible with ` +
              `older code; deploy code built for schema version ${current}`,
          );
        } else {
          expect(verifySchemaVersion(applied, required), label).toEqual({
            current,
            required,
            ahead: current > required,
          });
        }
      }
    },
  );

  it('should give the mismatch a stable code that the retry loop does not treat as transient', () => {
    for (const error of [new SchemaVersionError(0, 1), new SchemaVersionError(3, 1, [2, 3])]) {
      expect(error.code).toBe('SCHEMA_VERSION_MISMATCH');
      expect(classifyFailure(error)).toBe('fatal');
    }
  });
});
