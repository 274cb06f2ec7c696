import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EnvelopeError } from '../../lib/errors';
import { decodeEvent } from '../../lib/aws/kafka-event';
import { parseMessage } from '../../lib/batch/trace-message';
import { normaliseName, storableText } from '../../lib/batch/storable-text';
import { anyJson, edgeNumber, hostileSurvey } from '../helpers/arbitraries';

// LONG_TESTS=1 (set by .ci/run) runs ten times as many cases.
const runs = (n: number) => (process.env.LONG_TESTS === '1' ? n * 10 : n);

const REASONS = ['tombstone', 'invalid_utf8', 'invalid_json', 'not_an_object', 'invalid_message'];
const settled = (r: ReturnType<typeof parseMessage>) => r.ok || REASONS.includes(r.reason);

describe('properties of decoding and validation', () => {
  it('should settle any bytes as a message or a known reason, never throw', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => settled(parseMessage(Buffer.from(bytes)))),
      { numRuns: runs(500) },
    );
  });

  it('should settle any JSON value, truncated or deeply nested, never throw', () => {
    fc.assert(
      fc.property(anyJson, fc.nat(), (value, cut) => {
        const text = JSON.stringify(value) ?? 'null';
        return (
          settled(parseMessage(Buffer.from(text))) &&
          settled(parseMessage(Buffer.from(text.slice(0, cut % (text.length + 1)))))
        );
      }),
      { numRuns: runs(500) },
    );
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    expect(settled(parseMessage(Buffer.from(deep)))).toBe(true);
  });

  it('should settle a message with a wrong type in any field', () => {
    const fields = ['traceId', 'course', 'instructor', 'ratings', 'comments', 'processedAt', 'error'];
    const courseFields = ['courseId', 'courseName', 'year', 'enrollment', 'responses', 'declines', 'processedAt'];
    fc.assert(
      fc.property(
        fc.constantFrom(...fields),
        fc.constantFrom(...courseFields),
        anyJson,
        anyJson,
        (field, courseField, v1, v2) => {
          const message: Record<string, unknown> = {
            traceId: 't',
            course: { courseId: 'c', [courseField]: v2 },
            instructor: { name: 'n' },
            [field]: v1,
          };
          return settled(parseMessage(Buffer.from(JSON.stringify(message))));
        },
      ),
      { numRuns: runs(500) },
    );
  });

  it('should accept a count exactly when it is a whole number from 0 to 2,147,483,647', () => {
    fc.assert(
      fc.property(edgeNumber, (n) => {
        const r = parseMessage(
          Buffer.from(
            JSON.stringify({ traceId: 't', course: { courseId: 'c', enrollment: n }, instructor: { name: 'n' } }),
          ),
        );
        const value =
          typeof n === 'string'
            ? n.trim() === ''
              ? null
              : /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/.test(n)
                ? Number(n)
                : NaN
            : n;
        const expected = value === null || (Number.isInteger(value) && value >= 0 && value <= 2_147_483_647);
        return r.ok === expected;
      }),
      { numRuns: runs(500) },
    );
  });

  it('should keep every text exactly, apart from U+0000 removed and unpaired surrogates replaced', () => {
    fc.assert(
      fc.property(
        hostileSurvey(fc.string({ minLength: 1 }).filter((s) => s.trim() !== '' && !s.includes('\u0000'))),
        (message) => {
          const r = parseMessage(Buffer.from(JSON.stringify(message)));
          if (!r.ok || r.message.kind !== 'survey') return false;
          const m = r.message;
          return (
            m.course.courseName === storableText(message.course.courseName) &&
            m.instructor.name === normaliseName(storableText(message.instructor.name)) &&
            m.comments.every((c, i) => c.commentText === storableText(message.comments[i]!.commentText)) &&
            m.ratings.every(
              (x, i) =>
                x.questionText === storableText(message.ratings[i]!.questionText) &&
                x.courseMean === message.ratings[i]!.courseMean,
            )
          );
        },
      ),
      { numRuns: runs(300) },
    );
  });
});

describe('properties of the envelope', () => {
  it('should decode any envelope Lambda could send, or reject it with EnvelopeError', () => {
    const record = fc.record(
      {
        topic: fc.oneof(fc.string(), anyJson),
        partition: fc.oneof(fc.nat(), anyJson),
        offset: fc.oneof(fc.nat(), anyJson),
        value: fc.oneof(fc.base64String(), anyJson),
        key: fc.oneof(fc.base64String(), anyJson),
        headers: anyJson,
        timestamp: fc.oneof(fc.nat(), anyJson),
      },
      { requiredKeys: [] },
    );
    const envelope = fc.oneof(
      anyJson,
      fc.record(
        {
          eventSource: fc.oneof(fc.constantFrom('aws:kafka', 'SelfManagedKafka', 'aws:sqs'), fc.string()),
          records: fc.oneof(fc.dictionary(fc.string(), fc.array(record, { maxLength: 3 })), anyJson),
        },
        { requiredKeys: [] },
      ),
    );
    fc.assert(
      fc.property(envelope, (event) => {
        try {
          const records = decodeEvent(event);
          return records.every(
            (r) => typeof r.topic === 'string' && Number.isInteger(r.partition) && Number.isInteger(r.offset),
          );
        } catch (error) {
          return error instanceof EnvelopeError && error.code === 'EVENT_MALFORMED';
        }
      }),
      { numRuns: runs(1000) },
    );
  });
});
