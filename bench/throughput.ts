import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { BATCH_STAGE_CHANNEL, type BatchStage, type BatchStageMark } from '../lib/batch/stage-marks';
import type { Config } from '../lib/config';
import type { Database } from '../lib/postgres/database';
import type { Sql } from '../lib/postgres/client';
import { decodeEvent } from '../lib/aws/kafka-event';
import type { Logger } from '../lib/log';
import { parseMessage, type SurveyMessage } from '../lib/batch/trace-message';
import { processBatch } from '../lib/batch/process-batch';
import { buildKafkaEvent } from '../scripts/encode-kafka-event';
import { copyBatch } from './copy-floor';
import { benchMessage } from './generate';
import type { RoundTripCounter } from './round-trips';
import { writePerMessage } from './per-message-writer';
import type { StatementStats, StatementTimes } from './statements';
import type { KafkaRecord } from '../lib/batch/kafka-record';

export const WRITERS = ['consumer', 'per-message', 'copy'] as const;
export type Writer = (typeof WRITERS)[number];

export interface Sample {
  ms: number;
  roundTrips: number;
  /** Server-side milliseconds per statement kind (empty without pg_stat_statements). */
  statements: StatementTimes;
  /** Client-side milliseconds per stage of this batch. */
  stages: Stages;
}

/**
 * decode: the event's records; validate: typed messages (the consumer also sorts out dead letters and repeated
 * trace ids); write: the transaction, from its first statement to its commit; report: the consumer's outcomes, log
 * and metrics (none for the references).
 */
export interface Stages {
  decode: number;
  validate: number;
  write: number;
  report: number;
}

/** The writers and what they write into. */
export interface Writers {
  consumer: { database: Database; config: Config; logger: Logger };
  /** One connection for the two references. */
  reference: Sql;
  schemas: Record<Writer, string>;
  counter: RoundTripCounter;
  stats: StatementStats;
}

export function eventOf(run: string, size: number, firstOffset = 0) {
  return buildKafkaEvent(
    Array.from({ length: size }, (_, n) => ({ value: benchMessage(run, n), key: `${run}-${n}` })),
    { partitions: 4, timestamp: Date.now(), firstOffset },
  );
}

/** Decode and validate, as every writer must: the references get the same typed messages the consumer works on. */
export function surveyMessages(records: readonly KafkaRecord[]): SurveyMessage[] {
  return records.map((r) => {
    const parsed = parseMessage(r.value);
    if (!parsed.ok || parsed.message.kind !== 'survey') throw new Error('benchmark message did not validate');
    return parsed.message;
  });
}

/**
 * One batch through one writer, timed from the event to the commit; statistics read outside the timed part. The
 * stages split the same batch: the consumer marks them itself (lib/batch/stage-marks.ts), the references are timed
 * here.
 */
export async function runBatch(w: Writers, writer: Writer, event: unknown, schemas = w.schemas): Promise<Sample> {
  await w.stats.reset();
  w.counter.reset();
  const marks: BatchStageMark[] = [];
  const mark = (m: unknown) => void marks.push(m as BatchStageMark);
  const started = performance.now();
  let stages: Stages;
  if (writer === 'consumer') {
    const config = { ...w.consumer.config, db: { ...w.consumer.config.db, schema: schemas.consumer } };
    subscribe(BATCH_STAGE_CHANNEL, mark);
    try {
      const { summary } = await processBatch(decodeEvent(event), {
        ...w.consumer,
        config,
        deadline: Date.now() + 900_000,
      });
      if (summary.failed > 0 || summary.deadLettered > 0)
        throw new Error(`consumer failed records: ${JSON.stringify(summary)}`);
    } finally {
      unsubscribe(BATCH_STAGE_CHANNEL, mark);
    }
    stages = stagesFrom(started, marks);
  } else {
    const records = decodeEvent(event);
    const decoded = performance.now();
    const messages = surveyMessages(records);
    const validated = performance.now();
    if (writer === 'per-message') await writePerMessage(w.reference, schemas['per-message'], messages);
    else await copyBatch(w.reference, schemas.copy, messages);
    stages = {
      decode: decoded - started,
      validate: validated - decoded,
      write: performance.now() - validated,
      report: 0,
    };
  }
  const ms = performance.now() - started;
  const roundTrips = w.counter.count;
  return { ms, roundTrips, statements: await w.stats.read(schemas[writer]), stages };
}

function stagesFrom(started: number, marks: readonly BatchStageMark[]): Stages {
  const at = (stage: BatchStage) => {
    const m = marks.find((x) => x.stage === stage);
    if (!m) throw new Error(`the consumer marked no '${stage}' stage`);
    return m.at;
  };
  return {
    decode: at('decoded') - started,
    validate: at('validated') - at('decoded'),
    write: at('written') - at('validated'),
    report: at('reported') - at('written'),
  };
}

/**
 * `rounds` rounds at one batch size, each writer once per round on fresh messages, the order alternating from
 * round to round so that neither the floor nor the consumer always runs on a warmer cache. A first round warms up
 * and is not recorded. The per-message writer, a hundred times slower, runs only in its first `perMessageRounds`.
 */
export async function measureSize(w: Writers, size: number, rounds: number, perMessageRounds: number) {
  const samples: Record<Writer, Sample[]> = { consumer: [], 'per-message': [], copy: [] };
  for (let r = -1; r < rounds; r++) {
    const order: Writer[] = r % 2 === 0 ? ['consumer', 'copy', 'per-message'] : ['copy', 'consumer', 'per-message'];
    // The same messages for every writer (each writes its own schema), so that a round compares like with like.
    const event = eventOf(`${size}-${r}`, size);
    for (const writer of order) {
      if (writer === 'per-message' && (perMessageRounds === 0 || r >= perMessageRounds || (r < 0 && size > 100)))
        continue;
      const sample = await runBatch(w, writer, event);
      if (r >= 0) samples[writer].push(sample);
    }
  }
  return samples;
}

/**
 * A backfill: `total` records replayed from the start of the topic in batches of `batchSize` (the event source
 * mapping's default), as a loop of invocations would send them, into empty tables. Consumer and floor alternate
 * batch by batch; the records are reported in `segments` equal parts, for a spread.
 */
export async function measureBackfill(
  w: Writers,
  schemas: Record<Writer, string>,
  total: number,
  batchSize: number,
  segments: number,
) {
  const batches = total / batchSize;
  const perSegment = batches / segments;
  const segmentMs = { consumer: [] as number[], copy: [] as number[] };
  const consumerSamples: Sample[] = [];
  const copySamples: Sample[] = [];
  for (let s = 0; s < segments; s++) {
    const ms = { consumer: 0, copy: 0 };
    for (let b = s * perSegment; b < (s + 1) * perSegment; b++) {
      const order = b % 2 === 0 ? (['consumer', 'copy'] as const) : (['copy', 'consumer'] as const);
      // Offsets continue from batch to batch, as in the topic: 4 partitions, a quarter of each batch in each.
      const event = eventOf(`backfill-${b}`, batchSize, (b * batchSize) / 4);
      for (const writer of order) {
        const sample = await runBatch(w, writer, event, schemas);
        ms[writer] += sample.ms;
        (writer === 'consumer' ? consumerSamples : copySamples).push(sample);
      }
    }
    segmentMs.consumer.push(ms.consumer);
    segmentMs.copy.push(ms.copy);
  }
  return { segmentMs, consumerSamples, copySamples, recordsPerSegment: perSegment * batchSize };
}
