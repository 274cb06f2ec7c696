/**
 * Builds the event Lambda would send for Amazon MSK or self-managed Kafka from plain messages, so that users' own
 * data, tests and benchmarks all go through the real handler path.
 */

export type EventSource = 'msk' | 'self-managed';

export interface RecordInput {
  /**
   * An object or array is JSON-encoded; a string is taken as UTF-8 text; a Buffer as raw bytes; null is a tombstone.
   */
  value: unknown;
  key?: string | Buffer | null;
  /** By name (UTF-8 values), or in Kafka order with repeats and byte values. */
  headers?: Record<string, string> | ReadonlyArray<{ key: string; value: string | Buffer }>;
  /** Partition to put the record in; by default records are spread round-robin over `partitions`. */
  partition?: number;
  /** Kafka timestamp in epoch milliseconds; defaults to `timestamp` of the options plus the record's index. */
  timestamp?: number;
}

export interface EventOptions {
  source?: EventSource;
  topic?: string;
  partitions?: number;
  /** The first offset in each partition. */
  firstOffset?: number;
  timestamp?: number;
}

export const DEFAULT_TOPIC = 'trace-survey-processed';
const MSK_ARN = 'arn:aws:kafka:us-east-1:123456789012:cluster/trace-cluster/abcd1234-ab12-cd34-ef56-abcdef123456-1';

export function buildKafkaEvent(records: readonly RecordInput[], options: EventOptions = {}) {
  const source = options.source ?? 'msk';
  const topic = options.topic ?? DEFAULT_TOPIC;
  const partitions = options.partitions ?? 1;
  const nextOffset = new Map<number, number>();
  const grouped: Record<string, unknown[]> = {};
  records.forEach((input, index) => {
    const partition = input.partition ?? index % partitions;
    const offset = nextOffset.get(partition) ?? options.firstOffset ?? 0;
    nextOffset.set(partition, offset + 1);
    const record: Record<string, unknown> = {
      topic,
      partition,
      offset,
      timestamp: input.timestamp ?? (options.timestamp ?? 1_700_000_000_000) + index,
      timestampType: 'CREATE_TIME',
      headers: headerEntries(input.headers).map(({ key, value }) => ({ [key]: [...Buffer.from(value)] })),
    };
    if (input.key !== undefined && input.key !== null) record.key = Buffer.from(input.key).toString('base64');
    const bytes = toBytes(input.value);
    if (bytes !== null) record.value = bytes.toString('base64');
    grouped[`${topic}-${partition}`] ??= [];
    grouped[`${topic}-${partition}`]?.push(record);
  });
  return source === 'msk'
    ? {
        eventSource: 'aws:kafka',
        eventSourceArn: MSK_ARN,
        bootstrapServers: 'b-1.trace-cluster.kafka.us-east-1.amazonaws.com:9098',
        records: grouped,
      }
    : { eventSource: 'SelfManagedKafka', bootstrapServers: 'kafka-1.example.internal:9092', records: grouped };
}

function toBytes(value: unknown): Buffer | null {
  if (value === null || value === undefined) return null;
  if (Buffer.isBuffer(value)) return value;
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  return Buffer.from(JSON.stringify(value), 'utf8');
}

function headerEntries(headers: RecordInput['headers']): ReadonlyArray<{ key: string; value: string | Buffer }> {
  if (headers === undefined) return [];
  return Array.isArray(headers) ? headers : Object.entries(headers).map(([key, value]) => ({ key, value }));
}
