/**
 * npm run bench:esm: the local event source mapping's throughput against a real Kafka broker and PostgreSQL, with
 * the real handler in process. Starts both (the broker from Maven Central's jars), publishes benchmark messages
 * (17 ratings, 8 comments each), and times how long a fresh consumer group takes until every partition's committed
 * offset is at its end. Prints a table and writes bench/results/local-esm-<batch size>.json.
 *   BENCH_ESM_MESSAGES=5000 BENCH_ESM_BATCH_SIZE=1000 npm run bench:esm   # other sizes (defaults 20,000 and 100)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type { Context } from 'aws-lambda';
import { loadConfig } from '../lib/config';
import { createSql } from '../lib/postgres/client';
import { startBroker } from '../scripts/kafka/broker';
import { LocalEventSourceMapping } from '../scripts/esm/poller';
import { publish } from '../scripts/esm/publish';
import { loadEsmSettings } from '../scripts/esm/settings';
import { startLocalDatabase } from '../scripts/local-db';
import { drained } from '../test/helpers/kafka';
import { benchMessage } from './generate';
import { applySchema } from '../scripts/db/migrations';

const TOPIC = 'trace-survey-processed';
const PARTITIONS = 4;
const MESSAGES = Number(process.env.BENCH_ESM_MESSAGES || '20000');
const BATCH_SIZE = Number(process.env.BENCH_ESM_BATCH_SIZE || '100');

async function main() {
  const db = await startLocalDatabase({ useConfigured: false });
  const broker = await startBroker({ topics: { [TOPIC]: PARTITIONS } });
  try {
    const kafka = { brokers: [broker.bootstrap], topic: TOPIC, group: '', sasl: null, tls: false };
    const messages = Array.from({ length: MESSAGES }, (_, n) => {
      const value = benchMessage('esm', n);
      return {
        key: Buffer.from(value.traceId),
        value: Buffer.from(JSON.stringify(value)),
        headers: [['content-type', Buffer.from('application/json')]] as const,
      };
    });
    const produceStarted = Date.now();
    await publish(kafka, messages);
    const produceMs = Date.now() - produceStarted;
    const bytes = messages.reduce((n, m) => n + m.value.length, 0);

    const schema = 'esm_bench';
    const env = { ...db.env, DB_SCHEMA: schema, LOG_LEVEL: 'warn' };
    const sql = createSql(loadConfig(env).db);
    await applySchema(sql, schema);
    Object.assign(process.env, env); // read by the handler module at its cold start, as Lambda's environment is
    const { handler } = (await import('../functions/consumer')) as {
      handler: (event: unknown, context: Context) => Promise<unknown>;
    };
    const settings = loadEsmSettings({
      KAFKA_BROKERS: broker.bootstrap,
      KAFKA_CONSUMER_GROUP: 'bench',
      ESM_BATCH_SIZE: String(BATCH_SIZE),
      ESM_BATCHING_WINDOW_MS: '100',
    });
    let invocations = 0;
    const mapping = new LocalEventSourceMapping(settings, handler, () => invocations++);
    const stdout = process.stdout.write.bind(process.stdout);
    process.stdout.write = () => true; // the handler's metrics lines, one per invocation
    const started = Date.now();
    await mapping.start();
    await drained(broker, settings, () => mapping.pending(), 600_000);
    const ms = Date.now() - started;
    await mapping.stop();
    process.stdout.write = stdout;
    const [row] = await sql<{ n: number }[]>`select count(*)::int as n from ${sql(schema)}.processed_traces`;
    await sql.end();
    const result = {
      batchSize: BATCH_SIZE,
      partitions: PARTITIONS,
      messages: MESSAGES,
      stored: row?.n ?? 0,
      invocations,
      ms,
      perSecond: Math.round((MESSAGES / ms) * 1000),
    };
    const summary = {
      when: new Date().toISOString(),
      machine: `${cpus().length} cores`,
      brokerStartMs: broker.startMs,
      produce: { messages: MESSAGES, bytes, ms: produceMs, perSecond: Math.round((MESSAGES / produceMs) * 1000) },
      mapping: result,
    };
    console.table([result]);
    console.log(JSON.stringify(summary, null, 2));
    mkdirSync(join(__dirname, 'results'), { recursive: true });
    writeFileSync(join(__dirname, 'results', `local-esm-${BATCH_SIZE}.json`), JSON.stringify(summary, null, 2) + '\n');
  } finally {
    await broker.stop();
    await db.destroy();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
