import type { Config } from '../config';

/** Where and as whom to connect. The password never leaves this object except into the database client. */
export interface Credentials {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string;
}

export interface CredentialSource {
  /** The current credentials, from cache while they are fresh. */
  get(): Promise<Credentials>;
  /** Fetches anew, e.g. after the database rejected the password because the secret was rotated. */
  refresh(): Promise<Credentials>;
}

/** Credentials from DB_* alone: nothing to fetch, nothing to refresh. */
export function environmentCredentials(db: Config['db']): CredentialSource {
  const credentials: Credentials = {
    host: db.host,
    port: db.port,
    database: db.database,
    user: db.user,
    password: db.password,
  };
  return { get: async () => credentials, refresh: async () => credentials };
}
