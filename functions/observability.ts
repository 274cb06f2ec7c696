import type { Context } from 'aws-lambda';
import type { Logger } from '../lib/log';
import type { EmfDocument } from '../lib/aws/emf-metrics';

// True until the first invocation of this execution environment has asked for its logger.
let coldStart = true;

/**
 * The logger for one invocation: every line carries the Lambda request id, whether this invocation paid for the
 * cold start (it is the first of its execution environment) and the X-Ray trace id, under the keys Powertools'
 * Logger gives them (`function_request_id`, `cold_start`, `xray_trace_id`).
 */
export function invocationLogger(logger: Logger, context: Context): Logger {
  const traceId = xrayTraceId(process.env._X_AMZN_TRACE_ID);
  const child = logger.child({
    cold_start: coldStart,
    function_request_id: context.awsRequestId,
    ...(traceId === undefined ? {} : { xray_trace_id: traceId }),
  });
  coldStart = false;
  return child;
}

/**
 * The trace id (`1-5759e988-bd862e3fe1be46a994272793`) of the `Root=...;Parent=...;Sampled=...` header that the
 * Lambda runtime sets in `_X_AMZN_TRACE_ID` for each invocation, with or without active tracing. It changes with
 * every invocation, so it is read here rather than once with the configuration (lib/config.ts).
 */
function xrayTraceId(header: string | undefined): string | undefined {
  const root = header
    ?.split(';')
    .map((part) => part.trim())
    .find((part) => part.startsWith('Root='));
  return root?.slice('Root='.length) || undefined;
}

/** Embedded Metric Format documents go to stdout as one JSON line each, whatever LOG_LEVEL says. */
export function writeMetrics(document: EmfDocument): void {
  process.stdout.write(JSON.stringify(document) + '\n');
}
