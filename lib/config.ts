import * as v from 'valibot';
import { ConfigError } from './errors';

/** Log levels of the service this replaces, lowest first. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The largest MAX_RECORD_BYTES and MAX_TEXT_CHARS: 6 MiB. Lambda hands a function at most 6 MB per invocation
 * (base64 and the event's JSON included), so no record value can be larger; nor can a text inside one.
 */
export const INPUT_CAP_CEILING = 6 * 1024 * 1024;

/** A PostgreSQL identifier we can quote safely and that needs no quoting to be typed by hand. */
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

export const integer = (min: number, max: number) =>
  v.pipe(
    v.string(),
    v.trim(),
    v.regex(/^-?\d+$/, 'must be a whole number'),
    v.transform(Number),
    v.number(),
    v.minValue(min, `must be at least ${min}`),
    v.maxValue(max, `must be at most ${max}`),
  );

const boolean = v.pipe(
  v.string(),
  v.trim(),
  v.toLowerCase(),
  v.picklist(['true', 'false', '1', '0', 'yes', 'no'], 'must be true or false'),
  v.transform((s) => s === 'true' || s === '1' || s === 'yes'),
);

export const nonEmpty = v.pipe(v.string(), v.trim(), v.nonEmpty('must not be empty'));

/**
 * One entry per environment variable: its schema and its default (as the string the environment would hold).
 * Defaults follow the Python service where they apply; DB_HOST and DB_USER had cluster-specific defaults there.
 */
export const VARIABLES = {
  DB_HOST: { schema: nonEmpty, default: 'localhost' },
  DB_PORT: { schema: integer(1, 65535), default: '5432' },
  DB_NAME: { schema: nonEmpty, default: 'trace' },
  DB_SCHEMA: {
    schema: v.pipe(v.string(), v.trim(), v.regex(IDENTIFIER, 'must be a lower-case identifier ([a-z_][a-z0-9_]*)')),
    default: 'trace',
  },
  DB_USER: { schema: nonEmpty, default: 'postgres' },
  DB_PASSWORD: { schema: v.string(), default: '' },
  /** Seconds to wait for a connection before counting the attempt as a transient failure. */
  DB_CONNECT_TIMEOUT: { schema: integer(1, 300), default: '5' },
  /** Secrets Manager secret with the credentials (RDS rotation's JSON); its fields override DB_*. */
  DB_SECRET_ARN: {
    schema: v.union(
      [
        v.literal(''),
        v.pipe(
          v.string(),
          v.trim(),
          v.regex(/^arn:aws[\w-]*:secretsmanager:[\w-]+:\d{12}:secret:.+$/, 'must be a Secrets Manager secret ARN'),
        ),
      ],
      'must be a Secrets Manager secret ARN',
    ),
    default: '',
  },
  /** Seconds a fetched secret is trusted before it is fetched again (a rejected password refetches at once). */
  DB_SECRET_TTL_SECONDS: { schema: integer(0, 86_400), default: '300' },
  /** Connections per execution environment. One invocation runs at a time, and a batch pipelines on one. */
  DB_POOL_MAX: { schema: integer(1, 20), default: '1' },
  /** Seconds an unused connection stays open; short, so a socket frozen with the environment is not reused. */
  DB_IDLE_TIMEOUT: { schema: integer(0, 3600), default: '60' },
  /** Seconds a connection may live at all; spreads reconnects after failovers and RDS Proxy rebalancing. */
  DB_MAX_LIFETIME: { schema: integer(0, 86_400), default: '1800' },
  /** false for RDS Proxy: prepared statements pin its connections. */
  DB_PREPARE: { schema: boolean, default: 'true' },
  /** TLS to the database: disable, require (encrypted, unverified) or verify-full (against DB_SSL_CA). */
  DB_SSL: {
    schema: v.pipe(
      v.string(),
      v.trim(),
      v.toLowerCase(),
      v.picklist(['disable', 'require', 'verify-full'], 'must be disable, require or verify-full'),
    ),
    default: 'disable',
  },
  /** CA bundle for verify-full. Lambda's Node.js runtimes ship the RDS CAs at this path. */
  DB_SSL_CA: { schema: nonEmpty, default: '/var/runtime/ca-cert.pem' },
  /**
   * SCRAM-SHA-256-PLUS, which binds the login to the server's certificate so that a man in the middle holding
   * another certificate cannot relay it: prefer (when the server offers it), require (refuse any login that is not
   * bound: needs TLS and SCRAM), or disable. As libpq's channel_binding.
   */
  DB_CHANNEL_BINDING: {
    schema: v.pipe(
      v.string(),
      v.trim(),
      v.toLowerCase(),
      v.picklist(['prefer', 'require', 'disable'], 'must be prefer, require or disable'),
    ),
    default: 'prefer',
  },
  /** postgres (ask for TLS first, one round trip) or direct (TLS from the first byte; PostgreSQL 17+). */
  DB_SSL_NEGOTIATION: {
    schema: v.pipe(
      v.string(),
      v.trim(),
      v.toLowerCase(),
      v.picklist(['postgres', 'direct'], 'must be postgres or direct'),
    ),
    default: 'postgres',
  },
  /**
   * Bytes of a record value the consumer reads (lib/batch/input-limits.ts): 1 MiB, Kafka's default maximum message
   * size, by default; a larger value is dead-lettered as `too_large`, bytes kept. Raise it for a broker configured for
   * larger messages.
   */
  MAX_RECORD_BYTES: { schema: integer(1024, INPUT_CAP_CEILING), default: '1048576' },
  /** Characters of a free-text field (course name, question, comment, upstream error): 64 Ki by default. */
  MAX_TEXT_CHARS: { schema: integer(1024, INPUT_CAP_CEILING), default: '65536' },
  MAX_RETRIES: { schema: integer(0, 20), default: '3' },
  RETRY_BACKOFF_MS: { schema: integer(0, 600_000), default: '1000' },
  LOG_LEVEL: {
    schema: v.pipe(
      v.string(),
      v.trim(),
      v.toLowerCase(),
      v.picklist(LOG_LEVELS, `must be one of ${LOG_LEVELS.join(', ')}`),
    ),
    default: 'info',
  },
  REPORT_BATCH_ITEM_FAILURES: { schema: boolean, default: 'true' },
  /** Milliseconds of the invocation kept free: no new database attempt starts with less time than this left. */
  TIME_RESERVE_MS: { schema: integer(0, 900_000), default: '5000' },
  /**
   * Seconds a consumer invocation waits before failing on a deployment-class failure (schema version, rejected
   * login, missing database or grants): Lambda's retries then span minutes instead of milliseconds. Capped by the
   * invocation's deadline; 0 fails at once.
   */
  SETUP_FAILURE_HOLD_SECONDS: { schema: integer(0, 900), default: '60' },
  /** CloudWatch namespace of the batch metrics (Embedded Metric Format). */
  METRICS_NAMESPACE: {
    schema: v.pipe(
      v.string(),
      v.trim(),
      v.regex(/^[\w./#:-]{1,255}$/, 'must be a CloudWatch namespace (letters, digits, . _ - / # :)'),
    ),
    default: 'TraceConsumer',
  },
  /** Seconds a readiness or freshness result is reused, so that monitors cannot overload the database. */
  HEALTH_CHECK_INTERVAL: { schema: integer(0, 86_400), default: '60' },
  /** Milliseconds each readiness check, and the freshness query, may take before it counts as failed. */
  HEALTH_TIMEOUT_MS: { schema: integer(100, 60_000), default: '2000' },
  /** Seconds without a stored trace after which /healthz reports stale; "never" turns staleness off. */
  HEALTH_STALE_AFTER_SECONDS: {
    schema: v.union(
      [
        v.pipe(
          v.literal('never'),
          v.transform(() => null),
        ),
        integer(1, 365 * 86_400),
      ],
      'must be a number of seconds or "never"',
    ),
    default: 'never',
  },
} as const;

/** A table of environment variables: each one's schema, and its default as the string the environment would hold. */
export type VariableSpecs = Record<string, { readonly schema: v.GenericSchema; readonly default: string }>;
export type ParsedVariables<V extends VariableSpecs> = { [K in keyof V]: v.InferOutput<V[K]['schema']> };

/**
 * Validates every variable of `specs` from `env`, an empty string counting as unset. All problems are named in one
 * {@link ConfigError} (with `fix` as what to do), so a broken setup is fixed in one round; passwords and secrets are
 * never echoed.
 */
export function parseVariables<V extends VariableSpecs>(
  specs: V,
  env: Record<string, string | undefined>,
  fix?: string,
): ParsedVariables<V> {
  const problems: { variable: string; problem: string }[] = [];
  const parsed: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(specs)) {
    const raw = env[name];
    const result = v.safeParse(spec.schema, raw === undefined || raw === '' ? spec.default : raw);
    if (result.success) parsed[name] = result.output;
    else problems.push({ variable: name, problem: `${result.issues[0].message} (got "${redact(name, raw)}")` });
  }
  if (problems.length > 0) throw new ConfigError(problems, fix);
  return parsed as ParsedVariables<V>;
}

export interface Config {
  db: {
    host: string;
    port: number;
    database: string;
    schema: string;
    user: string;
    password: string;
    connectTimeoutSeconds: number;
    secretArn: string | null;
    secretTtlSeconds: number;
    poolMax: number;
    idleTimeoutSeconds: number;
    maxLifetimeSeconds: number;
    prepare: boolean;
    ssl: 'disable' | 'require' | 'verify-full';
    sslCa: string;
    channelBinding: 'prefer' | 'require' | 'disable';
    sslNegotiation: 'postgres' | 'direct';
  };
  retry: { maxRetries: number; backoffMs: number };
  /** Input size caps: bytes of a record value, characters of a free-text field (lib/batch/input-limits.ts). */
  limits: { recordBytes: number; textChars: number };
  logLevel: LogLevel;
  reportBatchItemFailures: boolean;
  timeReserveMs: number;
  setupFailureHoldMs: number;
  metricsNamespace: string;
  health: { checkIntervalSeconds: number; timeoutMs: number; staleAfterSeconds: number | null };
}

/** What a local script's ConfigError tells the user to do: the default speaks of a deployed function. */
export const SCRIPT_CONFIG_FIX =
  'Fix the variable in your shell (or unset it for its default) and run the command again.';

/**
 * Reads and validates the configuration from `env`. Every invalid variable is named in one {@link ConfigError}, so a
 * broken deploy is fixed in one round. An empty string counts as unset, as it does in most deploy tools.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env, fix?: string): Config {
  const p = parseVariables(VARIABLES, env, fix);
  const tlsProblems = [
    ...(p.DB_CHANNEL_BINDING === 'require' && p.DB_SSL === 'disable'
      ? [
          {
            variable: 'DB_CHANNEL_BINDING',
            problem: 'is require, which needs TLS: set DB_SSL to require or verify-full',
          },
        ]
      : []),
    ...(p.DB_SSL_NEGOTIATION === 'direct' && p.DB_SSL === 'disable'
      ? [{ variable: 'DB_SSL_NEGOTIATION', problem: 'is direct, which is TLS: set DB_SSL to require or verify-full' }]
      : []),
  ];
  if (tlsProblems.length > 0) throw new ConfigError(tlsProblems, fix);
  return {
    db: {
      host: p.DB_HOST,
      port: p.DB_PORT,
      database: p.DB_NAME,
      schema: p.DB_SCHEMA,
      user: p.DB_USER,
      password: p.DB_PASSWORD,
      connectTimeoutSeconds: p.DB_CONNECT_TIMEOUT,
      secretArn: p.DB_SECRET_ARN === '' ? null : p.DB_SECRET_ARN,
      secretTtlSeconds: p.DB_SECRET_TTL_SECONDS,
      poolMax: p.DB_POOL_MAX,
      idleTimeoutSeconds: p.DB_IDLE_TIMEOUT,
      maxLifetimeSeconds: p.DB_MAX_LIFETIME,
      prepare: p.DB_PREPARE,
      ssl: p.DB_SSL as Config['db']['ssl'],
      sslCa: p.DB_SSL_CA,
      channelBinding: p.DB_CHANNEL_BINDING as Config['db']['channelBinding'],
      sslNegotiation: p.DB_SSL_NEGOTIATION as Config['db']['sslNegotiation'],
    },
    retry: { maxRetries: p.MAX_RETRIES, backoffMs: p.RETRY_BACKOFF_MS },
    limits: { recordBytes: p.MAX_RECORD_BYTES, textChars: p.MAX_TEXT_CHARS },
    logLevel: p.LOG_LEVEL,
    reportBatchItemFailures: p.REPORT_BATCH_ITEM_FAILURES,
    timeReserveMs: p.TIME_RESERVE_MS,
    setupFailureHoldMs: p.SETUP_FAILURE_HOLD_SECONDS * 1000,
    metricsNamespace: p.METRICS_NAMESPACE,
    health: {
      checkIntervalSeconds: p.HEALTH_CHECK_INTERVAL,
      timeoutMs: p.HEALTH_TIMEOUT_MS,
      staleAfterSeconds: p.HEALTH_STALE_AFTER_SECONDS,
    },
  };
}

function redact(name: string, raw: string | undefined): string {
  return /PASSWORD|SECRET/.test(name) ? '***' : String(raw);
}
