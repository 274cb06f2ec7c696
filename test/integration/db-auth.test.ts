/**
 * What the client gives a server that asks for the password, and what a person reads when it refuses: postgres.js
 * 4's guards as lib/postgres/client.ts sets them. Only a verified server (DB_SSL=verify-full) may have the password
 * or its MD5 hash; SCRAM never reveals it and works everywhere; a refusal names the server, the database and the
 * user, and the fix. (Every way of cutting an impostor's bytes: test/integration/impostor.test.ts.)
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../lib/config';
import { environmentCredentials } from '../../lib/postgres/credentials';
import { Database } from '../../lib/postgres/database';
import { diagnoseDatabaseFailure, publicReason } from '../../lib/postgres/diagnose-failure';
import { classifyFailure, isDeploymentFailure } from '../../lib/postgres/failure-kind';
import { selfSignedCertificate } from '../helpers/certificates';
import {
  CLEARTEXT_REQUEST,
  frontendMessages,
  impostor,
  MD5_REQUEST,
  SASL_REQUEST,
  type Script,
} from '../helpers/impostor';

const PASSWORD = 'the-password-Xy9';
let dir: string;
let cert: { key: string; cert: string };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'trace-auth-'));
  selfSignedCertificate(dir, 'fake');
  cert = { key: readFileSync(join(dir, 'fake.key'), 'utf8'), cert: readFileSync(join(dir, 'fake.crt'), 'utf8') };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Ssl = 'disable' | 'require' | 'verify-full';
const REQUESTS = { cleartext: CLEARTEXT_REQUEST, md5: MD5_REQUEST, scram: SASL_REQUEST };
const scramWith =
  (iterations: number): Script['serverFirst'] =>
  (nonce) =>
    `r=${nonce}x,s=c2FsdA==,i=${iterations}`;

/** One pass of a query through Database against an impostor; the raw error, and what the impostor received. */
async function login(ssl: Ssl, askFor: keyof typeof REQUESTS, env: Record<string, string> = {}, iterations = 4096) {
  const server = await impostor({ startup: REQUESTS[askFor], serverFirst: scramWith(iterations), tls: cert });
  const config = loadConfig({
    DB_HOST: 'localhost',
    DB_PORT: String(server.port),
    DB_NAME: 'trace',
    DB_USER: 'trace',
    DB_PASSWORD: PASSWORD,
    DB_SSL: ssl,
    DB_SSL_CA: join(dir, 'fake.crt'),
    ...env,
  });
  const database = new Database(config.db, environmentCredentials(config.db), { fetch_types: false });
  try {
    const error = await database
      .run((sql) => sql`select 1`, Date.now() + 5_000)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    await new Promise((resolve) => setTimeout(resolve, 20));
    const messages = frontendMessages(Buffer.concat(server.received)).map((m) => m.toString('latin1'));
    return { error, messages, port: server.port };
  } finally {
    await database.end().catch(() => {});
    await server.close();
  }
}

const code = (error: unknown) => (error as { code?: string } | undefined)?.code;

describe('a server that asks for the password in a form that reveals it', () => {
  it.each([
    ['disable', 'cleartext'],
    ['disable', 'md5'],
    ['require', 'cleartext'],
    ['require', 'md5'],
  ] as const)('should not send it with DB_SSL=%s when asked for %s, and say which server asked', async (ssl, ask) => {
    const { error, messages, port } = await login(ssl, ask);
    expect(code(error)).toBe('AUTH_METHOD_REFUSED');
    expect(messages).toEqual([]); // no PasswordMessage at all: neither the password nor its hash
    const diagnosed = diagnoseDatabaseFailure(error) as Error & { code: string };
    expect(diagnosed.code).toBe('DB_INSECURE_AUTH');
    expect(diagnosed.message).toContain(`user "trace" on database "trace" at localhost:${port}`);
    expect(diagnosed.message).toContain(ask === 'md5' ? 'as an MD5 hash' : 'in cleartext');
    expect(diagnosed.message).toContain('DB_SSL=verify-full');
    // A setup mistake: not retried in process, holds the invocation, not blamed on a record.
    expect(classifyFailure(error)).toBe('fatal');
    expect(isDeploymentFailure(diagnosed)).toBe(true);
    expect(publicReason(error)).not.toContain('localhost');
  });

  it.each(['cleartext', 'md5'] as const)('should answer %s to a server verified with verify-full', async (ask) => {
    const { messages } = await login('verify-full', ask);
    expect(messages[0]?.slice(0, 1)).toBe('p');
    if (ask === 'cleartext') expect(messages[0]).toContain(PASSWORD);
    else expect(messages[0]).toMatch(/md5[0-9a-f]{32}/);
  });
});

describe('SCRAM-SHA-256, which never reveals the password', () => {
  it.each(['disable', 'require', 'verify-full'] as const)('should go ahead with DB_SSL=%s', async (ssl) => {
    const { messages } = await login(ssl, 'scram');
    expect(messages).toHaveLength(2);
    expect(messages[0]).toContain('SCRAM-SHA-256');
    expect(messages[1]).toMatch(/c=[^,]+,r=[^,]+,p=/); // the client's proof
    expect(messages.join('')).not.toContain(PASSWORD);
  });

  it.each([
    ['disable', 1],
    ['require', 4095],
    ['verify-full', 1_000_001],
    ['require', 2_000_000_000],
  ] as const)('should not compute a proof with DB_SSL=%s and i=%i, and say so', async (ssl, iterations) => {
    const { error, messages } = await login(ssl, 'scram', {}, iterations);
    expect(messages).toHaveLength(1); // the client's first message only: no proof
    const diagnosed = diagnoseDatabaseFailure(error) as Error & { code: string };
    expect(diagnosed.code).toBe('DB_INSECURE_AUTH');
    expect(diagnosed.message).toContain(`SCRAM proof with ${iterations} iterations`);
    expect(diagnosed.message).toMatch(/at localhost:\d+/);
  });
});

describe('channel binding', () => {
  it('should refuse a login that cannot be bound when DB_CHANNEL_BINDING=require, and name the fix', async () => {
    // The impostor offers SCRAM-SHA-256 only, not SCRAM-SHA-256-PLUS.
    const { error, messages } = await login('require', 'scram', { DB_CHANNEL_BINDING: 'require' });
    expect(messages).toEqual([]);
    const diagnosed = diagnoseDatabaseFailure(error) as Error & { code: string };
    expect(diagnosed.code).toBe('DB_CHANNEL_BINDING');
    expect(diagnosed.message).toContain('DB_CHANNEL_BINDING=prefer');
    expect(isDeploymentFailure(diagnosed)).toBe(true);
  });

  it('should refuse DB_CHANNEL_BINDING=require and DB_SSL_NEGOTIATION=direct without TLS at cold start', () => {
    expect(() => loadConfig({ DB_SSL: 'disable', DB_CHANNEL_BINDING: 'require' })).toThrow(/DB_CHANNEL_BINDING/);
    expect(() => loadConfig({ DB_SSL: 'disable', DB_SSL_NEGOTIATION: 'direct' })).toThrow(/DB_SSL_NEGOTIATION/);
    expect(loadConfig({ DB_SSL: 'require', DB_CHANNEL_BINDING: 'require' }).db.channelBinding).toBe('require');
    expect(loadConfig({}).db).toMatchObject({ channelBinding: 'prefer', sslNegotiation: 'postgres' });
  });
});

describe('errors that name the place', () => {
  async function failure(env: Record<string, string>) {
    const server = inject('database');
    const config = loadConfig({ ...server, DB_SSL: 'disable', ...env });
    const database = new Database(config.db, environmentCredentials(config.db));
    try {
      return await database
        .run((sql) => sql`select 1`, Date.now() + 5_000)
        .then(
          () => undefined,
          (e: unknown) => e,
        );
    } finally {
      await database.end().catch(() => {});
    }
  }

  it('should name host, port, database and user when the login is rejected, and never the password', async () => {
    const server = inject('database');
    const error = await failure({ DB_PASSWORD: 'wrong-password-Q7' });
    expect(code(error)).toBe('28P01'); // the SQLSTATE stays: the consumer fetches a rotated secret on it
    const diagnosed = diagnoseDatabaseFailure(error) as Error & { code: string };
    expect(diagnosed.code).toBe('DB_LOGIN_REJECTED');
    expect(diagnosed.message).toContain(
      `user "${server.DB_USER}" on database "${server.DB_NAME}" at ${server.DB_HOST}:${server.DB_PORT}`,
    );
    expect(diagnosed.message).not.toContain('wrong-password-Q7');
    expect(JSON.stringify(error)).not.toContain('wrong-password-Q7');
    expect(publicReason(error)).not.toContain(server.DB_HOST);
  });

  it('should name the place of a database that does not exist and of a server that does not answer', async () => {
    const server = inject('database');
    const notFound = diagnoseDatabaseFailure(await failure({ DB_NAME: 'no_such_db' })) as Error & { code: string };
    expect(notFound.code).toBe('DB_NOT_FOUND');
    expect(notFound.message).toContain(`database "no_such_db" at ${server.DB_HOST}:${server.DB_PORT}`);

    const closed = await impostor({ startup: SASL_REQUEST });
    await closed.close(); // nothing listens on its port any more
    const unreachable = diagnoseDatabaseFailure(await failure({ DB_PORT: String(closed.port) })) as Error & {
      code: string;
    };
    expect(unreachable.code).toBe('DB_UNREACHABLE');
    expect(unreachable.message).toContain(`at ${server.DB_HOST}:${closed.port}`);
  });
});
