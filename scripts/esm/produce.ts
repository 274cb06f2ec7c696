/**
 * npm run produce [-- --count N | -- --event events/mixed-batch.json]: publishes sample survey messages (default
 * 100, keyed by trace id, with headers) or the records of a saved Lambda event to KAFKA_TOPIC on KAFKA_BROKERS.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Admin } from '@platformatic/kafka';
import { messagesFromEvent, publish, sampleMessages } from './publish';
import { clientOptions, loadEsmSettings } from './settings';

async function main() {
  const { values } = parseArgs({ options: { count: { type: 'string', default: '100' }, from: { type: 'string', default: '0' }, event: { type: 'string' } } });
  const { kafka } = loadEsmSettings();
  let messages;
  if (values.event) {
    const admin = new Admin(clientOptions(kafka, 'trace-consumer-produce'));
    const metadata = await admin.metadata({ topics: [kafka.topic] }).finally(() => admin.close());
    const partitions = metadata.topics.get(kafka.topic)?.partitionsCount ?? 1;
    messages = messagesFromEvent(JSON.parse(readFileSync(values.event, 'utf8')), partitions);
  } else {
    const count = Number(values.count);
    if (!Number.isInteger(count) || count < 1) throw new Error(`--count must be a positive whole number (got ${values.count})`);
    messages = sampleMessages(count, Number(values.from));
  }
  const published = await publish(kafka, messages);
  console.error(`published ${published} messages to ${kafka.topic} at ${kafka.brokers.join(',')}`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
