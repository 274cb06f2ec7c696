import { connect, createServer, type Server, type Socket } from 'node:net';

/** The COMMIT as an unnamed statement of the extended protocol (prepare: false) or a simple query: "\0commit\0". */
const COMMIT = Buffer.from('\0commit\0');
/** ReadyForQuery: the server has finished what it was sent, the COMMIT included. */
const READY = Buffer.from([0x5a, 0, 0, 0, 5]);

/**
 * A TCP proxy in front of PostgreSQL that can lose a COMMIT's answer: the COMMIT reaches the server and is carried
 * out, then, once the server has answered, both sockets are closed before the client hears anything. That is what
 * a network failure at the worst moment looks like to the client (CONNECTION_CLOSED), with a real server behind it.
 * Clients must connect with `prepare: false`, so that every statement's text travels with it.
 */
export async function lossyProxy(target: { host: string; port: number }) {
  let toLose = 0;
  let lost = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    sockets.add(client).add(upstream);
    let dropping = false;
    let answer = Buffer.alloc(0);
    client.on('data', (chunk) => {
      if (toLose > 0 && chunk.includes(COMMIT)) {
        toLose -= 1;
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
      toLose += n;
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
