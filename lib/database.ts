import type postgres from 'postgres';
import type { Config } from './config';
import type { CredentialSource, Credentials } from './credentials';
import { createSql, type Sql } from './db';
import { errorCode } from './retry';

type ClientOptions = postgres.Options<Record<string, postgres.PostgresType>>;

/** SQLSTATEs with which PostgreSQL rejects a login: wrong password, unknown or disabled user. */
const LOGIN_REJECTED = new Set(['28P01', '28000']);

/**
 * The database of one execution environment: a postgres.js client created on first use (not at cold start, so an
 * unreachable Secrets Manager cannot fail the init phase) from the current credentials, and replaced when they
 * change. When PostgreSQL rejects the login, as it does right after a rotation, the secret is fetched again and the
 * work runs once more on a new client before the failure counts.
 */
export class Database {
  private client: { sql: Sql; credentials: Credentials } | undefined;
  private creating: Promise<Sql> | undefined;

  constructor(
    private readonly settings: Config['db'],
    private readonly credentials: CredentialSource,
    private readonly overrides: ClientOptions = {},
  ) {}

  /** Runs `work` with the client, renewing credentials and client once if the login is rejected. */
  async run<T>(work: (sql: Sql) => Promise<T>): Promise<T> {
    try {
      return await work(await this.sql());
    } catch (error) {
      if (!LOGIN_REJECTED.has(errorCode(error) ?? '')) throw error;
      const fresh = await this.credentials.refresh();
      await this.replaceClient(fresh);
      return work(await this.sql());
    }
  }

  /** The client for the current credentials, created if there is none yet or the credentials changed. */
  async sql(): Promise<Sql> {
    this.creating ??= (async () => {
      const credentials = await this.credentials.get();
      if (!this.client || !sameCredentials(this.client.credentials, credentials)) await this.replaceClient(credentials);
      return this.client!.sql;
    })().finally(() => (this.creating = undefined));
    return this.creating;
  }

  async end(): Promise<void> {
    const old = this.client;
    this.client = undefined;
    await old?.sql.end({ timeout: 5 });
  }

  private async replaceClient(credentials: Credentials): Promise<void> {
    const old = this.client;
    this.client = { sql: createSql({ ...this.settings, ...credentials }, this.overrides), credentials };
    // Let the old client finish what it has in flight, then close it in the background.
    void old?.sql.end({ timeout: 5 }).catch(() => {});
  }
}

function sameCredentials(a: Credentials, b: Credentials): boolean {
  return a.host === b.host && a.port === b.port && a.database === b.database && a.user === b.user && a.password === b.password;
}
