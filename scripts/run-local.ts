/**
 * The consumer on sample events, end to end (npm start): a PostgreSQL server (an embedded one, or the one DB_HOST
 * names when --yes confirms it), the migrations applied, `serverless invoke local` on each event, one line per event
 * with its outcome, then what was stored. Exits non-zero when any batch fails.
 *   npm start                               # every events/*.json sample
 *   npm start -- events/my-event.json       # your own events (see npm run build-event)
 *   npm start -- --verbose                  # also the function's own log and metrics lines
 *   npm start -- --yes                      # into the database DB_HOST names
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig, SCRIPT_CONFIG_FIX, type Config } from '../lib/config';
import { createSql } from '../lib/postgres/client';
import { decodeEvent } from '../lib/aws/kafka-event';
import { applySchema } from './db/migrations';
import { lastJson, logLines } from './parse-invoke-output';
import { configuredDatabase, startLocalDatabase, type LocalDatabase } from './local-db';
import { exitWithDiagnosis } from './exit-with-diagnosis';
import { showStored } from './show-stored';
import { UsageError } from './errors';
import { onStopSignal, stopRequested } from './stop-signals';

const root = join(__dirname, '..');
const USAGE = 'usage: npm start [-- [--verbose] [--yes] [event.json ...]]';

interface Options {
  files: string[];
  records: number;
  verbose: boolean;
  /** Confirms writing into the database DB_HOST names. */
  yes: boolean;
}

async function main() {
  const options = readArgs(process.argv.slice(2));
  const configured = configuredDatabase();
  if (configured && !options.yes) {
    throw new UsageError(
      `DB_HOST is set, so npm start would write the ${options.records} records of ${options.files.length} event ` +
        `file(s) into database "${configured.DB_NAME}" on ${configured.DB_HOST}:${configured.DB_PORT} (schema ` +
        `${process.env.DB_SCHEMA || 'trace'}). ` +
        'Add --yes to go ahead (npm start -- --yes), or `unset DB_HOST` to use an embedded PostgreSQL.',
      USAGE,
    );
  }

  const db = await startLocalDatabase();
  const env = { ...process.env, ...db.env };
  const config = loadConfig(env, SCRIPT_CONFIG_FIX);
  console.log(
    db.embedded
      ? `Started an embedded PostgreSQL on port ${db.env.DB_PORT}; it is removed at the end.`
      : `Writing into the configured PostgreSQL at ${db.env.DB_HOST}:${db.env.DB_PORT}, database ` +
          `"${db.env.DB_NAME}", schema "${config.db.schema}".`,
  );
  const work = invokeEach(options, db, config.db);
  // Ctrl-C: the invoke local in flight is stopped and no other started, then the work's own clean-up runs.
  const forget = onStopSignal(async () => {
    console.error(
      `\nStopping: no further events are invoked${db.embedded ? '; the embedded PostgreSQL and its data go' : ''}.`,
    );
    for (const child of children) child.kill('SIGTERM');
    await work.catch(() => {});
  });
  const failures = await work;
  forget();
  if (failures > 0) {
    console.error(
      `${failures} of ${options.files.length} batches failed; run again with --verbose for the function's own log.`,
    );
    process.exitCode = 1;
  }
}

/** The schema migrated, invoke local on each event file, then what was stored; the number of batches that failed. */
async function invokeEach(options: Options, db: LocalDatabase, dbConfig: Config['db']): Promise<number> {
  const { schema } = dbConfig;
  const sql = createSql(dbConfig);
  let failures = 0;
  try {
    const { to } = await applySchema(sql, schema);
    console.log(
      `Schema "${schema}" migrated to version ${to}. Running serverless invoke local -f consumer on each event:\n`,
    );
    const width = Math.max(...options.files.map((f) => f.length));
    for (const file of options.files) {
      if (stopRequested()) return failures;
      const outcome = await invokeLocal(file, { ...db.env, DB_SCHEMA: schema }, options.verbose);
      if (stopRequested()) return failures;
      if (!outcome.ok) failures++;
      console.log(`  ${file.padEnd(width)}  ${outcome.line}`);
    }
    console.log();
    await showStored(sql, schema);
  } finally {
    await sql.end({ timeout: 5 });
    await db.destroy();
  }
  return failures;
}

/** Checks every argument and event file before anything is started. */
function readArgs(args: string[]): Options {
  let parsed: { positionals: string[]; values: { verbose?: boolean; yes?: boolean } };
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: { verbose: { type: 'boolean' }, yes: { type: 'boolean' } },
    });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error), USAGE);
  }
  const files = parsed.positionals.length
    ? parsed.positionals.map(projectPath)
    : readdirSync(join(root, 'events'))
        .filter((f) => f.endsWith('.json') && !f.startsWith('health'))
        .sort()
        .map((f) => join('events', f));
  let records = 0;
  for (const file of files) records += checkEvent(file);
  return { files, records, verbose: parsed.values.verbose ?? false, yes: parsed.values.yes ?? false };
}

/** `file` relative to the project (where the CLI runs) when it is inside it, else absolute. */
function projectPath(file: string): string {
  const path = relative(root, resolve(file));
  return path.startsWith('..') ? resolve(file) : path;
}

/** The number of records of a Kafka event file; a UsageError naming the file when it cannot be one. */
function checkEvent(file: string): number {
  let text: string;
  try {
    text = readFileSync(resolve(root, file), 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new UsageError(
      `${file} cannot be read (${code ?? 'error'}). Give the path of an event file, e.g. events/msk-batch.json.`,
      USAGE,
    );
  }
  const build = 'Build one from your messages with npm run build-event.';
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new UsageError(
      `${file} is not JSON (${error instanceof Error ? error.message : String(error)}). ${build}`,
      USAGE,
    );
  }
  try {
    return decodeEvent(json).length;
  } catch (error) {
    throw new UsageError(
      `${file} is not a Kafka event: ${error instanceof Error ? error.message : String(error)} ${build}`,
      USAGE,
    );
  }
}

/** One invoke local; its outcome in one line, or the CLI's whole output with `verbose`. */
async function invokeLocal(
  file: string,
  dbEnv: Record<string, string>,
  verbose: boolean,
): Promise<{ ok: boolean; line: string }> {
  // Asynchronous on purpose: while a synchronous child runs, this process cannot answer Ctrl-C, so tsx (which runs
  // it) kills it with SIGKILL and the embedded server's temporary folder is left behind.
  const run = await runChild('npx', ['serverless', 'invoke', 'local', '-f', 'consumer', '-p', file], {
    cwd: root,
    // The shell's DB_* reach the function through deploy/invoke-local-plugin.js; DB_SSL defaults to disable there.
    env: { ...process.env, ...dbEnv, SLS_TELEMETRY_DISABLED: '1', AWS_EC2_METADATA_DISABLED: 'true' },
  });
  if (verbose) process.stdout.write(`$ serverless invoke local -f consumer -p ${file}\n${run.stdout}${run.stderr}\n`);
  const answer = safeLastJson(run.stdout) as { errorMessage?: string; batchItemFailures?: unknown[] } | undefined;
  if (run.status !== 0 || answer === undefined || answer.errorMessage !== undefined) {
    const reason = answer?.errorMessage ?? (run.stderr || run.stdout).trim().split('\n').slice(-3).join(' ');
    return { ok: false, line: `FAILED: ${reason}` };
  }
  const summary = logLines(run.stdout).find((l) => l.message === 'batch processed');
  const counts = summary ? describeCounts(summary) : 'no records';
  const retried = answer.batchItemFailures?.length ?? 0;
  return { ok: retried === 0, line: retried === 0 ? counts : `${counts} (${retried} reported for retry)` };
}

/** The invoke local children running, stopped on Ctrl-C. */
const children = new Set<ChildProcess>();

/** A child's exit status and output; killed after three minutes, as a hung CLI would otherwise hang npm start. */
function runChild(
  command: string,
  args: string[],
  options: SpawnOptions,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    child.on('error', reject);
    child.on('close', (status) => {
      children.delete(child);
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

function safeLastJson(stdout: string): unknown {
  try {
    return lastJson(stdout);
  } catch {
    return undefined;
  }
}

const COUNTS = [
  ['stored', 'stored'],
  ['duplicates', 'duplicate'],
  ['superseded', 'superseded'],
  ['upstreamErrors', 'upstream error'],
  ['deadLettered', 'dead-lettered'],
  ['failed', 'failed'],
] as const;

/** "6 records: 6 stored", naming only the outcomes that occurred. */
function describeCounts(summary: Record<string, unknown>): string {
  const parts = COUNTS.filter(([key]) => Number(summary[key]) > 0).map(([key, label]) => `${summary[key]} ${label}`);
  return `${summary.received} records: ${parts.join(', ') || 'none settled'}`;
}

// A failure caused by Ctrl-C (the server stopped under a query) is not reported: the stop says what happened.
main().catch((error: unknown) => (stopRequested() ? undefined : exitWithDiagnosis(error)));
