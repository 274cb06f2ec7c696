import * as v from 'valibot';
import { DeadLetterRequestError } from '../errors';
import { canonicalTimestamp } from '../batch/storable-text';

/*
 * What an operator asks of the dead-letter function, validated at the edge: the same JSON arrives from
 * `serverless invoke --data`, from `npm run dead-letters` and from tests. docs/dead-letters.md lists every field.
 */

const BIGINT_MAX = Number.MAX_SAFE_INTEGER;
/** A whole number in a range; every failure says the range, in the words an operator reads. */
const whole = (min: number, max: number) => {
  const message = `must be a whole number from ${min} to ${max}`;
  return v.pipe(v.number(message), v.integer(message), v.minValue(min, message), v.maxValue(max, message));
};
/** One value or a list of them, always a non-empty list afterwards: `"ids": 3` and `"ids": [3, 4]` both work. */
const oneOrMany = <T extends v.GenericSchema>(item: T, what: string) =>
  v.pipe(
    v.union(
      [item, v.pipe(v.array(item), v.nonEmpty('must not be an empty list'))],
      `must be ${what}, or a list of them`,
    ),
    v.transform((x) => (Array.isArray(x) ? x : [x]) as v.InferOutput<T>[]),
  );
const timestamp = v.pipe(
  v.string(),
  v.rawTransform(({ dataset, addIssue, NEVER }) => {
    const canonical = canonicalTimestamp(dataset.value);
    if (canonical === null) {
      addIssue({ message: 'must be an ISO-8601 timestamp such as 2026-11-29 or 2026-11-29T08:00:00Z' });
      return NEVER;
    }
    return canonical;
  }),
);

const flag = v.boolean('must be true or false');

/** Which dead letters an action works on. Every field narrows the selection; none selects them all. */
const SelectionEntries = {
  /** Dead letter ids (the `id` column). */
  ids: v.optional(oneOrMany(whole(1, BIGINT_MAX), 'a dead letter id (a whole number from 1)')),
  /**
   * Reason codes: tombstone, too_large, invalid_utf8, invalid_json, not_an_object, invalid_message, too_slow,
   * db_rejected.
   */
  reasons: v.optional(oneOrMany(v.pipe(v.string(), v.nonEmpty()), 'a reason code')),
  /** Dead-lettered at or after this time (created_at). */
  from: v.optional(timestamp),
  /** Dead-lettered before this time (created_at). */
  to: v.optional(timestamp),
  topic: v.optional(v.pipe(v.string(), v.nonEmpty())),
  partition: v.optional(whole(0, 2_147_483_647)),
  /** Kafka offsets from and to, both included. */
  offsetFrom: v.optional(whole(0, BIGINT_MAX)),
  offsetTo: v.optional(whole(0, BIGINT_MAX)),
  traceId: v.optional(v.pipe(v.string(), v.nonEmpty())),
};

const SummaryRequestSchema = v.strictObject({ action: v.literal('summary'), ...SelectionEntries });

const ShowRequestSchema = v.strictObject({
  action: v.literal('show'),
  ...SelectionEntries,
  /** Dead letters per page. */
  limit: v.optional(whole(1, 100), 20),
  /** Resume after this id: the previous page's `nextAfter`. */
  after: v.optional(whole(0, BIGINT_MAX), 0),
});

const RedriveRequestSchema = v.strictObject({
  action: v.literal('redrive'),
  ...SelectionEntries,
  /** Say what would happen, write nothing. */
  dryRun: v.optional(flag, false),
  /** Also redrive dead letters whose last redrive dead-lettered them again (after a further fix). */
  again: v.optional(flag, false),
  /** Dead letters per transaction. */
  batchSize: v.optional(whole(1, 1000), 100),
  /** At most this many dead letters in this invocation; the rest is left for the next (see `cursor`). */
  limit: v.optional(whole(1, 1_000_000)),
  /** Resume after this id: the previous invocation's `cursor`. */
  after: v.optional(whole(0, BIGINT_MAX), 0),
});

const PurgeRequestSchema = v.strictObject({
  action: v.literal('purge'),
  ...SelectionEntries,
  /** Dry run unless explicitly false: purging cannot be undone. */
  dryRun: v.optional(flag, true),
  /** Only dead letters that a redrive settled (stored, duplicate, superseded, upstream_error). */
  redriven: v.optional(v.literal(true)),
  /** Only dead letters older than this many days (created_at): the retention period. */
  olderThanDays: v.optional(whole(0, 36_500)),
  /** Dead letters per delete statement. */
  batchSize: v.optional(whole(1, 10_000), 1000),
  /** At most this many dead letters in this invocation (or counted, by a dry run). */
  limit: v.optional(whole(1, 1_000_000)),
});

const DeadLetterRequestSchema = v.variant(
  'action',
  [SummaryRequestSchema, ShowRequestSchema, RedriveRequestSchema, PurgeRequestSchema],
  'action must be "summary", "show", "redrive" or "purge"',
);

export type DeadLetterRequest = v.InferOutput<typeof DeadLetterRequestSchema>;
type SummaryRequest = v.InferOutput<typeof SummaryRequestSchema>;
export type ShowRequest = v.InferOutput<typeof ShowRequestSchema>;
export type RedriveRequest = v.InferOutput<typeof RedriveRequestSchema>;
export type PurgeRequest = v.InferOutput<typeof PurgeRequestSchema>;
export type Selection = Pick<SummaryRequest, keyof typeof SelectionEntries>;

/** Validates a request; every problem is named in one {@link DeadLetterRequestError}. */
export function parseRequest(input: unknown): DeadLetterRequest {
  const parsed = v.safeParse(DeadLetterRequestSchema, input);
  if (!parsed.success) {
    throw new DeadLetterRequestError(parsed.issues.map(describeIssue));
  }
  const request = parsed.output;
  if (request.action === 'purge' && !request.redriven && request.olderThanDays === undefined && !request.ids) {
    throw new DeadLetterRequestError([
      'purge needs "redriven": true, "olderThanDays" or "ids", so that it never empties the table by accident',
    ]);
  }
  return request;
}

/**
 * One problem of a request, in an operator's words: an unknown option is named as such (valibot says "Expected never").
 */
function describeIssue(issue: v.BaseIssue<unknown>): string {
  const path = v.getDotPath(issue) ?? 'request';
  if (issue.type === 'strict_object' && issue.expected === 'never') return `${path}: unknown option`;
  if (path === 'request' && issue.expected === 'Object') return 'the request must be a JSON object with an "action"';
  return `${path}: ${issue.message}`;
}
