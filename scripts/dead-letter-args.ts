/**
 * Command-line arguments of `npm run dead-letters` as the request the dead-letter function takes:
 *   summary --reasons invalid_json,invalid_message     ->  {"action": "summary", "reasons": ["invalid_json", "invalid_message"]}
 *   redrive --ids 3,4 --dry-run                        ->  {"action": "redrive", "ids": [3, 4], "dryRun": true}
 *   purge --older-than-days 30 --no-dry-run            ->  {"action": "purge", "olderThanDays": 30, "dryRun": false}
 *   --data '{"action": "show", "ids": 3}'              ->  the JSON as given
 * The request is validated by the function's own schema afterwards; this only translates spelling.
 */
const LISTS = new Set(['ids', 'reasons']);
/** Options that take whole numbers; every other value stays text (a trace id of 0042 is not the number 42). */
const NUMBERS = new Set(['ids', 'partition', 'offsetFrom', 'offsetTo', 'limit', 'after', 'batchSize', 'olderThanDays']);

export function requestFromArgs(args: readonly string[]): Record<string, unknown> {
  const request: Record<string, unknown> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) {
      if ('action' in request) throw new Error(`unexpected argument "${arg}": give the action once, then --options`);
      request.action = arg;
      continue;
    }
    const next = args[i + 1];
    const hasValue = next !== undefined && !next.startsWith('--');
    if (arg === '--data') {
      if (!hasValue) throw new Error('--data needs a JSON request');
      Object.assign(request, JSON.parse(next) as Record<string, unknown>);
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
      const value = (text: string) => (NUMBERS.has(name) ? number(text) : text === 'true' || text === 'false' ? text === 'true' : text);
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
