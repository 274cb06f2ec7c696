import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeEvent } from '../../lib/aws/kafka-event';
import {
  batchLength,
  batchReady,
  decide,
  MAX_PAYLOAD_BYTES,
  onFailureRecord,
  retryDelayMs,
  toLambdaEvent,
  type Decision,
  type PolledRecord,
} from '../../scripts/esm/mapping';
import { loadEsmSettings } from '../../scripts/esm/settings';

const TOPIC = 'trace-survey-processed';

function batch(partition: number, firstOffset: number, size: number): PolledRecord[] {
  return Array.from({ length: size }, (_, i) => ({
    topic: TOPIC,
    partition,
    offset: firstOffset + i,
    timestamp: 1_700_000_000_000 + i,
    timestampType: 'CREATE_TIME' as const,
    key: Buffer.from(`key-${i}`),
    value: Buffer.from(`{"n":${i}}`),
    headers: [],
  }));
}

const failuresAt = (partition: number, ...offsets: number[]) => ({
  batchItemFailures: offsets.map((offset) => ({ itemIdentifier: { partition: `${TOPIC}-${partition}`, offset } })),
});

describe('toLambdaEvent', () => {
  const record = (over: Partial<PolledRecord>): PolledRecord => ({ ...batch(0, 0, 1)[0]!, ...over });

  it('should build the MSK and the self-managed shape with records grouped by topic-partition in offset order', () => {
    const records = [
      record({ partition: 1, offset: 9 }),
      record({ partition: 0, offset: 4 }),
      record({ partition: 1, offset: 7 }),
    ];
    const msk = toLambdaEvent(records, {
      kind: 'msk',
      bootstrapServers: 'b-1:9098',
      clusterArn: 'arn:aws:kafka:us-east-1:1:cluster/c/1',
    });
    const selfManaged = toLambdaEvent(records, { kind: 'self-managed', bootstrapServers: 'k-1:9092,k-2:9092' });

    expect(msk).toMatchObject({
      eventSource: 'aws:kafka',
      eventSourceArn: 'arn:aws:kafka:us-east-1:1:cluster/c/1',
      bootstrapServers: 'b-1:9098',
    });
    expect(selfManaged).toMatchObject({ eventSource: 'SelfManagedKafka', bootstrapServers: 'k-1:9092,k-2:9092' });
    expect(selfManaged).not.toHaveProperty('eventSourceArn');
    for (const event of [msk, selfManaged]) {
      expect(Object.keys(event.records).sort()).toEqual([`${TOPIC}-0`, `${TOPIC}-1`]);
      expect(event.records[`${TOPIC}-1`]!.map((r) => r.offset)).toEqual([7, 9]);
    }
  });

  it(
    'should encode key and value in base64, leave them out when null, and keep every header byte and repeat in ' +
      'order',
    () => {
      fc.assert(
        fc.property(
          fc.option(fc.uint8Array({ maxLength: 64 }), { nil: null }),
          fc.option(fc.uint8Array({ maxLength: 256 }), { nil: null }),
          fc.array(fc.tuple(fc.constantFrom('content-type', 'trace-bin', 'x'), fc.uint8Array({ maxLength: 16 })), {
            maxLength: 6,
          }),
          fc.constantFrom('CREATE_TIME' as const, 'LOG_APPEND_TIME' as const),
          (key, value, headers, timestampType) => {
            const polled = record({
              key: key && Buffer.from(key),
              value: value && Buffer.from(value),
              headers: headers.map(([k, v]) => [Buffer.from(k), Buffer.from(v)] as const),
              timestampType,
            });
            const event = toLambdaEvent([polled], { kind: 'self-managed', bootstrapServers: 'k:9092' });
            const wire = event.records[`${TOPIC}-0`]![0]!;
            expect('key' in wire).toBe(key !== null);
            expect('value' in wire).toBe(value !== null);
            if (key) expect(Buffer.from(wire.key!, 'base64')).toEqual(Buffer.from(key));
            if (value) expect(Buffer.from(wire.value!, 'base64')).toEqual(Buffer.from(value));
            expect(wire.headers).toEqual(headers.map(([k, v]) => ({ [k]: [...v] })));
            expect(wire).toMatchObject({ timestamp: polled.timestamp, timestampType });
            // The consumer's own decoder reads back what was built.
            const [decoded] = decodeEvent(event);
            expect(decoded).toMatchObject({
              topic: TOPIC,
              partition: 0,
              offset: polled.offset,
              timestamp: polled.timestamp,
            });
            expect(decoded?.value).toEqual(value === null ? null : Buffer.from(value));
          },
        ),
      );
    },
  );
});

describe('decide', () => {
  const policy = { maxRetries: 3 };

  it('should commit past the batch when the response reports nothing failed, whatever form "nothing" takes', () => {
    for (const response of [undefined, null, {}, { batchItemFailures: [] }, { batchItemFailures: null }]) {
      expect(decide(batch(2, 40, 10), { ok: true, response }, 0, policy)).toEqual({ action: 'commit', commit: 50 });
    }
  });

  it('should commit up to the lowest reported offset and redeliver from it, for any set of reported offsets', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 50 }), fc.nat(1000), (size, first) => {
        const records = batch(3, first, size);
        return fc.assert(
          fc.property(
            fc.uniqueArray(fc.integer({ min: first, max: first + size - 1 }), { minLength: 1, maxLength: size }),
            (failed) => {
              const lowest = Math.min(...failed);
              const decision = decide(records, { ok: true, response: failuresAt(3, ...failed) }, 0, policy);
              expect(decision).toMatchObject({ action: 'retry', commit: lowest, from: lowest, attempt: 1 });
            },
          ),
          { numRuns: 5 },
        );
      }),
      { numRuns: 30 },
    );
  });

  it('should retry the whole batch when the function throws or answers with an identifier Lambda cannot match', () => {
    const records = batch(1, 100, 5);
    const unreadable: unknown[] = [
      'ok',
      { batchItemFailures: 'all' },
      failuresAt(2, 101), // another partition
      failuresAt(1, 99), // an offset not in the batch
      { batchItemFailures: [{ itemIdentifier: `${TOPIC}-1:101` }] }, // a string, the SQS habit
      { batchItemFailures: [{ itemIdentifier: { 'topic-partition': `${TOPIC}-1`, offset: 101 } }] },
    ];
    const invocations = [
      { ok: false as const, error: new Error('boom') },
      ...unreadable.map((response) => ({ ok: true as const, response })),
    ];
    for (const invocation of invocations) {
      expect(decide(records, invocation, 0, policy)).toMatchObject({
        action: 'retry',
        commit: 100,
        from: 100,
        attempt: 1,
      });
    }
  });

  it('should count retries at the same position and start afresh once a redelivery made progress', () => {
    const records = batch(0, 10, 5);
    expect(decide(records, { ok: true, response: failuresAt(0, 10) }, 2, policy)).toMatchObject({
      action: 'retry',
      attempt: 3,
    });
    expect(decide(records, { ok: true, response: failuresAt(0, 12) }, 2, policy)).toMatchObject({
      action: 'retry',
      from: 12,
      attempt: 1,
    });
  });

  it('should give the failed range up to the on-failure destination after the last retry, and never with -1', () => {
    const records = batch(0, 10, 5);
    const cases: [number, number, Decision['action']][] = [
      [0, 0, 'give-up'],
      [3, 2, 'retry'],
      [3, 3, 'give-up'],
      [-1, 10_000, 'retry'],
    ];
    for (const [maxRetries, attempt, action] of cases) {
      for (const invocation of [
        { ok: false as const, error: new Error('down') },
        { ok: true as const, response: failuresAt(0, 10, 13) },
      ]) {
        expect(decide(records, invocation, attempt, { maxRetries }).action).toBe(action);
      }
    }
    const decision = decide(records, { ok: true, response: failuresAt(0, 10, 13) }, 3, policy);
    expect(decision).toEqual({
      action: 'give-up',
      commit: 15,
      failed: { from: 10, to: 14 },
      attempts: 4,
      reason: '2 record(s) reported failed',
    });
    if (decision.action !== 'give-up') throw new Error('unreachable');
    expect(onFailureRecord(records, decision, new Date('2026-01-01T00:00:00Z'))).toEqual({
      condition: 'RetryAttemptsExhausted',
      timestamp: '2026-01-01T00:00:00.000Z',
      topic: TOPIC,
      partition: 0,
      firstOffset: 10,
      lastOffset: 14,
      approximateInvokeCount: 4,
      reason: '2 record(s) reported failed',
    });
  });
});

describe('batching and backoff', () => {
  it('should deliver a full batch at once and a partial one only when the window has passed', () => {
    const options = { batchSize: 100, windowMs: 500 };
    expect(batchReady(100, 1000, 1000, options)).toBe(true);
    expect(batchReady(99, 1000, 1499, options)).toBe(false);
    expect(batchReady(99, 1000, 1500, options)).toBe(true);
    expect(batchReady(0, 0, 10_000, options)).toBe(false);
  });

  it('should cut a batch before its event exceeds the payload limit, and never below one record', () => {
    const sized = (n: number, bytes: number) => batch(0, 0, n).map((r) => ({ ...r, value: Buffer.alloc(bytes, 0x61) }));
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 0, max: 200_000 }),
        fc.integer({ min: 1, max: 500 }),
        (n, bytes, batchSize) => {
          const queue = sized(n, bytes);
          const length = batchLength(queue, batchSize);
          const event = JSON.stringify(
            toLambdaEvent(queue.slice(0, length), {
              kind: 'msk',
              bootstrapServers: 'b-1:9098',
              clusterArn: 'arn:aws:kafka:us-east-1:1:cluster/c/1',
            }),
          );
          expect(length).toBeGreaterThanOrEqual(1);
          expect(length).toBeLessThanOrEqual(Math.min(n, batchSize));
          if (length > 1) expect(event.length).toBeLessThanOrEqual(MAX_PAYLOAD_BYTES);
          // Not cut short: one more record would have broken the size or the count limit.
          if (length < Math.min(n, batchSize)) {
            const more = JSON.stringify(
              toLambdaEvent(queue.slice(0, length + 1), {
                kind: 'msk',
                bootstrapServers: 'b-1:9098',
                clusterArn: 'arn:aws:kafka:us-east-1:1:cluster/c/1',
              }),
            );
            expect(more.length).toBeGreaterThan(MAX_PAYLOAD_BYTES * 0.95);
          }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('should double the retry delay up to its cap', () => {
    expect([1, 2, 3, 4, 10].map((a) => retryDelayMs(a, 1000, 5000))).toEqual([1000, 2000, 4000, 5000, 5000]);
  });
});

describe('loadEsmSettings', () => {
  it('should default to the Python service names and read SASL only when a username is set', () => {
    const defaults = loadEsmSettings({});
    expect(defaults.kafka).toEqual({
      brokers: ['127.0.0.1:9092'],
      topic: TOPIC,
      group: 'trace-consumer',
      sasl: null,
      tls: false,
    });
    const sasl = loadEsmSettings({
      KAFKA_BROKERS: 'a:9092,b:9093',
      KAFKA_USERNAME: 'svc',
      KAFKA_PASSWORD: 'pw',
      KAFKA_SASL_MECHANISM: 'PLAIN',
    });
    expect(sasl.kafka).toMatchObject({
      brokers: ['a:9092', 'b:9093'],
      sasl: { mechanism: 'PLAIN', username: 'svc', password: 'pw' },
    });
  });

  it('should name every invalid variable in one CONFIG_INVALID error', () => {
    const load = () =>
      loadEsmSettings({
        KAFKA_BROKERS: 'no-port',
        ESM_BATCH_SIZE: '0',
        KAFKA_SASL_MECHANISM: 'x',
        KAFKA_PASSWORD: 'secret',
      });
    expect(load).toThrow(
      expect.objectContaining({
        code: 'CONFIG_INVALID',
        message: expect.stringMatching(/KAFKA_BROKERS.*KAFKA_SASL_MECHANISM.*ESM_BATCH_SIZE/),
      }),
    );
  });
});
