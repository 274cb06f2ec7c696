import { spawn } from 'node:child_process';
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

/**
 * `serverless invoke local` with the database settings passed as --env, as a user may. No DB_SSL: invoke local
 * defaults to disable (deploy/invoke-local.js).
 */
export function invokeLocal(fn: string, eventPath: string, dbEnv: Record<string, string>) {
  const args = ['serverless', 'invoke', 'local', '-f', fn, '-p', eventPath];
  for (const [k, v] of Object.entries(dbEnv)) args.push('--env', `${k}=${v}`);
  return runCommand('npx', args);
}

export { lastJson } from '../../scripts/invoke-output';
