/**
 * npm run produce [-- --count N | -- --event events/mixed-batch.json]: publishes sample survey messages (default
 * 100, keyed by trace id, with headers) or the records of a saved Lambda event to KAFKA_TOPIC on KAFKA_BROKERS.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Admin } from '@platformatic/kafka';
import { messagesFromEvent, publish, sampleMessages } from './publish';
import { clientOptions, loadEsmSettings } from './settings';
import { exitWithKafkaDiagnosis } from './kafka-errors';
import { UsageError } from '../errors';

async function main() {
  const { values } = parseArgs({
    options: {
      count: { type: 'string', default: '100' },
      from: { type: 'string', default: '0' },
      event: { type: 'string' },
    },
  });
  const { kafka } = loadEsmSettings();
  let messages: Parameters<typeof publish>[1];
  if (values.event) {
    const event = readEvent(values.event); // the user's file first, before any connection
    const admin = new Admin(clientOptions(kafka, 'trace-consumer-produce'));
    const metadata = await admin.metadata({ topics: [kafka.topic] }).finally(() => admin.close());
    const partitions = metadata.topics.get(kafka.topic)?.partitionsCount ?? 1;
    messages = messagesFromEvent(event, partitions);
  } else {
    const count = Number(values.count);
    if (!Number.isInteger(count) || count < 1)
      throw new UsageError(`--count must be a positive whole number (got ${values.count})`, USAGE);
    messages = sampleMessages(count, Number(values.from));
  }
  const published = await publish(kafka, messages);
  console.error(`published ${published} messages to ${kafka.topic} at ${kafka.brokers.join(',')}`);
}

const USAGE = 'usage: npm run produce -- [--count N [--from N] | --event events/mixed-batch.json]';

/** The saved Lambda event --event names; a path or JSON mistake is the user's to fix, not a bug. */
function readEvent(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(
      `--event ${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)}); give a saved ` +
        `event such as events/mixed-batch.json`,
      USAGE,
    );
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(
      `--event ${path} is not JSON (${error instanceof Error ? error.message : String(error)}); give a saved ` +
        `Lambda event such as events/mixed-batch.json`,
      USAGE,
    );
  }
}

main().catch((error: unknown) => exitWithKafkaDiagnosis(error));
