/**
 * Reuses a check's result (readiness, freshness) for `intervalSeconds`, so that however many monitors poll, the
 * database sees at most one check per interval per execution environment. Concurrent callers share one check in
 * flight. `check` must not throw: a failure is a result like any other, and is reused too.
 */
export function cachedCheck<T>(check: () => Promise<T>, intervalSeconds: number, now: () => number = Date.now) {
  let last: { at: number; result: T } | undefined;
  let inFlight: Promise<T> | undefined;
  return async (): Promise<{ result: T; cached: boolean }> => {
    if (last && now() - last.at < intervalSeconds * 1000) return { result: last.result, cached: true };
    inFlight ??= check().finally(() => (inFlight = undefined));
    const result = await inFlight;
    last = { at: now(), result };
    return { result, cached: false };
  };
}
