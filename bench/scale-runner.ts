/**
 * One execution environment of npm run bench:scale, in a process of its own (forked by bench/scale.ts with tsx).
 * SCALE_WRITER=consumer loads the bundled handler (SCALE_BUNDLE), as Lambda does, with DB_* in the environment: one
 * warm client for the process's life. SCALE_WRITER=floor COPYs the same rows into key-less tables (bench/copy-floor.ts)
 * on one connection. Messages from the parent: prepare a cell (build its events, untimed), go (write them, timed).
 */
import type { Context } from 'aws-lambda';
import { loadConfig } from '../lib/config';
import { createSql } from '../lib/postgres/client';
import { decodeEvent } from '../lib/aws/kafka-event';
import { copyBatch } from './copy-floor';
import { scaleEvent, type Cell } from './scale-data';
import { surveyMessages } from './throughput';

export type ToRunner = { type: 'prepare'; cell: Cell; partition: number } | { type: 'go' } | { type: 'exit' };
export type FromRunner =
  | { type: 'ready' }
  | { type: 'done'; ms: number; retries: number; failed: number; pid: number }
  | { type: 'error'; message: string };

type Handler = (event: unknown, context: Context) => Promise<{ batchItemFailures: unknown[] }>;

const writer = process.env.SCALE_WRITER;
const context = { awsRequestId: 'bench-scale', getRemainingTimeInMillis: () => 900_000 } as Context;
let retries = 0;

// The handler's log lines (warnings and up) and metrics go to stdout; retries are counted from them.
const write = process.stdout.write.bind(process.stdout);
process.stdout.write = ((chunk: string | Uint8Array) => {
  for (const line of String(chunk).split('\n')) if (line.includes('"database write failed, retrying"')) retries += 1;
  return true;
}) as typeof process.stdout.write;

async function main() {
  const send = (m: FromRunner) => process.send?.(m);
  const handler =
    writer === 'consumer' ? (require(process.env.SCALE_BUNDLE!) as { handler: Handler }).handler : undefined;
  const config = loadConfig();
  const sql =
    writer === 'floor'
      ? createSql(config.db, { max: 1, connection: { application_name: 'bench-scale-floor' } })
      : undefined;
  let events: unknown[] = [];
  process.on('message', (message: ToRunner) => {
    void (async () => {
      try {
        if (message.type === 'exit') {
          await sql?.end({ timeout: 5 });
          process.exit(0);
        }
        if (message.type === 'prepare') {
          events = Array.from({ length: message.cell.batches }, (_, b) =>
            scaleEvent(message.cell, message.partition, b),
          );
          // Warm: the first cell's connection, the schema check, the prepared statements.
          if (sql) await sql`select 1`;
          send({ type: 'ready' });
          return;
        }
        retries = 0;
        let failed = 0;
        const started = performance.now();
        for (const event of events) {
          if (handler) failed += (await handler(event, context)).batchItemFailures.length;
          else await copyBatch(sql!, config.db.schema, surveyMessages(decodeEvent(event)));
        }
        send({ type: 'done', ms: performance.now() - started, retries, failed, pid: process.pid });
      } catch (error) {
        send({ type: 'error', message: error instanceof Error ? `${error.name}: ${error.message}` : String(error) });
      }
    })();
  });
  send({ type: 'ready' });
}

main().catch((error: unknown) => {
  write(`${String(error)}\n`);
  process.exit(1);
});
