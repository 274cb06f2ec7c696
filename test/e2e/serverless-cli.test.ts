import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countRows, testDatabase, type TestDatabase } from '../helpers/db';
import { buildKafkaEvent } from '../../scripts/event-builder';
import { invokeLocal, lastJson, projectRoot, runCommand, runServerless } from '../helpers/cli';

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

describe('serverless invoke local -f deadLetters --data (offline, real CLI)', () => {
  /** `invoke local --data` as an operator types it, with the local database's settings. */
  const invokeDeadLetters = async (request: Record<string, unknown>) => {
    const args = ['invoke', 'local', '-f', 'deadLetters', '--data', JSON.stringify(request)];
    for (const [k, v] of Object.entries({ DB_SSL: 'disable', ...dbEnv })) args.push('--env', `${k}=${v}`);
    const run = await runServerless(args);
    expect(run.code, run.stderr + run.stdout).toBe(0);
    return { answer: lastJson(run.stdout) as Record<string, any>, stdout: run.stdout };
  };

  it('should run summary, show, redrive (dry run, then real) and purge on dead letters the consumer left', async () => {
    const topic = 'cli-dead-letters';
    const t = (name: string) => db.sql(`${db.config.db.schema}.${name}`);
    // A record PostgreSQL rejects (a constraint, lifted below as a database-side fix would be) beside a valid one.
    await db.sql`alter table ${t('courses')} add constraint cli_poison check (course_name is distinct from 'cli-poison')`;
    const poison = { traceId: 'cli-poison-1', course: { courseId: 'CLI-1', courseName: 'cli-poison' }, instructor: { name: 'Jane Doe' } };
    const valid = { traceId: 'cli-valid-1', course: { courseId: 'CLI-2' }, instructor: { name: 'Jane Doe' } };
    const dir = mkdtempSync(join(tmpdir(), 'trace-dl-'));
    // And a tombstone: one rejected report and one dead letter in the same batch (isolation must still end).
    writeFileSync(join(dir, 'event.json'), JSON.stringify(buildKafkaEvent([{ value: poison }, { value: valid }, { value: null }], { topic })));
    expect((await invokeLocal('consumer', join(dir, 'event.json'), dbEnv)).code).toBe(0);
    await db.sql`alter table ${t('courses')} drop constraint cli_poison`;

    const summary = await invokeDeadLetters({ action: 'summary', topic });
    expect(summary.answer).toMatchObject({ action: 'summary', total: 2, unresolved: 2 });
    expect(summary.answer.byReason.map((r: { reason: string }) => r.reason).sort()).toEqual(['db_rejected', 'tombstone']);
    expect(summary.stdout).toContain('"_aws"'); // the EMF document

    const shown = await invokeDeadLetters({ action: 'show', topic, reasons: 'db_rejected' });
    expect(shown.answer.letters).toEqual([expect.objectContaining({ reason: 'db_rejected', value: expect.objectContaining({ format: 'json', json: poison }) })]);
    expect(shown.stdout.split('\n').filter((line) => line.includes('"level"')).join('\n')).not.toContain('cli-poison');

    const dry = await invokeDeadLetters({ action: 'redrive', topic, dryRun: true });
    expect(dry.answer).toMatchObject({ dryRun: true, redriven: 2, results: { stored: 1, dead_lettered: 1 } });
    const real = await invokeDeadLetters({ action: 'redrive', topic });
    expect(real.answer).toMatchObject({ dryRun: false, redriven: 2, results: { stored: 1, dead_lettered: 1 }, done: true });
    const [claim] = await db.sql`select status, kafka_topic from ${t('processed_traces')} where trace_id = 'cli-poison-1'`;
    expect(claim).toEqual({ status: 'stored', kafka_topic: topic });

    const purgeDry = await invokeDeadLetters({ action: 'purge', topic, redriven: true });
    expect(purgeDry.answer).toMatchObject({ dryRun: true, purged: 1, byReason: { db_rejected: 1 } });
    const purged = await invokeDeadLetters({ action: 'purge', topic, redriven: true, dryRun: false });
    expect(purged.answer).toMatchObject({ dryRun: false, purged: 1 });
    const left = await db.sql`select reason from ${t('dead_letters')} where kafka_topic = ${topic}`;
    expect(left).toEqual([{ reason: 'tombstone' }]);
  }, 300_000); // seven CLI runs, each bundling and starting the function
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
