import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { loadConfig } from '../lib/config';
import { credentialSource } from '../lib/aws/database-credentials';
import { Database } from '../lib/postgres/database';
import { runDeadLetterAction, type DeadLetterResponse } from '../lib/dead-letters/run-action';
import { createLogger } from '../lib/log';
import { closeDatabaseAfterLocalInvoke } from './close-after-local-invoke';
import { invocationLogger, writeMetrics } from './observability';

// Cold start, as the consumer: configuration validated once, one database client per execution environment.
const config = loadConfig();
const logger = createLogger(config.logLevel, { service: 'trace-consumer-dead-letters' });
const database = new Database(config.db, credentialSource(config.db));

/**
 * Operator entry point, invoked directly (`serverless invoke -f deadLetters --data '{"action": "summary"}'`): no
 * HTTP route and no trigger. Returns the action's answer; an invalid request fails with DEAD_LETTER_REQUEST_INVALID.
 */
export const handler = middy<unknown, DeadLetterResponse, Error, Context>()
  .use(closeDatabaseAfterLocalInvoke(database))
  .handler((event, context) =>
    runDeadLetterAction(event, {
      database,
      config,
      logger: invocationLogger(logger, context),
      // The invocation's one deadline, fixed before anything runs.
      deadline: Date.now() + context.getRemainingTimeInMillis() - config.timeReserveMs,
      emitMetrics: writeMetrics,
    }),
  );
