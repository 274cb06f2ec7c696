import type middy from '@middy/core';
import type { Database } from '../lib/postgres/database';
import { TraceConsumerError } from '../lib/errors';

/**
 * `serverless invoke local` runs one invocation in the CLI's own process and waits for its event loop to drain, so
 * an open database connection would hold the command for a minute. It sets IS_LOCAL=true; only then is the client
 * closed after the invocation. In Lambda the connection stays open for the next invocation.
 */
export function closeDatabaseAfterLocalInvoke(database: Database, env = process.env): middy.MiddlewareObj {
  const close = async () => {
    if (env.IS_LOCAL === 'true') await database.end();
  };
  return { after: close, onError: close };
}

/**
 * Under `serverless invoke local` (IS_LOCAL=true), an error this project knows (a TraceConsumerError, whose message
 * names the cause, the place and the fix) is printed without its stack: the CLI prints `errorMessage` and then the
 * stack, which repeats the message and adds only frames of our code. LOG_LEVEL=debug keeps the stack. In Lambda
 * nothing changes.
 */
export function briefLocalErrors(logLevel: string, env = process.env): middy.MiddlewareObj {
  return {
    onError: async (request) => {
      if (env.IS_LOCAL === 'true' && logLevel !== 'debug' && request.error instanceof TraceConsumerError)
        request.error.stack = undefined;
    },
  };
}
