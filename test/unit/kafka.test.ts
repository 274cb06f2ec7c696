import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EnvelopeError } from '../../lib/errors';
import { decodeEvent } from '../../lib/aws/kafka-event';
import { buildKafkaEvent } from '../../scripts/encode-kafka-event';
import { partitionKey } from '../../lib/batch/kafka-record';

describe('decodeEvent', () => {
  it("should decode AWS's own MSK fixture: base64 key and value, byte-array headers", () => {
    const event = {
      eventSource: 'aws:kafka',
      eventSourceArn:
        'arn:aws:kafka:us-west-2:012345678901:cluster/ExampleMSKCluster/e9f754c6-d29a-4430-a7db-958a19fd2c54-4',
      records: {
        'AWSKafkaTopic-0': [
          {
            topic: 'AWSKafkaTopic',
            partition: 0,
            offset: 0,
            timestamp: 1595035749700,
            timestampType: 'CREATE_TIME',
            key: 'OGQ1NTk2YjQtMTgxMy00MjM4LWIyNGItNmRhZDhlM2QxYzBj',
            value: 'OGQ1NTk2YjQtMTgxMy00MjM4LWIyNGItNmRhZDhlM2QxYzBj',
            headers: [{ headerKey: [104, 101, 97, 100, 101, 114, 86, 97, 108, 117, 101] }],
          },
        ],
      },
    };
    const [record] = decodeEvent(event);
    expect(record).toMatchObject({ topic: 'AWSKafkaTopic', partition: 0, offset: 0, timestamp: 1595035749700 });
    expect(record?.headers).toEqual([{ key: 'headerKey', value: Buffer.from('headerValue') }]);
    expect(record?.key?.toString()).toBe('8d5596b4-1813-4238-b24b-6dad8e3d1c0c');
    expect(record?.value?.toString()).toBe('8d5596b4-1813-4238-b24b-6dad8e3d1c0c');
  });

  it('should return every record of every partition in event order', () => {
    const event = buildKafkaEvent([{ value: 'a' }, { value: 'b' }, { value: 'c' }, { value: 'd' }], {
      partitions: 2,
      firstOffset: 7,
    });
    const records = decodeEvent(event);
    expect(records.map((r) => [r.partition, r.offset, r.value?.toString()])).toEqual([
      [0, 7, 'a'],
      [0, 8, 'c'],
      [1, 7, 'b'],
      [1, 8, 'd'],
    ]);
  });

  it('should decode a self-managed Kafka event the same way', () => {
    const [record] = decodeEvent(buildKafkaEvent([{ value: '{}', key: 'k' }], { source: 'self-managed' }));
    expect(record?.key?.toString()).toBe('k');
    expect(record?.value?.toString()).toBe('{}');
  });

  it('should keep a record without value as a tombstone (null value)', () => {
    const [record] = decodeEvent(buildKafkaEvent([{ value: null, key: 'gone' }]));
    expect(record?.value).toBeNull();
  });

  it('should mask header bytes as Lambda does and skip malformed headers', () => {
    const event = buildKafkaEvent([{ value: '{}' }]);
    const rec = Object.values(event.records)[0]![0] as Record<string, unknown>;
    rec.headers = [{ a: [104, 105] }, { b: [256 + 111, -21] }, { c: 'not bytes' }, null];
    expect(decodeEvent(event)[0]?.headers).toEqual([
      { key: 'a', value: Buffer.from('hi') },
      { key: 'b', value: Buffer.from([111, 235]) },
    ]);
  });

  it('should keep headers byte-exact and in order, repeated keys and binary values included', () => {
    const headers = [
      { key: 'trace', value: Buffer.from([0, 255, 0xc3, 0x28]) },
      { key: 'x', value: Buffer.alloc(0) },
      { key: 'trace', value: Buffer.from('second') },
      { key: 'ключ\u0000', value: Buffer.alloc(10_000, 7) },
    ];
    expect(decodeEvent(buildKafkaEvent([{ value: '{}', headers }]))[0]?.headers).toEqual(headers);
  });

  it.each([
    [-1, null],
    [-5, null],
    [0, 0],
    [1_700_000_000_000, 1_700_000_000_000],
  ])('should read Kafka timestamp %s as %s (negative means none)', (timestamp, expected) => {
    expect(decodeEvent(buildKafkaEvent([{ value: '{}', timestamp }]))[0]?.timestamp).toBe(expected);
  });

  it('should accept an event with no records in a partition', () => {
    expect(decodeEvent({ eventSource: 'aws:kafka', records: { 'x-0': [] } })).toEqual([]);
  });

  it.each([
    ['no records', { eventSource: 'aws:kafka' }],
    ['records not an object', { records: 'all of them' }],
    ['a record without offset', { records: { 't-0': [{ topic: 't', partition: 0 }] } }],
    ['a negative partition', { records: { 't-0': [{ topic: 't', partition: -1, offset: 0 }] } }],
    ['not an object at all', 'hello'],
  ])('should throw EnvelopeError for %s', (_name, event) => {
    expect(() => decodeEvent(event)).toThrow(EnvelopeError);
    try {
      decodeEvent(event);
    } catch (e) {
      expect((e as EnvelopeError).code).toBe('EVENT_MALFORMED');
    }
  });

  it('should tell an HTTP API request (every health sample, payload 1.0 too) to go to the health function', () => {
    const dir = join(__dirname, '..', '..', 'events');
    const samples = readdirSync(dir)
      .filter((f) => f.startsWith('health-'))
      .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as Record<string, unknown>);
    const v1 = { httpMethod: 'GET', path: '/healthz', requestContext: { stage: 'prod' } };
    for (const event of [...samples, v1]) {
      expect(() => decodeEvent(event)).toThrow(EnvelopeError);
      expect(() => decodeEvent(event)).toThrow(
        expect.objectContaining({
          code: 'EVENT_MALFORMED',
          message: expect.stringMatching(
            /it is an HTTP API request \((GET|POST) \/[\w/-]+\), meant for the health function\. Send it to the health/,
          ),
        }),
      );
    }
  });

  it('should build the partition key Lambda expects back', () => {
    expect(partitionKey({ topic: 'trace-survey-processed', partition: 3, offset: 9 })).toBe('trace-survey-processed-3');
  });
});
