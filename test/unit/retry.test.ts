import { describe, expect, it } from 'vitest';
import { OutOfTimeError } from '../../lib/errors';
import { classifyFailure, withRetry } from '../../lib/retry';

const pgError = (code: string) => Object.assign(new Error(`pg ${code}`), { name: 'PostgresError', code });
const sysError = (code: string) => Object.assign(new Error(code), { code });

describe('classifyFailure', () => {
  it.each([
    ['40P01', 'transient'], ['40001', 'transient'], ['57P01', 'transient'], ['57014', 'transient'], ['08006', 'transient'],
    ['53300', 'transient'], ['55P03', 'transient'],
    ['22003', 'data'], ['23514', 'data'], ['22P02', 'data'], ['54000', 'data'],
    ['42P01', 'fatal'], ['3F000', 'fatal'], ['42501', 'fatal'], ['3D000', 'fatal'], ['28P01', 'fatal'], ['28000', 'fatal'],
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
  const fast = { maxRetries: 3, backoffMs: 100, remainingMs: () => 60_000, random: () => 0.5 };

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
    await expect(withRetry(attempt, { ...fast, sleep: async () => {} })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
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
    await expect(withRetry(async () => 'never', { ...fast, remainingMs: () => 0 })).rejects.toBeInstanceOf(OutOfTimeError);
    let calls = 0;
    const attempt = async () => {
      calls += 1;
      throw pgError('40001');
    };
    await expect(withRetry(attempt, { ...fast, remainingMs: () => 50, sleep: async () => {} })).rejects.toBeInstanceOf(OutOfTimeError);
    expect(calls).toBe(1);
  });
});
