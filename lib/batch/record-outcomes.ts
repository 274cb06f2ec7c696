import type { KafkaRecord } from './kafka-record';


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
