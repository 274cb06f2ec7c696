/**
 * Every error this project throws on purpose. Each has a stable `code` that callers and tests branch on, and a
 * message that says what happened and what to do about it. The underlying error, when there is one, is `cause`.
 */
export class TraceConsumerError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** One or more environment variables are missing a required value or hold one that cannot be used. */
export class ConfigError extends TraceConsumerError {
  readonly problems: ReadonlyArray<{ variable: string; problem: string }>;

  constructor(problems: ReadonlyArray<{ variable: string; problem: string }>) {
    const list = problems.map((p) => `${p.variable} ${p.problem}`).join('; ');
    super('CONFIG_INVALID', `Invalid configuration: ${list}. Fix the function's environment and redeploy.`);
    this.problems = problems;
  }
}

/**
 * The invocation's event is not a Kafka event Lambda would send (no `records`, a record without topic, partition
 * or offset). No single record can be blamed, so the whole invocation fails.
 */
export class EnvelopeError extends TraceConsumerError {
  constructor(problem: string) {
    super(
      'EVENT_MALFORMED',
      `The event is not an Amazon MSK or self-managed Kafka event: ${problem}. ` +
        'Check that the function is triggered by a Kafka event source mapping, or rebuild the sample event.',
    );
  }
}

/**
 * Thrown when no record of the batch could be settled, so that Lambda retries the whole batch even where the event
 * source mapping does not honour partial batch responses (or `REPORT_BATCH_ITEM_FAILURES=false`).
 */
export class BatchFailedError extends TraceConsumerError {
  readonly failed: number;
  readonly received: number;

  constructor(failed: number, received: number, cause?: unknown) {
    super(
      'BATCH_FAILED',
      `${failed} of ${received} records could not be processed and will be retried by Lambda. ` +
        'See the logged cause; the database is usually unreachable or overloaded.',
      { cause },
    );
    this.failed = failed;
    this.received = received;
  }
}

/**
 * The schema is at the right version, but tables of it are missing: dropped by hand. schema.sql recreates missing
 * tables (npm run db:apply would not: by the version table there is nothing to apply).
 */
export class SchemaMissingError extends TraceConsumerError {
  readonly tables: readonly string[];

  constructor(tables: readonly string[]) {
    super(
      'SCHEMA_MISSING',
      `missing table${tables.length > 1 ? 's' : ''} ${tables.join(', ')}: apply schema.sql with psql (it recreates ` +
        'missing tables) or set DB_SCHEMA to the schema that holds the tables',
    );
    this.tables = tables;
  }
}

/**
 * The database's schema version is not one this code can work with: behind it (migrations not yet applied), or
 * ahead of it with a migration not marked `-- compatible: true` (code rolled back too far). Retrying cannot help
 * until someone acts, so the invocation fails as a whole and Lambda delivers the batch again later.
 */
export class SchemaVersionError extends TraceConsumerError {
  readonly current: number;
  readonly required: number;
  /** Applied versions above `required` that are not marked compatible (empty when the database is behind). */
  readonly incompatible: readonly number[];

  constructor(current: number, required: number, incompatible: readonly number[] = []) {
    super(
      'SCHEMA_VERSION_MISMATCH',
      current < required
        ? `schema version ${current}, needs ${required}: run npm run db:apply`
        : `schema version ${current}, needs ${required}: migration${incompatible.length > 1 ? 's' : ''} ` +
            `${incompatible.join(', ')} ${incompatible.length > 1 ? 'are' : 'is'} not marked compatible with older code; ` +
            `deploy code built for schema version ${current}`,
    );
    this.current = current;
    this.required = required;
    this.incompatible = incompatible;
  }
}

/** A migration could not be read, checked or applied (npm run db:apply). The message names the file and the fix. */
export class MigrationError extends TraceConsumerError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MIGRATION_FAILED', message, options);
  }
}

/** A health check did not answer in time; the database may be down, overloaded or unreachable. */
export class HealthCheckTimeoutError extends TraceConsumerError {
  constructor(timeoutMs: number) {
    super('HEALTH_TIMEOUT', `no answer within ${timeoutMs} ms`);
  }
}

/** Secrets Manager could not be reached or refused the request: a transient failure, retried like a lost connection. */
export class SecretUnavailableError extends TraceConsumerError {
  constructor(secretArn: string, cause: unknown) {
    const code = (cause as { code?: unknown } | null)?.code;
    const reason = typeof code === 'string' ? code : cause instanceof Error ? cause.name : 'unknown error';
    super(
      'SECRET_UNAVAILABLE',
      `The database secret ${secretArn} could not be read (${reason}). Check that the function may call ` +
        'secretsmanager:GetSecretValue on it and can reach Secrets Manager (a VPC endpoint or NAT in private subnets).',
      { cause },
    );
  }
}

/** The secret was read but is not the JSON that RDS rotation writes. */
export class SecretInvalidError extends TraceConsumerError {
  constructor(secretArn: string, problem: string) {
    super(
      'SECRET_INVALID',
      `The database secret ${secretArn} cannot be used: ${problem}. Store {"username": ..., "password": ...} ` +
        '(and optionally host, port, dbname) as RDS rotation does.',
    );
  }
}

/** No time was left in the invocation to start (or wait for) a database attempt; Lambda's retry is the next one. */
export class OutOfTimeError extends TraceConsumerError {
  constructor(cause?: unknown) {
    super('OUT_OF_TIME', 'The invocation is about to time out; the work was not started and is left for Lambda to retry.', { cause });
  }
}

/** The local Kafka broker (npm run kafka, the end-to-end tests) could not be downloaded or started. */
export class KafkaBrokerError extends TraceConsumerError {
  constructor(problem: string, cause?: unknown) {
    super(
      'KAFKA_BROKER_UNAVAILABLE',
      `The local Kafka broker could not be started: ${problem}. It needs Java 17 or later on PATH and Maven ` +
        '(mvn) reaching Maven Central on the first run; see docs/local-kafka.md.',
      { cause },
    );
  }
}
