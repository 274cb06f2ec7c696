import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy in front of PostgreSQL that can lose the answer to a COMMIT, as a network failure or a failover can:
 * armed, it forwards the client's COMMIT (the query text "commit", in a Query or a Parse message) and then cuts the
 * client off, so the server commits (or, with `before`, never sees the COMMIT and rolls back) while the client only
 * learns that its connection is gone. Everything else passes through untouched.
 */
export async function commitDroppingProxy(target: { host: string; port: number }) {
  const sockets = new Set<Socket>();
  let armed: 'after' | 'before' | null = null;
  /** COMMITs to let through before the one that is lost. */
  let skip = 0;
  let dropped = 0;
  const COMMIT = Buffer.from('commit\0');

  const server: Server = createServer((client) => {
    const upstream = connect({ host: target.host, port: target.port });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    upstream.on('data', (chunk) => client.write(chunk));
    client.on('data', (chunk: Buffer) => {
      if (armed !== null && chunk.includes(COMMIT) && skip-- === 0) {
        const when = armed;
        armed = null;
        dropped += 1;
        client.destroy();
        // The COMMIT reaches the server, then the end of the stream: the server commits, and its answer finds no one.
        if (when === 'after') upstream.end(chunk);
        else upstream.destroy();
        return;
      }
      upstream.write(chunk);
    });
    client.on('close', () => upstream.end());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the proxy has no port');
  return {
    host: '127.0.0.1',
    port: address.port,
    /**
     * Loses the answer of the next COMMIT but `skipping` (`after`: the server gets the COMMIT) or the COMMIT itself
     * (`before`). A batch commits twice: its instructors first, then its writes (skipping 1).
     */
    dropNextCommit(when: 'after' | 'before' = 'after', skipping = 0) {
      armed = when;
      skip = skipping;
    },
    get dropped() {
      return dropped;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
