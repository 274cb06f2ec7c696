/**
 * npm run bench:scale: how throughput grows with partitions. N execution environments (separate processes, the
 * bundled handler, one warm client each) write one partition each, at once, into one PostgreSQL, N = 1 to --max;
 * the COPY floor runs the same way (N processes COPYing the same rows into key-less tables). Per N: aggregate
 * records/s and speedup over N = 1 for both, lock waits sampled every ~10 ms (pg_stat_activity), WAL bytes per
 * record (pg_current_wal_lsn), deadlocks (pg_stat_database), the consumer's retries (its log lines), and an exact
 * count of every table's rows. Writes bench/results/scale.json and scale.svg (a --quick run: bench/.quick/).
 *   npm run bench:scale -- --max 4      # N = 1..4 (default 8)
 *   npm run bench:scale -- --quick      # smoke run: N = 1..2, few batches, well under a minute
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, relative } from 'node:path';
import { build } from 'esbuild';
import { loadConfig } from '../lib/config';
import { createSql, type Sql } from '../lib/postgres/client';
import { applySchema } from '../scripts/db/migrations';
import { startLocalDatabase } from '../scripts/local-db';
import { bundleOptions } from './bundle';
import { COPY_TABLES_SQL } from './copy-floor';
import { expectedCounts, REGIMES, steadyInstructors, type Cell, type Regime } from './scale-data';
import type { FromRunner, ToRunner } from './scale-runner';
import { renderScaleChart } from './scale-chart';
import { round } from './stats';

const root = join(__dirname, '..');
const CONSUMER_SCHEMA = 'scale_consumer';
const FLOOR_SCHEMA = 'scale_floor';
const WRITERS = ['consumer', 'floor'] as const;
type Writer = (typeof WRITERS)[number];

export interface ScaleOptions {
  max: number;
  batchSizes: number[];
  regimes: readonly Regime[];
  /** Batches each process writes per measurement, by batch size. */
  batches: (batchSize: number) => number;
  /** Measure the WAL by record type at the end (creates the pg_walinspect extension in the database). */
  walBreakdown: boolean;
}

export const FULL: ScaleOptions = {
  max: 8,
  batchSizes: [100, 1000],
  regimes: REGIMES,
  batches: (size) => (size >= 1000 ? 2 : 8),
  walBreakdown: true,
};
export const QUICK: ScaleOptions = {
  max: 2,
  batchSizes: [100, 1000],
  regimes: REGIMES,
  batches: () => 1,
  walBreakdown: true,
};

export interface WriterResult {
  records: number;
  seconds: number;
  recordsPerSecond: number;
  /** Over the same writer's N = 1, same regime and batch size. */
  speedup: number;
  walBytesPerRecord: number;
  /** Samples (one backend seen waiting on a heavyweight lock in one poll) of this writer's sessions. */
  lockWaitSamples: number;
  /** Of those, waits on another of the benchmark's sessions, i.e. between partitions, by wait event and statement. */
  lockWaitsBetweenPartitions: Record<string, number>;
  /**
   * Of those, the waits on another session's transaction or row (every lock but relation extension): the target is
   * none. Lock:extend, two sessions adding a page to the same table at once, lasts as long as adding the page, and
   * the floor has it too.
   */
  transactionWaitsBetweenPartitions: number;
  deadlocks: number;
  retries: number;
  failed: number;
  counts: Record<string, number>;
  countsExpected: Record<string, number>;
  countsOk: boolean;
}

export interface ScaleRow {
  regime: Regime;
  batchSize: number;
  n: number;
  batchesPerProcess: number;
  consumer: WriterResult;
  floor: WriterResult;
  /** Consumer speedup / floor speedup (target: at least 0.9 up to the cores). */
  speedupVsFloor: number;
  /** Consumer throughput / floor throughput at this N. */
  vsFloor: number;
  /** Consumer WAL per record / floor's (target: at most 1.15). */
  walVsFloor: number;
}

export interface ScaleReport {
  measuredAt: string;
  machine: {
    cpu: string;
    cores: number;
    node: string;
    postgres: string;
    loadAverageAtStart: number[];
    loadAverageAtEnd: number[];
  };
  options: { max: number; batchSizes: number[]; regimes: readonly Regime[]; batchesPerProcess: Record<number, number> };
  durationSeconds: number;
  rows: ScaleRow[];
  /** Every table of every measurement held exactly the rows expected. */
  countsOk: boolean;
  /** The consumer's waits on another partition's transaction or row, in all measurements (target: 0). */
  consumerLockWaitsBetweenPartitions: number;
  /** WAL bytes per record by record type, one batch of 100 written alone (needs pg_walinspect). */
  walBreakdown?: Record<Writer, Record<string, number>>;
}

/** The measurements, in their own schemas of the server; the caller owns the server. */
export async function runScale(
  options: ScaleOptions,
  dbEnv: Record<string, string>,
  log: (line: string) => void = () => {},
): Promise<ScaleReport> {
  const started = performance.now();
  const loadAtStart = loadAverage();
  const { IS_LOCAL: _local, ...inherited } = process.env; // IS_LOCAL would close the client after every invocation
  const env = { ...inherited, ...dbEnv, LOG_LEVEL: 'warn', MAX_RETRIES: '5' };
  const admin = createSql(loadConfig(env).db, { max: 1, connection: { application_name: 'bench-scale-admin' } });
  const dir = mkdtempSync(join(root, 'bench', '.scale-'));
  const children: Record<Writer, Runner[]> = { consumer: [], floor: [] };
  try {
    await admin.unsafe(
      `drop schema if exists "${CONSUMER_SCHEMA}" cascade; drop schema if exists "${FLOOR_SCHEMA}" cascade`,
    );
    await applySchema(admin, CONSUMER_SCHEMA);
    await admin.unsafe(COPY_TABLES_SQL(FLOOR_SCHEMA));
    const bundle = join(dir, 'consumer.js');
    await build(bundleOptions(bundle));
    const runner = join(__dirname, 'scale-runner.ts');
    for (const writer of WRITERS) {
      const schema = writer === 'consumer' ? CONSUMER_SCHEMA : FLOOR_SCHEMA;
      children[writer] = await Promise.all(
        Array.from({ length: options.max }, () =>
          Runner.start(runner, { ...env, DB_SCHEMA: schema, SCALE_WRITER: writer, SCALE_BUNDLE: bundle }),
        ),
      );
      // Warm every process (connection, schema check, code paths) on rows that are then removed.
      await measure(admin, children[writer], { tag: `warm-${writer}`, regime: 'steady', batchSize: 10, batches: 1 });
    }

    const rows: ScaleRow[] = [];
    for (const regime of options.regimes) {
      for (const batchSize of options.batchSizes) {
        const base: Partial<Record<Writer, number>> = {};
        for (let n = 1; n <= options.max; n++) {
          const cell: Cell = {
            tag: `${regime[0]}${batchSize}n${n}`,
            regime,
            batchSize,
            batches: options.batches(batchSize),
          };
          // The order alternates with N, so that neither writer always runs on a warmer cache.
          const order: Writer[] = n % 2 ? ['floor', 'consumer'] : ['consumer', 'floor'];
          const result = {} as Record<Writer, WriterResult>;
          for (const writer of order) {
            const m = await measure(admin, children[writer].slice(0, n), cell);
            const expected = expectedCounts(cell, n)[writer];
            const counts = await countRows(admin, writer, Object.keys(expected));
            const recordsPerSecond = m.records / (m.ms / 1000);
            base[writer] ??= recordsPerSecond;
            result[writer] = {
              records: m.records,
              seconds: round(m.ms / 1000, 2),
              recordsPerSecond: round(recordsPerSecond, 0),
              speedup: round(recordsPerSecond / base[writer]!, 2),
              walBytesPerRecord: round(m.walBytes / m.records, 0),
              lockWaitSamples: m.lockWaitSamples,
              lockWaitsBetweenPartitions: m.lockWaitsBetweenPartitions,
              transactionWaitsBetweenPartitions: Object.entries(m.lockWaitsBetweenPartitions).reduce(
                (sum, [what, k]) => sum + (what.startsWith('Lock:extend') ? 0 : k),
                0,
              ),
              deadlocks: m.deadlocks,
              retries: m.retries,
              failed: m.failed,
              counts,
              countsExpected: expected,
              countsOk: Object.entries(expected).every(([table, rows]) => counts[table] === rows) && m.failed === 0,
            };
          }
          const row: ScaleRow = {
            regime,
            batchSize,
            n,
            batchesPerProcess: cell.batches,
            consumer: result.consumer,
            floor: result.floor,
            speedupVsFloor: round(result.consumer.speedup / result.floor.speedup, 2),
            vsFloor: round(result.consumer.recordsPerSecond / result.floor.recordsPerSecond, 2),
            walVsFloor: round(result.consumer.walBytesPerRecord / result.floor.walBytesPerRecord, 2),
          };
          rows.push(row);
          log(formatRow(row));
        }
      }
    }
    return {
      measuredAt: new Date().toISOString(),
      machine: {
        cpu: cpus()[0]?.model ?? 'unknown',
        cores: cpus().length,
        node: process.version,
        postgres:
          dbEnv.DB_HOST === '127.0.0.1' || dbEnv.DB_HOST === 'localhost'
            ? 'PostgreSQL on loopback'
            : `configured at ${dbEnv.DB_HOST}`,
        loadAverageAtStart: loadAtStart,
        loadAverageAtEnd: loadAverage(),
      },
      options: {
        max: options.max,
        batchSizes: options.batchSizes,
        regimes: options.regimes,
        batchesPerProcess: Object.fromEntries(options.batchSizes.map((s) => [s, options.batches(s)])),
      },
      durationSeconds: round((performance.now() - started) / 1000, 0),
      rows,
      countsOk: rows.every((r) => r.consumer.countsOk && r.floor.countsOk),
      consumerLockWaitsBetweenPartitions: rows.reduce(
        (sum, r) => sum + r.consumer.transactionWaitsBetweenPartitions,
        0,
      ),
      walBreakdown: options.walBreakdown
        ? await walBreakdown(admin, { consumer: children.consumer[0]!, floor: children.floor[0]! })
        : undefined,
    };
  } finally {
    await Promise.all([...children.consumer, ...children.floor].map((c) => c.stop()));
    await admin.end({ timeout: 5 });
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A forked runner and its messages. */
class Runner {
  private waiting: ((m: FromRunner) => void) | undefined;
  private constructor(private readonly child: ChildProcess) {
    child.on('message', (m: FromRunner) => {
      const resolve = this.waiting;
      this.waiting = undefined;
      resolve?.(m);
    });
    child.on('exit', (code) => this.waiting?.({ type: 'error', message: `runner exited with code ${code}` }));
  }

  static async start(path: string, env: NodeJS.ProcessEnv): Promise<Runner> {
    const child = fork(path, [], {
      env,
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      cwd: root,
    });
    const runner = new Runner(child);
    await runner.expect('ready');
    return runner;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** Sends `message` and waits for the answer of type `type`. */
  async ask<T extends FromRunner['type']>(message: ToRunner, type: T): Promise<Extract<FromRunner, { type: T }>> {
    const answer = this.expect(type);
    this.child.send(message);
    return answer;
  }

  private expect<T extends FromRunner['type']>(type: T): Promise<Extract<FromRunner, { type: T }>> {
    return new Promise((resolve, reject) => {
      this.waiting = (m) =>
        m.type === type
          ? resolve(m as Extract<FromRunner, { type: T }>)
          : reject(new Error(m.type === 'error' ? m.message : `expected ${type}, got ${m.type}`));
    });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.send({ type: 'exit' } satisfies ToRunner);
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))]);
    if (this.child.exitCode === null) this.child.kill();
  }
}

/**
 * One measurement: empty tables (and, steady, the instructors in place), a checkpoint so that every measurement
 * starts with the same full-page writes to come, then every runner writes its partition at once while the lock
 * sampler polls. Timed from "go" to the last runner done.
 */
async function measure(admin: Sql, runners: readonly Runner[], cell: Cell) {
  await empty(admin);
  if (cell.regime === 'steady') {
    await admin`insert into ${admin(`${CONSUMER_SCHEMA}.instructors`)} (name)
      select unnest(${steadyInstructors()}::text[])`;
  }
  await Promise.all(runners.map((r, partition) => r.ask({ type: 'prepare', cell, partition }, 'ready')));
  await admin`checkpoint`.catch(() => {}); // needs superuser (or pg_checkpoint) on a configured server
  const before = await serverCounters(admin);
  const sampler = new LockSampler(admin);
  const started = performance.now();
  const done = await Promise.all(runners.map((r) => r.ask({ type: 'go' }, 'done')));
  const ms = performance.now() - started;
  const samples = await sampler.stop();
  const after = await serverCounters(admin);
  return {
    ms,
    records: runners.length * cell.batches * cell.batchSize,
    walBytes: Number(after.lsn - before.lsn),
    deadlocks: after.deadlocks - before.deadlocks,
    retries: done.reduce((sum, d) => sum + d.retries, 0),
    failed: done.reduce((sum, d) => sum + d.failed, 0),
    ...samples,
  };
}

async function serverCounters(admin: Sql): Promise<{ lsn: bigint; deadlocks: number }> {
  const [row] = await admin<{ lsn: string; deadlocks: number }[]>`
    select pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text as lsn, deadlocks::int as deadlocks
    from pg_stat_database where datname = current_database()`;
  return { lsn: BigInt(row!.lsn.split('.')[0]!), deadlocks: row!.deadlocks };
}

/** The benchmark's sessions: the consumers' (application_name set by lib/postgres/client.ts) and the floor's. */
const BENCH_SESSIONS = ['trace-consumer', 'bench-scale-floor'];

/**
 * Polls pg_stat_activity every ~10 ms for the benchmark's sessions waiting on a heavyweight lock (wait_event_type
 * 'Lock'), and for each one whether a session blocking it is another of the benchmark's: a wait between partitions.
 */
class LockSampler {
  private samples = 0;
  private readonly between: Record<string, number> = {};
  private running = true;
  private readonly loop: Promise<void>;

  constructor(private readonly admin: Sql) {
    this.loop = this.run();
  }

  private async run() {
    while (this.running) {
      const rows = await this.admin<{ event: string; query: string; between: boolean }[]>`
        select a.wait_event_type || ':' || a.wait_event as event,
          left(regexp_replace(a.query, '[[:space:]]+', ' ', 'g'), 40) as query,
          exists (select from pg_stat_activity b where b.pid = any(pg_blocking_pids(a.pid))
            and b.application_name = any(${BENCH_SESSIONS})) as between
        from pg_stat_activity a
        where a.wait_event_type = 'Lock' and a.application_name = any(${BENCH_SESSIONS})`;
      for (const r of rows) {
        this.samples += 1;
        if (r.between)
          this.between[`${r.event} in ${r.query.trim()}`] = (this.between[`${r.event} in ${r.query.trim()}`] ?? 0) + 1;
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  async stop() {
    this.running = false;
    await this.loop;
    return { lockWaitSamples: this.samples, lockWaitsBetweenPartitions: this.between };
  }
}

async function countRows(admin: Sql, writer: Writer, tables: readonly string[]): Promise<Record<string, number>> {
  const schema = writer === 'consumer' ? CONSUMER_SCHEMA : FLOOR_SCHEMA;
  const counts: Record<string, number> = {};
  for (const table of tables) {
    const [row] = await admin<{ n: number }[]>`select count(*)::int as n from ${admin(`${schema}.${table}`)}`;
    counts[table] = row?.n ?? 0;
  }
  return counts;
}

/**
 * Where each writer's WAL goes, in bytes per record, for one batch of 100 (backfill) written alone after a
 * checkpoint: by record type (pg_walinspect's pg_get_wal_stats: the record with its header, plus its full-page
 * images), when the server has pg_walinspect; else left out.
 */
async function walBreakdown(
  admin: Sql,
  runners: Record<Writer, Runner>,
): Promise<Record<Writer, Record<string, number>> | undefined> {
  try {
    await admin`create extension if not exists pg_walinspect`;
  } catch {
    return undefined;
  }
  const cell: Cell = { tag: 'walbreakdown', regime: 'backfill', batchSize: 100, batches: 1 };
  const result = {} as Record<Writer, Record<string, number>>;
  for (const writer of WRITERS) {
    await empty(admin);
    await runners[writer].ask({ type: 'prepare', cell, partition: 0 }, 'ready');
    await admin`checkpoint`.catch(() => {});
    const [start] = await admin<{ lsn: string }[]>`select pg_current_wal_lsn()::text as lsn`;
    await runners[writer].ask({ type: 'go' }, 'done');
    const [end] = await admin<{ lsn: string }[]>`select pg_current_wal_lsn()::text as lsn`;
    const rows = await admin<{ what: string; count: number; bytes: number; fpi: number }[]>`
      select "resource_manager/record_type" as what, count::int, record_size::int as bytes, fpi_size::int as fpi
      from pg_get_wal_stats(${start!.lsn}::pg_lsn, ${end!.lsn}::pg_lsn, true)
      where count > 0 order by combined_size desc`;
    result[writer] = Object.fromEntries(
      rows.flatMap((r) => [
        [`${r.what} (${round(r.count / cell.batchSize, 1)} per record)`, round(r.bytes / cell.batchSize, 0)],
        ...(r.fpi > 0 ? [[`${r.what}: full-page images`, round(r.fpi / cell.batchSize, 0)]] : []),
      ]),
    );
  }
  return result;
}

/** Empties both writers' tables. */
async function empty(admin: Sql) {
  await admin.unsafe(
    `truncate "${CONSUMER_SCHEMA}".instructors, "${CONSUMER_SCHEMA}".courses, ` +
      `"${CONSUMER_SCHEMA}".course_instructors, "${CONSUMER_SCHEMA}".ratings,
       "${CONSUMER_SCHEMA}".comments, "${CONSUMER_SCHEMA}".processed_traces, "${CONSUMER_SCHEMA}".dead_letters ` +
      `restart identity;
     truncate "${FLOOR_SCHEMA}".instructors, "${FLOOR_SCHEMA}".courses, "${FLOOR_SCHEMA}".ratings, ` +
      `"${FLOOR_SCHEMA}".comments, "${FLOOR_SCHEMA}".processed_traces`,
  );
}

function loadAverage(): number[] {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
  } catch {
    return [];
  }
}

const pad = (x: unknown, n: number) => String(x).padStart(n);

function formatRow(r: ScaleRow): string {
  const waits = (w: WriterResult) => {
    const betweenPartitions = Object.values(w.lockWaitsBetweenPartitions).reduce((a, b) => a + b, 0);
    return `${w.lockWaitSamples}/${betweenPartitions}/${w.transactionWaitsBetweenPartitions}`;
  };
  return [
    pad(r.regime, 8),
    pad(r.batchSize, 5),
    pad(r.n, 2),
    pad(r.consumer.recordsPerSecond, 7),
    pad(r.floor.recordsPerSecond, 7),
    pad(r.vsFloor, 5),
    pad(r.consumer.speedup, 5),
    pad(r.floor.speedup, 5),
    pad(r.speedupVsFloor, 5),
    pad(waits(r.consumer), 8),
    pad(waits(r.floor), 8),
    pad(r.consumer.walBytesPerRecord, 7),
    pad(r.floor.walBytesPerRecord, 7),
    pad(r.walVsFloor, 5),
    pad(r.consumer.deadlocks, 3),
    pad(r.consumer.retries, 3),
    r.consumer.countsOk && r.floor.countsOk ? '  ok' : '  COUNTS WRONG',
  ].join(' | ');
}

const HEADER =
  '  regime | batch |  N | cons/s  | floor/s | ratio | c spd | f spd | c/f   | c waits  | f waits  | c WAL/r | ' +
  'f WAL/r | WAL x | dl  | rt  | counts\n         |       |    |         |         |       |       |       |    ' +
  '   | all/b/tx | all/b/tx |  bytes  |  bytes  |       |     |     |';

async function main() {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const maxArg = args.indexOf('--max');
  const options = { ...(quick ? QUICK : FULL) };
  if (maxArg >= 0) options.max = Number(args[maxArg + 1]);
  if (!Number.isInteger(options.max) || options.max < 1)
    throw new Error('--max takes a whole number of processes, at least 1');
  const outDir = join(root, 'bench', quick ? '.quick' : 'results');
  const server = await startLocalDatabase();
  try {
    console.log(HEADER);
    const report = await runScale(options, { ...server.env }, (line) => console.log(line));
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, 'scale.json'), JSON.stringify(report, null, 2) + '\n');
    writeFileSync(join(outDir, 'scale.svg'), renderScaleChart(report.rows));
    console.log(
      `\nLoad average ${report.machine.loadAverageAtStart.join(' ')} at the start, ` +
        `${report.machine.loadAverageAtEnd.join(' ')} at the end; ${report.machine.cores} cores.`,
    );
    for (const [writer, types] of Object.entries(report.walBreakdown ?? {})) {
      console.log(`\nWAL bytes per record, ${writer}, one batch of 100 alone:`);
      for (const [what, bytes] of Object.entries(types)) if (bytes >= 10) console.log(`  ${pad(bytes, 6)}  ${what}`);
    }
    console.log(
      `Counts ${report.countsOk ? 'exact in every measurement' : 'WRONG in some measurement'}; consumer waits ` +
        `on another partition's transaction or row: ${report.consumerLockWaitsBetweenPartitions}.`,
    );
    console.log(`Wrote ${relative(root, join(outDir, 'scale.json'))} and scale.svg in ${report.durationSeconds} s`);
    if (!report.countsOk) process.exitCode = 1;
  } finally {
    await server.destroy();
  }
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
