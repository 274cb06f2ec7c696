import { connect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import postgres from 'postgres';
import { DatabaseInsecureAuthError, DatabaseTlsUnavailableError, type DatabaseTarget } from '../errors';

/**
 * How the connection is encrypted. TLS is negotiated here rather than by postgres.js so that the startup guard knows
 * whether the server it talks to was verified.
 */
export type TlsSettings = { mode: 'disable' } | { mode: 'require' } | { mode: 'verify-full'; ca: string };

/**
 * The socket of each connection postgres.js opens (its `socket` option): TCP with Nagle's algorithm off, TLS when
 * asked, and the startup guard. Nagle: libpq and node-postgres turn it off; postgres.js leaves it on, and then a
 * COPY's small trailing writes wait for the server's delayed acknowledgement (about 40 ms each, 180 ms a batch). The
 * connect timeout covers TCP and TLS, because postgres.js starts its own timer only once a socket exists.
 */
export function databaseSocket(
  target: DatabaseTarget,
  tls: TlsSettings,
  connectTimeoutSeconds: number,
): () => Promise<Socket> {
  return () =>
    new Promise<Socket>((resolve, reject) => {
      const tcp = connect({ host: target.host, port: target.port, noDelay: true });
      let current: Socket = tcp;
      const fail = (error: Error) => {
        clearTimeout(timer);
        current.destroy();
        reject(withTarget(error, target));
      };
      const timer = setTimeout(() => {
        fail(
          Object.assign(new Error(`write CONNECT_TIMEOUT ${target.host}:${target.port}`), { code: 'CONNECT_TIMEOUT' }),
        );
      }, connectTimeoutSeconds * 1000);
      const ready = (socket: Socket, verified: boolean) => {
        clearTimeout(timer);
        guardStartup(socket, target, tls.mode, verified);
        resolve(socket);
      };
      tcp.once('error', fail);
      tcp.once('connect', () => {
        if (tls.mode === 'disable') return ready(tcp, false);
        tcp.write(SSL_REQUEST);
        tcp.once('data', (answer: Buffer) => {
          if (answer[0] !== S) return fail(new DatabaseTlsUnavailableError(target, tls.mode));
          // Bytes after the 'S' came before any encryption: a man in the middle could have injected them (the
          // injection libpq fixed as CVE-2021-23222). Nothing may follow until the TLS handshake.
          if (answer.length > 1)
            return fail(
              new Error(`the server at ${target.host}:${target.port} sent unencrypted data after accepting TLS`),
            );
          const secure = tlsConnect({ socket: tcp, ...tlsOptions(target, tls) });
          current = secure;
          secure.once('error', fail);
          secure.once('secureConnect', () => ready(secure, tls.mode === 'verify-full'));
        });
      });
    });
}

/** SSLRequest: length 8, code 80877103. The server answers one byte, 'S' (TLS follows) or 'N'. */
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);
const S = 0x53;

function tlsOptions(target: DatabaseTarget, tls: TlsSettings): ConnectionOptions {
  // The host name is sent for SNI and checked against the certificate; an IP address is checked against its IP SANs.
  const name = isIP(target.host) ? { host: target.host } : { host: target.host, servername: target.host };
  if (tls.mode === 'verify-full') return { ...name, ca: tls.ca, rejectUnauthorized: true };
  return { ...name, rejectUnauthorized: false }; // require: encrypted, certificate not checked
}

/** Backend message types and authentication requests the guard looks at. */
const AUTHENTICATION = 0x52; // 'R'
const ERROR_RESPONSE = 0x45; // 'E'
const READY_FOR_QUERY = 0x5a; // 'Z'
const AUTH_CLEARTEXT = 3;
const AUTH_MD5 = 5;
const AUTH_SASL_CONTINUE = 11;

/**
 * The SCRAM iteration counts an unverified server may name. Below PostgreSQL's default (4096, also RDS's) a captured
 * proof is cheap to guess from; far above it, postgres.js computes the proof synchronously for seconds to hours,
 * and no timer (the invocation's deadline among them) fires meanwhile. 1,000,000 costs about half a second.
 */
const SCRAM_ITERATIONS = { min: 4096, max: 1_000_000 } as const;

/**
 * Stands between the socket and postgres.js until the server is ready for the first query, as an override of the
 * socket's `emit('data')` that hands postgres.js whole messages only:
 *
 * - A request for the password in cleartext or as an MD5 hash, on a connection whose server was not verified
 *   (DB_SSL=disable or require), never reaches postgres.js, which would answer it: the connection is closed with
 *   DB_INSECURE_AUTH and the password is not sent. Anyone between the function and the database, or answering at its
 *   address, could ask exactly this. SCRAM-SHA-256 goes through: the server only ever receives a proof that the
 *   password cannot be recovered from without guessing it, unless the server names an iteration count outside
 *   SCRAM_ITERATIONS (a proof cheap to guess from, or one that blocks the process while it is computed).
 * - An error before the connection is ready (wrong password, unknown database, too many connections) becomes the
 *   same PostgresError postgres.js would raise, plus the target, so that the message can say which server refused
 *   whom (see lib/postgres/diagnose-failure.ts).
 *
 * Once the server sends ReadyForQuery, everything buffered goes to postgres.js. A verified server is then left alone.
 * On an unverified connection the guard keeps watching message boundaries (headers only, nothing buffered): postgres.js
 * answers an authentication request at any time, so an impostor could skip authentication ("trust"), send
 * ReadyForQuery, and ask for the cleartext password with the first query. PostgreSQL never asks after startup.
 */
function guardStartup(socket: Socket, target: DatabaseTarget, mode: TlsSettings['mode'], verified: boolean): void {
  const emit = socket.emit as (this: Socket, event: string | symbol, ...args: unknown[]) => boolean;
  let pending = Buffer.alloc(0);
  const stepAside = () => {
    Reflect.deleteProperty(socket, 'emit');
    if (!verified) watchAfterStartup(socket, target, mode);
  };
  const refuse = (error: Error) => {
    stepAside();
    socket.destroy(error);
    return true;
  };
  socket.emit = function (this: Socket, event: string | symbol, ...args: unknown[]): boolean {
    if (event !== 'data') return emit.call(this, event, ...args);
    pending = Buffer.concat([pending, args[0] as Buffer]);
    let end = 0; // end of the last whole message looked at
    while (pending.length - end >= 5) {
      const next = end + 1 + pending.readUInt32BE(end + 1);
      if (next > pending.length) break;
      const type = pending[end];
      if (type === READY_FOR_QUERY) {
        stepAside();
        return emit.call(this, 'data', pending);
      }
      if (type === AUTHENTICATION && next - end >= 9) {
        const request = pending.readUInt32BE(end + 5);
        if ((request === AUTH_CLEARTEXT || request === AUTH_MD5) && !verified) {
          return refuse(new DatabaseInsecureAuthError(target, request === AUTH_MD5 ? 'md5' : 'cleartext', mode));
        }
        if (request === AUTH_SASL_CONTINUE && !verified) {
          // server-first-message: r=<nonce>,s=<salt>,i=<iterations>
          const iterations = Number(
            /(?:^|,)i=(\d{1,12})(?:,|$)/.exec(pending.toString('latin1', end + 9, next))?.[1] ?? NaN,
          );
          if (!(iterations >= SCRAM_ITERATIONS.min && iterations <= SCRAM_ITERATIONS.max)) {
            return refuse(new DatabaseInsecureAuthError(target, 'scram-iterations', mode, iterations));
          }
        }
      } else if (type === ERROR_RESPONSE) {
        return refuse(startupError(pending.subarray(end, next), target));
      }
      end = next;
    }
    const whole = pending.subarray(0, end);
    pending = pending.subarray(end);
    return whole.length === 0 || emit.call(this, 'data', whole);
  };
}

/**
 * After startup on an unverified connection: refuses any Authentication message (a request for the password that a
 * real server never sends once ready). Follows message boundaries across chunks by their lengths, keeping at most a
 * header's 5 bytes, so the cost per chunk is one step per message.
 */
function watchAfterStartup(socket: Socket, target: DatabaseTarget, mode: TlsSettings['mode']): void {
  const emit = socket.emit as (this: Socket, event: string | symbol, ...args: unknown[]) => boolean;
  let header = Buffer.alloc(0); // the start of a message header split across chunks
  let skip = 0; // bytes left of the current message's body
  socket.emit = function (this: Socket, event: string | symbol, ...args: unknown[]): boolean {
    if (event !== 'data') return emit.call(this, event, ...args);
    const chunk = args[0] as Buffer;
    for (let i = 0; i < chunk.length; ) {
      if (skip > 0) {
        const n = Math.min(skip, chunk.length - i);
        i += n;
        skip -= n;
        continue;
      }
      const take = Math.min(5 - header.length, chunk.length - i);
      header = Buffer.concat([header, chunk.subarray(i, i + take)]);
      i += take;
      if (header.length < 5) break;
      const length = header.readUInt32BE(1);
      if (header[0] === AUTHENTICATION || length < 4) {
        Reflect.deleteProperty(socket, 'emit');
        socket.destroy(new DatabaseInsecureAuthError(target, 'cleartext', mode));
        return true;
      }
      skip = length - 4;
      header = Buffer.alloc(0);
    }
    return emit.call(this, 'data', chunk);
  };
}

/** The fields of an ErrorResponse, by the names postgres.js gives them (its PostgresError has the same). */
const FIELDS: Record<string, string> = {
  S: 'severity_local',
  V: 'severity',
  C: 'code',
  M: 'message',
  D: 'detail',
  H: 'hint',
  P: 'position',
  W: 'where',
  F: 'file',
  L: 'line',
  R: 'routine',
};

type PostgresErrorClass = new (fields: Record<string, string>) => postgres.PostgresError;

function startupError(message: Buffer, target: DatabaseTarget): Error {
  const fields: Record<string, string> = {};
  let start = 5;
  for (let i = 5; i < message.length - 1; i++) {
    if (message[i] !== 0) continue;
    const name = FIELDS[String.fromCharCode(message[start]!)];
    if (name) fields[name] = message.toString('utf8', start + 1, i);
    start = i + 1;
  }
  return withTarget(new (postgres.PostgresError as unknown as PostgresErrorClass)(fields), target);
}

/** `error` with the target it was about, as a property that is not enumerated (logs serialise errors). */
function withTarget<E extends Error>(error: E, target: DatabaseTarget): E {
  if (!('target' in error)) Object.defineProperty(error, 'target', { value: { ...target }, enumerable: false });
  return error;
}

/** The target a database error was raised for, when it was raised by a connection of lib/postgres/client.ts. */
export function targetOf(error: unknown): DatabaseTarget | undefined {
  if (error === null || typeof error !== 'object' || !('target' in error)) return undefined;
  const t = error.target as Partial<DatabaseTarget> | null;
  return t &&
    typeof t.host === 'string' &&
    typeof t.port === 'number' &&
    typeof t.database === 'string' &&
    typeof t.user === 'string'
    ? (t as DatabaseTarget)
    : undefined;
}
