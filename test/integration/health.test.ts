import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSql } from '../../lib/postgres/client';
import { SCHEMA_VERSION } from '../../lib/postgres/schema-version';
import { MIN_ATTEMPT_MS } from '../../lib/deadline';
import { buildKafkaEvent } from '../../scripts/encode-kafka-event';
import type { LocalDatabase } from '../../scripts/local-db';
import { ownServer, terminateSessions, testDatabase, type TestDatabase } from '../helpers/db';
import { lambdaContext, surveyMessage } from '../helpers/factories';
import { captureLogs, coldStart } from '../helpers/handler';
import { runBatch } from '../helpers/run';

const eventsDir = join(__dirname, '../../events');
const read = (path: string) => JSON.parse(readFileSync(path, 'utf8'));
const request = (name: string) => read(join(eventsDir, `${name}.json`));

interface HttpAnswer {
  statusCode: number;
  headers: Record<string, string>;
  body: Record<string, unknown> & { checks?: { name: string; ok: boolean; durationMs: number; error?: string }[] };
}

type Handler = Awaited<ReturnType<typeof coldStart>>;

async function call(db: TestDatabase, eventName: string, env: Record<string, string> = {}): Promise<HttpAnswer> {
  return ask(await coldStart('health', db, env), eventName);
}

/** One request to a handler already loaded: timing this measures the answer, not the cold start's module loading. */
async function ask(handler: Handler, eventName: string): Promise<HttpAnswer> {
  const { value, error } = await captureLogs(() => handler(request(eventName), lambdaContext()));
  if (error) throw error;
  const answer = value as { statusCode: number; headers: Record<string, string>; body: string };
  // Header names are case-insensitive; compare them in lower case.
  const headers = Object.fromEntries(Object.entries(answer.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  return { statusCode: answer.statusCode, headers, body: JSON.parse(answer.body) };
}

let db: TestDatabase;
beforeAll(async () => {
  db = await testDatabase();
});
afterAll(() => db.close());

describe('health samples', () => {
  const samples = readdirSync(eventsDir).filter((f) => f.startsWith('health') && f.endsWith('.json'));

  it.each(samples)('should answer events/%s as its pair in events/responses/ says', async (file) => {
    const expected = read(join(eventsDir, 'responses', file));
    const answer = await call(db, file.replace(/\.json$/, ''));
    expect(answer.statusCode).toBe(expected.statusCode);
    expect(answer.body).toMatchObject(expected.body);
    expect(answer.headers['content-type']).toBe('application/json');
    expect(answer.headers['cache-control']).toBe('no-store');
  });

  it('should answer 500 to a malformed HTTP API request (no method), and log it with the request id', async () => {
    const handler = await coldStart('health', db);
    const run = await captureLogs(() => handler({ version: '2.0', requestContext: { http: {} } }, lambdaContext()));
    expect(run.value).toMatchObject({ statusCode: 500, headers: { 'Cache-Control': 'no-store' } });
    expect(run.logs.find((l) => l.message === 'health request failed')).toMatchObject({
      level: 'ERROR',
      function_request_id: expect.stringMatching(/^req-/),
      cold_start: true,
    });
  });

  const kafkaSamples = readdirSync(eventsDir).filter((f) => !f.startsWith('health') && f.endsWith('.json'));
  it.each([
    ...kafkaSamples.map((file) => ({ name: `events/${file}`, event: request(file.replace(/\.json$/, '')) })),
    { name: 'a self-managed batch', event: buildKafkaEvent([{ value: surveyMessage() }], { source: 'self-managed' }) },
    { name: 'an empty Kafka batch', event: { eventSource: 'aws:kafka', records: {} } },
  ])('should answer 400 to $name, a Kafka event, saying to invoke the consumer', async ({ event }) => {
    const handler = await coldStart('health', db);
    const run = await captureLogs(() => handler(event, lambdaContext()));
    const answer = run.value as { statusCode: number; headers: Record<string, string>; body: string };
    expect(answer).toMatchObject({ statusCode: 400, headers: { 'Content-Type': 'application/json' } });
    expect(JSON.parse(answer.body)).toEqual({
      error: 'kafka_event',
      message: expect.stringMatching(/^This is a Kafka event \((aws:kafka|SelfManagedKafka)\), meant for the consumer/),
    });
    expect(JSON.parse(answer.body).message).toContain('npx serverless invoke local -f consumer');
    expect(run.logs.filter((l) => l.level === 'error')).toEqual([]);
  });

  it.each([
    ['a survey message', surveyMessage(), 'wrap it into a Kafka event with npm run build-event'],
    ['a list of messages', [surveyMessage()], 'wrap it into a Kafka event'],
    ['an empty object', {}, 'This is not an HTTP API request'],
    ['null', null, 'This is not an HTTP API request'],
  ])('should answer 400 to %s, saying what it is', async (_name, event, says) => {
    const handler = await coldStart('health', db);
    const answer = (await handler(event, lambdaContext())) as { statusCode: number; body: string };
    expect(answer.statusCode).toBe(400);
    expect(JSON.parse(answer.body)).toMatchObject({
      error: 'not_an_http_request',
      message: expect.stringContaining(says),
    });
  });

  it('should name the allowed method on a 405', async () => {
    const answer = await call(db, 'health-wrong-method');
    expect(answer.headers.allow).toBe('GET');
    expect(answer.body.message).toBe('POST is not allowed on /healthz/ready; use GET');
  });
});

describe('GET /healthz/ready', () => {
  it('should report each check with its duration when the database is up', async () => {
    const answer = await call(db, 'health-ready');
    expect(answer.statusCode).toBe(200);
    expect(answer.body.checks).toHaveLength(3);
    for (const check of answer.body.checks ?? []) {
      expect(check.ok).toBe(true);
      expect(check.durationMs).toBeGreaterThanOrEqual(0);
    }
  });

  it('should answer ready with a HEALTH_TIMEOUT_MS shorter than a batch attempt needs (MIN_ATTEMPT_MS)', async () => {
    // A health query is one short statement: it starts with whatever time it has, where a batch attempt would not.
    const answer = await call(db, 'health-ready', { HEALTH_TIMEOUT_MS: String(MIN_ATTEMPT_MS - 200) });
    expect(answer.body.checks?.map((c) => c.error)).toEqual([undefined, undefined, undefined]);
    expect(answer.statusCode).toBe(200);
  });

  it('should answer 503 naming the wrong password, without the password', async () => {
    const answer = await call(db, 'health-ready', { DB_PASSWORD: 'not-the-password-42' });
    expect(answer.statusCode).toBe(503);
    expect(answer.body.checks).toEqual([
      { name: 'credentials', ok: true, durationMs: expect.any(Number) },
      {
        name: 'database',
        ok: false,
        durationMs: expect.any(Number),
        error: 'password authentication failed: Check DB_USER and DB_PASSWORD, or the secret that DB_SECRET_ARN names.',
      },
      { name: 'schema', ok: false, durationMs: 0, error: 'skipped: an earlier check failed' },
    ]);
    const text = JSON.stringify(answer);
    expect(text).not.toContain('not-the-password-42');
    expect(text).not.toContain(db.env.DB_PASSWORD);
    expect(text).not.toMatch(/postgres(ql)?:\/\//);
  });

  // Each setup mistake of a new user, with the words that name it and the variable to fix; combined with both
  // routes that touch the database.
  const mistakes: { mistake: string; env: Record<string, string>; names: string[] }[] = [
    {
      mistake: 'a wrong password',
      env: { DB_PASSWORD: 'not-the-password-42' },
      names: ['password authentication failed', 'DB_PASSWORD'],
    },
    {
      mistake: 'a database that does not exist',
      env: { DB_NAME: 'no_such_database' },
      names: ['database does not exist', 'DB_NAME'],
    },
    {
      mistake: 'a missing CA file',
      env: { DB_SSL: 'verify-full', DB_SSL_CA: '/nonexistent/ca.pem' },
      names: ['CA bundle', 'DB_SSL_CA', 'DB_SSL=disable'],
    },
    {
      mistake: 'a port nothing listens on',
      env: { DB_PORT: '1' },
      names: ['connection refused', 'DB_HOST and DB_PORT'],
    },
  ];
  const routes = [
    { route: 'health-ready', error: (a: HttpAnswer) => a.body.checks?.find((c) => !c.ok)?.error },
    { route: 'health-freshness', error: (a: HttpAnswer) => a.body.error as string | undefined },
  ];
  it.each(mistakes.flatMap((m) => routes.map((r) => ({ ...m, ...r }))))(
    'should answer $route with 503 naming the cause and fix of $mistake',
    async ({ env, names, route, error }) => {
      const answer = await call(db, route, { HEALTH_CHECK_INTERVAL: '0', DB_CONNECT_TIMEOUT: '2', ...env });
      expect(answer.statusCode).toBe(503);
      for (const name of names) expect(error(answer)).toContain(name);
      expect(JSON.stringify(answer)).not.toContain('not-the-password-42');
    },
  );

  it('should answer 503 when the schema does not exist', async () => {
    const answer = await call(db, 'health-ready', { DB_SCHEMA: 'no_such_schema' });
    expect(answer.statusCode).toBe(503);
    const schema = answer.body.checks?.find((c) => c.name === 'schema');
    expect(schema?.ok).toBe(false);
    expect(schema?.error).toBe(
      `schema version 0, needs ${SCHEMA_VERSION}: run npm run db:apply (or set DB_SCHEMA to the schema that ` +
        `holds the tables)`,
    );
  });

  it('should answer 503 naming the one table that was dropped', async () => {
    const other = await testDatabase();
    try {
      await other.sql`drop table ${other.sql(`${other.config.db.schema}.comments`)}`;
      const answer = await call(other, 'health-ready');
      expect(answer.statusCode).toBe(503);
      expect(answer.body.checks?.find((c) => c.name === 'schema')?.error).toMatch(
        new RegExp(`^missing table ${other.config.db.schema}\\.comments: apply schema\\.sql`),
      );
    } finally {
      await other.close();
    }
  });

  it('should reuse a result for HEALTH_CHECK_INTERVAL seconds, and check every time with 0', async () => {
    const handler = await coldStart('health', db, { HEALTH_CHECK_INTERVAL: '60' });
    const first = await handler(request('health-ready'), lambdaContext());
    const second = await handler(request('health-ready'), lambdaContext());
    expect(JSON.parse((first as { body: string }).body).cached).toBe(false);
    expect(JSON.parse((second as { body: string }).body)).toMatchObject({
      cached: true,
      checkedAt: JSON.parse((first as { body: string }).body).checkedAt,
    });

    const uncached = await coldStart('health', db, { HEALTH_CHECK_INTERVAL: '0' });
    await uncached(request('health-ready'), lambdaContext());
    expect(
      JSON.parse(((await uncached(request('health-ready'), lambdaContext())) as { body: string }).body).cached,
    ).toBe(false);
  });

  it('should answer within the timeout when the database accepts connections but never replies', async () => {
    const silent: Server = createServer(() => {}); // accepts the TCP connection, then says nothing
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    try {
      const handler = await coldStart('health', db, { DB_PORT: String(port), HEALTH_TIMEOUT_MS: '500' });
      const started = Date.now();
      const answer = await ask(handler, 'health-ready');
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(answer.statusCode).toBe(503);
      expect(answer.body.checks?.find((c) => c.name === 'database')?.error).toBe('no answer within 500 ms');
    } finally {
      silent.close();
    }
  });
});

describe('GET /healthz', () => {
  it('should report the last stored trace and recent counts', async () => {
    const fresh = await testDatabase();
    try {
      const before = await call(fresh, 'health-freshness');
      expect(before.body).toMatchObject({ status: 'ok', lastStoredAt: null, stored: { lastHour: 0 }, stale: false });

      await runBatch(
        fresh,
        buildKafkaEvent([{ value: surveyMessage() }, { value: surveyMessage() }, { value: 'garbage' }]),
      );
      const after = await call(fresh, 'health-freshness');
      expect(after.statusCode).toBe(200);
      expect(after.body).toMatchObject({
        status: 'ok',
        stored: { lastHour: 2 },
        deadLettered: { lastHour: 1 },
        stale: false,
        staleAfterSeconds: null,
      });
      expect(Date.parse(after.body.lastStoredAt as string)).toBeGreaterThan(Date.now() - 60_000);
      expect(after.body.secondsSinceLastStored).toBeLessThan(60);
    } finally {
      await fresh.close();
    }
  });

  it('should say stale, still with 200, when nothing was stored within the threshold', async () => {
    const empty = await testDatabase();
    try {
      const answer = await call(empty, 'health-freshness', { HEALTH_STALE_AFTER_SECONDS: '3600' });
      expect(answer.statusCode).toBe(200);
      expect(answer.body).toMatchObject({ status: 'stale', stale: true, staleAfterSeconds: 3600 });
    } finally {
      await empty.close();
    }
  });
});

/** Holds ACCESS EXCLUSIVE on `table` from a session of the test's own until `release` is called. */
async function lockTable(of: TestDatabase, table: string) {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let locked!: () => void;
  const isLocked = new Promise<void>((resolve) => (locked = resolve));
  const holding = of.sql.begin(async (tx) => {
    await tx`lock table ${tx(`${of.config.db.schema}.${table}`)} in access exclusive mode`;
    locked();
    await released;
  });
  await isLocked;
  return {
    release: async () => {
      release();
      return await holding;
    },
  };
}

/** Sessions waiting for a lock on `table` (of the test's own schema), whoever they are. */
async function lockWaiters(of: TestDatabase, table: string): Promise<number> {
  const [row] = await of.sql<{ n: number }[]>`
    select count(*)::int as n from pg_locks where not granted
      and relation = to_regclass(${`${of.config.db.schema}.${table}`})`;
  return row?.n ?? 0;
}

async function waitFor(condition: () => Promise<boolean>, what: string, tries = 200) {
  for (let i = 0; i < tries; i++) {
    if (await condition()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`gave up waiting for ${what}`);
}

/** `promise`, or a failure naming `what` once `ms` have passed: a request that hangs fails the test instead. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>(
      (_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms)),
    ),
  ]).finally(() => clearTimeout(timer));
}

describe('health that cannot hurt the database', () => {
  it(
    'should answer /healthz within its timeout while the table is locked, and leave no backend waiting for the ' +
      'lock',
    async () => {
      const locked = await testDatabase();
      const lock = await lockTable(locked, 'processed_traces');
      try {
        // HEALTH_CHECK_INTERVAL=0: every request asks the database, as a flood of distinct environments would.
        const handler = await coldStart('health', locked, { HEALTH_TIMEOUT_MS: '1000', HEALTH_CHECK_INTERVAL: '0' });
        for (let i = 0; i < 3; i++) {
          const answer = await within(ask(handler, 'health-freshness'), 8_000, `request ${i + 1}`);
          expect(answer.statusCode).toBe(503);
          expect(answer.body).toMatchObject({ status: 'unavailable', cached: false });
          // The server gave up (lock_timeout, 55P03), before the client's own timeout had to drop the connection.
          expect(answer.body.error).toBe(
            'a table it reads is locked (lock_timeout): the answer is unknown, ask again later',
          );
        }
        // Nothing is left queued behind the lock: lock_timeout ended each wait on the server.
        await waitFor(
          async () => (await lockWaiters(locked, 'processed_traces')) === 0,
          'the health backends to stop waiting',
          80,
        );
      } finally {
        await lock.release();
        await locked.close();
      }
    },
  );

  it(
    'should ask the database once per HEALTH_CHECK_INTERVAL for /healthz, however many requests arrive at ' + 'once',
    async () => {
      const busy = await testDatabase();
      await runBatch(busy, buildKafkaEvent([{ value: surveyMessage() }]));
      const lock = await lockTable(busy, 'processed_traces');
      let released = false;
      try {
        // A pool of 5 could run 5 queries side by side: only one may be asked.
        const handler = await coldStart('health', busy, {
          HEALTH_TIMEOUT_MS: '20000',
          HEALTH_CHECK_INTERVAL: '60',
          DB_POOL_MAX: '5',
        });
        const answers = Array.from({ length: 8 }, () => ask(handler, 'health-freshness'));
        await waitFor(
          async () => (await lockWaiters(busy, 'processed_traces')) > 0,
          'a freshness query to wait for the lock',
        );
        await new Promise((r) => setTimeout(r, 300)); // time for any further query to queue up too
        expect(await lockWaiters(busy, 'processed_traces')).toBe(1);
        await lock.release();
        released = true;
        const bodies = (await Promise.all(answers)).map((a) => a.body);
        expect(bodies.map((b) => b.status)).toEqual(Array(8).fill('ok'));
        expect(new Set(bodies.map((b) => b.checkedAt)).size).toBe(1);

        // Within the interval, a later request is answered from the cache: a trace stored meanwhile is not seen yet.
        await runBatch(busy, buildKafkaEvent([{ value: surveyMessage() }]));
        const later = await ask(handler, 'health-freshness');
        expect(later.body).toMatchObject({ cached: true, checkedAt: bodies[0]!.checkedAt, stored: { lastHour: 1 } });
      } finally {
        if (!released) await lock.release();
        await busy.close();
      }
    },
  );

  it('should cache a failure too, so that a locked table is not asked again by every request', async () => {
    const locked = await testDatabase();
    const lock = await lockTable(locked, 'processed_traces');
    try {
      const handler = await coldStart('health', locked, { HEALTH_TIMEOUT_MS: '500', HEALTH_CHECK_INTERVAL: '60' });
      const first = await within(ask(handler, 'health-freshness'), 8_000, 'the first request');
      const second = await ask(handler, 'health-freshness');
      expect(first.body).toMatchObject({ status: 'unavailable', cached: false });
      expect(second).toMatchObject({
        statusCode: 503,
        body: { status: 'unavailable', cached: true, checkedAt: first.body.checkedAt },
      });
    } finally {
      await lock.release();
      await locked.close();
    }
  });
});

describe('a Secrets Manager that never answers', () => {
  it(
    'should answer /healthz within HEALTH_TIMEOUT_MS, and the next request from the cache, not wait on the ' + 'secret',
    async () => {
      // The SDK waits on a silent endpoint without limit, and the credentials are fetched before any query's timeout:
      // /healthz waited more than 20 s, and every later request of the environment joined the same wait.
      const silent: Server = createServer(() => {});
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      const port = (silent.address() as { port: number }).port;
      try {
        const handler = await coldStart('health', db, {
          AWS_ENDPOINT_URL_SECRETS_MANAGER: `http://127.0.0.1:${port}`,
          AWS_REGION: 'us-east-1',
          AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
          AWS_SECRET_ACCESS_KEY: 'fake-secret-access-key',
          AWS_EC2_METADATA_DISABLED: 'true',
          DB_SECRET_ARN: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:trace-db-health-AbCdEf',
          HEALTH_TIMEOUT_MS: '500',
          HEALTH_CHECK_INTERVAL: '60',
        });
        const first = await within(ask(handler, 'health-freshness'), 8_000, 'the first request');
        expect(first.statusCode).toBe(503);
        expect(first.body).toMatchObject({ status: 'unavailable', error: 'no answer within 500 ms', cached: false });
        const second = await within(ask(handler, 'health-freshness'), 8_000, 'the second request');
        expect(second.body).toMatchObject({ status: 'unavailable', cached: true, checkedAt: first.body.checkedAt });
      } finally {
        silent.close();
      }
    },
  );
});

describe('a read-only role for the health function', () => {
  it(
    'should answer ready and fresh when connected as a role that may only read, as docs/operations.md creates ' + 'it',
    async () => {
      const own = await testDatabase();
      const role = `trace_health_${own.config.db.schema}`;
      const schema = own.config.db.schema;
      try {
        // The statements of docs/operations.md as written there, for this test's role, password and schema.
        const docs = readFileSync(join(__dirname, '../../docs/operations.md'), 'utf8');
        const block = /### A read-only role for the health function[\s\S]*?```sql\n([\s\S]*?)```/.exec(docs)?.[1];
        expect(block).toBeDefined();
        const statements = block!
          .replaceAll('trace_health', role)
          .replaceAll('<a generated password>', 'health-secret-1')
          .replaceAll(/\btrace\./g, `${schema}.`)
          .replaceAll('schema trace ', `schema ${schema} `)
          .split(';')
          .map((x) => x.trim())
          .filter(Boolean);
        expect(statements.length).toBeGreaterThanOrEqual(3);
        for (const statement of statements) await own.sql.unsafe(statement);
        await runBatch(own, buildKafkaEvent([{ value: surveyMessage() }]));
        // No DB_SECRET_ARN: the health function needs only its own credentials, never the consumer's secret.
        const env = { DB_USER: role, DB_PASSWORD: 'health-secret-1', DB_SECRET_ARN: '', HEALTH_CHECK_INTERVAL: '0' };
        const ready = await call(own, 'health-ready', env);
        expect(ready.statusCode).toBe(200);
        const fresh = await call(own, 'health-freshness', env);
        expect(fresh).toMatchObject({ statusCode: 200, body: { status: 'ok', stored: { lastHour: 1 } } });

        // The role really is read-only: what the consumer writes, it may not.
        const asHealth = createSql({ ...own.config.db, user: role, password: 'health-secret-1' }, { max: 1 });
        try {
          // Nor what every role may do through PUBLIC: a temporary table, filled at will, is refused (read-only).
          await expect(asHealth`create temporary table hog (x int)`).rejects.toMatchObject({ code: '25006' });
          // The privileges hold even in a session that turns read-only off.
          await asHealth`set default_transaction_read_only = off`;
          await expect(asHealth`delete from ${asHealth(`${schema}.processed_traces`)}`).rejects.toMatchObject({
            code: '42501',
          });
          // And however many environments or holders of its password there are, it holds a bounded number of backends.
          const [limits] = await own.sql<
            { rolconnlimit: number }[]
          >`select rolconnlimit from pg_roles where rolname = ${role}`;
          expect(limits!.rolconnlimit).toBeGreaterThan(0);
        } finally {
          await asHealth.end({ timeout: 5 });
        }
      } finally {
        await terminateSessions(own.sql, { user: role });
        await own.sql.unsafe(`drop owned by ${role}`);
        await own.sql.unsafe(`drop role ${role}`);
        await own.close();
      }
    },
  );
});

describe('a stopped database', () => {
  let server: LocalDatabase;
  let stoppedDb: TestDatabase;
  let close: () => Promise<void>;
  beforeAll(async () => {
    ({ server, db: stoppedDb, close } = await ownServer());
    await server.stop();
  });
  afterAll(() => close());

  it('should make /healthz/ready answer 503 quickly, and leave /healthz/live at 200', async () => {
    const handler = await coldStart('health', stoppedDb, { HEALTH_TIMEOUT_MS: '1000' });
    const started = Date.now();
    const ready = await ask(handler, 'health-ready');
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(ready.statusCode).toBe(503);
    expect(ready.body.status).toBe('not_ready');
    expect(ready.body.checks?.find((c) => c.name === 'database')?.error).toBe(
      'connection refused: the database is not accepting connections: Check DB_HOST and DB_PORT and that the ' +
        'server is running (locally: `npm run db`); in Lambda, the subnets and security group that lead to it.',
    );
    expect((await call(stoppedDb, 'health-live')).statusCode).toBe(200);
  });

  it('should make /healthz answer 503', async () => {
    const answer = await call(stoppedDb, 'health-freshness');
    expect(answer).toMatchObject({
      statusCode: 503,
      body: { status: 'unavailable', error: expect.stringContaining('connection refused') },
    });
  });
});
