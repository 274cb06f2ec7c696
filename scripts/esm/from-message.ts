import type { Message } from '@platformatic/kafka';
import type { PolledRecord } from './mapping';

/**
 * A record as the client delivered it. The client does not expose a batch's timestamp type, so every record is
 * labelled CREATE_TIME, Kafka's default and what `npm run kafka` creates; see docs/local-kafka.md.
 */
export function fromMessage(m: Message<Buffer, Buffer, Buffer, Buffer>): PolledRecord {
  return {
    topic: m.topic,
    partition: m.partition,
    offset: Number(m.offset),
    timestamp: Number(m.timestamp),
    timestampType: 'CREATE_TIME',
    key: m.key ?? null,
    value: m.value ?? null,
    // A Map keyed by Buffer objects: repeated header names stay apart, in Kafka order.
    headers: [...m.headers.entries()],
  };
}
