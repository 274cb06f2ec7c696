/**
 * Wraps your own messages into the event Lambda would send, ready for `serverless invoke local -p`.
 *
 *   npm run --silent build-event -- messages.json > mine.json            # a JSON object, a JSON array, or JSON lines
 *   npm run build-event -- --source self-managed --partitions 3 a.json b.json --out my-events/mine.json
 *   cat messages.jsonl | npm run --silent build-event -- --out my-events/mine.json
 * (my-events/ is git-ignored; events/ holds the samples the tests pair with events/responses/.)
 *
 * Each message becomes one record: its value the message's JSON (base64, as Lambda sends it), its key the traceId.
 * Records are spread over the partitions round-robin with consecutive offsets.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { buildKafkaEvent, DEFAULT_TOPIC, type EventSource } from './encode-kafka-event';

/** Messages in a text: one JSON value (an array is a list of messages), or JSON lines. */
export function parseMessages(text: string, origin: string): unknown[] {
  const trimmed = text.trim();
  if (trimmed === '') return [];
  try {
    const value: unknown = JSON.parse(trimmed);
    return Array.isArray(value) ? value : [value];
  } catch {
    return trimmed
      .split('\n')
      .map((line, i) => ({ line: line.trim(), n: i + 1 }))
      .filter(({ line }) => line !== '')
      .map(({ line, n }) => {
        try {
          return JSON.parse(line) as unknown;
        } catch (error) {
          throw new Error(
            `${origin}:${n} is not JSON (${(error as Error).message}); give a JSON object, a JSON array or one ` +
              `JSON object per line.`,
          );
        }
      });
  }
}

function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      source: { type: 'string', default: 'msk' },
      topic: { type: 'string', default: DEFAULT_TOPIC },
      partitions: { type: 'string', default: '1' },
      'first-offset': { type: 'string', default: '0' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(
      'usage: build-event [--source msk|self-managed] [--topic T] [--partitions N] [--first-offset N] [--out ' +
        'FILE] [FILE...]',
    );
    return;
  }
  const source = values.source as EventSource;
  if (source !== 'msk' && source !== 'self-managed') throw new Error('--source must be msk or self-managed');
  const partitions = Number(values.partitions);
  const firstOffset = Number(values['first-offset']);
  if (!Number.isInteger(partitions) || partitions < 1) throw new Error('--partitions must be a whole number from 1');
  if (!Number.isInteger(firstOffset) || firstOffset < 0)
    throw new Error('--first-offset must be a whole number from 0');

  const inputs =
    positionals.length > 0
      ? positionals.map((f) => ({ text: readFileSync(f, 'utf8'), origin: f }))
      : [{ text: readFileSync(0, 'utf8'), origin: 'stdin' }];
  const messages = inputs.flatMap(({ text, origin }) => parseMessages(text, origin));
  if (messages.length === 0) throw new Error('No messages given: pass files or pipe JSON to standard input.');

  const records = messages.map((value) => {
    const traceId =
      value !== null && typeof value === 'object' && 'traceId' in value ? String(value.traceId) : undefined;
    return { value, key: traceId };
  });
  const event = buildKafkaEvent(records, {
    source,
    topic: values.topic,
    partitions,
    firstOffset,
    timestamp: Date.now(),
  });
  const json = JSON.stringify(event, null, 2) + '\n';
  if (values.out) {
    mkdirSync(dirname(values.out), { recursive: true });
    writeFileSync(values.out, json);
    console.error(`wrote ${records.length} record(s) in ${partitions} partition(s) to ${values.out}`);
  } else {
    process.stdout.write(json);
  }
}

if (require.main === module) {
  try {
    main();
  } catch (error) {
    console.error((error as Error).message);
    process.exit(1);
  }
}
