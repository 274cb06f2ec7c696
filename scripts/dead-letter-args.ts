import { UsageError } from './errors';

const USAGE =
  'usage: npm run --silent dead-letters -- summary|show|redrive|purge [--option value ...] | --data ' +
  '\'{"action": ...}\' (docs/dead-letters.md)';

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
