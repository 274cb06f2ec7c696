import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../lib/database';
import { buildKafkaEvent } from '../../scripts/event-builder';
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
  await db.sql`alter table ${db.sql(`${db.config.db.schema}.courses`)} add constraint no_poison check (course_name is distinct from 'poison')`;
  consumer = consumerDatabase(db.config, { debug: (_c, query) => void statements.push(query.trim().split(/\s/)[0]!.toLowerCase()) });
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
  it('should store 999 and dead-letter the one that fails validation, in one transaction', async () => {
    statements.length = 0;
    const run = await runBatch(db, thousandWith('invalid', () => '{"traceId": "broken",'), { database: consumer });
    expect(run.result?.summary).toMatchObject({ received: 1000, stored: 999, deadLettered: 1, failed: 0 });
    expect(statements.filter((s) => s === 'begin')).toHaveLength(1);
  });

  it('should store 999 and dead-letter the one the database rejects, in a logarithmic number of transactions', async () => {
    statements.length = 0;
    const run = await runBatch(
      db,
      thousandWith('rejected', (i) => surveyMessage({ traceId: `rejected-${i}` }, { courseId: 'POISON', courseName: 'poison' })),
      { database: consumer },
    );
    expect(run.result?.summary).toMatchObject({ received: 1000, stored: 999, deadLettered: 1, failed: 0 });
    expect(run.result?.outcomes.find((o) => o.state === 'dead_lettered')).toMatchObject({ traceId: 'rejected-500', reason: 'db_rejected' });
    // Halving 1,000 down to the one: 2 transactions per level, 10 levels, plus the first try and the dead letter.
    expect(statements.filter((s) => s === 'begin').length).toBeLessThanOrEqual(2 * Math.ceil(Math.log2(1000)) + 2);
  });
});
