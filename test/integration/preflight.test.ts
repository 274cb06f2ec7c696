/**
 * `npm run preflight` as a user runs it before a deployment or the cutover: the real script, the real PostgreSQL,
 * the real AWS SDK against a loopback Secrets Manager.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeSecretsManager } from '../helpers/fake-secrets-manager';
import { runCommand } from '../helpers/cli';
import { testDatabase, type TestDatabase } from '../helpers/db';

const ACCOUNT = '123456789012';
const DB_SECRET = `arn:aws:secretsmanager:us-east-1:${ACCOUNT}:secret:trace-db-AbCdEf`;
const KAFKA_OK = `arn:aws:secretsmanager:us-east-1:${ACCOUNT}:secret:kafka-ok-AbCdEf`;
const KAFKA_BAD = `arn:aws:secretsmanager:us-east-1:${ACCOUNT}:secret:kafka-bad-AbCdEf`;
const KAFKA_MISSING = `arn:aws:secretsmanager:us-east-1:${ACCOUNT}:secret:kafka-missing-AbCdEf`;

let db: TestDatabase;
const secrets = new FakeSecretsManager();
beforeAll(async () => {
  db = await testDatabase();
  await secrets.start();
  secrets.setSecret(DB_SECRET, {
    username: db.env.DB_USER,
    password: db.env.DB_PASSWORD,
    host: db.env.DB_HOST,
    port: Number(db.env.DB_PORT),
    dbname: db.env.DB_NAME,
  });
  secrets.setSecret(KAFKA_OK, { username: 'trace', password: 'scram-password' });
  secrets.setSecret(KAFKA_BAD, { username: 'trace' });
});
afterAll(async () => {
  await secrets.stop();
  await db.close();
});

const schemas = { applied: () => db.env.DB_SCHEMA!, missing: () => `${db.env.DB_SCHEMA}_absent` };
const kafka = { none: undefined, readable: KAFKA_OK, incomplete: KAFKA_BAD, unreadable: KAFKA_MISSING };
const cases = Object.keys(schemas).flatMap((schema) =>
  Object.keys(kafka).map((k) => [schema, k] as [keyof typeof schemas, keyof typeof kafka]),
);

describe('npm run preflight', () => {
  it.each(cases)('should pass only when everything is ready (schema %s, Kafka secret %s)', async (schema, k) => {
    const env: Record<string, string> = {
      ...secrets.env(),
      DB_HOST: db.env.DB_HOST!,
      DB_PORT: db.env.DB_PORT!,
      DB_NAME: db.env.DB_NAME!,
      DB_SSL: 'disable',
      DB_SECRET_ARN: DB_SECRET,
      DB_SCHEMA: schemas[schema](),
      DB_USER: '',
      DB_PASSWORD: '',
      ...(kafka[k] ? { KAFKA_SECRET_ARN: kafka[k]! } : {}),
    };
    const run = await runCommand('npx', ['tsx', 'scripts/preflight.ts'], env);
    const ready = schema === 'applied' && (k === 'none' || k === 'readable');
    expect(run.code, run.stdout + run.stderr).toBe(ready ? 0 : 1);
    expect(run.stdout).toContain('ok   credentials');
    expect(run.stdout).toContain(schema === 'applied' ? 'ok   schema' : 'FAIL schema');
    if (k === 'readable') expect(run.stdout).toContain('ok   kafka sasl secret');
    if (k === 'incomplete') expect(run.stdout).toContain(`FAIL kafka sasl secret: ${KAFKA_BAD} has no "password"`);
    if (k === 'unreadable') expect(run.stdout).toContain(`FAIL kafka sasl secret: ${KAFKA_MISSING} cannot be read`);
    expect(run.stdout + run.stderr).not.toContain('scram-password');
    expect(run.stdout + run.stderr).not.toContain(db.env.DB_PASSWORD || '\u0000');
  });

  it.each([
    ['mTLS', 1],
    ['scram', 1],
    ['sasl-scram-256', 0],
    ['mtls', 1],
  ] as const)(
    'should take KAFKA_AUTH=%s as a deploy parameter value or refuse it, never check it as something else',
    async (auth, code) => {
      const env: Record<string, string> = {
        ...secrets.env(),
        DB_HOST: db.env.DB_HOST!,
        DB_PORT: db.env.DB_PORT!,
        DB_NAME: db.env.DB_NAME!,
        DB_SSL: 'disable',
        DB_SECRET_ARN: DB_SECRET,
        DB_SCHEMA: db.env.DB_SCHEMA!,
        DB_USER: '',
        DB_PASSWORD: '',
        KAFKA_SECRET_ARN: KAFKA_OK,
        KAFKA_AUTH: auth,
      };
      const run = await runCommand('npx', ['tsx', 'scripts/preflight.ts'], env);
      expect(run.code, run.stdout + run.stderr).toBe(code);
      if (auth === 'sasl-scram-256') expect(run.stdout).toContain('ok   kafka sasl secret');
      else if (auth === 'mtls')
        expect(run.stdout).toContain(`FAIL kafka mtls secret: ${KAFKA_OK} has no "certificate" or "privateKey"`);
      else
        expect(run.stdout).toContain(
          `FAIL kafka secret: KAFKA_AUTH must be one of sasl, sasl-scram, sasl-scram-512, sasl-scram-256, ` +
            `sasl-plain, mtls (got "${auth}")`,
        );
    },
  );
});
