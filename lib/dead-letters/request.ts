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
/** A criterion that is either asked for or left out: `false` would read as "the opposite", which it is not. */
const onlyTrue = v.literal(true, 'must be true, or left out');

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
  redriven: v.optional(onlyTrue),
  /** Only resolved dead letters: settled by a redrive, or whose trace id a stored report holds (resolution.ts). */
  resolved: v.optional(onlyTrue),
  /** Only dead letters older than this many days (created_at): the retention period. */
  olderThanDays: v.optional(whole(0, 36_500)),
  /** Dead letters per delete statement. */
  batchSize: v.optional(whole(1, 10_000), 1000),
  /** At most this many dead letters in this invocation (or counted, by a dry run). */
  limit: v.optional(whole(1, 1_000_000)),
  /** Resume after this id: the previous invocation's `cursor` (a dry run, which deletes nothing, needs it). */
  after: v.optional(whole(0, BIGINT_MAX), 0),
});

const SCHEMAS = {
  summary: SummaryRequestSchema,
  show: ShowRequestSchema,
  redrive: RedriveRequestSchema,
  purge: PurgeRequestSchema,
};
const DeadLetterRequestSchema = v.variant(
  'action',
  Object.values(SCHEMAS),
  'action must be "summary", "show", "redrive" or "purge"',
);

export type DeadLetterRequest = v.InferOutput<typeof DeadLetterRequestSchema>;
type SummaryRequest = v.InferOutput<typeof SummaryRequestSchema>;
export type ShowRequest = v.InferOutput<typeof ShowRequestSchema>;
export type RedriveRequest = v.InferOutput<typeof RedriveRequestSchema>;
export type PurgeRequest = v.InferOutput<typeof PurgeRequestSchema>;
export type Selection = Pick<SummaryRequest, keyof typeof SelectionEntries>;
export type Action = keyof typeof SCHEMAS;
/** The options of one action, as the request names them (`olderThanDays`). */
export type OptionOf<A extends Action> = Exclude<keyof (typeof SCHEMAS)[A]['entries'], 'action'>;

/** Every action's options, in the order the schemas list them: the one list that help and suggestions read. */
export const ACTION_OPTIONS = Object.fromEntries(
  Object.entries(SCHEMAS).map(([action, schema]) => [
    action,
    Object.keys(schema.entries).filter((k) => k !== 'action'),
  ]),
) as { [A in Action]: OptionOf<A>[] };

/**
 * How a problem names an option and where to read more: the request's own names for the function (`olderThanDays`),
 * the flags as typed for `npm run dead-letters` (`--older-than-days`).
 */
export interface OptionNaming {
  name: (option: string) => string;
  help: string;
}
const REQUEST_NAMING: OptionNaming = {
  name: (option) => option,
  help: 'See docs/dead-letters.md for each action and its parameters.',
};

/**
 * Validates a request; every problem is named in one {@link DeadLetterRequestError}, options as `naming` names them.
 */
export function parseRequest(input: unknown, naming: OptionNaming = REQUEST_NAMING): DeadLetterRequest {
  const parsed = v.safeParse(DeadLetterRequestSchema, input);
  if (!parsed.success) {
    throw new DeadLetterRequestError(
      parsed.issues.map((issue) => describeIssue(issue, input, naming)),
      naming.help,
    );
  }
  const request = parsed.output;
  if (
    request.action === 'purge' &&
    !request.redriven &&
    !request.resolved &&
    request.olderThanDays === undefined &&
    !request.ids
  ) {
    const [redriven, resolved, olderThanDays, ids] = ['redriven', 'resolved', 'olderThanDays', 'ids'].map(naming.name);
    throw new DeadLetterRequestError(
      [
        `purge needs ${redriven}, ${resolved}, ${olderThanDays} or ${ids}, so that it never empties the table by ` +
          'accident',
      ],
      naming.help,
    );
  }
  return request;
}

/**
 * One problem of a request, in an operator's words: an unknown option is named as such (valibot says "Expected
 * never"), with the option it was probably meant to be, or the actions it belongs to.
 */
function describeIssue(issue: v.BaseIssue<unknown>, input: unknown, naming: OptionNaming): string {
  const path = v.getDotPath(issue);
  if (path === null) {
    return issue.expected === 'Object' ? 'the request must be a JSON object with an "action"' : issue.message;
  }
  const [option = path] = path.split('.');
  const action = (input as { action?: unknown } | null)?.action;
  if (option === 'action') {
    const near = typeof action === 'string' ? nearest(action, Object.keys(SCHEMAS)) : undefined;
    return (
      `the action must be "summary", "show", "redrive" or "purge"` +
      (typeof action === 'string' ? `, not "${action}"${near ? ` (did you mean "${near}"?)` : ''}` : '')
    );
  }
  const named = path === option ? naming.name(option) : `${naming.name(option)} (${path.slice(option.length + 1)})`;
  if (issue.type === 'strict_object' && issue.expected === 'never') {
    return `${named}: unknown option${typeof action === 'string' ? unknownOptionHint(option, action, naming) : ''}`;
  }
  return `${named}: ${issue.message}`;
}

/** " (did you mean --reasons?)" for a near miss of an option of `action`, or the actions that take the option. */
function unknownOptionHint(option: string, action: string, naming: OptionNaming): string {
  const others = Object.entries(ACTION_OPTIONS)
    .filter(([other, options]) => other !== action && (options as readonly string[]).includes(option))
    .map(([other]) => other);
  if (others.length > 0) return ` of ${action} (${naming.name(option)} belongs to ${others.join(', ')})`;
  const near = nearest(option, ACTION_OPTIONS[action as Action] ?? []);
  return near === undefined ? ` of ${action}` : ` (did you mean ${naming.name(near)}?)`;
}

/**
 * The candidate closest to `word` by edit distance, ignoring case, `-` and `_` (`--older_than_days` is
 * `olderThanDays`), when it is close enough to be a slip: at most 2 edits, and at most a third of the candidate.
 */
function nearest(word: string, candidates: readonly string[]): string | undefined {
  const plain = (name: string) => name.toLowerCase().replace(/[-_]/g, '');
  let best: { name: string; distance: number } | undefined;
  for (const name of candidates) {
    const distance = editDistance(plain(word), plain(name));
    if (distance <= Math.min(2, Math.floor(plain(name).length / 3)) && (!best || distance < best.distance))
      best = { name, distance };
  }
  return best?.name;
}

/** Levenshtein distance: insertions, deletions and substitutions of one character. Quadratic; names are short. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++)
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = current;
  }
  return previous[b.length]!;
}
