import {
  DatabaseChannelBindingError,
  DatabaseInsecureAuthError,
  DatabaseLoginError,
  DatabaseStartupFailedError,
  DatabaseTlsUnavailableError,
  DatabaseNotFoundError,
  DatabaseSetupError,
  DatabaseUnreachableError,
  SchemaMissingError,
  TraceConsumerError,
  type DatabaseTarget,
} from '../errors';
import { targetOf } from './error-target';
import { ScramIterationsRefused } from './scram-iterations';
import { CLOSED_IN_STARTUP } from './connect-failures';
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
  // Which server refused whom: set by Database (lib/postgres/error-target.ts) on its client's errors.
  const target = targetOf(error);
  if (LOGIN_REJECTED.has(code)) return new DatabaseLoginError(code, detail, error, target);
  if (code === '3D000') return new DatabaseNotFoundError(detail, error, target);
  if (code === '42P01') return new SchemaMissingError([relationName(error) ?? 'of the schema']);
  const driverGuard = diagnoseDriverGuard(code, error, target);
  if (driverGuard) return driverGuard;
  if (code === CLOSED_IN_STARTUP) return new DatabaseStartupFailedError('closed', detail, target, error);
  // max_connections reached (or RDS Proxy's limit): PostgreSQL names neither itself nor the target in its message.
  if (code === '53300') return new DatabaseStartupFailedError('full', detail, target, error);
  if (code === 'CONNECT_TIMEOUT' && reachedServer(error))
    return new DatabaseStartupFailedError('timeout', detail, target, error);
  if (code === 'SSL_NOT_SUPPORTED') return new DatabaseTlsUnavailableError(target, error);
  if (CONNECT_FAILED.has(code)) return new DatabaseUnreachableError(code, detail, error, target);
  return error;
}

/**
 * What postgres.js's own guards refused (lib/postgres/client.ts): an authentication method `require_auth` does not
 * allow (its message says which was requested), a SCRAM iteration count out of bounds, a login that could not be
 * bound to the certificate.
 */
function diagnoseDriverGuard(code: string, error: unknown, target: DatabaseTarget | undefined): unknown {
  const message = error instanceof Error ? error.message : '';
  if (code === 'AUTH_METHOD_REFUSED') {
    const method = /cleartext/.test(message) ? 'cleartext' : /hashed/.test(message) ? 'md5' : 'other';
    return new DatabaseInsecureAuthError(method, target, undefined, error);
  }
  if (error instanceof ScramIterationsRefused)
    return new DatabaseInsecureAuthError('scram-iterations', target, error.iterations, error);
  if (code === 'CHANNEL_BINDING_REQUIRED')
    return new DatabaseChannelBindingError(message.replace(/^CHANNEL_BINDING_REQUIRED: /, ''), target, error);
  return undefined;
}

/** Set by Database on a connect timeout: whether the server had accepted the TCP connection. */
function reachedServer(error: unknown): boolean {
  return error !== null && typeof error === 'object' && 'reachedServer' in error && error.reachedServer === true;
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
