/**
 * The dead-letter function's actions against the database configured by DB_* and DB_SCHEMA (as npm run db:apply):
 *   npm run dead-letters -- summary
 *   npm run dead-letters -- show --reasons invalid_message --limit 5
 *   npm run dead-letters -- redrive --reasons invalid_message --dry-run
 *   npm run dead-letters -- purge --redriven --no-dry-run
 * Prints the answer as JSON on standard output and the log line on standard error. See docs/dead-letters.md.
 */
import { loadConfig, SCRIPT_CONFIG_FIX } from '../lib/config';
import { credentialSource } from '../lib/aws/database-credentials';
import { Database } from '../lib/postgres/database';
import { runDeadLetterAction } from '../lib/dead-letters/run-action';
import { createLogger } from '../lib/log';
import { requestFromArgs } from './dead-letter-args';
import { exitWithDiagnosis } from './exit-with-diagnosis';

/** A run from a terminal has no Lambda deadline; long redrives stop after this and say where to resume. */
const TIME_BUDGET_MS = 15 * 60_000;

async function main() {
  const request = requestFromArgs(process.argv.slice(2));
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
    });
    process.stdout.write(JSON.stringify(response, null, 2) + '\n');
  } finally {
    await database.end();
  }
}

main().catch(exitWithDiagnosis);
