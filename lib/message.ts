import * as v from 'valibot';
import { canonicalTimestamp, normaliseName, storableText } from './text';

/*
 * The message the upstream processor publishes on `trace-survey-processed` (format in the README). Strict where
 * data could not be stored meaningfully, lenient where it still can: unknown fields are ignored, optional values
 * may be null or absent, numbers may arrive as numeric strings, and text is made storable (see storableText).
 */

const INT4_MAX = 2_147_483_647;

/** Optional text: a string, or a number written as text (a course id of 12345). */
const optionalText = v.pipe(
  v.optional(v.nullable(v.union([v.string(), v.pipe(v.number(), v.finite())])), null),
  v.transform((x) => (x === null ? null : storableText(String(x)))),
);

/** Required identifier: text that is not empty once surrounding whitespace is removed; stored trimmed. */
const requiredText = v.pipe(
  v.union([v.string(), v.pipe(v.number(), v.finite())], 'must be a string'),
  v.transform((x) => storableText(String(x)).trim()),
  v.nonEmpty('must not be empty'),
);

/** A finite number, or a string holding one ("4.5"); null when absent. Stored as double precision. */
const optionalNumber = v.pipe(
  v.optional(v.nullable(v.union([v.number(), v.pipe(v.string(), v.trim(), v.regex(/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/, 'must be a number'))])), null),
  v.transform((x) => (x === null || x === '' ? null : Number(x))),
  v.nullable(v.pipe(v.number(), v.finite('must be a finite number'))),
);

/** A count: a non-negative whole number that fits PostgreSQL's integer; null when absent. */
const optionalCount = v.pipe(
  optionalNumber,
  v.nullable(v.pipe(v.number(), v.integer('must be a whole number'), v.minValue(0, 'must not be negative'), v.maxValue(INT4_MAX, `must be at most ${INT4_MAX}`))),
);

const optionalYear = v.pipe(
  optionalNumber,
  v.nullable(v.pipe(v.number(), v.integer('must be a whole number'), v.minValue(1900, 'must be 1900 or later'), v.maxValue(2200, 'must be 2200 or earlier'))),
);

/** An ISO-8601 timestamp, kept in canonical UTC form (see canonicalTimestamp); null when absent. */
const optionalTimestamp = v.pipe(
  v.optional(v.nullable(v.string()), null),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    if (dataset.value === null) return null;
    const canonical = canonicalTimestamp(dataset.value);
    if (canonical === null) {
      addIssue({ message: 'must be an ISO-8601 timestamp' });
      return NEVER;
    }
    return canonical;
  }),
);

const optionalList = <T extends v.GenericSchema>(item: T) =>
  v.pipe(v.optional(v.nullable(v.array(item)), null), v.transform((x) => x ?? []));

export const RatingSchema = v.object({
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
export type Rating = v.InferOutput<typeof RatingSchema>;

export const CommentSchema = v.object({
  category: optionalText,
  questionText: optionalText,
  responseNumber: optionalCount,
  commentText: optionalText,
});
export type Comment = v.InferOutput<typeof CommentSchema>;

export const CourseSchema = v.object({
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
export type Course = v.InferOutput<typeof CourseSchema>;

/** A survey report: what gets stored. */
export const SurveyMessageSchema = v.object({
  traceId: requiredText,
  course: CourseSchema,
  instructor: v.object({ name: v.pipe(requiredText, v.transform(normaliseName)) }),
  ratings: optionalList(RatingSchema),
  comments: optionalList(CommentSchema),
  processedAt: optionalTimestamp,
});
export type SurveyMessage = v.InferOutput<typeof SurveyMessageSchema> & { kind: 'survey' };

/** An upstream failure report: a message whose `error` is a non-empty string. Only its trace id must be usable. */
export const UpstreamErrorMessageSchema = v.object({
  traceId: requiredText,
  error: v.pipe(v.string(), v.transform(storableText), v.trim(), v.nonEmpty()),
  processedAt: v.optional(v.unknown()),
});
export type UpstreamErrorMessage = { kind: 'upstream_error'; traceId: string; error: string; processedAt: string | null };

export type TraceMessage = SurveyMessage | UpstreamErrorMessage;

/** Stable reason codes for dead letters; the README's error catalogue explains each. */
export type RejectReason = 'tombstone' | 'invalid_utf8' | 'invalid_json' | 'not_an_object' | 'invalid_message';

export type ParseResult =
  | { ok: true; message: TraceMessage }
  | { ok: false; reason: RejectReason; detail: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Bytes of a Kafka record value to a validated message, or the reason it can never be stored. */
export function parseMessage(value: Buffer | null): ParseResult {
  if (value === null) return { ok: false, reason: 'tombstone', detail: 'record has no value (a Kafka tombstone)' };
  let text: string;
  try {
    text = utf8.decode(value);
  } catch {
    return { ok: false, reason: 'invalid_utf8', detail: 'value is not valid UTF-8' };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    // Only the position: V8's message can quote the input, and details are logged.
    const position = /position (\d+)/.exec((error as Error).message)?.[1];
    const where = position === undefined ? (text.trim() === '' ? ' (empty)' : '') : ` (error at position ${position})`;
    return { ok: false, reason: 'invalid_json', detail: `value is not JSON${where}` };
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    const kind = json === null ? 'null' : Array.isArray(json) ? 'an array' : `a ${typeof json}`;
    return { ok: false, reason: 'not_an_object', detail: `value is ${kind}, not a JSON object` };
  }
  return validateMessage(json as Record<string, unknown>);
}

function validateMessage(json: Record<string, unknown>): ParseResult {
  if (typeof json.error === 'string' && json.error.trim() !== '') {
    const parsed = v.safeParse(UpstreamErrorMessageSchema, json);
    if (!parsed.success) return invalid(parsed.issues);
    const processedAt = typeof json.processedAt === 'string' ? canonicalTimestamp(json.processedAt) : null;
    return { ok: true, message: { kind: 'upstream_error', traceId: parsed.output.traceId, error: parsed.output.error, processedAt } };
  }
  const parsed = v.safeParse(SurveyMessageSchema, json);
  if (!parsed.success) return invalid(parsed.issues);
  return { ok: true, message: { kind: 'survey', ...parsed.output } };
}

/**
 * Up to five issues as "path: problem", enough to find the field. Type issues name the type received, never the
 * value, so that a detail can be logged without echoing comment text.
 */
function invalid(issues: [v.BaseIssue<unknown>, ...v.BaseIssue<unknown>[]]): ParseResult {
  const detail = issues
    .slice(0, 5)
    .map((issue) => {
      const path = v.getDotPath(issue) ?? '(message)';
      if (issue.kind === 'schema') return `${path}: expected ${issue.expected}, got ${typeName(issue.input)}`;
      return `${path}: ${issue.message}`;
    })
    .join('; ');
  return { ok: false, reason: 'invalid_message', detail };
}

function typeName(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'array';
  return typeof x;
}
