
import { type BatchSummary, countOutcomes, type RecordOutcome } from '../batch/record-outcomes';
import { partitionKey } from '../batch/kafka-record';

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

/** Metric name, its unit, and how a topic's share of the batch gives its value. */
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

/** Consumer lag in time: how long ago the oldest record of the batch was written to Kafka. */
export function oldestRecordAgeMs(outcomes: readonly RecordOutcome[], now: number): number | null {
  let oldest: number | null = null;
  for (const o of outcomes) {
    const t = o.record.timestamp;
    if (t !== null && (oldest === null || t < oldest)) oldest = t;
  }
  return oldest === null ? null : Math.max(0, now - oldest);
}

/** First and last offset and record count per `"<topic>-<partition>"`, for the summary log line. */
export function offsetRanges(outcomes: readonly RecordOutcome[]): Record<string, { first: number; last: number; records: number }> {
  const ranges: Record<string, { first: number; last: number; records: number }> = {};
  for (const { record } of outcomes) {
    const key = partitionKey(record);
    const range = ranges[key];
    if (!range) ranges[key] = { first: record.offset, last: record.offset, records: 1 };
    else {
      range.first = Math.min(range.first, record.offset);
      range.last = Math.max(range.last, record.offset);
      range.records += 1;
    }
  }
  return ranges;
}
