/**
 * npm run replay -- runs a bounded range through the consumer's handler, outside the consumer group:
 *   --partition 2 --from 100 --to 199      offsets (inclusive) of one partition
 *   --since 2026-01-01T10:00Z [--until ...] every partition's records in a time range
 *   --on-failure esm-on-failure.jsonl      every range the local mapping gave up on
 * Batches of ESM_BATCH_SIZE, one partition per invocation, as local:esm builds them. Exits 1 when any record is
 * still reported failed (or the handler threw), so it can be run again once the cause is fixed.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Context } from 'aws-lambda';
import { lambdaContext } from './lambda-context';
import { toLambdaEvent, type PolledRecord } from './mapping';
import { readRanges, rangesForTime, type OffsetRange } from './range';
import { loadEsmSettings, type EsmSettings } from './settings';
import { exitWithKafkaDiagnosis } from './kafka-errors';
import { UsageError } from '../errors';

type Handler = (event: unknown, context: Context) => Promise<unknown>;

const USAGE = 'usage: npm run replay -- --partition P --from X --to Y | --since ISO [--until ISO] | --on-failure FILE';

/** The on-failure file, which exists only once npm run local:esm has given up on a batch. */
function readOnFailureFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(
      `--on-failure ${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)}); npm run ` +
        'local:esm writes it (ESM_ON_FAILURE_FILE, default esm-on-failure.jsonl) only when it gives up on a ' +
        'batch, so nothing may need replaying',
      USAGE,
    );
  }
}

/** The ranges the arguments name. */
export async function replayRanges(
  values: Record<string, string | undefined>,
  settings: EsmSettings,
): Promise<OffsetRange[]> {
  if (values['on-failure']) {
    return readOnFailureFile(values['on-failure'])
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as { topic: string; partition: number; firstOffset: number; lastOffset: number })
      .filter((f) => f.topic === settings.kafka.topic)
      .map((f) => ({ partition: f.partition, from: f.firstOffset, to: f.lastOffset }));
  }
  if (values.since) {
    const since = Date.parse(values.since);
    const until = values.until ? Date.parse(values.until) : Date.now() + 1;
    if (Number.isNaN(since) || Number.isNaN(until))
      throw new UsageError('--since and --until must be ISO dates, e.g. 2026-01-01T10:00:00Z', USAGE);
    return rangesForTime(settings.kafka, since, until);
  }
  const [partition, from, to] = [values.partition, values.from, values.to].map(Number);
  if (![partition, from, to].every((n) => Number.isInteger(n) && n! >= 0)) {
    throw new UsageError(
      'name a range: --partition P --from X --to Y, or --since ISO [--until ISO], or --on-failure FILE',
      USAGE,
    );
  }
  return [{ partition: partition!, from: from!, to: to! }];
}

/** Runs `records` through `handler` in batches; returns the number of records reported failed or thrown. */
export async function replay(
  records: readonly PolledRecord[],
  handler: Handler,
  settings: EsmSettings,
  log: (line: string) => void,
): Promise<number> {
  const source = {
    kind: settings.eventSource,
    bootstrapServers: settings.kafka.brokers.join(','),
    clusterArn: 'arn:aws:kafka:us-east-1:123456789012:cluster/local/replay',
  } as const;
  let failed = 0;
  const byPartition = new Map<number, PolledRecord[]>();
  for (const r of records) byPartition.set(r.partition, [...(byPartition.get(r.partition) ?? []), r]);
  for (const [partition, list] of byPartition) {
    for (let i = 0; i < list.length; i += settings.batchSize) {
      const batch = list.slice(i, i + settings.batchSize);
      const range = `partition ${partition} offsets ${batch[0]!.offset}-${batch[batch.length - 1]!.offset}`;
      try {
        const response = (await handler(
          toLambdaEvent(batch, source),
          lambdaContext('trace-consumer-replay', settings.functionTimeoutMs),
        )) as { batchItemFailures?: unknown[] } | null;
        const failures = response?.batchItemFailures?.length ?? 0;
        failed += failures;
        log(`${range}: ${failures === 0 ? 'ok' : `${failures} record(s) reported failed`}`);
      } catch (error) {
        failed += batch.length;
        log(`${range}: the handler threw: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  }
  return failed;
}

async function main() {
  const { values } = parseArgs({
    options: {
      partition: { type: 'string' },
      from: { type: 'string' },
      to: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      'on-failure': { type: 'string' },
    },
  });
  const settings = loadEsmSettings();
  const ranges = await replayRanges(values, settings);
  const records = await readRanges(settings.kafka, ranges);
  console.error(`replay: ${records.length} records in ${ranges.length} range(s) of ${settings.kafka.topic}`);
  const { handler } = (await import('../../functions/consumer')) as { handler: Handler };
  const failed = await replay(records, handler, settings, (line) => console.error(line));
  process.exit(failed === 0 ? 0 : 1);
}

if (require.main === module) {
  main().catch((error: unknown) => exitWithKafkaDiagnosis(error));
}
