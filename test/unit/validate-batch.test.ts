import { describe, expect, it } from 'vitest';
import { parseMessage } from '../../lib/batch/trace-message';
import { VALIDATION_SHARE, validateBatch } from '../../lib/batch/validate-batch';
import { surveyMessage } from '../helpers/factories';
import type { KafkaRecord } from '../../lib/batch/kafka-record';

const record = (partition: number, offset: number, value: unknown): KafkaRecord => ({
  topic: 't',
  partition,
  offset,
  timestamp: null,
  key: null,
  headers: [],
  value: Buffer.from(JSON.stringify(value)),
});

/** A fake clock that only moves when a record is validated: by `costMs(value)` for that record. */
function fakeClock(costMs: (value: Buffer | null) => number) {
  let t = 1_000_000;
  const visited: string[] = [];
  return {
    now: () => t,
    parse: (value: Buffer | null) => {
      visited.push(JSON.parse(value!.toString()).traceId);
      t += costMs(value);
      return parseMessage(value);
    },
    visited,
    at: () => t,
  };
}

describe('validateBatch', () => {
  it('should validate every record when time allows, and keep results in event order', () => {
    const records = [
      record(0, 0, surveyMessage({ traceId: 'a' })),
      record(1, 0, { traceId: 'b' }),
      record(0, 1, surveyMessage({ traceId: 'c' })),
    ];
    const clock = fakeClock(() => 1);
    const results = validateBatch(records, { deadline: clock.at() + 1_000, now: clock.now }, clock.parse);
    expect(results.map((r) => (r === null ? null : r.ok ? 'ok' : r.reason))).toEqual(['ok', 'invalid_message', 'ok']);
  });

  it(
    'should dead-letter a record slower than the whole share as too_slow, keep what came before and leave the ' +
      'rest for retry',
    () => {
      const slow = surveyMessage({ traceId: 'slow' });
      const records = [
        record(0, 0, surveyMessage({ traceId: 'a' })),
        record(0, 1, slow),
        record(0, 2, surveyMessage({ traceId: 'c' })),
        record(0, 3, surveyMessage({ traceId: 'd' })),
      ];
      // 10 s to the deadline: validation may use 5 s; the slow record alone takes 6 s.
      const clock = fakeClock((v) => (v!.toString().includes('"slow"') ? 6_000 : 10));
      const results = validateBatch(records, { deadline: clock.at() + 10_000, now: clock.now }, clock.parse);
      expect(results[0]).toMatchObject({ ok: true });
      expect(results[1]).toMatchObject({
        ok: false,
        reason: 'too_slow',
        traceId: 'slow',
        detail: expect.stringMatching(/took 6000 ms, more than the 5000 ms/),
      });
      expect(results.slice(2)).toEqual([null, null]);
      expect(clock.visited).toEqual(['a', 'slow']);
    },
  );

  it('should not call a record too slow for outlasting a delivery that a slow start left short', () => {
    // The invocation began 9 s before validation (a slow schema check), 1 s before the deadline. A record taking
    // 800 ms outlasts half of that second, but not half of the invocation's 10 s: it keeps its result, and
    // validation stops after it. One taking 6 s would outlast any delivery's share, and is too_slow.
    const records = [record(0, 0, surveyMessage({ traceId: 'slow' })), record(1, 0, surveyMessage({ traceId: 'b' }))];
    for (const [slowMs, expected] of [
      [800, 'ok'],
      [6_000, 'too_slow'],
    ] as const) {
      const clock = fakeClock((v) => (v!.toString().includes('"slow"') ? slowMs : 300));
      const begun = clock.at() - 9_000;
      const results = validateBatch(records, { deadline: clock.at() + 1_000, now: clock.now, begun }, clock.parse);
      expect(results[0]).toMatchObject(
        expected === 'ok'
          ? { ok: true }
          : { ok: false, reason: 'too_slow', detail: expect.stringMatching(/more than the 5000 ms/) },
      );
      expect(results[1]).toBeNull();
    }
  });

  it('should keep the result of a record that finished after the share ran out only because others used it', () => {
    const records = Array.from({ length: 10 }, (_, i) => record(0, i, surveyMessage({ traceId: `r${i}` })));
    // 1,000 ms to the deadline, 500 for validation, 120 ms a record: the fifth ends at 600 ms, the sixth is not
    // started.
    const clock = fakeClock(() => 120);
    const results = validateBatch(records, { deadline: clock.at() + 1_000, now: clock.now }, clock.parse);
    expect(results.map((r) => (r === null ? null : r.ok))).toEqual([
      true,
      true,
      true,
      true,
      true,
      null,
      null,
      null,
      null,
      null,
    ]);
  });

  it('should take one record per partition in turn, so that running out of time still advances every partition', () => {
    const records = [
      ...Array.from({ length: 5 }, (_, i) => record(0, i, surveyMessage({ traceId: `p0-${i}` }))),
      ...Array.from({ length: 2 }, (_, i) => record(1, i, surveyMessage({ traceId: `p1-${i}` }))),
      record(2, 0, surveyMessage({ traceId: 'p2-0' })),
    ];
    const clock = fakeClock(() => 100);
    const results = validateBatch(
      records,
      { deadline: clock.at() + 900 / VALIDATION_SHARE, now: clock.now },
      clock.parse,
    );
    expect(clock.visited).toEqual(['p0-0', 'p1-0', 'p2-0', 'p0-1', 'p1-1', 'p0-2', 'p0-3', 'p0-4']);
    expect(results.every((r) => r !== null)).toBe(true);
    const short = fakeClock(() => 100);
    validateBatch(records, { deadline: short.at() + 300 / VALIDATION_SHARE, now: short.now }, short.parse);
    expect(short.visited).toEqual(['p0-0', 'p1-0', 'p2-0']);
  });

  it('should validate nothing when the deadline has passed, and everything when there is none', () => {
    const records = [record(0, 0, surveyMessage())];
    expect(validateBatch(records, { deadline: Date.now() - 1, now: Date.now })).toEqual([null]);
    expect(validateBatch(records, { deadline: Infinity, now: Date.now })[0]).toMatchObject({ ok: true });
  });
});
