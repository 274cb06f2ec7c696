/*
 * Which function an event is meant for, judged from its shape alone: a person who sends the health function's HTTP
 * request to the consumer, or a Kafka batch to the health function (with `serverless invoke`, or a test console),
 * is told where it belongs instead of getting a parse error or a bare 500.
 */

/** What an event looks like: Lambda's Kafka batch, an HTTP API request, a survey message, or something else. */
export type EventKind =
  | { kind: 'kafka'; source: string }
  | { kind: 'http'; request: string }
  | { kind: 'message' }
  | { kind: 'other' };

const isObject = (x: unknown): x is Record<string, unknown> => x !== null && typeof x === 'object' && !Array.isArray(x);

/**
 * The kind of `event`. Kafka: an object of `records` (both MSK's `aws:kafka` and `SelfManagedKafka` events), or one
 * of those event sources. HTTP: API Gateway's payload 2.0 (`requestContext.http`, `rawPath`, `routeKey`) or 1.0
 * (`httpMethod`). A message: an object with `traceId` or `course`, or a list of objects.
 * https://docs.aws.amazon.com/lambda/latest/dg/with-msk.html
 * https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html
 */
export function eventKind(event: unknown): EventKind {
  if (Array.isArray(event)) return event.length > 0 && event.every(isObject) ? { kind: 'message' } : { kind: 'other' };
  if (!isObject(event)) return { kind: 'other' };
  const source = typeof event.eventSource === 'string' ? event.eventSource : '';
  if (isObject(event.records) || /kafka/i.test(source)) return { kind: 'kafka', source: source || 'Kafka' };
  const context = isObject(event.requestContext) ? event.requestContext : {};
  const http = isObject(context.http) ? context.http : null;
  if (http || typeof event.rawPath === 'string' || typeof event.routeKey === 'string' || 'httpMethod' in event) {
    const method = String(http?.method ?? event.httpMethod ?? '').toUpperCase();
    const path = String(http?.path ?? event.rawPath ?? event.path ?? '');
    return { kind: 'http', request: `${method} ${path}`.trim() || 'an HTTP request' };
  }
  if ('traceId' in event || 'course' in event) return { kind: 'message' };
  return { kind: 'other' };
}
