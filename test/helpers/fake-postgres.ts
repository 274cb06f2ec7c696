import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';

/** The authentication a fake server asks for: AuthenticationCleartextPassword (3), MD5Password (5) or SASL (10). */
export type AskFor = 'cleartext' | 'md5' | 'scram';

export interface FakePostgres {
  port: number;
  /** Every byte each connection sent after its startup message (TLS already removed), by connection. */
  received: Buffer[];
  /** Whether each connection asked for TLS, by connection. */
  askedForTls: boolean[];
  close(): Promise<void>;
}

const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
/** A backend message: type, length (itself included), body. */
const message = (type: string, body: Buffer) => Buffer.concat([Buffer.from(type), int32(body.length + 4), body]);
const authRequest = (code: number, rest = Buffer.alloc(0)) => message('R', Buffer.concat([int32(code), rest]));
const errorResponse = (code: string, text: string) =>
  message('E', Buffer.from(`SERROR\0VERROR\0C${code}\0M${text}\0\0`));

/**
 * A server that speaks just enough of the PostgreSQL protocol to ask for a password, as an impostor at the
 * database's address would: it answers an SSLRequest with 'S' (and TLS with `tls`'s certificate) or 'N', reads the
 * startup message, asks for `askFor`, follows a SCRAM exchange up to the client's proof, then rejects the login
 * with 28P01. Everything the client sends is kept, to check what it gave away.
 */
export async function fakePostgres(
  askFor: AskFor,
  tls?: { key: string; cert: string },
  /** The SCRAM iteration count the server names (PostgreSQL's default: 4096). */
  scramIterations = 4096,
): Promise<FakePostgres> {
  const received: Buffer[] = [];
  const askedForTls: boolean[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((raw) => {
    sockets.add(raw);
    raw.on('close', () => sockets.delete(raw));
    raw.on('error', () => {});
    const index = received.push(Buffer.alloc(0)) - 1;
    askedForTls[index] = false;
    let socket: Socket = raw;
    let buffered = Buffer.alloc(0);
    let phase: 'startup' | 'auth' = 'startup';
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (phase === 'startup') {
        if (buffered.length < 8) return;
        const length = buffered.readUInt32BE(0);
        if (buffered.length < length) return;
        const code = buffered.readUInt32BE(4);
        buffered = buffered.subarray(length);
        if (code === 80877103) {
          askedForTls[index] = true;
          if (!tls) return void raw.write('N');
          raw.removeListener('data', onData);
          raw.write('S');
          socket = new TLSSocket(raw, { isServer: true, key: tls.key, cert: tls.cert });
          socket.on('error', () => {});
          socket.on('data', onData);
          return;
        }
        phase = 'auth';
        socket.write(
          askFor === 'cleartext'
            ? authRequest(3)
            : askFor === 'md5'
              ? authRequest(5, randomBytes(4))
              : authRequest(10, Buffer.from('SCRAM-SHA-256\0\0')),
        );
        return;
      }
      received[index] = Buffer.concat([received[index]!, chunk]);
      // Client messages: type, length. SCRAM: first the initial response, then the proof.
      const messages = splitMessages(received[index]!);
      if (askFor === 'scram' && messages.length === 1) {
        const clientFirst = messages[0]!.toString('utf8');
        const nonce = /r=([^,\0]+)/.exec(clientFirst)?.[1] ?? '';
        const salt = randomBytes(16).toString('base64');
        const serverFirst = `r=${nonce}${randomBytes(9).toString('base64')},s=${salt},i=${scramIterations}`;
        socket.write(authRequest(11, Buffer.from(serverFirst)));
        return;
      }
      if (messages.length > 0) socket.end(errorResponse('28P01', 'password authentication failed for user "trace"'));
    };
    raw.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address !== 'object') throw new Error('fake server has no port');
  return {
    port: address.port,
    received,
    askedForTls,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The whole messages at the start of `data` (client messages: one type byte, then the length). */
export function splitMessages(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (data.length - at >= 5) {
    const end = at + 1 + data.readUInt32BE(at + 1);
    if (end > data.length) break;
    out.push(data.subarray(at, end));
    at = end;
  }
  return out;
}
