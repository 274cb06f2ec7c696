import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readMigrations, applySchema } from '../../scripts/db/migrations';
import { SCHEMA_VERSION } from '../../lib/postgres/schema-version';
import { buildKafkaEvent } from '../../scripts/encode-kafka-event';
import { testDatabase, type TestDatabase } from '../helpers/db';
import { surveyMessage } from '../helpers/factories';
import { runBatch } from '../helpers/run';
import { schemaSql } from '../helpers/schema-file';

// Upgrading a database that holds version-1 rows (schema.sql as it was before migrations existed) in place.
const root = join(__dirname, '../..');
const MIGRATION = readFileSync(join(root, 'migrations/0002_dead_letter_headers.sql'), 'utf8');
const V1 = readFileSync(join(__dirname, '../fixtures/pre-migration-schema.sql'), 'utf8');

let db: TestDatabase;
let schema: string;
const table = (name: string) => db.sql(`${schema}.${name}`);

beforeEach(async () => {
  db = await testDatabase();
  schema = db.config.db.schema;
  // The test's schema as version 1 left it, with rows in it.
  await db.sql`drop schema ${db.sql(schema)} cascade`;
  await db.sql.unsafe(schemaSql(schema, V1));
  await db.sql.unsafe('reset search_path');
  await db.sql`
    insert into ${table('dead_letters')} (kafka_topic, kafka_partition, kafka_offset, key, value, headers,
      reason, detail)
    values ('t', 0, 1, 'k', '\\x00ff', '{"content-type": "application/json", "ключ": "значение"}',
      'invalid_utf8', 'v1 row'),
           ('t', 0, 2, null, null, '{}', 'tombstone', 'v1 row without headers')`;
  await db.sql`
    insert into ${table('processed_traces')} (trace_id, status, kafka_topic, kafka_partition, kafka_offset, report_at)
    values ('v1-trace', 'upstream_error', 't', 0, 3, now())`;
});
afterEach(() => db.close());

/** Runs a migration file as the runner does: in one transaction, with search_path set to the target schema. */
async function migrate(text: string) {
  await db.sql.begin(async (tx) => {
    await tx.unsafe(`set local search_path to "${schema}"`);
    await tx.unsafe(text);
  });
}

async function headerRows() {
  return db.sql<{ kafka_offset: string; headers: unknown; keys: string[] | null; header_values: Buffer[] }[]>`
    select kafka_offset, headers, header_values,
      (select array_agg(convert_from(k, 'UTF8') order by n) from unnest(header_keys) with ordinality as u(k, n)) as keys
    from ${table('dead_letters')} order by kafka_offset`;
}

const expectConverted = async () =>
  expect(await headerRows()).toEqual([
    // jsonb kept its own key order (shorter keys first); Kafka's order was already lost in version 1.
    {
      kafka_offset: '1',
      headers: { ключ: 'значение', 'content-type': 'application/json' },
      keys: ['ключ', 'content-type'],
      header_values: [Buffer.from('значение'), Buffer.from('application/json')],
    },
    { kafka_offset: '2', headers: {}, keys: null, header_values: [] },
  ]);

describe('migration 0002 (dead-letter headers as bytea arrays)', () => {
  it("should convert existing rows' headers and leave the rest of the data alone", async () => {
    await migrate(MIGRATION);
    await expectConverted();
    const [trace] = await db.sql`select trace_id, status from ${table('processed_traces')}`;
    expect(trace).toEqual({ trace_id: 'v1-trace', status: 'upstream_error' });
  });

  it('should let this code write to the upgraded database, binary headers included', async () => {
    await migrate(MIGRATION);
    // this code needs the migrations after 0002 as well (0005 changed the dead letters' unique key)
    for (const later of readMigrations().filter((m) => m.version > 2)) await migrate(later.sql);
    const headers = [
      { key: 'b', value: Buffer.from([0, 1, 2]) },
      { key: 'b', value: Buffer.from([255]) },
    ];
    const run = await runBatch(
      db,
      buildKafkaEvent([{ value: null, headers }, { value: surveyMessage() }], { firstOffset: 100 }),
    );
    expect(run.result?.summary).toMatchObject({ deadLettered: 1, stored: 1, failed: 0 });
    const [row] =
      await db.sql`select header_keys, header_values, headers from ${table('dead_letters')} where kafka_offset = 100`;
    expect(row).toEqual({
      header_keys: [Buffer.from('b'), Buffer.from('b')],
      header_values: headers.map((h) => h.value),
      headers: null,
    });
  });

  it('should still accept the dead-letter insert of version-1 code (compatible: true)', async () => {
    expect(MIGRATION.split('\n')).toContain('-- compatible: true');
    await migrate(MIGRATION);
    // The statement the batch writer of version 1 (lib/store.ts then, lib/batch/write-batch.ts now) sends, reduced to
    // its columns.
    const rows = [
      { kafka_topic: 't', kafka_partition: 0, kafka_offset: 9, headers: { a: 'b' }, reason: 'tombstone', detail: 'd' },
    ];
    await db.sql`
      insert into ${table('dead_letters')} (kafka_topic, kafka_partition, kafka_offset, kafka_timestamp, key,
        value, headers, reason, detail, trace_id)
      select kafka_topic, kafka_partition, kafka_offset, null, null, null, coalesce(headers, '{}'), reason, detail, null
      from json_to_recordset(${JSON.stringify(rows)}::text::json)
        as x(kafka_topic text, kafka_partition integer, kafka_offset bigint, headers jsonb, reason text, detail text)`;
    const [row] =
      await db.sql`select headers, cardinality(header_keys) as n from ${table('dead_letters')} where kafka_offset = 9`;
    expect(row).toEqual({ headers: { a: 'b' }, n: 0 });
  });

  it(
    'should upgrade the same way through the migrations of npm run db:apply, twice, and end with the columns ' +
      'of a fresh install',
    async () => {
      await applySchema(db.sql, schema);
      await expectConverted();
      await applySchema(db.sql, schema); // idempotent: nothing converted twice
      await expectConverted();
      const fresh = await testDatabase();
      try {
        const columns = (s: string) => db.sql`
        select column_name, data_type, is_nullable, column_default from information_schema.columns
        where table_schema = ${s} and table_name = 'dead_letters' order by column_name`;
        expect(await columns(schema)).toEqual(await columns(fresh.config.db.schema));
      } finally {
        await fresh.close();
      }
    },
  );

  it('should number SCHEMA_VERSION as the highest migration', () => {
    const numbers = readdirSync(join(root, 'migrations')).map((f) => Number(/^(\d{4})_[a-z0-9_]+\.sql$/.exec(f)?.[1]));
    expect(numbers.every(Number.isInteger)).toBe(true);
    expect(SCHEMA_VERSION).toBe(Math.max(...numbers));
  });
});
