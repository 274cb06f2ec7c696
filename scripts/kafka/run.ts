/**
 * npm run kafka: a single-node Apache Kafka broker for the local loop, with the consumer's topic created, until
 * Ctrl-C. Prints the `export` line for KAFKA_BROKERS that `npm run local:esm`, `produce` and `replay` read.
 * KAFKA_PORT picks the port (default 9092), KAFKA_PARTITIONS the topic's partition count (default 4).
 */
import { createServer } from 'node:net';
import { DEFAULT_TOPIC } from '../encode-kafka-event';
import { exitWithDiagnosis } from '../exit-with-diagnosis';
import { startBroker } from './broker';
import { KafkaSetupError, UsageError } from '../errors';
import { onStopSignal } from '../stop-signals';

const USAGE = 'usage: [KAFKA_PORT=9092] [KAFKA_PARTITIONS=4] [KAFKA_TOPIC=trace-survey-processed] npm run kafka';

async function main() {
  const topic = process.env.KAFKA_TOPIC || DEFAULT_TOPIC;
  const partitions = wholeNumber('KAFKA_PARTITIONS', process.env.KAFKA_PARTITIONS || '4', 1, 1000);
  const port = wholeNumber('KAFKA_PORT', process.env.KAFKA_PORT || '9092', 1024, 65535);
  // Checked before the JVM starts: otherwise Kafka exits with 1 and a log that never names the port.
  await ensurePortFree(port);
  // Ctrl-C is how this command ends: exit 0 once the broker has stopped and its folder is gone (broker.ts does both).
  onStopSignal(async () => console.error('Kafka stopped, its data removed.'), 0);
  const broker = await startBroker({ port, topics: { [topic]: partitions }, log: (line) => console.error(line) });
  console.error(
    `Kafka is up in ${(broker.startMs / 1000).toFixed(1)} s, topic ${topic} has ${partitions} partitions; data ` +
      `is removed on Ctrl-C.`,
  );
  console.log(`export KAFKA_BROKERS=${broker.bootstrap} KAFKA_TOPIC=${topic}`);
  setInterval(() => {}, 1 << 30); // the broker is a child process: keep this one alive until a signal
}

function wholeNumber(name: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < min || n > max)
    throw new UsageError(`${name} must be a whole number from ${min} to ${max} (got "${text}")`, USAGE);
  return n;
}

function ensurePortFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? new KafkaSetupError(
              'KAFKA_PORT_IN_USE',
              `Port ${port} on 127.0.0.1 is in use, probably by another \`npm run kafka\`: use that broker ` +
                `(export KAFKA_BROKERS=127.0.0.1:${port}), stop it with Ctrl-C in its terminal, or start this ` +
                `one on another port: KAFKA_PORT=${port + 1} npm run kafka.`,
              error,
            )
          : error,
      ),
    );
    server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
  });
}

main().catch(exitWithDiagnosis);
