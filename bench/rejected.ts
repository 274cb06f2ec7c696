/**
 * PostgreSQL-rejected reports mixed with dead letters in 1,000 records (issue 11): 1 and 10 reports whose
 * processedAt is valid ISO-8601 but outside PostgreSQL's range, among 20 dead letters (tombstones, undecodable bytes,
 * invalid JSON) and valid reports. Each is timed against a clean batch of 1,000 valid reports, and its write
 * transactions are counted against the bound 1 + k(2⌈log2 n⌉ + 1).
 */
import type { Config } from '../lib/config';
import { environmentCredentials } from '../lib/postgres/credentials';
import { Database } from '../lib/postgres/database';
import type { Logger } from '../lib/log';
import { processBatch } from '../lib/batch/process-batch';
import { decodeEvent } from '../lib/aws/kafka-event';
import { buildKafkaEvent, type RecordInput } from '../scripts/encode-kafka-event';
import { benchMessage } from './generate';
import { median, round } from './stats';

export interface RejectedRow {
  rejected: number;
  deadLetters: number;
  records: number;
  ms: number;
  cleanMs: number;
  /** Median time relative to the clean batch of the same round. */
  ratio: number;
  transactions: number;
  bound: number;
}

const RECORDS = 1000;
const DEAD_LETTERS = 20;
const DEAD: RecordInput[] = [
  { value: null },
  { value: Buffer.from([0xc3, 0x28]) },
  { value: '{"traceId": "cut off",' },
];

/** The batch: `rejected` reports and DEAD_LETTERS dead letters spread evenly among valid reports. */
function batch(run: string, rejected: number): RecordInput[] {
  const every = (count: number) =>
    count === 0
      ? new Set<number>()
      : new Set(Array.from({ length: count }, (_, i) => Math.floor(((i + 0.5) * RECORDS) / count)));
  const rejectedAt = every(rejected);
  const deadAt = rejected === 0 ? new Set<number>() : new Set([...every(DEAD_LETTERS)].map((n) => n + 1));
  return Array.from({ length: RECORDS }, (_, n): RecordInput => {
    if (deadAt.has(n)) return DEAD[n % DEAD.length]!;
    const message = benchMessage(run, n);
    return { value: rejectedAt.has(n) ? { ...message, processedAt: '0000-06-15T00:00:00Z' } : message };
  });
}

export async function measureRejected(config: Config, logger: Logger, rounds: number): Promise<RejectedRow[]> {
  let begins = 0;
  const database = new Database(config.db, environmentCredentials(config.db), {
    debug: (_connection: number, query: string) => void (query.trim().toLowerCase() === 'begin' && begins++),
  });
  const run = async (name: string, rejected: number) => {
    begins = 0;
    const started = performance.now();
    const { summary } = await processBatch(decodeEvent(buildKafkaEvent(batch(name, rejected), { partitions: 4 })), {
      database,
      config,
      logger,
      deadline: Date.now() + 900_000,
    });
    const ms = performance.now() - started;
    const dead = rejected === 0 ? 0 : DEAD_LETTERS;
    if (summary.failed > 0 || summary.deadLettered !== rejected + dead)
      throw new Error(`rejected-reports run settled wrongly: ${JSON.stringify(summary)}`);
    return { ms, transactions: begins };
  };
  try {
    await run('rejected-warmup', 1);
    const rows: RejectedRow[] = [];
    for (const rejected of [1, 10]) {
      const samples: { ms: number; cleanMs: number; transactions: number }[] = [];
      for (let r = 0; r < rounds; r++) {
        const clean = await run(`rejected-clean-${rejected}-${r}`, 0);
        const mixed = await run(`rejected-${rejected}-${r}`, rejected);
        samples.push({ ms: mixed.ms, cleanMs: clean.ms, transactions: mixed.transactions });
      }
      rows.push({
        rejected,
        deadLetters: DEAD_LETTERS,
        records: RECORDS,
        ms: round(median(samples.map((s) => s.ms)), 1),
        cleanMs: round(median(samples.map((s) => s.cleanMs)), 1),
        ratio: round(median(samples.map((s) => s.ms / s.cleanMs)), 2),
        transactions: Math.max(...samples.map((s) => s.transactions)),
        bound: 1 + rejected * (2 * Math.ceil(Math.log2(RECORDS)) + 1),
      });
    }
    return rows;
  } finally {
    await database.end();
  }
}

export function printRejected(rows: readonly RejectedRow[]): void {
  for (const r of rows) {
    console.log(
      `${r.rejected} PostgreSQL-rejected report(s) + ${r.deadLetters} dead letters in ${r.records}: ${r.ms} ms, ` +
        `${r.ratio}x a clean batch (${r.cleanMs} ms), ${r.transactions} transactions (bound ${r.bound})`,
    );
  }
}
