import type { KafkaRecord } from '../batch/kafka-record';

/** A dead_letters row as read for show and redrive (bigint columns arrive as strings from postgres.js). */
export interface StoredDeadLetter {
  id: string;
  kafka_topic: string;
  kafka_partition: number;
  kafka_offset: string;
  kafka_timestamp: Date | null;
  key: Buffer | null;
  value: Buffer | null;
  /** Kafka headers in Kafka order: the UTF-8 bytes of each key, and each value (schema version 2). */
  header_keys: Buffer[];
  header_values: Buffer[];
  reason: string;
  detail: string | null;
  trace_id: string | null;
  created_at: Date;
  redriven_at: Date | null;
  redrive_result: string | null;
  redrive_reason: string | null;
  redrive_detail: string | null;
  redrive_count: number;
}

/** The columns of {@link StoredDeadLetter}, for `select ${sql(DEAD_LETTER_COLUMNS)}`. */
export const DEAD_LETTER_COLUMNS = [
  'id',
  'kafka_topic',
  'kafka_partition',
  'kafka_offset',
  'kafka_timestamp',
  'key',
  'value',
  'header_keys',
  'header_values',
  'reason',
  'detail',
  'trace_id',
  'created_at',
  'redriven_at',
  'redrive_result',
  'redrive_reason',
  'redrive_detail',
  'redrive_count',
] as const;

/**
 * The Kafka record a dead letter was made from, as the consumer decoded it: the same coordinates, timestamp, key,
 * value bytes and headers. This is the one place that knows how dead_letters stores a record; a change to how
 * headers are kept changes only this function.
 */
export function toKafkaRecord(row: StoredDeadLetter): KafkaRecord {
  return {
    topic: row.kafka_topic,
    partition: row.kafka_partition,
    offset: Number(row.kafka_offset),
    timestamp: row.kafka_timestamp === null ? null : row.kafka_timestamp.getTime(),
    key: row.key,
    value: row.value,
    headers: storedHeaders(row),
  };
}

/** The headers of a dead letter, in Kafka order with repeats, values byte-exact. */
export function storedHeaders(row: Pick<StoredDeadLetter, 'header_keys' | 'header_values'>): KafkaRecord['headers'] {
  return row.header_keys.map((key, i) => ({
    key: key.toString('utf8'),
    value: row.header_values[i] ?? Buffer.alloc(0),
  }));
}
