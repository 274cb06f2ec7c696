export interface TtlCache<T, A extends unknown[] = []> {
  /**
   * The value while it is fresh (`cached: true`), otherwise a load's result (`cached: false`): the one in flight if
   * there is one, else a new one started with `args`.
   */
  get(...args: A): Promise<{ value: T; cached: boolean }>;
  /** Loads anew whatever is cached (joining a load already in flight), e.g. after a rotated secret was rejected. */
  refresh(...args: A): Promise<T>;
}

/**
 * A value loaded at most once per `ttlMs` per execution environment, however many callers ask: the Secrets Manager
 * credentials, the health checks, the schema version. Concurrent callers share one load in flight; the arguments of
 * the call that starts it are the ones it runs with. The age counts from the moment the load finished.
 *
 * Failures: a rejected load is never cached, so the next call loads again (credentials that could not be fetched, a
 * schema version that is wrong or could not be read). A caller that wants a failure reused for the interval too
 * (health: a failed check must not reach the database on every request) returns it as a value instead of throwing,
 * and `ttlMs` may depend on the value (the schema gate keeps a verified version forever: `() => Infinity`).
 */
export function ttlCache<T, A extends unknown[] = []>(
  load: (...args: A) => Promise<T>,
  ttlMs: number | ((value: T) => number),
  now: () => number = Date.now,
): TtlCache<T, A> {
  let last: { value: T; expiresAt: number } | undefined;
  let inFlight: Promise<T> | undefined;

  const reload = (args: A): Promise<T> =>
    (inFlight ??= load(...args)
      .then((value) => {
        last = { value, expiresAt: now() + (typeof ttlMs === 'number' ? ttlMs : ttlMs(value)) };
        return value;
      })
      .finally(() => {
        inFlight = undefined;
      }));

  return {
    get: async (...args) => {
      if (last && now() < last.expiresAt) return { value: last.value, cached: true };
      return { value: await reload(args), cached: false };
    },
    refresh: (...args) => reload(args),
  };
}
