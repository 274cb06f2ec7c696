import type postgres from 'postgres';
import type { Config } from './config';
import type { CredentialSource, Credentials } from './credentials';
import { boundedTimeout, createSql, type Sql } from './db';
import { OutOfTimeError } from './errors';
import { CONNECT_FAILED, CONNECTION_LOST, errorCode, LOGIN_REJECTED } from './retry';

type ClientOptions = postgres.Options<Record<string, postgres.PostgresType>>;

/**
 * The database of one execution environment: a postgres.js client created on first use (not at cold start, so an
 * unreachable Secrets Manager cannot fail the init phase) from the current credentials, and replaced when they
 * change. When PostgreSQL rejects the login, as it does right after a rotation, the secret is fetched again and the
 * work runs once more on a new client before the failure counts. A client whose connection failed is never used
 * again: postgres.js 3.4 can leave such a client hanging on its next query (porsager/postgres#1130).
 */
export class Database {
  private client: { sql: Sql; credentials: Credentials } | undefined;
  private creating: Promise<Sql> | undefined;

  constructor(
    private readonly settings: Config['db'],
    private readonly credentials: CredentialSource,
    private readonly overrides: ClientOptions = {},
  ) {}

  /**
   * Runs `work` with the client; reconnects once after a broken connection and once after a rejected login. With
   * `timeoutMs`, gives up when that time has passed, dropping the client: whatever the socket does, the invocation
   * answers before Lambda's timeout, and the next attempt starts on a fresh connection.
   */
  async run<T>(work: (sql: Sql) => Promise<T>, timeoutMs?: number): Promise<T> {
    let reconnected = false;
    let renewedLogin = false;
    for (;;) {
      const sql = await this.sql();
      try {
        return await (timeoutMs === undefined ? work(sql) : this.withDeadline(sql, work(sql), timeoutMs));
      } catch (error) {
        const code = errorCode(error) ?? '';
        if (CONNECTION_LOST.has(code) || CONNECT_FAILED.has(code)) this.discard(sql);
        // Nothing of the transaction committed on a connection that broke (reset, terminated, frozen past its idle
        // timeout), so the work runs again at once on a new client.
        if (CONNECTION_LOST.has(code) && !reconnected) {
          reconnected = true;
          continue;
        }
        if (LOGIN_REJECTED.has(code) && !renewedLogin) {
          renewedLogin = true;
          this.replaceClient(await this.credentials.refresh());
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

  private withDeadline<T>(sql: Sql, work: Promise<T>, timeoutMs: number): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.discard(sql);
        reject(new OutOfTimeError());
      }, boundedTimeout(timeoutMs, 0));
    });
    work.catch(() => {}); // settled after the deadline, if ever: nobody is waiting for it any more
    return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
  }

  /** Drops `sql` if it is still the current client, closing it at once without waiting for its queries. */
  private discard(sql: Sql): void {
    if (this.client?.sql === sql) this.client = undefined;
    void sql.end({ timeout: 0 }).catch(() => {});
  }

  private replaceClient(credentials: Credentials): void {
    const old = this.client;
    this.client = { sql: createSql({ ...this.settings, ...credentials }, this.overrides), credentials };
    // Let the old client finish what it has in flight, then close it in the background.
    void old?.sql.end({ timeout: 5 }).catch(() => {});
  }
}

function sameCredentials(a: Credentials, b: Credentials): boolean {
  return a.host === b.host && a.port === b.port && a.database === b.database && a.user === b.user && a.password === b.password;
}
