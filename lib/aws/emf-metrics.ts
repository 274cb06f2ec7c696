import type { BatchTiming } from '../batch/process-batch';
import { type BatchSummary, countOutcomes, oldestRecordAgeMs, type RecordOutcome } from '../batch/record-outcomes';

/** The service dimension of the batch metrics (and the logs' service field): alarms and the dashboard select on it. */
export const SERVICE = 'trace-consumer';

/**
 * Batch metrics in CloudWatch Embedded Metric Format: a JSON log line that CloudWatch turns into metrics, with no
 * API call from the function. One document per topic in the batch (usually one), dimensioned by service and topic.
 * https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
 */
export interface EmfDocument {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: MetricUnit }[] }[];
  };
  [key: string]: unknown;
}

/** The units this code reports in (CloudWatch knows more). */
type MetricUnit = 'Count' | 'Milliseconds';

/** Metric name, and the count of a topic's share of the batch that gives its value. */
const COUNTS: [string, keyof BatchSummary][] = [
  ['RecordsReceived', 'received'],
  ['RecordsStored', 'stored'],
  ['RecordsDuplicate', 'duplicates'],
  ['RecordsSuperseded', 'superseded'],
  ['RecordsUpstreamError', 'upstreamErrors'],
  ['RecordsDeadLettered', 'deadLettered'],
  ['RecordsFailed', 'failed'],
];

export interface MetricContext {
  namespace: string;
  service: string;
  durationMs: number;
  now: number;
}

export function batchMetrics(outcomes: readonly RecordOutcome[], ctx: MetricContext): EmfDocument[] {
  const byTopic = new Map<string, RecordOutcome[]>();
  for (const o of outcomes) {
    const list = byTopic.get(o.record.topic);
    if (list) list.push(o);
    else byTopic.set(o.record.topic, [o]);
  }
  return [...byTopic].map(([topic, topicOutcomes]) => {
    const summary = countOutcomes(topicOutcomes);
    const oldest = oldestRecordAgeMs(topicOutcomes, ctx.now);
    return emfDocument({
      namespace: ctx.namespace,
      dimensions: { service: ctx.service, topic },
      values: {
        ...Object.fromEntries(COUNTS.map(([name, field]) => [name, summary[field]])),
        BatchDuration: ctx.durationMs,
        ...(oldest === null ? {} : { OldestRecordAge: oldest }),
      },
      units: { BatchDuration: 'Milliseconds', OldestRecordAge: 'Milliseconds' },
      now: ctx.now,
    });
  });
}

/**
 * One EMF document: every value a metric in `namespace`, dimensioned by every entry of `dimensions` (in their order),
 * its unit from `units` or Count. The one place the envelope is written, for the batch and the dead-letter actions.
 */
export function emfDocument(o: {
  namespace: string;
  dimensions: Record<string, string>;
  values: Record<string, number>;
  units?: Partial<Record<string, MetricUnit>>;
  now: number;
}): EmfDocument {
  return {
    _aws: {
      Timestamp: o.now,
      CloudWatchMetrics: [
        {
          Namespace: o.namespace,
          Dimensions: [Object.keys(o.dimensions)],
          Metrics: Object.keys(o.values).map((name) => ({ Name: name, Unit: o.units?.[name] ?? 'Count' })),
        },
      ],
    },
    ...o.dimensions,
    ...o.values,
  };
}

/**
 * processBatch's metrics hook for the consumer: one document per topic (batchMetrics), each handed to `write` (a line
 * on stdout in Lambda, where CloudWatch reads it).
 */
export function batchMetricsWriter(
  namespace: string,
  write: (document: EmfDocument) => void,
): (outcomes: readonly RecordOutcome[], timing: BatchTiming) => void {
  return (outcomes, timing) => {
    for (const document of batchMetrics(outcomes, { namespace, service: SERVICE, ...timing })) write(document);
  };
}
