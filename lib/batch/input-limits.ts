/*
 * Input size caps, applied before any pattern or parser sees a value, so that the time a record takes to validate
 * is bounded by its size (every step after the caps is linear) and the size by these numbers. docs/reference.md
 * (Limits) explains each value; test/unit/linear-time.test.ts holds the linear growth.
 */

/**
 * Bytes of a record value the consumer reads: 1 MiB, Kafka's default maximum message size (`message.max.bytes`
 * is 1,048,588 for a whole record batch, so no value a broker with default settings accepts is larger). A survey
 * report is a few kilobytes to a few hundred. A larger value is dead-lettered as `too_large`, bytes kept.
 */
export const MESSAGE_MAX_BYTES = 1024 * 1024;

/** Characters of a free-text field (course name, question, comment, upstream error): 64 Ki, pages of text. */
export const TEXT_MAX_CHARS = 65_536;

/**
 * Characters of an identifier (`traceId`, `course.courseId`) or an instructor name: 512. Each is a key of a
 * PostgreSQL index, whose entries hold at most 2,704 bytes; 512 UTF-16 units are at most 1,536 UTF-8 bytes.
 */
export const ID_MAX_CHARS = 512;

/** Characters of a number sent as a string (`"4.5"`): 100, several times the longest a double needs (24). */
export const NUMBER_TEXT_MAX_CHARS = 100;

/** Characters of a timestamp string: 64, nearly twice the longest ISO-8601 form with nanoseconds and a zone (35). */
export const TIMESTAMP_MAX_CHARS = 64;
