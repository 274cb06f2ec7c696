import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCHEMA_VERSION } from '../../lib/postgres/schema-version';
import { buildKafkaEvent } from '../../scripts/encode-kafka-event';
import { testDatabase, type TestDatabase } from '../helpers/db';
import { relaxedParse, runAction } from '../helpers/dead-letters';
import { surveyMessage } from '../helpers/factories';
import { runBatch, snapshot } from '../helpers/run';

const migrations = join(__dirname, '..', '..', 'migrations');
const MIGRATION = readFileSync(join(migrations, '0003_dead_letter_redrive.sql'), 'utf8');

let upgraded: TestDatabase;
let fresh: TestDatabase;
beforeAll(async () => {
  [upgraded, fresh] = await Promise.all([testDatabase(), testDatabase()]);
});
afterAll(() => Promise.all([upgraded.close(), fresh.close()]));

/** dead_letters as version 2 had it: today's schema.sql without what migration 0003 adds. */
async function downgradeToVersion2(db: TestDatabase) {
  const t = db.sql(`${db.config.db.schema}.dead_letters`);
  await db.sql`alter table ${t} drop column redriven_at, drop column redrive_result, drop column redrive_reason,
    drop column redrive_detail, drop column redrive_count`;
  await db.sql`drop index ${db.sql(`${db.config.db.schema}.dead_letters_reason_id_idx`)}`;
}

/** Runs the migration file as the runner does: one transaction, search_path set to the target schema. */
async function migrate(db: TestDatabase) {
  await db.sql.begin(async (tx) => {
    await tx`select set_config('search_path', ${db.config.db.schema}, true)`;
    await tx.unsafe(MIGRATION);
  });
}

/** The table's shape from the catalog: columns, constraints and indexes, schema name left out. */
async function shape(db: TestDatabase) {
  const schema = db.config.db.schema;
  const columns = await db.sql`
    select column_name, data_type, is_nullable, column_default from information_schema.columns
    where table_schema = ${schema} and table_name = 'dead_letters' order by column_name`;
  const constraints = await db.sql`
    select pg_get_constraintdef(c.oid) as definition from pg_constraint c
    where c.conrelid = ${`${schema}.dead_letters`}::regclass order by 1`;
  const indexes = await db.sql`
    select indexname, replace(indexdef, ${schema + '.'}, '') as definition from pg_indexes
    where schemaname = ${schema} and tablename = 'dead_letters' order by 1`;
  return { columns, constraints, indexes };
}

describe('migration 0003 (dead-letter redrive)', () => {
  it('should upgrade a version 2 database holding dead letters in place, to the shape of schema.sql', async () => {
    await downgradeToVersion2(upgraded);
    const invalid = surveyMessage({}, { enrollment: -1 });
    await runBatch(
      upgraded,
      buildKafkaEvent([{ value: invalid, headers: { h: 'v' } }, { value: 'oops' }, { value: null }], { partitions: 2 }),
    );
    const before = await snapshot(upgraded);
    expect(before.deadLetters).toHaveLength(3);

    await migrate(upgraded);

    expect(await snapshot(upgraded)).toEqual(before);
    const t = upgraded.sql(`${upgraded.config.db.schema}.dead_letters`);
    const added =
      await upgraded.sql`select redriven_at, redrive_result, redrive_reason, redrive_detail, redrive_count from ${t}`;
    expect(added).toEqual(
      Array(3).fill({
        redriven_at: null,
        redrive_result: null,
        redrive_reason: null,
        redrive_detail: null,
        redrive_count: 0,
      }),
    );
    expect(await shape(upgraded)).toEqual(await shape(fresh));

    // The upgraded rows can be redriven at once; the constraint holds.
    const run = await runAction(upgraded, { action: 'redrive' }, { parse: relaxedParse });
    expect(run.response?.results).toMatchObject({ stored: 1, dead_lettered: 2 });
    await expect(upgraded.sql`update ${t} set redrive_result = 'lost'`).rejects.toMatchObject({ code: '23514' });
  });

  it('should change nothing when run again', async () => {
    const before = await shape(upgraded);
    await migrate(upgraded);
    expect(await shape(upgraded)).toEqual(before);
  });

  it('should declare itself compatible, and SCHEMA_VERSION should be the highest migration number', () => {
    expect(MIGRATION.split('\n')).toContain('-- compatible: true');
    const numbers = readdirSync(migrations)
      .filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f))
      .map((f) => Number(f.slice(0, 4)));
    expect(Math.max(...numbers)).toBe(SCHEMA_VERSION);
  });
});
