// @ts-check
/**
 * A local Serverless plugin that makes `serverless invoke local` work against a developer's database with no flags:
 *
 * - The function's environment comes from serverless.yml, whose DB_* parameters describe the deployment (an empty
 *   DB_HOST, DB_SSL=verify-full against the CA bundle of the Lambda runtime). Locally, the shell's values of the
 *   variables lib/config.ts reads (the `export DB_*` line that `npm run db` prints, LOG_LEVEL, MAX_RECORD_BYTES, ...:
 *   the configuration table of docs/reference.md) take their place, and DB_SSL defaults to `disable`:
 *   a local server has no TLS, and /var/runtime/ca-cert.pem exists only in Lambda. `--env NAME=value` still wins
 *   over both, so `--env DB_SSL=verify-full --env DB_SSL_CA=./ca.pem` tests TLS locally. LOG_LEVEL is the shell's,
 *   else `info`. Deployed functions are not touched: this runs only for `invoke local`.
 * - Stack traces point at the TypeScript sources: invoke local runs the bundle in the CLI's own process, where
 *   NODE_OPTIONS=--enable-source-maps from serverless.yml comes too late, so source maps are switched on here,
 *   before the bundle (built with `sourcemap: linked`) is loaded.
 * - The consumer takes the Kafka event Lambda sends, not a message: given a message, a list of them or a file of JSON
 *   lines (the docs' events/my-messages.jsonl) it stops before invoking and says how to wrap it
 *   (`npm run build-event`), and given the health function's HTTP request it says to invoke health, instead of
 *   failing inside.
 *
 * Plain CommonJS because the CLI loads plugins with require().
 */
const { readFileSync } = require('node:fs');
const { resolve } = require('node:path');

// The functions' own code, loaded through tsx (a dev dependency like the CLI itself): one list of variables, one
// judgement of what an event is.
const { VARIABLES } = require('tsx/cjs/api').require('../lib/config.ts', __filename);
const { eventKind } = require('tsx/cjs/api').require('../lib/aws/event-kind.ts', __filename);

class InvokeLocalDefaults {
  /**
   * @param {{ service: { provider: { environment?: Record<string, unknown> }, functions?: Record<string, {
   * environment?: Record<string, unknown> }> }, serviceDir: string, classes: { Error: new (message: string) => Error }
   * }} serverless
   * @param {{ function?: string, path?: string, data?: unknown }} options
   */
  constructor(serverless, options) {
    // Read at start-up, before invoke local overwrites process.env with the function's environment.
    /** @type {Record<string, string>} */
    const shell = {};
    for (const name of Object.keys(VARIABLES)) if (process.env[name]) shell[name] = String(process.env[name]);
    // LOG_LEVEL: the shell's, else `info`, not the dev stage's `debug`: a person at the terminal reads the
    // function's errors without debug lines and stack traces unless asking for them (LOG_LEVEL=debug).
    const local = { DB_SSL: 'disable', LOG_LEVEL: process.env.LOG_LEVEL || 'info', ...shell };

    this.hooks = {
      // Runs next to the AWS plugin's own loader of the function's environment, which reads
      // provider.environment and writes process.env; setting both holds whichever of the two runs first. The
      // `--env` options are applied afterwards, in invoke:local:loadEnvVars.
      'before:invoke:local:loadEnvVars': () => {
        // First, and before serverless-esbuild builds (before:invoke:local:invoke): the CLI does not exit after
        // an error that comes once its build has started.
        refuseMessages(serverless, options);
        serverless.service.provider.environment ??= {};
        const environment = serverless.service.provider.environment;
        Object.assign(environment, local);
        // A function's own DB_* (the health function's DB_SECRET_ARN) would win over the provider's: the shell's too.
        for (const fn of Object.values(serverless.service.functions ?? {})) {
          for (const name of Object.keys(fn.environment ?? {})) if (name in local) fn.environment[name] = local[name];
        }
        Object.assign(process.env, local);
        process.setSourceMapsEnabled(true);
      },
    };
  }
}

/**
 * Stops `invoke local -f consumer` given something other than the Kafka event Lambda sends (a message, a list of them,
 * a file of JSON lines, the health function's HTTP request), saying what to run instead. The event is read here as
 * the CLI reads it (`-p` file, or `--data`), since the CLI may parse it only after this hook. Anything else, even an
 * event lib/aws/kafka-event.ts will refuse, goes through.
 * @param {{ serviceDir: string, classes: { Error: new (message: string) => Error } }} serverless
 * @param {{ function?: string, path?: string, data?: unknown }} options
 */
function refuseMessages(serverless, options) {
  if (options.function !== 'consumer') return;
  let data = options.data;
  try {
    if (!data && options.path && !options.path.endsWith('.js'))
      data = readFileSync(resolve(serverless.serviceDir, options.path), 'utf8');
  } catch {
    return; // not readable: the CLI says so itself
  }
  const parsed = typeof data === 'string' ? parseEventText(data) : { json: data };
  if (!parsed) return; // not JSON: the CLI says so itself
  const file = options.path || 'messages.json';
  const given = options.path || 'this event';
  const wrap =
    `Wrap your messages into one: npm run --silent build-event -- ${file} --out my-events/mine.json, then ` +
    'npx serverless invoke local -f consumer -p my-events/mine.json (docs/local-development.md).';
  if ('lines' in parsed) {
    throw new serverless.classes.Error(
      `The consumer takes the Kafka event Lambda sends, and ${given} holds ${parsed.lines} JSON lines (messages, ` +
        `one per line), not an event. ${wrap}`,
    );
  }
  const kind = eventKind(parsed.json);
  if (kind.kind === 'http') {
    throw new serverless.classes.Error(
      `The consumer takes the Kafka event Lambda sends, and ${given} is an HTTP API request (${kind.request}), ` +
        `meant for the health function: npx serverless invoke local -f health -p ${file}`,
    );
  }
  const problem =
    kind.kind === 'message'
      ? Array.isArray(parsed.json)
        ? 'is a list (of messages?) rather than an event'
        : 'is a survey message, not an event'
      : kind.kind === 'other' && parsed.json !== null && typeof parsed.json === 'object' && !Array.isArray(parsed.json)
        ? 'has no "records": it is not a Kafka event'
        : null;
  if (problem)
    throw new serverless.classes.Error(
      `The consumer takes the Kafka event Lambda sends, and ${given} ${problem}. ${wrap}`,
    );
}

/**
 * The JSON of `text`; else, when every non-empty line of it is a JSON object or array (JSON lines), how many lines it
 * has; else null.
 * @param {string} text
 * @returns {{ json: unknown } | { lines: number } | null}
 */
function parseEventText(text) {
  try {
    return { json: JSON.parse(text) };
  } catch {
    const lines = text.split('\n').filter((line) => line.trim() !== '');
    try {
      const values = lines.map((line) => JSON.parse(line));
      return values.length > 0 && values.every((x) => x !== null && typeof x === 'object')
        ? { lines: lines.length }
        : null;
    } catch {
      return null;
    }
  }
}

module.exports = InvokeLocalDefaults;
