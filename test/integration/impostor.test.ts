/**
 * An impostor on a connection whose server is not verified (DB_SSL=disable or require) never gets the password in
 * cleartext or as an MD5 hash, nor a SCRAM proof computed with an iteration count outside 4,096 to 1,000,000,
 * however it cuts its bytes: requests during startup, coalesced with ReadyForQuery (with notices and parameters
 * around them), and requests after startup, with every split point of the flights and generated combinations of all
 * of them. postgres.js 4's `require_auth` refuses the first two (lib/postgres/client.ts); the iteration bound is
 * ours (lib/postgres/scram-iterations.ts), since the driver has none.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config';
import { environmentCredentials } from '../../lib/postgres/credentials';
import { Database } from '../../lib/postgres/database';
import { SCRAM_ITERATIONS } from '../../lib/postgres/scram-iterations';
import { selfSignedCertificate } from '../helpers/certificates';
import {
  AUTH_OK,
  backend,
  CLEARTEXT_REQUEST,
  frontendMessages,
  impostor,
  MD5_REQUEST,
  NOTICE,
  READY,
  SASL_REQUEST,
  type Script,
} from '../helpers/impostor';

const PASSWORD = 'the-password-Xy9';
// LONG_TESTS=1 (set by .ci/run) runs five times as many generated cases.
const runs = (n: number) => (process.env.LONG_TESTS === '1' ? n * 5 : n);
let cert: { key: string; cert: string };
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'trace-impostor-'));
  selfSignedCertificate(dir, 'fake');
  cert = { key: readFileSync(join(dir, 'fake.key'), 'utf8'), cert: readFileSync(join(dir, 'fake.crt'), 'utf8') };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Ssl = 'disable' | 'require';
type Request = 'cleartext' | 'md5' | 'sasl';
const REQUESTS: Record<Request, Buffer> = { cleartext: CLEARTEXT_REQUEST, md5: MD5_REQUEST, sasl: SASL_REQUEST };
const PARAMETER = backend('S', 'application_name\u0000x\u0000');

/** What the client sent one impostor, by kind. */
interface Given {
  /** A PasswordMessage: the password in cleartext or its MD5 hash. */
  password: boolean;
  /** A SCRAM client-final-message, which carries a proof. */
  proof: boolean;
  /** The password's bytes anywhere. */
  plain: boolean;
}

function given(received: Buffer[]): Given {
  const messages = received.flatMap((r) => frontendMessages(r)).filter((m) => m[0] === 0x70); // 'p'
  const body = (m: Buffer) => m.toString('latin1', 5);
  const isSaslStart = (m: Buffer) => body(m).startsWith('SCRAM-SHA-256');
  const isSaslFinal = (m: Buffer) => /^c=[^,]*,r=[^,]*,p=/.test(body(m));
  return {
    password: messages.some((m) => !isSaslStart(m) && !isSaslFinal(m)),
    proof: messages.some(isSaslFinal),
    plain: received.some((r) => r.includes(PASSWORD)),
  };
}

/** Runs one query against the impostor with `ssl`; returns what the client gave it and how many connections. */
async function tryLogin(ssl: Ssl, script: Script): Promise<Given & { connections: number; error: unknown }> {
  const server = await impostor({ ...script, tls: cert });
  const config = loadConfig({
    DB_HOST: '127.0.0.1',
    DB_PORT: String(server.port),
    DB_NAME: 'trace',
    DB_USER: 'trace',
    DB_PASSWORD: PASSWORD,
    DB_SSL: ssl,
    DB_CONNECT_TIMEOUT: '3',
  });
  // As the consumer connects: through Database, one pass under a deadline.
  const database = new Database(config.db, environmentCredentials(config.db), { fetch_types: false });
  try {
    const error = await database
      .run((sql) => sql`select 1`, Date.now() + 4_000)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    // What a leaking client would still send after the query settled (an answer to a late request).
    await new Promise((resolve) => setTimeout(resolve, 20));
    return { ...given(server.received), connections: server.connections(), error };
  } finally {
    await database.end().catch(() => {});
    await server.close();
  }
}

/** How postgres.js reads the iteration count of a server-first-message: the value of the last `i=` attribute. */
function driverIterations(serverFirst: string): number {
  const attributes = serverFirst.split(',').reduce<Record<string, string>>((acc, x) => {
    acc[x[0] ?? ''] = x.slice(2);
    return acc;
  }, {});
  return Number(attributes.i);
}
const withinBound = (n: number) => n >= SCRAM_ITERATIONS.min && n <= SCRAM_ITERATIONS.max;

/** The scripts, by the shape of the attempt. */
const shapes = {
  /** Asks for `request` as the answer to the startup message, after `before` (notices, parameters). */
  inStartup: (request: 'cleartext' | 'md5', before: Buffer[] = []): Script => ({
    startup: Buffer.concat([...before, REQUESTS[request]]),
  }),
  /** A SCRAM exchange whose server-first-message names `iterations` (one or more `i=` attributes). */
  scram: (iterations: string[], before: Buffer[] = []): Script => ({
    startup: Buffer.concat([...before, SASL_REQUEST]),
    serverFirst: (nonce) => [`r=${nonce}srv`, 's=c2FsdHNhbHRzYWx0', ...iterations.map((i) => `i=${i}`)].join(','),
  }),
  /** Lets the client in without authentication, then asks for `request` in the same flight, after `between`. */
  coalesced: (request: Request, between: Buffer[] = []): Script => ({
    startup: Buffer.concat([AUTH_OK, READY, ...between, REQUESTS[request]]),
  }),
  /** Lets the client in, then asks for `request` in answer to its first query. */
  afterQuery: (request: Request, before: Buffer[] = []): Script => ({
    startup: Buffer.concat([AUTH_OK, READY]),
    afterQuery: Buffer.concat([...before, REQUESTS[request]]),
  }),
};

/** Runs `scripts` a few at a time. */
async function all<T>(items: T[], run: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += 8) await Promise.all(items.slice(i, i + 8).map(run));
}

const splitsOf = (length: number) => Array.from({ length: length - 1 }, (_, i) => i + 1);

describe('an impostor on an unverified connection, every split point', () => {
  it.each(['disable', 'require'] as const)(
    'should not get the password with DB_SSL=%s when it asks in cleartext coalesced with ReadyForQuery and a ' +
      'notice, cut at any byte',
    async (ssl) => {
      const script = shapes.coalesced('cleartext', [NOTICE]);
      await all(splitsOf(script.startup.length), async (at) => {
        const result = await tryLogin(ssl, { ...script, splits: { startup: [at] } });
        expect({ at, ...result, error: undefined }).toMatchObject({ at, password: false, plain: false });
      });
    },
    120_000,
  );

  it.each(['cleartext', 'md5'] as const)(
    'should not get the password when it asks for %s during startup after a notice, cut at any byte',
    async (request) => {
      const script = shapes.inStartup(request, [NOTICE, PARAMETER]);
      await all(splitsOf(script.startup.length), async (at) => {
        const result = await tryLogin('disable', { ...script, splits: { startup: [at] } });
        expect({ at, password: result.password, plain: result.plain }).toEqual({ at, password: false, plain: false });
        expect((result.error as { code?: string }).code).toBe('AUTH_METHOD_REFUSED');
      });
    },
    120_000,
  );

  it('should not get a proof for i=4096,i=4000000 (the driver uses the last)', async () => {
    const result = await tryLogin('require', shapes.scram(['4096', '4000000']));
    expect({ proof: result.proof, code: (result.error as { code?: string }).code }).toEqual({
      proof: false,
      code: 'SCRAM_ITERATIONS_REFUSED',
    });
  });

  it('should not get a proof for i=4096,i=1, cut at any byte', async () => {
    const script = shapes.scram(['4096', '1']);
    const length = 5 + 4 + script.serverFirst!('x'.repeat(24)).length; // the client's nonce: 24 base64 characters
    await all(splitsOf(length), async (at) => {
      const result = await tryLogin('require', { ...script, splits: { serverFirst: [at] } });
      expect({ at, proof: result.proof, password: result.password }).toEqual({ at, proof: false, password: false });
      expect((result.error as { code?: string }).code).toBe('SCRAM_ITERATIONS_REFUSED');
    });
  }, 120_000);
});

describe('an impostor on an unverified connection, generated combinations', () => {
  const noise = fc.array(fc.constantFrom(NOTICE, PARAMETER), { maxLength: 3 });
  const iteration = fc.oneof(
    fc.constantFrom('1', '4095', '4096', '100000', '1000000', '1000001', '4000000', '2147483647', 'x', ''),
    fc.integer({ min: 1, max: 2_000_000 }).map(String),
  );
  const script = fc.oneof(
    fc.tuple(fc.constantFrom<'cleartext' | 'md5'>('cleartext', 'md5'), noise).map(([r, n]) => shapes.inStartup(r, n)),
    fc.tuple(fc.array(iteration, { minLength: 1, maxLength: 3 }), noise).map(([i, n]) => shapes.scram(i, n)),
    fc.tuple(fc.constantFrom<Request>('cleartext', 'md5', 'sasl'), noise).map(([r, n]) => shapes.coalesced(r, n)),
    fc.tuple(fc.constantFrom<Request>('cleartext', 'md5', 'sasl'), noise).map(([r, n]) => shapes.afterQuery(r, n)),
  );
  const splits = fc.array(fc.integer({ min: 1, max: 160 }), { maxLength: 6 });

  it('should never give away the password or a proof past the bound, and compute one within it', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<Ssl>('disable', 'require'),
        script,
        splits,
        splits,
        splits,
        async (ssl, s, startup, serverFirst, afterQuery) => {
          const result = await tryLogin(ssl, { ...s, splits: { startup, serverFirst, afterQuery } });
          expect(result.password).toBe(false);
          expect(result.plain).toBe(false);
          // One connection, and at most one reconnect once an established one is lost (Database.run).
          expect(result.connections).toBeLessThanOrEqual(2);
          if (s.serverFirst) {
            const allowed = withinBound(driverIterations(s.serverFirst('n')));
            // Within the bound the exchange goes on (SCRAM reveals nothing); past it no proof is computed.
            expect(result.proof).toBe(allowed);
          } else expect(result.proof).toBe(false);
        },
      ),
      { numRuns: runs(40) },
    );
  }, 300_000);
});
