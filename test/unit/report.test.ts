import { describe, expect, it } from 'vitest';
import { BatchFailedError } from '../../lib/errors';
import { countOutcomes, type RecordOutcome, type RecordState } from '../../lib/batch/record-outcomes';
import { toResponse } from '../../lib/aws/kafka-batch-response';
import type { KafkaRecord } from '../../lib/batch/kafka-record';

const outcome = (state: RecordState, partition: number, offset: number): RecordOutcome => ({
  record: {
    topic: 'trace-survey-processed',
    partition,
    offset,
    timestamp: null,
    key: null,
    value: null,
    headers: [],
  } as KafkaRecord,
  state,
  traceId: null,
});

describe('toResponse', () => {
  it('should list failed records with the object identifier Lambda expects', () => {
    const response = toResponse(
      [outcome('stored', 0, 1), outcome('failed', 0, 2), outcome('dead_lettered', 1, 5), outcome('failed', 1, 6)],
      true,
    );
    expect(response).toEqual({
      batchItemFailures: [
        { itemIdentifier: { partition: 'trace-survey-processed-0', offset: 2 } },
        { itemIdentifier: { partition: 'trace-survey-processed-1', offset: 6 } },
      ],
    });
  });

  it('should answer an all-settled batch with an empty list', () => {
    expect(toResponse([outcome('stored', 0, 1), outcome('duplicate', 0, 2)], true)).toEqual({ batchItemFailures: [] });
    expect(toResponse([], true)).toEqual({ batchItemFailures: [] });
  });

  it('should throw when every record failed', () => {
    expect(() => toResponse([outcome('failed', 0, 1), outcome('failed', 0, 2)], true)).toThrow(BatchFailedError);
  });

  it('should throw on any failure when partial responses are off', () => {
    expect(() => toResponse([outcome('stored', 0, 1), outcome('failed', 0, 2)], false)).toThrow(/1 of 2 records/);
    expect(toResponse([outcome('stored', 0, 1)], false)).toEqual({ batchItemFailures: [] });
  });
});

describe('countOutcomes', () => {
  it('should count every state so that the counts add up to the records received', () => {
    const states: RecordState[] = [
      'stored',
      'stored',
      'duplicate',
      'superseded',
      'upstream_error',
      'dead_lettered',
      'failed',
    ];
    const summary = countOutcomes(states.map((s, i) => outcome(s, 0, i)));
    expect(summary).toEqual({
      received: 7,
      stored: 2,
      duplicates: 1,
      superseded: 1,
      upstreamErrors: 1,
      deadLettered: 1,
      failed: 1,
    });
    const { received, ...rest } = summary;
    expect(Object.values(rest).reduce((a, b) => a + b, 0)).toBe(received);
  });
});
