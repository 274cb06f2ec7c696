/**
 * The decisions of a Lambda event source mapping for Kafka, without any I/O: how polled records become the event
 * Lambda sends, and what the mapping does with the function's answer (commit, redeliver, retry, give up to the
 * on-failure destination). scripts/esm/poller.ts does the Kafka side and follows these decisions to the letter.
 * https://docs.aws.amazon.com/lambda/latest/dg/kafka-retry-configurations.html
 */

/** One record as read from Kafka, before Lambda's encoding. */
export interface PolledRecord {
  topic: string;
  partition: number;
  offset: number;
  /** Epoch milliseconds. */
  timestamp: number;
  timestampType: 'CREATE_TIME' | 'LOG_APPEND_TIME';
  key: Buffer | null;
  /** null for a tombstone. */
  value: Buffer | null;
  /** In Kafka order; a key may repeat. */
  headers: ReadonlyArray<readonly [key: Buffer, value: Buffer]>;
}

/** Where the records come from: Amazon MSK (`aws:kafka`, with the cluster ARN) or self-managed Kafka. */
export type EventSource =
  | { kind: 'self-managed'; bootstrapServers: string }
  | { kind: 'msk'; bootstrapServers: string; clusterArn: string };

/** The wire shape of one record in Lambda's Kafka event. */
interface LambdaKafkaRecord {
  topic: string;
  partition: number;
  offset: number;
  timestamp: number;
  timestampType: 'CREATE_TIME' | 'LOG_APPEND_TIME';
  key?: string;
  value?: string;
  headers: Record<string, number[]>[];
}

export interface LambdaKafkaEvent {
  eventSource: 'aws:kafka' | 'SelfManagedKafka';
  eventSourceArn?: string;
  bootstrapServers: string;
  records: Record<string, LambdaKafkaRecord[]>;
}

/**
 * The event Lambda sends for `records`: grouped by `"<topic>-<partition>"` in offset order, key and value in
 * base64 (absent when null: a tombstone has no `value`), each header a one-key object holding its bytes.
 */
export function toLambdaEvent(records: readonly PolledRecord[], source: EventSource): LambdaKafkaEvent {
  const grouped: Record<string, LambdaKafkaRecord[]> = {};
  for (const r of records) {
    const record: LambdaKafkaRecord = {
      topic: r.topic,
      partition: r.partition,
      offset: r.offset,
      timestamp: r.timestamp,
      timestampType: r.timestampType,
      headers: r.headers.map(([key, value]) => ({ [key.toString('utf8')]: [...value] })),
    };
    if (r.key !== null) record.key = r.key.toString('base64');
    if (r.value !== null) record.value = r.value.toString('base64');
    grouped[`${r.topic}-${r.partition}`] ??= [];
    grouped[`${r.topic}-${r.partition}`]?.push(record);
  }
  for (const list of Object.values(grouped)) list.sort((a, b) => a.offset - b.offset);
  return source.kind === 'msk'
    ? {
        eventSource: 'aws:kafka',
        eventSourceArn: source.clusterArn,
        bootstrapServers: source.bootstrapServers,
        records: grouped,
      }
    : { eventSource: 'SelfManagedKafka', bootstrapServers: source.bootstrapServers, records: grouped };
}

export interface RetryPolicy {
  /** Retries after the first attempt at the same position; -1 retries forever (Lambda's default). */
  maxRetries: number;
}

/** What the invocation came back with. */
export type Invocation = { ok: true; response: unknown } | { ok: false; error: unknown };

/** Offsets are Kafka's: `commit` is the next offset to read, as committed to the group. */
export type Decision =
  /** Every record is done: commit past the batch. */
  | { action: 'commit'; commit: number }
  /** Commit up to `from` (what precedes it is done) and deliver again from `from`, as attempt `attempt`. */
  | { action: 'retry'; commit: number; from: number; attempt: number; reason: string }
  /** Retries are used up: the range goes to the on-failure destination and the mapping moves past the batch. */
  | { action: 'give-up'; commit: number; failed: { from: number; to: number }; attempts: number; reason: string };

/**
 * Decides what follows an invocation of `batch` (records of one partition, in offset order), the `attempt`-th at
 * its first offset (0 for the first delivery). Lambda's rules:
 * - a thrown error (or an answer it cannot read) retries the whole batch;
 * - an empty or absent `batchItemFailures` commits the batch;
 * - otherwise the lowest reported offset is where the partition restarts: everything before it is committed,
 *   everything from it is delivered again, successes after it included;
 * - an identifier that names no record of the batch makes the whole batch fail, as Lambda documents.
 * Retries count per position: a redelivery that starts further on (progress was made) starts counting afresh.
 */
export function decide(
  batch: readonly PolledRecord[],
  invocation: Invocation,
  attempt: number,
  policy: RetryPolicy,
): Decision {
  const first = batch[0];
  const last = batch[batch.length - 1];
  if (!first || !last) throw new RangeError('a batch has at least one record');
  const end = last.offset + 1;
  const failure = invocation.ok
    ? firstFailure(batch, invocation.response)
    : { from: first.offset, reason: `function error: ${describe(invocation.error)}` };
  if (failure === null) return { action: 'commit', commit: end };

  const nextAttempt = failure.from === first.offset ? attempt + 1 : 1;
  if (policy.maxRetries >= 0 && nextAttempt > policy.maxRetries) {
    return {
      action: 'give-up',
      commit: end,
      failed: { from: failure.from, to: last.offset },
      attempts: nextAttempt,
      reason: failure.reason,
    };
  }
  return { action: 'retry', commit: failure.from, from: failure.from, attempt: nextAttempt, reason: failure.reason };
}

/** The offset to restart from, or null when the response reports nothing failed. */
function firstFailure(batch: readonly PolledRecord[], response: unknown): { from: number; reason: string } | null {
  const first = batch[0]!;
  const whole = (reason: string) => ({ from: first.offset, reason });
  if (response === null || response === undefined) return null;
  if (typeof response !== 'object') return whole('the response is not a partial batch response');
  const items = (response as { batchItemFailures?: unknown }).batchItemFailures;
  if (items === null || items === undefined) return null;
  if (!Array.isArray(items)) return whole('batchItemFailures is not a list');
  if (items.length === 0) return null;
  const key = `${first.topic}-${first.partition}`;
  const offsets = new Set(batch.map((r) => r.offset));
  let lowest = Infinity;
  for (const item of items) {
    const id = (item as { itemIdentifier?: { partition?: unknown; offset?: unknown } } | null)?.itemIdentifier;
    if (!id || id.partition !== key || typeof id.offset !== 'number' || !offsets.has(id.offset)) {
      return whole(`batchItemFailures names a record not in the batch: ${JSON.stringify(item)}`);
    }
    lowest = Math.min(lowest, id.offset);
  }
  return { from: lowest, reason: `${items.length} record(s) reported failed` };
}

function describe(error: unknown): string {
  if (error instanceof Error) return `${(error as { code?: unknown }).code ?? error.name}: ${error.message}`;
  return String(error);
}

/** The line written to the on-failure file when retries are used up: enough to replay the range. */
export interface OnFailureRecord {
  condition: 'RetryAttemptsExhausted';
  timestamp: string;
  topic: string;
  partition: number;
  firstOffset: number;
  lastOffset: number;
  approximateInvokeCount: number;
  reason: string;
}

export function onFailureRecord(
  batch: readonly PolledRecord[],
  decision: Extract<Decision, { action: 'give-up' }>,
  now: Date,
): OnFailureRecord {
  const first = batch[0]!;
  return {
    condition: 'RetryAttemptsExhausted',
    timestamp: now.toISOString(),
    topic: first.topic,
    partition: first.partition,
    firstOffset: decision.failed.from,
    lastOffset: decision.failed.to,
    approximateInvokeCount: decision.attempts,
    reason: decision.reason,
  };
}

/** Milliseconds to wait before retry `attempt` (1-based): doubling from `baseMs`, capped at `maxMs`. */
export function retryDelayMs(attempt: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
}

/** Lambda's limit on an invocation's payload: a batch is cut before its event would exceed it. */
export const MAX_PAYLOAD_BYTES = 6 * 1024 * 1024;

/** The size a record adds to the event's JSON: base64 key and value, header bytes as decimal lists, the fields. */
function encodedSize(r: PolledRecord): number {
  const base64 = (b: Buffer | null) => (b === null ? 0 : Math.ceil(b.length / 3) * 4);
  const headers = r.headers.reduce((n, [k, v]) => n + k.length + 8 + v.length * 4, 0);
  return base64(r.key) + base64(r.value) + headers + r.topic.length + 160;
}

/**
 * How many of the queued records (in offset order) go into the next invocation: up to `batchSize`, and no more than
 * fit in `maxBytes` of payload, but always at least one, so that one huge record is still delivered (and answered by
 * Lambda's own limit, as in AWS).
 */
export function batchLength(queue: readonly PolledRecord[], batchSize: number, maxBytes = MAX_PAYLOAD_BYTES): number {
  let bytes = 200; // the envelope
  let n = 0;
  for (const r of queue) {
    if (n >= batchSize) break;
    bytes += encodedSize(r);
    if (n > 0 && bytes > maxBytes) break;
    n++;
  }
  return n;
}

/**
 * Whether a partition's buffered records should be delivered now: a full batch, or the batching window has passed
 * since the first of them arrived (Lambda's MaximumBatchingWindowInSeconds).
 */
export function batchReady(
  buffered: number,
  firstArrivedAt: number,
  now: number,
  options: { batchSize: number; windowMs: number },
): boolean {
  return buffered >= options.batchSize || (buffered > 0 && now - firstArrivedAt >= options.windowMs);
}
