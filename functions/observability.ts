import type { Context } from 'aws-lambda';
import type { Logger } from '../lib/log';
import type { EmfDocument } from '../lib/aws/emf-metrics';

// True until the first invocation of this execution environment has asked for its logger.
let coldStart = true;

/**
 * The logger for one invocation: every line carries the Lambda request id and whether this invocation paid for the
 * cold start (it is the first of its execution environment).
 */
export function invocationLogger(logger: Logger, context: Context): Logger {
  const child = logger.child({ requestId: context.awsRequestId, coldStart });
  coldStart = false;
  return child;
}

/** Embedded Metric Format documents go to stdout as one JSON line each, whatever LOG_LEVEL says. */
export function writeMetrics(document: EmfDocument): void {
  process.stdout.write(JSON.stringify(document) + '\n');
}
