import { createServer, type Server, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';

/*
 * A server at the database's address that speaks just enough of PostgreSQL's protocol to try to get the password:
 * an impostor, or a man in the middle of an unverified connection. It follows a script of "flights" (the bytes it
 * sends at one turn of the conversation), writes each flight in the chunks the script cuts it into, and keeps every
 * byte the client sent, TLS removed, so that a test can check what the client gave away.
 */

const int32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
/** A backend message: type, length (itself included), body. */
export const backend = (type: string, body: Buffer | string) => {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  return Buffer.concat([Buffer.from(type), int32(b.length + 4), b]);
};
const authRequest = (code: number, rest: Buffer | string = Buffer.alloc(0)) =>
  backend('R', Buffer.concat([int32(code), Buffer.isBuffer(rest) ? rest : Buffer.from(rest)]));

export const AUTH_OK = authRequest(0);
export const CLEARTEXT_REQUEST = authRequest(3);
export const MD5_REQUEST = authRequest(5, Buffer.from([1, 2, 3, 4]));
export const SASL_REQUEST = authRequest(10, 'SCRAM-SHA-256\0\0');
export const READY = Buffer.concat([
  backend('S', 'server_version\u000017.0\u0000'),
  backend('K', Buffer.concat([int32(4242), int32(77)])),
  backend('Z', 'I'),
]);
export const NOTICE = backend('N', 'SNOTICE\u0000VNOTICE\u0000C00000\u0000Mhello from the impostor\u0000\u0000');
/** What the server does at each turn after the startup message. */
export interface Script {
  /** Sent in answer to the startup message. */
  startup: Buffer;
  /**
   * Sent in answer to the client's SASLInitialResponse: its server-first-message, built from the client's nonce.
   * Left out, a SCRAM start is not continued.
   */
  serverFirst?: (clientNonce: string) => string;
  /** Sent in answer to whatever the client sends next once the startup flight is out (its first query). */
  afterQuery?: Buffer;
  /** Where each flight is cut into separate writes: byte offsets into the flight, in any order. */
  splits?: { startup?: number[]; serverFirst?: number[]; afterQuery?: number[] };
  /** Answer an SSLRequest with 'S' and TLS with this certificate; without, answer 'N'. */
  tls?: { key: string; cert: string };
}

export interface Impostor {
  port: number;
  /** Every byte the client sent after its startup message, TLS removed, one Buffer per connection. */
  received: Buffer[];
  /** How many connections the client opened. */
  connections(): number;
  close(): Promise<void>;
}

/** The frontend messages at the start of `data` (type byte, length). */
export function frontendMessages(data: Buffer): Buffer[] {
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

/** `data` cut at `splits` (offsets, deduplicated, sorted, within the data). */
function cut(data: Buffer, splits: number[] = []): Buffer[] {
  const points = [...new Set(splits.filter((s) => s > 0 && s < data.length))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let from = 0;
  for (const p of [...points, data.length]) {
    parts.push(data.subarray(from, p));
    from = p;
  }
  return parts;
}

/** Writes each part separately, with a pause between, so that the client reads them as separate chunks. */
async function writeInParts(socket: Socket, data: Buffer, splits: number[] | undefined): Promise<void> {
  const parts = cut(data, splits);
  for (const [i, part] of parts.entries()) {
    if (socket.destroyed) return;
    socket.write(part);
    if (i < parts.length - 1) await new Promise((resolve) => setTimeout(resolve, 3));
  }
}

/** How long the server keeps a connection open after its last flight, to catch what the client would still send. */
const LINGER_MS = 40;

export async function impostor(script: Script): Promise<Impostor> {
  const received: Buffer[] = [];
  const sockets = new Set<Socket>();
  let opened = 0;
  const server: Server = createServer((raw) => {
    opened++;
    sockets.add(raw);
    raw.setNoDelay(true);
    raw.on('close', () => sockets.delete(raw));
    raw.on('error', () => {});
    const index = received.push(Buffer.alloc(0)) - 1;
    let socket: Socket = raw;
    let buffered = Buffer.alloc(0);
    let turn: 'startup' | 'auth' | 'query' | 'done' = 'startup';
    const linger = () => {
      turn = 'done';
      setTimeout(() => socket.destroy(), LINGER_MS);
    };
    const onData = (chunk: Buffer) => {
      if (turn === 'startup') {
        buffered = Buffer.concat([buffered, chunk]);
        if (buffered.length < 8 || buffered.length < buffered.readUInt32BE(0)) return;
        const code = buffered.readUInt32BE(4);
        buffered = buffered.subarray(buffered.readUInt32BE(0));
        if (code === 80877103) {
          if (!script.tls) return void raw.write('N');
          raw.removeListener('data', onData);
          raw.write('S');
          socket = new TLSSocket(raw, { isServer: true, key: script.tls.key, cert: script.tls.cert });
          socket.setNoDelay?.(true);
          socket.on('error', () => {});
          socket.on('data', onData);
          return;
        }
        turn = 'auth';
        void writeInParts(socket, script.startup, script.splits?.startup).then(() => {
          // A flight that ends in ReadyForQuery leaves the next turn to the client's first query.
          if (!script.startup.includes(backend('Z', 'I'))) return;
          turn = 'query';
          if (!script.afterQuery) linger();
        });
        return;
      }
      received[index] = Buffer.concat([received[index]!, chunk]);
      if (turn === 'auth') {
        const [first] = frontendMessages(received[index]!);
        if (first && first[0] === 0x70 && script.serverFirst) {
          const nonce = /r=([^,\0]+)/.exec(first.toString('latin1'))?.[1] ?? '';
          turn = 'done';
          const message = authRequest(11, script.serverFirst(nonce));
          void writeInParts(socket, message, script.splits?.serverFirst).then(linger);
        } else if (first) linger();
        return;
      }
      if (turn === 'query' && script.afterQuery) {
        turn = 'done';
        void writeInParts(socket, script.afterQuery, script.splits?.afterQuery).then(linger);
      }
    };
    raw.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address !== 'object') throw new Error('impostor has no port');
  return {
    port: address.port,
    received,
    connections: () => opened,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
