import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countRows, testDatabase, type TestDatabase } from '../helpers/db';
import { invokeLocal, lastJson, projectRoot } from '../helpers/cli';

let db: TestDatabase;
let dbEnv: Record<string, string>;
beforeAll(async () => {
  db = await testDatabase();
  const names = ['DB_HOST', 'DB_PORT', 'DB_NAME', 'DB_USER', 'DB_PASSWORD', 'DB_SCHEMA'];
  dbEnv = Object.fromEntries(names.map((n) => [n, db.env[n] ?? '']));
});
afterAll(() => db.close());

describe('serverless invoke local (offline, real CLI)', () => {
  it('should store a sample event in the configured database and print the response', async () => {
    const run = await invokeLocal('consumer', 'events/mixed-batch.json', dbEnv);
    expect(run.code, run.stderr + run.stdout).toBe(0);
    expect(lastJson(run.stdout)).toEqual({ batchItemFailures: [] });
    expect(run.stdout).toContain('"message":"batch processed"');
    expect(await countRows(db)).toMatchObject({ processed_traces: 3, dead_letters: 5, ratings: 8 });
  });

  it('should exit non-zero when the database cannot be reached, so the batch would be retried', async () => {
    const run = await invokeLocal('consumer', 'events/msk-batch.json', { ...dbEnv, DB_PORT: '1', MAX_RETRIES: '0', DB_CONNECT_TIMEOUT: '2' });
    expect(run.code).not.toBe(0);
    expect(run.stdout + run.stderr).toContain('BatchFailedError');
  });

  it.each(['health-live', 'health-ready', 'health-freshness', 'health-not-found', 'health-wrong-method'])(
    'should answer events/%s.json from the health function',
    async (name) => {
      const expected = JSON.parse(readFileSync(join(projectRoot, 'events', 'responses', `${name}.json`), 'utf8'));
      const run = await invokeLocal('health', `events/${name}.json`, dbEnv);
      expect(run.code, run.stderr + run.stdout).toBe(0);
      const answer = lastJson(run.stdout) as { statusCode: number; body: unknown };
      expect(answer.statusCode).toBe(expected.statusCode);
      const body = typeof answer.body === 'string' ? JSON.parse(answer.body) : answer.body; // invoke local may parse it
      expect(body).toMatchObject(expected.body);
    },
  );
});
