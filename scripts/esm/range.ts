/**
 * Reading a bounded range of a partition, outside the consumer group (nothing is committed): what `npm run replay`
 * runs through the handler. A range is inclusive, and is cut at the partition's current end.
 */
import { randomUUID } from 'node:crypto';
import { Consumer, MessagesStreamModes } from '@platformatic/kafka';
import type { PolledRecord } from './mapping';
import { clientOptions, type KafkaSettings } from './settings';

export interface OffsetRange {
  partition: number;
  from: number;
  to: number;
}

function reader(kafka: KafkaSettings) {
  // A group of its own: joining the mapping's group would take partitions away from a running local:esm.
  return new Consumer({ ...clientOptions(kafka, 'trace-consumer-replay'), groupId: `trace-consumer-replay-${randomUUID()}` });
}

/** The ranges from the first record at or after `since` to the last before `until`, per partition (epoch ms). */
export async function rangesForTime(kafka: KafkaSettings, since: number, until: number): Promise<OffsetRange[]> {
  const consumer = reader(kafka);
  try {
    const start = (await consumer.listOffsets({ topics: [kafka.topic], timestamp: BigInt(since) })).get(kafka.topic) ?? [];
    const end = (await consumer.listOffsets({ topics: [kafka.topic], timestamp: BigInt(until) })).get(kafka.topic) ?? [];
    const latest = (await consumer.listOffsets({ topics: [kafka.topic] })).get(kafka.topic) ?? [];
    // Kafka answers -1 for "no record at or after this time": the range then runs to the end of the partition.
    const at = (list: bigint[], p: number) => (list[p] === undefined || list[p] < 0n ? Number(latest[p] ?? 0n) : Number(list[p]));
    return start.map((_, partition) => ({ partition, from: at(start, partition), to: at(end, partition) - 1 })).filter((r) => r.to >= r.from);
  } finally {
    await consumer.close();
  }
}

/** Reads the records of `ranges`, in offset order per partition. */
export async function readRanges(kafka: KafkaSettings, ranges: readonly OffsetRange[]): Promise<PolledRecord[]> {
  const consumer = reader(kafka);
  try {
    const latest = (await consumer.listOffsets({ topics: [kafka.topic] })).get(kafka.topic) ?? [];
    const wanted = ranges
      .map((r) => ({ ...r, to: Math.min(r.to, Number(latest[r.partition] ?? 0n) - 1) }))
      .filter((r) => r.to >= r.from);
    if (wanted.length === 0) return [];
    const stream = await consumer.consume({
      topics: [kafka.topic],
      mode: MessagesStreamModes.MANUAL,
      offsets: wanted.map((r) => ({ topic: kafka.topic, partition: r.partition, offset: BigInt(r.from) })),
      autocommit: false,
      maxWaitTime: 200,
    });
    const records: PolledRecord[] = [];
    const remaining = new Map(wanted.map((r) => [r.partition, r]));
    try {
      for await (const m of stream) {
        const range = remaining.get(m.partition);
        const offset = Number(m.offset);
        if (!range || offset < range.from) continue;
        if (offset <= range.to) {
          records.push({
            topic: m.topic,
            partition: m.partition,
            offset,
            timestamp: Number(m.timestamp),
            timestampType: 'CREATE_TIME',
            key: m.key ?? null,
            value: m.value ?? null,
            headers: [...m.headers.entries()],
          });
        }
        if (offset >= range.to) remaining.delete(m.partition);
        if (remaining.size === 0) break;
      }
    } finally {
      await stream.close();
    }
    return records.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
  } finally {
    await consumer.close();
  }
}
