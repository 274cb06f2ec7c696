import { createLogger } from '../../lib/log';
import type { Config } from '../../lib/config';
import { processBatch, type BatchDependencies } from '../../lib/batch/process-batch';
import type { BatchSummary, RecordOutcome } from '../../lib/batch/record-outcomes';
import { decodeEvent } from '../../lib/aws/kafka-event';
import { toResponse, type KafkaBatchResponse } from '../../lib/aws/kafka-batch-response';
import { batchMetricsWriter, type EmfDocument } from '../../lib/aws/emf-metrics';
import type { TestDatabase } from './db';

/** What the consumer's handler makes of one event: Lambda's response, and the outcomes behind it. */
export interface BatchResult {
  response: KafkaBatchResponse;
  summary: BatchSummary;
  outcomes: RecordOutcome[];
}

export type EventDependencies = Omit<BatchDependencies, 'config'> & {
  config: BatchDependencies['config'] & Pick<Config, 'reportBatchItemFailures' | 'metricsNamespace'>;
  /** Receives the batch's EMF documents, as the handler writes them to stdout. */
  emitMetrics?: (document: EmfDocument) => void;
};

/**
 * One event through the same steps as functions/consumer.ts, without Lambda: decode (EnvelopeError), processBatch,
 * the metrics the handler writes, and the response (BatchFailedError when nothing could be settled).
 */
export async function processEvent(event: unknown, deps: EventDependencies): Promise<BatchResult> {
  const { emitMetrics, ...rest } = deps;
  const records = decodeEvent(event);
  const recordMetrics =
    rest.recordMetrics ?? (emitMetrics && batchMetricsWriter(rest.config.metricsNamespace, emitMetrics));
  const { outcomes, summary } = await processBatch(records, { ...rest, recordMetrics });
  return { response: toResponse(outcomes, deps.config.reportBatchItemFailures), summary, outcomes };
}

export interface Run {
  result?: BatchResult;
  error?: unknown;
  logs: Record<string, unknown>[];
}

/** Runs one batch through the core with a capturing logger; never throws, so tests can assert on either outcome. */
export async function runBatch(
  db: TestDatabase,
  event: unknown,
  overrides: Partial<EventDependencies> = {},
): Promise<Run> {
  const logs: Record<string, unknown>[] = [];
  const deps: EventDependencies = {
    database: db.database,
    config: db.config,
    logger: createLogger('debug', {}, (line) => logs.push(JSON.parse(line))),
    deadline: Date.now() + 60_000,
    ...overrides,
  };
  try {
    return { result: await processEvent(event, deps), logs };
  } catch (error) {
    return { error, logs };
  }
}

/** Everything stored, without generated ids and clocks, in a stable order: equal snapshots mean equal data. */
export async function snapshot(db: TestDatabase) {
  const s = db.config.db.schema;
  const t = (name: string) => db.sql(`${s}.${name}`);
  return {
    instructors: await db.sql`select name from ${t('instructors')} order by name`,
    courses: await db.sql`
      select course_id, course_name, subject, catalog_section, semester, year, enrollment, responses, declines,
        processed_at, original_file_name, gcs_bucket, gcs_path, trace_id from ${t('courses')} order by course_id`,
    pairs: await db.sql`
      select c.course_id, i.name, ci.trace_id from ${t('course_instructors')} ci
      join ${t('courses')} c on c.id = ci.course_id join ${t('instructors')} i on i.id = ci.instructor_id
      order by 1, 2`,
    ratings: await db.sql`
      select c.course_id, i.name, r.trace_id, r.question_text, r.category, r.responses, r.response_rate, r.course_mean,
        r.dept_mean, r.univ_mean, r.course_median, r.dept_median, r.univ_median
      from ${t('ratings')} r join ${t('courses')} c on c.id = r.course_id join ${t('instructors')} i
        on i.id = r.instructor_id
      order by 1, 2, 3, 4, 6`,
    comments: await db.sql`
      select c.course_id, i.name, m.trace_id, m.category, m.question_text, m.response_number, m.comment_text
      from ${t('comments')} m join ${t('courses')} c on c.id = m.course_id join ${t('instructors')} i
        on i.id = m.instructor_id
      order by 1, 2, 3, 6, 7`,
    processed: await db.sql`
      select trace_id, status, error, kafka_topic, kafka_partition, kafka_offset from ${t('processed_traces')}
        order by trace_id`,
    deadLetters: await db.sql`
      select kafka_topic, kafka_partition, kafka_offset, key, value, header_keys, header_values, reason,
        detail, trace_id from ${t('dead_letters')}
      order by 1, 2, 3`,
  };
}

/** The summary line a batch logged. */
export function summaryLine(run: Run): Record<string, unknown> | undefined {
  return run.logs.find((l) => l.message === 'batch processed');
}
