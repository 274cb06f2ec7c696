/** Where a record sits in Kafka: what Lambda needs back to retry it, and what dead letters are keyed by. */
export interface RecordRef {
  topic: string;
  partition: number;
  offset: number;
}

/** One Kafka record, decoded from the event's base64 and byte arrays. */
export interface KafkaRecord extends RecordRef {
  /** Epoch milliseconds, or null when the event carries none. */
  timestamp: number | null;
  key: Buffer | null;
  /** The message bytes as produced, or null for a tombstone. */
  value: Buffer | null;
  /** Kafka headers in record order, repeats kept, values byte-exact. */
  headers: ReadonlyArray<KafkaHeader>;
}

/** One Kafka header. Kafka keys are strings; values are bytes, often binary (tracing ids, Avro metadata). */
export interface KafkaHeader {
  key: string;
  value: Buffer;
}

/** The `"<topic>-<partition>"` key Lambda uses in `records` and expects back in `itemIdentifier.partition`. */
export function partitionKey(ref: RecordRef): string {
  return `${ref.topic}-${ref.partition}`;
}
