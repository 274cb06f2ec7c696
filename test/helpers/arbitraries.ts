import fc from 'fast-check';

/** Text anyone could send: any code point, plus the characters PostgreSQL and our formats treat specially. */
const hostileText = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '\u0000',
      'a\u0000b',
      '\ud800',
      'x\udfffy',
      '\ud83d',
      "'; DROP TABLE trace.comments; --",
      "Robert'); DELETE FROM instructors;--",
      '\\N',
      '\t\n\r\\',
      '$1',
      '${sql}',
      '"quoted"',
      '课程 👍🏽',
      'e\u0301',
    ),
  },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', minLength: 200, maxLength: 2000 }) },
);

/** Numbers at and beyond the edges of every column: integer range, doubles, and numeric strings. */
export const edgeNumber = fc.oneof(
  fc.constantFrom(
    0,
    -0,
    1,
    -1,
    2_147_483_647,
    2_147_483_648,
    -2_147_483_648,
    1e308,
    -1e308,
    5e-324,
    0.1 + 0.2,
    Number.MAX_SAFE_INTEGER,
  ),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.integer(),
  fc.constantFrom('4.5', ' 7 ', '1e3', '1e400', '-0', '', 'abc', '0x10'),
  fc.constant(null),
);

/** A value of any JSON type, for fields that expect a particular one. */
export const anyJson = fc.jsonValue({ maxDepth: 2 });

/** A survey message whose required fields are valid and whose text and numbers are hostile. */
export const hostileSurvey = (traceId: fc.Arbitrary<string>) =>
  fc.record({
    traceId,
    course: fc.record({
      courseId: fc
        .string({ unit: 'binary', minLength: 1, maxLength: 20 })
        .filter((s) => s.replaceAll('\u0000', '').trim() !== ''),
      courseName: hostileText,
      subject: hostileText,
      semester: fc.oneof(hostileText, fc.constant(null)),
    }),
    instructor: fc.record({
      name: fc
        .string({ unit: 'binary', minLength: 1, maxLength: 30 })
        .filter((s) => s.replaceAll('\u0000', '').trim() !== ''),
    }),
    ratings: fc.array(
      fc.record({
        questionText: hostileText,
        category: hostileText,
        courseMean: fc.double({ noNaN: true, noDefaultInfinity: true }),
        responses: fc.nat({ max: 2_147_483_647 }),
      }),
      { maxLength: 4 },
    ),
    comments: fc.array(
      fc.record({ commentText: hostileText, questionText: hostileText, responseNumber: fc.nat({ max: 100 }) }),
      { maxLength: 4 },
    ),
    processedAt: fc
      .date({ min: new Date('2000-01-01'), max: new Date('2030-01-01'), noInvalidDate: true })
      .map((d) => d.toISOString()),
  });
