import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BATCH_STAGE_CHANNEL, type BatchStageMark } from '../../lib/batch/stage-marks';
import { decodeEvent } from '../../lib/aws/kafka-event';
import { testDatabase, type TestDatabase } from '../helpers/db';
import { lambdaContext } from '../helpers/factories';
import { captureLogs, coldStart } from '../helpers/handler';
import { runBatch } from '../helpers/run';

const mixed = () => JSON.parse(readFileSync(join(__dirname, '../../events/mixed-batch.json'), 'utf8'));
const isMetrics = (l: Record<string, unknown>) => '_aws' in l;
const COUNT_FIELDS = ['stored', 'duplicates', 'superseded', 'upstreamErrors', 'deadLettered', 'failed'];

let db: TestDatabase;
beforeAll(async () => {
  db = await testDatabase();
});
afterAll(() => db.close());

describe('logs and metrics of real invocations', () => {
  it(
    'should log one summary with counts that add up, partitions, offsets and duration, and one warning per ' +
      'dead letter',
    async () => {
      const handler = await coldStart('consumer', db);
      const event = mixed();
      const first = await captureLogs(() => handler(event, lambdaContext()));
      const lines = first.logs.filter((l) => !isMetrics(l));

      const summary = lines.find((l) => l.message === 'batch processed')!;
      expect(summary).toMatchObject({
        level: 'info',
        service: 'trace-consumer',
        coldStart: true,
        requestId: expect.stringMatching(/^req-/),
      });
      expect(COUNT_FIELDS.reduce((sum, f) => sum + (summary[f] as number), 0)).toBe(summary.received);
      expect(summary.received).toBe(9);
      expect(summary.partitions).toEqual({
        'trace-survey-processed-0': { first: 40, last: 44, records: 5 },
        'trace-survey-processed-1': { first: 40, last: 43, records: 4 },
      });
      expect(summary.durationMs).toEqual(expect.any(Number));
      expect(summary.oldestRecordAgeMs).toBeGreaterThan(Date.now() - 1_700_000_000_000 - 60_000);

      const warnings = lines.filter((l) => l.level === 'warn');
      expect(warnings).toHaveLength(5);
      for (const w of warnings) {
        expect(w).toMatchObject({
          message: 'record dead-lettered',
          topic: 'trace-survey-processed',
          partition: expect.any(Number),
          offset: expect.any(Number),
          reason: expect.any(String),
        });
        expect(w).toHaveProperty('traceId');
      }
      // Every line carries the request id and the cold-start flag.
      for (const l of lines) expect(l).toMatchObject({ requestId: summary.requestId, coldStart: true });

      const second = await captureLogs(() => handler(event, lambdaContext()));
      expect(second.logs.find((l) => l.message === 'batch processed')).toMatchObject({
        coldStart: false,
        duplicates: 4,
      });
    },
  );

  it('should emit EMF metrics whose values match the summary, with service and topic dimensions', async () => {
    const handler = await coldStart('consumer', db);
    const fresh = await testDatabase();
    const run = await captureLogs(() => coldStart('consumer', fresh).then((h) => h(mixed(), lambdaContext())));
    await fresh.close();
    void handler;
    const [metrics] = run.logs.filter(isMetrics);
    const summary = run.logs.find((l) => l.message === 'batch processed')!;
    const aws = metrics!._aws as {
      CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[];
    };
    expect(aws.CloudWatchMetrics[0]).toMatchObject({ Namespace: 'TraceConsumer', Dimensions: [['service', 'topic']] });
    expect(metrics).toMatchObject({
      service: 'trace-consumer',
      topic: 'trace-survey-processed',
      RecordsReceived: summary.received,
      RecordsStored: summary.stored,
      RecordsDuplicate: summary.duplicates,
      RecordsSuperseded: summary.superseded,
      RecordsUpstreamError: summary.upstreamErrors,
      RecordsDeadLettered: summary.deadLettered,
      RecordsFailed: summary.failed,
      BatchDuration: summary.durationMs,
    });
    const oldest = Math.min(...decodeEvent(mixed()).map((r) => r.timestamp ?? Infinity));
    expect(metrics!.OldestRecordAge as number).toBeGreaterThanOrEqual(Date.now() - oldest - 60_000);
    expect(metrics!.OldestRecordAge as number).toBeLessThanOrEqual(Date.now() - oldest);
  });

  it(
    'should keep metrics but drop info lines at LOG_LEVEL=error, and count failures when the database is ' + 'down',
    async () => {
      const handler = await coldStart('consumer', db, { LOG_LEVEL: 'error', DB_PORT: '1', MAX_RETRIES: '0' });
      const run = await captureLogs(() => handler(mixed(), lambdaContext()));
      expect(run.error).toMatchObject({ name: 'BatchFailedError' });
      expect(run.logs.some((l) => l.level === 'info' || l.level === 'warn')).toBe(false);
      expect(run.logs.find((l) => l.level === 'error')).toMatchObject({
        message: 'database write failed; the records are reported for retry',
        failure: 'transient',
        coldStart: true,
      });
      expect(run.logs.find(isMetrics)).toMatchObject({ RecordsReceived: 9, RecordsFailed: 9, RecordsStored: 0 });
    },
  );

  it('should never log comment text or other message content at info', async () => {
    const handler = await coldStart('consumer', db, { LOG_LEVEL: 'info' });
    const fresh = await testDatabase();
    const run = await captureLogs(() => coldStart('consumer', fresh).then((h) => h(mixed(), lambdaContext())));
    await fresh.close();
    void handler;
    const text = JSON.stringify(run.logs);
    for (const content of ['Clear lectures', 'Fundamentals', 'PDF could not be parsed', 'truncated', 'an", "array'])
      expect(text).not.toContain(content);
  });

  it('should mark each stage of a batch, in order and once, for whoever subscribes to the stage channel', async () => {
    const marks: BatchStageMark[] = [];
    const listen = (m: unknown) => void marks.push(m as BatchStageMark);
    subscribe(BATCH_STAGE_CHANNEL, listen);
    const before = performance.now();
    try {
      const run = await runBatch(db, mixed());
      expect(run.result?.summary.failed).toBe(0);
    } finally {
      unsubscribe(BATCH_STAGE_CHANNEL, listen);
    }
    expect(marks.map((m) => m.stage)).toEqual(['decoded', 'validated', 'written', 'reported']);
    const times = marks.map((m) => m.at);
    expect(times[0]).toBeGreaterThanOrEqual(before);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    // Unsubscribed, a batch publishes nothing more.
    await runBatch(db, mixed());
    expect(marks).toHaveLength(4);
  });
});
