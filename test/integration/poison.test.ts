import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../lib/postgres/database';
import { parseMessage } from '../../lib/batch/trace-message';
import { SchemaGate } from '../../lib/postgres/schema-version-gate';
import { buildKafkaEvent } from '../../scripts/encode-kafka-event';
import { consumerDatabase, testDatabase, type TestDatabase } from '../helpers/db';
import { surveyMessage } from '../helpers/factories';
import { runBatch } from '../helpers/run';

// One bad record in 1,000: the 999 are stored, the one is dead-lettered, and the cost stays bounded. The time
// against a clean batch is measured by `npm run bench` (poison rows), not here: tests assert work, not clocks.
let db: TestDatabase;
let consumer: Database;
const statements: string[] = [];
beforeAll(async () => {
  db = await testDatabase();
  await db.sql`alter table ${db.sql(`${db.config.db.schema}.courses`)} add constraint no_poison check
    (course_name is distinct from 'poison')`;
  consumer = consumerDatabase(db.config, {
    debug: (_c, query) => void statements.push(query.trim().split(/\s/)[0]!.toLowerCase()),
  });
});
afterAll(async () => {
  await consumer.end();
  await db.close();
});

function thousandWith(tag: string, poison: (i: number) => unknown) {
  return buildKafkaEvent(
    Array.from({ length: 1000 }, (_, i) => ({
      value: i === 500 ? poison(i) : surveyMessage({ traceId: `${tag}-${i}` }, { courseId: `${tag}-C${i}` }),
    })),
    { partitions: 4 },
  );
}

describe('poison in bulk', () => {
  it('should store 999 and dead-letter the one that fails validation, in one batch transaction', async () => {
    statements.length = 0;
    const run = await runBatch(
      db,
      thousandWith('invalid', () => '{"traceId": "broken",'),
      { database: consumer },
    );
    expect(run.result?.summary).toMatchObject({ received: 1000, stored: 999, deadLettered: 1, failed: 0 });
    // The batch's transaction, after the short one that commits its new instructors
    // (docs/design.md#shared-reference-rows).
    expect(statements.filter((s) => s === 'begin')).toHaveLength(2);
  });

  it(
    'should store 999 and dead-letter the one the database rejects, in a logarithmic number of ' + 'transactions',
    async () => {
      statements.length = 0;
      const run = await runBatch(
        db,
        thousandWith('rejected', (i) =>
          surveyMessage({ traceId: `rejected-${i}` }, { courseId: 'POISON', courseName: 'poison' }),
        ),
        { database: consumer },
      );
      expect(run.result?.summary).toMatchObject({ received: 1000, stored: 999, deadLettered: 1, failed: 0 });
      expect(run.result?.outcomes.find((o) => o.state === 'dead_lettered')).toMatchObject({
        traceId: 'rejected-500',
        reason: 'db_rejected',
      });
      // Halving 1,000 down to the one: 2 transactions per level, 10 levels, plus the first try and the dead letter,
      // after the instructors' own short transaction.
      expect(statements.filter((s) => s === 'begin').length).toBeLessThanOrEqual(2 * Math.ceil(Math.log2(1000)) + 3);
    },
  );
});

// Issue 21: validation ignored the remaining time, so a record slow to validate made every delivery of its batch
// time out. A fake clock stands in for a record slower than the time the invocation can give it.
describe('a record too slow to validate', () => {
  it(
    'should be dead-lettered with its bytes, the records before it stored and the ones after it retried, then ' +
      'stored',
    async () => {
      const topic = `slow-${Date.now()}`;
      const slow = surveyMessage({ traceId: `slow-${Date.now()}` });
      const others = Array.from({ length: 4 }, (_, i) => surveyMessage({ traceId: `near-${Date.now()}-${i}` }));
      const event = buildKafkaEvent(
        [others[0], slow, others[1], others[2], others[3]].map((value, i) => ({ value, partition: i < 4 ? 0 : 1 })),
        { topic },
      );
      let t = 0;
      const run = await runBatch(db, event, {
        database: consumer,
        deadline: 55_000,
        now: () => t,
        // The slow record takes 40 s of the fake clock; the time left after the reserve is 55 s,
        // validation's share half.
        parse: (value) => {
          if (value?.toString().includes(slow.traceId)) t += 40_000;
          return parseMessage(value);
        },
      });
      expect(run.error).toBeUndefined();
      const states = run.result!.outcomes.map((o) => [o.traceId, o.state, o.reason]);
      expect(states).toEqual([
        [others[0]!.traceId, 'stored', undefined],
        [slow.traceId, 'dead_lettered', 'too_slow'],
        [null, 'failed', undefined],
        [null, 'failed', undefined],
        [others[3]!.traceId, 'stored', undefined],
      ]);
      expect(run.result!.response.batchItemFailures).toEqual([
        { itemIdentifier: { partition: `${topic}-0`, offset: 2 } },
        { itemIdentifier: { partition: `${topic}-0`, offset: 3 } },
      ]);
      const [letter] = await db.sql<{ value: Buffer; reason: string; trace_id: string }[]>`
      select value, reason, trace_id from ${db.sql(`${db.config.db.schema}.dead_letters`)}
        where kafka_topic = ${topic}`;
      expect(letter).toEqual({ value: Buffer.from(JSON.stringify(slow)), reason: 'too_slow', trace_id: slow.traceId });

      // Lambda delivers the partition again from the first failed offset: the records left over are stored.
      const again = await runBatch(
        db,
        buildKafkaEvent(
          [others[1], others[2]].map((value) => ({ value })),
          { topic, firstOffset: 2 },
        ),
        { database: consumer },
      );
      expect(again.result!.outcomes.map((o) => o.state)).toEqual(['stored', 'stored']);
    },
  );
});

// A delivery can start validating with little time left: the first invocation of an environment checks the schema
// first, and that waits on the database. A record that outlasts half of that little time is not slow: dead-lettered
// as too_slow it would be lost to the consumer for what a later delivery validates at once.
describe('a delivery left short by a slow start', () => {
  it("should store a record that outlasts the time this delivery had left but not an invocation's share", async () => {
    const topic = `short-${Date.now()}`;
    const record = surveyMessage({ traceId: `short-${Date.now()}` });
    let t = 0;
    const end = 60_000;
    // The schema check (a real one) takes 52 s of the fake clock: 7 s are left before the deadline, 3.5 s for
    // validation.
    class SlowGate extends SchemaGate {
      override async ensure(...args: Parameters<SchemaGate['ensure']>) {
        t += 52_000;
        return super.ensure(...args);
      }
    }
    const run = await runBatch(db, buildKafkaEvent([{ value: record }], { topic }), {
      database: consumer,
      schemaGate: new SlowGate(db.config.db.schema),
      deadline: end - db.config.timeReserveMs,
      now: () => t,
      // The record takes 5 s: more than this delivery's 3.5 s, far less than half of an invocation's 59 s.
      parse: (value) => {
        t += 5_000;
        return parseMessage(value);
      },
    });
    expect(run.error).toBeUndefined();
    expect(run.result!.outcomes.map((o) => [o.traceId, o.state, o.reason])).toEqual([
      [record.traceId, 'stored', undefined],
    ]);
  });
});
