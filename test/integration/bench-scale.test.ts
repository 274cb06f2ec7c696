import { describe, expect, inject, it } from 'vitest';
import { QUICK, runScale } from '../../bench/scale';
import { REGIMES } from '../../bench/scale-data';

/*
 * npm run bench:scale's core as a smoke run on the suite's server: real processes (the bundled handler, the COPY
 * floor), small batches. Not timed: it checks that every measurement is reported and that every table held exactly
 * the rows expected, for both writers, at N = 1 and 2.
 */
describe('npm run bench:scale', () => {
  it('should report every N, regime and batch size with exact row counts', async () => {
    const options = { ...QUICK, batchSizes: [20, 50], walBreakdown: false };
    const report = await runScale(options, { ...inject('database') });
    expect(report.rows.map((r) => `${r.regime} ${r.batchSize} ${r.n}`)).toEqual(
      REGIMES.flatMap((regime) => options.batchSizes.flatMap((size) => [1, 2].map((n) => `${regime} ${size} ${n}`))),
    );
    for (const row of report.rows) {
      for (const writer of [row.consumer, row.floor]) {
        expect(writer.counts).toEqual(writer.countsExpected);
        expect(writer.countsOk).toBe(true);
        expect(writer.records).toBe(row.n * row.batchSize);
        expect(writer.failed).toBe(0);
        expect(writer.recordsPerSecond).toBeGreaterThan(0);
        expect(writer.walBytesPerRecord).toBeGreaterThan(0);
        if (row.n === 1) expect(writer.speedup).toBe(1);
      }
      expect(row.consumer.countsExpected.processed_traces).toBe(row.n * row.batchSize);
    }
    expect(report.countsOk).toBe(true);
    expect(report.machine.cores).toBeGreaterThan(0);
  }, 120_000);
});
