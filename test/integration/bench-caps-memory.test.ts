import { describe, expect, inject, it } from 'vitest';
import { measureCapsMemory } from '../../bench/caps-memory';
import { DEFAULT_INPUT_LIMITS } from '../../lib/batch/input-limits';

/*
 * npm run bench:caps as a smoke run on the suite's server: the bundled handler in a fresh process, at the largest
 * caps, on a batch of 1.6 MB instead of 6 MB. Not a memory figure: it checks that each shape's record, larger than
 * the default cap, is stored (the caps reach the bundled handler) and that a peak is reported.
 */
describe('npm run bench:caps', () => {
  it('should store a record over the default cap in each shape and report its peak memory', async () => {
    const report = await measureCapsMemory(
      { ...inject('database') },
      { batchBytes: 1.6 * 2 ** 20, schema: 'caps_smoke' },
    );
    expect(report.rows.map((r) => r.shape)).toEqual(['tiny-items', 'long-texts']);
    for (const row of report.rows) {
      expect(row.recordBytes).toBeGreaterThan(DEFAULT_INPUT_LIMITS.recordBytes);
      expect(row.eventMb).toBeLessThanOrEqual(1.6);
      expect(row.maxRssMb).toBeGreaterThan(0);
    }
    expect(report.underLimit).toBe(report.rows.every((r) => r.maxRssMb < 512));
  }, 120_000);
});
