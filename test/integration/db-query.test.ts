import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countRows, testDatabase, type TestDatabase } from '../helpers/db';
import { projectRoot, runCommand } from '../helpers/cli';
import { runBatch } from '../helpers/run';

/*
 * npm run db:query as a user runs it (a child process, the connection in the shell's DB_* variables) against a
 * database holding what the consumer stored from the mixed sample batch: reports, an upstream error, dead letters.
 */
let db: TestDatabase;
let tables: string[];
beforeAll(async () => {
  db = await testDatabase();
  const event = JSON.parse(readFileSync(join(projectRoot, 'events', 'mixed-batch.json'), 'utf8'));
  expect((await runBatch(db, event)).result?.summary).toMatchObject({ deadLettered: 5 });
  const rows = await db.sql<{ table_name: string }[]>`
    select table_name from information_schema.tables where table_schema = ${db.config.db.schema} order by 1`;
  tables = rows.map((r) => r.table_name);
});
afterAll(() => db.close());

const dbQuery = (args: string[]) => runCommand('npx', ['tsx', 'scripts/db-query.ts', ...args], db.env);

describe('npm run db:query', () => {
  it('should summarise what was stored without a query', async () => {
    const run = await dbQuery([]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(`What is stored in schema "${db.config.db.schema}"`);
    for (const [table, n] of Object.entries(await countRows(db)))
      expect(run.stdout).toMatch(new RegExp(`^  ${table} +${n}$`, 'm'));
    expect(run.stdout).toContain('processed_traces by status');
    expect(run.stdout).toContain('invalid_json');
  });

  it('should query every table of the schema by its bare name, bytes as hex', async () => {
    expect(tables).toEqual(expect.arrayContaining(['dead_letters', 'processed_traces', 'schema_migrations']));
    const run = await dbQuery(
      tables.map((t) => `select count(*)::int as n, (select to_json(x) from ${t} x limit 1) as one from ${t}`),
    );
    expect(run.code, run.stderr).toBe(0);
    for (const t of tables) {
      const [row] = await db.sql<
        { n: number }[]
      >`select count(*)::int as n from ${db.sql(`${db.config.db.schema}.${t}`)}`;
      expect(run.stdout).toContain(`from ${t}\n`);
      expect(row!.n, t).toBeGreaterThan(0); // every table holds rows, so each query below shows one
    }
    expect(run.stdout.match(/\(1 row\)/g)).toHaveLength(tables.length);
    const letters = await dbQuery([
      'select value, header_values, detail from dead_letters where value is not null limit 3',
    ]);
    expect(letters.code, letters.stderr).toBe(0);
    expect(letters.stdout).toMatch(/\\x[0-9a-f]+/);
    expect(letters.stdout).toContain('(3 rows)');
  });

  it.each([
    ['a write', 'delete from processed_traces', '25006'],
    ['a syntax error', 'selct 1', '42601'],
    ['a missing table', 'select * from no_such_table', '42P01'],
    ['a write after a commit', 'commit; delete from processed_traces', '42601'],
  ])('should refuse %s with the database reason, no stack trace, and change nothing', async (_name, query, code) => {
    const before = await countRows(db);
    const run = await dbQuery([query]);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`PostgreSQL refused the query (${code}): `);
    expect(run.stderr).not.toMatch(/^\s+at /m);
    expect(await countRows(db)).toEqual(before);
  });

  it('should name the host and port it could not reach', async () => {
    const run = await runCommand('npx', ['tsx', 'scripts/db-query.ts'], {
      ...db.env,
      DB_PORT: '1',
      DB_CONNECT_TIMEOUT: '2',
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      `could not be reached (user "${db.env.DB_USER}" on database "${db.env.DB_NAME}" at ${db.env.DB_HOST}:1)`,
    );
    expect(run.stderr).not.toMatch(/^\s+at /m);
  });
});
