/**
 * An impostor that skips authentication: it answers the startup message with AuthenticationOk and ReadyForQuery (as a
 * "trust" server would), and asks for the password only when the first query arrives. postgres.js answers an
 * authentication request whenever one comes, so a guard that watched the startup alone handed the password over
 * (found by the hostile review of issue 21). PostgreSQL never asks after startup: the request is refused, however
 * the bytes are split.
 */
import { createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config';
import { createSql } from '../../lib/postgres/client';
import { splitMessages } from '../helpers/fake-postgres';

const PASSWORD = 'the-password-Xy9';
const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const message = (type: string, body: Buffer) => Buffer.concat([Buffer.from(type), int32(body.length + 4), body]);
const READY = Buffer.concat([
  message('R', int32(0)),
  message('S', Buffer.from('server_version\u000016.0\u0000')),
  message('Z', Buffer.from('I')),
]);

/** Writes `data` one byte per TCP write, with a pause, so that the client receives it in many chunks. */
async function trickle(socket: Socket, data: Buffer): Promise<void> {
  for (const byte of data) {
    socket.write(Buffer.from([byte]));
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

interface Impostor {
  port: number;
  received: () => Buffer;
  close: () => Promise<void>;
}

const servers: Impostor[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** Startup answered "ready"; the first bytes after it (the first query) are answered with `request`. */
async function impostor(request: Buffer, split: boolean): Promise<Impostor> {
  let received = Buffer.alloc(0);
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    let phase: 'startup' | 'ready' | 'asked' = 'startup';
    socket.on('data', (chunk: Buffer) => {
      if (phase === 'startup') {
        phase = 'ready';
        void (split ? trickle(socket, READY) : Promise.resolve(socket.write(READY)));
        return;
      }
      received = Buffer.concat([received, chunk]);
      if (phase === 'ready') {
        phase = 'asked';
        void (split ? trickle(socket, request) : Promise.resolve(socket.write(request)));
      } else {
        socket.destroy(); // it has what it asked for
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address !== 'object') throw new Error('no port');
  const s: Impostor = {
    port: address.port,
    received: () => received,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  servers.push(s);
  return s;
}

describe('a server that asks for the password after ReadyForQuery', () => {
  it.each([
    ['cleartext', false],
    ['cleartext', true],
    ['md5', false],
    ['md5', true],
  ] as const)(
    'should not send it when asked for %s (split byte by byte: %s), and fail the query',
    async (kind, split) => {
      const request =
        kind === 'md5' ? message('R', Buffer.concat([int32(5), Buffer.from([1, 2, 3, 4])])) : message('R', int32(3));
      const server = await impostor(request, split);
      const config = loadConfig({
        DB_HOST: '127.0.0.1',
        DB_PORT: String(server.port),
        DB_NAME: 'trace',
        DB_USER: 'trace',
        DB_PASSWORD: PASSWORD,
        DB_SSL: 'disable',
      });
      const sql = createSql(config.db, { max: 1, fetch_types: false, connect_timeout: 5 });
      try {
        const error = await sql`select 1`.then(
          () => undefined,
          (e: unknown) => e,
        );
        expect((error as { code?: string } | undefined)?.code).toBe('DB_INSECURE_AUTH');
        expect(server.received().length).toBeGreaterThan(0); // the query reached the impostor: it was "ready"
        expect(server.received().includes(PASSWORD)).toBe(false);
        // no PasswordMessage
        expect(splitMessages(server.received()).map((m) => String.fromCharCode(m[0]!))).not.toContain('p');
      } finally {
        await sql.end({ timeout: 0 });
      }
    },
  );
});
