import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BatchFailedError, SchemaVersionError } from '../../lib/errors';
import { SchemaGate } from '../../lib/postgres/schema-version-gate';
import { buildKafkaEvent } from '../../scripts/encode-kafka-event';
import { consumerDatabase, testDatabase, type TestDatabase } from '../helpers/db';
import { surveyMessage } from '../helpers/factories';
import { runBatch } from '../helpers/run';

/*
 * A deployment-class failure (schema version, rejected login) fails in milliseconds; without a hold Lambda spends all
 * its retries of the batch within a second. The invocation waits first, until SETUP_FAILURE_HOLD_SECONDS after it
 * started or the deadline, whichever comes first. The clock and the sleep are the test's: no real waiting.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await testDatabase();
});
afterAll(() => db.close());

const event = () => buildKafkaEvent([{ value: surveyMessage() }, { value: surveyMessage() }]);

/** Runs a batch with a driven clock that the hold's sleep moves on; returns the waits and the run. */
async function held(overrides: Parameters<typeof runBatch>[2], holdMs: number, deadlineIn: number) {
  let clock = 1_000_000;
  const waits: number[] = [];
  const run = await runBatch(db, event(), {
    config: { ...db.config, setupFailureHoldMs: holdMs },
    now: () => clock,
    deadline: clock + deadlineIn,
    sleep: async (ms) => {
      waits.push(ms);
      clock += ms;
    },
    ...overrides,
  });
  return { run, waits };
}

describe('a deployment-class failure', () => {
  it('should hold the invocation on a rejected login, up to the hold or the deadline, and say why', async () => {
    const wrong = consumerDatabase({
      ...db.config,
      db: {
        ...db.config.db,
        password: `wrong-${randomBytes(4).toString('hex')}`,
        user: `nobody_${randomBytes(3).toString('hex')}`,
      },
    });
    try {
      for (const [holdMs, deadlineIn, expected] of [
        [60_000, 30_000, 30_000],
        [10_000, 30_000, 10_000],
      ] as const) {
        const { run, waits } = await held({ database: wrong }, holdMs, deadlineIn);
        expect(run.error).toBeInstanceOf(BatchFailedError);
        expect((run.error as BatchFailedError).cause).toMatchObject({ code: 'DB_LOGIN_REJECTED' });
        // The driven clock stands still while the batch runs, so the hold is exactly what is left of it.
        expect(waits).toEqual([expected]);
        expect(run.logs.find((l) => String(l.message).startsWith('deployment-class failure'))).toMatchObject({
          code: '28P01',
          holdMs: expected,
        });
      }
    } finally {
      await wrong.end();
    }
  });

  it('should hold the invocation on a schema version mismatch', async () => {
    const empty = `t_${randomBytes(5).toString('hex')}`; // a schema with no version table: version 0
    const { run, waits } = await held({ schemaGate: new SchemaGate(empty) }, 60_000, 100_000);
    expect(run.error).toBeInstanceOf(SchemaVersionError);
    expect(waits).toEqual([60_000]);
  });

  it('should not hold for a failure of the moment, nor when the hold is 0', async () => {
    const unreachable = consumerDatabase({ ...db.config, db: { ...db.config.db, port: 1 } });
    try {
      const refused = await held({ database: unreachable }, 60_000, 30_000);
      expect(refused.run.error).toBeInstanceOf(BatchFailedError);
      expect(refused.waits).toEqual([]);
    } finally {
      await unreachable.end();
    }
    const off = await held({ schemaGate: new SchemaGate(`t_${randomBytes(5).toString('hex')}`) }, 0, 30_000);
    expect(off.run.error).toBeInstanceOf(SchemaVersionError);
    expect(off.waits).toEqual([]);
  });
});
