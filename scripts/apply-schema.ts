/**
 * npm run db:apply: brings the database and schema named by DB_* (or the secret DB_SECRET_ARN) and DB_SCHEMA to the
 * newest migration in migrations/, creating the database first when it does not exist. Safe to repeat, and to run
 * from two places at once. See docs/schema-upgrades.md.
 *   npm run db:apply                      # migrations/
 *   npm run db:apply -- path/to/folder    # another folder of NNNN_name.sql files (tests)
 */
import { resolve } from 'node:path';
import { loadConfig, type Config, SCRIPT_CONFIG_FIX } from '../lib/config';
import { credentialSource } from '../lib/aws/database-credentials';
import { createSql } from '../lib/postgres/client';
import { diagnoseDatabaseFailure } from '../lib/postgres/diagnose-failure';
import { DatabaseLoginError, DatabaseSetupError, DatabaseUnreachableError, TraceConsumerError } from '../lib/errors';
import { describeFailure } from '../lib/health/readiness';
import { applySchema, MIGRATIONS_DIR } from './db/migrations';
import { describeDatabaseError, errorCode } from '../lib/postgres/failure-kind';
import { createDatabaseIfMissing } from './db/create-database';

/** The database being migrated, once the configuration is read: every error after that names it. */
let target: Config['db'] | undefined;

async function main() {
  const dir = process.argv[2] ? resolve(process.argv[2]) : MIGRATIONS_DIR;
  const config = loadConfig(process.env, SCRIPT_CONFIG_FIX);
  target = config.db;
  const settings: Config['db'] = { ...config.db, ...(await credentialSource(config.db).get()) };
  target = settings;
  const where = `${settings.host}:${settings.port}/${settings.database}`;
  if (await createDatabaseIfMissing(settings))
    console.log(`Created database "${settings.database}" on ${settings.host}:${settings.port}.`);

  const sql = createSql(settings, { max: 1 });
  try {
    const result = await applySchema(sql, settings.schema, dir);
    if (result.baselined)
      console.log(
        `Schema "${settings.schema}" held the tables of version 1 without a version table; recorded it as version 1.`,
      );
    for (const m of result.applied)
      console.log(`Applied ${m.file}${m.compatible ? ' (compatible with the previous version)' : ''}.`);
    const newest = result.applied.at(-1)?.version ?? result.to;
    console.log(
      result.applied.length === 0
        ? `Schema "${settings.schema}" on ${where} is at version ${result.to}: nothing to apply.`
        : `Schema "${settings.schema}" on ${where} is now at version ${newest} (was ${result.from}).`,
    );
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** `database "trace" at db.example.com:5432 (user "trace", schema "trace")`: where the failure happened. */
function place(settings: Config['db']): string {
  return (
    `database "${settings.database}" at ${settings.host}:${settings.port} (user "${settings.user}", schema ` +
    `"${settings.schema}")`
  );
}

/** What went wrong, where and what to do next, in one message without connection strings or passwords. */
function explain(error: unknown, settings: Config['db'] | undefined): string {
  const message = error instanceof Error ? error.message : String(error);
  // Before the configuration is read (an invalid variable) there is no database to name; the message names the fix.
  if (!settings) return message;
  const on = `npm run db:apply on ${place(settings)}`;
  const diagnosed = diagnoseDatabaseFailure(error);
  if (diagnosed instanceof DatabaseSetupError) {
    const verb =
      diagnosed instanceof DatabaseLoginError
        ? 'could not log in'
        : diagnosed instanceof DatabaseUnreachableError
          ? 'could not reach the database'
          : 'failed';
    return `${on} ${verb}: ${diagnosed.summary}. ${diagnosed.fix} Then run it again.`;
  }
  const code = errorCode(error);
  if (error instanceof TraceConsumerError || code === undefined) return `${on}: ${message}`;
  if (/^[0-9A-Z]{5}$/.test(code)) {
    return (
      `${on} was refused by the database: ${describeDatabaseError(error)}. Next: fix what it names (the user ` +
      'needs CREATE on the database), then run it again.'
    );
  }
  return (
    `${on} could not reach the database: ${describeFailure(error)}. Next: check that it is running and that ` +
    'DB_HOST, DB_PORT and DB_SSL reach it from here, then run it again.'
  );
}

main().catch((error: unknown) => {
  console.error(explain(error, target));
  // The stack and the driver's own error only on request: the message above says what to do.
  if (process.env.LOG_LEVEL === 'debug') console.error(error);
  process.exit(1);
});
