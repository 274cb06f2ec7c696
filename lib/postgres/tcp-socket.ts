import { connect, type Socket } from 'node:net';

/**
 * postgres.js's `socket` option, for one thing the driver does not tell: whether the last connection reached the
 * server (TCP connected), so that a connect timeout can say "reached, but the server never finished starting the
 * session" rather than "check the host and port". It never reads the protocol: TLS and authentication are the
 * driver's (lib/postgres/client.ts), which upgrades this socket as it would its own.
 */
export interface TcpSockets {
  open: () => Promise<Socket>;
  /** Whether the last socket opened was accepted by the server. */
  lastReachedServer(): boolean;
}

export function tcpSockets(host: string, port: number): TcpSockets {
  let reached = false;
  return {
    lastReachedServer: () => reached,
    open: () =>
      new Promise<Socket>((resolve, reject) => {
        reached = false;
        const socket = connect({ host, port, noDelay: true });
        socket.once('error', reject);
        socket.once('connect', () => {
          reached = true;
          socket.off('error', reject);
          resolve(socket);
        });
      }),
  };
}
