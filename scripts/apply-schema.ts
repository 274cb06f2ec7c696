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
import { DatabaseSetupError, TraceConsumerError } from '../lib/errors';
import { describeFailure } from '../lib/health/readiness';
import { applySchema, MIGRATIONS_DIR } from './db/migrations';
import { describeDatabaseError, errorCode } from '../lib/postgres/failure-kind';
import { createDatabaseIfMissing } from './db/create-database';

async function main() {
  const dir = process.argv[2] ? resolve(process.argv[2]) : MIGRATIONS_DIR;
  const config = loadConfig(process.env, SCRIPT_CONFIG_FIX);
  const settings: Config['db'] = { ...config.db, ...(await credentialSource(config.db).get()) };
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

/**
 * The cause in a few words: a setup mistake's summary (lib/postgres/diagnose-failure.ts), else the health function's
 * wording.
 */
function cause(error: unknown): string {
  const diagnosed = diagnoseDatabaseFailure(error);
  return diagnosed instanceof DatabaseSetupError ? diagnosed.summary : describeFailure(error);
}

/** What went wrong and what to do next, without connection strings or passwords. */
function explain(error: unknown): string {
  const code = errorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof TraceConsumerError || code === undefined) return message;
  if (code === '28P01' || code === '28000') {
    return (
      `npm run db:apply could not log in: ${cause(error)}. Next: check DB_USER and DB_PASSWORD (or the ` +
      `secret DB_SECRET_ARN names), then run it again.`
    );
  }
  if (/^[0-9A-Z]{5}$/.test(code)) {
    return (
      `npm run db:apply was refused by the database: ${describeDatabaseError(error)}. Next: fix what it ` +
      `names (the user needs CREATE on the database), then run it again.`
    );
  }
  return (
    `npm run db:apply could not reach the database: ${cause(error)}. Next: check that it is running and ` +
    `that DB_HOST, DB_PORT and DB_SSL reach it from here, then run it again.`
  );
}

main().catch((error) => {
  console.error(explain(error));
  process.exit(1);
});
