import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  HALVING_ATTEMPT_CHANNEL,
  halvingSearch,
  type HalvingAttempt,
  type HalvingSteps,
} from '../../lib/batch/halving-search';

// LONG_TESTS=1 (set by .ci/run) runs ten times as many cases.
const runs = (n: number) => (process.env.LONG_TESTS === '1' ? n * 10 : n);

class Rejection extends Error {}

type Result = { item: number; outcome: 'ok' | 'rejected' | 'failed' };

/** The bound halving-search.ts states for n items of which k are rejected, when rejectOne attempts nothing. */
const bound = (n: number, k: number) => (n === 0 ? 0 : 1 + 2 * k * Math.ceil(Math.log2(n)));

/**
 * Steps over items 0..n-1 where an attempt is rejected iff its list holds an item of `rejected`. An attempt past the
 * bound fails as a non-rejection, so a split that can leave a half empty (and attempts the same list forever) ends
 * in failAll, which throws, instead of hanging the test.
 */
function steps(rejected: ReadonlySet<number>, limit: number) {
  const attempts: number[][] = [];
  const settledOnce = new Map<number, number>();
  const count = (item: number) => settledOnce.set(item, (settledOnce.get(item) ?? 0) + 1);
  const search: HalvingSteps<number, Result> = {
    attempt: async (items) => {
      attempts.push([...items]);
      if (attempts.length > limit) throw new Error(`more than ${limit} attempts`);
      if (items.some((i) => rejected.has(i))) throw new Rejection('rejected');
      items.forEach(count);
      return items.map((item) => ({ item, outcome: 'ok' as const }));
    },
    isRejection: (error) => error instanceof Rejection,
    rejectOne: async (item) => {
      count(item);
      return [{ item, outcome: 'rejected' }];
    },
    failAll: (_, error) => {
      throw error;
    },
  };
  return { search, attempts, settledOnce };
}

const published: HalvingAttempt[] = [];
const listener = (message: unknown) => published.push(message as HalvingAttempt);
beforeEach(() => {
  published.length = 0;
  subscribe(HALVING_ATTEMPT_CHANNEL, listener);
});
afterEach(() => unsubscribe(HALVING_ATTEMPT_CHANNEL, listener));

describe('the halving search', () => {
  it(
    'should find exactly the rejected items, in order, settling every item once, ' + 'within 1 + 2k⌈log2 n⌉ attempts',
    async () => {
      const lists = fc.integer({ min: 0, max: 300 }).chain((n) =>
        fc.tuple(
          fc.constant(n),
          fc.subarray(
            Array.from({ length: n }, (_, i) => i),
            { maxLength: Math.min(n, 12) },
          ),
        ),
      );
      await fc.assert(
        fc.asyncProperty(lists, async ([n, rejectedList]) => {
          published.length = 0;
          const items = Array.from({ length: n }, (_, i) => i);
          const rejected = new Set(rejectedList);
          const limit = bound(n, rejected.size);
          const { search, attempts, settledOnce } = steps(rejected, limit);

          const results = await halvingSearch(items, search, 'consumer');

          expect(results.map((r) => r.item)).toEqual(items);
          expect(results.filter((r) => r.outcome === 'rejected').map((r) => r.item)).toEqual(rejectedList);
          expect([...settledOnce.values()].every((times) => times === 1)).toBe(true);
          expect(settledOnce.size).toBe(n);
          expect(attempts.length).toBeLessThanOrEqual(limit);
          expect(attempts.every((list) => list.length > 0)).toBe(true);
          // The channel sees every attempt, with its caller and size: what the model test counts for redrive.
          expect(published).toEqual(attempts.map((list) => ({ caller: 'consumer', size: list.length })));
        }),
        { numRuns: runs(300) },
      );
    },
  );

  it('should hand the whole list to failAll, without splitting it, when the failure is not a rejection', async () => {
    const failed: number[][] = [];
    const results = await halvingSearch<number, Result>(
      [1, 2, 3],
      {
        attempt: async () => {
          throw new Error('connection reset');
        },
        isRejection: (error) => error instanceof Rejection,
        rejectOne: async (item) => [{ item, outcome: 'rejected' }],
        failAll: (items) => {
          failed.push([...items]);
          return items.map((item) => ({ item, outcome: 'failed' }));
        },
      },
      'redrive',
    );
    expect(failed).toEqual([[1, 2, 3]]);
    expect(results.map((r) => r.outcome)).toEqual(['failed', 'failed', 'failed']);
    expect(published).toEqual([{ caller: 'redrive', size: 3 }]);
  });

  it('should attempt nothing for no items', async () => {
    const { search, attempts } = steps(new Set(), 1);
    expect(await halvingSearch([], search, 'consumer')).toEqual([]);
    expect(attempts).toEqual([]);
    expect(published).toEqual([]);
  });
});
