import { connect, type Socket } from 'node:net';

/**
 * Counts database round trips: a round trip ends when the server's answer arrives after the client has sent
 * everything it had to send. Pipelined statements sent back to back count once; so does one large statement that
 * needs several socket writes (the server may answer earlier statements while the client is still writing).
 */
export class RoundTripCounter {
  count = 0;

  /** A postgres.js `socket` option that connects over TCP and counts. */
  socket = (options: { host: string[]; port: number[] }): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const socket = connect(options.port[0]!, options.host[0]!);
      socket.setNoDelay(true); // no Nagle delay on small writes, for every writer alike
      let sentSinceAnswer = false;
      const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
      socket.write = ((...args: unknown[]) => {
        sentSinceAnswer = true;
        return write(...args);
      }) as Socket['write'];
      socket.on('data', () => {
        if (sentSinceAnswer && socket.writableLength === 0) {
          this.count += 1;
          sentSinceAnswer = false;
        }
      });
      socket.once('connect', () => resolve(socket));
      socket.once('error', reject);
    });

  reset(): void {
    this.count = 0;
  }
}
