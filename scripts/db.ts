/**
 * A PostgreSQL server for hand-run work (npm run db): the embedded server in the foreground, its data kept in
 * .pgdata/ (ignored by git) between runs, database "trace" created and the migrations applied. It prints the
 * `export DB_*` lines that point npm run db:apply, npm start and `serverless invoke local` at it, and stops
 * cleanly on Ctrl-C.
 *   npm run db                      # port 55432
 *   npm run db -- --port 55433      # another port
 *   npm run db -- --reset           # start from an empty database
 *   npm run db -- --data ~/pg       # data in another folder
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig, SCRIPT_CONFIG_FIX } from '../lib/config';
import { createSql } from '../lib/postgres/client';
import { closedFolder, startLocalDatabase } from './local-db';
import { exitWithDiagnosis } from './exit-with-diagnosis';
import { applySchema } from './db/migrations';
import { UsageError } from './errors';
import { onStopSignal } from './stop-signals';

const root = join(__dirname, '..');
const USAGE = 'usage: npm run db [-- [--port <1024-65535>] [--data <folder>] [--reset]]';

async function main() {
  const { port, reset, data } = readArgs(process.argv.slice(2));
  const dir = data ?? dataFolder();
  if (reset) rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const db = await startLocalDatabase({ useConfigured: false, dir, port });
  // Ctrl-C is how this command ends: exit 0 once the server has stopped (startLocalDatabase stops it).
  onStopSignal(async () => {
    console.log('\nStopping PostgreSQL (the data stays for next time; `npm run db -- --reset` starts empty).');
  }, 0);

  const config = loadConfig({ ...db.env, DB_SCHEMA: process.env.DB_SCHEMA }, SCRIPT_CONFIG_FIX);
  const sql = createSql(config.db);
  let migrated: Awaited<ReturnType<typeof applySchema>>;
  try {
    migrated = await applySchema(sql, config.db.schema);
  } finally {
    await sql.end({ timeout: 5 });
  }
  const exports = Object.entries(db.env)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  console.log(
    [
      `PostgreSQL is running on 127.0.0.1:${db.env.DB_PORT}, database "${config.db.database}", schema ` +
        `"${config.db.schema}" at version ${migrated.to}` +
        // Data kept from an older checkout is upgraded here; say so, since its rows were written by older code.
        (migrated.from === migrated.to
          ? '.'
          : migrated.from === 0
            ? ' (created).'
            : ` (upgraded from version ${migrated.from}).`),
      `Data: ${dir}`,
      '',
      'In another terminal, paste:',
      '',
      `  export ${exports}`,
      '',
      'then, for example:',
      '',
      '  npx serverless invoke local -f consumer -p events/msk-batch.json',
      '  npx serverless invoke local -f health -p events/health-ready.json',
      '  npm start -- --yes',
      '',
      'Ctrl-C stops the server.',
    ].join('\n'),
  );
}

function readArgs(args: string[]): { port: number; reset: boolean; data: string | undefined } {
  let values: { port?: string; reset?: boolean; data?: string };
  try {
    ({ values } = parseArgs({
      args,
      options: { port: { type: 'string' }, reset: { type: 'boolean' }, data: { type: 'string' } },
      strict: true,
    }));
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error), USAGE);
  }
  const port = Number(values.port ?? DEFAULT_PORT);
  if (!Number.isInteger(port) || port < 1024 || port > 65535)
    throw new UsageError(`--port must be a number from 1024 to 65535 (got "${values.port}")`, USAGE);
  return { port, reset: values.reset ?? false, data: values.data === undefined ? undefined : resolve(values.data) };
}

/** Not 5432, so that it does not collide with a PostgreSQL installed on the machine. */
const DEFAULT_PORT = 55432;

/**
 * .pgdata/ in the project. As root in a folder the "postgres" user cannot enter, the server could not reach it, so
 * the data goes to a folder of the temporary directory named after the project instead.
 */
function dataFolder(): string {
  const local = join(root, '.pgdata');
  if (process.getuid?.() !== 0 || !closedFolder(root)) return local;
  const hash = createHash('sha256').update(root).digest('hex').slice(0, 12);
  const dir = join(tmpdir(), `trace-consumer-pgdata-${hash}`);
  if (!existsSync(dir))
    console.error(`The "postgres" user cannot enter ${root}; the data goes to ${dir} instead of .pgdata/.`);
  return dir;
}

main().catch(exitWithDiagnosis);
