import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config';
import { applySchema } from '../../scripts/db/migrations';
import { SCHEMA_VERSION } from '../../lib/postgres/schema-version';
import { buildKafkaEvent } from '../../scripts/encode-kafka-event';
import { consumerDatabase, testDatabase, type TestDatabase } from '../helpers/db';
import { surveyMessage } from '../helpers/factories';
import { runBatch } from '../helpers/run';
import { MIGRATIONS, runIn, schemaAtVersion, schemaWorkspace } from '../helpers/schemas';

/*
 * Migration 0006 gives the identity sequences of ratings.id and comments.id a cache of 1000: each session takes a
 * block of 1000 ids at its first insert. Tested on a schema at version 5 holding rows, as a deployed database is:
 * the rows keep their ids, and rows the consumer writes afterwards, from two Lambda environments (two sessions),
 * get ids above them that collide with nothing. The primary key is (course_id, instructor_id, id), so nothing but
 * the sequence keeps id unique: the test counts.
 */

const MIGRATION = join(__dirname, '../../migrations/0006_identity_cache.sql');
const TABLES = ['ratings', 'comments'] as const;

/** Every row of a table with its id, in id order. */
async function rows(db: TestDatabase, schema: string, table: string) {
  return db.sql<{ id: string; row: Record<string, unknown> }[]>`
    select id::text as id, to_jsonb(t) as row from ${db.sql(`${schema}.${table}`)} t order by id`;
}

/** The options and position of the sequence behind a table's id. */
async function sequence(db: TestDatabase, schema: string, table: string) {
  const [seq] = await db.sql<{ name: string }[]>`select pg_get_serial_sequence(${`${schema}.${table}`}, 'id') as name`;
  const [options] = await db.sql<
    { start: string; increment: string; min: string; max: string; cache: string; cycle: boolean }[]
  >`
    select seqstart::text as start, seqincrement::text as increment, seqmin::text as min, seqmax::text as max,
      seqcache::text as cache, seqcycle as cycle
    from pg_sequence where seqrelid = ${seq!.name}::regclass`;
  const [position] = await db.sql<{ last: string }[]>`select last_value::text as last from ${db.sql(seq!.name)}`;
  return { options: options!, last: BigInt(position!.last) };
}

describe('migration 0006 (identity cache for ratings and comments)', () => {
  it('should be the version the code requires, declared compatible', () => {
    expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(6);
    expect(readFileSync(MIGRATION, 'utf8').split('\n')).toContain('-- compatible: true');
    expect(MIGRATIONS[5]).toMatchObject({ version: 6, name: 'identity_cache', compatible: true });
  });

  it(
    'should keep every row and its id, and give rows written afterwards by two environments ids above them and ' +
      'unique',
    async () => {
      const db = await testDatabase();
      const workspace = schemaWorkspace(db.sql);
      try {
        await upgradeAndWrite(db, await schemaAtVersion(db.sql, workspace, 5));
      } finally {
        await workspace.cleanUp();
        await db.close();
      }
    },
  );
});

/** Rows at version 5 (fixture rows, more, and a gap), the upgrade to 6, then reports from two environments. */
async function upgradeAndWrite(db: TestDatabase, schema: string) {
  // More rows at version 5, and a gap left by a rolled-back insert, as a deployed database has.
  await runIn(
    db.sql,
    schema,
    `
    insert into ratings (course_id, instructor_id, trace_id, question_text)
      select ci.course_id, ci.instructor_id, ci.trace_id, 'q' || n from course_instructors ci, generate_series(1, 15) n;
    insert into comments (course_id, instructor_id, trace_id, comment_text)
      select ci.course_id, ci.instructor_id, ci.trace_id, 'c' || n from course_instructors ci, ` +
      `generate_series(1, 7) n;`,
  );
  await expect(
    runIn(
      db.sql,
      schema,
      `
    insert into ratings (course_id, instructor_id, trace_id) select course_id, instructor_id, trace_id from ` +
        `course_instructors;
    insert into comments (course_id, instructor_id, trace_id) select course_id, instructor_id, trace_id from ` +
        `course_instructors;
    select 1 / 0;`,
    ),
  ).rejects.toThrow(/division by zero/);
  const before = new Map<
    string,
    { rows: Awaited<ReturnType<typeof rows>>; sequence: Awaited<ReturnType<typeof sequence>> }
  >();
  for (const table of TABLES) {
    before.set(table, { rows: await rows(db, schema, table), sequence: await sequence(db, schema, table) });
    expect(before.get(table)!.rows.length, `${table} holds rows at version 5`).toBeGreaterThan(20);
    expect(before.get(table)!.sequence.options.cache, `${table} before the migration`).toBe('1');
    expect(
      BigInt(before.get(table)!.rows.at(-1)!.id) < before.get(table)!.sequence.last,
      `${table}: the rolled-back ids are a gap`,
    ).toBe(true);
  }

  const result = await applySchema(db.sql, schema);

  expect(result).toMatchObject({ from: 5, to: 6 });
  expect(result.applied.map((m) => m.version)).toEqual([6]);
  for (const table of TABLES) {
    const old = before.get(table)!;
    expect(await rows(db, schema, table), table).toEqual(old.rows);
    const now = await sequence(db, schema, table);
    expect(now.options, table).toEqual({ ...old.sequence.options, cache: '1000' });
    expect(now.last, `${table}: the sequence continues where it was`).toBe(old.sequence.last);
  }

  // Two Lambda environments, each its own client and session, write reports one after the other.
  const config = loadConfig({ ...db.env, DB_SCHEMA: schema });
  const environments = [consumerDatabase(config), consumerDatabase(config)];
  const written: string[][] = [];
  try {
    for (const [i, database] of environments.entries()) {
      const messages = [1, 2, 3].map((n) => surveyMessage({}, { courseId: `IDC-${i}-${n}` }));
      const event = buildKafkaEvent(
        messages.map((value) => ({ value })),
        { partitions: 2, firstOffset: 100 * (i + 1) },
      );
      const run = await runBatch({ ...db, config, database }, event);
      expect(run.error).toBeUndefined();
      expect(run.result?.summary).toMatchObject({ stored: 3, failed: 0 });
      written.push(messages.map((m) => m.traceId));
    }
  } finally {
    await Promise.all(environments.map((e) => e.end()));
  }

  for (const table of TABLES) {
    const old = before.get(table)!;
    const oldIds = new Set(old.rows.map((r) => r.id));
    const all = await rows(db, schema, table);
    const added = all.filter((r) => !oldIds.has(r.id));
    const ids = all.map((r) => BigInt(r.id));
    expect(new Set(ids).size, `${table}: no id is used twice`).toBe(ids.length);
    expect(added.length, `${table}: the consumer's rows`).toBeGreaterThan(0);
    const lowest = (traces: string[]) => {
      const mine = added.filter((r) => traces.includes(r.row.trace_id as string)).map((r) => BigInt(r.id));
      expect(mine.length, `${table}: rows of each environment`).toBeGreaterThan(0);
      // biome-ignore lint/complexity/useMathMinMax: BigInt ids, which Math.min does not take
      return mine.reduce((a, b) => (b < a ? b : a));
    };
    const [first, second] = [lowest(written[0]!), lowest(written[1]!)];
    expect(first > old.sequence.last, `${table}: new ids lie above every id handed out before`).toBe(true);
    // The cache at work: the second session's block starts after the whole block the first one took.
    expect(second - first >= 1000n, `${table}: ${second} should be at least 1000 above ${first}`).toBe(true);
  }
}
