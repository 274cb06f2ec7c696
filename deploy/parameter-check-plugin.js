// @ts-check
/**
 * A local Serverless plugin that reports the deploy parameters' problems (deploy/resources.js) as the CLI's own
 * error, once the command is known: the message starts with them, where a variable resolver's rejection would come
 * after about 230 characters of the CLI's wrapping. The command decides which checks apply: `invoke local` deploys
 * nothing and is held only to the parameter names and the functions' environment; `deploy function -f` pushes a
 * function's environment, so it is held to the safety checks too (dbSsl, the health function's secret).
 *
 * The CLI loads this plugin before it resolves `${file(deploy/resources.js):...}`. The problems are reported right
 * after resolving, before the CLI checks the configuration against its schema (which would report a mistyped
 * `timeout` alone, and in its own words) and before any hook, so nothing is built or deployed first. The
 * `initialize` hook, which every command runs first, reports them should the CLI ever stop calling
 * `service.validate`. Plain CommonJS because the CLI loads plugins with require().
 */
const { deferParameterChecks } = require('./resources.js');

class ParameterChecks {
  /**
   * @param {{ processedInput: { commands: string[] }, classes: { Error: new (message: string) => Error },
   * service: { validate: (...args: unknown[]) => Promise<unknown> } }} serverless
   */
  constructor(serverless) {
    const report = deferParameterChecks();
    const check = () => report(serverless.processedInput.commands, serverless.classes.Error);
    const { service } = serverless;
    const validate = service.validate;
    service.validate = async function (...args) {
      check();
      return validate.apply(this, args);
    };
    this.hooks = { initialize: check };
  }
}

module.exports = ParameterChecks;
