/**
 * The deploy guard rails of deploy/resources.js called directly, with the parameters the CLI would resolve (the
 * defaults of serverless.yml plus overrides): fast checks of spellings the real-CLI tests (test/e2e) do not try.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { INPUT_CAP_CEILING, loadConfig } from '../../lib/config';
import { serverlessParams } from '../helpers/doc-checks';

const root = join(__dirname, '..', '..');
const require = createRequire(__filename);
const resources = require(join(root, 'deploy', 'resources.js')) as {
  resources(context: unknown): Promise<Record<string, unknown>>;
};
const yml = readFileSync(join(root, 'serverless.yml'), 'utf8');
const defaults = Object.fromEntries(serverlessParams(yml));
/** provider.environment: each variable and the parameter it is set from. */
const environmentParams = [...yml.matchAll(/^ {4}([A-Z][A-Z0-9_]*): \$\{param:(\w+)\}/gm)].map(
  (m) => [m[1]!, m[2]!] as const,
);

type Resources = Record<string, { Properties?: Record<string, unknown> }>;

/** The resources `serverless package --stage <stage>` with `--param` overrides builds with deploy/resources.js. */
async function resourcesOf(stage: string, overrides: Record<string, string>): Promise<Resources> {
  const params: Record<string, string> = Object.fromEntries(
    Object.entries(defaults).map(([k, v]) => [k, v.replace('${sls:stage}', stage)]),
  );
  Object.assign(params, {
    mskClusterArn: 'arn:aws:kafka:us-east-1:123456789012:cluster/trace/0123abcd-4567',
    dbSecretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:trace-db-AbCdEf',
    subnetIds: 'subnet-0123abcd',
    securityGroupIds: 'sg-0123abcd',
    alarmEmail: 'oncall@example.com',
    alarms: 'true',
    ...overrides,
  });
  const environment = Object.fromEntries(environmentParams.map(([variable, name]) => [variable, params[name] ?? '']));
  const context = {
    options: { param: Object.keys(overrides).map((k) => `${k}=${overrides[k]}`) },
    resolveVariable: async (name: string) =>
      name === 'sls:stage'
        ? stage
        : name === 'self:provider.region'
          ? 'us-east-1'
          : params[name.replace(/^param:/, '')],
    resolveConfigurationProperty: async (path: string[]) =>
      path[0] === 'provider' ? environment : path[0] === 'params' ? { default: defaults } : undefined,
  };
  return resources.resources(context) as Promise<Resources>;
}

/** The parameter problems packaging would report: empty when it builds. */
async function problemsOf(stage: string, overrides: Record<string, string>): Promise<string> {
  return resourcesOf(stage, overrides).then(
    () => '',
    (error: Error) => error.message,
  );
}

describe('a production stage with an unverified database', () => {
  it('should accept the defaults (the check can pass)', async () => {
    expect(await problemsOf('prod', {})).toBe('');
  });

  it.each(['require', 'Require', 'DISABLE', ' Disable '])(
    'should refuse dbSsl=%j, however it is spelled (the functions read it case-insensitively)',
    async (dbSsl) => {
      expect(await problemsOf('prod', { dbSsl })).toMatch(/dbSsl=.* on the production stage "prod"/);
      expect(await problemsOf('prod', { dbSsl, allowInsecureDb: 'true' })).toBe('');
    },
  );
});

describe("the mapping's system logs and poller group (esmSystemLogLevel, pollerGroupName)", () => {
  const mappingOf = async (stage: string, overrides: Record<string, string>) =>
    (await resourcesOf(stage, overrides)).ConsumerEventSourceMapping!.Properties!;
  const selfManaged = {
    source: 'self-managed',
    bootstrapServers: 'kafka-1.internal:9096',
    brokerSubnetIds: 'subnet-0ddd4444',
    brokerSecurityGroupId: 'sg-0fff6666',
  };
  const GROUP_CHARACTERS = 'abcXYZ019-_';

  it('should put any valid level and group on the MSK or self-managed mapping, and neither when empty', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('DEBUG', 'INFO', 'WARN', ''),
        fc.oneof(
          fc.constant(''),
          fc.string({ unit: fc.constantFrom(...GROUP_CHARACTERS), minLength: 1, maxLength: 128 }),
        ),
        fc.constantFrom({}, selfManaged),
        fc.constantFrom('dev', 'prod'),
        async (esmSystemLogLevel, pollerGroupName, source, stage) => {
          const mapping = await mappingOf(stage, { ...source, esmSystemLogLevel, pollerGroupName });
          expect(mapping.LoggingConfig).toEqual(esmSystemLogLevel ? { SystemLogLevel: esmSystemLogLevel } : undefined);
          expect(mapping.ProvisionedPollerConfig).toEqual({
            MinimumPollers: expect.any(Number),
            MaximumPollers: expect.any(Number),
            ...(pollerGroupName ? { PollerGroupName: pollerGroupName } : {}),
          });
        },
      ),
      { numRuns: 40 },
    );
  });

  it('should refuse any other level, lower case and ERROR included, naming the valid ones', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.constantFrom('info', 'Debug', 'warn', 'ERROR', 'WARNING', 'OFF', 'TRACE', 'INFO,WARN'),
          fc.string({ minLength: 1, maxLength: 8 }).filter((s) => !['DEBUG', 'INFO', 'WARN'].includes(s.trim())),
        ),
        async (esmSystemLogLevel) => {
          fc.pre(esmSystemLogLevel.trim() !== '');
          expect(await problemsOf('prod', { esmSystemLogLevel })).toContain(
            'esmSystemLogLevel must be DEBUG, INFO or WARN (upper case; WARN, the least detail, includes the ' +
              'errors), or empty for no system logs',
          );
        },
      ),
      { numRuns: 30 },
    );
  });

  it('should refuse a group name longer than 128 or with a character CloudFormation does not allow', async () => {
    const tooLong = fc.string({ unit: fc.constantFrom(...GROUP_CHARACTERS), minLength: 129, maxLength: 200 });
    const badCharacter = fc
      .tuple(
        fc.string({ unit: fc.constantFrom(...GROUP_CHARACTERS), maxLength: 20 }),
        fc.constantFrom('.', 'x y', '/', ':', '*', 'é', '+', '='),
        fc.string({ unit: fc.constantFrom(...GROUP_CHARACTERS), maxLength: 20 }),
      )
      .map((parts) => parts.join(''));
    await fc.assert(
      fc.asyncProperty(fc.oneof(tooLong, badCharacter), async (pollerGroupName) => {
        expect(await problemsOf('prod', { pollerGroupName })).toContain(
          `pollerGroupName must be up to 128 letters, digits, - and _ (got "${pollerGroupName.trim()}")`,
        );
      }),
      { numRuns: 30 },
    );
  });
});

describe('the input caps maxRecordBytes and maxTextChars', () => {
  const variables = { maxRecordBytes: 'MAX_RECORD_BYTES', maxTextChars: 'MAX_TEXT_CHARS' } as const;
  const accepted = (variable: string, value: string) => {
    try {
      loadConfig({ [variable]: value });
      return true;
    } catch {
      return false;
    }
  };
  const values = fc.oneof(
    fc.integer({ min: 1000, max: 1100 }).map(String),
    fc.integer({ min: INPUT_CAP_CEILING - 50, max: INPUT_CAP_CEILING + 50 }).map(String),
    fc.integer({ min: -5, max: 10 * INPUT_CAP_CEILING }).map(String),
    fc.constantFrom('1e6', '0x100000', '2048.0', '1 MiB', '-2048', ' 4096 ', 'big'),
  );

  it('should accept in a deploy exactly the values the functions accept, and name the parameter once', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('maxRecordBytes', 'maxTextChars' as const), values, async (name, value) => {
        const problems = await problemsOf('dev', { [name]: value });
        expect(problems === '', `${name}=${value}: ${problems}`).toBe(accepted(variables[name], value));
        if (problems !== '') {
          expect(problems).toContain(`${name} must be whole `);
          expect(problems).toContain(`1024-${INPUT_CAP_CEILING}`);
          expect(problems.split(name).length - 1).toBe(1); // said once, not again in the functions' words
        }
      }),
      { numRuns: 60 },
    );
  });

  it("should set the functions' variables from the parameters", () => {
    expect(environmentParams).toEqual(
      expect.arrayContaining([
        ['MAX_RECORD_BYTES', 'maxRecordBytes'],
        ['MAX_TEXT_CHARS', 'maxTextChars'],
      ]),
    );
    expect(
      loadConfig({ MAX_RECORD_BYTES: defaults.maxRecordBytes, MAX_TEXT_CHARS: defaults.maxTextChars }).limits,
    ).toEqual(loadConfig({}).limits);
  });
});
