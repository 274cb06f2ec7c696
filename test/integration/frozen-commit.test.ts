/**
 * A connection that goes silent (a network path black-holed, a NAT entry dropped) while the batch transaction is
 * open: Database.run's timer drops the connection at the deadline, as it must, but the server does not notice a
 * client that just stopped talking, so its backend stays "idle in transaction" holding the batch's claims and row
 * locks until TCP keepalive ends it (hours by default). Every redelivery of the batch then waits on those locks until
 * its own deadline: the partition stalls. Found by the hostile review of issue 21.
 */
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildKafkaEvent } from '../../scripts/encode-kafka-event';
import { consumerDatabase, testDatabase, type TestDatabase } from '../helpers/db';
import { surveyMessage } from '../helpers/factories';
import { runBatch } from '../helpers/run';

let db: TestDatabase;
beforeAll(async () => {
  db = await testDatabase();
});
afterAll(() => db.close());

/** A proxy that stops forwarding anything, both ways, from the `nth` chunk holding a COMMIT on, and never closes. */
async function freezingProxy(target: { host: string; port: number }, nth: number) {
  const COMMIT = Buffer.from('commit\0');
  const sockets = new Set<Socket>();
  let commits = 0;
  let frozen = false;
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    sockets.add(client).add(upstream);
    for (const s of [client, upstream]) s.on('error', () => {});
    client.on('data', (chunk: Buffer) => {
      if (!frozen && chunk.includes(COMMIT) && ++commits === nth) frozen = true;
      if (!frozen) upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!frozen) client.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    get frozen() {
      return frozen;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

it("should not leave the silent connection's transaction holding the batch's locks past the deadline", async () => {
  const tag = `frozen-${randomBytes(3).toString('hex')}`;
  // The second COMMIT is the batch transaction's (the first ends the instructors' short transaction).
  const proxy = await freezingProxy({ host: db.config.db.host, port: db.config.db.port }, 2);
  const silent = consumerDatabase(
    { ...db.config, db: { ...db.config.db, host: '127.0.0.1', port: proxy.port } },
    { connection: { application_name: tag }, prepare: false },
  );
  const event = buildKafkaEvent(
    Array.from({ length: 3 }, (_, i) => ({
      value: surveyMessage({ traceId: `${tag}-${i}` }, { courseId: `${tag}-C${i}` }),
    })),
    { topic: tag },
  );
  try {
    const first = await runBatch(db, event, {
      database: silent,
      deadline: Date.now() + 2_500,
      config: { ...db.config, retry: { maxRetries: 0, backoffMs: 50 } },
    });
    expect(proxy.frozen).toBe(true);
    expect(first.error).toMatchObject({ code: 'BATCH_FAILED' }); // nothing settled: the whole batch goes back to Lambda

    // The redelivery, in another execution environment with a working connection and time to wait for the locks.
    const retry = await runBatch(db, event, { deadline: Date.now() + 8_000 });
    expect(retry.result?.summary).toMatchObject({ stored: 3, failed: 0 });
  } finally {
    await proxy.close();
    await silent.end();
  }
});
