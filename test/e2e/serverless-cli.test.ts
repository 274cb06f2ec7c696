import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countRows, testDatabase, type TestDatabase } from '../helpers/db';
import { invokeLocal, lastJson, projectRoot, runCommand } from '../helpers/cli';

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

describe('your own messages, end to end', () => {
  it('should store a message file wrapped by the event builder and run through invoke local', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trace-own-'));
    const messages = [
      { traceId: 'own-1', course: { courseId: 'OWN-101', courseName: 'My course' }, instructor: { name: 'Jane Doe' }, ratings: [{ questionText: 'Q', courseMean: 4.2 }] },
      { traceId: 'own-2', course: { courseId: 'OWN-102' }, instructor: { name: 'John Roe' }, comments: [{ commentText: 'Nice' }] },
    ];
    writeFileSync(join(dir, 'messages.jsonl'), messages.map((m) => JSON.stringify(m)).join('\n'));
    const eventFile = join(dir, 'event.json');
    const built = await runCommand('npx', ['tsx', 'scripts/build-event.ts', '--source', 'self-managed', '--partitions', '2', '--out', eventFile, join(dir, 'messages.jsonl')]);
    expect(built.code, built.stderr).toBe(0);

    const run = await invokeLocal('consumer', eventFile, dbEnv);
    expect(run.code, run.stderr + run.stdout).toBe(0);
    expect(lastJson(run.stdout)).toEqual({ batchItemFailures: [] });
    const schema = db.config.db.schema;
    const rows = await db.sql`select trace_id, status, kafka_partition from ${db.sql(`${schema}.processed_traces`)} where trace_id like 'own-%' order by 1`;
    expect(rows).toEqual([
      { trace_id: 'own-1', status: 'stored', kafka_partition: 0 },
      { trace_id: 'own-2', status: 'stored', kafka_partition: 1 },
    ]);
    const [rating] = await db.sql`select question_text, course_mean from ${db.sql(`${schema}.ratings`)} where trace_id = 'own-1'`;
    expect(rating).toEqual({ question_text: 'Q', course_mean: 4.2 });
  });
});

// `serverless package` and the deployment's AWS rules are tested in deploy-templates.test.ts.
