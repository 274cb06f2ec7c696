/**
 * What the write path's schema-borne guarantees cost: the consumer writes the same 1,000-record batches into its
 * schema as shipped and into copies that each lack one mechanism a guarantee rests on, round by round in
 * alternating order. The difference in server time (pg_stat_statements) is that mechanism's
 * price. The variants are measurements, not options: each one gives up a promise (docs/performance.md says which).
 * The guarantees that are statements rather than schema (the claim, newest wins) show in the breakdown by statement.
 */
import type { Sql } from '../lib/postgres/client';
import { applySchema } from '../scripts/db/migrations';
import { median, medianByKey, round } from './stats';
import { eventOf, runBatch, type Sample, type Writers } from './throughput';

interface Variant {
  name: string;
  /** What is given up. */
  without: string;
  /** SQL that removes the mechanism from a schema as shipped. */
  sql: (schema: string) => string;
}

const VARIANTS: Variant[] = [
  { name: 'shipped', without: 'nothing', sql: () => '' },
  {
    name: 'no_pair_fks',
    without: "course_instructors' foreign keys to courses and instructors (referential integrity for readers)",
    sql: (s) => dropPairForeignKeys(s),
  },
  {
    name: 'no_row_ids',
    without: 'the id of ratings and comments (a stable identity per row; the pair index stays)',
    sql: (s) =>
      ['ratings', 'comments']
        .map(
          (t) =>
            `alter table "${s}".${t} drop constraint ${t}_pkey, drop column id; create index on "${s}".${t} ` +
            `(course_id, instructor_id)`,
        )
        .join('; '),
  },
  {
    name: 'no_row_keys',
    without: "every key and index of ratings and comments (replacing a pair's rows would scan the whole table)",
    sql: (s) => dropRowKeys(s),
  },
  {
    name: 'none',
    without: 'all of the above',
    sql: (s) => `${dropPairForeignKeys(s)}; ${dropRowKeys(s)}`,
  },
];

function dropPairForeignKeys(s: string): string {
  return (
    `alter table "${s}".course_instructors drop constraint course_instructors_course_id_fkey, drop ` +
    `constraint course_instructors_instructor_id_fkey`
  );
}

function dropRowKeys(s: string): string {
  return ['ratings', 'comments']
    .map((t) => `alter table "${s}".${t} drop constraint ${t}_pkey, drop column id`)
    .join('; ');
}

export interface GuaranteeRow {
  name: string;
  without: string;
  wallMs: number;
  serverMs: number;
  /** Median milliseconds per statement kind. */
  statements: Record<string, number>;
}

const GUARANTEE_RECORDS = 1000;

export async function measureGuarantees(admin: Sql, w: Writers, rounds: number): Promise<GuaranteeRow[]> {
  const schemaOf = (v: Variant) => `bench_guarantee_${v.name}`;
  const samples = new Map<string, Sample[]>(VARIANTS.map((v) => [v.name, []]));
  // Dropped whatever happens: with DB_HOST set, the variants live in the user's own database.
  try {
    for (const v of VARIANTS) {
      await admin.unsafe(`drop schema if exists "${schemaOf(v)}" cascade`);
      await applySchema(admin, schemaOf(v));
      const sql = v.sql(schemaOf(v));
      if (sql) await admin.unsafe(sql);
    }
    for (let r = -1; r < rounds; r++) {
      const event = eventOf(`guarantees-${r}`, GUARANTEE_RECORDS);
      const order = r % 2 === 0 ? VARIANTS : [...VARIANTS].reverse();
      for (const v of order) {
        const sample = await runBatch(w, 'consumer', event, { ...w.schemas, consumer: schemaOf(v) });
        if (r >= 0) samples.get(v.name)!.push(sample);
      }
    }
  } finally {
    for (const v of VARIANTS) await admin.unsafe(`drop schema if exists "${schemaOf(v)}" cascade`);
  }
  return VARIANTS.map((v) => {
    const mine = samples.get(v.name)!;
    return {
      name: v.name,
      without: v.without,
      wallMs: round(median(mine.map((s) => s.ms)), 1),
      serverMs: round(median(mine.map((s) => Object.values(s.statements).reduce((a, x) => a + x, 0))), 1),
      statements: medianByKey(
        mine.map((s) => s.statements),
        1,
      ),
    };
  });
}

export function printGuarantees(rows: readonly GuaranteeRow[]): void {
  const shipped = rows.find((r) => r.name === 'shipped');
  if (!shipped) return;
  console.log(
    `\nWhat the schema's guarantees cost, ${GUARANTEE_RECORDS.toLocaleString('en-US')} records per batch ` +
      `(medians; server = pg_stat_statements)`,
  );
  console.log('variant      | server ms | saved | wall ms | pairs | COPY ratings | COPY comments | deletes | without');
  for (const r of rows) {
    const ms = (...kinds: string[]) => kinds.reduce((a, k) => a + (r.statements[k] ?? 0), 0).toFixed(1);
    console.log(
      `${r.name.padEnd(12)} | ${r.serverMs.toFixed(1).padStart(9)} | ` +
        `${(shipped.serverMs - r.serverMs).toFixed(1).padStart(5)} | ${r.wallMs.toFixed(1).padStart(7)} | ` +
        `${ms('insert course_instructors').padStart(5)} | ${ms('copy ratings').padStart(12)} | ${ms(
          'copy ' + 'comments',
        ).padStart(13)} | ${ms('delete ratings', 'delete comments').padStart(7)} | ${r.without}`,
    );
  }
}
