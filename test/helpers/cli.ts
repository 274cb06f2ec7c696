import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const projectRoot = join(__dirname, '..', '..');

/**
 * Runs a command from the project root with a hard timeout: a CLI that hangs (as `invoke local` can when the module
 * format is wrong) fails the test instead of the whole run.
 */
export function runCommand(command: string, args: string[], env: Record<string, string> = {}, timeoutMs = 120_000) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(command, args, {
      cwd: projectRoot,
      env: { ...process.env, SLS_TELEMETRY_DISABLED: '1', AWS_EC2_METADATA_DISABLED: 'true', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// Outside the run's own temporary folder (test/helpers/run-tmp.ts): concurrent runs of the checkout share the lock.
const lockDir = join(
  process.env.TRACE_TEST_SHARED_TMPDIR || tmpdir(),
  `trace-consumer-cli-${Buffer.from(projectRoot).toString('hex').slice(-40)}.lock`,
);

/** True when the lock names a process that no longer runs: a test run killed while it held the lock. */
function ownerGone(): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(join(lockDir, 'pid'), 'utf8'));
  } catch {
    return false; // just taken, its owner not written yet (or released meanwhile)
  }
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Runs `fn` while holding a lock shared by every test process of this checkout: the Serverless CLI builds into
 * `.esbuild/` in the project, so two CLI runs from test files running in parallel would overwrite each other's build.
 * A lock left by a killed run (it lives in the temporary folder, which outlives the run) is taken over at once when
 * its owner's process is gone, or after ten minutes; before, the next run's CLI tests waited out their timeouts.
 */
export async function withCliLock<T>(fn: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      mkdirSync(lockDir);
    } catch {
      try {
        if (ownerGone() || Date.now() - statSync(lockDir).mtimeMs > 600_000)
          rmSync(lockDir, { recursive: true, force: true });
      } catch {
        // released meanwhile
      }
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    writeFileSync(join(lockDir, 'pid'), String(process.pid));
    break;
  }
  try {
    return await fn();
  } finally {
    rmSync(lockDir, { recursive: true, force: true });
  }
}

/** Runs the Serverless CLI (`npx serverless ...args`) under the CLI lock. */
export const runServerless = (args: string[], env: Record<string, string> = {}) =>
  withCliLock(() => runCommand('npx', ['serverless', ...args], env));

/**
 * `serverless invoke local` with the database settings passed as --env, as a user may. No DB_SSL: invoke local
 * defaults to disable (deploy/invoke-local-plugin.js).
 */
export function invokeLocal(fn: string, eventPath: string, dbEnv: Record<string, string>) {
  const args = ['invoke', 'local', '-f', fn, '-p', eventPath];
  for (const [k, v] of Object.entries(dbEnv)) args.push('--env', `${k}=${v}`);
  return runServerless(args);
}

export { lastJson } from '../../scripts/parse-invoke-output';
