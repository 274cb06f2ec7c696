import { channel } from 'node:diagnostics_channel';

/*
 * Finding the items PostgreSQL rejects by halving: the one search behind the consumer's isolation (settle-batch.ts,
 * each attempt its own transaction) and the dead-letter redrive's (redrive.ts, each attempt a savepoint of the redrive
 * batch's transaction). The search decides only what to try next; how to try, judge and settle is the caller's.
 */

/** Who searches: the consumer or the dead-letter redrive. */
export type HalvingCaller = 'consumer' | 'redrive';

/** How one caller tries, judges and settles a list; the search only decides what to try. */
export interface HalvingSteps<T, R> {
  /** One attempt at `items` together: their results, or a rejection. Own transaction or savepoint: the caller's. */
  attempt(items: readonly T[]): Promise<readonly R[]>;
  /** Did one of the items cause `error` (SQLSTATE classes 22, 23, 54: classifyFailure(error) === 'data')? */
  isRejection(error: unknown): boolean;
  /** `item` was rejected on its own: its results (it may start a search for a replacement, see the bound). */
  rejectOne(item: T, error: unknown): Promise<readonly R[]>;
  /** A failure no item caused (transient, fatal, out of time): results for all of `items`, or throw to abort. */
  failAll(items: readonly T[], error: unknown): readonly R[];
}

/**
 * Each attempt is published here as a {@link HalvingAttempt}, so that tests count attempts instead of timing them
 * (a savepoint is not a transaction: pg_stat_database cannot count the redrive's). Free when nothing subscribes.
 */
export const HALVING_ATTEMPT_CHANNEL = 'trace-consumer:halving-attempt';

export interface HalvingAttempt {
  caller: HalvingCaller;
  /** Items attempted together. */
  size: number;
}

const attempts = channel(HALVING_ATTEMPT_CHANNEL);

/**
 * Settles `items` in order, finding the ones the database rejects by halving: all of them are attempted together; a
 * rejected list of n ≥ 2 is split at m = ⌊n/2⌋ and each half searched on its own; a single rejected item is
 * settled by `rejectOne`. A failure no item caused ends the search for the list at hand (`failAll`).
 *
 * Termination: for n ≥ 2, 1 ≤ ⌊n/2⌋ < n, so both halves are non-empty and shorter than n, whatever the items are,
 * and every path down ends at single items after at most ⌈log2 n⌉ splits. (A split that can leave a half empty
 * does not end: the consumer once halved candidates and dead letters separately, and one of each "split" into
 * itself and an empty half, attempting the same list until the invocation's time ran out.)
 *
 * Bound: a list is split only when its attempt was rejected, so only when it holds a rejected item. The lists at one
 * depth are disjoint, so at most k of them hold one of the k rejected items, each costing two attempts for its
 * halves: at most 1 + 2k⌈log2 n⌉ attempts, plus what `rejectOne` spends. The consumer's rejectOne writes the dead
 * letter (with the trace id's next copy, whose own rejection counts as another of the k) in one more search, one
 * attempt when nothing in it is rejected: 1 + k(2⌈log2 n⌉ + 1) transactions. The redrive's spends nothing (the
 * rejected letter's outcome is recorded with the batch): 1 + 2k⌈log2 n⌉ savepoints.
 */
export async function halvingSearch<T, R>(
  items: readonly T[],
  steps: HalvingSteps<T, R>,
  caller: HalvingCaller,
): Promise<R[]> {
  if (items.length === 0) return [];
  if (attempts.hasSubscribers) attempts.publish({ caller, size: items.length } satisfies HalvingAttempt);
  try {
    return [...(await steps.attempt(items))];
  } catch (error) {
    if (!steps.isRejection(error)) return [...steps.failAll(items, error)];
    const [only] = items;
    if (items.length === 1 && only !== undefined) return [...(await steps.rejectOne(only, error))];
    const middle = Math.floor(items.length / 2);
    return [
      ...(await halvingSearch(items.slice(0, middle), steps, caller)),
      ...(await halvingSearch(items.slice(middle), steps, caller)),
    ];
  }
}
