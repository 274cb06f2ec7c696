/**
 * Pre-flight check before a deployment or the cutover (npm run preflight), with the settings the functions will use
 * (DB_* and DB_SECRET_ARN, as for npm run db:apply): runs the health function's readiness check (the credentials
 * resolve, the database answers, the schema is applied) and, when KAFKA_SECRET_ARN is set, reads that secret and
 * checks it holds what KAFKA_AUTH (sasl, the default, or mtls) needs; KAFKA_ROOT_CA_SECRET_ARN, when set, must hold
 * a certificate. Exits 1 with the reasons otherwise.
 */
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { loadConfig, SCRIPT_CONFIG_FIX } from '../lib/config';
import { credentialSource } from '../lib/aws/database-credentials';
import { Database } from '../lib/postgres/database';
import { checkReadiness, describeFailure } from '../lib/health/readiness';
import { kafkaSecretProblems, type KafkaSecretPurpose } from './kafka-secret-check';

/** What each authentication (this script's words and the deploy parameters' values) needs the secret to hold. */
const KAFKA_AUTH_PURPOSE: Record<string, KafkaSecretPurpose> = {
  '': 'sasl',
  sasl: 'sasl',
  'sasl-scram': 'sasl',
  'sasl-scram-512': 'sasl',
  'sasl-scram-256': 'sasl',
  'sasl-plain': 'sasl',
  mtls: 'mtls',
};

async function readSecret(client: SecretsManagerClient, arn: string): Promise<string> {
  const answer = await client.send(new GetSecretValueCommand({ SecretId: arn }));
  return answer.SecretString ?? '';
}

async function main(): Promise<boolean> {
  const config = loadConfig(process.env, SCRIPT_CONFIG_FIX);
  const credentials = credentialSource(config.db);
  const database = new Database(config.db, credentials, { connect_timeout: 5 });
  let ok = true;
  try {
    const readiness = await checkReadiness({
      database,
      schema: config.db.schema,
      timeoutMs: 5000,
      resolveCredentials: () => credentials.get(),
    });
    for (const check of readiness.checks)
      console.log(`${check.ok ? 'ok  ' : 'FAIL'} ${check.name}${check.error ? `: ${check.error}` : ''}`);
    ok = readiness.status === 'ready';
  } finally {
    await database.end();
  }
  // Deployment settings, not the functions' configuration: read here, by the one script that uses them.
  // KAFKA_AUTH takes the deploy parameter's value as well (mskAuth, selfManagedAuth); a typo must not check as SASL.
  const auth = (process.env.KAFKA_AUTH ?? '').trim();
  const purpose = KAFKA_AUTH_PURPOSE[auth];
  if (!purpose) {
    console.log(
      `FAIL kafka secret: KAFKA_AUTH must be one of ${Object.keys(KAFKA_AUTH_PURPOSE)
        .filter(Boolean)
        .join(', ' + '')} (got "${auth}")`,
    );
    return false;
  }
  const kafkaSecrets = [
    { arn: process.env.KAFKA_SECRET_ARN, purpose },
    { arn: process.env.KAFKA_ROOT_CA_SECRET_ARN, purpose: 'root-ca' as KafkaSecretPurpose },
  ].filter((s): s is { arn: string; purpose: KafkaSecretPurpose } => Boolean(s.arn));
  const client = new SecretsManagerClient({});
  for (const { arn, purpose } of kafkaSecrets) {
    try {
      const problems = kafkaSecretProblems(await readSecret(client, arn), purpose);
      console.log(
        `${problems.length === 0 ? 'ok  ' : 'FAIL'} kafka ${purpose} secret${
          problems.length ? `: ${arn} ` + `${problems.join('; ')}` : ''
        }`,
      );
      ok &&= problems.length === 0;
    } catch (error) {
      console.log(`FAIL kafka ${purpose} secret: ${arn} cannot be read: ${describeFailure(error)}`);
      ok = false;
    }
  }
  return ok;
}

main().then(
  (ok) => process.exit(ok ? 0 : 1),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  },
);
