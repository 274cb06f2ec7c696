import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ExactInteger, parseJson } from '../../lib/batch/exact-json';

/** JSON.parse's result with every ExactInteger turned back into the number JSON.parse would have given. */
const rounded = (x: unknown): unknown => {
  if (x instanceof ExactInteger) return Number(x.digits);
  if (Array.isArray(x)) return x.map(rounded);
  if (x !== null && typeof x === 'object')
    return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, rounded(v)]));
  return x;
};

const unsafeDigits = fc.bigInt({ min: 2n ** 53n, max: 10n ** 30n }).chain((n) => fc.constantFrom(String(n), `-${n}`));

describe('parseJson', () => {
  it('should keep integers beyond 2^53 as their exact digits, wherever they are', () => {
    const text =
      '{"traceId": 9007199254740993, "list": [ -18446744073709551617 , 1, 9007199254740991], "s": "9007199254740993"}';
    expect(parseJson(text)).toEqual({
      traceId: new ExactInteger('9007199254740993'),
      list: [new ExactInteger('-18446744073709551617'), 1, 9007199254740991],
      s: '9007199254740993',
    });
  });

  it('should read numbers with a fraction or an exponent as JSON.parse does, even when long', () => {
    expect(parseJson('[9007199254740993.0, 1e400, 12345678901234567e2, 0.12345678901234567]')).toEqual(
      JSON.parse('[9007199254740993.0, 1e400, 12345678901234567e2, 0.12345678901234567]'),
    );
  });

  it('should treat "__proto__" as an ordinary key, as JSON.parse does', () => {
    const value = parseJson('{"__proto__": {"polluted": 12345678901234567890}, "a": 1}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(Object.keys(value)).toEqual(['__proto__', 'a']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('should throw what JSON.parse throws for text that is not JSON', () => {
    expect(() => parseJson('{"a": 12345678901234567890')).toThrow(SyntaxError);
  });

  it(
    'should agree with JSON.parse on any JSON, escapes, whitespace and repeated keys included, up to the kept ' +
      'digits',
    () => {
      const withBigIntegers = fc
        .tuple(
          fc.jsonValue({ maxDepth: 3 }),
          fc.array(unsafeDigits, { maxLength: 3 }),
          fc.constantFrom('', ' ', '\n\t'),
        )
        .map(([value, digits, space]) => {
          const text = JSON.stringify({ value, digits: 0, again: 'x', [`\\u0000 "${space}`]: [] }, null, space.length);
          return (
            text
              .replace('"digits": 0', `"digits": [${digits.join(',')}]`)
              .replace('"digits":0', `"digits":[${digits.join(',')}]`) + space
          );
        });
      fc.assert(
        fc.property(withBigIntegers, (text) => {
          const exact = parseJson(text) as { digits: ExactInteger[] };
          expect(rounded(exact)).toEqual(JSON.parse(text));
          for (const d of exact.digits) expect(d).toBeInstanceOf(ExactInteger);
        }),
      );
    },
  );
});

describe('parseJson on ordinary messages', () => {
  it('should read long fractions and exponents exactly as JSON.parse does', () => {
    const text = '{"courseMean": 0.6666666666666666, "deptMean": 4.333333333333333e0, "id": 1234567890123456.5}';
    expect(parseJson(text)).toEqual(JSON.parse(text));
  });
});

describe('parseJson on deep nesting', () => {
  // Issue 21: the exact reader recursed, so valid JSON with a 16+ digit integer and ~20,000 levels threw RangeError
  // and the message was dead-lettered as invalid_json. JSON.parse itself accepts such nesting.
  it.each([
    ['arrays', (d: number) => `${'['.repeat(d)}12345678901234567890${']'.repeat(d)}`],
    ['objects', (d: number) => `${'{"a":'.repeat(d)}12345678901234567890${'}'.repeat(d)}`],
    [
      'mixed, with whitespace and siblings',
      (d: number) => `${'{"x": [1, "s"], "a" : [ '.repeat(d)}-12345678901234567890${' ] }'.repeat(d)}`,
    ],
  ])('should read 100,000 levels of %s holding a long integer', (_name, build) => {
    const depth = 100_000;
    let value = parseJson(build(depth));
    let levels = 0;
    while (value !== null && typeof value === 'object' && !(value instanceof ExactInteger)) {
      value = Array.isArray(value) ? value.at(-1) : (value as Record<string, unknown>).a;
      levels++;
    }
    expect(levels).toBeGreaterThanOrEqual(depth);
    expect(value).toBeInstanceOf(ExactInteger);
    expect((value as ExactInteger).digits).toMatch(/^-?12345678901234567890$/);
  });
});
