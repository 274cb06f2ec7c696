/**
 * The Kafka side of the local event source mapping: joins the consumer group, buffers records per partition,
 * invokes the handler with one partition's batch at a time, and carries out what scripts/esm/mapping.ts decides
 * (commit, redeliver, retry later, write to the on-failure file). Invocations run one after another, as in a
 * single Lambda execution environment.
 */
import { appendFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Consumer,
  MessagesStreamFallbackModes,
  MessagesStreamModes,
  type Message,
  type MessagesStream,
} from '@platformatic/kafka';
import type { Context } from 'aws-lambda';
import { fromMessage } from './from-message';
import { lambdaContext } from './lambda-context';
import {
  batchLength,
  batchReady,
  decide,
  onFailureRecord,
  retryDelayMs,
  toLambdaEvent,
  type Decision,
  type EventSource,
  type Invocation,
  type PolledRecord,
} from './mapping';
import { clientOptions, type EsmSettings } from './settings';
import { raceDeadline } from '../../lib/deadline';

export type Handler = (event: unknown, context: Context) => Promise<unknown>;

/** What one invocation was given and what came of it: for logs, and for tests that check every redelivery. */
export interface InvocationReport {
  partition: number;
  firstOffset: number;
  lastOffset: number;
  records: number;
  attempt: number;
  invocation: Invocation;
  decision: Decision;
  durationMs: number;
}

type Buffered = { record: PolledRecord; commit: () => Promise<void> };

interface PartitionState {
  queue: Buffered[];
  /** When the oldest buffered record arrived (for the batching window). */
  firstArrivedAt: number;
  /** Highest offset ever buffered: a refetch after a rebalance must not queue a record twice. */
  highest: number;
  /** Retries already made at the queue's head, and when the next may start. */
  attempt: number;
  notBefore: number;
}

const MSK_ARN = 'arn:aws:kafka:us-east-1:123456789012:cluster/local/00000000-0000-0000-0000-000000000000-1';
const MAX_RETRY_DELAY_MS = 60_000;

export class LocalEventSourceMapping {
  private readonly partitions = new Map<number, PartitionState>();
  private consumer: Consumer<Buffer, Buffer, Buffer, Buffer> | null = null;
  private stream: MessagesStream<Buffer, Buffer, Buffer, Buffer> | null = null;
  private running = false;
  private loop: Promise<void> | null = null;
  private buffered = 0;
  private streamError: unknown = null;
  private readonly source: EventSource;

  constructor(
    private readonly settings: EsmSettings,
    private readonly handler: Handler,
    private readonly observe: (report: InvocationReport) => void = () => {},
    private readonly functionName = 'trace-consumer-local-consumer',
  ) {
    const bootstrapServers = settings.kafka.brokers.join(',');
    this.source =
      settings.eventSource === 'msk'
        ? { kind: 'msk', bootstrapServers, clusterArn: MSK_ARN }
        : { kind: 'self-managed', bootstrapServers };
  }

  /** Joins the group and starts delivering; resolves once the stream is open. */
  async start(): Promise<void> {
    const { kafka } = this.settings;
    this.consumer = new Consumer({
      ...clientOptions(kafka, 'trace-consumer-local-esm'),
      groupId: kafka.group,
      sessionTimeout: 30_000,
      heartbeatInterval: 3_000,
    });
    this.stream = await this.consumer.consume({
      topics: [kafka.topic],
      mode: MessagesStreamModes.COMMITTED,
      fallbackMode:
        this.settings.startingPosition === 'LATEST'
          ? MessagesStreamFallbackModes.LATEST
          : MessagesStreamFallbackModes.EARLIEST,
      autocommit: false,
      maxWaitTime: 200,
    });
    this.stream.on('data', (message: Message<Buffer, Buffer, Buffer, Buffer>) => this.accept(message));
    // The client retries what can be retried; an error that reaches here has ended the stream, so the mapping ends.
    this.stream.on('error', (error: unknown) => {
      this.streamError = error;
      this.running = false;
    });
    this.running = true;
    this.loop = this.deliverLoop();
    this.loop.catch(() => {}); // observed through finished(); never an unhandled rejection
  }

  /** Resolves when the mapping stops; rejects with the error that stopped it (a failed commit, say). */
  finished(): Promise<void> {
    return this.loop ?? Promise.resolve();
  }

  /** Stops after the invocation in flight, leaves the group. Uncommitted records are delivered again next time. */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop?.catch(() => {});
    await this.stream?.close().catch(() => {});
    await this.consumer?.close().catch(() => {});
  }

  /** Records buffered and not yet committed or given up. */
  pending(): number {
    return this.buffered;
  }

  private accept(message: Message<Buffer, Buffer, Buffer, Buffer>) {
    const offset = Number(message.offset);
    const state = this.partitionState(message.partition);
    if (offset <= state.highest) return;
    state.highest = offset;
    if (state.queue.length === 0) state.firstArrivedAt = Date.now();
    state.queue.push({
      record: fromMessage(message),
      commit: () => message.commit() as Promise<void>,
    });
    this.buffered++;
    // Backpressure: a partition stuck in retries must not make the process read the whole topic into memory.
    if (this.buffered > this.settings.batchSize * 20) this.stream?.pause();
  }

  private partitionState(partition: number): PartitionState {
    let state = this.partitions.get(partition);
    if (!state) {
      state = { queue: [], firstArrivedAt: 0, highest: -1, attempt: 0, notBefore: 0 };
      this.partitions.set(partition, state);
    }
    return state;
  }

  private async deliverLoop(): Promise<void> {
    let next = 0;
    while (this.running) {
      const ready = [...this.partitions.entries()]
        .filter(
          ([, s]) =>
            Date.now() >= s.notBefore &&
            batchReady(s.queue.length, s.firstArrivedAt, Date.now(), {
              batchSize: this.settings.batchSize,
              windowMs: s.attempt > 0 ? 0 : this.settings.batchingWindowMs,
            }),
        )
        .sort(([a], [b]) => a - b);
      if (ready.length === 0) {
        await sleep(20);
        continue;
      }
      // Round robin over the ready partitions, so one busy partition cannot starve the others.
      const [partition, state] = ready.find(([p]) => p >= next) ?? ready[0]!;
      next = partition + 1;
      try {
        await this.deliver(state);
      } catch (error) {
        // Most likely a commit refused after the partition moved to another member. Carrying on could commit past
        // records this member no longer holds, so the mapping stops; a restart reads on from the committed offsets.
        this.running = false;
        throw error;
      }
      if (this.buffered < this.settings.batchSize * 10 && this.stream?.isPaused()) this.stream.resume();
    }
    if (this.streamError !== null) throw this.streamError;
  }

  private async deliver(state: PartitionState): Promise<void> {
    const batch = state.queue.slice(
      0,
      batchLength(
        state.queue.slice(0, this.settings.batchSize).map((b) => b.record),
        this.settings.batchSize,
      ),
    );
    const records = batch.map((b) => b.record);
    const attempt = state.attempt;
    const started = Date.now();
    const invocation = await this.invoke(records);
    const decision = decide(records, invocation, attempt, { maxRetries: this.settings.maxRetries });
    const done = decision.action === 'retry' ? batch.filter((b) => b.record.offset < decision.from) : batch;
    // Commit the last settled record: Kafka's committed offset is the next one to read, i.e. decision.commit.
    const last = done[done.length - 1];
    if (last) await last.commit();
    if (decision.action === 'give-up')
      appendFileSync(
        this.settings.onFailureFile,
        JSON.stringify(onFailureRecord(records, decision, new Date())) + '\n',
      );
    state.queue.splice(0, done.length);
    this.buffered -= done.length;
    state.attempt = decision.action === 'retry' ? decision.attempt : 0;
    state.notBefore =
      decision.action === 'retry'
        ? Date.now() + retryDelayMs(decision.attempt, this.settings.retryBackoffMs, MAX_RETRY_DELAY_MS)
        : 0;
    if (state.queue.length > 0) state.firstArrivedAt = Date.now();
    this.observe({
      partition: records[0]!.partition,
      firstOffset: records[0]!.offset,
      lastOffset: records[records.length - 1]!.offset,
      records: records.length,
      attempt,
      invocation,
      decision,
      durationMs: Date.now() - started,
    });
  }

  /** Runs the handler as Lambda would: a fresh context, and a timeout that counts as a function error. */
  private async invoke(records: PolledRecord[]): Promise<Invocation> {
    const event = toLambdaEvent(records, this.source);
    const context = lambdaContext(this.functionName, this.settings.functionTimeoutMs);
    const timeoutMs = this.settings.functionTimeoutMs;
    try {
      const response = await raceDeadline(
        Promise.resolve(this.handler(event, context)),
        Date.now() + timeoutMs,
        () => new Error(`Task timed out after ${timeoutMs / 1000} seconds`),
      );
      return { ok: true, response };
    } catch (error) {
      return { ok: false, error };
    }
  }
}
