/**
 * The dead-letter function's actions against the database configured by DB_* and DB_SCHEMA (as npm run db:apply):
 *   npm run dead-letters -- summary
 *   npm run dead-letters -- show --reasons invalid_message --limit 5
 *   npm run dead-letters -- redrive --reasons invalid_message --dry-run
 *   npm run dead-letters -- purge --redriven --no-dry-run
 *   npm run dead-letters -- --help
 * Prints the answer as JSON on standard output and the log line on standard error; a failure as one message naming
 * its cause and fix (its stack too with LOG_LEVEL=debug), exit code 1. See docs/dead-letters.md.
 */
import { loadConfig, SCRIPT_CONFIG_FIX } from '../lib/config';
import { credentialSource } from '../lib/aws/database-credentials';
import { Database } from '../lib/postgres/database';
import { runDeadLetterAction } from '../lib/dead-letters/run-action';
import { parseRequest } from '../lib/dead-letters/request';
import { diagnoseDatabaseFailure } from '../lib/postgres/diagnose-failure';
import { TraceConsumerError } from '../lib/errors';
import { createLogger } from '../lib/log';
import { FLAG_NAMING, helpText, requestFromArgs } from './dead-letter-args';

/** A run from a terminal has no Lambda deadline; long redrives stop after this and say where to resume. */
const TIME_BUDGET_MS = 15 * 60_000;

async function main() {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(helpText() + '\n');
    return;
  }
  const request = requestFromArgs(args);
  // Checked here first, so that a problem names the options as they were typed (--older-than-days).
  parseRequest(request, FLAG_NAMING);
  const config = loadConfig(process.env, SCRIPT_CONFIG_FIX);
  const database = new Database(config.db, credentialSource(config.db));
  const deadline = Date.now() + TIME_BUDGET_MS - config.timeReserveMs;
  try {
    const response = await runDeadLetterAction(request, {
      database,
      config,
      logger: createLogger(config.logLevel, { service: 'trace-consumer-dead-letters' }, (line) =>
        process.stderr.write(line + '\n'),
      ),
      deadline,
      // Printed below, once.
      logFailure: false,
    });
    process.stdout.write(JSON.stringify(response, null, 2) + '\n');
    if ((response.action === 'redrive' || response.action === 'purge') && !response.done)
      process.stderr.write(
        `Not done: the ${response.action} stopped at id ${response.cursor} (time or --limit). Run it again to go on ` +
          `(--after ${response.cursor} continues from there).\n`,
      );
  } finally {
    await database.end();
  }
}

/**
 * A failure, once: a known one (a bad option, a rejected login, a missing database, a locked table, ...) as its
 * message alone, which names the cause, the place and the fix; anything else as its message too. The stack trace
 * only with LOG_LEVEL=debug.
 */
main().catch((error: unknown) => {
  const diagnosed = diagnoseDatabaseFailure(error);
  const debug = process.env.LOG_LEVEL === 'debug';
  if (debug) console.error(diagnosed);
  else if (diagnosed instanceof TraceConsumerError) console.error(`${diagnosed.name}: ${diagnosed.message}`);
  else console.error(`${String(diagnosed)} (LOG_LEVEL=debug shows where)`);
  process.exitCode = 1;
});
