import { markStage } from './stage-marks';
import type { Config } from '../config';
import type { Database } from '../postgres/database';
import { OutOfTimeError } from '../errors';
import type { Deadline } from '../deadline';
import type { Logger } from '../log';
import type { KafkaRecord } from './kafka-record';
import { messageParser, type MessageParser } from './trace-message';
import { collapseTraceIds, deadLetterRow, refKey, toCandidate } from './write-plan';
import { errorCode, isDeploymentFailure } from '../postgres/failure-kind';
import type { SchemaGate } from '../postgres/schema-version-gate';
import {
  countOutcomes,
  offsetRanges,
  oldestRecordAgeMs,
  type BatchSummary,
  type RecordOutcome,
} from './record-outcomes';
import { settleBatch, type Settled, type Unit } from './settle-batch';
import { validateBatch } from './validate-batch';

export interface BatchDependencies {
  database: Database;
  config: Pick<Config, 'db' | 'retry' | 'setupFailureHoldMs' | 'limits'>;
  logger: Logger;
  /**
   * When the batch must be settled (epoch ms): the invocation's end less TIME_RESERVE_MS, fixed once when it starts.
   * Every step measures against it; none gets a fresh duration of its own (see lib/deadline.ts).
   */
  deadline: Deadline;
  /** The clock of `deadline`; Date.now unless a test drives time. */
  now?: () => number;
  /** Waits `ms`; setTimeout unless a test stands in. Used for the hold after a deployment-class failure. */
  sleep?: (ms: number) => Promise<void>;
  /**
   * Receives the outcomes once they are counted and logged, before any hold: the consumer writes its metrics here
   * (CloudWatch EMF, see batchMetricsWriter in lib/aws/emf-metrics.ts), so that the pipeline knows no metrics format.
   */
  recordMetrics?: (outcomes: readonly RecordOutcome[], timing: BatchTiming) => void;
  /** Checks the schema version before the first write of an execution environment; the consumer always passes one. */
  schemaGate?: SchemaGate;
  /** The validation of each record: that of the configuration's limits unless a test stands in a slow one. */
  parse?: MessageParser;
}

export interface BatchTiming {
  /** How long processBatch took, from its start to the outcomes counted. */
  durationMs: number;
  /** When the outcomes were counted (epoch ms, the clock of `deadline`). */
  now: number;
}

export interface BatchOutcomes {
  /** One outcome per record, in the order of `records`. */
  outcomes: RecordOutcome[];
  summary: BatchSummary;
}

/**
 * Validates and stores one batch of decoded Kafka records, and settles every record in exactly one state. Knows
 * nothing of Lambda or AWS: the handler decodes the event (lib/aws/kafka-event.ts), passes the deadline, and turns
 * the outcomes into Lambda's response (lib/aws/kafka-batch-response.ts). Throws SchemaVersionError when the
 * database's schema version does not fit the code (nothing written).
 */
export async function processBatch(records: readonly KafkaRecord[], deps: BatchDependencies): Promise<BatchOutcomes> {
  const now = deps.now ?? Date.now;
  const started = now();
  try {
    await deps.schemaGate?.ensure(deps.database, deps.logger, deps.deadline, now);
  } catch (error) {
    await holdAfterDeploymentFailure(error, started, deps);
    throw error;
  }
  markStage('decoded');

  // Validation stops at its share of the time left (lib/batch/validate-batch.ts); a record it did not reach is retried.
  const parse = deps.parse ?? messageParser(deps.config.limits);
  const results = validateBatch(records, { deadline: deps.deadline, now, begun: started }, parse);
  const notValidated = records.filter((_, i) => results[i] === null);
  // Units in event order: isolation splits this list, so a bad message is found among the records around it.
  const parsed = records.flatMap((record, i): Unit[] => {
    const result = results[i];
    if (result === null || result === undefined) return [];
    return result.ok
      ? [{ kind: 'candidate', candidate: toCandidate(record, result.message) }]
      : [
          {
            kind: 'dead_letter',
            deadLetter: { record, row: deadLetterRow(record, result.reason, result.detail, result.traceId) },
          },
        ];
  });
  const { unique, repeats, nextCopy } = collapseTraceIds(
    parsed.flatMap((u) => (u.kind === 'candidate' ? [u.candidate] : [])),
  );
  const firstCopies = new Set(unique);
  const units = parsed.filter((u) => u.kind === 'dead_letter' || firstCopies.has(u.candidate));
  markStage('validated');

  const settled = await settleBatch(
    { units, nextCopy },
    {
      database: deps.database,
      schema: deps.config.db.schema,
      logger: deps.logger,
      retry: { ...deps.config.retry, deadline: deps.deadline, now },
    },
  );

  markStage('written');
  const byRecord = new Map<string, RecordOutcome>();
  const byTraceId = new Map<string, RecordOutcome>();
  for (const record of notValidated)
    byRecord.set(refKey(record), { record, state: 'failed', traceId: null, error: new OutOfTimeError() });
  for (const s of settled) {
    const outcome = toOutcome(s);
    byRecord.set(refKey(outcome.record), outcome);
    // Copies of a trace id settle in event order, so this ends as the last copy written.
    if (outcome.traceId !== null && s.kind === 'candidate') byTraceId.set(outcome.traceId, outcome);
  }
  // A later copy of a trace id that was not written is a duplicate of the copy that was, unless that one failed:
  // then it is retried too, so that a trace that failed is never counted as handled.
  for (const c of repeats) {
    if (byRecord.has(refKey(c.record))) continue;
    const written = byTraceId.get(c.message.traceId);
    byRecord.set(
      refKey(c.record),
      written?.state === 'failed'
        ? { record: c.record, state: 'failed', traceId: c.message.traceId, error: written.error }
        : { record: c.record, state: 'duplicate', traceId: c.message.traceId },
    );
  }
  // The fallback is unreachable unless two records share topic, partition and offset; never let one vanish from the
  // count.
  const outcomes = records.map(
    (record) =>
      byRecord.get(refKey(record)) ?? {
        record,
        state: 'failed' as const,
        traceId: null,
        error: new Error('record was not settled'),
      },
  );

  for (const o of outcomes) {
    if (o.state === 'dead_lettered' || o.state === 'failed') {
      deps.logger.warn(o.state === 'failed' ? 'record failed, reported for retry' : 'record dead-lettered', {
        topic: o.record.topic,
        partition: o.record.partition,
        offset: o.record.offset,
        traceId: o.traceId,
        reason: o.reason ?? 'failed',
        // The database's own message may quote a value; its SQLSTATE is enough here, the full text is in dead_letters.
        detail: o.reason === 'db_rejected' ? o.detail?.slice(0, 5) : o.detail,
      });
    }
  }
  const summary = countOutcomes(outcomes);
  const ended = now();
  const durationMs = ended - started;
  deps.logger.info('batch processed', {
    ...summary,
    durationMs,
    oldestRecordAgeMs: oldestRecordAgeMs(outcomes, ended),
    partitions: offsetRanges(outcomes),
  });
  deps.recordMetrics?.(outcomes, { durationMs, now: ended });
  const deploymentFailure = outcomes.find((o) => o.state === 'failed' && isDeploymentFailure(o.error));
  if (deploymentFailure?.state === 'failed') await holdAfterDeploymentFailure(deploymentFailure.error, started, deps);
  markStage('reported');
  return { outcomes, summary };
}

/**
 * A failure only a person can end (schema version, rejected login, see isDeploymentFailure) answers at once in a few
 * milliseconds, and Lambda's retries of the batch (maxRetryAttempts) would all be spent within a second: then the
 * records are discarded, or sent to the failure destination, before anyone could act. Waiting here before answering,
 * until SETUP_FAILURE_HOLD_SECONDS after the invocation started or the deadline, whichever comes first, stretches
 * those retries over minutes. The log says why the invocation waits.
 */
async function holdAfterDeploymentFailure(error: unknown, started: number, deps: BatchDependencies): Promise<void> {
  if (!isDeploymentFailure(error)) return;
  const now = deps.now ?? Date.now;
  const holdMs = Math.floor(Math.min(started + deps.config.setupFailureHoldMs, deps.deadline) - now());
  if (holdMs <= 0) return;
  deps.logger.error(
    "deployment-class failure: holding the invocation before failing, so that Lambda's retries span minutes",
    {
      code: errorCode(error),
      holdMs,
    },
  );
  await (deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))))(holdMs);
}

function toOutcome(s: Settled): RecordOutcome {
  if (s.kind === 'candidate') {
    const base = { record: s.candidate.record, traceId: s.candidate.message.traceId };
    if (s.status === 'failed') return { ...base, state: 'failed', error: s.error };
    if (s.status === 'dead_lettered') return { ...base, state: 'dead_lettered', reason: s.reason, detail: s.detail };
    return { ...base, state: s.status };
  }
  const { record, row } = s.deadLetter;
  if (s.status === 'failed') return { record, state: 'failed', traceId: row.trace_id, error: s.error };
  return { record, state: 'dead_lettered', traceId: row.trace_id, reason: row.reason, detail: row.detail };
}
