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
        level: 'INFO',
        service: 'trace-consumer',
        cold_start: true,
        function_request_id: expect.stringMatching(/^req-/),
      });
      expect(COUNT_FIELDS.reduce((sum, f) => sum + (summary[f] as number), 0)).toBe(summary.received);
      expect(summary.received).toBe(9);
      expect(summary.partitions).toEqual({
        'trace-survey-processed-0': { first: 40, last: 44, records: 5 },
        'trace-survey-processed-1': { first: 40, last: 43, records: 4 },
      });
      expect(summary.durationMs).toEqual(expect.any(Number));
      expect(summary.oldestRecordAgeMs).toBeGreaterThan(Date.now() - 1_700_000_000_000 - 60_000);

      const warnings = lines.filter((l) => l.level === 'WARN');
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
      for (const l of lines)
        expect(l).toMatchObject({ function_request_id: summary.function_request_id, cold_start: true });

      const second = await captureLogs(() => handler(event, lambdaContext()));
      expect(second.logs.find((l) => l.message === 'batch processed')).toMatchObject({
        cold_start: false,
        duplicates: 4,
      });
    },
  );

  it(
    "should start every line of the consumer and the health function with Powertools Logger's keys, each " +
      'invocation with its own request and X-Ray trace ids',
    async () => {
      const POWERTOOLS_KEYS = [
        'level',
        'message',
        'timestamp',
        'service',
        'cold_start',
        'function_request_id',
        'xray_trace_id',
      ];
      const traceHeader = (root: string) => `Root=${root};Parent=557abcec3ee5a047;Sampled=0;Lineage=a87bd80c:0`;
      const first = '1-5759e988-bd862e3fe1be46a994272793';
      const second = '1-6a1b2c3d-0123456789abcdef01234567';
      const consumer = await coldStart('consumer', db, { _X_AMZN_TRACE_ID: traceHeader(first) });
      const runs = [await captureLogs(() => consumer(mixed(), lambdaContext()))];
      process.env._X_AMZN_TRACE_ID = traceHeader(second); // the runtime sets it anew for each invocation
      runs.push(await captureLogs(() => consumer(mixed(), lambdaContext())));
      const health = await coldStart('health', db, { DB_PORT: '1', _X_AMZN_TRACE_ID: traceHeader(first) });
      const ready = JSON.parse(readFileSync(join(__dirname, '../../events/health-ready.json'), 'utf8'));
      runs.push(await captureLogs(() => health(ready, lambdaContext())));

      const expected = [
        { service: 'trace-consumer', cold_start: true, xray_trace_id: first },
        { service: 'trace-consumer', cold_start: false, xray_trace_id: second },
        { service: 'trace-consumer-health', cold_start: true, xray_trace_id: first },
      ];
      for (const [i, run] of runs.entries()) {
        const lines = run.logs.filter((l) => !isMetrics(l));
        expect(lines.length, `run ${i}`).toBeGreaterThan(0);
        const requestIds = new Set(lines.map((l) => l.function_request_id));
        expect(requestIds.size, `run ${i}: one request id`).toBe(1);
        for (const line of lines) {
          expect(Object.keys(line).slice(0, POWERTOOLS_KEYS.length)).toEqual(POWERTOOLS_KEYS);
          expect(line).toMatchObject({ ...expected[i], level: expect.stringMatching(/^(DEBUG|INFO|WARN|ERROR)$/) });
          expect(new Date(line.timestamp as string).toISOString()).toBe(line.timestamp);
          expect(line.function_request_id).toMatch(/^req-/);
          for (const old of ['time', 'requestId', 'coldStart']) expect(line).not.toHaveProperty(old);
        }
      }
      // Today's own fields stay, beside the standard keys.
      expect(runs[0]!.logs.find((l) => l.message === 'batch processed')).toMatchObject({
        level: 'INFO',
        received: 9,
        partitions: expect.any(Object),
      });
      expect(runs[2]!.logs.find((l) => l.message === 'not ready')).toMatchObject({
        level: 'WARN',
        checks: expect.any(Array),
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
      expect(run.logs.some((l) => l.level === 'INFO' || l.level === 'WARN')).toBe(false);
      expect(run.logs.find((l) => l.level === 'ERROR')).toMatchObject({
        message: 'database write failed; the records are reported for retry',
        failure: 'transient',
        cold_start: true,
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
