import middy from '@middy/core';
import httpErrorHandler from '@middy/http-error-handler';
import httpRouterHandler, { type Route } from '@middy/http-router';
import { createError } from '@middy/util';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from 'aws-lambda';
import { loadConfig } from '../lib/config';
import { credentialSource } from '../lib/aws/database-credentials';
import { Database } from '../lib/postgres/database';
import { checkReadiness } from '../lib/health/readiness';
import { createLogger } from '../lib/log';
import { closeDatabaseAfterLocalInvoke } from './close-after-local-invoke';
import { invocationLogger } from './observability';
import { checkFreshness } from '../lib/health/freshness';
import { ttlCache } from '../lib/ttl-cache';
import { eventKind } from '../lib/aws/event-kind';

type Event = APIGatewayProxyEventV2;
type Response = APIGatewayProxyStructuredResultV2;

// Cold start: configuration once, and a client whose connect timeout matches the health timeout so that a database
// that does not answer makes the check fail in time instead of hanging the monitor.
const config = loadConfig();
const logger = createLogger(config.logLevel, { service: 'trace-consumer-health' });
const credentials = credentialSource(config.db);
const database = new Database(config.db, credentials, {
  connect_timeout: Math.max(1, Math.ceil(config.health.timeoutMs / 1000)),
});

// Readiness and freshness are both cached: the routes are public, and each uncached answer costs database time.
// A check never throws: a failed one is an answer (not_ready, unavailable), reused for the interval like any other.
const readiness = ttlCache(
  () =>
    checkReadiness({
      database,
      schema: config.db.schema,
      timeoutMs: config.health.timeoutMs,
      resolveCredentials: () => credentials.get(),
    }),
  config.health.checkIntervalSeconds * 1000,
);
const freshness = ttlCache(
  () => checkFreshness(database, config.db.schema, config.health.staleAfterSeconds, config.health.timeoutMs),
  config.health.checkIntervalSeconds * 1000,
);

// Every answer, errors included, is the state at one moment: no cache may keep it.
const NO_STORE = { 'Cache-Control': 'no-store' } as const;

const json = (statusCode: number, body: unknown): Response => ({
  statusCode,
  headers: { 'Content-Type': 'application/json', ...NO_STORE },
  body: JSON.stringify(body),
});

const routes: Route<Event, Response>[] = [
  {
    method: 'GET',
    path: '/healthz/live',
    handler: async () => json(200, { status: 'ok' }),
  },
  {
    method: 'GET',
    path: '/healthz/ready',
    handler: async (_event: Event, context: Context) => {
      const { value: result, cached } = await readiness.get();
      if (result.status !== 'ready' && !cached)
        invocationLogger(logger, context).warn('not ready', { checks: result.checks });
      return json(result.status === 'ready' ? 200 : 503, { ...result, cached });
    },
  },
  {
    method: 'GET',
    path: '/healthz',
    handler: async (_event: Event, context: Context) => {
      const { value: result, cached } = await freshness.get();
      if (result.ok)
        return json(200, {
          status: result.freshness.stale ? 'stale' : 'ok',
          ...result.freshness,
          checkedAt: result.checkedAt,
          cached,
        });
      if (!cached) invocationLogger(logger, context).warn('freshness could not be read', { error: result.cause });
      return json(503, { status: 'unavailable', error: result.error, checkedAt: result.checkedAt, cached });
    },
  },
];

const knownPaths = new Set(routes.map((r) => r.path));

/** Unknown paths get 404 and known paths with another method 405, both as JSON like every other answer. */
function notFound({ method, path }: { method: string; path: string }): never {
  const normalised = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  if (knownPaths.has(normalised)) {
    const error = createError(
      405,
      JSON.stringify({ error: 'method_not_allowed', message: `${method} is not allowed on ${normalised}; use GET` }),
    );
    throw Object.assign(error, { headers: { Allow: 'GET' } }); // read by http-error-handler
  }
  throw createError(
    404,
    JSON.stringify({ error: 'not_found', message: `no route for ${method} ${path}`, routes: [...knownPaths] }),
  );
}

/**
 * An event that is no HTTP API request (a Kafka batch meant for the consumer, a survey message, `{}`) is a mistake of
 * whoever invoked the function: answered 400 with what it is and where it belongs, before the router, which would
 * fail on it with a bare 500. A malformed HTTP request still reaches the router (a bug of the API's configuration).
 */
function notAnHttpRequest(event: unknown): Response | undefined {
  const kind = eventKind(event);
  if (kind.kind === 'http') return undefined;
  const what =
    kind.kind === 'kafka'
      ? `This is a Kafka event (${kind.source}), meant for the consumer: invoke the consumer function with it ` +
        '(locally: npx serverless invoke local -f consumer -p <file>).'
      : kind.kind === 'message'
        ? 'This is a survey message, meant for the consumer: wrap it into a Kafka event with npm run build-event ' +
          'and invoke the consumer with that.'
        : 'This is not an HTTP API request (payload format 2.0).';
  return json(400, {
    error: kind.kind === 'kafka' ? 'kafka_event' : 'not_an_http_request',
    message: `${what} The health function answers GET ${[...knownPaths].join(', ')} through the HTTP API.`,
  });
}

/** HTTP API (payload format 2.0) entry point for /healthz, /healthz/live and /healthz/ready. */
export const handler = middy<Event, Response>()
  .use(closeDatabaseAfterLocalInvoke(database))
  // Returning a response from `before` ends the request there (middy's early return).
  .before((request) => notAnHttpRequest(request.event))
  // Runs after the error handler (middy runs onError in reverse): 404, 405 and 500 answers are not cached either.
  .use({
    onError: (request) => {
      if (request.response)
        request.response = { ...request.response, headers: { ...request.response.headers, ...NO_STORE } };
    },
  })
  // Turns HTTP errors (404, 405) into JSON answers, unlogged; anything else becomes a 500, logged just below.
  .use(httpErrorHandler({ logger: false }))
  // Runs before the error handler (middy runs onError in reverse): a bug is logged with the request id.
  .use({
    onError: (request) => {
      const status = (request.error as { statusCode?: number } | null)?.statusCode;
      if (status === undefined || status >= 500)
        invocationLogger(logger, request.context).error('health request failed', { error: request.error });
    },
  })
  .handler(httpRouterHandler({ routes, notFoundResponse: notFound }));
