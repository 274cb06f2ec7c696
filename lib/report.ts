import { diagnoseDatabaseFailure } from './diagnose';
import { BatchFailedError } from './errors';
import { partitionKey, type KafkaRecord } from './kafka';

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

/** The partial batch response Lambda reads for Kafka; `itemIdentifier` is an object, not a string. */
export interface KafkaBatchResponse {
  batchItemFailures: { itemIdentifier: { partition: string; offset: number } }[];
}

export function summarize(outcomes: readonly RecordOutcome[]): BatchSummary {
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

/**
 * The response for Lambda: the failed records, so that only they (and, Lambda being Lambda, what follows them in
 * their partition) are delivered again. Throws {@link BatchFailedError} when no record could be settled, and when
 * any failed while partial responses are off, because a returned list is silently taken as success wherever the
 * event source mapping lacks `ReportBatchItemFailures`.
 * https://docs.aws.amazon.com/lambda/latest/dg/kafka-retry-configurations.html
 */
export function toResponse(outcomes: readonly RecordOutcome[], reportBatchItemFailures: boolean): KafkaBatchResponse {
  const failed = outcomes.filter((o) => o.state === 'failed');
  if (failed.length > 0 && (failed.length === outcomes.length || !reportBatchItemFailures)) {
    throw new BatchFailedError(failed.length, outcomes.length, diagnoseDatabaseFailure(failed[0]?.error));
  }
  return {
    batchItemFailures: failed.map((o) => ({
      itemIdentifier: { partition: partitionKey(o.record), offset: o.record.offset },
    })),
  };
}
