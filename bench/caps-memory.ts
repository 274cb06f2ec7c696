/**
 * npm run bench:caps: peak memory (max RSS) of the bundled consumer for a 6 MB batch at the largest caps a user may
 * set (MAX_RECORD_BYTES and MAX_TEXT_CHARS of 6 MiB, lib/config.ts), in a fresh process per batch, against the
 * 512 MB the deployment gives the consumer by default (memorySize). One record fills the batch, in each of the two
 * shapes that cost the most memory per byte: many tiny list items (a rating of `{}` is 3 bytes of JSON and a whole
 * row in memory), and long free texts. Each record must be stored, not dead-lettered: a cap that was not raised
 * would make the figure meaningless. Writes bench/results/caps-memory.json.
 *   npm run bench:caps
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { build } from 'esbuild';
import { INPUT_CAP_CEILING, loadConfig } from '../lib/config';
import { createSql } from '../lib/postgres/client';
import { tableIdentifiers } from '../lib/postgres/table-names';
import { buildKafkaEvent } from '../scripts/encode-kafka-event';
import { applySchema } from '../scripts/db/migrations';
import { startLocalDatabase } from '../scripts/local-db';
import { exitWithDiagnosis } from '../scripts/exit-with-diagnosis';
import { bundleOptions } from './bundle';
import { round } from './stats';

const root = join(__dirname, '..');
/** Lambda's invocation payload limit, as the other memory measurement counts it (bench/run.ts). */
const BATCH_BYTES = 6 * 1024 * 1024;
/** memorySize's default in serverless.yml: the figure must stay under it. */
const LIMIT_MB = 512;
const SHAPES = ['tiny-items', 'long-texts'] as const;
type Shape = (typeof SHAPES)[number];

/** The environment of the largest caps. */
const LARGEST_CAPS = { MAX_RECORD_BYTES: String(INPUT_CAP_CEILING), MAX_TEXT_CHARS: String(INPUT_CAP_CEILING) };

export interface CapsMemoryRow {
  shape: Shape;
  /** Size of the event file (the Kafka event as Lambda sends it, base64 values). */
  eventMb: number;
  /** Bytes of the one record's value. */
  recordBytes: number;
  maxRssMb: number;
}

export interface CapsMemoryReport {
  caps: typeof LARGEST_CAPS;
  rows: CapsMemoryRow[];
  limitMb: number;
  /** True when every shape stayed under `limitMb`. */
  underLimit: boolean;
}

/** A survey report of `bytes` bytes of JSON, in `shape`. */
function reportOf(shape: Shape, traceId: string, bytes: number): string {
  const base = JSON.stringify({ traceId, course: { courseId: traceId }, instructor: { name: 'Caps Bench' } });
  if (shape === 'tiny-items') {
    const items = Math.max(1, Math.floor((bytes - base.length - 14) / 3));
    return base.replace(/}$/, `,"ratings":[${'{},'.repeat(items - 1)}{}]}`);
  }
  // Four comments of equal length, mixed ASCII and two-byte text: every character is read and made storable.
  const each = Math.max(1, Math.floor((bytes - base.length - 100) / 4 / 1.5));
  const text = 'é a'.repeat(Math.ceil(each / 3)).slice(0, each);
  const comments = Array.from({ length: 4 }, () => ({ commentText: text }));
  return base.replace(/}$/, `,"comments":${JSON.stringify(comments)}}`);
}

/** The event of one record in `shape`, as large as fits `batchBytes` of event JSON. */
function eventOf(shape: Shape, traceId: string, batchBytes: number) {
  // Base64 makes a value 4/3 as long; the envelope and the record's fields take a few hundred bytes.
  let bytes = Math.floor(((batchBytes - 1024) * 3) / 4);
  for (;;) {
    const value = reportOf(shape, traceId, bytes);
    const event = buildKafkaEvent([{ value, key: traceId }], { timestamp: Date.now() });
    const text = JSON.stringify(event);
    if (text.length <= batchBytes) return { text, recordBytes: Buffer.byteLength(value) };
    bytes = Math.floor(bytes * 0.99);
  }
}

/**
 * Measures every shape at `batchBytes` (6 MB for the figure; a smoke test passes less) against the database of
 * `dbEnv`, in its schema `schema` (dropped and created again).
 */
export async function measureCapsMemory(
  dbEnv: Record<string, string>,
  options: { batchBytes?: number; schema?: string } = {},
): Promise<CapsMemoryReport> {
  const batchBytes = options.batchBytes ?? BATCH_BYTES;
  const schema = options.schema ?? 'bench_caps';
  const config = loadConfig({ ...dbEnv, DB_SCHEMA: schema });
  const sql = createSql(config.db, { max: 1 });
  // Inside the project, so that the bundle finds @aws-sdk in node_modules as it finds it in the Lambda runtime.
  const dir = join(root, 'bench', `.build-caps-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  try {
    await sql.unsafe(`drop schema if exists "${schema}" cascade`);
    await applySchema(sql, schema);
    const bundled = join(dir, 'consumer.js');
    await build(bundleOptions(bundled));
    const rows: CapsMemoryRow[] = [];
    for (const shape of SHAPES) {
      const traceId = `caps-${shape}-${Date.now()}`;
      const { text, recordBytes } = eventOf(shape, traceId, batchBytes);
      const eventFile = join(dir, `${shape}.json`);
      writeFileSync(eventFile, text);
      const run = spawnSync(process.execPath, [join(__dirname, 'memory-child.cjs'), bundled, eventFile], {
        env: { ...process.env, ...dbEnv, DB_SCHEMA: schema, LOG_LEVEL: 'error', ...LARGEST_CAPS },
        encoding: 'utf8',
        maxBuffer: 64 * 1024 * 1024,
      });
      if (run.status !== 0) throw new Error(`memory measurement of ${shape} failed: ${run.stderr}`);
      const t = tableIdentifiers(sql, schema);
      const [stored] = await sql<{ status: string }[]>`
        select status from ${t.processed_traces} where trace_id = ${traceId}`;
      if (stored?.status !== 'stored') {
        const [letter] = await sql<{ reason: string; detail: string }[]>`
          select reason, detail from ${t.dead_letters} order by id desc limit 1`;
        throw new Error(`the ${shape} record was not stored: ${letter ? `${letter.reason}: ${letter.detail}` : '?'}`);
      }
      const { maxRssMb } = JSON.parse(run.stdout.trim().split('\n').pop()!) as { maxRssMb: number };
      rows.push({ shape, eventMb: round(Buffer.byteLength(text) / 2 ** 20, 2), recordBytes, maxRssMb });
    }
    return { caps: LARGEST_CAPS, rows, limitMb: LIMIT_MB, underLimit: rows.every((r) => r.maxRssMb < LIMIT_MB) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await sql.end({ timeout: 5 });
  }
}

async function main() {
  const server = await startLocalDatabase();
  const report = await measureCapsMemory({ ...server.env }).finally(() => server.destroy());
  for (const row of report.rows) {
    console.log(
      `Peak memory (max RSS) for a ${row.eventMb} MB batch of one ${row.recordBytes}-byte record (${row.shape}), ` +
        `MAX_RECORD_BYTES=MAX_TEXT_CHARS=${INPUT_CAP_CEILING}: ${row.maxRssMb} MB (limit ${report.limitMb} MB)`,
    );
  }
  const out = join(root, 'bench', 'results', 'caps-memory.json');
  writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), ...report }, null, 2)}\n`);
  console.log(`Wrote ${relative(process.cwd(), out)}`);
  // Over the limit: a deployment at the largest caps needs a larger memorySize.
  process.exitCode = report.underLimit ? 0 : 1;
}

if (require.main === module) main().catch(exitWithDiagnosis);
