import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/errors';
import { testDatabase, type TestDatabase } from '../helpers/db';
import { lambdaContext } from '../helpers/factories';
import { captureLogs, coldStart } from '../helpers/handler';

const eventsDir = join(__dirname, '../../events');
const samples = readdirSync(eventsDir).filter((f) => f.endsWith('.json') && !f.startsWith('health'));
const read = (path: string) => JSON.parse(readFileSync(path, 'utf8'));

let db: TestDatabase | undefined;
afterEach(async () => {
  await db?.close();
  db = undefined;
});

describe('functions/consumer handler', () => {
  it('should have sample events to check', () => {
    expect(samples.length).toBeGreaterThanOrEqual(3);
  });

  it.each(samples)('should answer events/%s with its paired response in events/responses/', async (file) => {
    db = await testDatabase();
    const handler = await coldStart('consumer', db);
    const { value, error, logs } = await captureLogs(() => handler(read(join(eventsDir, file)), lambdaContext()));
    expect(error).toBeUndefined();
    expect(value).toEqual(read(join(eventsDir, 'responses', file)));
    const summary = logs.find((l) => l.message === 'batch processed');
    expect(summary).toMatchObject({
      level: 'INFO',
      service: 'trace-consumer',
      function_request_id: expect.any(String),
    });
    const counts = summary as Record<string, number>;
    const states = ['stored', 'duplicates', 'superseded', 'upstreamErrors', 'deadLettered', 'failed'];
    expect(states.reduce((sum, state) => sum + (counts[state] ?? Number.NaN), 0)).toBe(counts.received);
  });

  it('should keep serving invocations of one environment with its cold-start client', async () => {
    db = await testDatabase();
    const handler = await coldStart('consumer', db);
    const event = read(join(eventsDir, 'msk-batch.json'));
    await captureLogs(() => handler(event, lambdaContext()));
    const second = await captureLogs(() => handler(event, lambdaContext()));
    expect(second.value).toEqual({ batchItemFailures: [] });
    expect(second.logs.find((l) => l.message === 'batch processed')).toMatchObject({ duplicates: 6 });
  });

  it('should reject an event that is not a Kafka event with a clear error', async () => {
    db = await testDatabase();
    const handler = await coldStart('consumer', db);
    const { error } = await captureLogs(() => handler({ Records: [{ body: 'sqs?' }] }, lambdaContext()));
    expect(error).toMatchObject({ code: 'EVENT_MALFORMED', message: expect.stringContaining('records') });
  });

  it('should fail at cold start, naming the variable, when the configuration is invalid', async () => {
    db = await testDatabase();
    // A fresh module graph has its own ConfigError class, so match on name and code rather than instanceof.
    await expect(coldStart('consumer', db, { MAX_RETRIES: 'many' })).rejects.toMatchObject({
      name: ConfigError.name,
      code: 'CONFIG_INVALID',
      message: expect.stringContaining('MAX_RETRIES must be a whole number'),
    });
  });
});
