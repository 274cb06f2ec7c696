import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabase, type TestDatabase } from '../helpers/db';
import { runCommand } from '../helpers/cli';
import { MIGRATIONS, NEWEST, schemaWorkspace, versionRows } from '../helpers/schemas';
import { MIGRATIONS_DIR } from '../../scripts/db/migrations';

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

/** `text` with the characters a regular expression gives meaning to escaped. */
const literally = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

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

  it('should name the cause, the database and the next step once, and exit 1, for each failure', async () => {
    const schema = workspace.name();
    const failing = `${String(NEWEST + 1).padStart(4, '0')}_broken.sql`;
    const broken = workspace.folder(NEWEST, { [failing]: 'ALTER TABLE no_such_table ADD COLUMN x integer;\n' });
    // The newest migration edited after it was applied: the schema's recorded version no longer matches its file.
    const newest = MIGRATIONS[NEWEST - 1]!.file;
    const edited = workspace.folder(NEWEST - 1, {
      [newest]: `${readFileSync(join(MIGRATIONS_DIR, newest), 'utf8')}-- edited\n`,
    });
    const { DB_HOST: host, DB_PORT: port, DB_NAME: name, DB_USER: user, DB_SCHEMA: own } = db.env;
    const on = (s: string, p = port) =>
      `npm run db:apply on database "${name}" at ${host}:${p} (user "${user}", schema "${s}")`;
    const cases: { label: string; env: Record<string, string>; args?: string[]; stderr: string | RegExp }[] = [
      {
        label: 'wrong password',
        env: { DB_PASSWORD: 'not-the-password' },
        stderr:
          `${on(own!)} could not log in: password authentication failed. Check DB_USER and DB_PASSWORD, or the ` +
          'secret that DB_SECRET_ARN names. Then run it again.\n',
      },
      {
        label: 'nothing listening',
        env: { DB_PORT: '1' },
        stderr:
          `${on(own!, '1')} could not reach the database: connection refused: the database is not accepting ` +
          'connections. Check DB_HOST and DB_PORT and that the server is running (locally: `npm run db`); in ' +
          'Lambda, the subnets and security group that lead to it. Then run it again.\n',
      },
      {
        label: 'bad configuration',
        env: { DB_SCHEMA: 'Not-An-Identifier' },
        stderr: /^Invalid configuration: DB_SCHEMA [^\n]*run the command again[^\n]*\n$/,
      },
      {
        label: 'failing migration',
        env: { DB_SCHEMA: schema },
        args: [broken],
        stderr:
          `${on(schema)}: Migration ${failing} failed on schema "${schema}": relation "no_such_table" does not ` +
          `exist (SQLSTATE 42P01). It was rolled back whole; the schema stays at version ${NEWEST}. Fix the ` +
          'migration or the data it trips on, then run npm run db:apply again.\n',
      },
      {
        label: 'applied migration changed',
        env: { DB_SCHEMA: schema },
        args: [edited],
        stderr: new RegExp(
          `^${literally(on(schema))}: Migration ${newest} changed after it was applied to schema "${schema}" ` +
            '\\(applied as "[a-z_]+", checksum [0-9a-f]{64}\\)\\. Applied migrations are never edited: restore the ' +
            'file as it was and put the change in a new migration, then run npm run db:apply again\\.\n$',
        ),
      },
    ];
    for (const c of cases) {
      const run = await dbApply(c.env, c.args);
      expect(run.code, c.label).toBe(1);
      // The whole of stderr: one message, no stack trace, no password.
      if (typeof c.stderr === 'string') expect(run.stderr, c.label).toBe(c.stderr);
      else expect(run.stderr, c.label).toMatch(c.stderr);
      expect(run.stderr, c.label).not.toContain('not-the-password');
    }
    expect((await versionRows(db.sql, schema)).at(-1)?.version).toBe(NEWEST);
  });
});
