/**
 * Reading a bounded range of a partition, outside the consumer group (nothing is committed): what `npm run replay`
 * runs through the handler. A range is inclusive, and is cut at the partition's current end.
 */
import { randomUUID } from 'node:crypto';
import { Consumer, MessagesStreamModes } from '@platformatic/kafka';
import { fromMessage } from './from-message';
import type { PolledRecord } from './mapping';
import { clientOptions, type KafkaSettings } from './settings';

export interface OffsetRange {
  partition: number;
  from: number;
  to: number;
}

function reader(kafka: KafkaSettings) {
  // A group of its own: joining the mapping's group would take partitions away from a running local:esm.
  return new Consumer({
    ...clientOptions(kafka, 'trace-consumer-replay'),
    groupId: `trace-consumer-replay-${randomUUID()}`,
  });
}

/** The ranges from the first record at or after `since` to the last before `until`, per partition (epoch ms). */
export async function rangesForTime(kafka: KafkaSettings, since: number, until: number): Promise<OffsetRange[]> {
  const consumer = reader(kafka);
  try {
    const start =
      (await consumer.listOffsets({ topics: [kafka.topic], timestamp: BigInt(since) })).get(kafka.topic) ?? [];
    const end =
      (await consumer.listOffsets({ topics: [kafka.topic], timestamp: BigInt(until) })).get(kafka.topic) ?? [];
    const latest = (await consumer.listOffsets({ topics: [kafka.topic] })).get(kafka.topic) ?? [];
    // Kafka answers -1 for "no record at or after this time": the range then runs to the end of the partition.
    const at = (list: bigint[], p: number) =>
      list[p] === undefined || list[p] < 0n ? Number(latest[p] ?? 0n) : Number(list[p]);
    return start
      .map((_, partition) => ({ partition, from: at(start, partition), to: at(end, partition) - 1 }))
      .filter((r) => r.to >= r.from);
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
    // One read per partition, over the span of all its ranges (the on-failure file may hold several).
    const spans = new Map<number, { from: number; to: number }>();
    for (const r of wanted) {
      const span = spans.get(r.partition);
      spans.set(
        r.partition,
        span ? { from: Math.min(span.from, r.from), to: Math.max(span.to, r.to) } : { from: r.from, to: r.to },
      );
    }
    const inRange = (partition: number, offset: number) =>
      wanted.some((r) => r.partition === partition && r.from <= offset && offset <= r.to);
    const stream = await consumer.consume({
      topics: [kafka.topic],
      mode: MessagesStreamModes.MANUAL,
      offsets: [...spans].map(([partition, span]) => ({ topic: kafka.topic, partition, offset: BigInt(span.from) })),
      autocommit: false,
      maxWaitTime: 200,
    });
    const records: PolledRecord[] = [];
    const remaining = new Map(spans);
    try {
      for await (const m of stream) {
        const span = remaining.get(m.partition);
        const offset = Number(m.offset);
        if (!span) continue;
        if (inRange(m.partition, offset)) {
          records.push(fromMessage(m));
        }
        if (offset >= span.to) remaining.delete(m.partition);
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
