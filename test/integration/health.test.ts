import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCHEMA_VERSION } from '../../lib/schema-version';
import { buildKafkaEvent } from '../../scripts/event-builder';
import type { LocalDatabase } from '../../scripts/local-db';
import { ownServer, testDatabase, type TestDatabase } from '../helpers/db';
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

  it('should answer 500 to an event that is not an HTTP API request, and log it with the request id', async () => {
    const handler = await coldStart('health', db);
    const run = await captureLogs(() => handler({ version: '2.0', requestContext: { http: {} } }, lambdaContext()));
    expect(run.value).toMatchObject({ statusCode: 500, headers: { 'Cache-Control': 'no-store' } });
    expect(run.logs.find((l) => l.message === 'health request failed')).toMatchObject({ level: 'error', requestId: expect.stringMatching(/^req-/), coldStart: true });
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

  it('should answer 503 naming the wrong password, without the password', async () => {
    const answer = await call(db, 'health-ready', { DB_PASSWORD: 'not-the-password-42' });
    expect(answer.statusCode).toBe(503);
    expect(answer.body.checks).toEqual([
      { name: 'credentials', ok: true, durationMs: expect.any(Number) },
      { name: 'database', ok: false, durationMs: expect.any(Number), error: 'password authentication failed: Check DB_USER and DB_PASSWORD, or the secret that DB_SECRET_ARN names.' },
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
    { mistake: 'a wrong password', env: { DB_PASSWORD: 'not-the-password-42' }, names: ['password authentication failed', 'DB_PASSWORD'] },
    { mistake: 'a database that does not exist', env: { DB_NAME: 'no_such_database' }, names: ['database does not exist', 'DB_NAME'] },
    { mistake: 'a missing CA file', env: { DB_SSL: 'verify-full', DB_SSL_CA: '/nonexistent/ca.pem' }, names: ['CA bundle', 'DB_SSL_CA', 'DB_SSL=disable'] },
    { mistake: 'a port nothing listens on', env: { DB_PORT: '1' }, names: ['connection refused', 'DB_HOST and DB_PORT'] },
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
    expect(schema?.error).toBe(`schema version 0, needs ${SCHEMA_VERSION}: run npm run db:apply (or set DB_SCHEMA to the schema that holds the tables)`);
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
    expect(JSON.parse((second as { body: string }).body)).toMatchObject({ cached: true, checkedAt: JSON.parse((first as { body: string }).body).checkedAt });

    const uncached = await coldStart('health', db, { HEALTH_CHECK_INTERVAL: '0' });
    await uncached(request('health-ready'), lambdaContext());
    expect(JSON.parse(((await uncached(request('health-ready'), lambdaContext())) as { body: string }).body).cached).toBe(false);
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
      expect(before.body).toMatchObject({ status: 'ok', lastStoredAt: null, stored: { lastHour: 0, lastDay: 0 }, stale: false });

      await runBatch(fresh, buildKafkaEvent([{ value: surveyMessage() }, { value: surveyMessage() }, { value: 'garbage' }]));
      const after = await call(fresh, 'health-freshness');
      expect(after.statusCode).toBe(200);
      expect(after.body).toMatchObject({
        status: 'ok',
        stored: { lastHour: 2, lastDay: 2 },
        deadLettered: { lastHour: 1, lastDay: 1 },
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
      'connection refused: the database is not accepting connections: Check DB_HOST and DB_PORT and that the server is running ' +
        '(locally: `npm run db`); in Lambda, the subnets and security group that lead to it.',
    );
    expect((await call(stoppedDb, 'health-live')).statusCode).toBe(200);
  });

  it('should make /healthz answer 503', async () => {
    const answer = await call(stoppedDb, 'health-freshness');
    expect(answer).toMatchObject({ statusCode: 503, body: { status: 'unavailable', error: expect.stringContaining('connection refused') } });
  });
});
