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

  /** `fix`: what to do, for the function by default; a local script names its own (set the variable, run again). */
  constructor(
    problems: ReadonlyArray<{ variable: string; problem: string }>,
    fix = "Fix the function's environment and redeploy.",
  ) {
    const list = problems.map((p) => `${p.variable} ${p.problem}`).join('; ');
    super('CONFIG_INVALID', `Invalid configuration: ${list}. ${fix}`);
    this.problems = problems;
  }
}

/**
 * The invocation's event is not a Kafka event Lambda would send (no `records`, a record without topic, partition
 * or offset). No single record can be blamed, so the whole invocation fails.
 */
export class EnvelopeError extends TraceConsumerError {
  /** `fix`: what to do; by default, check the trigger or wrap the messages into an event. */
  constructor(
    problem: string,
    fix = 'Check that the function is triggered by a Kafka event source mapping; locally, wrap your messages into ' +
      'an event with `npm run build-event` (docs/local-development.md).',
  ) {
    super('EVENT_MALFORMED', `The event is not an Amazon MSK or self-managed Kafka event: ${problem}. ${fix}`);
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
      `${failed} of ${received} records could not be processed and will be retried by Lambda` +
        // A cause this project names (login rejected, schema missing, ...) already says what to do.
        (cause instanceof TraceConsumerError
          ? `: ${cause.message}`
          : '. See the logged cause; the database is usually unreachable or overloaded.'),
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
 * The database cannot be used as configured: a mistake in the setup, not in the data or the moment. `summary` says
 * what is wrong without host, user or path (the health endpoint shows it to anyone); `fix` says what to do.
 */
export class DatabaseSetupError extends TraceConsumerError {
  readonly summary: string;
  readonly fix: string;

  constructor(code: string, detail: string, summary: string, fix: string, cause?: unknown) {
    super(code, `${detail}. ${fix}`, { cause });
    this.summary = summary;
    this.fix = fix;
  }
}

/** Where and as whom a connection logs in: what a person needs to tell which server said no. Never the password. */
export interface DatabaseTarget {
  host: string;
  port: number;
  database: string;
  user: string;
}

/** `user "trace" on database "trace" at db.example.com:5432`: the words every connection error uses for its target. */
function describeTarget(target: DatabaseTarget): string {
  return `user "${target.user}" on database "${target.database}" at ${target.host}:${target.port}`;
}

/** " (user "trace" on database "trace" at host:5432)", or nothing when the target is not known. */
const forTarget = (target?: DatabaseTarget) => (target ? ` (${describeTarget(target)})` : '');

/**
 * PostgreSQL rejected the login (28P01, 28000): wrong user or password, a secret that no longer matches, or another
 * server than the one meant answering at DB_HOST:DB_PORT. The message names that server, the database and the user.
 */
export class DatabaseLoginError extends DatabaseSetupError {
  constructor(sqlState: string, detail: string, cause?: unknown, target?: DatabaseTarget) {
    super(
      'DB_LOGIN_REJECTED',
      `PostgreSQL rejected the login${forTarget(target)}: ${detail}`,
      sqlState === '28P01' ? 'password authentication failed' : 'the database rejected the user',
      'Check DB_USER and DB_PASSWORD, or the secret that DB_SECRET_ARN names.',
      cause,
    );
  }
}

/** The server answered, but the database DB_NAME names does not exist on it (3D000). */
export class DatabaseNotFoundError extends DatabaseSetupError {
  constructor(detail: string, cause?: unknown, target?: DatabaseTarget) {
    super(
      'DB_NOT_FOUND',
      `PostgreSQL answered${forTarget(target)}, but ${detail}`,
      'the database does not exist',
      'Create it (`npm run db:apply` does, or CREATE DATABASE) or set DB_NAME to an existing one.',
      cause,
    );
  }
}

/** Why no connection could be made, by system error code. */
const UNREACHABLE: Record<string, string> = {
  ECONNREFUSED: 'connection refused: the database is not accepting connections',
  ETIMEDOUT: 'connection timed out',
  CONNECT_TIMEOUT: 'no connection within the connect timeout',
  ENOTFOUND: 'database host name not found',
  EAI_AGAIN: 'database host name could not be resolved',
  EHOSTUNREACH: 'no route to the database host',
  ENETUNREACH: 'no route to the database network',
};

/**
 * No connection could be made: nothing listens at DB_HOST:DB_PORT, the name does not resolve, or the network drops it.
 */
export class DatabaseUnreachableError extends DatabaseSetupError {
  constructor(errorCode: string, detail: string, cause?: unknown, target?: DatabaseTarget) {
    super(
      'DB_UNREACHABLE',
      `PostgreSQL could not be reached${forTarget(target)}: ${detail}`,
      UNREACHABLE[errorCode] ?? 'the database could not be reached',
      'Check DB_HOST and DB_PORT and that the server is running (locally: `npm run db`); in Lambda, the subnets and ' +
        'security group that lead to it.',
      cause,
    );
  }
}

/** DB_SSL=verify-full, and the CA bundle DB_SSL_CA names cannot be read. */
export class CaFileMissingError extends DatabaseSetupError {
  constructor(path: string, cause?: unknown) {
    const reason = (cause as { code?: unknown } | null)?.code;
    super(
      'DB_SSL_CA_MISSING',
      `DB_SSL=verify-full needs the CA bundle DB_SSL_CA=${path}, which cannot be read ` +
        `(${typeof reason === 'string' ? reason : 'unreadable'})`,
      'the CA bundle for DB_SSL=verify-full cannot be read',
      'Set DB_SSL_CA to the CA file of your database server, or DB_SSL=disable for a server without TLS ' +
        '(`serverless invoke local` defaults to disable).',
      cause,
    );
  }
}

/**
 * The server asked for the password in cleartext or as an MD5 hash on a connection whose server was not verified
 * (DB_SSL=disable or require), which postgres.js's `require_auth` refuses before anything is sent; or it named a
 * SCRAM iteration count outside 4,096 to 1,000,000 (lib/postgres/scram-iterations.ts), so no proof was computed.
 * Whoever answers at DB_HOST:DB_PORT, or sits between, could ask exactly this to collect the password.
 */
export class DatabaseInsecureAuthError extends DatabaseSetupError {
  readonly method: 'cleartext' | 'md5' | 'other' | 'scram-iterations';

  constructor(
    method: 'cleartext' | 'md5' | 'other' | 'scram-iterations',
    target?: DatabaseTarget,
    iterations?: number,
    cause?: unknown,
  ) {
    const asked =
      method === 'md5'
        ? 'asked for the password as an MD5 hash over a connection whose server is not verified (DB_SSL is not ' +
          'verify-full)'
        : method === 'cleartext'
          ? 'asked for the password in cleartext over a connection whose server is not verified (DB_SSL is not ' +
            'verify-full)'
          : method === 'other'
            ? 'asked for an authentication method other than SCRAM-SHA-256 over a connection whose server is not ' +
              'verified (DB_SSL is not verify-full)'
            : `asked for a SCRAM proof with ${Number.isNaN(iterations) ? 'no readable' : iterations} iterations ` +
              '(accepted: 4096 to 1,000,000)';
    super(
      'DB_INSECURE_AUTH',
      `The server${forTarget(target)} ${asked}; ` +
        `the ${method === 'scram-iterations' ? 'proof was not computed' : 'password was not sent'}`,
      'the server asked for the password in a form that reveals it, or that is cheap to guess from',
      'Set DB_SSL=verify-full (in Lambda the RDS CAs ship with the runtime; elsewhere set DB_SSL_CA to the RDS ' +
        'bundle global-bundle.pem), or let the server use scram-sha-256 (password_encryption = scram-sha-256, ' +
        'set the password again, scram-sha-256 in pg_hba.conf, scram_iterations at its default of 4096 or up to ' +
        '1,000,000).',
      cause,
    );
    this.method = method;
  }
}

/**
 * DB_CHANNEL_BINDING=require, and the login could not be bound to the server's certificate: the server does not
 * offer SCRAM-SHA-256-PLUS (RDS Proxy, PostgreSQL before 11, a server without TLS), asked for a password, or let the
 * client in without SCRAM.
 */
export class DatabaseChannelBindingError extends DatabaseSetupError {
  constructor(detail: string, target?: DatabaseTarget, cause?: unknown) {
    super(
      'DB_CHANNEL_BINDING',
      `DB_CHANNEL_BINDING=require, but the login${forTarget(target)} could not be bound to the server's ` +
        `certificate: ${detail}`,
      'channel binding is required and the server does not support it',
      'Let the server authenticate with scram-sha-256 over TLS (PostgreSQL 11+), or set DB_CHANNEL_BINDING=prefer ' +
        '(the default) when a proxy between cannot bind.',
      cause,
    );
  }
}

/**
 * DB_SSL=require or verify-full, and the server answered that it does not accept TLS connections. Retried with
 * backoff like an unreachable server: RDS always offers TLS, so a refusal is more often something between than the
 * server's setup; when it lasts, the log says what to fix.
 */
export class DatabaseTlsUnavailableError extends DatabaseSetupError {
  constructor(target?: DatabaseTarget, cause?: unknown) {
    super(
      'DB_TLS_UNAVAILABLE',
      `DB_SSL asks for TLS, but the server${forTarget(target)} does not accept TLS connections`,
      'the database does not accept TLS connections',
      'Turn TLS on in the server (ssl = on; RDS always has it), check that nothing between strips it, or set ' +
        'DB_SSL=disable for a local server without TLS.',
      cause,
    );
  }
}

/**
 * The server accepted the TCP connection but never let the session start: it closed the connection (too many
 * connections without saying so, a proxy that cannot reach its database, not PostgreSQL), said it has too many
 * connections (SQLSTATE 53300, whose message names no server), or did not finish startup within DB_CONNECT_TIMEOUT
 * (overloaded, or another service on that port). Transient: retried with backoff.
 */
export class DatabaseStartupFailedError extends DatabaseSetupError {
  constructor(how: 'closed' | 'timeout' | 'full', detail: string, target?: DatabaseTarget, cause?: unknown) {
    super(
      'DB_STARTUP_FAILED',
      `The server was reached${forTarget(target)} but ` +
        (how === 'closed'
          ? 'closed the connection before the session started'
          : how === 'full'
            ? 'has no connection to spare'
            : 'did not finish starting the session within DB_CONNECT_TIMEOUT') +
        `: ${detail}`,
      how === 'closed'
        ? 'the database closed the connection before the session started'
        : how === 'full'
          ? 'the database has too many connections'
          : 'the database did not finish starting the session in time',
      'Check that DB_HOST:DB_PORT is PostgreSQL (or the RDS Proxy endpoint) and not another service, that it is not ' +
        'out of connections (max_connections) or overloaded, and, behind RDS Proxy, that the proxy reaches its ' +
        'database (its target health).',
      cause,
    );
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
      current === 0
        ? // Version 0 is a schema with no version table: never migrated, or DB_SCHEMA names the wrong one.
          `schema version 0, needs ${required}: run npm run db:apply (or set DB_SCHEMA to the schema that holds ` +
            `the tables)`
        : current < required
          ? `schema version ${current}, needs ${required}: run npm run db:apply`
          : `schema version ${current}, needs ${required}: migration${incompatible.length > 1 ? 's' : ''} ` +
            `${incompatible.join(', ')} ${incompatible.length > 1 ? 'are' : 'is'} not marked compatible with ` +
            `older code; deploy code built for schema version ${current}`,
    );
    this.current = current;
    this.required = required;
    this.incompatible = incompatible;
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
    super(
      'OUT_OF_TIME',
      'The invocation is about to time out; the work was not started and is left for Lambda to retry.',
      { cause },
    );
  }
}

/**
 * The connection broke after a transaction's COMMIT was sent, and whether it committed could not be learnt before
 * the time ran out. Nothing is run again: the work may have happened once already.
 */
export class CommitUnknownError extends TraceConsumerError {
  constructor(what: string, cause?: unknown) {
    super(
      'COMMIT_UNKNOWN',
      `The connection broke after ${what} was committed, and whether it committed is unknown. Run the action again: ` +
        'what committed is skipped (summary shows it), what did not is done then.',
      { cause },
    );
  }
}

/**
 * The connection was lost after COMMIT was sent, so whether the transaction committed is not known from it. Carries
 * the transaction's id (txid_current) and what the transaction's work returned: Database.run asks a new connection
 * for the transaction's status (txid_status) and, when it committed, answers with `result` instead of running the
 * work again (which would report what it had just stored as duplicates).
 */
export class CommitUnconfirmedError<T = unknown> extends TraceConsumerError {
  readonly transactionId: string;
  readonly result: T;

  constructor(transactionId: string, result: T, cause: unknown) {
    super(
      'COMMIT_UNCONFIRMED',
      `The connection was lost after COMMIT of transaction ${transactionId} was sent; whether it committed is ` +
        'checked on a new connection. Seen alone in a log, the check itself could not run: the records are ' +
        'reported for retry.',
      { cause },
    );
    this.transactionId = transactionId;
    this.result = result;
  }
}

/**
 * A dead-letter action (the schema check, summary, show, or a redrive or purge that could not run one batch) could not
 * finish in time: its retries or its deadline ran out. `cause` is the last failure: a table locked by another session
 * (55P03, lock_timeout), a statement cancelled (57014, statement_timeout), or none (the database did not answer).
 * Nothing was changed by the unfinished statement; redrive and purge answer `done: false` instead whenever a batch
 * committed.
 */
export class DeadLetterTimeoutError extends TraceConsumerError {
  constructor(action: string, server: string, cause?: unknown) {
    const code = (cause as { code?: unknown } | undefined)?.code;
    const why =
      code === '55P03'
        ? "a table it reads was locked by another session (lock_timeout), such as a migration's ALTER TABLE or a " +
          "VACUUM FULL. Find that session in pg_stat_activity (wait_event_type 'Lock' shows who waits) and run " +
          'the action again once it has ended'
        : code === '57014'
          ? 'a statement took too long and was cancelled (statement_timeout). Narrow the selection (reasons, from, ' +
            'to, ids) or run it again when the database is less busy'
          : "its time (the invocation's remaining time less TIME_RESERVE_MS) ran out before the database answered. " +
            'Check that the database is up and not overloaded, then run it again, or with more time';
    super('DEAD_LETTER_OUT_OF_TIME', `The dead-letter ${action} could not finish in time on ${server}: ${why}.`, {
      cause,
    });
  }
}

/**
 * COMMIT was answered with ROLLBACK: a statement of the transaction failed and the work went on (it caught the
 * error), so PostgreSQL kept nothing of it. A bug in the work, never retried as transient.
 */
export class TransactionRolledBackError extends TraceConsumerError {
  constructor() {
    super(
      'TRANSACTION_ROLLED_BACK',
      'PostgreSQL rolled the transaction back instead of committing it: one of its statements failed and its error ' +
        'was not passed on. Nothing of it was kept; the records are reported for retry. Report this as a bug.',
    );
  }
}

/** A dead-letter operation (summary, show, redrive, purge) was asked for with parameters it cannot use. */
export class DeadLetterRequestError extends TraceConsumerError {
  readonly problems: readonly string[];

  /** `help`: where to read about the actions and options (the docs for the function, `--help` for the CLI). */
  constructor(problems: readonly string[], help = 'See docs/dead-letters.md for each action and its parameters.') {
    super('DEAD_LETTER_REQUEST_INVALID', `The dead-letter request cannot be run: ${problems.join('; ')}. ${help}`);
    this.problems = problems;
  }
}
