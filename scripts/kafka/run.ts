/**
 * npm run kafka: a single-node Apache Kafka broker for the local loop, with the consumer's topic created, until
 * Ctrl-C. Prints the `export` line for KAFKA_BROKERS that `npm run local:esm`, `produce` and `replay` read.
 * KAFKA_PORT picks the port (default 9092), KAFKA_PARTITIONS the topic's partition count (default 4).
 */
import { DEFAULT_TOPIC } from '../event-builder';
import { startBroker } from './broker';

async function main() {
  const topic = process.env.KAFKA_TOPIC || DEFAULT_TOPIC;
  const partitions = Number(process.env.KAFKA_PARTITIONS || '4');
  const port = Number(process.env.KAFKA_PORT || '9092');
  const broker = await startBroker({ port, topics: { [topic]: partitions }, log: (line) => console.error(line) });
  console.error(`Kafka is up in ${(broker.startMs / 1000).toFixed(1)} s, topic ${topic} has ${partitions} partitions; data is removed on Ctrl-C.`);
  console.log(`export KAFKA_BROKERS=${broker.bootstrap} KAFKA_TOPIC=${topic}`);
  const stop = async () => {
    await broker.stop();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  setInterval(() => {}, 1 << 30); // the broker is a child process: keep this one alive until a signal
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
