import type { DatabaseTarget } from '../errors';

/**
 * Which server refused whom: the target a database error was raised for, kept on the error as a property that is
 * not enumerated (logs serialise errors). Set by Database on every failure of its client (postgres.js names host and
 * port in some of its messages, never the database and user), read by lib/postgres/diagnose-failure.ts.
 */
export function withTarget<E>(error: E, target: DatabaseTarget): E {
  if (error !== null && typeof error === 'object' && !('target' in error) && Object.isExtensible(error))
    Object.defineProperty(error, 'target', { value: { ...target }, enumerable: false });
  return error;
}

/** The target a database error was raised for, when a Database's client raised it. */
export function targetOf(error: unknown): DatabaseTarget | undefined {
  if (error === null || typeof error !== 'object' || !('target' in error)) return undefined;
  const t = error.target as Partial<DatabaseTarget> | null;
  return t &&
    typeof t.host === 'string' &&
    typeof t.port === 'number' &&
    typeof t.database === 'string' &&
    typeof t.user === 'string'
    ? (t as DatabaseTarget)
    : undefined;
}
