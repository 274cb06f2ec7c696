import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { loadConfig } from '../lib/config';
import { credentialSource } from '../lib/aws/database-credentials';
import { Database } from '../lib/postgres/database';
import { createLogger } from '../lib/log';
import { processBatch } from '../lib/batch/process-batch';
import { SchemaGate } from '../lib/postgres/schema-version-gate';
import { briefLocalErrors, closeDatabaseAfterLocalInvoke } from './close-after-local-invoke';
import { invocationLogger, writeMetrics } from './observability';
import { decodeEvent } from '../lib/aws/kafka-event';
import { toResponse, type KafkaBatchResponse } from '../lib/aws/kafka-batch-response';
import { batchMetricsWriter, SERVICE } from '../lib/aws/emf-metrics';

// Cold start: configuration is read and validated once, and one database client serves every invocation of this
// execution environment. A configuration error fails the init phase with a message naming the variable. The
// credentials (Secrets Manager, when DB_SECRET_ARN is set) are fetched on first use, not here.
const config = loadConfig();
const logger = createLogger(config.logLevel, { service: SERVICE });
const database = new Database(config.db, credentialSource(config.db));
// The schema version is checked on the first invocation and, after a failed check, on every one until it passes.
const schemaGate = new SchemaGate(config.db.schema);

const recordMetrics = batchMetricsWriter(config.metricsNamespace, writeMetrics);

/**
 * Lambda entry point for Amazon MSK and self-managed Kafka event source mappings: decodes the event (EnvelopeError
 * when it is not a Kafka event), runs the pipeline, and returns the records to retry as a partial batch response;
 * throws BatchFailedError when no record could be settled (see toResponse).
 */
export const handler = middy<unknown, KafkaBatchResponse, Error, Context>()
  .use(closeDatabaseAfterLocalInvoke(database))
  .use(briefLocalErrors(config.logLevel))
  .handler(async (event, context) => {
    // The invocation's one deadline, fixed before anything runs: every step and every retry shares it.
    const deadline = Date.now() + context.getRemainingTimeInMillis() - config.timeReserveMs;
    const records = decodeEvent(event);
    const { outcomes } = await processBatch(records, {
      database,
      // `serverless invoke local` has a person waiting at the terminal: a deployment-class failure answers at once.
      config: process.env.IS_LOCAL === 'true' ? { ...config, setupFailureHoldMs: 0 } : config,
      logger: invocationLogger(logger, context),
      deadline,
      recordMetrics,
      schemaGate,
    });
    return toResponse(outcomes, config.reportBatchItemFailures);
  });
