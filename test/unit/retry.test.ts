import { describe, expect, it } from 'vitest';
import { MIN_ATTEMPT_MS } from '../../lib/deadline';
import { OutOfTimeError } from '../../lib/errors';
import { classifyFailure } from '../../lib/postgres/failure-kind';
import { withRetry } from '../../lib/postgres/retry';

const pgError = (code: string) => Object.assign(new Error(`pg ${code}`), { name: 'PostgresError', code });
const sysError = (code: string) => Object.assign(new Error(code), { code });

describe('classifyFailure', () => {
  it.each([
    ['40P01', 'transient'],
    ['40001', 'transient'],
    ['57P01', 'transient'],
    ['57014', 'transient'],
    ['08006', 'transient'],
    ['53300', 'transient'],
    ['55P03', 'transient'],
    ['22003', 'data'],
    ['23514', 'data'],
    ['22P02', 'data'],
    ['54000', 'data'],
    ['42P01', 'fatal'],
    ['3F000', 'fatal'],
    ['42501', 'fatal'],
    ['3D000', 'fatal'],
    ['28P01', 'fatal'],
    ['28000', 'fatal'],
  ])('should classify SQLSTATE %s as %s', (code, kind) => {
    expect(classifyFailure(pgError(code))).toBe(kind);
  });

  it.each(['ECONNREFUSED', 'ECONNRESET', 'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_DESTROYED'])(
    'should classify connection error %s as transient',
    (code) => expect(classifyFailure(sysError(code))).toBe('transient'),
  );

  it('should classify a bug (no code) as fatal', () => {
    expect(classifyFailure(new TypeError('x is undefined'))).toBe('fatal');
  });
});

describe('withRetry', () => {
  const fast = { maxRetries: 3, backoffMs: 100, deadline: Infinity, random: () => 0.5 };

  it('should retry transient failures with growing, jittered delays, then succeed', async () => {
    const delays: number[] = [];
    let calls = 0;
    const result = await withRetry(
      async () => {
        calls += 1;
        if (calls < 3) throw pgError('40P01');
        return 'ok';
      },
      { ...fast, sleep: async (ms) => void delays.push(ms) },
    );
    expect(result).toBe('ok');
    expect(calls).toBe(3);
    expect(delays).toEqual([75, 150]); // half fixed, half random (0.5) of 100, then of 200
  });

  it('should give up after maxRetries and rethrow the last error', async () => {
    let calls = 0;
    const attempt = async () => {
      calls += 1;
      throw sysError('ECONNREFUSED');
    };
    await expect(withRetry(attempt, { ...fast, sleep: async () => {} })).rejects.toMatchObject({
      code: 'ECONNREFUSED',
    });
    expect(calls).toBe(4);
  });

  it('should not retry data or fatal errors', async () => {
    let calls = 0;
    const attempt = async () => {
      calls += 1;
      throw pgError('22003');
    };
    await expect(withRetry(attempt, { ...fast, sleep: async () => {} })).rejects.toMatchObject({ code: '22003' });
    expect(calls).toBe(1);
  });

  it('should not start an attempt or a wait that outlasts the invocation', async () => {
    await expect(withRetry(async () => 'never', { ...fast, deadline: Date.now() })).rejects.toBeInstanceOf(
      OutOfTimeError,
    );
    let calls = 0;
    const attempt = async () => {
      calls += 1;
      throw pgError('40001');
    };
    await expect(
      withRetry(attempt, { ...fast, deadline: Date.now() + 50, sleep: async () => {} }),
    ).rejects.toBeInstanceOf(OutOfTimeError);
    expect(calls).toBe(0);
  });

  it('should measure every attempt and wait against the one deadline, on the clock it is given', async () => {
    // A driven clock: each attempt takes 300 ms, each wait as long as it says. Whatever the retry budget, no attempt
    // starts with less than MIN_ATTEMPT_MS left before the deadline.
    for (const [deadlineIn, attempts] of [
      [700, 1],
      [1_300, 2],
      [1_900, 3],
      [10_000, 4],
    ] as const) {
      let clock = 1_000_000;
      const deadline = clock + deadlineIn;
      const starts: number[] = [];
      const attempt = async () => {
        starts.push(clock);
        clock += 300;
        throw sysError('ECONNRESET');
      };
      const options = {
        ...fast,
        backoffMs: 100,
        deadline,
        now: () => clock,
        sleep: async (ms: number) => {
          clock += ms;
        },
      };
      const failure = withRetry(attempt, options);
      await expect(failure).rejects.toMatchObject({ code: attempts === 4 ? 'ECONNRESET' : 'OUT_OF_TIME' });
      expect(starts).toHaveLength(attempts);
      for (const start of starts) expect(deadline - start).toBeGreaterThanOrEqual(MIN_ATTEMPT_MS);
    }
  });
});
