import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { INPUT_CAP_CEILING, loadConfig } from '../../lib/config';
import {
  DEFAULT_INPUT_LIMITS,
  ID_MAX_CHARS,
  NUMBER_TEXT_MAX_CHARS,
  TIMESTAMP_MAX_CHARS,
} from '../../lib/batch/input-limits';
import { messageParser, parseMessage, type SurveyMessage } from '../../lib/batch/trace-message';
import { surveyMessage } from '../helpers/factories';

const bytes = (x: unknown) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x), 'utf8');

function survey(x: unknown): SurveyMessage {
  const result = parseMessage(bytes(x));
  if (!result.ok) throw new Error(`expected a valid message, got ${result.reason}: ${result.detail}`);
  if (result.message.kind !== 'survey') throw new Error('expected a survey message');
  return result.message;
}

function rejection(x: unknown) {
  const result = parseMessage(Buffer.isBuffer(x) || x === null ? (x as Buffer | null) : bytes(x));
  if (result.ok) throw new Error('expected a rejection');
  return result;
}

describe('parseMessage', () => {
  it('should accept the seed format in full', () => {
    const input = surveyMessage();
    const message = survey(input);
    expect(message.traceId).toBe(input.traceId);
    expect(message.course.courseId).toBe(input.course.courseId);
    expect(message.course.processedAt).toBe('2023-12-20T10:00:00.000000Z');
    expect(message.ratings).toHaveLength(2);
    expect(message.ratings[0]).toEqual(input.ratings[0]);
    expect(message.comments[0]).toEqual(input.comments[0]);
  });

  it('should accept the minimum: traceId, course.courseId and instructor.name', () => {
    const message = survey({ traceId: 't', course: { courseId: 'c' }, instructor: { name: 'n' } });
    expect(message.ratings).toEqual([]);
    expect(message.comments).toEqual([]);
    expect(message.course.year).toBeNull();
    expect(message.processedAt).toBeNull();
  });

  it('should accept null statistics, numeric strings and null lists, and ignore unknown fields', () => {
    const message = survey({
      traceId: 't',
      course: { courseId: 'c', year: '2023', enrollment: '25', responses: null, futureField: { a: 1 } },
      instructor: { name: 'n', email: 'n@example.edu' },
      ratings: [{ courseMean: '4.5', deptMean: null, responses: '7' }],
      comments: null,
      schemaVersion: 3,
    });
    expect(message.course).toMatchObject({ year: 2023, enrollment: 25, responses: null });
    expect(message.course).not.toHaveProperty('futureField');
    expect(message.ratings[0]).toMatchObject({ courseMean: 4.5, deptMean: null, responses: 7 });
    expect(message.comments).toEqual([]);
  });

  it('should trim identifiers and normalise the instructor name', () => {
    const message = survey({
      traceId: ' t-1 ',
      course: { courseId: 12345 },
      instructor: { name: '  Ada \n Lovelace ' },
    });
    expect(message.traceId).toBe('t-1');
    expect(message.course.courseId).toBe('12345');
    expect(message.instructor.name).toBe('Ada Lovelace');
  });

  it('should make text storable rather than reject it', () => {
    const message = survey({
      traceId: 't',
      course: { courseId: 'c', courseName: 'A\u0000B' },
      instructor: { name: 'n' },
      comments: [{ commentText: 'bad \ud83d surrogate' }],
    });
    expect(message.course.courseName).toBe('AB');
    expect(message.comments[0]?.commentText).toBe('bad \ufffd surrogate');
  });

  it.each([
    ['traceId missing', { course: { courseId: 'c' }, instructor: { name: 'n' } }, 'traceId: is required but missing'],
    [
      'traceId blank',
      { traceId: '  ', course: { courseId: 'c' }, instructor: { name: 'n' } },
      'traceId: must not be empty',
    ],
    ['course missing', { traceId: 't', instructor: { name: 'n' } }, 'course: is required but missing'],
    [
      'courseId missing',
      { traceId: 't', course: {}, instructor: { name: 'n' } },
      'course.courseId: is required but missing',
    ],
    [
      'instructor name missing',
      { traceId: 't', course: { courseId: 'c' }, instructor: {} },
      'instructor.name: is required but missing',
    ],
    ['upstream error without trace id', { error: 'boom' }, 'traceId: is required but missing'],
    ['courseId blank', { traceId: 't', course: { courseId: '' }, instructor: { name: 'n' } }, 'course.courseId'],
    [
      'instructor name blank',
      { traceId: 't', course: { courseId: 'c' }, instructor: { name: ' \t ' } },
      'instructor.name',
    ],
    [
      'negative count',
      { traceId: 't', course: { courseId: 'c', enrollment: -1 }, instructor: { name: 'n' } },
      'course.enrollment: must not be negative',
    ],
    [
      'fractional count',
      { traceId: 't', course: { courseId: 'c', declines: 1.5 }, instructor: { name: 'n' } },
      'course.declines: must be a whole number',
    ],
    [
      'count beyond integer',
      { traceId: 't', course: { courseId: 'c', responses: 2 ** 31 }, instructor: { name: 'n' } },
      'course.responses: must be at most',
    ],
    [
      'implausible year',
      { traceId: 't', course: { courseId: 'c', year: 20230 }, instructor: { name: 'n' } },
      'course.year',
    ],
    [
      'bad timestamp',
      { traceId: 't', course: { courseId: 'c' }, instructor: { name: 'n' }, processedAt: '20/12/2023' },
      'processedAt: must be an ISO-8601 timestamp',
    ],
    [
      'non-numeric statistic',
      { traceId: 't', course: { courseId: 'c' }, instructor: { name: 'n' }, ratings: [{ courseMean: 'high' }] },
      'ratings.0.courseMean',
    ],
    [
      'infinite statistic',
      { traceId: 't', course: { courseId: 'c' }, instructor: { name: 'n' }, ratings: [{ courseMean: '1e999' }] },
      'ratings.0.courseMean: must be a finite number',
    ],
    [
      'ratings not a list',
      { traceId: 't', course: { courseId: 'c' }, instructor: { name: 'n' }, ratings: { a: 1 } },
      'ratings: expected Array, got object',
    ],
    [
      'wrong type for text',
      { traceId: 't', course: { courseId: 'c', subject: ['CS'] }, instructor: { name: 'n' } },
      'course.subject',
    ],
  ])('should reject a message with %s as invalid_message', (_name, input, expected) => {
    const result = rejection(input);
    expect(result.reason).toBe('invalid_message');
    expect(result.detail).toContain(expected);
  });

  it('should not quote the value in an invalid_json detail', () => {
    const result = rejection(Buffer.from('secret words, not json'));
    expect(result.reason).toBe('invalid_json');
    expect(result.detail).not.toContain('secret');
    expect(rejection(Buffer.from('{"a": 1,')).detail).toMatch(/^value is not JSON( \(error at position \d+\))?$/);
  });

  it('should never echo a rejected text value in the detail', () => {
    const result = rejection({
      traceId: 't',
      course: { courseId: 'c' },
      instructor: { name: 'n' },
      ratings: [{ courseMean: 'my secret comment' }],
    });
    expect(result.detail).not.toContain('secret');
  });

  it.each([
    ['a tombstone', null, 'tombstone'],
    ['bytes that are not UTF-8', Buffer.from([0x7b, 0xff, 0x7d]), 'invalid_utf8'],
    ['text that is not JSON', Buffer.from('{"traceId":'), 'invalid_json'],
    ['a JSON array', Buffer.from('[1,2]'), 'not_an_object'],
    ['a JSON string', Buffer.from('"hello"'), 'not_an_object'],
    ['JSON null', Buffer.from('null'), 'not_an_object'],
  ])('should reject %s as %s', (_name, value, reason) => {
    expect(rejection(value).reason).toBe(reason);
  });

  it('should read a message with a non-empty error as an upstream failure report', () => {
    const result = parseMessage(
      bytes({ traceId: 't-9', error: '  OCR failed  ', processedAt: '2023-01-01T00:00:00Z' }),
    );
    expect(result).toEqual({
      ok: true,
      message: {
        kind: 'upstream_error',
        traceId: 't-9',
        error: 'OCR failed',
        processedAt: '2023-01-01T00:00:00.000000Z',
      },
    });
  });

  it('should treat an empty or null error as no error', () => {
    expect(survey({ ...surveyMessage(), error: '' }).kind).toBe('survey');
    expect(survey({ ...surveyMessage(), error: null }).kind).toBe('survey');
  });

  it('should reject an upstream failure report without a trace id', () => {
    expect(rejection({ error: 'boom' }).reason).toBe('invalid_message');
  });

  it('should accept a value that starts with a UTF-8 byte order mark, as the Python service did', () => {
    const input = surveyMessage();
    const withBom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes(input)]);
    const result = parseMessage(withBom);
    expect(result.ok && result.message.traceId).toBe(input.traceId);
    // Only one, and only at the start: anywhere else it is not JSON.
    expect(rejection(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf, 0xef, 0xbb, 0xbf]), bytes(input)])).reason).toBe(
      'invalid_json',
    );
  });

  it.each([
    ['a string trace id', { traceId: ' t-42 ', course: 5, instructor: { name: 'n' } }, 't-42'],
    ['a numeric trace id', '{"traceId": 9007199254740993, "course": {"courseId": "c"}}', '9007199254740993'],
    ['an empty course id', { traceId: 't-43', course: { courseId: ' ' }, instructor: { name: 'n' } }, 't-43'],
    ['no trace id', { course: { courseId: 'c' }, instructor: { name: 'n' } }, null],
    [
      'a trace id of the wrong type',
      { traceId: { id: 1 }, course: { courseId: 'c' }, instructor: { name: 'n' } },
      null,
    ],
    ['an empty trace id', { traceId: '  ', course: { courseId: 'c' }, instructor: { name: 'n' } }, null],
  ])('should keep the trace id of an invalid message with %s when it is readable', (_name, value, traceId) => {
    const result = rejection(value);
    expect(result.reason).toBe('invalid_message');
    expect(result.traceId).toBe(traceId);
  });

  it('should keep the exact digits of integer ids beyond 2^53, so different ids stay different', () => {
    const text = (traceId: string, courseId: string) =>
      `{"traceId": ${traceId}, "course": {"courseId": ${courseId}, "enrollment": 12, "courseName": ` +
      `123456789012345678901234567890}, "instructor": {"name": 7}}`;
    const a = survey(text('9007199254740993', '18446744073709551615'));
    const b = survey(text('9007199254740992', '-18446744073709551616'));
    expect([a.traceId, b.traceId]).toEqual(['9007199254740993', '9007199254740992']);
    expect([a.course.courseId, b.course.courseId]).toEqual(['18446744073709551615', '-18446744073709551616']);
    expect(a.course.courseName).toBe('123456789012345678901234567890');
    expect(a.instructor.name).toBe('7');
    expect(a.course.enrollment).toBe(12);
  });

  it('should read a long integer in a number field as the number JSON gives, and refuse one in a count', () => {
    const message = survey(
      '{"traceId": "t", "course": {"courseId": "c"}, "instructor": {"name": "n"}, "ratings": [{"courseMean": ' +
        '12345678901234567890}]}',
    );
    // the nearest double, as JSON.parse reads it
    expect(message.ratings[0]?.courseMean).toBe(Number('12345678901234567890'));
    expect(
      rejection(
        '{"traceId": "t", "course": {"courseId": "c", "enrollment": 12345678901234567890}, "instructor": ' +
          '{"name": "n"}}',
      ).detail,
    ).toMatch(/course\.enrollment: must be at most 2147483647/);
  });

  it.each(['9007199254740993.0', '1e17', '9.007199254740993e15'])(
    'should refuse id %s, whose digits cannot be known, instead of rounding it',
    (id) => {
      const result = rejection(`{"traceId": ${id}, "course": {"courseId": "c"}, "instructor": {"name": "n"}}`);
      expect(result.reason).toBe('invalid_message');
      expect(result.detail).toMatch(/traceId: is a whole number beyond 2\^53 .*send it as a string/);
    },
  );

  it('should stop a large invalid message at its first problem, and name up to five in a small one', () => {
    // valibot collects every issue: 500,000 wrong items in 1 MiB took 300 MB of heap for one record.
    const large = rejection(surveyMessage({ ratings: Array.from({ length: 400_000 }, () => 1) }));
    expect(large).toMatchObject({ reason: 'invalid_message', detail: 'ratings.0: expected Object, got number' });
    const small = rejection(surveyMessage({ ratings: Array.from({ length: 7 }, () => 1) }));
    expect(small.detail.split('; ')).toEqual(
      Array.from({ length: 5 }, (_, i) => `ratings.${i}: expected Object, got number`),
    );
  });

  it('should refuse an array where a rating or a comment object is expected, never store it as a row of nulls', () => {
    // valibot's object schema reads an array as an object with every key absent: 330,000 `[]` made as many rows.
    for (const [ratings, comments, path] of [
      [[[]], [], 'ratings.0'],
      [[], [{}, [1, 2]], 'comments.1'],
      [[{}, ['x']], [], 'ratings.1'],
    ] as const) {
      expect(rejection(surveyMessage({ ratings, comments }))).toMatchObject({
        reason: 'invalid_message',
        detail: `${path}: must be an object, not an array`,
      });
    }
    expect(survey(surveyMessage({ ratings: [{}], comments: [{}] })).ratings).toEqual([
      expect.objectContaining({ responses: null }),
    ]);
  });

  it('should say a required field is missing, never "expected" its own name, for every required field', () => {
    const full = { traceId: 't', course: { courseId: 'c' }, instructor: { name: 'n' } };
    const without = (path: string[]): unknown => {
      const copy = structuredClone(full) as unknown as Record<string, Record<string, unknown>>;
      if (path.length === 1) delete copy[path[0]!];
      else delete copy[path[0]!]![path[1]!];
      return copy;
    };
    for (const path of [['traceId'], ['course'], ['course', 'courseId'], ['instructor'], ['instructor', 'name']]) {
      const { detail } = rejection(without(path));
      expect(detail).toBe(`${path.join('.')}: is required but missing`);
    }
  });

  it('should read a value at MAX_RECORD_BYTES and dead-letter one a byte over as too_large, naming it', () => {
    const padded = (size: number) => {
      const text = JSON.stringify({ ...surveyMessage(), pad: '' });
      return Buffer.from(text.replace('"pad":""', `"pad":"${' '.repeat(size - Buffer.byteLength(text))}"`));
    };
    // The default, the ceiling, and caps in between as a configuration would set them (the variable's own schema).
    const caps = fc.sample(fc.integer({ min: 1024, max: INPUT_CAP_CEILING }), { numRuns: 4, seed: 29 });
    for (const recordBytes of [DEFAULT_INPUT_LIMITS.recordBytes, INPUT_CAP_CEILING, ...caps]) {
      const { limits } = loadConfig({ MAX_RECORD_BYTES: String(recordBytes) });
      const parse = messageParser(limits);
      expect(parse(padded(recordBytes)).ok, `${recordBytes}`).toBe(true);
      const over = parse(padded(recordBytes + 1));
      expect(over).toEqual({
        ok: false,
        reason: 'too_large',
        traceId: null,
        detail: expect.stringContaining(`${recordBytes + 1} bytes, more than the ${recordBytes}`),
      });
      expect(over.ok || over.detail).toContain('(MAX_RECORD_BYTES; raise it');
      // Not even UTF-8 or JSON is checked: the cap comes first.
      expect(parse(Buffer.alloc(recordBytes + 1, 0xff))).toMatchObject({ reason: 'too_large' });
    }
    expect(parseMessage(padded(DEFAULT_INPUT_LIMITS.recordBytes + 1))).toMatchObject({ reason: 'too_large' });
  });

  it('should accept every free-text field at MAX_TEXT_CHARS and refuse it one longer, naming the variable', () => {
    const texts: [string, (s: string) => unknown][] = [
      ['course.courseName', (s) => surveyMessage({ course: { courseId: 'c', courseName: s } })],
      ['ratings.0.questionText', (s) => surveyMessage({ ratings: [{ questionText: s }] })],
      ['comments.0.commentText', (s) => surveyMessage({ comments: [{ commentText: s }] })],
      ['error', (s) => ({ traceId: 't', error: s })],
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...texts),
        fc.oneof(fc.constant(DEFAULT_INPUT_LIMITS.textChars), fc.integer({ min: 1024, max: 200_000 })),
        fc.constantFrom('x', '\u00e9', ' '),
        ([path, build], textChars, unit) => {
          // A large record cap, so that the text cap alone decides; a JSON escape is one character of several bytes.
          const parse = messageParser({ recordBytes: INPUT_CAP_CEILING, textChars });
          const value = (n: number) => bytes(JSON.stringify(build('@')).replace('"@"', `"${unit.repeat(n - 1)}7"`));
          expect(parse(value(textChars)).ok).toBe(true);
          const over = parse(value(textChars + 1));
          expect(over).toMatchObject({
            ok: false,
            reason: 'invalid_message',
            detail: `${path}: must be at most ${textChars} characters long (MAX_TEXT_CHARS)`,
          });
        },
      ),
      { numRuns: 30 },
    );
  });

  it.each([
    ['traceId', ID_MAX_CHARS, (s: string) => ({ traceId: s, course: { courseId: 'c' }, instructor: { name: 'n' } })],
    [
      'course.courseId',
      ID_MAX_CHARS,
      (s: string) => ({ traceId: 't', course: { courseId: s }, instructor: { name: 'n' } }),
    ],
    [
      'instructor.name',
      ID_MAX_CHARS,
      (s: string) => ({ traceId: 't', course: { courseId: 'c' }, instructor: { name: s } }),
    ],
    [
      'ratings.0.courseMean',
      NUMBER_TEXT_MAX_CHARS,
      (s: string) => ({
        traceId: 't',
        course: { courseId: 'c' },
        instructor: { name: 'n' },
        ratings: [{ courseMean: s }],
      }),
    ],
    [
      'course.year',
      NUMBER_TEXT_MAX_CHARS,
      (s: string) => ({ traceId: 't', course: { courseId: 'c', year: s }, instructor: { name: 'n' } }),
    ],
    [
      'processedAt',
      TIMESTAMP_MAX_CHARS,
      (s: string) => ({ traceId: 't', course: { courseId: 'c' }, instructor: { name: 'n' }, processedAt: s }),
    ],
  ])('should accept %s at its cap of %i characters and refuse it one character longer', (path, max, build) => {
    // A value valid for every field kind at any length: a number padded with leading whitespace, or a timestamp.
    const value = (n: number) =>
      path === 'processedAt'
        ? `${' '.repeat(n - 20)}2023-01-01T00:00:00Z`
        : path === 'course.year'
          ? `${' '.repeat(n - 4)}2023`
          : `${' '.repeat(n - 1)}7`;
    expect(parseMessage(bytes(build(value(max)))).ok).toBe(true);
    const result = rejection(build(value(max + 1)));
    expect(result.detail).toBe(`${path}: must be at most ${max} characters long`);
    // An id beyond the cap is not kept as the dead letter's trace id either.
    if (path === 'traceId') expect(result.traceId).toBeNull();
  });

  it('should refuse a digit run beyond 2^53 longer than the id cap, given as a JSON number', () => {
    const result = rejection(
      `{"traceId": ${'9'.repeat(ID_MAX_CHARS + 1)}, "course": {"courseId": "c"}, "instructor": {"name": "n"}}`,
    );
    expect(result.detail).toBe(`traceId: must be at most ${ID_MAX_CHARS} characters long`);
  });
});
