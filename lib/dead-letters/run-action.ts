import type { Config } from '../config';
import type { Database } from '../postgres/database';
import type { Deadline } from '../deadline';
import { diagnoseDatabaseFailure } from '../postgres/diagnose-failure';
import { errorCode } from '../postgres/failure-kind';
import type { Logger } from '../log';
import { messageParser, type MessageParser } from '../batch/trace-message';
import type { EmfDocument } from '../aws/emf-metrics';
import { checkSchemaVersion } from '../postgres/schema-version-gate';
import { ACTION_TIMEOUTS, type OperationContext } from './operation-context';
import { runInTransaction } from '../postgres/retry';
import { DeadLetterTimeoutError, OutOfTimeError } from '../errors';
import { actionMetrics } from './action-metrics';
import { purge, type PurgeReport } from './purge';
import { redrive, type RedriveReport } from './redrive';
import { parseRequest } from './request';
import { show, type ShowPage } from './show';
import { summarizeDeadLetters, type DeadLetterSummary } from './summarize';

export interface DeadLetterDependencies {
  database: Database;
  config: Pick<Config, 'db' | 'retry' | 'timeReserveMs' | 'metricsNamespace' | 'limits'>;
  logger: Logger;
  /** When the work must be finished (epoch ms): the invocation's end less TIME_RESERVE_MS, fixed when it starts. */
  deadline: Deadline;
  /** The clock of `deadline`; Date.now unless a test drives time. */
  now?: () => number;
  emitMetrics?: (document: EmfDocument) => void;
  /**
   * Whether a failed action logs its error line (default true, for CloudWatch). `npm run dead-letters` prints the
   * error itself, once, in words: the JSON line before it said the same again.
   */
  logFailure?: boolean;
  /** The validation redrive applies: that of the configuration's limits unless a test stands in a changed rule. */
  parse?: MessageParser;
}

export type DeadLetterResponse =
  | ({ action: 'summary' } & DeadLetterSummary)
  | ({ action: 'show' } & ShowPage)
  | ({ action: 'redrive' } & RedriveReport)
  | ({ action: 'purge' } & PurgeReport);

const SERVICE = 'trace-consumer-dead-letters';
/** The server gave up on a statement (ACTION_TIMEOUTS): lock_timeout (55P03) or statement_timeout (57014). */
const SERVER_TIMEOUTS = new Set(['55P03', '57014']);

/**
 * Runs one operator request (summary, show, redrive or purge) and returns its answer. Logs one summary line and
 * writes one metrics document per action, with counts only: what `show` returns is never logged.
 * Throws DeadLetterRequestError for a request it cannot run, SchemaVersionError for a database whose schema does
 * not fit the code, and the database's error (diagnosed, see lib/postgres/diagnose-failure.ts) when it stays unusable.
 */
export async function runDeadLetterAction(input: unknown, deps: DeadLetterDependencies): Promise<DeadLetterResponse> {
  try {
    return await run(input, deps);
  } catch (error) {
    // The one line of a failed action: what was asked and why it failed. Committed redrive batches stay committed;
    // running the action again continues after them.
    // A setup mistake (wrong password, missing database or schema, unreachable server) is reported as the typed
    // error that names its fix, not as the driver's raw error; running out of time names what held it up.
    const requested = (input as { action?: unknown } | null)?.action;
    const action = typeof requested === 'string' ? requested : null;
    const { host, port, database, schema } = deps.config.db;
    const timedOut =
      error instanceof OutOfTimeError || SERVER_TIMEOUTS.has(errorCode(error) ?? '')
        ? { cause: error instanceof OutOfTimeError ? error.cause : error }
        : undefined;
    const diagnosed = timedOut
      ? new DeadLetterTimeoutError(
          action ?? 'action',
          `${host}:${port}, database ${database}, schema ${schema}`,
          timedOut.cause,
        )
      : diagnoseDatabaseFailure(error);
    if (deps.logFailure !== false) deps.logger.error('dead-letter action failed', { action, error: diagnosed });
    throw diagnosed;
  }
}

async function run(input: unknown, deps: DeadLetterDependencies): Promise<DeadLetterResponse> {
  const started = Date.now();
  const request = parseRequest(input);
  const ctx: OperationContext = {
    database: deps.database,
    schema: deps.config.db.schema,
    logger: deps.logger,
    attempts: {
      ...deps.config.retry,
      deadline: deps.deadline,
      now: deps.now ?? Date.now,
      timeoutShares: ACTION_TIMEOUTS,
      onRetry: (error, attempt, delayMs) =>
        deps.logger.warn('dead-letter database work failed, retrying', { error, attempt, delayMs }),
    },
  };
  // The schema version first, as the consumer checks it: on a database behind the code the actions would fail on a
  // missing column; this says `npm run db:apply` instead. One query; an operator's action is rare.
  await checkSchemaVersion((work) => runInTransaction(ctx.database, work, ctx.attempts), ctx.schema);
  let response: DeadLetterResponse;
  switch (request.action) {
    case 'summary':
      response = {
        action: 'summary',
        ...(await runInTransaction(ctx.database, (tx) => summarizeDeadLetters(tx, ctx.schema, request), ctx.attempts)),
      };
      break;
    case 'show':
      response = {
        action: 'show',
        ...(await runInTransaction(ctx.database, (tx) => show(tx, ctx.schema, request), ctx.attempts)),
      };
      break;
    case 'redrive':
      response = {
        action: 'redrive',
        ...(await redrive(request, { ...ctx, parse: deps.parse ?? messageParser(deps.config.limits) })),
      };
      break;
    case 'purge':
      response = { action: 'purge', ...(await purge(ctx, request)) };
      break;
  }
  const { action, counts, fields } = describe(response);
  const durationMs = Date.now() - started;
  deps.logger.info('dead-letter action done', { action, ...fields, durationMs });
  deps.emitMetrics?.(
    actionMetrics(counts, {
      namespace: deps.config.metricsNamespace,
      service: SERVICE,
      action,
      durationMs,
      now: Date.now(),
    }),
  );
  return response;
}

/** The metric counts and the log fields of a response: identifiers and counts, never dead-letter content. */
function describe(response: DeadLetterResponse): {
  action: string;
  counts: Record<string, number>;
  fields: Record<string, unknown>;
} {
  switch (response.action) {
    case 'summary':
      return {
        action: 'summary',
        counts: {
          DeadLetters: response.total,
          DeadLettersUnresolved: response.unresolved,
          DeadLettersResolvedByReport: response.resolvedByReport,
        },
        fields: {
          total: response.total,
          unresolved: response.unresolved,
          resolvedByReport: response.resolvedByReport,
          oldest: response.oldest,
        },
      };
    case 'show':
      return {
        action: 'show',
        counts: { DeadLettersShown: response.letters.length },
        fields: {
          shown: response.letters.length,
          ids: response.letters.map((l) => l.id),
          nextAfter: response.nextAfter,
        },
      };
    case 'redrive': {
      const r = response.results;
      return {
        action: response.dryRun ? 'redrive-dry-run' : 'redrive',
        counts: {
          DeadLettersRedriven: response.redriven,
          RedriveStored: r.stored,
          RedriveDuplicate: r.duplicate,
          RedriveSuperseded: r.superseded,
          RedriveUpstreamError: r.upstream_error,
          RedriveDeadLettered: r.dead_lettered,
        },
        fields: {
          dryRun: response.dryRun,
          redriven: response.redriven,
          results: r,
          done: response.done,
          cursor: response.cursor,
        },
      };
    }
    case 'purge':
      return {
        action: response.dryRun ? 'purge-dry-run' : 'purge',
        counts: { DeadLettersPurged: response.purged },
        fields: {
          dryRun: response.dryRun,
          purged: response.purged,
          byReason: response.byReason,
          done: response.done,
          cursor: response.cursor,
        },
      };
  }
}
