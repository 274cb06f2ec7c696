import { describe, expect, it } from 'vitest';
import { raceDeadline } from '../../lib/deadline';

/*
 * raceDeadline is the one promise-race timeout: the database client's timer, health's checks and the local
 * mapping's handler timeout use it. No durations asserted: only which side wins.
 */

class Late extends Error {}

describe('raceDeadline', () => {
  it("should answer with the work's result when it settles first, and with its error", async () => {
    await expect(raceDeadline(Promise.resolve(7), Date.now() + 60_000, () => new Late())).resolves.toBe(7);
    await expect(
      raceDeadline(Promise.reject(new RangeError('no')), Date.now() + 60_000, () => new Late()),
    ).rejects.toBeInstanceOf(RangeError);
  });

  it("should reject with onTimeout's error once the deadline passes, calling it once", async () => {
    let calls = 0;
    const never = new Promise<number>(() => {});
    const raced = raceDeadline(never, Date.now() + 20, () => {
      calls += 1;
      return new Late();
    });
    await expect(raced).rejects.toBeInstanceOf(Late);
    expect(calls).toBe(1);
  });

  it('should not call onTimeout when the work settled in time', async () => {
    let calls = 0;
    await raceDeadline(Promise.resolve(1), Date.now() + 20, () => {
      calls += 1;
      return new Late();
    });
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(calls).toBe(0);
  });

  it(
    'should time out at once for a deadline already past, and leave a late rejection of the work ' + 'handled',
    async () => {
      let reject!: (error: Error) => void;
      const work = new Promise<number>((_, r) => (reject = r));
      await expect(raceDeadline(work, Date.now() - 1, () => new Late())).rejects.toBeInstanceOf(Late);
      reject(new Error('late')); // an unhandled rejection here would fail the run
      await new Promise((resolve) => setTimeout(resolve, 10));
    },
  );

  it('should return the work itself when nothing bounds it', () => {
    const work = Promise.resolve(3);
    expect(raceDeadline(work, Infinity, () => new Late())).toBe(work);
  });
});
