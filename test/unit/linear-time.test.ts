import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { parseJson } from '../../lib/batch/exact-json';
import { INPUT_CAP_CEILING } from '../../lib/config';
import { DEFAULT_INPUT_LIMITS } from '../../lib/batch/input-limits';
import { messageParser, NUMERIC } from '../../lib/batch/trace-message';
import { canonicalTimestamp, normaliseName, storableText } from '../../lib/batch/storable-text';

/*
 * Issue 21: a regex that backtracks quadratically turns one record of a few dozen kilobytes into a batch that times
 * out on every delivery. These tests time every step that reads input, on inputs of growing size and hostile shape
 * (long runs that end in the one character that fails the match), and require near-linear growth.
 *
 * Robust on a loaded 2-core machine: each size is timed per call over runs of at least 10 ms, the fastest of five
 * runs kept (load only ever adds time), and the size grows 16-fold: linear work grows about 16 times, quadratic 256
 * times. The bound, 80, leaves a factor of five to noise and to cache effects (a 16-fold deeper JSON nesting
 * outgrows the CPU caches: measured 19x alone, up to 64x with the machine's two cores loaded) and still fails a
 * quadratic step by a factor of three. No absolute duration is asserted.
 */

const GROWTH = 16;
const LINEAR_BOUND = 5 * GROWTH;

/** Seconds per call of `fn`, the fastest of five runs of at least 10 ms each. */
function perCall(fn: () => unknown): number {
  let best = Infinity;
  for (let trial = 0; trial < 5; trial++) {
    let calls = 0;
    const start = performance.now();
    let elapsed = 0;
    do {
      fn();
      calls++;
      elapsed = performance.now() - start;
    } while (elapsed < 10);
    best = Math.min(best, elapsed / calls);
  }
  return best;
}

/** How much longer `fn(build(n * GROWTH))` takes than `fn(build(n))`. */
function growth<T>(n: number, build: (n: number) => T, fn: (input: T) => unknown): number {
  const small = build(n);
  const large = build(n * GROWTH);
  fn(small); // warm up the compiled code paths first
  fn(large);
  return perCall(() => fn(large)) / perCall(() => fn(small));
}

const N = 2_500;
const digits = (n: number) => '1'.repeat(n);
const spaces = (n: number) => ' '.repeat(n);

describe('linear time: every pattern on input, beyond the size caps', () => {
  // The caps (lib/batch/input-limits.ts) keep fields far shorter than these sizes; the patterns must be linear
  // regardless.
  it.each<[string, (n: number) => string]>([
    ['digits ending in a letter', (n) => `${digits(n)}x`],
    ['digits, a point, digits, a letter', (n) => `${digits(n)}.${digits(n)}x`],
    ['digits, an exponent, digits, a letter', (n) => `1e${digits(n)}x`],
    ['digits then an exponent sign', (n) => `${digits(n)}e`],
    ['whitespace around a number, then a letter', (n) => `${spaces(n)}1${spaces(n)}x`],
    ['many points', (n) => '.'.repeat(n)],
    ['many minus signs', (n) => '-'.repeat(n)],
    ['many exponents', (n) => 'e'.repeat(n)],
    ['alternating digits and points', (n) => '1.'.repeat(n)],
    ['alternating digits and exponents', (n) => '1e'.repeat(n)],
  ])('numbers as text (NUMERIC): %s', (_name, build) => {
    expect(growth(N, build, (s) => NUMERIC.test(s))).toBeLessThan(LINEAR_BOUND);
  });

  it.each<[string, (n: number) => string]>([
    ['fraction digits ending in a letter', (n) => `2023-01-01T00:00:00.${digits(n)}x`],
    ['whitespace before a zone, then a letter', (n) => `2023-01-01T00:00:00${spaces(n)}Zx`],
    ['whitespace after a date, then a letter', (n) => `2023-01-01${spaces(n)}+`],
    ['only digits', (n) => digits(n)],
    ['repeated date prefixes', (n) => '2023-01-'.repeat(n)],
    ['repeated colons', (n) => `2023-01-01T00${':00'.repeat(n)}`],
  ])('timestamps (canonicalTimestamp): %s', (_name, build) => {
    expect(growth(N, build, canonicalTimestamp)).toBeLessThan(LINEAR_BOUND);
  });

  it.each<[string, (n: number) => string]>([
    ['whitespace runs between letters', (n) => 'a \t\n'.repeat(n)],
    ['one long whitespace run, then a letter', (n) => `${spaces(n)}a${'\u00a0'.repeat(n)}`],
    ['NULs and lone surrogates', (n) => '\u0000\ud800a'.repeat(n)],
  ])('names and identifiers (normaliseName, storableText, trim): %s', (_name, build) => {
    expect(growth(N, build, (s) => normaliseName(storableText(s)).trim())).toBeLessThan(LINEAR_BOUND);
  });

  it.each<[string, (n: number) => string]>([
    ['a long integer run', (n) => `[${digits(n)}]`],
    ['a long integer run inside a string, ending in a point', (n) => `["${digits(n)}."]`],
    ['16-digit runs each ending in a point', (n) => `["${`${digits(16)}.`.repeat(n / 16)}", 12345678901234567890]`],
    ['16-digit runs each ending in an exponent', (n) => `["${`${digits(16)}e`.repeat(n / 16)}", 12345678901234567890]`],
    ['deep arrays around a long integer', (n) => `${'['.repeat(n)}12345678901234567890${']'.repeat(n)}`],
    ['deep objects around a long integer', (n) => `${'{"a":'.repeat(n)}12345678901234567890${'}'.repeat(n)}`],
    ['many long integers with whitespace', (n) => `[${' 12345678901234567890 ,'.repeat(n / 8)} 1]`],
    ['escaped strings beside a long integer', (n) => `["${'\\"\\\\'.repeat(n)}", 12345678901234567890]`],
  ])('the JSON reader (parseJson): %s', (_name, build) => {
    expect(growth(N * 4, build, parseJson)).toBeLessThan(LINEAR_BOUND);
  });
});

/*
 * Whole messages with several hostile fields at once, in every combination of shape and field: what one record can
 * do to validation. The fields grow with the message, so that a field cap that is missing shows too.
 */
const shapes: Array<(n: number) => string> = [
  (n) => `${digits(n)}x`,
  (n) => `${digits(n)}.${digits(n)}e`,
  (n) => `${spaces(n)}1${spaces(n)}x`,
  (n) => `2023-01-01T00:00:00.${digits(n)}x`,
  (n) => `${spaces(n)}a${'\t '.repeat(n)}`,
  (n) => '-.e'.repeat(n),
];
const numberFields = [
  'responses',
  'responseRate',
  'courseMean',
  'deptMean',
  'univMean',
  'courseMedian',
  'deptMedian',
  'univMedian',
];

function hostileMessage(n: number, variant: number): Buffer {
  const shape = (i: number) => shapes[(i + variant) % shapes.length]!(n);
  const ratings = Array.from({ length: 4 }, (_, r) =>
    Object.fromEntries(numberFields.map((f, i) => [f, shape(r + i)])),
  );
  const message = {
    traceId: shape(0),
    processedAt: shape(1),
    course: { courseId: shape(2), year: shape(3), enrollment: shape(4), processedAt: shape(5), courseName: shape(6) },
    instructor: { name: shape(7) },
    ratings,
    comments: [{ commentText: shape(8), responseNumber: shape(9) }],
  };
  // Deep nesting and a long digit run beside the fields, in an ignored key: the JSON reader's worst case too.
  const text = JSON.stringify(message).replace(/}$/, `, "extra": ${'['.repeat(n)}${digits(n)}${']'.repeat(n)}}`);
  return Buffer.from(text);
}

describe('linear time: whole messages combining hostile fields', () => {
  // At the default caps, and at the largest a user may set (MAX_RECORD_BYTES and MAX_TEXT_CHARS of 6 MiB), where every
  // free-text field is read in full. The larger message is just under the record cap, so that every field is read.
  const caps = [
    { name: 'the default caps', limits: DEFAULT_INPUT_LIMITS },
    { name: 'the largest caps', limits: { recordBytes: INPUT_CAP_CEILING, textChars: INPUT_CAP_CEILING } },
  ];
  /** The field size at which the larger message of a variant is about 95% of `recordBytes` (size grows with n). */
  const fieldSize = (recordBytes: number, variant: number) => {
    const probe = 1_000;
    return Math.floor((probe * 0.95 * recordBytes) / hostileMessage(probe * GROWTH, variant).length);
  };
  it.each(caps.flatMap((c) => [0, 1, 2, 3, 4, 5].map((variant) => ({ ...c, variant }))))(
    'should validate a message of growing hostile fields in near-linear time at $name (variant $variant)',
    ({ limits, variant }) => {
      const n = fieldSize(limits.recordBytes, variant);
      const parse = messageParser(limits);
      const large = hostileMessage(n * GROWTH, variant);
      expect(large.length).toBeLessThan(limits.recordBytes);
      expect(large.length).toBeGreaterThan(limits.recordBytes * 0.9);
      const result = parse(large);
      expect(result.ok || result.reason).toBe('invalid_message'); // read, not refused unread as too_large
      expect(growth(n, (size) => hostileMessage(size, variant), parse)).toBeLessThan(LINEAR_BOUND);
    },
  );

  // The same shapes as free text, in a message that is otherwise valid: at the largest caps it is stored, so that
  // every text is read to its end and made storable, none cut short by a cap or the first problem.
  it.each([0, 1, 2, 3, 4, 5])(
    'should read a valid message of growing hostile free texts in near-linear time at the largest caps (variant %i)',
    (variant) => {
      const parse = messageParser({ recordBytes: INPUT_CAP_CEILING, textChars: INPUT_CAP_CEILING });
      const probe = 1_000;
      const n = Math.floor((probe * 0.95 * INPUT_CAP_CEILING) / hostileTexts(probe * GROWTH, variant).length);
      const large = hostileTexts(n * GROWTH, variant);
      expect(large.length).toBeGreaterThan(INPUT_CAP_CEILING * 0.9);
      const result = parse(large);
      expect(result.ok, result.ok ? '' : result.detail).toBe(true);
      expect(growth(n, (size) => hostileTexts(size, variant), parse)).toBeLessThan(LINEAR_BOUND);
    },
  );
});

function hostileTexts(n: number, variant: number): Buffer {
  const shape = (i: number) => shapes[(i + variant) % shapes.length]!(n);
  const message = {
    traceId: 'hostile-texts',
    course: { courseId: 'C-1', courseName: shape(0), subject: shape(1), gcsPath: shape(2) },
    instructor: { name: 'Jane Doe' },
    ratings: [{ questionText: shape(3), category: shape(4) }],
    comments: [{ commentText: shape(5), questionText: shape(6) }],
  };
  return Buffer.from(JSON.stringify(message));
}
