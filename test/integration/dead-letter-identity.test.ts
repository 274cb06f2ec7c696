import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readMigrations } from '../../scripts/db/migrations';
import { SCHEMA_VERSION } from '../../lib/postgres/schema-version';
import { buildKafkaEvent, type RecordInput } from '../../scripts/encode-kafka-event';
import { testDatabase, type TestDatabase } from '../helpers/db';
import { runAction } from '../helpers/dead-letters';
import { surveyMessage } from '../helpers/factories';
import { runBatch } from '../helpers/run';

/*
 * A dead letter is its coordinates and its bytes (migration 0005). An identical replay must change nothing; a
 * different record at the same coordinates (topic recreated, mapping moved to another cluster) must get its own row,
 * not be reported dead_lettered and stored nowhere.
 */

const MIGRATION = join(__dirname, '../../migrations/0005_dead_letter_identity.sql');

let db: TestDatabase;
beforeAll(async () => {
  db = await testDatabase();
});
afterAll(() => db.close());

const table = (name: string) => db.sql(`${db.config.db.schema}.${name}`);
const uniq = () => randomBytes(4).toString('hex');

type Headers = ReadonlyArray<{ key: string; value: string | Buffer }>;
interface Bytes {
  key: Buffer | null;
  value: unknown;
  headers: Headers;
}

/** Records that are dead-lettered for different reasons: each kind of invalid record the consumer meets. */
const BASES: Record<string, Bytes> = {
  undecodable: { key: Buffer.from('k'), value: Buffer.from([0xff, 0xfe, 0x00]), headers: [{ key: 'h', value: 'v' }] },
  invalid_json: { key: null, value: '{"traceId": ', headers: [] },
  invalid_message: {
    key: Buffer.from(''),
    value: { traceId: 'x', nonsense: true },
    headers: [
      { key: 'a', value: 'b' },
      { key: 'a', value: 'c' },
    ],
  },
  tombstone: { key: Buffer.from('same-key'), value: null, headers: [{ key: 'ab', value: 'c' }] },
};

/** Ways a different record can differ from another at the same coordinates, some of them only barely. */
const VARIANTS: Record<string, (b: Bytes) => Bytes> = {
  'another value': (b) => ({
    ...b,
    value:
      b.value === null
        ? Buffer.from([0xff])
        : Buffer.concat([Buffer.from(JSON.stringify(b.value)), Buffer.from([0xff])]),
  }),
  'a null key instead of an empty one or the reverse': (b) => ({
    ...b,
    key: b.key === null || b.key.length > 0 ? Buffer.from('') : null,
  }),
  'another key': (b) => ({ ...b, key: Buffer.from('other') }),
  'one more header': (b) => ({ ...b, headers: [...b.headers, { key: 'x', value: Buffer.from([0]) }] }),
  'a header byte moved from its value to its key': (b) => ({ ...b, headers: [{ key: 'a', value: 'bc' }] }),
  'the headers in reverse order': (b) => ({
    ...b,
    headers: b.headers.length > 1 ? [...b.headers].reverse() : [{ key: 'z', value: '' }, ...b.headers],
  }),
  'no headers': (b) => ({ ...b, headers: b.headers.length > 0 ? [] : [{ key: '', value: '' }] }),
};

const asInput = (b: Bytes, offset: number): RecordInput & { offset: number } => ({ ...b, partition: 0, offset });

/** One batch of records at chosen offsets of partition 0 of `topic`, as Lambda would deliver them. */
function eventAt(topic: string, records: ReadonlyArray<RecordInput & { offset: number }>) {
  const event = buildKafkaEvent(records, { topic, partitions: 1 }) as { records: Record<string, { offset: number }[]> };
  for (const list of Object.values(event.records)) {
    for (const [i, r] of list.entries()) r.offset = records[i]!.offset;
  }
  return event;
}

async function deadLetters(topic: string) {
  return db.sql<
    {
      kafka_offset: string;
      key: Buffer | null;
      value: Buffer | null;
      header_keys: Buffer[];
      header_values: Buffer[];
      reason: string;
    }[]
  >`
    select kafka_offset, key, value, header_keys, header_values, reason from ${table('dead_letters')}
    where kafka_topic = ${topic} order by id`;
}

async function send(topic: string, records: ReadonlyArray<RecordInput & { offset: number }>) {
  const run = await runBatch(db, eventAt(topic, records));
  expect(run.error).toBeUndefined();
  expect(run.result!.outcomes.map((o) => o.state)).toEqual(records.map(() => 'dead_lettered'));
}

const bytesOf = (b: Bytes) => ({
  key: b.key,
  value:
    b.value === null
      ? null
      : Buffer.isBuffer(b.value)
        ? b.value
        : Buffer.from(typeof b.value === 'string' ? b.value : JSON.stringify(b.value)),
  header_keys: b.headers.map((h) => Buffer.from(h.key)),
  header_values: b.headers.map((h) => Buffer.from(h.value)),
});

describe('dead-letter identity', () => {
  const cases = Object.entries(BASES).flatMap(([reason, base]) =>
    Object.entries(VARIANTS).map(([change, vary]) => [reason, change, base, vary(base)] as const),
  );

  it.each(cases)(
    'should keep a %s dead letter and a different record at its coordinates (%s) as two rows, and replays of ' +
      'either as no new row',
    async (_reason, _change, base, variant) => {
      const topic = `identity-${uniq()}`;
      const others = [asInput(BASES.invalid_json!, 7), asInput(BASES.tombstone!, 8)];
      await send(topic, [asInput(base, 5), ...others]);
      await send(topic, [asInput(base, 5), ...others]); // a replay of the same batch
      expect((await deadLetters(topic)).length).toBe(3);

      await send(topic, [asInput(variant, 5)]); // the topic was recreated: another record at offset 5
      await send(topic, [asInput(base, 5)]); // the old record replayed once more
      await send(topic, [asInput(variant, 5)]); // and the new one

      const rows = await deadLetters(topic);
      expect(rows.map((r) => r.kafka_offset)).toEqual(['5', '7', '8', '5']);
      const at5 = rows
        .filter((r) => r.kafka_offset === '5')
        .map(({ key, value, header_keys, header_values }) => ({ key, value, header_keys, header_values }));
      expect(at5).toEqual([bytesOf(base), bytesOf(variant)]);
    },
  );

  it('should compute the same digest for equal bytes and different digests for each kind of difference', async () => {
    const digests = await db.sql<{ d: Buffer }[]>`
      select ${db.sql(db.config.db.schema)}.dead_letter_digest(b.key, b.value, b.header_keys, b.header_values) as d
      from json_to_recordset(${JSON.stringify(
        Object.values(BASES)
          .flatMap((b) => [b, b, ...Object.values(VARIANTS).map((v) => v(b))])
          .map((b, n) => {
            const x = bytesOf(b);
            return {
              n,
              key: x.key?.toString('hex') ?? null,
              value: x.value?.toString('hex') ?? null,
              hk: x.header_keys.map((h) => h.toString('hex')),
              hv: x.header_values.map((h) => h.toString('hex')),
            };
          }),
      )}::text::json) as x(n int, key text, value text, hk text[], hv text[])
      cross join lateral (select decode(x.key, 'hex') as key, decode(x.value, 'hex') as value,
        array(select decode(h, 'hex') from unnest(x.hk) with ordinality u(h, i) order by i) as header_keys,
        array(select decode(h, 'hex') from unnest(x.hv) with ordinality u(h, i) order by i) as header_values) b
      order by x.n`;
    const hex = digests.map((r) => r.d.toString('hex'));
    const perBase = 2 + Object.keys(VARIANTS).length;
    for (let i = 0; i < hex.length; i += perBase) {
      expect(hex[i]).toBe(hex[i + 1]);
      expect(new Set(hex.slice(i + 1, i + perBase)).size).toBe(perBase - 1);
    }
  });
});

describe('dead letters sharing coordinates', () => {
  it('should show, redrive and purge each of them by its own id when selected by their offset', async () => {
    const topic = `shared-${uniq()}`;
    const reports = [surveyMessage({}, { courseId: `S1-${uniq()}` }), surveyMessage({}, { courseId: `S2-${uniq()}` })];
    // dead letters as an older rule left them, one from each incarnation of the topic: valid by today's rules
    await db.sql`insert into ${table('dead_letters')} (kafka_topic, kafka_partition, kafka_offset, value,
      reason, detail)
      values (${topic}, 0, 5, ${Buffer.from(JSON.stringify(reports[0]))}, 'invalid_message', 'old rule'),
             (${topic}, 0, 5, ${Buffer.from(JSON.stringify(reports[1]))}, 'invalid_message', 'old rule')`;
    const selection = { topic, partition: 0, offsetFrom: 5, offsetTo: 5 };

    const show = await runAction(db, { action: 'show', ...selection });
    expect(show.error).toBeUndefined();
    expect(JSON.stringify(show.response)).toContain(reports[1]!.traceId);
    const redrive = await runAction(db, { action: 'redrive', ...selection });
    expect(redrive.error).toBeUndefined();
    const rows =
      await db.sql`select redrive_result from ${table('dead_letters')} where kafka_topic = ${topic} order by id`;
    expect(rows.map((r) => r.redrive_result)).toEqual(['stored', 'stored']);
    const stored = await db.sql`select trace_id from ${table('processed_traces')} where trace_id
        in ${db.sql(reports.map((r) => r.traceId))} order by trace_id`;
    expect(stored.map((r) => r.trace_id)).toEqual(reports.map((r) => r.traceId).sort());

    const purge = await runAction(db, { action: 'purge', ...selection, redriven: true, dryRun: false });
    expect(purge.error).toBeUndefined();
    expect(await deadLetters(topic)).toEqual([]);
  });
});

describe('migration 0005 (dead-letter identity)', () => {
  it('should be the version the code requires, and not declared compatible', () => {
    expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(5);
    expect(readMigrations().find((m) => m.version === 5)).toMatchObject({
      name: 'dead_letter_identity',
      compatible: false,
    });
  });

  it(
    'should give rows written at version 4 the digest new rows get, and break the conflict target version-4 ' +
      'code uses',
    async () => {
      const topic = `upgrade-${uniq()}`;
      const records = Object.values(BASES).map((b, i) => asInput(b, 100 + i));
      await send(topic, records);
      const before = await deadLetters(topic);
      const schema = db.config.db.schema;
      // back to the version-4 layout, with this test's rows kept, as a deployed database holds them (the other tests'
      // rows share coordinates, which version 4 cannot hold)
      await db.sql.unsafe(`set search_path to "${schema}";
      delete from dead_letters where kafka_topic <> '${topic}';
      alter table dead_letters drop constraint dead_letters_identity_key;
      alter table dead_letters drop column record_digest;
      drop function dead_letter_digest(bytea, bytea, bytea[], bytea[]);
      alter table dead_letters add unique (kafka_topic, kafka_partition, kafka_offset);
      reset search_path;`);
      await db.sql.begin(async (tx) => {
        await tx.unsafe(`set local search_path to "${schema}"`);
        await tx.unsafe(readFileSync(MIGRATION, 'utf8'));
      });

      expect(await deadLetters(topic)).toEqual(before);
      await send(topic, records); // replays after the upgrade find the rows written before it
      expect(await deadLetters(topic)).toEqual(before);
      await send(topic, [asInput(VARIANTS['another key']!(BASES.undecodable!), 100)]);
      expect((await deadLetters(topic)).length).toBe(before.length + 1);

      const oldInsert = db.sql`insert into ${table('dead_letters')} (kafka_topic, kafka_partition, kafka_offset, reason)
      values (${topic}, 0, 100, 'tombstone') on conflict (kafka_topic, kafka_partition, kafka_offset) do nothing`;
      await expect(oldInsert).rejects.toMatchObject({ code: '42P10' });
    },
  );
});
