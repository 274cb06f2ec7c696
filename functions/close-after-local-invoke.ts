import type middy from '@middy/core';
import type { Database } from '../lib/postgres/database';

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
