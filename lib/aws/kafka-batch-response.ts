import { diagnoseDatabaseFailure } from '../postgres/diagnose-failure';
import { BatchFailedError } from '../errors';
import type { RecordOutcome } from '../batch/record-outcomes';
import { partitionKey } from '../batch/kafka-record';

/** The partial batch response Lambda reads for Kafka; `itemIdentifier` is an object, not a string. */
export interface KafkaBatchResponse {
  batchItemFailures: { itemIdentifier: { partition: string; offset: number } }[];
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
