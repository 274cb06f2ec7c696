import { TraceConsumerError } from '../lib/errors';

/** A migration could not be read, checked or applied (npm run db:apply). The message names the file and the fix. */
export class MigrationError extends TraceConsumerError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MIGRATION_FAILED', message, options);
  }
}

/** A command-line script was called with arguments it cannot use; nothing was started. */
export class UsageError extends TraceConsumerError {
  constructor(problem: string, usage: string) {
    super('USAGE', `${problem}\n${usage}`);
  }
}

/** The embedded PostgreSQL of npm start, npm run db or the tests did not start; its last log lines say why. */
export class LocalServerError extends TraceConsumerError {
  /** `port` is null when the server failed before one was chosen (initdb). */
  constructor(port: number | null, log: string, cause?: unknown) {
    const running = /lock file "postmaster\.pid" already exists[\s\S]*?\(PID (\d+)\)/.exec(log);
    const otherPort = port === null ? '<another port>' : String(port + 1);
    const hint = running
      ? // --reset here would delete the data of the server that is running: never suggest it.
        `Another PostgreSQL (PID ${running[1]}) is already running on this data folder, probably another ` +
        '`npm run db`: use that one (its `export` line), or stop it with Ctrl-C in its terminal. A second server ' +
        `needs a folder and port of its own: npm run db -- --data <folder> --port ${otherPort}.`
      : /already in use/i.test(log)
        ? `Port ${port} is in use (another \`npm run db\`?): stop that server or choose another port (npm run ` +
          `db -- --port ${otherPort}).`
        : 'See its log below; `npm run db -- --reset` starts from empty data (it deletes the data folder).';
    super(
      'LOCAL_SERVER_FAILED',
      `The embedded PostgreSQL did not start${port === null ? '' : ` on port ${port}`}. ${hint}\n${log}`,
      { cause },
    );
  }
}

/**
 * npm run local:esm, produce or replay cannot use Kafka as configured: no broker answers at KAFKA_BROKERS
 * (`KAFKA_UNREACHABLE`), or KAFKA_TOPIC names a topic the broker does not have (`KAFKA_TOPIC_MISSING`); npm run
 * kafka cannot listen on KAFKA_PORT because something else does (`KAFKA_PORT_IN_USE`).
 */
export class KafkaSetupError extends TraceConsumerError {
  constructor(
    code: 'KAFKA_UNREACHABLE' | 'KAFKA_TOPIC_MISSING' | 'KAFKA_PORT_IN_USE',
    message: string,
    cause?: unknown,
  ) {
    super(code, message, { cause });
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
