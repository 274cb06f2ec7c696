/**
 * Command-line arguments of `npm run dead-letters` as the request the dead-letter function takes:
 *   summary --reasons invalid_json,invalid_message     ->  {"action": "summary", "reasons": ["invalid_json", "invalid_message"]}
 *   redrive --ids 3,4 --dry-run                        ->  {"action": "redrive", "ids": [3, 4], "dryRun": true}
 *   purge --older-than-days 30 --no-dry-run            ->  {"action": "purge", "olderThanDays": 30, "dryRun": false}
 *   --data '{"action": "show", "ids": 3}'              ->  the JSON as given
 * The request is validated by the function's own schema afterwards; this only translates spelling.
 */
const LISTS = new Set(['ids', 'reasons']);

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
      request[name] = LISTS.has(name) ? next.split(',').map(scalar) : scalar(next);
      i++;
    }
  }
  return request;
}

function camelCase(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** Whole numbers and booleans as such; anything else stays text (trace ids, timestamps, topics). */
function scalar(text: string): unknown {
  if (/^\d+$/.test(text) && Number.isSafeInteger(Number(text))) return Number(text);
  if (text === 'true' || text === 'false') return text === 'true';
  return text;
}
