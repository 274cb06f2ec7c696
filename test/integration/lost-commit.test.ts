import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EmfDocument } from '../../lib/aws/emf-metrics';
import { buildKafkaEvent } from '../../scripts/encode-kafka-event';
import { consumerDatabase, testDatabase, type TestDatabase } from '../helpers/db';
import { surveyMessage } from '../helpers/factories';
import { commitDroppingProxy } from '../helpers/proxy';
import { runBatch } from '../helpers/run';

/*
 * The answer to a COMMIT is lost (a proxy cuts the connection right after forwarding it). Whether the transaction
 * committed is then unknown to the client; it must find out on a new connection, and report what it stored as
 * stored, not run the batch again and report its own rows as duplicates.
 */

let db: TestDatabase;
let proxy: Awaited<ReturnType<typeof commitDroppingProxy>>;
beforeAll(async () => {
  db = await testDatabase();
  proxy = await commitDroppingProxy({ host: db.config.db.host, port: db.config.db.port });
});
afterAll(async () => {
  await proxy.close();
  await db.close();
});

const table = (name: string) => db.sql(`${db.config.db.schema}.${name}`);

/**
 * A consumer behind the proxy. Unprepared statements: a prepared COMMIT is sent without its text after the first
 * time on a connection, and the proxy, which finds a COMMIT by its text, would only ever see the first one (the
 * instructors'), never the batch's.
 */
const lossyConsumer = () =>
  consumerDatabase({ ...db.config, db: { ...db.config.db, host: proxy.host, port: proxy.port, prepare: false } });

describe('a COMMIT whose answer is lost', () => {
  it.each([
    ['after', 'instructors', 0],
    ['before', 'instructors', 0],
    ['after', 'batch', 1],
    ['before', 'batch', 1],
  ] as const)(
    'should report the true outcome when the connection drops %s the %s COMMIT reaches the server',
    async (when, which, skipping) => {
      const tag = `lost-${when}-${which}`;
      const event = buildKafkaEvent(
        [
          ...Array.from({ length: 4 }, (_, i) => ({
            value: surveyMessage({ traceId: `${tag}-${i}` }, { courseId: `${tag}-C${i}` }),
          })),
          { value: 'not json' },
        ],
        { topic: tag },
      );
      const consumer = lossyConsumer();
      const metrics: EmfDocument[] = [];
      const dropsBefore = proxy.dropped;
      proxy.dropNextCommit(when, skipping);
      try {
        const run = await runBatch(db, event, { database: consumer, emitMetrics: (d) => metrics.push(d) });
        expect(proxy.dropped).toBe(dropsBefore + 1);
        expect(run.error).toBeUndefined();
        expect(run.result?.summary).toMatchObject({
          received: 5,
          stored: 4,
          duplicates: 0,
          deadLettered: 1,
          failed: 0,
        });
        expect(run.result?.outcomes.map((o) => o.state)).toEqual([
          'stored',
          'stored',
          'stored',
          'stored',
          'dead_lettered',
        ]);
        const stored = metrics.flatMap((d) => ('RecordsStored' in d ? [d.RecordsStored] : []));
        const duplicates = metrics.flatMap((d) => ('RecordsDuplicate' in d ? [d.RecordsDuplicate] : []));
        expect(stored.reduce((a, b) => Number(a) + Number(b), 0)).toBe(4);
        expect(duplicates.every((n) => Number(n) === 0)).toBe(true);
        // Exactly once in the database, whichever way it went.
        const [claims] = await db.sql<
          { n: number }[]
        >`select count(*)::int as n from ${table('processed_traces')} where trace_id like ${tag + '-%'}`;
        expect(claims?.n).toBe(4);
        const [letters] = await db.sql<
          { n: number }[]
        >`select count(*)::int as n from ${table('dead_letters')} where kafka_topic = ${tag}`;
        expect(letters?.n).toBe(1);
      } finally {
        await consumer.end();
      }
    },
  );

  it('should still call a trace id claimed by another record a duplicate', async () => {
    const tag = 'lost-dup';
    const first = buildKafkaEvent([{ value: surveyMessage({ traceId: `${tag}-0` }) }], { topic: `${tag}-a` });
    expect((await runBatch(db, first)).result?.summary).toMatchObject({ stored: 1 });
    const event = buildKafkaEvent(
      [{ value: surveyMessage({ traceId: `${tag}-0` }) }, { value: surveyMessage({ traceId: `${tag}-1` }) }],
      { topic: `${tag}-b` },
    );
    const consumer = lossyConsumer();
    proxy.dropNextCommit('after', 1); // the batch's COMMIT, after its instructors'
    try {
      const run = await runBatch(db, event, { database: consumer });
      expect(run.result?.outcomes.map((o) => o.state)).toEqual(['duplicate', 'stored']);
    } finally {
      await consumer.end();
    }
  });
});
