import { diagnoseDatabaseFailure } from '../lib/postgres/diagnose-failure';
import { TraceConsumerError } from '../lib/errors';

/**
 * Ends a script that failed. A failure this project knows (a wrong argument, a rejected login, a missing database,
 * an unreachable server, ...) is printed as its message alone, which says what to do; anything else is a bug and
 * keeps its stack trace.
 */
export function exitWithDiagnosis(error: unknown): never {
  const diagnosed = diagnoseDatabaseFailure(error);
  console.error(diagnosed instanceof TraceConsumerError ? `${diagnosed.name}: ${diagnosed.message}` : diagnosed);
  process.exit(1);
}
