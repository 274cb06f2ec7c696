import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SCHEMA_VERSION } from '../../lib/postgres/schema-version';
import { buildKafkaEvent } from '../../scripts/encode-kafka-event';
import { testDatabase, type TestDatabase } from '../helpers/db';
import { surveyMessage } from '../helpers/factories';
import { runBatch, snapshot } from '../helpers/run';

/*
 * Migration 0004 re-keys ratings and comments by their pair. It is tested on a schema put back to the previous
 * layout (key on id, a separate pair index) and holding rows, as a deployed database would be.
 */

const MIGRATION = join(__dirname, '../../migrations/0004_ratings_keyed_by_pair.sql');

let db: TestDatabase;
beforeEach(async () => {
  db = await testDatabase();
});
afterEach(() => db.close());

const PREVIOUS_LAYOUT = (table: string) => `
  alter table ${table} drop constraint ${table}_pkey;
  alter table ${table} add constraint ${table}_pkey primary key (id);
  create index ${table}_pair_idx on ${table} (course_id, instructor_id);`;

/** Runs a migration file as the runner will: one transaction, search_path set to the target schema. */
async function migrate(file: string) {
  await db.sql.begin(async (tx) => {
    await tx.unsafe(`set local search_path to "${db.config.db.schema}"`);
    await tx.unsafe(readFileSync(file, 'utf8'));
  });
}

/** Index definitions of a table, with the schema name taken out so that two schemas compare. */
async function indexes(schema: string, table: string) {
  const rows = await db.sql<{ indexname: string; indexdef: string }[]>`
    select indexname, indexdef from pg_indexes where schemaname = ${schema} and tablename = ${table}
      order by indexname`;
  return rows.map((r) => ({ name: r.indexname, definition: r.indexdef.replaceAll(`${schema}.`, '') }));
}

const event = (messages: unknown[], firstOffset: number) =>
  buildKafkaEvent(
    messages.map((value) => ({ value })),
    { partitions: 2, firstOffset },
  );

describe('migration 0004 (ratings and comments keyed by pair)', () => {
  it('should be a version the code requires, declared compatible', () => {
    expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(4);
    expect(readFileSync(MIGRATION, 'utf8').split('\n')).toContain('-- compatible: true');
  });

  it(
    'should keep every row, leave the tables as schema.sql creates them, and let newer reports replace old ' + 'rows',
    async () => {
      const schema = db.config.db.schema;
      await db.sql.unsafe(
        `set search_path to "${schema}"; ${PREVIOUS_LAYOUT('ratings')} ` +
          `${PREVIOUS_LAYOUT('comments')} reset search_path;`,
      );
      const first = [
        surveyMessage({ processedAt: '2024-01-01T00:00:00Z' }, { courseId: 'MIG-1' }),
        surveyMessage(
          { processedAt: '2024-01-01T00:00:00Z', instructor: { name: 'Grace Hopper' } },
          { courseId: 'MIG-1' },
        ),
        surveyMessage({ processedAt: '2024-01-01T00:00:00Z' }, { courseId: 'MIG-2' }),
      ];
      const before = await runBatch(db, event(first, 0));
      expect(before.result?.summary).toMatchObject({ stored: 3, failed: 0 });
      const stored = await snapshot(db);

      await migrate(MIGRATION);

      expect(await snapshot(db)).toEqual(stored);
      const fresh = await testDatabase();
      try {
        for (const table of ['ratings', 'comments']) {
          expect(await indexes(schema, table)).toEqual(await indexes(fresh.config.db.schema, table));
          expect((await indexes(schema, table)).map((i) => i.name)).toEqual([`${table}_pkey`]);
        }
      } finally {
        await fresh.close();
      }

      // A newer report for MIG-1 and Ada Lovelace replaces that pair's rows, and only those.
      const newer = surveyMessage(
        { processedAt: '2024-02-01T00:00:00Z', ratings: [{ questionText: 'Replaced', courseMean: 1 }], comments: [] },
        { courseId: 'MIG-1' },
      );
      const after = await runBatch(db, event([newer], 100));
      expect(after.result?.summary).toMatchObject({ stored: 1, failed: 0 });
      const now = await snapshot(db);
      const pairRows = (rows: readonly Record<string, unknown>[], course: string, name: string) =>
        rows.filter((r) => r.course_id === course && r.name === name).map((r) => r.trace_id);
      expect(pairRows(now.ratings, 'MIG-1', 'Ada Lovelace')).toEqual([newer.traceId]);
      expect(pairRows(now.comments, 'MIG-1', 'Ada Lovelace')).toEqual([]);
      for (const [course, name] of [
        ['MIG-1', 'Grace Hopper'],
        ['MIG-2', 'Ada Lovelace'],
      ] as const) {
        expect(pairRows(now.ratings, course, name)).toEqual(pairRows(stored.ratings, course, name));
        expect(pairRows(now.comments, course, name)).toEqual(pairRows(stored.comments, course, name));
      }
    },
  );
});
