/**
 * Publishing to the local topic: the sample messages (or the records of a saved Lambda event) with their keys and
 * headers. Used by `npm run produce` and by the end-to-end tests.
 */
import { Producer } from '@platformatic/kafka';
import { sampleMessage } from '../sample-events';
import { clientOptions, type KafkaSettings } from './settings';

export interface OutgoingMessage {
  key: Buffer | null;
  /** null publishes a tombstone. */
  value: Buffer | null;
  /** In order; a key may repeat. */
  headers: ReadonlyArray<readonly [string, Buffer]>;
  /** A fixed partition; by default the producer's partitioner picks one from the key. */
  partition?: number;
}

/**
 * Publishes `messages` in order, in sends of at most `maxBytes` of values (the broker refuses a partition's batch
 * above its message.max.bytes, 1 MB by default), each acknowledged by the broker; returns how many were published.
 */
export async function publish(
  kafka: KafkaSettings,
  messages: readonly OutgoingMessage[],
  maxBytes = 512 * 1024,
): Promise<number> {
  const producer = new Producer({ ...clientOptions(kafka, 'trace-consumer-produce'), acks: -1 });
  try {
    for (let i = 0; i < messages.length; ) {
      let end = i;
      for (
        let bytes = 0;
        end < messages.length && (end === i || bytes + (messages[end]!.value?.length ?? 0) <= maxBytes);
        end++
      ) {
        bytes += messages[end]!.value?.length ?? 0;
      }
      await producer.send({
        messages: messages.slice(i, end).map((m) => ({
          topic: kafka.topic,
          key: m.key ?? undefined,
          // The client's types want a value; undefined is written as Kafka's null value, a tombstone.
          value: (m.value ?? undefined) as Buffer,
          // Distinct Buffer objects as keys keep repeated header names apart in the Map.
          headers: new Map(m.headers.map(([k, v]) => [Buffer.from(k, 'utf8'), v] as const)),
          ...(m.partition === undefined ? {} : { partition: m.partition }),
        })),
      });
      i = end;
    }
    return messages.length;
  } finally {
    await producer.close();
  }
}

/** `count` sample survey messages (as in events/), keyed by trace id, with a content-type and a producer header. */
export function sampleMessages(count: number, from = 0, semester = '2024FA'): OutgoingMessage[] {
  return Array.from({ length: count }, (_, k) => {
    const message = sampleMessage(from + k, semester);
    return {
      key: Buffer.from(message.traceId, 'utf8'),
      value: Buffer.from(JSON.stringify(message), 'utf8'),
      headers: [
        ['content-type', Buffer.from('application/json')],
        ['producer', Buffer.from('trace-consumer npm run produce')],
      ],
    };
  });
}

/** The records of a saved Lambda Kafka event (events/*.json), decoded back into messages for their partitions. */
export function messagesFromEvent(event: unknown, partitions: number): OutgoingMessage[] {
  const records = (event as { records?: Record<string, unknown[]> }).records ?? {};
  const out: OutgoingMessage[] = [];
  for (const list of Object.values(records)) {
    for (const raw of list) {
      const r = raw as { partition?: number; key?: string; value?: string; headers?: Record<string, number[]>[] };
      out.push({
        key: typeof r.key === 'string' ? Buffer.from(r.key, 'base64') : null,
        value: typeof r.value === 'string' ? Buffer.from(r.value, 'base64') : null,
        headers: (r.headers ?? []).flatMap((h) =>
          Object.entries(h).map(([k, bytes]) => [k, Buffer.from(bytes)] as const),
        ),
        partition: (r.partition ?? 0) % partitions,
      });
    }
  }
  return out;
}
