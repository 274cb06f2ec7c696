import {
  ACTION_OPTIONS,
  type Action,
  type OptionNaming,
  type OptionOf,
  type Selection,
} from '../lib/dead-letters/request';
import { UsageError } from './errors';

const USAGE =
  'usage: npm run --silent dead-letters -- summary|show|redrive|purge [--option value ...] | --data ' +
  '\'{"action": ...}\' | --help (docs/dead-letters.md)';

/** How the command line names an option in its messages: as it is typed (`--older-than-days`). */
export const FLAG_NAMING: OptionNaming = {
  name: (option) => `--${option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`,
  help: 'Run npm run dead-letters -- --help for the actions and their options.',
};

/** An option's help: the value it takes ('' for a flag) and what it does. */
type OptionHelp = readonly [value: string, meaning: string];

/** Options every action takes: which dead letters it works on (docs/dead-letters.md, "Requests"). */
const SELECTION_HELP = {
  ids: ['<id,...>', 'dead letter ids'],
  reasons: ['<code,...>', 'reason codes (tombstone, invalid_json, invalid_message, db_rejected, ...)'],
  from: ['<time>', 'dead-lettered at or after this time (ISO-8601: 2026-11-29 or 2026-11-29T08:00:00Z)'],
  to: ['<time>', 'dead-lettered before this time'],
  topic: ['<name>', 'Kafka topic'],
  partition: ['<n>', 'Kafka partition'],
  offsetFrom: ['<n>', 'Kafka offsets from this one (included)'],
  offsetTo: ['<n>', 'Kafka offsets up to this one (included)'],
  traceId: ['<id>', 'the trace id'],
} as const satisfies Record<keyof Selection, OptionHelp>;

type OwnOptions<A extends Action> = Exclude<OptionOf<A>, keyof typeof SELECTION_HELP>;
/** What each action does, and each of its own options; typed so that an option without help does not compile. */
const ACTION_HELP: { [A in Action]: { does: string; options: Record<OwnOptions<A>, OptionHelp> } } = {
  summary: { does: 'counts by reason, day, partition and redrive result; how many are still unresolved', options: {} },
  show: {
    does: 'a page of dead letters, decoded, with their redrive and the stored report that resolved them',
    options: {
      limit: ['<n>', 'dead letters per page, 1-100 (default 20)'],
      after: ['<id>', 'start after this id: the nextAfter of the page before'],
    },
  },
  redrive: {
    does: 'sends them through the consumer again (after a fix) and records what became of each',
    options: {
      dryRun: ['', 'roll every batch back: say what would happen, write nothing'],
      again: ['', 'also those that a redrive dead-lettered again'],
      batchSize: ['<n>', 'dead letters per transaction, 1-1000 (default 100)'],
      limit: ['<n>', 'at most this many in this run'],
      after: ['<id>', 'start after this id: the cursor of the run before'],
    },
  },
  purge: {
    does: 'deletes them, a dry run unless --no-dry-run; needs --redriven, --resolved, --older-than-days or --ids',
    options: {
      dryRun: ['', 'the default: count only; --no-dry-run deletes'],
      redriven: ['', 'only those that a redrive settled'],
      resolved: ['', 'only resolved ones: settled by a redrive, or whose trace id a stored report holds'],
      olderThanDays: ['<n>', 'only those dead-lettered more than n days ago'],
      batchSize: ['<n>', 'dead letters per delete, each committed on its own, 1-10000 (default 1000)'],
      limit: ['<n>', 'at most this many in this run'],
      after: ['<id>', 'start after this id: the cursor of the run before'],
    },
  },
};

/** `npm run dead-letters -- --help`: every action and every option it takes, as typed on the command line. */
export function helpText(): string {
  const line = ([option, [value, meaning]]: [string, OptionHelp]) =>
    `    ${`${FLAG_NAMING.name(option)} ${value}`.padEnd(26)}${meaning}`;
  const actions = (Object.keys(ACTION_HELP) as Action[]).map((action) => {
    const { does, options } = ACTION_HELP[action];
    const own = ACTION_OPTIONS[action].flatMap((o) =>
      o in options ? [[o, options[o as never]] as [string, OptionHelp]] : [],
    );
    return [`  ${action}: ${does}`, ...own.map(line)].join('\n');
  });
  return [
    USAGE,
    '',
    'Actions:',
    ...actions,
    '',
    'Selection (every action; each option narrows, none selects every dead letter):',
    ...Object.entries(SELECTION_HELP).map(line),
    '',
    'A flag alone is true (--dry-run), --no-flag is false, lists are comma-separated (--ids 3,4); --data takes the',
    'JSON request as is. Redrive and purge stop in time with "done": false and a cursor: run again with --after.',
    'The connection comes from DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD (or DB_SECRET_ARN), DB_SSL, DB_SCHEMA.',
  ].join('\n');
}

const LISTS = new Set(['ids', 'reasons']);
/** Options that take whole numbers; every other value stays text (a trace id of 0042 is not the number 42). */
const NUMBERS = new Set(['ids', 'partition', 'offsetFrom', 'offsetTo', 'limit', 'after', 'batchSize', 'olderThanDays']);

export function requestFromArgs(args: readonly string[]): Record<string, unknown> {
  const request: Record<string, unknown> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) {
      if ('action' in request)
        throw new UsageError(`unexpected argument "${arg}": give the action once, then --options`, USAGE);
      request.action = arg;
      continue;
    }
    const next = args[i + 1];
    const hasValue = next !== undefined && !next.startsWith('--');
    if (arg === '--data') {
      if (!hasValue) throw new UsageError('--data needs a JSON request', USAGE);
      Object.assign(request, jsonRequest(next));
      i++;
      continue;
    }
    if (arg.startsWith('--no-') && !hasValue) {
      request[camelCase(arg.slice(5))] = false;
      continue;
    }
    const name = camelCase(arg.slice(2));
    if (!hasValue) request[name] = true;
    else {
      const value = (text: string) =>
        NUMBERS.has(name) ? number(text) : text === 'true' || text === 'false' ? text === 'true' : text;
      request[name] = LISTS.has(name) ? next.split(',').map(value) : value(next);
      i++;
    }
  }
  return request;
}

function camelCase(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** A whole number when the text is one; otherwise the text, for the request's validation to name. */
function number(text: string): number | string {
  return /^\d+$/.test(text) && Number.isSafeInteger(Number(text)) ? Number(text) : text;
}

/** The JSON of --data, which must be an object: a shell quoting slip is the usual cause of anything else. */
function jsonRequest(text: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new UsageError(
      `--data is not JSON (${why}); quote it whole in single quotes: --data '{"action": "summary"}'`,
      USAGE,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new UsageError('--data must be a JSON object, e.g. --data \'{"action": "summary"}\'', USAGE);
  }
  return parsed as Record<string, unknown>;
}
