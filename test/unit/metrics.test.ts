import { describe, expect, it } from 'vitest';
import { batchMetrics, emfDocument } from '../../lib/aws/emf-metrics';
import { offsetRanges, oldestRecordAgeMs, type RecordOutcome, type RecordState } from '../../lib/batch/record-outcomes';
import type { KafkaRecord } from '../../lib/batch/kafka-record';

const outcome = (
  topic: string,
  partition: number,
  offset: number,
  state: RecordState,
  timestamp: number | null = 1_000,
): RecordOutcome => ({
  record: { topic, partition, offset, timestamp, key: null, value: null, headers: [] } as KafkaRecord,
  state,
  traceId: null,
});

describe('batchMetrics', () => {
  it('should give one EMF document per topic with every count, the duration and the lag', () => {
    const outcomes = [
      outcome('a', 0, 5, 'stored', 4_000),
      outcome('a', 0, 6, 'dead_lettered', 2_500),
      outcome('a', 1, 9, 'failed'),
      outcome('b', 0, 1, 'duplicate', 9_000),
    ];
    const [a, b] = batchMetrics(outcomes, { namespace: 'NS', service: 'svc', durationMs: 42, now: 10_000 });
    expect(a?._aws).toEqual({
      Timestamp: 10_000,
      CloudWatchMetrics: [
        {
          Namespace: 'NS',
          Dimensions: [['service', 'topic']],
          Metrics: [
            { Name: 'RecordsReceived', Unit: 'Count' },
            { Name: 'RecordsStored', Unit: 'Count' },
            { Name: 'RecordsDuplicate', Unit: 'Count' },
            { Name: 'RecordsSuperseded', Unit: 'Count' },
            { Name: 'RecordsUpstreamError', Unit: 'Count' },
            { Name: 'RecordsDeadLettered', Unit: 'Count' },
            { Name: 'RecordsFailed', Unit: 'Count' },
            { Name: 'BatchDuration', Unit: 'Milliseconds' },
            { Name: 'OldestRecordAge', Unit: 'Milliseconds' },
          ],
        },
      ],
    });
    expect(a).toMatchObject({
      service: 'svc',
      topic: 'a',
      RecordsReceived: 3,
      RecordsStored: 1,
      RecordsDeadLettered: 1,
      RecordsFailed: 1,
      BatchDuration: 42,
      OldestRecordAge: 9_000,
    });
    expect(b).toMatchObject({ topic: 'b', RecordsReceived: 1, RecordsDuplicate: 1, OldestRecordAge: 1_000 });
  });

  it('should leave out the lag when no record has a timestamp', () => {
    const [doc] = batchMetrics([outcome('a', 0, 1, 'stored', null)], {
      namespace: 'NS',
      service: 's',
      durationMs: 1,
      now: 5,
    });
    expect(doc).not.toHaveProperty('OldestRecordAge');
    expect(doc?._aws.CloudWatchMetrics[0]?.Metrics.map((m) => m.Name)).not.toContain('OldestRecordAge');
    expect(oldestRecordAgeMs([], 5)).toBeNull();
  });
});

describe('emfDocument', () => {
  it('should write the envelope once: dimensions in order, every value a metric, Count unless a unit is given', () => {
    const document = emfDocument({
      namespace: 'NS',
      dimensions: { service: 'svc', action: 'redrive' },
      values: { DeadLettersRedriven: 3, ActionDuration: 40 },
      units: { ActionDuration: 'Milliseconds' },
      now: 7,
    });
    expect(JSON.stringify(document)).toBe(
      JSON.stringify({
        _aws: {
          Timestamp: 7,
          CloudWatchMetrics: [
            {
              Namespace: 'NS',
              Dimensions: [['service', 'action']],
              Metrics: [
                { Name: 'DeadLettersRedriven', Unit: 'Count' },
                { Name: 'ActionDuration', Unit: 'Milliseconds' },
              ],
            },
          ],
        },
        service: 'svc',
        action: 'redrive',
        DeadLettersRedriven: 3,
        ActionDuration: 40,
      }),
    );
  });
});

describe('offsetRanges', () => {
  it('should give the first and last offset and the count per partition', () => {
    expect(
      offsetRanges([
        outcome('t', 0, 7, 'stored'),
        outcome('t', 1, 3, 'stored'),
        outcome('t', 0, 9, 'stored'),
        outcome('t', 0, 8, 'stored'),
      ]),
    ).toEqual({
      't-0': { first: 7, last: 9, records: 3 },
      't-1': { first: 3, last: 3, records: 1 },
    });
  });
});
