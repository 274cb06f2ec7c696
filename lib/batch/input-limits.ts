/*
 * Input size caps, applied before any pattern or parser sees a value, so that the time a record takes to validate
 * is bounded by its size (every step after the caps is linear) and the size by these numbers. docs/reference.md
 * (Limits) explains each value; test/unit/linear-time.test.ts holds the linear growth.
 */

import { type Config, VARIABLES } from '../config';

/**
 * The two caps a user can raise, MAX_RECORD_BYTES and MAX_TEXT_CHARS (lib/config.ts, deploy parameters
 * maxRecordBytes and maxTextChars), up to 6 MiB each: the time bound comes from every step being linear, not from
 * these numbers (test/unit/linear-time.test.ts holds it at the largest values).
 * - Bytes of a record value the consumer reads: by default 1 MiB, Kafka's default maximum message size
 *   (`message.max.bytes` is 1,048,588 for a whole record batch, so no value a broker with default settings accepts is
 *   larger). A survey report is a few kilobytes to a few hundred. A larger value is dead-lettered as `too_large`,
 *   bytes kept, with a detail that names MAX_RECORD_BYTES.
 * - Characters of a free-text field (course name, question, comment, upstream error): by default 64 Ki, pages of text.
 */
export type InputLimits = Config['limits'];

/** The caps of a configuration that sets neither variable. */
export const DEFAULT_INPUT_LIMITS: InputLimits = {
  recordBytes: Number(VARIABLES.MAX_RECORD_BYTES.default),
  textChars: Number(VARIABLES.MAX_TEXT_CHARS.default),
};

/**
 * Characters of an identifier (`traceId`, `course.courseId`) or an instructor name: 512. Each is a key of a
 * PostgreSQL index, whose entries hold at most 2,704 bytes; 512 UTF-16 units are at most 1,536 UTF-8 bytes.
 */
export const ID_MAX_CHARS = 512;

/** Characters of a number sent as a string (`"4.5"`): 100, several times the longest a double needs (24). */
export const NUMBER_TEXT_MAX_CHARS = 100;

/** Characters of a timestamp string: 64, nearly twice the longest ISO-8601 form with nanoseconds and a zone (35). */
export const TIMESTAMP_MAX_CHARS = 64;
