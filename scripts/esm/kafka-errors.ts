import { DEFAULT_TOPIC } from '../encode-kafka-event';
import { exitWithDiagnosis } from '../exit-with-diagnosis';
import { KafkaSetupError, UsageError } from '../errors';

/**
 * Ends npm run local:esm, produce or replay after a failure, naming its cause and the next step. The Kafka client
 * reports an absent broker as "metadata failed 4 times." and a missing topic as "Unknown topic x.": true, but
 * neither says what to do. Everything else goes the way of the other scripts (a typed error alone, a bug with its
 * stack, a database mistake diagnosed).
 */
export function exitWithKafkaDiagnosis(error: unknown, env: NodeJS.ProcessEnv = process.env): never {
  return exitWithDiagnosis(diagnoseKafkaFailure(error, env));
}

/** The Kafka client's error as a message that says what to do, or the error itself when it is not a known mistake. */
export function diagnoseKafkaFailure(error: unknown, env: NodeJS.ProcessEnv = process.env): unknown {
  const brokers = env.KAFKA_BROKERS || '127.0.0.1:9092';
  const topic = env.KAFKA_TOPIC || DEFAULT_TOPIC;
  if (
    hasCode(error, 'ERR_PARSE_ARGS_UNKNOWN_OPTION') ||
    hasCode(error, 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') ||
    hasCode(error, 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL')
  ) {
    return new UsageError(
      messageOf(error),
      'The options of npm run local:esm, produce and replay are in docs/local-kafka.md.',
    );
  }
  if (/^Unknown topic /.test(messageOf(error))) {
    return new KafkaSetupError(
      'KAFKA_TOPIC_MISSING',
      `The topic ${topic} does not exist on ${brokers} (KAFKA_TOPIC names it; topics are not created on first use). ` +
        `npm run kafka creates ${DEFAULT_TOPIC} (or the KAFKA_TOPIC it is started with): unset KAFKA_TOPIC or fix it.`,
      error,
    );
  }
  if (someError(error, (e) => hasCode(e, 'PLT_KFK_NETWORK'))) {
    return new KafkaSetupError(
      'KAFKA_UNREACHABLE',
      `No Kafka broker answers at ${brokers} (KAFKA_BROKERS). Start one with \`npm run kafka\` in a terminal of ` +
        'its own and paste the export line it prints, or set KAFKA_BROKERS to your brokers.',
      error,
    );
  }
  return error;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function hasCode(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
}

/** Whether `error` or any error it aggregates (`errors`) or wraps (`cause`) satisfies `test`. */
function someError(error: unknown, test: (e: unknown) => boolean, depth = 0): boolean {
  if (depth > 5 || typeof error !== 'object' || error === null) return false;
  if (test(error)) return true;
  const { errors, cause } = error as { errors?: unknown; cause?: unknown };
  return (
    (Array.isArray(errors) && errors.some((e) => someError(e, test, depth + 1))) || someError(cause, test, depth + 1)
  );
}
