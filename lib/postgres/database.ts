import type postgres from 'postgres';
import type { Config } from '../config';
import type { CredentialSource, Credentials } from './credentials';
import { type Client, createClient, type Sql } from './client';
import { canStartAttempt, MIN_ATTEMPT_MS, raceDeadline, type Deadline } from '../deadline';
import { CommitUnconfirmedError, OutOfTimeError } from '../errors';
import { CONNECT_FAILED, CONNECTION_LOST, errorCode, LOGIN_REJECTED } from './failure-kind';
import { withTarget } from './error-target';
import { onRetriedConnectFailure } from './connect-failures';

type ClientOptions = postgres.Options<Record<string, postgres.PostgresType>>;

/**
 * The database of one execution environment: a postgres.js client created on first use (not at cold start, so an
 * unreachable Secrets Manager cannot fail the init phase) from the current credentials, and replaced when they
 * change. When PostgreSQL rejects the login, as it does right after a rotation, the secret is fetched again and the
 * work runs once more on a new client before the failure counts. A client whose connection failed is never used
 * again: a new one starts from a clean pool (postgres.js 3.4 could leave such a client hanging,
 * porsager/postgres#1130).
 * Every failure of its client carries the target (host, port, database, user) it was raised for, so that the message
 * a person reads can name it (lib/postgres/diagnose-failure.ts).
 */
export class Database {
  private client: (Client & { credentials: Credentials }) | undefined;
  private creating: Promise<Sql> | undefined;

  constructor(
    private readonly settings: Config['db'],
    private readonly credentials: CredentialSource,
    private readonly overrides: ClientOptions = {},
  ) {}

  /**
   * Runs `work` with the client; reconnects once after a broken connection and once after a rejected login. Every
   * pass (the first, a reconnect, a re-login with the secret fetched again) starts only with `minAttemptMs` left
   * before `deadline` and is cut off at it, dropping the client: whatever the socket does, the invocation answers in
   * time, and the next attempt starts on a fresh connection. A reconnect never restarts the clock.
   *
   * Retries across attempts, and settling a COMMIT that lost its answer (CommitUnconfirmedError, thrown as is),
   * belong to the caller: lib/postgres/retry.ts.
   */
  async run<T>(
    work: (sql: Sql) => Promise<T>,
    deadline: Deadline = Infinity,
    now: () => number = Date.now,
    minAttemptMs: number = MIN_ATTEMPT_MS,
  ): Promise<T> {
    let reconnected = false;
    let renewedLogin = false;
    let lastError: unknown;
    for (;;) {
      if (!canStartAttempt(deadline, now, minAttemptMs)) throw new OutOfTimeError(lastError);
      try {
        return await this.beforeDeadline((sql) => work(sql), deadline, now);
      } catch (error) {
        lastError = error;
        const code = errorCode(error) ?? '';
        // Nothing of the transaction committed on a connection that broke (reset, terminated, frozen past its idle
        // timeout), so the work runs again at once on a new client.
        if (CONNECTION_LOST.has(code) && !reconnected) {
          reconnected = true;
          continue;
        }
        if (LOGIN_REJECTED.has(code) && !renewedLogin) {
          renewedLogin = true;
          // The secret is fetched again only if a pass can still start with it.
          if (!canStartAttempt(deadline, now, minAttemptMs)) throw new OutOfTimeError(error);
          this.replaceClient(await raceDeadline(this.credentials.refresh(), deadline, () => new OutOfTimeError(), now));
          continue;
        }
        throw error;
      }
    }
  }

  /** The client for the current credentials, created if there is none yet or the credentials changed. */
  async sql(): Promise<Sql> {
    this.creating ??= (async () => {
      const credentials = await this.credentials.get();
      if (!this.client || !sameCredentials(this.client.credentials, credentials)) this.replaceClient(credentials);
      return this.client!.sql;
    })().finally(() => (this.creating = undefined));
    return this.creating;
  }

  async end(): Promise<void> {
    const old = this.client;
    this.client = undefined;
    await old?.sql.end({ timeout: 5 });
  }

  /**
   * One pass of `work` on the current client (fetching the credentials first if need be), cut off at `deadline`. A
   * client whose connection broke, or that is cut off, is dropped.
   */
  private beforeDeadline<T>(work: (sql: Sql) => Promise<T>, deadline: Deadline, now: () => number): Promise<T> {
    let current: Sql | undefined;
    const running = (async () => {
      const sql = await this.sql();
      current = sql;
      const credentials = this.client?.sql === sql ? this.client.credentials : undefined;
      let stopWatching = () => {};
      let refused = false;
      // A connection attempt the driver would retry by itself ends this pass at once (lib/postgres/connect-failures).
      const connectFailed = new Promise<never>((_, reject) => {
        if (credentials)
          stopWatching = onRetriedConnectFailure(credentials, (error) => {
            refused = true;
            reject(error);
          });
      });
      connectFailed.catch(() => {});
      try {
        return await Promise.race([work(sql), connectFailed]);
      } catch (error) {
        this.annotate(error, sql);
        const code = errorCode(error) ?? '';
        // A refused connection attempt too (53300 among them): the driver would go on trying in the background.
        if (refused || CONNECTION_LOST.has(code) || CONNECT_FAILED.has(code) || error instanceof CommitUnconfirmedError)
          this.discard(sql);
        throw error;
      } finally {
        stopWatching();
      }
    })();
    return raceDeadline(
      running,
      deadline,
      () => {
        if (current) this.discard(current);
        return new OutOfTimeError();
      },
      now,
    );
  }

  /**
   * Names the target on a failure of `sql`'s work, and whether its last connection reached the server: a connect
   * timeout after the server accepted TCP means it never finished the session's startup, not a wrong address.
   */
  private annotate(error: unknown, sql: Sql): void {
    const client = this.client?.sql === sql ? this.client : undefined;
    if (!client) return;
    const { host, port, database, user } = client.credentials;
    withTarget(error, { host, port, database, user });
    if (errorCode(error) === 'CONNECT_TIMEOUT' && error !== null && typeof error === 'object')
      Object.defineProperty(error, 'reachedServer', { value: client.sockets.lastReachedServer(), enumerable: false });
  }

  /** Drops `sql` if it is still the current client, closing it at once without waiting for its queries. */
  private discard(sql: Sql): void {
    if (this.client?.sql === sql) this.client = undefined;
    void sql.end({ timeout: 0 }).catch(() => {});
  }

  private replaceClient(credentials: Credentials): void {
    const old = this.client;
    this.client = { ...createClient({ ...this.settings, ...credentials }, this.overrides), credentials };
    // Let the old client finish what it has in flight, then close it in the background.
    void old?.sql.end({ timeout: 5 }).catch(() => {});
  }
}

function sameCredentials(a: Credentials, b: Credentials): boolean {
  return (
    a.host === b.host &&
    a.port === b.port &&
    a.database === b.database &&
    a.user === b.user &&
    a.password === b.password
  );
}
