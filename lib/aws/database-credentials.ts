import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import * as v from 'valibot';
import type { Config } from '../config';
import { SecretInvalidError, SecretUnavailableError } from '../errors';
import { type Credentials, type CredentialSource, environmentCredentials } from '../postgres/credentials';
import { ttlCache } from '../ttl-cache';

/**
 * The JSON that RDS and Secrets Manager rotation write. `username` and `password` are required; `host`, `port`
 * and `dbname` override DB_HOST, DB_PORT and DB_NAME when present. Other fields (engine, dbClusterIdentifier, ...)
 * are ignored. https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_secret_json_structure.html
 */
const SecretSchema = v.object({
  username: v.pipe(v.string(), v.nonEmpty()),
  password: v.string(),
  host: v.optional(v.pipe(v.string(), v.nonEmpty())),
  port: v.optional(
    v.pipe(
      v.union([v.number(), v.pipe(v.string(), v.regex(/^\d+$/), v.transform(Number))]),
      v.integer(),
      v.minValue(1),
      v.maxValue(65535),
    ),
  ),
  dbname: v.optional(v.pipe(v.string(), v.nonEmpty())),
});

/**
 * Credentials from a Secrets Manager secret, cached for `ttlSeconds` per execution environment. Nothing is fetched
 * at cold start: an unreachable Secrets Manager fails a batch as a transient error, never the init phase, so the
 * function cannot fall into a crash loop while AWS recovers. Concurrent callers share one request.
 */
function secretCredentials(
  db: Config['db'],
  secretArn: string,
  client: Pick<SecretsManagerClient, 'send'> = defaultClient(),
  now: () => number = Date.now,
): CredentialSource {
  const fetch = async (): Promise<Credentials> => {
    let secretString: string | undefined;
    try {
      const answer = await client.send(new GetSecretValueCommand({ SecretId: secretArn }));
      secretString = answer.SecretString;
    } catch (error) {
      throw new SecretUnavailableError(secretArn, error);
    }
    let json: unknown;
    try {
      json = JSON.parse(secretString ?? '');
    } catch {
      throw new SecretInvalidError(secretArn, 'it is not JSON');
    }
    const parsed = v.safeParse(SecretSchema, json);
    if (!parsed.success) {
      // Name the fields only: the issue's input could be the password.
      const fields = parsed.issues.map((i) => v.getDotPath(i) ?? '(secret)').join(', ');
      throw new SecretInvalidError(secretArn, `these fields are missing or malformed: ${fields}`);
    }
    const s = parsed.output;
    return {
      host: s.host ?? db.host,
      port: s.port ?? db.port,
      database: s.dbname ?? db.database,
      user: s.username,
      password: s.password,
    };
  };

  // A failed fetch is not cached: the next batch asks Secrets Manager again.
  const cache = ttlCache(fetch, db.secretTtlSeconds * 1000, now);
  return { get: async () => (await cache.get()).value, refresh: () => cache.refresh() };
}

/**
 * One SDK client per execution environment. Short timeouts and two attempts: a batch waits on it, and the
 * consumer's own retries (MAX_RETRIES) come on top.
 */
function defaultClient(): SecretsManagerClient {
  return new SecretsManagerClient({
    maxAttempts: 2,
    requestHandler: { connectionTimeout: 2_000, requestTimeout: 5_000 },
  });
}

/** The source the configuration asks for: the secret when DB_SECRET_ARN is set, the environment otherwise. */
export function credentialSource(db: Config['db']): CredentialSource {
  return db.secretArn ? secretCredentials(db, db.secretArn) : environmentCredentials(db);
}
