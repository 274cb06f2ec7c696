import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, inject } from 'vitest';
import { startLocalDatabase } from '../../scripts/local-db';

// The embedded server's temporary folders go to TMPDIR; a fresh one per test shows what a failed start leaves.
let scratch: string;
const originalTmp = process.env.TMPDIR;
beforeEach(() => {
  scratch = mkdtempSync(join(tmpdir(), 'trace-local-db-'));
  chmodSync(scratch, 0o755);
  process.env.TMPDIR = scratch;
});
afterEach(() => {
  process.env.TMPDIR = originalTmp;
  if (originalTmp === undefined) delete process.env.TMPDIR;
  rmSync(scratch, { recursive: true, force: true });
});

describe('startLocalDatabase', () => {
  const failures = [
    {
      failure: 'a setting PostgreSQL does not know',
      options: () => ({ postgresFlags: ['-c', 'no_such_setting=1'] }),
      says: 'did not start on port',
    },
    {
      failure: 'a port already in use',
      options: () => ({ port: Number(inject('database').DB_PORT) }),
      says: 'is in use',
    },
  ];

  it.each(failures)(
    'should fail with a message and leave no folder behind after $failure',
    async ({ options, says }) => {
      await expect(startLocalDatabase({ useConfigured: false, ...options() })).rejects.toMatchObject({
        code: 'LOCAL_SERVER_FAILED',
        message: expect.stringContaining(says),
      });
      // As root in a checkout the "postgres" user cannot enter, the binaries are copied to TMPDIR once per checkout
      // and kept on purpose (scripts/local-db.ts): a cache, not something the failed start left.
      expect(readdirSync(scratch).filter((f) => !f.startsWith('trace-consumer-embedded-postgres-'))).toEqual([]);
    },
  );
});
