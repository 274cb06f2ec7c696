import { parseMessage, type ParseResult } from './trace-message';
import { partitionKey, type KafkaRecord } from './kafka-record';

/*
 * Validation under the invocation's deadline. Every step of parseMessage is linear in a record's size and the size
 * is capped (lib/batch/input-limits.ts), so one record takes milliseconds; but a batch holds up to 6 MB, the invocation
 * may start with little time left, and a record may still be slower than expected. Validation checks the clock between
 * records and never takes more than its share of the time, so that the write of what was validated still fits.
 * The argument that no partition stalls is in docs/design.md (Time bound).
 */

/** The share of the time until the deadline validation may use; the rest is left for writing what it validated. */
export const VALIDATION_SHARE = 0.5;

export interface ValidationClock {
  /** Epoch milliseconds by which the batch's work must be done (the invocation's end less the time reserve). */
  deadline: number;
  /** The current time in epoch milliseconds (Date.now; a test stands in a fake clock). */
  now: () => number;
  /**
   * Epoch milliseconds at which the invocation's work began (before decoding and the schema check); the start of
   * validation when absent. `too_slow` is judged against the share of the time from here to the deadline: the time
   * any delivery of the record gets, not what this one happens to have left.
   */
  begun?: number;
}

/**
 * Validates the records, in event order of results, and returns each one's result, or null for a record not
 * validated because validation's share of the time ran out first (report it failed: Lambda delivers it again).
 *
 * Records are taken one per partition in turn (the first of every partition, then the second, ...), so that when
 * time runs out every partition the batch holds has had its oldest record validated, not only the first partition.
 * A record whose own validation took longer than the whole share (of the invocation's time, counted from `begun`,
 * so that a delivery left short by a slow start does not condemn a record) is `too_slow`: it is dead-lettered with its
 * bytes (and its trace id when it has a readable one) whatever its result, because it would take the same share on
 * every delivery and leave the write no time; dead-lettered, it stops there and a redrive, with the dead-letter
 * function's own time, can still store it. A record that merely finished after the share ran out because others
 * used it keeps its result.
 */
export function validateBatch(
  records: readonly KafkaRecord[],
  clock: ValidationClock,
  parse: (value: Buffer | null) => ParseResult = parseMessage,
): Array<ParseResult | null> {
  const results: Array<ParseResult | null> = records.map(() => null);
  const started = clock.now();
  const budgetMs = Math.max(0, clock.deadline - started) * VALIDATION_SHARE;
  // A slow cold start (the schema check waiting on the database) can leave this delivery little time: a record that
  // only outlasts that little is not slow, and the next delivery, validating it first, has the whole share.
  const slowMs = Math.max(budgetMs, Math.max(0, clock.deadline - (clock.begun ?? started)) * VALIDATION_SHARE);
  for (const i of onePerPartitionInTurn(records)) {
    const before = clock.now();
    if (before - started >= budgetMs) break;
    const result = parse(records[i]!.value);
    const tookMs = clock.now() - before;
    results[i] = tookMs > slowMs ? tooSlow(result, tookMs, slowMs) : result;
  }
  return results;
}

function tooSlow(result: ParseResult, tookMs: number, budgetMs: number): ParseResult {
  const detail =
    `validation took ${Math.round(tookMs)} ms, more than the ${Math.round(budgetMs)} ms an invocation can give it ` +
    `(${VALIDATION_SHARE * 100}% of its time before the deadline); redrive it, or show it to see why it is slow`;
  return { ok: false, reason: 'too_slow', detail, traceId: result.ok ? result.message.traceId : result.traceId };
}

/** Indexes into `records` (event order), taking one record of each partition in turn, each partition in its order. */
function onePerPartitionInTurn(records: readonly KafkaRecord[]): number[] {
  const byPartition = new Map<string, number[]>();
  records.forEach((record, i) => {
    const key = partitionKey(record);
    const list = byPartition.get(key);
    if (list === undefined) byPartition.set(key, [i]);
    else list.push(i);
  });
  const lists = [...byPartition.values()];
  const order: number[] = [];
  for (let round = 0; order.length < records.length; round++) {
    for (const list of lists) if (round < list.length) order.push(list[round]!);
  }
  return order;
}
