// @ts-check
/**
 * A local Serverless plugin that makes `serverless invoke local` work against a developer's database with no flags:
 *
 * - The function's environment comes from serverless.yml, whose DB_* parameters describe the deployment (an empty
 *   DB_HOST, DB_SSL=verify-full against the CA bundle of the Lambda runtime). Locally, the DB_* variables of the
 *   shell (the `export DB_*` lines that `npm run db` prints) take their place, and DB_SSL defaults to `disable`:
 *   a local server has no TLS, and /var/runtime/ca-cert.pem exists only in Lambda. `--env NAME=value` still wins
 *   over both, so `--env DB_SSL=verify-full --env DB_SSL_CA=./ca.pem` tests TLS locally. Deployed functions are
 *   not touched: this runs only for `invoke local`.
 * - Stack traces point at the TypeScript sources: invoke local runs the bundle in the CLI's own process, where
 *   NODE_OPTIONS=--enable-source-maps from serverless.yml comes too late, so source maps are switched on here,
 *   before the bundle (built with `sourcemap: linked`) is loaded.
 *
 * Plain CommonJS because the CLI loads plugins with require().
 */
class InvokeLocalDefaults {
  /** @param {{ service: { provider: { environment?: Record<string, unknown> }, functions?: Record<string, { environment?: Record<string, unknown> }> } }} serverless */
  constructor(serverless) {
    // Read at start-up, before invoke local overwrites process.env with the function's environment.
    /** @type {Record<string, string>} */
    const shell = {};
    for (const [name, value] of Object.entries(process.env)) if (name.startsWith('DB_') && value) shell[name] = value;
    const local = { DB_SSL: 'disable', ...shell };

    this.hooks = {
      // Runs next to the AWS plugin's own loader of the function's environment, which reads
      // provider.environment and writes process.env; setting both holds whichever of the two runs first. The
      // `--env` options are applied afterwards, in invoke:local:loadEnvVars.
      'before:invoke:local:loadEnvVars': () => {
        const environment = (serverless.service.provider.environment ??= {});
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

module.exports = InvokeLocalDefaults;
