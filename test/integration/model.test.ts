import { randomBytes } from 'node:crypto';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig, type Config } from '../../lib/config';
import { createSql, inTransaction, type Sql } from '../../lib/postgres/client';
import { createLogger } from '../../lib/log';
import { processEvent, type BatchResult } from '../helpers/run';
import { buildKafkaEvent, type RecordInput } from '../../scripts/encode-kafka-event';
import { consumerDatabase } from '../helpers/db';
import { applySchema } from '../../scripts/db/migrations';
import { CONSUMER_TABLES } from '../../lib/postgres/table-names';
import { HALVING_ATTEMPT_CHANNEL, type HalvingAttempt, type HalvingCaller } from '../../lib/batch/halving-search';
import { decodeEvent } from '../../lib/aws/kafka-event';
import { deadLetterRow } from '../../lib/batch/write-plan';
import { writeBatch } from '../../lib/batch/write-batch';
import { runDeadLetterAction } from '../../lib/dead-letters/run-action';

/*
 * A model-based test of the promise "bad input never blocks a partition". It generates batches that mix every kind
 * of unit (valid reports, repeats of a trace id within and across partitions, corrected resends, tombstones,
 * undecodable bytes, invalid JSON, schema-invalid messages, reports PostgreSQL rejects, upstream errors, binary and
 * non-UTF-8 headers and keys, integer ids beyond 2^53), runs them through the real core against a PostgreSQL
 * database of its own, and checks:
 * - every record's outcome and the database against a reference model of the promised semantics (below);
 * - no record is reported failed while the database is up;
 * - the transactions spent, counted by PostgreSQL (pg_stat_database), stay within 1 + k(2⌈log2 n⌉ + 1), and equal
 *   the attempts the halving search publishes on its diagnostics channel (which checks the channel);
 * - replaying a batch changes nothing.
 * The same batches, stored as dead letters and redriven, check the other caller of the halving search: each letter
 * ends as the model says, the tables as the consumer left them, and the search's attempts (savepoints, which
 * pg_stat_database cannot count: the channel does) stay within 1 + 2k⌈log2 n⌉ for each search.
 * FC_SEED=<seed> (and FC_PATH=<path>) replay a reported run or counterexample; LONG_TESTS=1 runs more cases.
 */

const server = inject('database');
const DATABASE = `model_${randomBytes(4).toString('hex')}`;
let admin: Sql;
let config: Config;

beforeAll(async () => {
  admin = createSql(loadConfig({ ...server }).db, { max: 1, connection: { application_name: 'trace-consumer-tests' } });
  await admin.unsafe(`create database "${DATABASE}"`);
  config = loadConfig({
    ...server,
    DB_NAME: DATABASE,
    DB_SCHEMA: 'trace',
    MAX_RETRIES: '2',
    RETRY_BACKOFF_MS: '20',
    TIME_RESERVE_MS: '1000',
  });
  await withChecker(async (sql) => {
    await applySchema(sql, 'trace');
    // Autovacuum's workers run transactions in the database too; off, so that every transaction counted is ours.
    for (const table of CONSUMER_TABLES)
      await sql`alter table ${sql(`trace.${table}`)} set (autovacuum_enabled = false,
        toast.autovacuum_enabled = false)`;
  });
  connectionCost = await calibrate();
  // The embedded test server runs without autovacuum, so every count is exact; a configured server may run it, and
  // then a batch during which autovacuum worked is left out of the bound (see runCounted).
  const [setting] = await admin<{ autovacuum: string }[]>`show autovacuum`;
  autovacuumRunning = setting?.autovacuum !== 'off';
  if (autovacuumRunning) visitTraceOfCheck = await calibrateVisitTrace();
});
let autovacuumRunning = true;

/** Attempts of the halving search so far, by caller, as published on its diagnostics channel. */
const halvingAttempts: Record<HalvingCaller, number> = { consumer: 0, redrive: 0 };
const countAttempt = (message: unknown) => {
  halvingAttempts[(message as HalvingAttempt).caller] += 1;
};
beforeAll(() => subscribe(HALVING_ATTEMPT_CHANNEL, countAttempt));
afterAll(() => unsubscribe(HALVING_ATTEMPT_CHANNEL, countAttempt));
/** What one autovacuumVisitTrace check adds to the count itself (its view reads pg_class); see calibrateVisitTrace. */
let visitTraceOfCheck = 0;

/**
 * Transactions a consumer client spends on its connection before any work: postgres.js reads pg_type once. The
 * fewest of a few tries: on a server that runs autovacuum, a worker's visit during one adds to it.
 */
let connectionCost = 0;
async function calibrate(): Promise<number> {
  const costs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const before = await transactionsSoFar();
    const consumer = consumerDatabase(config);
    await consumer.run((sql) => sql`select 1`);
    await consumer.end();
    costs.push((await transactionsSoFar()) - before - 1);
  }
  return Math.min(...costs);
}
afterAll(async () => {
  await admin.unsafe(`drop database if exists "${DATABASE}" with (force)`);
  await admin.end({ timeout: 5 });
});

/**
 * A client on the private database, closed afterwards so that no session of ours is open while transactions are
 * counted.
 */
async function withChecker<T>(work: (sql: Sql) => Promise<T>): Promise<T> {
  const sql = createSql(config.db, { max: 1, connection: { application_name: 'trace-consumer-tests' } });
  try {
    return await work(sql);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/**
 * Transactions committed and rolled back in the private database so far. A backend reports its counts when it
 * exits, so this first waits until every session on the database has ended.
 */
async function transactionsSoFar(): Promise<number> {
  for (let i = 0; ; i++) {
    const [open] = await admin<
      { n: number }[]
    >`select count(*)::int as n from pg_stat_activity where datname = ${DATABASE}`;
    if (open?.n === 0) break;
    if (i > 500) throw new Error('sessions on the private database did not end');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const [row] = await admin<
    { n: string }[]
  >`select xact_commit + xact_rollback as n from pg_stat_database where datname = ${DATABASE}`;
  return Number(row?.n);
}

/**
 * One batch through the real core on a fresh consumer client (ended afterwards, so its counts are reported).
 * `transactions` is null when the server runs autovacuum and a worker visited the database meanwhile (it is off for
 * the tables, but a visit that vacuums nothing still counts two transactions in pg_stat_database), as
 * autovacuumVisitTrace sees. The embedded test server runs with autovacuum off, so there every batch is counted.
 */
async function runCounted(
  event: unknown,
): Promise<{ result?: BatchResult; error?: unknown; transactions: number | null; attempts: number }> {
  const vacuumsBefore = autovacuumRunning ? await withChecker(autovacuumVisitTrace) : 0;
  const before = await transactionsSoFar();
  const attemptsBefore = halvingAttempts.consumer;
  const consumer = consumerDatabase(config);
  const deadline = Date.now() + 15_000; // a clock that runs down: a loop would end in failures, not hang the test
  const deps = { database: consumer, config, logger: createLogger('error', {}, () => {}), deadline };
  let outcome: { result?: BatchResult; error?: unknown };
  try {
    outcome = { result: await processEvent(event, deps) };
  } catch (error) {
    outcome = { error };
  }
  await consumer.end();
  // One connection while the database is healthy; its own cost is not the batch's.
  const transactions = (await transactionsSoFar()) - before - connectionCost;
  const undisturbed =
    !autovacuumRunning || (await withChecker(autovacuumVisitTrace)) - vacuumsBefore === visitTraceOfCheck;
  return {
    ...outcome,
    transactions: undisturbed ? transactions : null,
    attempts: halvingAttempts.consumer - attemptsBefore,
  };
}

/** The smallest change between two checks with nothing between them, over a few tries (a visit may fall in one). */
async function calibrateVisitTrace(): Promise<number> {
  const deltas: number[] = [];
  for (let i = 0; i < 5; i++) {
    const first = await withChecker(autovacuumVisitTrace);
    await transactionsSoFar(); // waits until the checker's session has ended and reported its counts
    deltas.push((await withChecker(autovacuumVisitTrace)) - first);
  }
  return Math.min(...deltas);
}

/**
 * A number that grows whenever an autovacuum worker visited the database: its vacuums and analyzes, and its scans of
 * pg_class, which every visit makes to choose its tables, even one that then vacuums nothing (and still counts two
 * transactions). The check's own query scans pg_class too (pg_stat_all_tables reads it), which the next check sees:
 * calibrateVisitTrace measures that share. A batch that moved the count more is left out of the bound; should the
 * consumer itself ever scan pg_class, every batch would be left out and the test fail on counted > disturbed.
 */
async function autovacuumVisitTrace(sql: Sql): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    select (select coalesce(sum(autovacuum_count + autoanalyze_count), 0) from pg_stat_all_tables)
      + (select coalesce(seq_scan, 0) from pg_stat_sys_tables where relid = 'pg_catalog.pg_class'::regclass) as n`;
  return Number(row?.n ?? 0);
}

// ---------------------------------------------------------------------------------------------------------------
// What a batch holds

type Kind =
  | 'survey'
  | 'rejected_survey'
  | 'upstream_error'
  | 'rejected_error'
  | 'tombstone'
  | 'undecodable'
  | 'invalid_json'
  | 'invalid_message';

interface Unit {
  kind: Kind;
  traceId: string;
  /** Trace id written as a bare JSON number (only for all-digit ids). */
  numericId: boolean;
  course: string;
  instructor: string;
  /** Epoch ms of processedAt for valid reports. */
  at: number;
  ratings: number;
  bom: boolean;
  partition: number;
  timestamp: number;
  key: Buffer | null;
  headers: { key: string; value: Buffer }[];
}

const TRACE_IDS = ['t0', 't1', 't2', 't3', 't4', '9007199254740993', '9007199254740992'];
const DATES = [Date.UTC(2024, 0, 1), Date.UTC(2024, 0, 2), Date.UTC(2024, 0, 3)];
const HEADER_KEYS = ['trace', 'trace', 'content-type', 'ключ', 'k\u0000ey', 'lone\ud800', ''];

const unit = (partitions: number) =>
  fc.record({
    kind: fc.constantFrom<Kind>(
      'survey',
      'survey',
      'survey',
      'rejected_survey',
      'upstream_error',
      'rejected_error',
      'tombstone',
      'undecodable',
      'invalid_json',
      'invalid_message',
    ),
    traceId: fc.constantFrom(...TRACE_IDS),
    numericId: fc.boolean(),
    course: fc.constantFrom('C0', 'C1', '18446744073709551617'),
    instructor: fc.constantFrom('Ada', 'Grace'),
    at: fc.constantFrom(...DATES),
    ratings: fc.nat({ max: 2 }),
    bom: fc.boolean(),
    partition: fc.nat({ max: partitions - 1 }),
    timestamp: fc.constantFrom(-1, 1_700_000_000_000),
    key: fc.option(fc.uint8Array({ maxLength: 8 }).map((b) => Buffer.from(b))),
    headers: fc.array(
      fc.record({
        key: fc.constantFrom(...HEADER_KEYS),
        value: fc.uint8Array({ maxLength: 12 }).map((b) => Buffer.from(b)),
      }),
      { maxLength: 3 },
    ),
  });

const batches = fc
  .integer({ min: 1, max: 3 })
  .chain((partitions) =>
    fc.array(fc.array(unit(partitions), { minLength: 1, maxLength: 24 }), { minLength: 1, maxLength: 3 }),
  );

/** A value PostgreSQL's timestamptz rejects though it is valid ISO-8601: there is no year 0. */
const YEAR_ZERO = '0000-06-15T00:00:00Z';

function value(u: Unit): unknown {
  const id = u.numericId && /^\d+$/.test(u.traceId) ? `"@@${u.traceId}@@"` : null;
  const text = (object: unknown) => {
    const json = JSON.stringify(object);
    return id === null ? json : json.replace(id, u.traceId); // a bare number, beyond 2^53 for the long ids
  };
  const processedAt = u.kind.startsWith('rejected') ? YEAR_ZERO : new Date(u.at).toISOString();
  const traceId = id === null ? u.traceId : `@@${u.traceId}@@`;
  switch (u.kind) {
    case 'tombstone':
      return null;
    case 'undecodable':
      return Buffer.from([0x7b, 0xc3, 0x28, 0x7d]);
    case 'invalid_json':
      return `{"traceId": "${u.traceId}", `;
    case 'invalid_message':
      return text({ traceId, course: 'not an object', instructor: { name: u.instructor } });
    case 'upstream_error':
    case 'rejected_error':
      return text({ traceId, error: 'OCR failed', processedAt });
    default: {
      const course = u.course === '18446744073709551617' ? '@@C@@' : u.course;
      const json = text({
        traceId,
        processedAt,
        instructor: { name: u.instructor },
        course: { courseId: course, courseName: `name of ${u.traceId}` },
        ratings: Array.from({ length: u.ratings }, (_, i) => ({ questionText: `q${i}`, courseMean: u.at / 1e12 + i })),
        comments: [{ commentText: `from ${u.traceId} at ${processedAt}` }],
      }).replace('"@@C@@"', '18446744073709551617');
      return u.bom ? `\ufeff${json}` : json;
    }
  }
}

const toInput = (u: Unit): RecordInput => ({
  value: value(u),
  partition: u.partition,
  timestamp: u.timestamp,
  key: u.key,
  headers: u.headers,
});

// ---------------------------------------------------------------------------------------------------------------
// The reference model: what the README promises, written as simply as possible.

interface Placed extends Unit {
  offset: number;
}
interface Claim {
  unit: Placed;
  upstream: boolean;
}
interface DeadLetter {
  reason: string;
  traceId: string | null;
  unit: Placed;
}

class Model {
  claims = new Map<string, Claim>();
  deadLetters = new Map<string, DeadLetter>();
  /**
   * Instructors settled ahead of the batch transaction: those of the first copy of every trace id that is a valid
   * report and not claimed before the batch, stored or not (rejected, superseded). A report whose trace id an
   * earlier batch claimed is a duplicate and names no instructor, even one it alone carries (a corrected resend).
   */
  referenced = new Set<string>();

  /**
   * Applies one batch (units in event order); returns each unit's expected state, the rejected units written, and
   * whether the batch settles instructors in a transaction of their own (it holds a valid report).
   */
  apply(units: Placed[]): { states: string[]; rejected: number; reference: boolean } {
    const firstCopies = new Map<string, Placed>();
    for (const u of units) {
      if (
        ['survey', 'rejected_survey', 'upstream_error', 'rejected_error'].includes(u.kind) &&
        !firstCopies.has(u.traceId)
      )
        firstCopies.set(u.traceId, u);
    }
    const surveys = [...firstCopies.values()].filter((u) => u.kind === 'survey' || u.kind === 'rejected_survey');
    for (const u of surveys) if (!this.claims.has(u.traceId)) this.referenced.add(u.instructor);
    const states: string[] = [];
    const done = new Set<string>(); // trace ids settled in this batch: later copies are duplicates
    let rejected = 0;
    for (const u of units) {
      const dead = (reason: string, traceId: string | null) => {
        const key = `${u.partition}/${u.offset}`;
        if (!this.deadLetters.has(key)) this.deadLetters.set(key, { reason, traceId, unit: u });
        states.push('dead_lettered');
      };
      if (u.kind === 'tombstone') dead('tombstone', null);
      else if (u.kind === 'undecodable') dead('invalid_utf8', null);
      else if (u.kind === 'invalid_json') dead('invalid_json', null);
      else if (u.kind === 'invalid_message') dead('invalid_message', u.traceId);
      else if (done.has(u.traceId)) states.push('duplicate');
      else if (u.kind === 'rejected_survey' || u.kind === 'rejected_error') {
        // PostgreSQL rejects it whether or not its trace id is known; the next copy in the batch gets its chance.
        rejected += 1;
        dead('db_rejected', u.traceId);
      } else {
        done.add(u.traceId);
        if (this.claims.has(u.traceId)) states.push('duplicate');
        else {
          this.claims.set(u.traceId, { unit: u, upstream: u.kind === 'upstream_error' });
          states.push(u.kind === 'upstream_error' ? 'upstream_error' : 'survey');
        }
      }
    }
    return { states, rejected, reference: surveys.length > 0 };
  }

  /** The newest stored report per key: later processedAt, then higher offset, then higher partition. */
  newest(key: (u: Placed) => string): Map<string, Placed> {
    const newest = new Map<string, Placed>();
    for (const { unit: u, upstream } of this.claims.values()) {
      if (upstream) continue;
      const current = newest.get(key(u));
      const order = (x: Placed) => [x.at, x.offset, x.partition];
      if (current === undefined || compare(order(u), order(current)) > 0) newest.set(key(u), u);
    }
    return newest;
  }
}

const compare = (a: number[], b: number[]) => {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
};

/** Units in the order the event lists them, with the offsets buildKafkaEvent gives: partitions in first-seen order. */
function place(units: Unit[], firstOffset: number): Placed[] {
  const next = new Map<number, number>();
  const placed = units.map((u) => {
    const offset = next.get(u.partition) ?? firstOffset;
    next.set(u.partition, offset + 1);
    return { ...u, offset };
  });
  const partitions = [...new Set(units.map((u) => u.partition))];
  return partitions.flatMap((p) => placed.filter((u) => u.partition === p));
}

// ---------------------------------------------------------------------------------------------------------------
// The database, read back in the model's terms

async function readDatabase(sql: Sql) {
  const [processed, courses, pairs, ratings, comments, deadLetters, instructors] = await Promise.all([
    sql`select trace_id, status, kafka_partition, kafka_offset::int from trace.processed_traces order by trace_id`,
    sql`select course_id, trace_id from trace.courses order by course_id`,
    sql`select c.course_id, i.name, ci.trace_id from trace.course_instructors ci join trace.courses c
      on c.id = ci.course_id
        join trace.instructors i on i.id = ci.instructor_id order by 1, 2`,
    sql`select c.course_id, i.name, r.trace_id, count(*)::int as n from trace.ratings r join trace.courses c
      on c.id = r.course_id
        join trace.instructors i on i.id = r.instructor_id group by 1, 2, 3 order by 1, 2, 3`,
    sql`select c.course_id, i.name, m.trace_id, m.comment_text from trace.comments m join trace.courses c
      on c.id = m.course_id
        join trace.instructors i on i.id = m.instructor_id order by 1, 2, 3`,
    sql`select kafka_partition, kafka_offset::int, kafka_timestamp, key, value, header_keys, header_values,
      reason, trace_id
        from trace.dead_letters order by 1, 2`,
    sql`select name from trace.instructors order by name`,
  ]);
  return { processed, courses, pairs, ratings, comments, deadLetters, instructors };
}

function expectedDatabase(model: Model) {
  const claims = [...model.claims.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
  const pairWinners = model.newest((u) => `${u.course}\u0000${u.instructor}`);
  const winners = new Set([...pairWinners.values()]);
  const sortBy = <T>(rows: T[], key: (r: T) => string) =>
    rows.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  return {
    processed: claims.map(([traceId, c]) => ({
      trace_id: traceId,
      // A survey that is not the newest for its pair is `superseded` or `stored`, depending on what it was written
      // after; the newest one is `stored`.
      status: c.upstream
        ? 'upstream_error'
        : winners.has(c.unit)
          ? 'stored'
          : expect.stringMatching(/^(stored|superseded)$/),
      kafka_partition: c.unit.partition,
      kafka_offset: c.unit.offset,
    })),
    courses: sortBy(
      [...model.newest((u) => u.course).values()].map((u) => ({ course_id: u.course, trace_id: u.traceId })),
      (r) => r.course_id,
    ),
    pairs: sortBy(
      [...pairWinners.values()].map((u) => ({ course_id: u.course, name: u.instructor, trace_id: u.traceId })),
      (r) => `${r.course_id}\u0000${r.name}`,
    ),
    ratings: sortBy(
      [...pairWinners.values()]
        .filter((u) => u.ratings > 0)
        .map((u) => ({ course_id: u.course, name: u.instructor, trace_id: u.traceId, n: u.ratings })),
      (r) => `${r.course_id}\u0000${r.name}`,
    ),
    comments: sortBy(
      [...pairWinners.values()].map((u) => ({
        course_id: u.course,
        name: u.instructor,
        trace_id: u.traceId,
        comment_text: `from ${u.traceId} at ${new Date(u.at).toISOString()}`,
      })),
      (r) => `${r.course_id}\u0000${r.name}`,
    ),
    deadLetters: [...model.deadLetters.values()]
      .sort((a, b) => compare([a.unit.partition, a.unit.offset], [b.unit.partition, b.unit.offset]))
      .map(({ reason, traceId, unit: u }) => {
        const bytes = value(u);
        return {
          kafka_partition: u.partition,
          kafka_offset: u.offset,
          kafka_timestamp: u.timestamp < 0 ? null : new Date(u.timestamp),
          key: u.key,
          value: bytes === null ? null : Buffer.isBuffer(bytes) ? bytes : Buffer.from(String(bytes), 'utf8'),
          header_keys: u.headers.map((h) => Buffer.from(h.key, 'utf8')),
          header_values: u.headers.map((h) => h.value),
          reason,
          trace_id: traceId,
        };
      }),
    instructors: [
      ...new Set([
        ...model.referenced,
        ...[...model.claims.values()].filter((c) => !c.upstream).map((c) => c.unit.instructor),
      ]),
    ]
      .sort()
      .map((name) => ({ name })),
  };
}

/**
 * The stated bound for n records of which k are rejected by PostgreSQL: 1 + k(2⌈log2 n⌉ + 1) write transactions,
 * plus the one that settles the instructors first when the batch holds a valid report.
 */
const bound = (n: number, k: number, reference: boolean) =>
  (reference ? 1 : 0) + 1 + k * (2 * Math.ceil(Math.log2(n)) + 1);

// ---------------------------------------------------------------------------------------------------------------

const LONG = process.env.LONG_TESTS === '1';
/** Cases per property; FC_SEED and FC_PATH replay a reported run or counterexample. */
const RUNS = {
  numRuns: LONG ? 250 : 25,
  ...(process.env.FC_SEED ? { seed: Number(process.env.FC_SEED) } : {}),
  ...(process.env.FC_PATH ? { path: process.env.FC_PATH } : {}),
};

/**
 * Every table emptied. DELETE, not TRUNCATE: a truncate rewrites catalog rows, and the churn brings autovacuum to the
 * catalogs.
 */
async function emptyTables(sql: Sql): Promise<void> {
  // DELETE, not TRUNCATE: a truncate rewrites catalog rows, and the churn brings autovacuum to the catalogs.
  for (const table of [...CONSUMER_TABLES].reverse()) await sql`delete from ${sql(`trace.${table}`)}`;
}
let counted = 0;
let disturbed = 0;

describe('the model of bad input never blocking a partition', () => {
  it(
    'should settle every batch as the model does, with no failures, within the transaction bound, and replay to ' +
      'no change',
    async () => {
      await fc.assert(
        fc.asyncProperty(batches, async (generated) => {
          await withChecker(emptyTables);
          const model = new Model();
          const events: unknown[] = [];
          const references: boolean[] = [];
          for (const [b, units] of generated.entries()) {
            const firstOffset = 1000 * (b + 1);
            const placed = place(units, firstOffset);
            const event = buildKafkaEvent(units.map(toInput), { firstOffset });
            events.push(event);
            const expected = model.apply(placed);

            const outcome = await runCounted(event);
            references.push(expected.reference);
            expect(outcome.error).toBeUndefined();
            const states = outcome.result!.outcomes.map((o) =>
              o.state === 'stored' || o.state === 'superseded' ? 'survey' : o.state,
            );
            expect(states).toEqual(expected.states);
            expect(outcome.result!.summary.failed).toBe(0);
            if (outcome.transactions === null) disturbed += 1;
            else {
              counted += 1;
              expect(outcome.transactions).toBeGreaterThanOrEqual(1);
              expect(outcome.transactions).toBeLessThanOrEqual(
                bound(units.length, expected.rejected, expected.reference),
              );
              // Each attempt of the search is one write transaction (no transient failures here): the channel is true.
              expect(outcome.attempts).toBe(outcome.transactions - (expected.reference ? 1 : 0));
            }
          }
          const stored = await withChecker(readDatabase);
          expect(stored).toEqual(expectedDatabase(model));

          // A replay (Lambda delivering the same batches again) settles everything again and changes nothing.
          for (const [b, event] of events.entries()) {
            const again = await runCounted(event);
            expect(again.result?.summary.failed).toBe(0);
            expect(again.result?.summary.stored).toBe(0);
            if (again.transactions !== null) expect(again.attempts).toBe(again.transactions - (references[b] ? 1 : 0));
          }
          expect(await withChecker(readDatabase)).toEqual(stored);
        }),
        RUNS,
      );
      // The bound was checked on every batch, or (on a server that runs autovacuum) on most of them.
      if (autovacuumRunning) expect(counted).toBeGreaterThan(disturbed);
      else expect(disturbed).toBe(0);
    },
    LONG ? 1_800_000 : 300_000,
  ); // a few seconds a case on a loaded machine, and shrinking a failure takes more

  it(
    'should redrive the same batches, stored as dead letters, to the outcomes and tables of the model, within ' +
      'the savepoint bound',
    async () => {
      await fc.assert(
        fc.asyncProperty(batches, async (generated) => {
          await withChecker(emptyTables);
          const model = new Model();
          const referenced = new Set<string>();
          const database = consumerDatabase(config);
          try {
            for (const [b, units] of generated.entries()) {
              const firstOffset = 1000 * (b + 1);
              const placed = place(units, firstOffset);
              // The batch's records stored as dead letters, in event order, as a rule since relaxed would have left
              // them.
              const records = decodeEvent(buildKafkaEvent(units.map(toInput), { firstOffset }));
              const deadLetters = records.map((record) => ({
                record,
                row: deadLetterRow(record, 'invalid_message', 'stored for the redrive model'),
              }));
              // One at a time, so that their ids (the redrive's order) follow the event's, not writeBatch's.
              await withChecker((sql) =>
                inTransaction(sql, async (tx) => {
                  for (const letter of deadLetters)
                    await writeBatch(tx, 'trace', { candidates: [], deadLetters: [letter] });
                }),
              );

              // Instructors are settled ahead of the redrive batch for every report it holds whose trace id is
              // unclaimed.
              for (const u of placed)
                if ((u.kind === 'survey' || u.kind === 'rejected_survey') && !model.claims.has(u.traceId))
                  referenced.add(u.instructor);
              const expected = model.apply(placed);
              const attemptsBefore = halvingAttempts.redrive;
              const response = await runDeadLetterAction(
                { action: 'redrive', batchSize: 1000 },
                { database, config, logger: createLogger('error', {}, () => {}), deadline: Date.now() + 15_000 },
              );
              if (response.action !== 'redrive') throw new Error(`unexpected response ${response.action}`);
              expect(response.done).toBe(true);

              // (a) each letter as the model says; a report PostgreSQL rejects is written even after its trace id was
              // stored in the batch (a redrive writes every copy, one round after another), so it is always
              // db_rejected.
              expect(response.letters.map((l) => `${l.partition}/${l.offset}`)).toEqual(
                placed.map((u) => `${u.partition}/${u.offset}`),
              );
              const results = response.letters.map((l) => {
                return l.result === 'dead_lettered'
                  ? `dead_lettered:${l.reason}`
                  : l.result === 'superseded'
                    ? 'stored'
                    : l.result;
              });
              const states = placed.map((u, i) => {
                if (u.kind === 'rejected_survey' || u.kind === 'rejected_error') return 'dead_lettered:db_rejected';
                if (expected.states[i] === 'dead_lettered')
                  return `dead_lettered:${model.deadLetters.get(`${u.partition}/${u.offset}`)!.reason}`;
                return expected.states[i] === 'survey' ? 'stored' : expected.states[i];
              });
              expect(results).toEqual(states);

              // (c) the search's attempts: each round (the copies of a trace id are written one round after another) is
              // one search of at most n candidates, and the k rejected ones are spread over the rounds.
              const parseable = placed.filter((u) =>
                ['survey', 'rejected_survey', 'upstream_error', 'rejected_error'].includes(u.kind),
              );
              const copies = new Map<string, number>();
              for (const u of parseable) copies.set(u.traceId, (copies.get(u.traceId) ?? 0) + 1);
              const rounds = Math.max(0, ...copies.values());
              const rejected = parseable.filter((u) => u.kind.startsWith('rejected')).length;
              const log = parseable.length === 0 ? 0 : Math.ceil(Math.log2(parseable.length));
              expect(halvingAttempts.redrive - attemptsBefore).toBeLessThanOrEqual(rounds + 2 * rejected * log);
              expect(halvingAttempts.redrive - attemptsBefore).toBeGreaterThanOrEqual(rounds);
            }
          } finally {
            await database.end();
          }
          // (b) the tables as the consumer leaves them (dead letters aside: they were there before the redrive).
          const { deadLetters: _stored, instructors, ...tables } = await withChecker(readDatabase);
          const { deadLetters: _expected, instructors: _consumers, ...expectedTables } = expectedDatabase(model);
          expect(tables).toEqual(expectedTables);
          const claimed = [...model.claims.values()].filter((c) => !c.upstream).map((c) => c.unit.instructor);
          expect(instructors).toEqual([...new Set([...referenced, ...claimed])].sort().map((name) => ({ name })));
        }),
        RUNS,
      );
    },
    LONG ? 1_800_000 : 300_000,
  );
});
