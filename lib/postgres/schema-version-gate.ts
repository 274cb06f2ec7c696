import type { Database } from './database';
import type { Queryable } from './client';
import type { Deadline } from '../deadline';
import { DatabaseSetupError, SchemaVersionError } from '../errors';
import { diagnoseDatabaseFailure } from './diagnose-failure';
import type { Logger } from '../log';
import { type TtlCache, ttlCache } from '../ttl-cache';
import { SCHEMA_VERSION } from './schema-version';
import { tableIdentifiers, tableName, VERSION_TABLE } from './table-names';
import { runInTransaction } from './retry';

export interface AppliedMigration {
  version: number;
  compatible: boolean;
}

/** The migrations applied to `schema`, in order; none when the schema, or its version table, does not exist. */
async function readAppliedMigrations(sql: Queryable, schema: string): Promise<AppliedMigration[]> {
  const [found] = await sql<
    { exists: boolean }[]
  >`select to_regclass(${tableName(schema, VERSION_TABLE)}) is not null as exists`;
  if (!found?.exists) return [];
  return sql<
    AppliedMigration[]
  >`select version, compatible from ${tableIdentifiers(sql, schema)[VERSION_TABLE]} order by version`;
}

export interface VersionVerdict {
  /** The database's version: the highest applied migration, 0 for an empty schema or one without version table. */
  current: number;
  required: number;
  /** The database is ahead of the code, and every migration above `required` is marked compatible. */
  ahead: boolean;
}

/**
 * Can code that needs schema version `required` work on a database where `applied` are applied? Behind: no. Ahead:
 * only when every migration above `required` declared itself compatible with the code before it, which is what
 * makes a rollback of the code (never of the database) safe. Throws SchemaVersionError when it cannot.
 */
export function verifySchemaVersion(
  applied: readonly AppliedMigration[],
  required: number = SCHEMA_VERSION,
): VersionVerdict {
  const current = applied.reduce((max, m) => Math.max(max, m.version), 0);
  if (current < required) throw new SchemaVersionError(current, required);
  const incompatible = applied.filter((m) => m.version > required && !m.compatible).map((m) => m.version);
  if (incompatible.length > 0) throw new SchemaVersionError(current, required, incompatible);
  return { current, required, ahead: current > required };
}

/**
 * Reads the migrations applied to `schema` through `run` (the caller's way to reach the database: the consumer's
 * deadline, health's timeouts, the dead-letter action's context) and verifies them against `required`. The one
 * schema-version check of the consumer, the health function and the dead-letter function. Throws
 * SchemaVersionError when the code cannot work on this database, and whatever `run` throws when it cannot be read.
 */
export async function checkSchemaVersion(
  run: (work: (sql: Queryable) => Promise<AppliedMigration[]>) => Promise<AppliedMigration[]>,
  schema: string,
  required: number = SCHEMA_VERSION,
): Promise<VersionVerdict> {
  return verifySchemaVersion(await run((sql) => readAppliedMigrations(sql, schema)), required);
}

/**
 * The consumer's schema check, once per execution environment: the first invocation reads the version table, and
 * once the version is right no later invocation asks again (a migration that makes it wrong is applied before new
 * code, see docs/schema-upgrades.md). A wrong version throws SchemaVersionError every time, so that the invocation
 * fails and Lambda delivers the batch again later, after someone ran npm run db:apply. A check that could not run
 * (the database is unreachable) decides nothing: the batch goes on to the usual retries, and the next invocation
 * checks again. Neither failure is cached.
 */
/**
 * The version check's server-side timeouts, as shares of the time left. Database.run's timer only drops the
 * connection, and PostgreSQL does not notice a vanished client while its backend waits for a lock, so a locked
 * version table (VACUUM FULL, an ALTER) would keep one backend queued per invocation. The lock wait gets a quarter of
 * the time left: a check that cannot run decides nothing, and the batch keeps the rest.
 */
const CHECK_TIMEOUTS = { statement: 0.9, lock: 0.25 };

export class SchemaGate {
  private readonly verified: TtlCache<VersionVerdict, [Database, Deadline, () => number]>;

  constructor(
    private readonly schema: string,
    private readonly required: number = SCHEMA_VERSION,
  ) {
    this.verified = ttlCache(
      (database: Database, deadline: Deadline, now: () => number) =>
        checkSchemaVersion(
          (work) =>
            runInTransaction(database, work, {
              deadline,
              now,
              maxRetries: 0,
              backoffMs: 0,
              timeoutShares: CHECK_TIMEOUTS,
            }),
          this.schema,
          this.required,
        ),
      () => Infinity,
    );
  }

  async ensure(database: Database, logger: Logger, deadline: Deadline, now: () => number = Date.now): Promise<void> {
    let verdict: { value: VersionVerdict; cached: boolean };
    try {
      verdict = await this.verified.get(database, deadline, now);
    } catch (error) {
      if (error instanceof SchemaVersionError) {
        logger.error('schema version mismatch; the batch is left for Lambda to retry', { error });
        throw error;
      }
      // A login or connection that fails fails the batch's writes too, which log it as their error: once is enough.
      const level = diagnoseDatabaseFailure(error) instanceof DatabaseSetupError ? 'debug' : 'warn';
      logger[level]('schema version could not be read; checked again on the next invocation', { error });
      return;
    }
    const { value, cached } = verdict;
    if (value.ahead && !cached) {
      logger.warn('database schema is ahead of the code, and compatible with it', {
        current: value.current,
        required: value.required,
      });
    }
  }
}
