import { type KafkaRecord, partitionKey } from './kafka-record';

/** The state every record of a batch ends in: exactly one of these. */
export type RecordState = 'stored' | 'duplicate' | 'superseded' | 'upstream_error' | 'dead_lettered' | 'failed';

export interface RecordOutcome {
  record: KafkaRecord;
  state: RecordState;
  traceId: string | null;
  /** For dead letters: the stable reason code (tombstone, invalid_json, ..., db_rejected). */
  reason?: string;
  detail?: string;
  /** For failures: what went wrong. */
  error?: unknown;
}

export interface BatchSummary {
  received: number;
  stored: number;
  duplicates: number;
  superseded: number;
  upstreamErrors: number;
  deadLettered: number;
  failed: number;
}

/** How many records of `outcomes` ended in each state: the summary log line, the metrics and the tests read it. */
export function countOutcomes(outcomes: readonly RecordOutcome[]): BatchSummary {
  const count = (state: RecordState) => outcomes.filter((o) => o.state === state).length;
  return {
    received: outcomes.length,
    stored: count('stored'),
    duplicates: count('duplicate'),
    superseded: count('superseded'),
    upstreamErrors: count('upstream_error'),
    deadLettered: count('dead_lettered'),
    failed: count('failed'),
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
export function offsetRanges(
  outcomes: readonly RecordOutcome[],
): Record<string, { first: number; last: number; records: number }> {
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
