import { describe, expect, it } from 'vitest';
import { ttlCache } from '../../lib/ttl-cache';

/** A load whose calls are counted and whose answers the test releases by hand. */
function controlledLoad<T>() {
  const pending: { resolve: (value: T) => void; reject: (error: unknown) => void }[] = [];
  const load = (): Promise<T> => new Promise<T>((resolve, reject) => pending.push({ resolve, reject }));
  return { load, pending };
}

describe('ttlCache', () => {
  it('should share one load among concurrent callers, and serve the value from cache until it expires', async () => {
    const { load, pending } = controlledLoad<string>();
    let clock = 1_000;
    const cache = ttlCache(load, 500, () => clock);

    const first = cache.get();
    const second = cache.get();
    expect(pending).toHaveLength(1);
    pending[0]?.resolve('a');
    expect(await first).toEqual({ value: 'a', cached: false });
    expect(await second).toEqual({ value: 'a', cached: false });

    clock += 499;
    expect(await cache.get()).toEqual({ value: 'a', cached: true });
    expect(pending).toHaveLength(1);

    clock += 1; // 500 ms after the load finished: expired
    const third = cache.get();
    expect(pending).toHaveLength(2);
    pending[1]?.resolve('b');
    expect(await third).toEqual({ value: 'b', cached: false });
  });

  it('should count the age from the moment the load finished, not from when it started', async () => {
    const { load, pending } = controlledLoad<string>();
    let clock = 0;
    const cache = ttlCache(load, 100, () => clock);
    const first = cache.get();
    clock = 1_000; // the load took a second, ten times the TTL
    pending[0]?.resolve('slow');
    await first;
    clock = 1_099;
    expect(await cache.get()).toEqual({ value: 'slow', cached: true });
  });

  it('should not cache a rejected load: the next call loads again, and a later success is cached', async () => {
    let calls = 0;
    const cache = ttlCache(async () => {
      calls += 1;
      if (calls === 1) throw new Error('unreachable');
      return calls;
    }, 60_000);
    await expect(cache.get()).rejects.toThrow('unreachable');
    expect(await cache.get()).toEqual({ value: 2, cached: false });
    expect(await cache.get()).toEqual({ value: 2, cached: true });
    expect(calls).toBe(2);
  });

  it('should reuse a failure the caller returns as a value for the whole interval, like any other value', async () => {
    let calls = 0;
    const cache = ttlCache(async () => ({ ok: false as const, attempt: ++calls }), 60_000);
    expect(await cache.get()).toEqual({ value: { ok: false, attempt: 1 }, cached: false });
    expect(await cache.get()).toEqual({ value: { ok: false, attempt: 1 }, cached: true });
    expect(calls).toBe(1);
  });

  it('should take the TTL from the value when given a function: Infinity keeps it for good', async () => {
    let clock = 0;
    let calls = 0;
    const cache = ttlCache(
      async () => ++calls,
      (n) => (n === 1 ? 0 : Infinity),
      () => clock,
    );
    expect((await cache.get()).value).toBe(1); // TTL 0: expired at once
    expect(await cache.get()).toEqual({ value: 2, cached: false });
    clock = Number.MAX_SAFE_INTEGER;
    expect(await cache.get()).toEqual({ value: 2, cached: true });
  });

  it('should load anew on refresh even while the value is fresh, joining a load already in flight', async () => {
    const { load, pending } = controlledLoad<number>();
    const cache = ttlCache(load, 60_000);
    const first = cache.get();
    pending[0]?.resolve(1);
    await first;

    const refreshed = cache.refresh();
    const joined = cache.refresh();
    const waiting = cache.get(); // fresh value: served from cache, not the refresh in flight
    expect(pending).toHaveLength(2);
    expect(await waiting).toEqual({ value: 1, cached: true });
    pending[1]?.resolve(2);
    expect(await refreshed).toBe(2);
    expect(await joined).toBe(2);
    expect(await cache.get()).toEqual({ value: 2, cached: true });
  });

  it('should run the load with the arguments of the call that starts it', async () => {
    const seen: string[] = [];
    const cache = ttlCache(async (who: string) => {
      seen.push(who);
      return who;
    }, 0);
    const [a, b] = await Promise.all([cache.get('first'), cache.get('second')]);
    expect(a.value).toBe('first');
    expect(b.value).toBe('first');
    expect(seen).toEqual(['first']);
    expect((await cache.get('third')).value).toBe('third');
  });
});
