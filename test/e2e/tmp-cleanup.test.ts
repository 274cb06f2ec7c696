/**
 * `npm test` leaves nothing in the temporary folder: a vitest run with the project's global setup, on a fixture test
 * that leaves folders (its own and a child process's) and with the embedded PostgreSQL started, is given an empty
 * folder as TMPDIR, which must be empty again when the run ends.
 */
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { projectRoot, runCommand } from '../helpers/cli';

const parent = mkdtempSync(join(tmpdir(), 'trace-tmp-check-'));
chmodSync(parent, 0o755); // as any TMPDIR: the embedded server's user (as root, "postgres") must enter it
afterAll(() => rmSync(parent, { recursive: true, force: true }));

describe('the temporary folder after a test run', () => {
  it('should be left as it was, with everything the run and its processes created removed', async () => {
    // vitest itself, not through npx: npm on Node.js 22 and later keeps its own compile cache in TMPDIR
    // (node-compile-cache, meant to outlive every run, as npm's other caches do), which is not the run's to remove.
    const run = await runCommand(
      join(projectRoot, 'node_modules', '.bin', 'vitest'),
      ['run', '--config', join(projectRoot, 'test/fixtures/tmp-run/vitest.config.mts')],
      {
        TMPDIR: parent,
        TRACE_TEST_SHARED_TMPDIR: '',
        DB_HOST: '', // an embedded server, as `npm test` starts
      },
      180_000,
    );
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout + run.stderr).toContain('1 passed');
    expect(readdirSync(parent)).toEqual([]);
  }, 200_000);
});
