import { tracingChannel } from 'node:diagnostics_channel';
import type { DatabaseTarget } from '../errors';
import { withTarget } from './error-target';

/**
 * The connection attempts postgres.js 4 retries by itself: a server that closes the connection before the session
 * is ready (CONNECTION_CLOSED), or says it has too many connections (53300). The driver reconnects with its own
 * backoff for as long as DB_CONNECT_TIMEOUT allows while the query waits: several connections to a server that
 * will not let us in, and no failure to retry under our deadline. Database ends its attempt at the first one instead
 * (test/integration/connection-faults.test.ts): retries, with their backoff and deadline, are lib/postgres/retry.ts's.
 *
 * They are learnt from the driver's `postgres:connect` tracing channel (one subscriber for the process, installed
 * with the first client), by target: the channel names host, port, database and user, not the client.
 */
/** The code of a connection the server closed before the session was ready. */
export const CLOSED_IN_STARTUP = 'DB_CLOSED_IN_STARTUP';

const RETRIED_BY_DRIVER = new Set(['CONNECTION_CLOSED', '53300']);

type Listener = (error: Error) => void;
const listeners = new Map<string, Set<Listener>>();
let subscribed = false;

const key = (t: { host: unknown; port: unknown; database: unknown; user: unknown }) =>
  JSON.stringify([t.host, Number(t.port), t.database, t.user]);

interface ConnectContext {
  host: string | null;
  port: number | null;
  database: string;
  user: string | null;
  error?: unknown;
}

/** Installs the process's one subscriber (idempotent): every client's connection errors then name their target. */
export function subscribe(): void {
  if (subscribed) return;
  subscribed = true;
  const noop = () => {};
  tracingChannel<unknown, ConnectContext>('postgres:connect').subscribe({
    start: noop,
    end: noop,
    asyncStart: noop,
    asyncEnd: noop,
    error(context) {
      const error = context.error;
      // Which server refused whom, on every client's connection failure (PostgreSQL's own messages name neither).
      const { host, port, database, user } = context;
      if (typeof host === 'string' && typeof port === 'number' && typeof user === 'string')
        withTarget(error, { host, port, database, user });
      const code = (error as { code?: unknown } | null)?.code;
      if (!(error instanceof Error) || typeof code !== 'string' || !RETRIED_BY_DRIVER.has(code)) return;
      const reported =
        code === 'CONNECTION_CLOSED'
          ? Object.assign(
              new Error(
                `the server at ${context.host}:${context.port} closed the connection before the session was ready`,
              ),
              { code: CLOSED_IN_STARTUP, cause: error },
            )
          : error;
      for (const listener of listeners.get(key(context)) ?? []) listener(reported);
    },
  });
}

/**
 * Calls `listener` with each failed connection attempt to `target` that postgres.js would retry (a close as
 * CLOSED_IN_STARTUP); returns the undo.
 */
export function onRetriedConnectFailure(target: DatabaseTarget, listener: Listener): () => void {
  subscribe();
  const k = key(target);
  const set = listeners.get(k) ?? new Set<Listener>();
  listeners.set(k, set);
  set.add(listener);
  return () => {
    set.delete(listener);
    if (set.size === 0) listeners.delete(k);
  };
}
