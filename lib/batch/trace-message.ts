import { isUtf8 } from 'node:buffer';
import * as v from 'valibot';
import { INPUT_CAP_CEILING } from '../config';
import { ExactInteger, parseJson } from './exact-json';
import {
  DEFAULT_INPUT_LIMITS,
  ID_MAX_CHARS,
  type InputLimits,
  NUMBER_TEXT_MAX_CHARS,
  TIMESTAMP_MAX_CHARS,
} from './input-limits';
import { canonicalTimestamp, normaliseName, storableText } from './storable-text';

/*
 * The message the upstream processor publishes on `trace-survey-processed` (format in the README). Strict where
 * data could not be stored meaningfully, lenient where it still can: unknown fields are ignored, optional values
 * may be null or absent, numbers may arrive as numeric strings, and text is made storable (see storableText).
 */

const INT4_MAX = 2_147_483_647;

/*
 * Field schemas are single raw transforms rather than pipes of unions: a message has some 250 fields, and one
 * function call per field keeps validating 10,000 records well inside Lambda's budget. Each says what it accepts.
 */

type Ctx = Parameters<Parameters<typeof v.rawTransform<unknown, unknown>>[0]>[0];
const fail = (ctx: Ctx, message: string) => {
  ctx.addIssue({ message });
  return ctx.NEVER;
};

/** An optional field: absent runs the check with null, so that every output field is present (null if unknown). */
const optional = <T>(check: (ctx: Ctx) => T) => v.optional(v.pipe(v.unknown(), v.rawTransform(check)), null);

/**
 * A number written where text is expected (a course id of 12345) is taken as the digits it was written with. An
 * integer beyond 2^53 that JSON.parse would round is read exactly (see parseJson); one written with a fraction or an
 * exponent cannot be, and is refused rather than stored with other digits.
 */
function numberAsText(x: unknown): string | 'inexact' | undefined {
  if (x instanceof ExactInteger) return x.digits;
  if (typeof x !== 'number' || !Number.isFinite(x)) return undefined;
  return Number.isInteger(x) && !Number.isSafeInteger(x) ? 'inexact' : String(x);
}
const INEXACT =
  'is a whole number beyond 2^53 written with a fraction or exponent, so its digits are unknown: send it as a string';

/*
 * Length caps (lib/batch/input-limits.ts) are checked first, on the value as sent: no pattern or normalisation ever
 * runs on more than the cap, and the detail gives the length, never the value.
 */
const tooLong = (max: number) => `must be at most ${max} characters long`;
/** The free-text cap is a setting: its detail names the variable to raise. */
const textTooLong = (max: number) => `${tooLong(max)} (MAX_TEXT_CHARS)`;
const longerThan = (x: unknown, max: number) =>
  (typeof x === 'string' || x instanceof ExactInteger) && (typeof x === 'string' ? x : x.digits).length > max;

/**
 * An identifier's text: a string trimmed and made storable, or a number's digits; undefined when neither,
 * 'too_long' beyond {@link ID_MAX_CHARS}.
 */
function identifierText(x: unknown): string | 'inexact' | 'too_long' | undefined {
  if (longerThan(x, ID_MAX_CHARS)) return 'too_long';
  return typeof x === 'string' ? storableText(x).trim() : numberAsText(x);
}

/** What valibot's object schema reports for an absent key, and a required field reports for undefined. */
const MISSING = 'is required but missing';

/** Required identifier: text that is not empty once surrounding whitespace is removed; stored trimmed. */
const requiredText = v.pipe(
  v.unknown(),
  v.rawTransform((ctx): string => {
    const x = ctx.dataset.value;
    const text = identifierText(x);
    if (text === 'inexact') return fail(ctx, INEXACT);
    if (text === 'too_long') return fail(ctx, tooLong(ID_MAX_CHARS));
    if (text === undefined) return fail(ctx, x === undefined ? MISSING : 'must be a string');
    if (text === '') return fail(ctx, 'must not be empty');
    return text;
  }),
);

/**
 * A decimal number as text, as Number() reads it but without hex, binary, octal or Infinity. Written so that every
 * character can be matched in only one way: digits before the point are `\d+`, and digits after it can only be
 * reached through the point. The former `\d+\.?\d*` could split a run of n digits between its two quantifiers in
 * n ways, and tried them all when the run ended in a non-digit: quadratic, 12 s for 40,000 digits. Linear now
 * (test/unit/linear-time.test.ts), and never run on more than NUMBER_TEXT_MAX_CHARS characters.
 */
export const NUMERIC = /^\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*$/;

/** A finite number, or a string holding one ("4.5"); null when absent or an empty string. */
function toNumber(ctx: Ctx): number | null | typeof ctx.NEVER {
  const x = ctx.dataset.value;
  if (x === undefined || x === null || x === '') return null;
  if (typeof x === 'string' && x.length > NUMBER_TEXT_MAX_CHARS) return fail(ctx, tooLong(NUMBER_TEXT_MAX_CHARS));
  const n =
    typeof x === 'number'
      ? x
      : x instanceof ExactInteger
        ? Number(x.digits)
        : typeof x === 'string' && NUMERIC.test(x)
          ? Number(x)
          : undefined;
  if (n === undefined) return fail(ctx, 'must be a number');
  if (!Number.isFinite(n)) return fail(ctx, 'must be a finite number');
  return n;
}

/** A finite number; stored as double precision, so any finite value fits. */
const optionalNumber = optional((ctx): number | null => toNumber(ctx));

/** A whole number from `min` to `max` (a PostgreSQL integer), or null when absent. */
const optionalInteger = (min: number, max: number, range: string) =>
  optional((ctx): number | null => {
    const n = toNumber(ctx);
    if (n === null || n === ctx.NEVER) return n;
    if (!Number.isInteger(n)) return fail(ctx, 'must be a whole number');
    if (n < min) return fail(ctx, min === 0 ? 'must not be negative' : `must be ${range}`);
    if (n > max) return fail(ctx, max === INT4_MAX ? `must be at most ${INT4_MAX}` : `must be ${range}`);
    return n;
  });

/** A count: a non-negative whole number that fits PostgreSQL's integer. */
const optionalCount = optionalInteger(0, INT4_MAX, `from 0 to ${INT4_MAX}`);
const optionalYear = optionalInteger(1900, 2200, 'from 1900 to 2200');

/** An ISO-8601 timestamp, kept in canonical UTC form (see canonicalTimestamp); null when absent. */
const optionalTimestamp = optional((ctx): string | null => {
  const x = ctx.dataset.value;
  if (x === undefined || x === null) return null;
  if (typeof x === 'string' && x.length > TIMESTAMP_MAX_CHARS) return fail(ctx, tooLong(TIMESTAMP_MAX_CHARS));
  const canonical = typeof x === 'string' ? canonicalTimestamp(x) : null;
  return canonical ?? fail(ctx, 'must be an ISO-8601 timestamp');
});

/**
 * valibot's object schema accepts an array (an array is an object, and its absent keys read as undefined): `[]` or
 * `[1, 2]` in a list of ratings would be stored as a rating of nothing but nulls. A list item must be a JSON object.
 */
const notAnArray = v.check((x: unknown) => !Array.isArray(x), 'must be an object, not an array');

const optionalList = <T extends v.GenericSchema>(item: T) =>
  v.pipe(
    v.optional(v.nullable(v.array(v.pipe(v.unknown(), notAnArray, item))), null),
    v.transform((x) => x ?? []),
  );

/**
 * The message schemas for a free-text cap of `textChars` characters (MAX_TEXT_CHARS): every schema but the texts'
 * is the same for any cap.
 */
function messageSchemas(textChars: number) {
  /** Optional text: a string, or a number written as text; null when absent. */
  const optionalText = optional((ctx): string | null => {
    const x = ctx.dataset.value;
    if (x === undefined || x === null) return null;
    if (longerThan(x, textChars)) return fail(ctx, textTooLong(textChars));
    if (typeof x === 'string') return storableText(x);
    const digits = numberAsText(x);
    if (digits === 'inexact') return fail(ctx, INEXACT);
    return digits ?? fail(ctx, 'must be a string');
  });

  const RatingSchema = v.object({
    questionText: optionalText,
    category: optionalText,
    responses: optionalCount,
    responseRate: optionalNumber,
    courseMean: optionalNumber,
    deptMean: optionalNumber,
    univMean: optionalNumber,
    courseMedian: optionalNumber,
    deptMedian: optionalNumber,
    univMedian: optionalNumber,
  });

  const CommentSchema = v.object({
    category: optionalText,
    questionText: optionalText,
    responseNumber: optionalCount,
    commentText: optionalText,
  });

  const CourseSchema = v.object({
    courseId: requiredText,
    courseName: optionalText,
    subject: optionalText,
    catalogSection: optionalText,
    semester: optionalText,
    year: optionalYear,
    enrollment: optionalCount,
    responses: optionalCount,
    declines: optionalCount,
    processedAt: optionalTimestamp,
    originalFileName: optionalText,
    gcsBucket: optionalText,
    gcsPath: optionalText,
  });

  /** A survey report: what gets stored. */
  const survey = v.object({
    traceId: requiredText,
    course: CourseSchema,
    instructor: v.object({ name: v.pipe(requiredText, v.transform(normaliseName)) }),
    ratings: optionalList(RatingSchema),
    comments: optionalList(CommentSchema),
    processedAt: optionalTimestamp,
  });
  /** An upstream failure report: a message whose `error` is a non-empty string. Only its trace id must be usable. */
  const upstreamError = v.object({
    traceId: requiredText,
    error: v.pipe(
      v.string(),
      v.maxLength(textChars, textTooLong(textChars)),
      v.transform(storableText),
      v.trim(),
      v.nonEmpty(),
    ),
    processedAt: v.optional(v.unknown()),
  });
  return { survey, upstreamError };
}
type MessageSchemas = ReturnType<typeof messageSchemas>;

export type SurveyMessage = v.InferOutput<MessageSchemas['survey']> & { kind: 'survey' };

type UpstreamErrorMessage = { kind: 'upstream_error'; traceId: string; error: string; processedAt: string | null };

export type TraceMessage = SurveyMessage | UpstreamErrorMessage;

/**
 * Stable reason codes for dead letters decided before the database (docs/dead-letters.md explains each). `too_slow`
 * comes from validateBatch (lib/batch/validate-batch.ts), never from parseMessage.
 */
type RejectReason =
  | 'tombstone'
  | 'too_large'
  | 'invalid_utf8'
  | 'invalid_json'
  | 'not_an_object'
  | 'invalid_message'
  | 'too_slow';

export type ParseResult =
  | { ok: true; message: TraceMessage }
  /** `traceId` when the message had a readable one, so that the dead letter can be found by it. */
  | { ok: false; reason: RejectReason; detail: string; traceId: string | null };

/** A UTF-8 byte order mark: some producers write one, and the Python service this replaces accepted it. */
const BOM = '\ufeff';

/** Validates a Kafka record value: a validated message, or the reason it can never be stored. */
export type MessageParser = (value: Buffer | null) => ParseResult;

const parsers = new Map<string, MessageParser>();

/**
 * The validation of record values under `limits` (MAX_RECORD_BYTES, MAX_TEXT_CHARS). One parser per pair of limits
 * is built and kept, so that the consumer and the dead-letter function, which pass their configuration's limits on
 * every batch, build the schemas once per execution environment.
 */
export function messageParser(limits: InputLimits): MessageParser {
  const key = `${limits.recordBytes}/${limits.textChars}`;
  let parser = parsers.get(key);
  if (parser === undefined) {
    const schemas = messageSchemas(limits.textChars);
    parser = (value) => parseValue(value, limits.recordBytes, schemas);
    parsers.set(key, parser);
  }
  return parser;
}

/** Bytes of a Kafka record value to a validated message under the default limits (tests, bench). */
export const parseMessage: MessageParser = messageParser(DEFAULT_INPUT_LIMITS);

function parseValue(value: Buffer | null, recordBytes: number, schemas: MessageSchemas): ParseResult {
  if (value === null)
    return { ok: false, reason: 'tombstone', detail: 'record has no value (a Kafka tombstone)', traceId: null };
  // Before anything reads it: the time validation takes grows with the size, and the size is bounded here.
  if (value.length > recordBytes) {
    const detail =
      `value is ${value.length} bytes, more than the ${recordBytes} the consumer reads (MAX_RECORD_BYTES; ` +
      `raise it, up to ${INPUT_CAP_CEILING}, and redrive to store it)`;
    return { ok: false, reason: 'too_large', detail, traceId: null };
  }
  // isUtf8 is a native check, several times faster than a fatal TextDecoder.
  if (!isUtf8(value)) return { ok: false, reason: 'invalid_utf8', detail: 'value is not valid UTF-8', traceId: null };
  const decoded = value.toString('utf8');
  const text = decoded.startsWith(BOM) ? decoded.slice(1) : decoded;
  let json: unknown;
  try {
    json = parseJson(text);
  } catch (error) {
    // Only the position: V8's message can quote the input, and details are logged.
    const position = /position (\d+)/.exec((error as Error).message)?.[1];
    const where = position === undefined ? (text.trim() === '' ? ' (empty)' : '') : ` (error at position ${position})`;
    return { ok: false, reason: 'invalid_json', detail: `value is not JSON${where}`, traceId: null };
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    const kind = json === null ? 'null' : Array.isArray(json) ? 'an array' : `a ${typeof json}`;
    return { ok: false, reason: 'not_an_object', detail: `value is ${kind}, not a JSON object`, traceId: null };
  }
  return validateMessage(json as Record<string, unknown>, value.length, schemas);
}

/**
 * Bytes of a message up to which an invalid one is validated a second time to name up to five problems. valibot
 * collects every issue of a parse, some 600 bytes each: 1 MiB of `[1,1,...]` as ratings made 500,000 of them, 300
 * MB of heap for one record, enough to kill a function with less memory on every delivery. A larger message stops
 * at its first problem, and its detail names that one.
 */
const FULL_DETAIL_MAX_BYTES = 64 * 1024;

function safeParse<S extends v.GenericSchema>(schema: S, json: unknown, bytes: number) {
  const first = v.safeParse(schema, json, { abortEarly: true });
  return first.success || bytes > FULL_DETAIL_MAX_BYTES ? first : v.safeParse(schema, json);
}

function validateMessage(json: Record<string, unknown>, bytes: number, schemas: MessageSchemas): ParseResult {
  if (typeof json.error === 'string' && json.error.trim() !== '') {
    const parsed = safeParse(schemas.upstreamError, json, bytes);
    if (!parsed.success) return invalid(parsed.issues, json.traceId);
    const { processedAt: at } = json;
    const processedAt = typeof at === 'string' && at.length <= TIMESTAMP_MAX_CHARS ? canonicalTimestamp(at) : null;
    return {
      ok: true,
      message: { kind: 'upstream_error', traceId: parsed.output.traceId, error: parsed.output.error, processedAt },
    };
  }
  const parsed = safeParse(schemas.survey, json, bytes);
  if (!parsed.success) return invalid(parsed.issues, json.traceId);
  return { ok: true, message: { kind: 'survey', ...parsed.output } };
}

/**
 * Up to five issues as "path: problem", enough to find the field. Type issues name the type received, never the
 * value, so that a detail can be logged without echoing comment text.
 */
function invalid(issues: [v.BaseIssue<unknown>, ...v.BaseIssue<unknown>[]], traceId: unknown): ParseResult {
  const detail = issues
    .slice(0, 5)
    .map((issue) => {
      const path = v.getDotPath(issue) ?? '(message)';
      // An absent key: valibot's object schema reports it as expecting the key's name, which reads as nonsense.
      if (
        issue.kind === 'schema' &&
        issue.type === 'object' &&
        issue.input === undefined &&
        v.getDotPath(issue) !== null
      )
        return `${path}: ${MISSING}`;
      if (issue.kind === 'schema') return `${path}: expected ${issue.expected}, got ${typeName(issue.input)}`;
      return `${path}: ${issue.message}`;
    })
    .join('; ');
  const readable = identifierText(traceId);
  const usable = readable !== undefined && readable !== 'inexact' && readable !== 'too_long' && readable !== '';
  return { ok: false, reason: 'invalid_message', detail, traceId: usable ? readable : null };
}

function typeName(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'array';
  return typeof x;
}
