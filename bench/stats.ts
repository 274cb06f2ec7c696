/** Small statistics for benchmark samples. */

export const median = (xs: readonly number[]): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

export const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

/** Median and range, rounded. */
export const summary = (xs: readonly number[], digits = 1) => ({
  median: round(median(xs), digits),
  min: round(Math.min(...xs), digits),
  max: round(Math.max(...xs), digits),
});

/** Per-key medians of a list of records (a key missing from a sample counts as 0 there). */
export function medianByKey(samples: readonly Record<string, number>[], digits = 2): Record<string, number> {
  const keys = [...new Set(samples.flatMap((s) => Object.keys(s)))];
  return Object.fromEntries(keys.map((k) => [k, round(median(samples.map((s) => s[k] ?? 0)), digits)]));
}
