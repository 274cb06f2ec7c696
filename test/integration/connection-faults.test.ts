/**
 * Servers that accept TCP but never let a session start: one that closes after the startup message, one that never
 * answers it, one that answers 'N' to the SSLRequest under DB_SSL=require. Each is a transient failure, retried with
 * backoff, named with host and port, over within the deadline, with one connection per attempt (MAX_RETRIES + 1 in
 * all), for the consumer's way to the database (runWithRetry) and for health's readiness check alike. postgres.js 4
 * would reconnect to the first one by itself for as long as DB_CONNECT_TIMEOUT allows (lib/postgres/connect-failures).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config';
import { checkReadiness } from '../../lib/health/readiness';
import { environmentCredentials } from '../../lib/postgres/credentials';
import { Database } from '../../lib/postgres/database';
import { diagnoseDatabaseFailure } from '../../lib/postgres/diagnose-failure';
import { classifyFailure } from '../../lib/postgres/failure-kind';
import { withRetry } from '../../lib/postgres/retry';

type Fault = 'closes after startup' | 'never answers' | "answers 'N' to TLS" | 'has too many clients';

interface FaultServer {
  port: number;
  connections: () => number;
  close: () => Promise<void>;
}

const servers: FaultServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function faultServer(fault: Fault): Promise<FaultServer> {
  let opened = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    opened++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.once('data', (first: Buffer) => {
      const sslRequest = first.length >= 8 && first.readUInt32BE(4) === 80877103;
      if (fault === "answers 'N' to TLS" && sslRequest) socket.write('N');
      else if (fault === 'closes after startup') socket.end();
      else if (fault === 'has too many clients') socket.end(TOO_MANY_CLIENTS);
      // never answers: reads and says nothing
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address !== 'object') throw new Error('no port');
  const handle = {
    port: address.port,
    connections: () => opened,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  servers.push(handle);
  return handle;
}

const FAULTS: Fault[] = ['closes after startup', 'never answers', "answers 'N' to TLS", 'has too many clients'];
const EXPECTED_CODE: Record<Fault, string> = {
  'closes after startup': 'DB_STARTUP_FAILED',
  'never answers': 'DB_STARTUP_FAILED',
  "answers 'N' to TLS": 'DB_TLS_UNAVAILABLE',
  'has too many clients': 'DB_STARTUP_FAILED',
};
/** PostgreSQL's answer to the startup message when max_connections is reached (SQLSTATE 53300), then it closes. */
const TOO_MANY_CLIENTS = (() => {
  const body = Buffer.from('SFATAL\u0000VFATAL\u0000C53300\u0000Msorry, too many clients already\u0000\u0000');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length + 4);
  return Buffer.concat([Buffer.from('E'), length, body]);
})();

function databaseFor(server: FaultServer, fault: Fault) {
  const config = loadConfig({
    DB_HOST: '127.0.0.1',
    DB_PORT: String(server.port),
    DB_SSL: fault === "answers 'N' to TLS" ? 'require' : 'disable',
    DB_CONNECT_TIMEOUT: '1',
  });
  return new Database(config.db, environmentCredentials(config.db));
}

describe('a server that never lets the session start', () => {
  it.each(FAULTS)(
    'should fail fast when it %s, retried with backoff, one connection per attempt',
    async (fault) => {
      const server = await faultServer(fault);
      const database = databaseFor(server, fault);
      const maxRetries = 3;
      const started = Date.now();
      const deadline = started + 12_000;
      const retries: number[] = [];
      try {
        // As the consumer's statements run: Database.run's passes under withRetry's backoff and deadline.
        const error = await withRetry(() => database.run((sql) => sql`select 1`, deadline), {
          maxRetries,
          backoffMs: 100,
          deadline,
          onRetry: (_e, attempt) => retries.push(attempt),
        }).then(
          () => undefined,
          (e: unknown) => e,
        );
        const took = Date.now() - started;
        expect(classifyFailure(error)).toBe('transient');
        expect(retries).toEqual([1, 2, 3]); // every retry spent, each after a backoff
        expect(server.connections()).toBe(maxRetries + 1);
        expect(took).toBeLessThan(deadline - started);
        // Fast: the refusals within a second or so of backoff; the silent server within its connect timeouts.
        expect(took).toBeLessThan(fault === 'never answers' ? 4 * 1_000 + 2_000 : 2_000);
        const diagnosed = diagnoseDatabaseFailure(error) as Error & { code: string };
        expect(diagnosed.code).toBe(EXPECTED_CODE[fault]);
        expect(diagnosed.message).toContain(`at 127.0.0.1:${server.port}`);
        expect(diagnosed.message).not.toMatch(/undefined/);
        if (fault !== "answers 'N' to TLS") expect(diagnosed.message).toContain('was reached');
      } finally {
        await database.end().catch(() => {});
      }
    },
    30_000,
  );

  it.each(FAULTS)(
    'should answer not ready in time when it %s, with one connection',
    async (fault) => {
      const server = await faultServer(fault);
      const database = databaseFor(server, fault);
      const timeoutMs = 1_500;
      const started = Date.now();
      try {
        const readiness = await checkReadiness({
          database,
          schema: 'trace',
          timeoutMs,
          resolveCredentials: async () => {},
        });
        expect(Date.now() - started).toBeLessThan(timeoutMs + 500);
        expect(readiness.status).toBe('not_ready');
        const check = readiness.checks.find((c) => c.name === 'database');
        expect(check?.ok).toBe(false);
        expect(check?.error).toBeTruthy();
        expect(server.connections()).toBe(1);
      } finally {
        await database.end().catch(() => {});
      }
    },
    30_000,
  );
});
