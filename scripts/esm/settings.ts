/**
 * Settings of the local Kafka tools (local:esm, produce, replay), read once from the environment and validated.
 * They are not the Lambda function's configuration (that is lib/config.ts): in AWS the event source mapping holds
 * them. The KAFKA_* names are the Python service's, so its .env files work unchanged.
 */
import * as v from 'valibot';
import { integer, nonEmpty, parseVariables } from '../../lib/config';
import { DEFAULT_TOPIC } from '../encode-kafka-event';

const text = v.pipe(v.string(), v.trim());

/** Every variable with its schema and default; docs/local-kafka.md's settings table is checked against it. */
export const VARIABLES = {
  /** Comma-separated host:port list. */
  KAFKA_BROKERS: {
    schema: v.pipe(nonEmpty, v.regex(/^[^,\s]+:\d+(,[^,\s]+:\d+)*$/, 'must be host:port[,host:port...]')),
    default: '127.0.0.1:9092',
  },
  KAFKA_TOPIC: { schema: nonEmpty, default: DEFAULT_TOPIC },
  KAFKA_CONSUMER_GROUP: { schema: nonEmpty, default: 'trace-consumer' },
  /** SASL credentials; SASL is used when KAFKA_USERNAME is set. */
  KAFKA_USERNAME: { schema: text, default: '' },
  KAFKA_PASSWORD: { schema: v.string(), default: '' },
  KAFKA_SASL_MECHANISM: {
    schema: v.picklist(['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'], 'must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512'),
    default: 'SCRAM-SHA-512',
  },
  KAFKA_TLS: { schema: v.picklist(['true', 'false'], 'must be true or false'), default: 'false' },
  /** Which of Lambda's two event shapes to build. */
  ESM_EVENT_SOURCE: {
    schema: v.picklist(['self-managed', 'msk'], 'must be self-managed or msk'),
    default: 'self-managed',
  },
  /** Lambda's BatchSize: records per invocation (1-10,000). */
  ESM_BATCH_SIZE: { schema: integer(1, 10_000), default: '100' },
  /** Lambda's MaximumBatchingWindowInSeconds, in milliseconds: how long records wait for a fuller batch. */
  ESM_BATCHING_WINDOW_MS: { schema: integer(0, 300_000), default: '500' },
  /** Lambda's MaximumRetryAttempts: -1 retries forever. */
  ESM_MAX_RETRIES: { schema: integer(-1, 10_000), default: '3' },
  /** Milliseconds before the first retry; doubles per retry up to a minute. */
  ESM_RETRY_BACKOFF_MS: { schema: integer(0, 60_000), default: '1000' },
  /** The on-failure destination: a JSON-lines file of the ranges given up on. */
  ESM_ON_FAILURE_FILE: { schema: nonEmpty, default: 'esm-on-failure.jsonl' },
  /** The function's timeout, as in serverless.yml: what the context's getRemainingTimeInMillis counts down from. */
  ESM_FUNCTION_TIMEOUT_SECONDS: { schema: integer(1, 900), default: '120' },
  /** Where a group without committed offsets starts: TRIM_HORIZON (earliest) or LATEST. */
  ESM_STARTING_POSITION: {
    schema: v.picklist(['TRIM_HORIZON', 'LATEST'], 'must be TRIM_HORIZON or LATEST'),
    default: 'TRIM_HORIZON',
  },
} as const;

export interface KafkaSettings {
  brokers: string[];
  topic: string;
  group: string;
  sasl: { mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512'; username: string; password: string } | null;
  tls: boolean;
}

export interface EsmSettings {
  kafka: KafkaSettings;
  eventSource: 'self-managed' | 'msk';
  batchSize: number;
  batchingWindowMs: number;
  maxRetries: number;
  retryBackoffMs: number;
  onFailureFile: string;
  functionTimeoutMs: number;
  startingPosition: 'TRIM_HORIZON' | 'LATEST';
}

/** Reads every variable; all problems are named in one ConfigError. An empty string counts as unset. */
export function loadEsmSettings(env: Record<string, string | undefined> = process.env): EsmSettings {
  const p = parseVariables(VARIABLES, env, 'Fix the variable (docs/local-kafka.md lists them) and run it again.');
  return {
    kafka: {
      brokers: p.KAFKA_BROKERS.split(','),
      topic: p.KAFKA_TOPIC,
      group: p.KAFKA_CONSUMER_GROUP,
      sasl:
        p.KAFKA_USERNAME === ''
          ? null
          : { mechanism: p.KAFKA_SASL_MECHANISM, username: p.KAFKA_USERNAME, password: p.KAFKA_PASSWORD },
      tls: p.KAFKA_TLS === 'true',
    },
    eventSource: p.ESM_EVENT_SOURCE,
    batchSize: p.ESM_BATCH_SIZE,
    batchingWindowMs: p.ESM_BATCHING_WINDOW_MS,
    maxRetries: p.ESM_MAX_RETRIES,
    retryBackoffMs: p.ESM_RETRY_BACKOFF_MS,
    onFailureFile: p.ESM_ON_FAILURE_FILE,
    functionTimeoutMs: p.ESM_FUNCTION_TIMEOUT_SECONDS * 1000,
    startingPosition: p.ESM_STARTING_POSITION,
  };
}

/** The connection options every @platformatic/kafka client takes. */
export function clientOptions(kafka: KafkaSettings, clientId: string) {
  return {
    clientId,
    bootstrapBrokers: kafka.brokers,
    ...(kafka.sasl ? { sasl: kafka.sasl } : {}),
    ...(kafka.tls ? { tls: {} } : {}),
  };
}
