/**
 * npm run db:query: what was stored, without psql (which npm ci does not install), in the database DB_* (or the
 * secret DB_SECRET_ARN) and DB_SCHEMA name, as npm run db:apply reaches it.
 *   npm run db:query                                             # rows per table, traces by status, dead letters
 *   npm run db:query -- "select * from courses limit 5"          # any query; the schema's tables need no prefix
 *   npm run db:query -- "select count(*) from ratings" "select 1"  # several, one after the other
 * Each query is one statement, run in a read-only transaction of a read-only session (nothing can be changed by
 * mistake) under a statement timeout, with the schema on the search path. Bytes are shown as hex, long values cut;
 * the row count follows each table.
 */
import { parseArgs } from 'node:util';
import { loadConfig, SCRIPT_CONFIG_FIX, type Config } from '../lib/config';
import { credentialSource } from '../lib/aws/database-credentials';
import { createSql } from '../lib/postgres/client';
import { UsageError } from './errors';
import { exitWithDiagnosis } from './exit-with-diagnosis';
import { showStored } from './show-stored';

const USAGE = 'usage: npm run db:query [-- "select ..." ...]   (no query: a summary of what was stored)';
/** Characters of a value shown; the rest is cut, with the full length said. */
const SHOWN_CHARS = 80;
/** Seconds a query may run: a mistyped cross join on a large table must not run for good. */
const STATEMENT_TIMEOUT_SECONDS = 60;

/** A value as one table cell: bytes as hex, dates in ISO-8601, JSON as text, long values cut. */
function cell(value: unknown): unknown {
  if (value === null || typeof value === 'number' || typeof value === 'boolean') return value;
  const text = Buffer.isBuffer(value)
    ? `\\x${value.toString('hex')}`
    : value instanceof Date
      ? value.toISOString()
      : Array.isArray(value)
        ? `{${value.map((v) => String(cell(v))).join(',')}}`
        : typeof value === 'object'
          ? JSON.stringify(value)
          : String(value);
  return text.length <= SHOWN_CHARS ? text : `${text.slice(0, SHOWN_CHARS)}... (${text.length} characters)`;
}

/**
 * The extended protocol, which takes one statement only: postgres.js sends an unsafe query without parameters by the
 * simple protocol unless `simple` is false (an option its type definitions leave out).
 */
const ONE_STATEMENT = { prepare: false, simple: false } as { prepare: boolean };

async function main() {
  const { positionals: queries } = parseArgs({ args: process.argv.slice(2), allowPositionals: true, strict: true });
  if (queries.some((q) => q.trim() === '')) throw new UsageError('A query is empty.', USAGE);
  const config = loadConfig(process.env, SCRIPT_CONFIG_FIX);
  const settings: Config['db'] = { ...config.db, ...(await credentialSource(config.db).get()) };
  // Every transaction of the session read-only, not only the one each query runs in; one statement per query (the
  // extended protocol), so that a `commit;` in a query cannot end the read-only transaction and write after it.
  const sql = createSql(settings, {
    max: 1,
    connection: { application_name: 'trace-consumer db:query', default_transaction_read_only: true },
  });
  try {
    if (queries.length === 0) {
      console.log(
        `What is stored in schema "${settings.schema}" on ${settings.host}:${settings.port}/${settings.database}:`,
      );
      await showStored(sql, settings.schema);
      return;
    }
    for (const query of queries) {
      const rows = await sql.begin('read only', async (tx) => {
        await tx`select set_config('search_path', ${`"${settings.schema}", public`}, true)`;
        await tx`select set_config('statement_timeout', ${`${STATEMENT_TIMEOUT_SECONDS}s`}, true)`;
        try {
          return await tx.unsafe(query, [], ONE_STATEMENT);
        } catch (error) {
          const { code, message } = error as { code?: string; message?: string };
          // The query's own mistake (syntax, a missing table, a write in the read-only transaction): said plainly.
          if (typeof code === 'string' && /^(?!08|28|3D)[0-9A-Z]{5}$/.test(code))
            throw new UsageError(`PostgreSQL refused the query (${code}): ${message}`, USAGE);
          throw error;
        }
      });
      if (queries.length > 1) console.log(`\n${query}`);
      console.table(rows.map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, cell(v)]))));
      console.log(`(${rows.length} ${rows.length === 1 ? 'row' : 'rows'})`);
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}

main().catch(exitWithDiagnosis);
