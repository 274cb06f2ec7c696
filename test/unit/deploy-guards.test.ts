/**
 * The deploy guard rails of deploy/resources.js, reported as the CLI reports them (through
 * deploy/parameter-check-plugin.js, for a given command), with the parameters the CLI would resolve: the defaults of
 * serverless.yml plus overrides. Fast checks over generated combinations the real-CLI tests (test/e2e) cannot afford.
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
const ParameterChecks = require(join(root, 'deploy', 'parameter-check-plugin.js')) as new (
  serverless: unknown,
) => {
  hooks: { initialize(): void };
};
const yml = readFileSync(join(root, 'serverless.yml'), 'utf8');
const defaults = Object.fromEntries(serverlessParams(yml));
const declared = Object.keys(defaults);
/** provider.environment: each variable and the parameter it is set from. */
const environmentParams = [...yml.matchAll(/^ {4}([A-Z][A-Z0-9_]*): \$\{param:(\w+)\}/gm)].map(
  (m) => [m[1]!, m[2]!] as const,
);

const DB_SECRET = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:trace-db-AbCdEf';
const HEALTH_SECRET = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:trace-health-db-AbCdEf';
/** What a complete deployment passes; the tests override from here. */
const complete = {
  mskClusterArn: 'arn:aws:kafka:us-east-1:123456789012:cluster/trace/0123abcd-4567',
  dbSecretArn: DB_SECRET,
  healthDbSecretArn: HEALTH_SECRET,
  subnetIds: 'subnet-0123abcd',
  securityGroupIds: 'sg-0123abcd',
  alarmEmail: 'oncall@example.com',
  alarms: 'true',
};

interface Command {
  words: string[];
  function?: string;
}
const PACKAGE: Command = { words: ['package'] };

type Resources = Record<string, { Properties?: Record<string, unknown> }>;
let built: unknown;
/** The resources of the last problemsOf that found no problem. */
let resourcesBuilt: Resources | undefined;

/**
 * The problems the CLI would report for `command --stage <stage>` with `--param` overrides (undefined: left out),
 * one per line, or [] when it would go on.
 */
async function problemsOf(
  stage: string,
  overrides: Record<string, string | undefined>,
  command: Command = PACKAGE,
): Promise<string[]> {
  const given = Object.fromEntries(
    Object.entries({ ...complete, ...overrides }).filter((e): e is [string, string] => e[1] !== undefined),
  );
  const params: Record<string, string> = {
    ...Object.fromEntries(Object.entries(defaults).map(([k, v]) => [k, v.replace('${sls:stage}', stage)])),
    ...given,
  };
  const environment = Object.fromEntries(environmentParams.map(([variable, name]) => [variable, params[name] ?? '']));
  // The CLI's Serverless instance as the plugin sees it: its configuration check comes right after resolving.
  let schemaChecked = false;
  const service = {
    validate: async () => {
      schemaChecked = true;
    },
  };
  const plugin = new ParameterChecks({ processedInput: { commands: command.words }, classes: { Error }, service });
  built = await resources.resources({
    options: {
      param: Object.entries(given).map(([k, v]) => `${k}=${v}`),
      ...(command.function ? { function: command.function } : {}),
    },
    resolveVariable: async (name: string) =>
      name === 'sls:stage'
        ? stage
        : name === 'self:provider.region'
          ? 'us-east-1'
          : params[name.replace(/^param:/, '')],
    resolveConfigurationProperty: async (path: string[]) =>
      path[0] === 'provider' ? environment : path[0] === 'params' ? { default: defaults } : undefined,
  });
  try {
    await service.validate();
    plugin.hooks.initialize(); // reported once: nothing more here
    expect(schemaChecked).toBe(true);
    resourcesBuilt = built as Resources;
    return [];
  } catch (error) {
    expect(schemaChecked).toBe(false); // the parameters' problems come before the CLI's own schema errors
    const message = (error as Error).message;
    expect(message).toMatch(/^Invalid deploy parameters:\n {2}- /); // the problems come first
    return [...message.matchAll(/^ {2}- (.*)$/gm)].map((m) => m[1]!);
  }
}

/** The parameter problems packaging would report, one text: empty when it builds. */
const problemTextOf = async (stage: string, overrides: Record<string, string>) =>
  (await problemsOf(stage, overrides)).join('\n');

/** The resources `serverless package --stage <stage>` with `--param` overrides builds with deploy/resources.js. */
async function resourcesOf(stage: string, overrides: Record<string, string>): Promise<Resources> {
  resourcesBuilt = undefined;
  const problems = await problemsOf(stage, overrides);
  if (!resourcesBuilt) throw new Error(`not packaged: ${problems.join('; ')}`);
  return resourcesBuilt;
}

describe('a deployment, whatever its stage is called', () => {
  it('should accept a complete deployment (the checks can pass)', async () => {
    expect(await problemsOf('prod', {})).toEqual([]);
    expect(await problemsOf('live', {})).toEqual([]);
  });

  const stages = fc.oneof(
    fc.constantFrom('prod', 'production', 'prod-eu', 'live', 'prd', 'prodeu', 'dev', 'staging', 'Prod', 'test'),
    fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9-]{0,15}$/),
  );
  const commands = fc.constantFrom<Command>(
    PACKAGE,
    { words: ['deploy'] },
    { words: ['deploy', 'function'], function: 'health' },
    { words: ['invoke', 'local'], function: 'consumer' },
  );
  const flag = fc.constantFrom(undefined, 'true', 'false');

  it(
    'should refuse an unverified database and a health function holding the read-write secret on every stage ' +
      'and for every command that deploys, each unless accepted by name; invoke local needs no flags',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          stages,
          fc.constantFrom(
            'verify-full',
            'VERIFY-FULL',
            ' verify-full ',
            'require',
            'Require',
            'disable',
            ' Disable ',
            '',
          ),
          fc.constantFrom('own', 'left out', 'same as dbSecretArn'),
          flag,
          flag,
          commands,
          async (stage, dbSsl, healthSecret, allowInsecureDb, allowSharedHealthSecret, command) => {
            const problems = await problemsOf(
              stage,
              {
                dbSsl,
                healthDbSecretArn:
                  healthSecret === 'own' ? HEALTH_SECRET : healthSecret === 'left out' ? undefined : DB_SECRET,
                allowInsecureDb,
                allowSharedHealthSecret,
              },
              command,
            );
            const deploys = command.words.join(' ') !== 'invoke local';
            const expected = {
              insecure: deploys && dbSsl.trim().toLowerCase() !== 'verify-full' && allowInsecureDb !== 'true',
              shared: deploys && healthSecret !== 'own' && allowSharedHealthSecret !== 'true',
              noEffect: deploys && healthSecret === 'own' && allowSharedHealthSecret === 'true',
            };
            expect({
              insecure: problems.some((p) => /^dbSsl=.*: the functions would not verify/.test(p)),
              shared: problems.some((p) => /^healthDbSecretArn is (not set|dbSecretArn)/.test(p)),
              noEffect: problems.some((p) => p.startsWith('allowSharedHealthSecret=true takes no effect')),
            }).toEqual(expected);
            expect(problems).toHaveLength(Object.values(expected).filter(Boolean).length);
          },
        ),
        { numRuns: process.env.LONG_TESTS ? 600 : 120 },
      );
    },
  );

  it.each(['yes', 'True', '1'])('should take only "true" or "false" for the allow flags (got %j)', async (value) => {
    const problems = await problemsOf('dev', { allowInsecureDb: value, allowSharedHealthSecret: value });
    expect(problems).toEqual([
      'allowInsecureDb must be "true" or "false"',
      'allowSharedHealthSecret must be "true" or "false"',
    ]);
  });

  it('should name neither health secret problem when no secret ARN is given, only the missing ones', async () => {
    const problems = await problemsOf('dev', { dbSecretArn: undefined, healthDbSecretArn: undefined });
    expect(problems.filter((p) => p.startsWith('dbSecretArn '))).toHaveLength(1);
    const health = problems.filter((p) => p.startsWith('healthDbSecretArn'));
    // Left out, it is said to be left out: not that it must differ from dbSecretArn.
    expect(health).toEqual([expect.stringMatching(/^healthDbSecretArn is not set/)]);
  });
});

describe('a misspelled parameter', () => {
  /** One edit of a declared name: a letter dropped, doubled, changed or of the other case. */
  const typos = fc
    .tuple(fc.constantFrom(...declared), fc.nat(), fc.constantFrom('drop', 'double', 'change', 'case'))
    .map(([name, at, edit]) => {
      const i = at % name.length;
      const c = name[i]!;
      const replaced = {
        drop: '',
        double: c + c,
        change: c === 'x' ? 'q' : 'x',
        case: c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase(),
      }[edit];
      return { name, typo: name.slice(0, i) + replaced + name.slice(i + 1) };
    })
    .filter(({ typo }) => !declared.includes(typo));

  it('should be refused with the closest names first, at most three of them, never the whole list', async () => {
    await fc.assert(
      fc.asyncProperty(typos, async ({ name, typo }) => {
        const problems = await problemsOf('dev', { [typo]: 'x' });
        expect(problems).toHaveLength(1);
        const [problem] = problems;
        expect(problem).toMatch(new RegExp(`^${typo}: not a parameter of this service; did you mean "`));
        const suggested = [...problem!.matchAll(/"(\w+)"/g)].map((m) => m[1]);
        expect(suggested).toContain(name);
        expect(suggested.length).toBeLessThanOrEqual(3);
      }),
      { numRuns: process.env.LONG_TESTS ? 500 : 100 },
    );
  });

  it('should point at the table, not list every name, when nothing is close', async () => {
    expect(await problemsOf('dev', { zzzzzzzz: '1', consumergroup: 'x' })).toEqual([
      'zzzzzzzz: not a parameter of this service; see the table in docs/deploy.md, "Parameters"',
      'consumergroup: not a parameter of this service; did you mean "consumerGroup"?',
    ]);
  });
});

describe('every problem of a deployment', () => {
  it('should start with the parameter it is about', async () => {
    const broken = {
      alarms: 'yes',
      batchSize: '0',
      timeout: '5',
      topic: 'has spaces',
      dbSsl: 'require',
      logLevel: 'verbose',
      dbPort: 'abc',
      healthRoute: 'private',
      mskAuth: 'kerberos',
      consumerReservedConcurrency: '0',
      failureDestination: 'arn:aws:sqs:us-east-1:123456789012:q',
      healthDbSecretArn: undefined,
      subnetIds: 'subnet-x',
      maxRetryAttempts: '3',
      alarmTopicArn: 'arn:aws:sns:eu-west-1:123456789012:oncall',
      consumergroup: 'x', // not a parameter: named as given
    };
    await fc.assert(
      fc.asyncProperty(fc.subarray(Object.keys(broken), { minLength: 1 }), async (keys) => {
        const overrides = Object.fromEntries(keys.map((k) => [k, broken[k as keyof typeof broken]]));
        const problems = await problemsOf('prod', overrides);
        expect(problems.length).toBeGreaterThanOrEqual(1);
        for (const problem of problems) {
          const name = /^[A-Za-z]+/.exec(problem)?.[0];
          expect([...declared, 'consumergroup'], problem).toContain(name);
        }
      }),
      { numRuns: process.env.LONG_TESTS ? 200 : 40 },
    );
  });
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
          expect(await problemTextOf('prod', { esmSystemLogLevel })).toContain(
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
        expect(await problemTextOf('prod', { pollerGroupName })).toContain(
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
        const problems = await problemTextOf('dev', { [name]: value });
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

describe('the TLS options dbChannelBinding and dbSslNegotiation', () => {
  it('should pass each to the functions and refuse what the functions would refuse, naming the variable', async () => {
    expect(environmentParams).toEqual(
      expect.arrayContaining([
        ['DB_CHANNEL_BINDING', 'dbChannelBinding'],
        ['DB_SSL_NEGOTIATION', 'dbSslNegotiation'],
      ]),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('prefer', 'require', 'disable', 'Require', 'bogus'),
        fc.constantFrom('postgres', 'direct', 'DIRECT', 'bogus'),
        fc.constantFrom('verify-full', 'disable'),
        async (dbChannelBinding, dbSslNegotiation, dbSsl) => {
          const problems = (
            await problemsOf('dev', { dbChannelBinding, dbSslNegotiation, dbSsl, allowInsecureDb: 'true' })
          ).join('\n');
          const tls = dbSsl !== 'disable';
          const bindingOk = ['prefer', 'require', 'disable'].includes(dbChannelBinding.toLowerCase());
          const negotiationOk = ['postgres', 'direct'].includes(dbSslNegotiation.toLowerCase());
          expect(problems.includes('DB_CHANNEL_BINDING'), problems).toBe(
            !bindingOk || (!tls && dbChannelBinding.toLowerCase() === 'require' && negotiationOk),
          );
          if (!negotiationOk || (!tls && dbSslNegotiation.toLowerCase() === 'direct' && bindingOk))
            expect(problems).toContain('DB_SSL_NEGOTIATION');
        },
      ),
      { numRuns: 40 },
    );
  });
});
