import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * One temporary folder for a whole test run, removed when the run ends. TMPDIR points into it, so every temporary
 * folder of the run lands there: the tests' own (mkdtemp), the embedded PostgreSQL's data, and those of the processes
 * they start, which inherit the variable (the Serverless CLI leaves a `<function>-<pid>-...` folder per packaged
 * function, esbuild and the CLI more). Cleaning each one up by name would miss the next a tool adds.
 *
 * `TRACE_TEST_SHARED_TMPDIR` keeps the folder outside the run, for what must be shared by concurrent runs of a
 * checkout (the CLI lock, test/helpers/cli.ts).
 */
export function createRunTmp(): { dir: string; remove(): void } {
  const shared = process.env.TRACE_TEST_SHARED_TMPDIR || tmpdir();
  const dir = mkdtempSync(join(shared, 'trace-consumer-test-'));
  // As root, the embedded server runs as "postgres" (scripts/local-db.ts), which must be able to enter it.
  chmodSync(dir, 0o755);
  const previous = { TMPDIR: process.env.TMPDIR, TRACE_TEST_SHARED_TMPDIR: process.env.TRACE_TEST_SHARED_TMPDIR };
  process.env.TRACE_TEST_SHARED_TMPDIR = shared;
  process.env.TMPDIR = dir;
  return {
    dir,
    remove() {
      for (const [name, value] of Object.entries(previous)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
