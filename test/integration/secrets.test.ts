import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildKafkaEvent } from '../../scripts/encode-kafka-event';
import type { LocalDatabase } from '../../scripts/local-db';
import { countRows, ownServer, terminateSessions, testDatabase, type TestDatabase } from '../helpers/db';
import { FakeSecretsManager } from '../helpers/fake-secrets-manager';
import { lambdaContext, surveyMessage } from '../helpers/factories';
import { captureLogs, coldStart } from '../helpers/handler';

const SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:trace-db-AbCdEf';
const secretsManager = new FakeSecretsManager();
const passwords: string[] = [];
const allLogs: Record<string, unknown>[] = [];
const newPassword = () => {
  const p = `pw-${randomBytes(8).toString('hex')}`;
  passwords.push(p);
  return p;
};
const batch = (n = 3) => buildKafkaEvent(Array.from({ length: n }, () => ({ value: surveyMessage() })));

/** A PostgreSQL role that may write the test schema, as a production login would be. */
async function createWriter(db: TestDatabase, password: string): Promise<string> {
  const role = `writer_${randomBytes(4).toString('hex')}`;
  const schema = db.sql(db.config.db.schema);
  await db.sql`create role ${db.sql(role)} login password ${db.sql.unsafe(`'${password}'`)}`;
  await db.sql`grant usage on schema ${schema} to ${db.sql(role)}`;
  await db.sql`grant select, insert, update, delete on all tables in schema ${schema} to ${db.sql(role)}`;
  return role;
}

/**
 * Environment for a function whose credentials live only in the secret: DB_USER and DB_PASSWORD are wrong on purpose.
 */
function secretEnv(extra: Record<string, string> = {}) {
  return {
    ...secretsManager.env(),
    DB_SECRET_ARN: SECRET_ARN,
    DB_USER: 'nobody',
    DB_PASSWORD: 'wrong-password',
    DB_HOST: 'db.invalid',
    ...extra,
  };
}

async function invoke(handler: (e: unknown, c: ReturnType<typeof lambdaContext>) => Promise<unknown>, event: unknown) {
  const run = await captureLogs(() => handler(event, lambdaContext()));
  allLogs.push(...run.logs);
  return run;
}

let db: TestDatabase;
beforeAll(async () => {
  await secretsManager.start();
  db = await testDatabase();
});
afterAll(async () => {
  await secretsManager.stop();
  await db.close();
});

describe('credentials from Secrets Manager', () => {
  it("should connect with the secret's username, password and host, overriding DB_*", async () => {
    const password = newPassword();
    const role = await createWriter(db, password);
    secretsManager.setSecret(SECRET_ARN, {
      username: role,
      password,
      host: db.env.DB_HOST,
      port: Number(db.env.DB_PORT),
      dbname: db.env.DB_NAME,
      engine: 'postgres',
    });
    const handler = await coldStart('consumer', db, secretEnv());

    const run = await invoke(handler, batch());
    expect(run.error).toBeUndefined();
    expect(run.value).toEqual({ batchItemFailures: [] });
    expect((await countRows(db)).processed_traces).toBe(3);
    expect(secretsManager.requests).toContain(SECRET_ARN);
  });

  it('should survive a rotation between two invocations without a restart, fetching the secret again', async () => {
    const first = newPassword();
    const role = await createWriter(db, first);
    secretsManager.setSecret(SECRET_ARN, {
      username: role,
      password: first,
      host: db.env.DB_HOST,
      port: Number(db.env.DB_PORT),
      dbname: db.env.DB_NAME,
    });
    const handler = await coldStart('consumer', db, secretEnv({ DB_SECRET_TTL_SECONDS: '3600' }));
    expect((await invoke(handler, batch())).value).toEqual({ batchItemFailures: [] });
    const fetchesBefore = secretsManager.requests.length;

    // Rotation: new password in PostgreSQL and in the secret; existing sessions end (as after a freeze or failover).
    const second = newPassword();
    await db.sql`alter role ${db.sql(role)} password ${db.sql.unsafe(`'${second}'`)}`;
    secretsManager.setSecret(SECRET_ARN, {
      username: role,
      password: second,
      host: db.env.DB_HOST,
      port: Number(db.env.DB_PORT),
      dbname: db.env.DB_NAME,
    });
    await terminateSessions(db.sql, { user: role });

    const after = await invoke(handler, batch());
    expect(after.error).toBeUndefined();
    expect(after.value).toEqual({ batchItemFailures: [] });
    expect(after.logs.find((l) => l.message === 'batch processed')).toMatchObject({ stored: 3, failed: 0 });
    expect(secretsManager.requests.length).toBe(fetchesBefore + 1); // the cached secret was stale: fetched once more
  });

  it('should report the batch for retry and write nothing when Secrets Manager is unreachable', async () => {
    const unreachable = await testDatabase();
    try {
      const handler = await coldStart('consumer', unreachable, {
        ...secretEnv(),
        AWS_ENDPOINT_URL_SECRETS_MANAGER: 'http://127.0.0.1:1',
        MAX_RETRIES: '1',
        RETRY_BACKOFF_MS: '10',
      });
      const run = await invoke(handler, batch());
      expect(run.error).toMatchObject({ name: 'BatchFailedError', code: 'BATCH_FAILED' });
      const failure = run.logs.find((l) => l.message === 'database write failed; the records are reported for retry');
      expect(failure).toMatchObject({ failure: 'transient', error: { code: 'SECRET_UNAVAILABLE' } });
      expect(await countRows(unreachable)).toMatchObject({ processed_traces: 0, dead_letters: 0, courses: 0 });
    } finally {
      await unreachable.close();
    }
  });

  it('should fail readiness on the credentials check when the secret cannot be read', async () => {
    const handler = await coldStart('health', db, { ...secretEnv(), DB_SECRET_ARN: `${SECRET_ARN}-missing` });
    const run = await invoke(handler, JSON.parse(JSON.stringify(readyRequest)));
    const answer = run.value as { statusCode: number; body: string };
    expect(answer.statusCode).toBe(503);
    expect(JSON.parse(answer.body).checks[0]).toMatchObject({
      name: 'credentials',
      ok: false,
      error: 'failed (SECRET_UNAVAILABLE)',
    });
  });
});

describe('a PostgreSQL restart between invocations', () => {
  let server: LocalDatabase;
  let own: TestDatabase;
  let close: () => Promise<void>;
  beforeAll(async () => {
    ({ server, db: own, close } = await ownServer());
  });
  afterAll(() => close());

  it('should let the next batch succeed on a new connection', async () => {
    const password = server.env.DB_PASSWORD;
    passwords.push(password);
    secretsManager.setSecret(SECRET_ARN, {
      username: 'postgres',
      password,
      host: server.env.DB_HOST,
      port: Number(server.env.DB_PORT),
      dbname: 'trace',
    });
    const handler = await coldStart('consumer', own, secretEnv({ RETRY_BACKOFF_MS: '50' }));
    expect((await invoke(handler, batch())).value).toEqual({ batchItemFailures: [] });

    await server.stop();
    await server.start();

    const next = await invoke(handler, batch());
    expect(next.error).toBeUndefined();
    expect(next.value).toEqual({ batchItemFailures: [] });
    expect(next.logs.find((l) => l.message === 'batch processed')).toMatchObject({ stored: 3, failed: 0 });
    expect(await countRows(own)).toMatchObject({ processed_traces: 6 });
  });
});

describe('what was logged', () => {
  it('should never contain a password', () => {
    expect(allLogs.length).toBeGreaterThan(5);
    const text = JSON.stringify(allLogs);
    for (const password of [...passwords, 'wrong-password']) expect(text).not.toContain(password);
  });
});

const readyRequest = {
  version: '2.0',
  routeKey: '$default',
  rawPath: '/healthz/ready',
  rawQueryString: '',
  headers: {},
  requestContext: {
    http: { method: 'GET', path: '/healthz/ready', protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'test' },
  },
  isBase64Encoded: false,
};
