/**
 * npm run local:esm: a local event source mapping. Joins KAFKA_CONSUMER_GROUP on KAFKA_TOPIC and invokes the
 * consumer's handler (functions/consumer.ts, in this process, with the DB_* environment) with the events Lambda
 * would send, until Ctrl-C. One line per invocation on stderr; the handler's own JSON logs on stdout.
 */
import type { Context } from 'aws-lambda';
import { describeReport } from './describe';
import { LocalEventSourceMapping } from './poller';
import { loadEsmSettings } from './settings';
import { exitWithKafkaDiagnosis } from './kafka-errors';
import { onStopSignal } from '../stop-signals';

async function main() {
  const settings = loadEsmSettings();
  // Imported only now, so that a configuration error in the mapping is reported before the function's.
  const { handler } = (await import('../../functions/consumer')) as {
    handler: (event: unknown, context: Context) => Promise<unknown>;
  };
  const mapping = new LocalEventSourceMapping(settings, handler, (report) => console.error(describeReport(report)));
  await mapping.start();
  console.error(
    `local:esm: group ${settings.kafka.group} on ${settings.kafka.topic} at ${settings.kafka.brokers.join(',')}; ` +
      `batch size ${settings.batchSize}, window ${settings.batchingWindowMs} ms, ` +
      `${settings.maxRetries < 0 ? 'unlimited' : settings.maxRetries} retries, on-failure file ` +
      `${settings.onFailureFile}. Ctrl-C stops.`,
  );
  // Ctrl-C is how this command ends: the invocation in flight finishes, the group is left, then exit 0.
  onStopSignal(async () => {
    console.error('local:esm: stopping after the invocation in flight');
    await mapping.stop();
  }, 0);
  await mapping.finished().catch(async (error: unknown) => {
    await mapping.stop();
    throw error;
  });
}

main().catch((error: unknown) => exitWithKafkaDiagnosis(error));
