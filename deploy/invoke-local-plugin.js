// @ts-check
/**
 * A local Serverless plugin that makes `serverless invoke local` work against a developer's database with no flags:
 *
 * - The function's environment comes from serverless.yml, whose DB_* parameters describe the deployment (an empty
 *   DB_HOST, DB_SSL=verify-full against the CA bundle of the Lambda runtime). Locally, the DB_* variables of the
 *   shell (the `export DB_*` lines that `npm run db` prints) take their place, and DB_SSL defaults to `disable`:
 *   a local server has no TLS, and /var/runtime/ca-cert.pem exists only in Lambda. `--env NAME=value` still wins
 *   over both, so `--env DB_SSL=verify-full --env DB_SSL_CA=./ca.pem` tests TLS locally. LOG_LEVEL is the shell's,
 *   else `info`. Deployed functions are not touched: this runs only for `invoke local`.
 * - Stack traces point at the TypeScript sources: invoke local runs the bundle in the CLI's own process, where
 *   NODE_OPTIONS=--enable-source-maps from serverless.yml comes too late, so source maps are switched on here,
 *   before the bundle (built with `sourcemap: linked`) is loaded.
 * - The consumer takes the Kafka event Lambda sends, not a message: given a message (or a list of them) it stops
 *   before invoking and says how to wrap it (`npm run build-event`), instead of failing inside with EVENT_MALFORMED.
 *
 * Plain CommonJS because the CLI loads plugins with require().
 */
const { readFileSync } = require('node:fs');
const { resolve } = require('node:path');

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
    for (const [name, value] of Object.entries(process.env)) if (name.startsWith('DB_') && value) shell[name] = value;
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
 * Stops `invoke local -f consumer` given a message (or a list of them) rather than the Kafka event Lambda sends,
 * saying how to wrap it. The event is read here as the CLI reads it (`-p` file, or `--data`), since the CLI may
 * parse it only after this hook. Anything else, even an event lib/aws/kafka-event.ts will refuse, goes through.
 * @param {{ serviceDir: string, classes: { Error: new (message: string) => Error } }} serverless
 * @param {{ function?: string, path?: string, data?: unknown }} options
 */
function refuseMessages(serverless, options) {
  if (options.function !== 'consumer') return;
  let data = options.data;
  try {
    if (!data && options.path && !options.path.endsWith('.js'))
      data = readFileSync(resolve(serverless.serviceDir, options.path), 'utf8');
    if (typeof data === 'string') data = JSON.parse(data);
  } catch {
    return; // not readable or not JSON: the CLI says so itself
  }
  const problem = notAKafkaEvent(data);
  if (!problem) return;
  const file = options.path || 'messages.json';
  throw new serverless.classes.Error(
    `The consumer takes the Kafka event Lambda sends, and ${options.path || 'this event'} ${problem}. ` +
      `Wrap your messages into one: npm run --silent build-event -- ${file} > my-events/mine.json, then ` +
      'npx serverless invoke local -f consumer -p my-events/mine.json (docs/local-development.md).',
  );
}

/**
 * Why `data` is a message rather than a Kafka event, or null when it may be an event (lib/aws/kafka-event.ts judges
 * the rest: an object with `records` that is malformed still fails there, with EVENT_MALFORMED).
 * @param {unknown} data
 */
function notAKafkaEvent(data) {
  if (Array.isArray(data)) return 'is a list (of messages?) rather than an event';
  if (data === null || typeof data !== 'object' || 'records' in data) return null;
  return 'traceId' in data || 'course' in data
    ? 'is a survey message, not an event'
    : 'has no "records": it is not a Kafka event';
}

module.exports = InvokeLocalDefaults;
