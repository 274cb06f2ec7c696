import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Admin, Consumer } from '@platformatic/kafka';
import { startBroker, type LocalBroker } from '../../scripts/kafka/broker';
import type { InvocationReport } from '../../scripts/esm/poller';
import type { OutgoingMessage } from '../../scripts/esm/publish';
import { loadEsmSettings, type EsmSettings } from '../../scripts/esm/settings';
import { surveyMessage } from './factories';

/**
 * The broker for the end-to-end tests, or null (with a visible notice) when Java or the broker is missing. With
 * REQUIRE_KAFKA_TESTS=1 (set by .ci/run) a broker that cannot start fails the run instead of skipping it.
 */
export async function brokerOrSkip(topics: Record<string, number>): Promise<LocalBroker | null> {
  try {
    return await startBroker({ topics });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    if (process.env.REQUIRE_KAFKA_TESTS === '1')
      throw new Error(`REQUIRE_KAFKA_TESTS=1, but the Kafka tests cannot run: ${reason}`);
    console.warn(`\n*** SKIPPED: the end-to-end Kafka tests (no broker: ${reason}) ***\n`);
    return null;
  }
}

/** Settings of a local mapping on `topic` and `group`, writing its on-failure file into a fresh folder. */
export function mappingSettings(
  broker: LocalBroker,
  topic: string,
  group: string,
  env: Record<string, string> = {},
): EsmSettings {
  const dir = mkdtempSync(join(tmpdir(), 'trace-esm-'));
  return loadEsmSettings({
    KAFKA_BROKERS: broker.bootstrap,
    KAFKA_TOPIC: topic,
    KAFKA_CONSUMER_GROUP: group,
    ESM_ON_FAILURE_FILE: join(dir, 'on-failure.jsonl'),
    ...env,
  });
}

/** A message of the end-to-end mix, with what should become of it. */
export interface Planned {
  message: OutgoingMessage;
  kind: 'valid' | 'repeat' | 'tombstone' | 'invalid_utf8' | 'invalid_json' | 'invalid_message' | 'db_rejected';
  traceId: string | null;
}

// No NUL byte: today's dead_letters.headers is jsonb, which cannot hold U+0000 (22P05), so a record with a NUL in a
// header value could never be dead-lettered; issue 11 stores header bytes as bytea. Other bytes that are not UTF-8 are
// fine.
const BINARY = Buffer.from([0x00, 0x01, 0xff, 0x80, 0x7f, 0xfe, 0xc3]); // NUL and bytes that are not UTF-8

/**
 * `valid` distinct surveys (each its own course, so none supersedes another) spread over `partitions`, mixed with
 * repeats of earlier ones, tombstones, bytes that are not UTF-8, broken JSON, surveys that fail validation (one
 * with a processedAt beyond JavaScript's dates) and surveys PostgreSQL rejects (year 0000 passes validation, but
 * PostgreSQL has no year 0). Every message has a binary header and a repeated header key.
 */
export function messageMix(valid: number, partitions: number, seed: string): Planned[] {
  const plan: Planned[] = [];
  const headers = (n: number): OutgoingMessage['headers'] => [
    ['content-type', Buffer.from('application/json')],
    ['trace-bin', BINARY],
    ['hop', Buffer.from('producer')],
    ['hop', Buffer.from(`e2e-${n}`)],
  ];
  const push = (kind: Planned['kind'], key: string, value: Buffer | null, traceId: string | null = null) =>
    plan.push({
      kind,
      traceId,
      message: { key: Buffer.from(key), value, headers: headers(plan.length), partition: plan.length % partitions },
    });
  const survey = (id: string, over: Record<string, unknown> = {}, course: Record<string, unknown> = {}) =>
    Buffer.from(JSON.stringify(surveyMessage({ traceId: id, ...over }, { courseId: `E2E-${id}`, ...course })));
  const validBytes: { id: string; value: Buffer }[] = [];
  for (let i = 0; i < valid; i++) {
    const id = `${seed}-${i}`;
    const value = survey(id);
    validBytes.push({ id, value });
    push('valid', id, value, id);
    if (i % 8 === 7) push('repeat', validBytes[i - 5]!.id, validBytes[i - 5]!.value, validBytes[i - 5]!.id);
    if (i % 40 === 11) push('tombstone', `${seed}-tombstone-${i}`, null);
    if (i % 40 === 19) push('invalid_utf8', `${seed}-utf8-${i}`, Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d]));
    if (i % 40 === 23)
      push('invalid_json', `${seed}-json-${i}`, Buffer.from(`{"traceId": "${seed}-json-${i}", "course": {`));
    if (i % 80 === 29)
      push(
        'invalid_message',
        `${seed}-far-${i}`,
        survey(
          `${seed}-far-${i}`,
          { processedAt: '+275760-09-13T00:00:00.000Z' },
          { processedAt: '+275760-09-13T00:00:00.000Z' },
        ),
      );
    if (i % 80 === 69)
      push('invalid_message', `${seed}-blank-${i}`, survey(`${seed}-blank-${i}`, { instructor: { name: '   ' } }));
    if (i % 80 === 37)
      push(
        'db_rejected',
        `${seed}-year0-${i}`,
        survey(`${seed}-year0-${i}`, { processedAt: '0000-01-01T00:00:00Z' }, { processedAt: '0000-01-01T00:00:00Z' }),
        `${seed}-year0-${i}`,
      );
  }
  return plan;
}

/** Waits until the mapping has nothing buffered and the group's committed offsets reach every partition's end. */
export async function drained(
  broker: LocalBroker,
  settings: EsmSettings,
  pending: () => number,
  timeoutMs: number,
): Promise<Map<number, { committed: number; end: number }>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const offsets = await groupOffsets(broker, settings.kafka.topic, settings.kafka.group);
    if (pending() === 0 && [...offsets.values()].every((o) => o.committed === o.end)) return offsets;
    if (Date.now() > deadline)
      throw new Error(`not drained after ${timeoutMs} ms: ${JSON.stringify([...offsets])}, ${pending()} buffered`);
    await sleep(500);
  }
}

/** Per partition: the group's committed offset (-1 when none) and the partition's end offset. */
export async function groupOffsets(
  broker: LocalBroker,
  topic: string,
  group: string,
): Promise<Map<number, { committed: number; end: number }>> {
  const admin = new Admin({ clientId: 'e2e-offsets', bootstrapBrokers: [broker.bootstrap] });
  const reader = new Consumer({
    clientId: 'e2e-offsets',
    groupId: `e2e-offsets-${Math.random()}`,
    bootstrapBrokers: [broker.bootstrap],
  });
  try {
    const ends = (await reader.listOffsets({ topics: [topic] })).get(topic) ?? [];
    const [listed] = await admin.listConsumerGroupOffsets({
      groups: [{ groupId: group, topics: [{ name: topic, partitionIndexes: ends.map((_, p) => p) }] }],
    });
    const committed = new Map(
      (listed?.topics.find((t) => t.name === topic)?.partitions ?? []).map((p) => [
        p.partitionIndex,
        Number(p.committedOffset),
      ]),
    );
    return new Map(ends.map((end, p) => [p, { committed: committed.get(p) ?? -1, end: Number(end) }]));
  } finally {
    await reader.close();
    await admin.close();
  }
}

/**
 * Checks that each partition's invocations follow one another exactly as the mapping's decisions said: a retry
 * starts at the offset it named (the lowest one the response reported, or the batch's first after an error) with
 * the next attempt number, anything else continues at the committed offset. Returns the problems found.
 */
export function redeliveryProblems(reports: readonly InvocationReport[], ends: Map<number, { end: number }>): string[] {
  const problems: string[] = [];
  const byPartition = new Map<number, InvocationReport[]>();
  for (const r of reports) byPartition.set(r.partition, [...(byPartition.get(r.partition) ?? []), r]);
  for (const [partition, list] of byPartition) {
    let expected = { offset: 0, attempt: 0 };
    for (const r of list) {
      if (r.firstOffset !== expected.offset || r.attempt !== expected.attempt) {
        problems.push(
          `partition ${partition}: delivery at ${r.firstOffset} (attempt ${r.attempt}), expected ` +
            `${expected.offset} (attempt ${expected.attempt})`,
        );
      }
      const d = r.decision;
      if (d.action === 'retry' && r.invocation.ok) {
        const reported = (
          r.invocation.response as { batchItemFailures: { itemIdentifier: { offset: number } }[] }
        ).batchItemFailures.map((f) => f.itemIdentifier.offset);
        if (d.from !== Math.min(...reported))
          problems.push(
            `partition ${partition}: retry from ${d.from}, but the response reported ${reported.join(',')}`,
          );
      }
      expected = d.action === 'retry' ? { offset: d.from, attempt: d.attempt } : { offset: d.commit, attempt: 0 };
    }
    if (expected.offset !== ends.get(partition)?.end)
      problems.push(
        `partition ${partition}: deliveries end at ${expected.offset}, the partition at ${ends.get(partition)?.end}`,
      );
  }
  return problems;
}
