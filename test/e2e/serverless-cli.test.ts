import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logLines } from '../../scripts/parse-invoke-output';
import { freePort } from '../../scripts/local-db';
import { countRows, testDatabase, type TestDatabase } from '../helpers/db';
import { buildKafkaEvent } from '../../scripts/encode-kafka-event';
import { invokeLocal, lastJson, projectRoot, runCommand, runServerless, withCliLock } from '../helpers/cli';

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
    const run = await invokeLocal('consumer', 'events/msk-batch.json', {
      ...dbEnv,
      DB_PORT: '1',
      MAX_RETRIES: '0',
      DB_CONNECT_TIMEOUT: '2',
    });
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
    for (const [k, v] of Object.entries(dbEnv)) args.push('--env', `${k}=${v}`);
    const run = await runServerless(args);
    expect(run.code, run.stderr + run.stdout).toBe(0);
    // The fields read below; toMatchObject checks the rest.
    const answer = lastJson(run.stdout) as Record<string, unknown> & {
      byReason: { reason: string }[];
      letters: unknown;
    };
    return { answer, stdout: run.stdout };
  };

  it('should run summary, show, redrive (dry run, then real) and purge on dead letters the consumer left', async () => {
    const topic = 'cli-dead-letters';
    const t = (name: string) => db.sql(`${db.config.db.schema}.${name}`);
    // A record PostgreSQL rejects (a constraint, lifted below as a database-side fix would be) beside a valid one.
    await db.sql`alter table ${t('courses')} add constraint cli_poison check (course_name is distinct
      from 'cli-poison')`;
    const poison = {
      traceId: 'cli-poison-1',
      course: { courseId: 'CLI-1', courseName: 'cli-poison' },
      instructor: { name: 'Jane Doe' },
    };
    const valid = { traceId: 'cli-valid-1', course: { courseId: 'CLI-2' }, instructor: { name: 'Jane Doe' } };
    const dir = mkdtempSync(join(tmpdir(), 'trace-dl-'));
    // And a tombstone: one rejected report and one dead letter in the same batch (isolation must still end).
    writeFileSync(
      join(dir, 'event.json'),
      JSON.stringify(buildKafkaEvent([{ value: poison }, { value: valid }, { value: null }], { topic })),
    );
    expect((await invokeLocal('consumer', join(dir, 'event.json'), dbEnv)).code).toBe(0);
    await db.sql`alter table ${t('courses')} drop constraint cli_poison`;

    const summary = await invokeDeadLetters({ action: 'summary', topic });
    expect(summary.answer).toMatchObject({ action: 'summary', total: 2, unresolved: 2 });
    expect(summary.answer.byReason.map((r: { reason: string }) => r.reason).sort()).toEqual([
      'db_rejected',
      'tombstone',
    ]);
    expect(summary.stdout).toContain('"_aws"'); // the EMF document

    const shown = await invokeDeadLetters({ action: 'show', topic, reasons: 'db_rejected' });
    expect(shown.answer.letters).toEqual([
      expect.objectContaining({
        reason: 'db_rejected',
        value: expect.objectContaining({ format: 'json', json: poison }),
      }),
    ]);
    expect(
      shown.stdout
        .split('\n')
        .filter((line) => line.includes('"level"'))
        .join('\n'),
    ).not.toContain('cli-poison');

    const dry = await invokeDeadLetters({ action: 'redrive', topic, dryRun: true });
    expect(dry.answer).toMatchObject({ dryRun: true, redriven: 2, results: { stored: 1, dead_lettered: 1 } });
    const real = await invokeDeadLetters({ action: 'redrive', topic });
    expect(real.answer).toMatchObject({
      dryRun: false,
      redriven: 2,
      results: { stored: 1, dead_lettered: 1 },
      done: true,
    });
    const [claim] =
      await db.sql`select status, kafka_topic from ${t('processed_traces')} where trace_id = 'cli-poison-1'`;
    expect(claim).toEqual({ status: 'stored', kafka_topic: topic });

    const purgeDry = await invokeDeadLetters({ action: 'purge', topic, redriven: true });
    expect(purgeDry.answer).toMatchObject({ dryRun: true, purged: 1, byReason: { db_rejected: 1 } });
    const purged = await invokeDeadLetters({ action: 'purge', topic, redriven: true, dryRun: false });
    expect(purged.answer).toMatchObject({ dryRun: false, purged: 1 });
    const left = await db.sql`select reason from ${t('dead_letters')} where kafka_topic = ${topic}`;
    expect(left).toEqual([{ reason: 'tombstone' }]);
    rmSync(dir, { recursive: true, force: true });
  }, 300_000); // seven CLI runs, each bundling and starting the function
});

/**
 * `serverless invoke local` exactly as the documentation writes it: no flags, the connection in the shell's variables.
 */
function invokeAsDocumented(fn: string, event: string, shell: Record<string, string>) {
  return runServerless(['invoke', 'local', '-f', fn, '-p', event], shell);
}

/** The handler's error as invoke local prints it. */
type InvokeError = { errorMessage: string; errorType: string; stackTrace: string[] };

describe('mistakes in the setup, through the real CLI', () => {
  // Each mistake a new user makes: the error code in the log, the words of the fix, and whether it is retried.
  // The schema version check (lib/postgres/schema-version-gate.ts) runs before any write: a missing schema fails the
  // whole invocation with its own error rather than as a failed batch.
  const mistakes: {
    mistake: string;
    env: Record<string, string>;
    code: string;
    fix: string;
    retried: boolean;
    errorType?: string;
  }[] = [
    {
      mistake: 'a wrong password',
      env: { DB_PASSWORD: 'wrong' },
      code: 'DB_LOGIN_REJECTED',
      fix: 'Check DB_USER and DB_PASSWORD',
      retried: false,
    },
    {
      mistake: 'a missing database',
      env: { DB_NAME: 'no_such_database' },
      code: 'DB_NOT_FOUND',
      fix: 'set DB_NAME',
      retried: false,
    },
    {
      mistake: 'a missing schema',
      env: { DB_SCHEMA: 'no_such_schema' },
      code: 'SCHEMA_VERSION_MISMATCH',
      fix: 'npm run db:apply',
      retried: false,
      errorType: 'SchemaVersionError',
    },
    {
      mistake: 'TLS without the CA file',
      env: { DB_SSL: 'verify-full' },
      code: 'DB_SSL_CA_MISSING',
      fix: 'DB_SSL=disable',
      retried: false,
    },
    {
      mistake: 'a port nothing listens on',
      env: { DB_PORT: '1' },
      code: 'DB_UNREACHABLE',
      fix: 'Check DB_HOST and DB_PORT',
      retried: true,
    },
  ];

  it.each(mistakes)(
    'should name the cause and fix of $mistake once, without a stack trace',
    async ({ env, code, fix, retried, errorType }) => {
      const run = await invokeAsDocumented('consumer', 'events/msk-batch.json', {
        ...dbEnv,
        MAX_RETRIES: '1',
        RETRY_BACKOFF_MS: '10',
        DB_CONNECT_TIMEOUT: '2',
        ...env,
      });
      expect(run.code).not.toBe(0);
      const error = lastJson(run.stdout) as InvokeError;
      expect(error.errorType).toBe(errorType ?? 'BatchFailedError');
      expect(error.errorMessage).toContain(fix);
      const logged = logLines(run.stdout)
        .filter((l) => l.level === 'ERROR')
        .map((l) => l.error as { code?: string; cause?: { code?: string } });
      expect(
        logged.some((e) => e?.code === code || e?.cause?.code === code),
        JSON.stringify(logged),
      ).toBe(true);
      expect(logLines(run.stdout).some((l) => l.message === 'database write failed, retrying')).toBe(retried);
      // The message says it all: no stack trace unless LOG_LEVEL=debug (below), and no line before the error
      // that only repeats its cause (the schema check's and the instructors' warnings on a failed login).
      expect(error.stackTrace).toBeUndefined();
      const repeats = logLines(run.stdout).filter(
        (l) =>
          l.level === 'debug' || (l.level === 'warn' && !l.traceId && l.message !== 'database write failed, retrying'),
      );
      expect(repeats).toEqual([]);
    },
  );

  it('should print the stack trace, in the TypeScript sources, with LOG_LEVEL=debug in the shell', async () => {
    const run = await invokeAsDocumented('consumer', 'events/msk-batch.json', {
      ...dbEnv,
      DB_PASSWORD: 'wrong',
      LOG_LEVEL: 'debug',
    });
    const error = lastJson(run.stdout) as InvokeError;
    expect(error.errorMessage).toContain('Check DB_USER and DB_PASSWORD');
    const frames = error.stackTrace.filter((line) => line.trim().startsWith('at '));
    expect(frames.some((f) => /\/(lib|functions)\/[\w-]+\.ts:/.test(f))).toBe(true);
    expect(frames.filter((f) => f.includes('.esbuild'))).toEqual([]);
  });

  it('should let --env win over the shell, and the shell over serverless.yml', async () => {
    // serverless.yml says DB_SSL=verify-full and DB_HOST=''; the shell's wrong password loses to --env.
    const run = await runServerless(
      [
        'invoke',
        'local',
        '-f',
        'health',
        '-p',
        'events/health-ready.json',
        '--env',
        `DB_PASSWORD=${dbEnv.DB_PASSWORD}`,
      ],
      { ...dbEnv, DB_PASSWORD: 'wrong' },
    );
    expect(run.code, run.stderr).toBe(0);
    expect(lastJson(run.stdout)).toMatchObject({ statusCode: 200, body: { status: 'ready' } });
  });

  it('should answer the health check with the CA file to fix when TLS is asked for without one', async () => {
    const run = await invokeAsDocumented('health', 'events/health-ready.json', { ...dbEnv, DB_SSL: 'verify-full' });
    expect(run.code, run.stderr).toBe(0);
    const answer = lastJson(run.stdout) as { statusCode: number; body: { checks: { name: string; error?: string }[] } };
    expect(answer.statusCode).toBe(503);
    expect(answer.body.checks.find((c) => c.name === 'database')?.error).toMatch(/DB_SSL_CA.*DB_SSL=disable/);
  });
});

describe('npm run db, then invoke local in another terminal', () => {
  it('should serve the documented invoke local commands with no flags, stop on Ctrl-C and keep the data', async () => {
    const data = mkdtempSync(join(tmpdir(), 'trace-npm-run-db-'));
    const port = String(await freePort());
    try {
      const first = await startNpmRunDb(port, data);
      const exported = first.exports;
      expect(exported).toMatchObject({ DB_HOST: '127.0.0.1', DB_PORT: port, DB_NAME: 'trace' });

      const consumer = await invokeAsDocumented('consumer', 'events/msk-batch.json', exported);
      expect(consumer.code, consumer.stdout + consumer.stderr).toBe(0);
      expect(lastJson(consumer.stdout)).toEqual({ batchItemFailures: [] });
      const health = await invokeAsDocumented('health', 'events/health-ready.json', exported);
      expect(health.code, health.stdout + health.stderr).toBe(0);
      expect(lastJson(health.stdout)).toMatchObject({ statusCode: 200, body: { status: 'ready' } });

      expect(await first.interrupt()).toMatchObject({
        code: 0,
        output: expect.stringContaining('Stopping PostgreSQL'),
      });
      expect(existsSync(join(data, 'data', 'postmaster.pid'))).toBe(false); // the server shut down, not just its parent
      const second = await startNpmRunDb(port, data);
      try {
        const sql = postgres({
          host: '127.0.0.1',
          port: Number(port),
          database: 'trace',
          username: 'postgres',
          password: exported.DB_PASSWORD,
          onnotice: () => {},
        });
        const [row] = await sql<{ n: number }[]>`select count(*)::int as n from trace.processed_traces`;
        expect(row?.n).toBe(6);
        // A second `npm run db` on the same data (another terminal, the same command): refused with what to do,
        // never the advice to --reset, which would delete the running server's data.
        const clash = await runCommand(
          'npx',
          ['tsx', 'scripts/db.ts', '--port', String(await freePort()), '--data', data],
          { DB_HOST: '' },
        );
        expect(clash.code).toBe(1);
        expect(clash.stderr).toMatch(/Another PostgreSQL \(PID \d+\) is already running on this data folder/);
        expect(clash.stderr).toContain('npm run db -- --data <folder> --port');
        expect(clash.stderr).not.toContain('`npm run db -- --reset` starts');
        expect(clash.stderr).not.toMatch(/^\s+at /m);
        const [still] = await sql<{ n: number }[]>`select count(*)::int as n from trace.processed_traces`;
        await sql.end();
        expect(still?.n).toBe(6);
      } finally {
        await second.interrupt();
      }
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  }, 240_000);
});

describe('npm start', () => {
  const npmStart = (args: string[], env: Record<string, string> = {}) =>
    runCommand('npx', ['tsx', 'scripts/run-local.ts', ...args], { DB_HOST: '', ...env }, 240_000);
  // npm start runs the CLI, which builds into .esbuild/: under the lock the other CLI runs take.
  const npmStartLocked = (args: string[], env: Record<string, string> = {}) => withCliLock(() => npmStart(args, env));
  const gitStatus = async () => (await runCommand('git', ['status', '--porcelain'])).stdout;

  const bad = mkdtempSync(join(tmpdir(), 'trace-start-'));
  writeFileSync(join(bad, 'not-kafka.json'), '{"eventSource": "aws:kafka"}');
  writeFileSync(join(bad, 'not-json.json'), 'records:');
  afterAll(() => rmSync(bad, { recursive: true, force: true }));
  // Every way of calling it wrongly, alone and after a good event file: refused before any server starts.
  const mistakes: { args: string[]; env: Record<string, string>; says: string }[] = [
    { args: ['events/nope.json'], env: {}, says: 'events/nope.json cannot be read (ENOENT)' },
    { args: ['--bogus'], env: {}, says: "Unknown option '--bogus'" },
    { args: [join(bad, 'not-kafka.json')], env: {}, says: 'not-kafka.json is not a Kafka event' },
    { args: [join(bad, 'not-json.json')], env: {}, says: 'not-json.json is not JSON (' },
    { args: [], env: { DB_HOST: '127.0.0.1', DB_PORT: '1' }, says: 'Add --yes to go ahead' },
  ];
  const withGoodFirst = mistakes
    .flatMap((m) => [m, { ...m, args: ['events/msk-batch.json', ...m.args] }])
    .map((m) => ({
      ...m,
      call: `npm start -- ${m.args.join(' ')}`.trim() + (m.env.DB_HOST ? ' with DB_HOST set' : ''),
    }));

  it.each(withGoodFirst)('should refuse $call before starting anything, saying why', async ({ args, env, says }) => {
    const run = await npmStart(args, env);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(says);
    expect(run.stderr).not.toMatch(/^\s+at /m); // a message, not a stack trace
    expect(run.stdout).not.toContain('Started an embedded PostgreSQL');
  });

  it('should print one line per event with its outcome counts, then the tables, and leave git status as it ' +
    'was', async () => {
    const before = await gitStatus();
    const run = await npmStartLocked(['events/msk-batch.json', 'events/mixed-batch.json']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/events\/msk-batch\.json +6 records: 6 stored\n/);
    expect(run.stdout).toMatch(
      /events\/mixed-batch\.json +9 records: 2 stored, 1 duplicate, 1 upstream error, 5 dead-lettered\n/,
    );
    expect(run.stdout).toContain('processed_traces by status');
    // The function's raw log and metrics lines (and the sample records' age) only with --verbose.
    expect(run.stdout).not.toContain('"_aws"');
    expect(run.stdout).not.toContain('oldestRecordAgeMs');
    expect(await gitStatus()).toBe(before);
  }, 240_000);

  it('should stop the embedded server and remove its temporary folder on Ctrl-C while an event runs', async () => {
    // Its own temporary directory, so that the server's folder can be found (and must be gone) afterwards.
    const tmp = mkdtempSync(join(tmpdir(), 'trace-start-ctrl-c-'));
    chmodSync(tmp, 0o755); // as root, the server runs as "postgres", which must enter it
    try {
      const run = await withCliLock(async () => {
        const child = spawn(
          join(projectRoot, 'node_modules', '.bin', 'tsx'),
          ['scripts/run-local.ts', 'events/large-batch.json'],
          {
            cwd: projectRoot,
            env: { ...process.env, DB_HOST: '', TMPDIR: tmp },
            detached: true, // a process group of its own: the signal goes to all of it, as a terminal's Ctrl-C does
          },
        );
        let output = '';
        child.stdout.on('data', (d) => (output += d));
        child.stderr.on('data', (d) => (output += d));
        const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
        const running = new Promise<void>((resolve) =>
          child.stdout.on('data', () => output.includes('Running serverless invoke local') && resolve()),
        );
        await Promise.race([running, exited]);
        const folders = readdirSync(tmp).filter((f) => f.startsWith('trace-pg-'));
        process.kill(-child.pid!, 'SIGINT');
        return { code: await exited, output, folders };
      });
      expect(run.folders, run.output).toHaveLength(1); // the server's folder existed while it ran
      expect(run.output).toContain('Stopping: no further events are invoked; the embedded PostgreSQL and its data go');
      expect(readdirSync(tmp).filter((f) => f.startsWith('trace-pg-'))).toEqual([]);
      expect(run.code).not.toBe(0);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 240_000);

  it('should name the server, database and user of a rejected login once, without a stack trace', async () => {
    const run = await npmStartLocked(['--yes', 'events/msk-batch.json'], { ...dbEnv, DB_PASSWORD: 'wrong' });
    expect(run.code).toBe(1);
    const { DB_HOST: host, DB_PORT: port, DB_NAME: name, DB_USER: user } = dbEnv;
    expect(run.stderr).toBe(
      `DatabaseLoginError: PostgreSQL rejected the login (user "${user}" on database "${name}" at ${host}:${port}): ` +
        `password authentication failed for user "${user}" (SQLSTATE 28P01). Check DB_USER and DB_PASSWORD, or ` +
        'the secret that DB_SECRET_ARN names.\n',
    );
  });

  it('should exit non-zero naming the cause when a batch fails, with the raw output under --verbose', async () => {
    // No time left in the invocation for the database: every record fails and Lambda would retry the batch.
    const run = await npmStartLocked(['--verbose', 'events/msk-batch.json'], { TIME_RESERVE_MS: '900000' });
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(
      /events\/msk-batch\.json +FAILED: 6 of 6 records could not be processed .*about to time out/,
    );
    expect(run.stdout).toContain('"message":"batch processed"');
    expect(run.stderr).toContain('1 of 1 batches failed');
  }, 240_000);
});

/**
 * Starts `npm run db` as a user would, resolving with the variables of its `export` line once it is ready. It runs
 * in a process group of its own, so that `interrupt` is a terminal's Ctrl-C: SIGINT to every process of the group.
 */
function startNpmRunDb(port: string, data: string) {
  // The command behind `npm run db`: npm itself ends by the signal without waiting for its script.
  const child = spawn(
    join(projectRoot, 'node_modules', '.bin', 'tsx'),
    ['scripts/db.ts', '--port', port, '--data', data],
    {
      cwd: projectRoot,
      env: { ...process.env, DB_HOST: '' },
      detached: true,
    },
  );
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise<{ code: number | null; output: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, output })),
  );
  return new Promise<{
    exports: Record<string, string>;
    interrupt: () => Promise<{ code: number | null; output: string }>;
  }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`npm run db did not get ready:\n${output}`)), 90_000);
    void exited.then(() => reject(new Error(`npm run db ended early:\n${output}`)));
    child.stdout.on('data', () => {
      const line = /^\s*export (.+)$/m.exec(output)?.[1];
      if (!line || !output.includes('Ctrl-C')) return;
      clearTimeout(timer);
      const exports = Object.fromEntries(line.split(' ').map((pair) => pair.split('=') as [string, string]));
      resolve({
        exports,
        interrupt: () => {
          process.kill(-child.pid!, 'SIGINT');
          return exited;
        },
      });
    });
  });
}

describe('your own messages, end to end', () => {
  it('should store a message file wrapped by the event builder and run through invoke local', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trace-own-'));
    const messages = [
      {
        traceId: 'own-1',
        course: { courseId: 'OWN-101', courseName: 'My course' },
        instructor: { name: 'Jane Doe' },
        ratings: [{ questionText: 'Q', courseMean: 4.2 }],
      },
      {
        traceId: 'own-2',
        course: { courseId: 'OWN-102' },
        instructor: { name: 'John Roe' },
        comments: [{ commentText: 'Nice' }],
      },
    ];
    writeFileSync(join(dir, 'messages.jsonl'), messages.map((m) => JSON.stringify(m)).join('\n'));
    const eventFile = join(dir, 'event.json');
    const built = await runCommand('npx', [
      'tsx',
      'scripts/build-event.ts',
      '--source',
      'self-managed',
      '--partitions',
      '2',
      '--out',
      eventFile,
      join(dir, 'messages.jsonl'),
    ]);
    expect(built.code, built.stderr).toBe(0);

    const run = await invokeLocal('consumer', eventFile, dbEnv);
    expect(run.code, run.stderr + run.stdout).toBe(0);
    expect(lastJson(run.stdout)).toEqual({ batchItemFailures: [] });
    const schema = db.config.db.schema;
    const rows = await db.sql`select trace_id, status, kafka_partition from ${db.sql(`${schema}.processed_traces`)}
        where trace_id like 'own-%' order by 1`;
    expect(rows).toEqual([
      { trace_id: 'own-1', status: 'stored', kafka_partition: 0 },
      { trace_id: 'own-2', status: 'stored', kafka_partition: 1 },
    ]);
    const [rating] =
      await db.sql`select question_text, course_mean from ${db.sql(`${schema}.ratings`)} where trace_id = 'own-1'`;
    expect(rating).toEqual({ question_text: 'Q', course_mean: 4.2 });
  });
});

describe('a message instead of an event', () => {
  it(
    'should point to npm run build-event when invoke local is given a raw message, before running ' + 'anything',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'trace-raw-'));
      const message = join(dir, 'message.json');
      writeFileSync(
        message,
        JSON.stringify({ traceId: 'raw-1', course: { courseId: 'RAW-1' }, instructor: { name: 'Jane Doe' } }),
      );
      const run = await invokeLocal('consumer', message, dbEnv);
      const output = run.stdout + run.stderr;
      expect(run.code).not.toBe(0);
      expect(output).toContain('is a survey message, not an event');
      expect(output).toContain(`npm run --silent build-event -- ${message} --out my-events/mine.json`);
      expect(output).not.toContain('batch processed'); // stopped before the handler ran
      rmSync(dir, { recursive: true, force: true });
    },
  );
});

describe('the docs sample messages, as a newcomer tries them', () => {
  it('should stop on events/my-messages.jsonl with a command that works in a fresh checkout, whose event then runs ' +
    'with the shell variables', async () => {
    // The file docs/local-development.md names, given to invoke local as it is: stopped once, with what to run.
    const sample = readFileSync(join(projectRoot, 'events', 'my-messages.jsonl'), 'utf8');
    const refused = await invokeAsDocumented('consumer', 'events/my-messages.jsonl', dbEnv);
    const output = refused.stdout + refused.stderr;
    expect(refused.code).not.toBe(0);
    expect(output).toContain('events/my-messages.jsonl holds 3 JSON lines (messages, one per line), not an event');
    const suggested = /npm run --silent build-event -- (\S+) --out (\S+), then/.exec(output);
    expect(suggested?.slice(1)).toEqual(['events/my-messages.jsonl', 'my-events/mine.json']);
    expect(output).not.toContain(sample.split('\n')[0]!.slice(0, 60)); // the file is not dumped
    expect(output).not.toContain('batch processed');

    // The suggested command, its --out in a folder that does not exist yet (as my-events/ in a fresh checkout),
    // with one more message whose comment is longer than the shell's MAX_TEXT_CHARS below.
    const dir = mkdtempSync(join(tmpdir(), 'trace-sample-'));
    try {
      const long = {
        traceId: 'sample-long-comment',
        course: { courseId: 'SAMPLE-1' },
        instructor: { name: 'Jane Doe' },
        comments: [{ commentText: 'z'.repeat(2000) }],
      };
      const messages = join(dir, 'messages.jsonl');
      writeFileSync(messages, `${sample.trim()}\n${JSON.stringify(long)}\n`);
      const out = join(dir, 'my-events', 'mine.json');
      const built = await runCommand('npx', ['tsx', 'scripts/build-event.ts', messages, '--out', out]);
      expect(built.code, built.stderr).toBe(0);
      const run = await invokeAsDocumented('consumer', out, { ...dbEnv, MAX_TEXT_CHARS: '1024', LOG_LEVEL: 'warn' });
      expect(run.code, run.stdout + run.stderr).toBe(0);
      expect(lastJson(run.stdout)).toEqual({ batchItemFailures: [] });
      const lines = logLines(run.stdout);
      expect(lines.find((l) => l.message === 'record dead-lettered')).toMatchObject({
        traceId: 'sample-long-comment',
        detail: 'comments.0.commentText: must be at most 1024 characters long (MAX_TEXT_CHARS)',
      });
      expect(lines.filter((l) => l.level === 'info')).toEqual([]); // the shell's LOG_LEVEL, not serverless.yml's debug
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 240_000);
});

// `serverless package` and the deployment's AWS rules are tested in deploy-templates.test.ts.
