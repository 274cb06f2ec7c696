import {
  DatabaseLoginError,
  DatabaseNotFoundError,
  DatabaseSetupError,
  DatabaseUnreachableError,
  SchemaMissingError,
  TraceConsumerError,
} from '../errors';
import { targetOf } from './socket';
import { CONNECT_FAILED, describeDatabaseError, errorCode, LOGIN_REJECTED } from './failure-kind';

/**
 * The typed error that names the cause of a raw database failure and what to do about it, or the failure itself
 * when it is not one of the known setup mistakes (a data error, a lost connection, a bug). The raw error stays
 * reachable as `cause`. The retry logic keeps working on raw errors; this is for what a person reads.
 */
export function diagnoseDatabaseFailure(error: unknown): unknown {
  if (error instanceof TraceConsumerError) return error;
  const code = errorCode(error);
  if (code === undefined) return error;
  const detail = describeDatabaseError(error);
  // Which server refused whom: set by the connection's socket (lib/postgres/socket.ts) on the errors of its startup.
  const target = targetOf(error);
  if (LOGIN_REJECTED.has(code)) return new DatabaseLoginError(code, detail, error, target);
  if (code === '3D000') return new DatabaseNotFoundError(detail, error, target);
  if (code === '42P01') return new SchemaMissingError([relationName(error) ?? 'of the schema']);
  if (CONNECT_FAILED.has(code)) return new DatabaseUnreachableError(code, detail, error, target);
  return error;
}

/** The relation PostgreSQL names in `relation "trace.ratings" does not exist`. */
function relationName(error: unknown): string | undefined {
  return error instanceof Error ? /relation "([^"]+)"/.exec(error.message)?.[1] : undefined;
}

/** What a failure means and what to do, in words that name no host, user or password: for public answers. */
export function publicReason(error: unknown): string | undefined {
  const diagnosed = diagnoseDatabaseFailure(error);
  if (diagnosed instanceof DatabaseSetupError) return `${diagnosed.summary}: ${diagnosed.fix}`;
  if (diagnosed instanceof SchemaMissingError) return diagnosed.message;
  return undefined;
}
