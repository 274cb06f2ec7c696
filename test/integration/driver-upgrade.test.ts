/**
 * postgres.js 4's breaking changes (its README, "Upgrading from v3"), as they touch this code:
 * - a `Date` parameter is no longer typed as timestamptz: written to, or compared with, a `timestamp`, `date` or
 *   `time` column it would be taken as UTC. The schema has none (every time is `timestamptz`, written as an ISO
 *   string), which this checks on the real schema, so that a migration adding one has to think about it;
 * - `sql.array()` is gone: arrays are passed as they are, with a cast (`${ids}::text[]`), checked here round trip;
 * - a transaction's COMMIT answered with ROLLBACK, or a statement that fails in it, aborts the whole transaction:
 *   inTransaction rejects and nothing of it is kept.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inTransaction } from '../../lib/postgres/client';
import { testDatabase, type TestDatabase } from '../helpers/db';

const root = join(__dirname, '../..');
/** Every TypeScript file of the code that talks to PostgreSQL. */
const sourceFiles = () =>
  ['lib', 'functions', 'scripts', 'bench'].flatMap((dir) =>
    readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => join(root, dir, f)),
  );

let db: TestDatabase;
beforeAll(async () => {
  db = await testDatabase();
});
afterAll(() => db.close());

describe('postgres.js 4 upgrade', () => {
  it('should have no timestamp, date or time column without a time zone in the schema', async () => {
    const rows = await db.sql<{ column: string; type: string }[]>`
      select table_name || '.' || column_name as column, data_type as type from information_schema.columns
      where table_schema = ${db.config.db.schema}
        and data_type in ('timestamp without time zone', 'date', 'time without time zone')`;
    expect(rows).toEqual([]);
    const [any] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from information_schema.columns where table_schema = ${db.config.db.schema}
        and data_type = 'timestamp with time zone'`;
    expect(any?.n).toBeGreaterThan(0); // the check looks at the right schema
  });

  it('should pass arrays as they are, with a cast, and never call sql.array', async () => {
    const ids = ['a', 'b,c', 'd"e', '', 'ü'];
    const [row] = await db.sql<{ back: string[] }[]>`select ${ids}::text[] as back`;
    expect(row?.back).toEqual(ids);
    for (const file of sourceFiles()) expect(readFileSync(file, 'utf8'), file).not.toMatch(/\b(sql|tx)\.array\(/);
  });

  it('should keep nothing of a transaction one of whose statements failed, even when the work caught it', async () => {
    const table = db.sql(`${db.config.db.schema}.instructors`);
    const name = `upgrade-${Date.now()}`;
    await expect(
      inTransaction(db.sql, async (tx) => {
        await tx`insert into ${table} (name) values (${name})`;
        await tx`select 1/0`.catch(() => {}); // caught: PostgreSQL still aborts the transaction
        return 'done';
      }),
    ).rejects.toThrow();
    const [row] = await db.sql<{ n: number }[]>`select count(*)::int as n from ${table} where name = ${name}`;
    expect(row?.n).toBe(0);
  });
});
