import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createLogger, type LogFields } from '../../lib/log';

const METHODS = ['debug', 'info', 'warn', 'error'] as const;
const STANDARD = ['level', 'message', 'timestamp'];

/** Keys a caller might pass: the standard ones among them, which must not replace the logger's own. */
const fieldsArbitrary = fc.dictionary(
  fc.oneof(fc.constantFrom(...STANDARD, 'service', 'error', 'offset'), fc.string({ minLength: 1, maxLength: 8 })),
  fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null)),
  { maxKeys: 6 },
);

describe('createLogger', () => {
  it(
    "should start each line with Powertools' level (upper case), message and timestamp (ISO 8601), whatever " +
      'fields the caller and its parents pass, and keep those fields',
    () => {
      fc.assert(
        fc.property(
          fc.constantFrom(...METHODS),
          fc.string(),
          fieldsArbitrary,
          fieldsArbitrary,
          (method, message, base, fields) => {
            const lines: Record<string, unknown>[] = [];
            const logger = createLogger('debug', {}, (line) => lines.push(JSON.parse(line))).child(base);
            const before = Date.now();
            logger[method](message, fields);
            const [line] = lines;
            // JavaScript puts integer-like keys ("0") before all others; ours never are.
            const named = Object.keys(line!).filter((key) => !/^(0|[1-9]\d*)$/.test(key));
            expect(named.slice(0, 3)).toEqual(STANDARD);
            expect(line).toMatchObject({ level: method.toUpperCase(), message });
            const timestamp = line!.timestamp as string;
            expect(new Date(timestamp).toISOString()).toBe(timestamp);
            expect(Date.parse(timestamp)).toBeGreaterThanOrEqual(before - 1);
            const expected: LogFields = { ...base, ...fields };
            for (const [key, value] of Object.entries(expected)) {
              if (!STANDARD.includes(key) && key !== '__proto__') expect(line![key], key).toEqual(value);
            }
          },
        ),
      );
    },
  );
});
