import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabase, type TestDatabase } from '../helpers/db';
import { runCommand } from '../helpers/cli';
import { MIGRATIONS, NEWEST, schemaWorkspace, versionRows } from '../helpers/schemas';

/* npm run db:apply as an operator runs it: a separate process, configured by DB_*, reporting on stdout and stderr. */

let db: TestDatabase;
let workspace: ReturnType<typeof schemaWorkspace>;
const database = `apply_${randomBytes(4).toString('hex')}`;

beforeAll(async () => {
  db = await testDatabase();
  workspace = schemaWorkspace(db.sql);
});
afterAll(async () => {
  await db.sql`drop database if exists ${db.sql(database)} with (force)`;
  await workspace.cleanUp();
  await db.close();
});

const dbApply = (env: Record<string, string>, args: string[] = []) =>
  runCommand('npx', ['tsx', 'scripts/apply-schema.ts', ...args], {
    ...db.env,
    DB_SSL: 'disable',
    LOG_LEVEL: 'error',
    ...env,
  });

describe('npm run db:apply', () => {
  it('should create a missing database, apply every migration, and apply nothing the second time', async () => {
    const first = await dbApply({ DB_NAME: database, DB_SCHEMA: 'trace' });
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toContain(`Created database "${database}"`);
    for (const m of MIGRATIONS) expect(first.stdout).toContain(`Applied ${m.file}`);
    expect(first.stdout).toContain(`is now at version ${NEWEST} (was 0).`);

    const second = await dbApply({ DB_NAME: database, DB_SCHEMA: 'trace' });
    expect(second.code).toBe(0);
    expect(second.stdout).not.toContain('Created database');
    expect(second.stdout).toContain(
      `Schema "trace" on ${db.env.DB_HOST}:${db.env.DB_PORT}/${database} is at version ${NEWEST}: nothing to apply.`,
    );
  });

  it('should name the cause and the next step, and exit 1, for each kind of failure', async () => {
    const schema = workspace.name();
    const failing = `${String(NEWEST + 1).padStart(4, '0')}_broken.sql`;
    const broken = workspace.folder(NEWEST, { [failing]: 'ALTER TABLE no_such_table ADD COLUMN x integer;\n' });
    const cases: { label: string; env: Record<string, string>; args?: string[]; stderr: RegExp }[] = [
      {
        label: 'wrong password',
        env: { DB_PASSWORD: 'not-the-password' },
        stderr:
          /^npm run db:apply could not log in: password authentication failed\. Next: check DB_USER and DB_PASSWORD/,
      },
      {
        label: 'nothing listening',
        env: { DB_PORT: '1' },
        stderr: /^npm run db:apply could not reach the database: connection refused.*Next: check that it is running/,
      },
      {
        label: 'bad configuration',
        env: { DB_SCHEMA: 'Not-An-Identifier' },
        stderr: /^Invalid configuration: DB_SCHEMA .*run the command again/,
      },
      {
        label: 'failing migration',
        env: { DB_SCHEMA: schema },
        args: [broken],
        stderr: new RegExp(
          `^Migration ${failing} failed on schema "${schema}": relation "no_such_table" does not exist ` +
            `\\(SQLSTATE 42P01\\)\\. It was rolled back whole; the schema stays at version ${NEWEST}\\.`,
        ),
      },
    ];
    for (const c of cases) {
      const run = await dbApply(c.env, c.args);
      expect(run.code, c.label).toBe(1);
      expect(run.stderr, c.label).toMatch(c.stderr);
      expect(run.stderr, c.label).not.toContain('not-the-password');
      expect(run.stderr, c.label).not.toMatch(/\n\s+at /); // a message, not a stack trace
    }
    expect((await versionRows(db.sql, schema)).at(-1)?.version).toBe(NEWEST);
  });
});
