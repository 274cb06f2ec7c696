import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config';
import type { CredentialSource } from '../../lib/postgres/credentials';
import { Database } from '../../lib/postgres/database';
import { MIN_ATTEMPT_MS } from '../../lib/deadline';

/*
 * Database.run's passes against a driven clock. The work never touches the client (postgres.js connects on the first
 * query), so no server is needed: each pass "fails" as a lost connection or a rejected login would, and moves the
 * clock on by what such a pass costs.
 */

const config = loadConfig({});
const failure = (code: string) =>
  Object.assign(new Error(code), { name: code.startsWith('E') ? 'Error' : 'PostgresError', code });

let database: Database | undefined;
afterEach(() => database?.end());

function setup() {
  let clock = 5_000_000;
  const refreshes: number[] = [];
  const credentials: CredentialSource = {
    get: async () => ({ host: 'localhost', port: 5432, database: 'trace', user: 'u', password: 'p' }),
    refresh: async () => {
      refreshes.push(clock);
      return { host: 'localhost', port: 5432, database: 'trace', user: 'u', password: `p${refreshes.length}` };
    },
  };
  database = new Database(config.db, credentials);
  return { database, refreshes, now: () => clock, advance: (ms: number) => (clock += ms), at: () => clock };
}

describe('Database.run', () => {
  it.each([
    ['a lost connection', 'ECONNRESET'],
    ['a rejected login', '28P01'],
  ])('should not start another pass after %s once less than MIN_ATTEMPT_MS is left', async (_name, code) => {
    const { database, refreshes, now, advance, at } = setup();
    const deadline = at() + 1_000 + MIN_ATTEMPT_MS - 1;
    const starts: number[] = [];
    const run = database.run(
      async () => {
        starts.push(at());
        advance(1_000);
        throw failure(code);
      },
      deadline,
      now,
    );
    await expect(run).rejects.toMatchObject({ code: 'OUT_OF_TIME', cause: { code } });
    expect(starts).toHaveLength(1);
    expect(refreshes).toHaveLength(0);
  });

  it('should reconnect once and re-login once, each pass measured against the same deadline', async () => {
    // Passes fail as: lost connection, rejected login, lost connection again (no more reconnects: thrown).
    const codes = ['ECONNRESET', '28P01', 'ECONNRESET'];
    for (const room of [0, 1, 2, 3]) {
      const { database, now, advance, at } = setup();
      const deadline = at() + room * 1_000 + MIN_ATTEMPT_MS;
      const starts: number[] = [];
      const run = database.run(
        async () => {
          starts.push(at());
          const code = codes[starts.length - 1]!;
          advance(1_000);
          throw failure(code);
        },
        deadline,
        now,
      );
      await expect(run).rejects.toMatchObject({ code: room < 2 ? 'OUT_OF_TIME' : 'ECONNRESET' });
      expect(starts).toHaveLength(Math.min(room + 1, 3));
      for (const start of starts) expect(deadline - start).toBeGreaterThanOrEqual(MIN_ATTEMPT_MS);
      await database.end();
    }
  });
});
