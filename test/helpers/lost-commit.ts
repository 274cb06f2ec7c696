import { connect, createServer, type Server, type Socket } from 'node:net';

/** The COMMIT as an unnamed statement of the extended protocol (prepare: false) or a simple query: "\0commit\0". */
const COMMIT = Buffer.from('\0commit\0');
/** Sync: the client asks the server to finish what it sent and answer ReadyForQuery. */
const SYNC = Buffer.from([0x53, 0, 0, 0, 4]);
/** ReadyForQuery: the server has finished what it was sent, the COMMIT included. */
const READY = Buffer.from([0x5a, 0, 0, 0, 5]);

/**
 * A TCP proxy in front of PostgreSQL that can lose a COMMIT's answer: the COMMIT reaches the server and is carried
 * out, then, once the server has answered, both sockets are closed before the client hears anything. That is what
 * a network failure at the worst moment looks like to the client (CONNECTION_CLOSED), with a real server behind it.
 * Clients must connect with `prepare: false`, so that every statement's text travels with it.
 */
export async function lossyProxy(target: { host: string; port: number }) {
  /** Answers still to lose, by the statement text that marks them (the COMMIT, or any other statement). */
  const toLose = new Map<string, number>([[COMMIT.toString('latin1'), 0]]);
  let lost = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    sockets.add(client).add(upstream);
    let armed = false;
    let dropping = false;
    let answer = Buffer.alloc(0);
    client.on('data', (chunk) => {
      for (const [marker, n] of toLose) {
        if (n > 0 && chunk.includes(Buffer.from(marker, 'latin1'))) {
          toLose.set(marker, n - 1);
          armed = true;
        }
      }
      // A statement with parameters is first described (answered without ReadyForQuery), then bound and executed:
      // the answer to lose is the one that follows the Sync.
      if (armed && chunk.includes(SYNC)) {
        armed = false;
        dropping = true;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!dropping) {
        client.write(chunk);
        return;
      }
      answer = Buffer.concat([answer, chunk]);
      if (answer.includes(READY)) {
        lost += 1;
        client.destroy();
        upstream.destroy();
      }
    });
    for (const socket of [client, upstream]) {
      socket.on('error', () => {});
      socket.on('close', () => {
        sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    /** Loses the answers of the next `n` COMMITs. */
    loseCommits(n: number) {
      const key = COMMIT.toString('latin1');
      toLose.set(key, toLose.get(key)! + n);
    },
    /** Loses the answer of the next statement whose text contains `marker`, after the server carried it out. */
    loseAnswerTo(marker: string) {
      toLose.set(marker, (toLose.get(marker) ?? 0) + 1);
    },
    /** COMMIT answers lost so far. */
    get lost() {
      return lost;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
