/**
 * Every `npx serverless deploy` command in docs/deploy.md, packaged offline by the real CLI, and each template checked
 * against the CloudFormation resource specification, the IAM Service Authorization Reference and the permissions AWS
 * documents for the mapping. Each variant is packaged once (about 6 s each) and shared by the assertions.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { batchMetrics, SERVICE } from '../../lib/aws/emf-metrics';
import type { RecordOutcome } from '../../lib/batch/record-outcomes';
import {
  alarmProblems,
  iamProblems,
  mappingRoleProblems,
  metricProblems,
  type DeploymentFacts,
  type EmittedMetrics,
} from '../helpers/aws-rules';
import { specProblems, type Template } from '../helpers/cfn-spec';
import { projectRoot, runCommand, runServerless } from '../helpers/cli';

interface Variant {
  title: string;
  stage: string;
  params: Record<string, string>;
}

/** The deploy commands of a Markdown page: `--stage` and every `--param="k=v"`, continuation lines joined. */
function documentedVariants(file: string): Variant[] {
  const text = readFileSync(join(projectRoot, file), 'utf8');
  const commands = [...text.matchAll(/^npx serverless deploy ((?:[^\n]*\\\n)*[^\n]*)/gm)].map((m) =>
    m[1]!.replace(/\\\n/g, ' '),
  );
  return commands.map((command) => {
    const stage = /--stage (\S+)/.exec(command)?.[1] ?? 'dev';
    const params = Object.fromEntries([...command.matchAll(/--param="([^=]+)=([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
    const title =
      `${stage}: ${params.source}/${params.mskAuth ?? params.selfManagedAuth ?? 'iam'}` +
      `${params.failureDestinationType ? ` -> ${params.failureDestinationType}` : ''}${
        params.mapping ? ` ` + `mapping=${params.mapping}` : ''
      }` +
      `${params.consumerGroup ? ` group=${params.consumerGroup}` : ''}${
        params.healthRoute ? ` ` + `health=${params.healthRoute}` : ''
      }` +
      `${params.esmSystemLogLevel ? ` logs=${params.esmSystemLogLevel}` : ''}${
        params.pollerGroupName ? ` pollers=${params.pollerGroupName}` : ''
      }`;
    return { title: file === 'docs/deploy.md' ? title : `${file} ${title}`, stage, params };
  });
}

async function packageTemplate(stage: string, params: Record<string, string>, extraArgs: string[] = []) {
  const dir = mkdtempSync(join(tmpdir(), 'trace-package-'));
  const args = [
    'package',
    '--stage',
    stage,
    '--package',
    dir,
    ...extraArgs,
    ...Object.entries(params).map(([k, v]) => `--param=${k}=${v}`),
  ];
  const run = await runServerless(args, { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', AWS_PROFILE: '' });
  if (run.code !== 0) return { run, template: undefined };
  return {
    run,
    template: JSON.parse(readFileSync(join(dir, 'cloudformation-template-update-stack.json'), 'utf8')) as Template,
  };
}

const facts = (params: Record<string, string>): DeploymentFacts => ({
  secretKmsKeyArns: (params.kmsKeyArn ?? '').split(',').filter(Boolean),
  destinationKmsKeyArn: params.failureDestinationKmsKeyArn || undefined,
});

/** What the consumer writes for a batch of the deployment's topic, from lib/aws/emf-metrics.ts itself. */
function emitted(params: Record<string, string>): EmittedMetrics {
  const record = {
    topic: params.topic ?? 'trace-survey-processed',
    partition: 0,
    offset: 1,
    timestamp: 1,
    key: null,
    value: null,
    headers: [],
  };
  const outcome: RecordOutcome = { record, state: 'stored', traceId: 't' };
  const [doc] = batchMetrics([outcome], {
    namespace: params.metricsNamespace ?? 'TraceConsumer',
    service: SERVICE,
    durationMs: 1,
    now: 2,
  });
  const [directive] = doc!._aws.CloudWatchMetrics;
  return {
    namespace: directive!.Namespace,
    dimensions: Object.fromEntries(directive!.Dimensions[0]!.map((d) => [d, String(doc![d])])),
    names: directive!.Metrics.map((m) => m.Name),
  };
}

async function allProblems(template: Template, params: Record<string, string>) {
  return [
    ...specProblems(template),
    ...(await iamProblems(template)),
    ...mappingRoleProblems(template, facts(params)),
    ...alarmProblems(template),
    ...metricProblems(template, emitted(params)),
  ];
}

const variants = [...documentedVariants('docs/deploy.md'), ...documentedVariants('README.md')];
const templates = new Map<string, Template>();
const failures = new Map<string, string>();
const outputs = new Map<string, string>();

beforeAll(async () => {
  for (const v of variants) {
    const { run, template } = await packageTemplate(v.stage, v.params);
    outputs.set(v.title, run.stdout + run.stderr);
    if (template) templates.set(v.title, template);
    else failures.set(v.title, run.stdout + run.stderr);
  }
}, 900_000);

const get = (title: string) => {
  const t = templates.get(title);
  if (!t) throw new Error(`not packaged: ${title}\n${failures.get(title)}`);
  return t;
};
const byTitle = (pattern: RegExp) => variants.find((v) => pattern.test(v.title))!;
const resourcesOf = (t: Template, type: string) => Object.entries(t.Resources).filter(([, r]) => r.Type === type);

describe('every documented deploy command (docs/deploy.md, README.md)', () => {
  it('should document every authentication option, destination and the cutover steps', () => {
    const titles = variants.map((v) => v.title).join('\n');
    for (const auth of [
      'msk/iam',
      'msk/sasl-scram',
      'msk/mtls',
      'self-managed/sasl-scram-512',
      'self-managed/sasl-scram-256',
      'self-managed/sasl-plain',
      'self-managed/mtls',
    ]) {
      expect(titles).toContain(auth);
    }
    for (const destination of ['-> sqs', '-> sns', '-> s3', '-> kafka', 'mapping=removed', 'group=trace-consumer'])
      expect(titles).toContain(destination);
    expect(variants.some((v) => v.params.kafkaRootCaSecretArn)).toBe(true);
  });

  it.each(variants.map((v) => [v.title, v] as const))('should package %s and pass the AWS checks', async (title, v) => {
    expect(failures.get(title) ?? '').toBe('');
    expect(await allProblems(get(title), v.params)).toEqual([]);
  });
});

describe('what the documented templates contain', () => {
  it('should give every mapping provisioned pollers, partial batch responses and its own metrics', () => {
    for (const t of templates.values()) {
      for (const [, esm] of resourcesOf(t, 'AWS::Lambda::EventSourceMapping')) {
        expect(esm.Properties).toMatchObject({
          FunctionResponseTypes: ['ReportBatchItemFailures'],
          MetricsConfig: { Metrics: ['EventCount', 'ErrorCount', 'KafkaMetrics'] },
          ProvisionedPollerConfig: expect.objectContaining({ MinimumPollers: expect.any(Number) }),
        });
      }
    }
  });

  it("should log the mapping's system events into the consumer's log group and share pollers when asked", () => {
    const t = get(byTitle(/logs=WARN pollers=trace-consumers$/).title);
    const esm = t.Resources.ConsumerEventSourceMapping!.Properties!;
    expect(esm.LoggingConfig).toEqual({ SystemLogLevel: 'WARN' });
    expect(esm.ProvisionedPollerConfig).toEqual({
      MinimumPollers: 2,
      MaximumPollers: 10,
      PollerGroupName: 'trace-consumers',
    });
    // The pollers write with the function's role into the function's log group, in a stream of their own.
    const statements = (
      t.Resources.ConsumerRole!.Properties!.Policies as {
        PolicyDocument: { Statement: { Action: string[]; Resource: unknown }[] };
      }[]
    )[0]!.PolicyDocument.Statement;
    const logGrant = statements.find((s) => s.Action.includes('logs:PutLogEvents'))!;
    expect(logGrant.Action).toEqual(['logs:CreateLogStream', 'logs:PutLogEvents']);
    const functionName = t.Resources.ConsumerLambdaFunction!.Properties!.FunctionName as string;
    expect(t.Resources.ConsumerLogGroup!.Properties!.LogGroupName).toBe(`/aws/lambda/${functionName}`);
    expect(functionName).toBe('trace-consumer-prod-consumer');
    expect(logGrant.Resource).toEqual([
      {
        'Fn::Sub':
          'arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:' +
          '/aws/lambda/${AWS::StackName}-consumer:*',
      },
    ]);
    expect(t.Outputs!.KafkaEventSourceMappingId!.Value).toEqual({ Ref: 'ConsumerEventSourceMapping' });
    // Neither is set unless asked for.
    for (const [title, other] of templates) {
      if (title.includes(' logs=')) continue;
      for (const [, m] of resourcesOf(other, 'AWS::Lambda::EventSourceMapping')) {
        expect(m.Properties!.LoggingConfig, title).toBeUndefined();
        expect(m.Properties!.ProvisionedPollerConfig, title).not.toHaveProperty('PollerGroupName');
      }
    }
  });

  it('should build the prod MSK IAM stack with alarms that notify, a dashboard and the health URLs', () => {
    const t = get(byTitle(/^prod: msk\/iam$/).title);
    const alarms = Object.fromEntries(resourcesOf(t, 'AWS::CloudWatch::Alarm').map(([id, r]) => [id, r.Properties!]));
    expect(Object.keys(alarms).sort()).toEqual([
      'ConsumerDeadLettersAlarm',
      'ConsumerErrorsAlarm',
      'ConsumerFailuresAlarm',
      'ConsumerFreshnessAlarm',
      'ConsumerLagAlarm',
      'ConsumerOffsetLagAlarm',
      'ConsumerThrottlesAlarm',
    ]);
    for (const alarm of Object.values(alarms)) expect(alarm.AlarmActions).toEqual([{ Ref: 'AlarmTopic' }]);
    expect(t.Resources.AlarmTopic!.Type).toBe('AWS::SNS::Topic');
    expect(alarms.ConsumerOffsetLagAlarm).toMatchObject({
      Namespace: 'AWS/Lambda',
      MetricName: 'OffsetLag',
      TreatMissingData: 'breaching',
    });
    expect(alarms.ConsumerFreshnessAlarm).toMatchObject({
      MetricName: 'RecordsStored',
      TreatMissingData: 'breaching',
      ComparisonOperator: 'LessThanThreshold',
      Period: 3600,
      EvaluationPeriods: 24,
    });
    expect(alarms.ConsumerDeadLettersAlarm).toMatchObject({ MetricName: 'RecordsDeadLettered', Period: 60 });
    expect(alarms.ConsumerErrorsAlarm).toMatchObject({
      MetricName: 'Errors',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: 'ConsumerLambdaFunction' } }],
    });
    expect(alarms.ConsumerThrottlesAlarm).toMatchObject({ MetricName: 'Throttles' });

    const body = (t.Resources.ConsumerDashboard!.Properties!.DashboardBody as { 'Fn::Sub': string })['Fn::Sub'];
    for (const metric of [
      'RecordsReceived',
      'RecordsStored',
      'RecordsDeadLettered',
      'OffsetLag',
      'OldestRecordAge',
      'BatchDuration',
      'Duration',
      'Errors',
      'Throttles',
      'database write failed',
    ]) {
      expect(body).toContain(metric);
    }
    expect(Object.keys(t.Outputs!)).toEqual(
      expect.arrayContaining([
        'DashboardUrl',
        'HealthReadyUrl',
        'HealthLiveUrl',
        'HealthFreshnessUrl',
        'AlarmTopicArn',
        'KafkaConsumerGroupId',
      ]),
    );
    expect(t.Outputs!.HealthReadyUrl!.Value).toEqual({
      'Fn::Sub': 'https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/healthz/ready',
    });
    expect(t.Outputs!.KafkaConsumerGroupId!.Value).toBe('trace-consumer-prod');
    expect(t.Resources.HealthLambdaFunction!.Properties!.ReservedConcurrentExecutions).toBe(5);
    expect(t.Resources.HttpApiStage!.Properties!.DefaultRouteSettings).toMatchObject({
      ThrottlingRateLimit: 5,
      ThrottlingBurstLimit: 10,
    });
  });

  it(
    'should never let a documented mapping discard a failing batch: retried until fixed, or set aside in a ' +
      'destination',
    () => {
      for (const [title, t] of templates) {
        for (const [, esm] of resourcesOf(t, 'AWS::Lambda::EventSourceMapping')) {
          const p = esm.Properties!;
          const limits = { title, retries: p.MaximumRetryAttempts, age: p.MaximumRecordAgeInSeconds };
          if (!p.DestinationConfig) expect(limits).toEqual({ title, retries: -1, age: -1 });
        }
      }
    },
  );

  it('should subscribe someone to the alarms in every documented prod command, with no warning left', () => {
    const prod = variants.filter((v) => v.stage === 'prod');
    expect(prod.length).toBeGreaterThan(3);
    for (const v of prod) {
      const t = get(v.title);
      const subscribed = resourcesOf(t, 'AWS::SNS::Subscription').length > 0 || Boolean(v.params.alarmTopicArn);
      expect({ title: v.title, subscribed }).toEqual({ title: v.title, subscribed: true });
      expect(outputs.get(v.title)).not.toContain('Warning: alarms=true, but nobody is subscribed');
      // Production verifies the database's certificate.
      expect(t.Resources.ConsumerLambdaFunction!.Properties!.Environment).toMatchObject({
        Variables: { DB_SSL: 'verify-full' },
      });
    }
  });

  it("should link the dashboard in the console of the stack's partition", async () => {
    const url = (t: Template) => (t.Outputs!.DashboardUrl!.Value as { 'Fn::Sub': string })['Fn::Sub'];
    expect(url(get(byTitle(/^prod: msk\/iam$/).title))).toBe(
      'https://us-east-1.console.aws.amazon.com/cloudwatch/home' +
        '?region=${AWS::Region}#dashboards:name=${ConsumerDashboard}',
    );
    const china = (arn: string) => arn.replace('arn:aws:', 'arn:aws-cn:').replace(':us-east-1:', ':cn-north-1:');
    const params = byTitle(/^prod: msk\/iam$/).params;
    const { run, template } = await packageTemplate(
      'prod',
      { ...params, mskClusterArn: china(params.mskClusterArn!), dbSecretArn: china(params.dbSecretArn!) },
      ['--region', 'cn-north-1'],
    );
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(url(template!)).toMatch(
      /^https:\/\/console\.amazonaws\.cn\/cloudwatch\/home\?region=\$\{AWS::Region\}#dashboards:name=/,
    );
  });

  it('should default the consumer group per stage and take over the old group only when asked', () => {
    const group = (t: Template) => t.Outputs!.KafkaConsumerGroupId!.Value;
    expect(group(get(byTitle(/^dev: msk\/iam -> kafka$/).title))).toBe('trace-consumer-dev');
    expect(group(get(byTitle(/^prod: msk\/iam$/).title))).toBe('trace-consumer-prod');
    const cutover = get(byTitle(/group=trace-consumer$/).title);
    expect(cutover.Resources.ConsumerEventSourceMapping!.Properties!.SelfManagedKafkaEventSourceConfig).toEqual({
      ConsumerGroupId: 'trace-consumer',
    });
    const removed = get(byTitle(/mapping=removed/).title);
    expect(resourcesOf(removed, 'AWS::Lambda::EventSourceMapping')).toEqual([]);
    expect(removed.Resources.ConsumerLambdaFunction).toBeDefined();
    expect(removed.Resources.ConsumerOffsetLagAlarm).toBeUndefined(); // a deliberate pause is not an outage
    expect(removed.Resources.ConsumerFreshnessAlarm).toBeDefined();
    expect(removed.Outputs!.KafkaConsumerGroupId).toBeUndefined(); // no mapping, no group in use
  });
});

describe('the health function (docs/operations.md)', () => {
  const secretGrants = (t: Template, roleId: string) =>
    (
      t.Resources[roleId]!.Properties!.Policies as {
        PolicyDocument: { Statement: { Action: string[]; Resource: unknown }[] };
      }[]
    )[0]!.PolicyDocument.Statement.filter((s) => s.Action.includes('secretsmanager:GetSecretValue')).flatMap(
      (s) => s.Resource as string[],
    );
  const healthEnv = (t: Template) =>
    (t.Resources.HealthLambdaFunction!.Properties!.Environment as { Variables: Record<string, unknown> }).Variables;
  const routes = (t: Template) => resourcesOf(t, 'AWS::ApiGatewayV2::Route').map(([, r]) => r.Properties!);

  it('should connect with its own secret in every documented command, and may read no other', () => {
    for (const v of variants) {
      const t = get(v.title);
      expect(v.params.healthDbSecretArn, v.title).toMatch(/:secret:trace-health-db-/);
      expect(healthEnv(t).DB_SECRET_ARN, v.title).toBe(v.params.healthDbSecretArn);
      expect(secretGrants(t, 'HealthRole'), v.title).toEqual([v.params.healthDbSecretArn]);
      // The consumer keeps its read-write secret, which the health role cannot read.
      expect(
        (t.Resources.ConsumerLambdaFunction!.Properties!.Environment as { Variables: Record<string, unknown> })
          .Variables.DB_SECRET_ARN,
        v.title,
      ).toBe(v.params.dbSecretArn);
      expect(secretGrants(t, 'ConsumerRole'), v.title).toContain(v.params.dbSecretArn);
      expect(secretGrants(t, 'HealthRole'), v.title).not.toContain(v.params.dbSecretArn);
    }
  });

  it("should refuse the consumer's secret for the health function without healthDbSecretArn, on any stage, and " +
    'use it only when allowSharedHealthSecret=true says so', async () => {
    const { healthDbSecretArn: _, ...prod } = byTitle(/^prod: msk\/iam$/).params;
    const params: Record<string, string> = { ...prod, alarms: 'true' }; // what the prod stage's defaults set
    const refused = await packageTemplate('live', params);
    expect(refused.run.code).not.toBe(0);
    expect(refused.run.stdout + refused.run.stderr).toContain(
      'healthDbSecretArn is not set, so the health function, whose routes anyone can call, would connect with the ' +
        "consumer's read-write secret (dbSecretArn)",
    );
    const { run, template } = await packageTemplate('live', { ...params, allowSharedHealthSecret: 'true' });
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout + run.stderr).not.toContain('healthDbSecretArn');
    expect(healthEnv(template!).DB_SECRET_ARN).toBe(params.dbSecretArn);
    expect(secretGrants(template!, 'HealthRole')).toEqual([params.dbSecretArn]);
  }, 180_000); // two CLI runs

  it(
    'should serve public routes by default, AWS_IAM-authorized ones with healthRoute=iam, and none with ' +
      'healthRoute=none',
    () => {
      const paths = ['GET /healthz', 'GET /healthz/live', 'GET /healthz/ready'];
      const open = get(byTitle(/^prod: msk\/iam$/).title);
      expect(
        routes(open)
          .map((r) => r.RouteKey)
          .sort(),
      ).toEqual(paths);
      for (const r of routes(open)) expect(r.AuthorizationType ?? 'NONE').toBe('NONE');

      const signed = get(byTitle(/health=iam$/).title);
      expect(
        routes(signed)
          .map((r) => r.RouteKey)
          .sort(),
      ).toEqual(paths);
      for (const r of routes(signed)) expect(r.AuthorizationType).toBe('AWS_IAM');
      expect(signed.Resources.HttpApiStage!.Properties!.DefaultRouteSettings).toMatchObject({ ThrottlingRateLimit: 5 });

      const none = get(byTitle(/health=none$/).title);
      expect(Object.values(none.Resources).filter((r) => r.Type.startsWith('AWS::ApiGatewayV2::'))).toEqual([]);
      expect(
        resourcesOf(none, 'AWS::Lambda::Permission').filter(([, r]) =>
          JSON.stringify(r).includes('HealthLambdaFunction'),
        ),
      ).toEqual([]);
      expect(Object.keys(none.Outputs!).filter((k) => /^Health.*Url$/.test(k) || k === 'HttpApiUrl')).toEqual([]);
      expect(none.Resources.HealthLambdaFunction).toBeDefined();
    },
  );

  it("should refuse a healthRoute it does not know, and the consumer's secret given as the health secret", async () => {
    const params = byTitle(/^prod: msk\/iam$/).params;
    const { run } = await packageTemplate('prod', {
      ...params,
      healthRoute: 'private',
      healthDbSecretArn: params.dbSecretArn!,
    });
    expect(run.code).not.toBe(0);
    expect(run.stdout + run.stderr).toContain('healthRoute must be one of public, iam, none (got "private")');
    expect(run.stdout + run.stderr).toContain("healthDbSecretArn is dbSecretArn, the consumer's read-write secret");
  });
});

describe('the dead-letter function (operators only)', () => {
  it(
    "should run in the consumer's VPC with no trigger or route, and answer before `serverless invoke` gives " + 'up',
    () => {
      for (const [title, t] of templates) {
        const fn = t.Resources.DeadLettersLambdaFunction!.Properties!;
        expect(fn.VpcConfig, title).toEqual(t.Resources.ConsumerLambdaFunction!.Properties!.VpcConfig);
        expect(fn.Role, title).toEqual({ 'Fn::GetAtt': ['DeadLettersRole', 'Arn'] });
        // The CLI's Lambda client waits 120 s for an answer, then invokes again: a redrive would run twice.
        expect(fn.Timeout as number, title).toBeLessThanOrEqual(110);
        const refersToIt = (r: unknown) => JSON.stringify(r).includes('"DeadLettersLambdaFunction"');
        const triggers = Object.entries(t.Resources).filter(
          ([, r]) =>
            ['AWS::Lambda::Permission', 'AWS::Lambda::EventSourceMapping', 'AWS::ApiGatewayV2::Integration'].includes(
              r.Type,
            ) && refersToIt(r),
        );
        expect(triggers, title).toEqual([]);
      }
    },
  );
});

describe('the checks can fail', () => {
  const clone = (t: Template) => structuredClone(t);
  const scramTitle = () => byTitle(/^prod: msk\/sasl-scram -> sqs$/).title;

  it('should report each kind of specification problem', () => {
    const t = clone(get(scramTitle()));
    const esm = t.Resources.ConsumerEventSourceMapping!.Properties!;
    esm.Topicz = ['x']; // unknown property
    esm.BatchSize = 'lots'; // wrong primitive type
    (esm.SourceAccessConfigurations as { Type: string }[])[0]!.Type = 'SASL_SCRAM_1024_AUTH'; // not an allowed value
    esm.FunctionResponseTypes = ['ReportEverything']; // pattern from the Lambda API reference
    (esm.AmazonManagedKafkaEventSourceConfig as Record<string, unknown>).ConsumerGroupId = 'has spaces'; // pattern
    esm.MaximumRetryAttempts = 20000; // range
    esm.LoggingConfig = { SystemLogLevel: 'ERROR' }; // not an allowed value
    (esm.ProvisionedPollerConfig as Record<string, unknown>).PollerGroupName = 'trace consumers'; // pattern
    delete t.Resources.ConsumerRole!.Properties!.AssumeRolePolicyDocument; // required
    t.Resources.Extra = { Type: 'AWS::Lambda::EventSourceMappingz', Properties: {} }; // resource type
    t.Resources.ConsumerLambdaFunction!.Properties!.Role = { 'Fn::GetAtt': ['MissingRole', 'Arn'] }; // GetAtt target
    t.Outputs!.HealthLiveUrl!.Value = { 'Fn::GetAtt': ['HttpApi', 'NoSuchAttribute'] }; // attribute
    t.Resources.ConsumerDashboard!.Properties!.DashboardBody = { 'Fn::Sub': '${NotThere}' }; // Sub variable
    t.Resources.AlarmTopic!.Properties = { TopicName: { Ref: 'Nothing' } }; // Ref target
    const problems = specProblems(t).join('\n');
    for (const expected of [
      'Topicz: not a property',
      'BatchSize: expected an integer',
      'SourceAccessConfigurations[0].Type: expected one of',
      '"ReportEverything" does not match',
      'ConsumerGroupId: "has spaces" does not match',
      'MaximumRetryAttempts: 20000 is above',
      'LoggingConfig.SystemLogLevel: expected one of DEBUG, INFO, WARN',
      'PollerGroupName: "trace consumers" does not match',
      'AssumeRolePolicyDocument: required property missing',
      'unknown resource type AWS::Lambda::EventSourceMappingz',
      'Fn::GetAtt target MissingRole does not exist',
      'has no attribute NoSuchAttribute',
      '${NotThere} names nothing',
      'Ref target "Nothing" does not exist',
    ])
      expect(problems).toContain(expected);
  });

  it('should report unknown IAM actions and grants scoped against the Service Authorization Reference', async () => {
    const t = clone(get(scramTitle()));
    const statements = (
      t.Resources.ConsumerRole!.Properties!.Policies as { PolicyDocument: { Statement: Record<string, unknown>[] } }[]
    )[0]!.PolicyDocument.Statement;
    statements.push({ Effect: 'Allow', Action: ['kafka:GetBootstrapBrokerz'], Resource: '*' });
    statements.push({
      Effect: 'Allow',
      Action: ['kafka:GetBootstrapBrokers'],
      Resource: ['arn:aws:kafka:us-east-1:123456789012:cluster/trace/x'],
    });
    statements.push({ Effect: 'Allow', Action: ['sqs:SendMessage'], Resource: '*' });
    const problems = (await iamProblems(t)).join('\n');
    expect(problems).toContain('kafka:GetBootstrapBrokerz is not an action of kafka');
    expect(problems).toContain('kafka:GetBootstrapBrokers supports no resource-level permissions');
    expect(problems).toContain('sqs:SendMessage can be scoped to queue, but is granted on "*"');
  });

  it('should report a mapping role with less or more than AWS documents, and silent alarms', () => {
    const v = byTitle(/^prod: msk\/sasl-scram -> sqs$/);
    const t = clone(get(v.title));
    const statements = (
      t.Resources.ConsumerRole!.Properties!.Policies as { PolicyDocument: { Statement: { Action: string[] }[] } }[]
    )[0]!.PolicyDocument.Statement;
    const withoutDecrypt = statements.filter((s) => !s.Action.includes('kms:Decrypt'));
    withoutDecrypt.push({ Action: ['kafka-cluster:ReadData'], ...{ Effect: 'Allow', Resource: '*' } } as never);
    (
      t.Resources.ConsumerRole!.Properties!.Policies as { PolicyDocument: { Statement: unknown[] } }[]
    )[0]!.PolicyDocument.Statement = withoutDecrypt;
    const problems = mappingRoleProblems(t, facts(v.params)).join('\n');
    expect(problems).toContain('missing kms:Decrypt');
    expect(problems).toContain('kafka-cluster:ReadData is more than AWS documents');
    // A function without a mapping gets the function's permissions and nothing else.
    const dl = (t.Resources.DeadLettersRole!.Properties!.Policies as { PolicyDocument: { Statement: unknown[] } }[])[0]!
      .PolicyDocument.Statement;
    dl.push({
      Effect: 'Allow',
      Action: ['kafka-cluster:Connect', 'sqs:SendMessage'],
      Resource: ['arn:aws:sqs:us-east-1:123456789012:trace-failures'],
    });
    dl.splice(
      dl.findIndex((x) => JSON.stringify(x).includes('secretsmanager:GetSecretValue')),
      1,
    );
    const dlProblems = mappingRoleProblems(t, facts(v.params)).join('\n');
    expect(dlProblems).toContain(
      'DeadLettersRole: kafka-cluster:Connect is more than AWS documents for a function without a mapping',
    );
    expect(dlProblems).toContain('DeadLettersRole: sqs:SendMessage is more than AWS documents');
    expect(dlProblems).toContain('DeadLettersRole: missing secretsmanager:GetSecretValue');
    // Without its key the SCRAM secret cannot be used by MSK at all.
    expect(mappingRoleProblems(get(v.title), { secretKmsKeyArns: [] }).join('\n')).toContain(
      'customer-managed KMS key',
    );

    const prod = clone(get(byTitle(/^prod: msk\/iam$/).title));
    delete prod.Resources.ConsumerLagAlarm!.Properties!.AlarmActions;
    prod.Resources.ConsumerFreshnessAlarm!.Properties!.EvaluationPeriods = 200;
    const alarmText = alarmProblems(prod).join('\n');
    expect(alarmText).toContain('ConsumerLagAlarm: no AlarmActions');
    expect(alarmText).toContain('ConsumerFreshnessAlarm: 200 x 3600 s exceeds');
  });

  it('should report dashboard rows and alarms on metrics nobody publishes, and a malformed dashboard', () => {
    const v = byTitle(/^prod: msk\/iam$/);
    const t = clone(get(v.title));
    const body = t.Resources.ConsumerDashboard!.Properties!.DashboardBody as { 'Fn::Sub': string };
    const parsed = JSON.parse(body['Fn::Sub']) as { widgets: { x: number; properties: { metrics?: unknown[][] } }[] };
    parsed.widgets[0]!.properties.metrics!.push([
      'TraceConsumer',
      'RecordsStore',
      'service',
      'trace-consumer',
      'topic',
      'trace-survey-processed',
    ]);
    parsed.widgets[0]!.properties.metrics!.push(['TraceConsumer', 'RecordsStored', 'service', 'trace-consumer']);
    parsed.widgets[1]!.properties.metrics!.push(['AWS/Lambda', 'OffsetLag', 'FunctionName']);
    parsed.widgets[2]!.x = 20;
    body['Fn::Sub'] = JSON.stringify(parsed);
    const alarm = t.Resources.ConsumerOffsetLagAlarm!.Properties!;
    alarm.Dimensions = [{ Name: 'EventSourceArn', Value: 'x' }];
    t.Resources.ConsumerLagAlarm!.Properties!.Namespace = 'TraceConsumers';
    const problems = metricProblems(t, emitted(v.params)).join('\n');
    expect(problems).toContain('the consumer writes no metric RecordsStore');
    expect(problems).toContain('RecordsStored with dimensions {"service":"trace-consumer"}; the consumer writes');
    expect(problems).toContain('is not [namespace, name, dimension, value, ..., options?]');
    expect(problems).toContain('widget 2: not on the 24-column grid');
    expect(problems).toContain('ConsumerOffsetLagAlarm: AWS/Lambda OffsetLag by EventSourceArn');
    expect(problems).toContain('ConsumerLagAlarm: namespace TraceConsumers is neither');
    body['Fn::Sub'] = '{"widgets": [';
    expect(metricProblems(t, emitted(v.params)).join('\n')).toContain('DashboardBody is not JSON');
  });
});

// cfn-lint, the standard CloudFormation linter (its own copy of the resource schemas, with their patterns). .ci/run
// installs it into .cache/cfn-lint; without it this one check is reported as skipped.
const cfnLint = process.env.CFN_LINT ?? join(projectRoot, '.cache', 'cfn-lint', 'bin', 'cfn-lint');

describe.skipIf(!existsSync(cfnLint))('cfn-lint (installed by .ci/run)', () => {
  async function lint(named: Record<string, Template>) {
    const dir = mkdtempSync(join(tmpdir(), 'trace-lint-'));
    const files = Object.entries(named).map(([name, t], i) => {
      const file = join(dir, `${i}-${name.replace(/[^\w-]+/g, '_')}.json`);
      writeFileSync(file, JSON.stringify(t, null, 2));
      return file;
    });
    // W3005: the CLI adds DependsOn entries that a Ref already implies; harmless and not ours to change.
    const run = await runCommand(
      cfnLint,
      ['--format', 'json', '--regions', 'us-east-1', '--ignore-checks', 'W3005', '--', ...files],
      {},
      300_000,
    );
    return JSON.parse(run.stdout || '[]') as { Rule: { Id: string }; Message: string; Filename: string }[];
  }

  it('should find nothing in any documented template', async () => {
    const findings = await lint(Object.fromEntries(templates));
    expect(findings.map((f) => `${f.Filename}: ${f.Rule.Id} ${f.Message}`)).toEqual([]);
  });

  it('should find a bad security group id, batch size, mapping settings and runtimes AWS refuses', async () => {
    const t = structuredClone(get(byTitle(/^prod: msk\/iam$/).title));
    (t.Resources.ConsumerLambdaFunction!.Properties!.VpcConfig as { SecurityGroupIds: string[] }).SecurityGroupIds = [
      'sg-0ccc',
    ];
    const esm = t.Resources.ConsumerEventSourceMapping!.Properties!;
    esm.BatchSize = 20000;
    esm.LoggingConfig = { SystemLogLevel: 'ERROR' };
    (esm.ProvisionedPollerConfig as Record<string, unknown>).PollerGroupName = 'trace consumers';
    // Its list of Lambda runtimes: one that does not exist, and one deprecated (the runtime checks can fail).
    t.Resources.ConsumerLambdaFunction!.Properties!.Runtime = 'nodejs25.x';
    t.Resources.HealthLambdaFunction!.Properties!.Runtime = 'nodejs20.x';
    const findings = await lint({ broken: t });
    const ids = findings.map((f) => f.Rule.Id);
    expect(ids).toContain('E1150');
    expect(ids.some((id) => id.startsWith('E30'))).toBe(true);
    const messages = findings.map((f) => `${f.Rule.Id} ${f.Message}`).join('\n');
    expect(messages).toContain("E3030 'ERROR' is not one of ['DEBUG', 'INFO', 'WARN']");
    expect(messages).toContain("E3031 'trace consumers' does not match");
    expect(messages).toMatch(/^E3030 'nodejs25\.x' is not one of \[.*'nodejs24\.x'/m);
    expect(messages).toMatch(/^W2531 Runtime 'nodejs20\.x' was deprecated/m);
  });
});

describe('parameter guard rails (real CLI)', () => {
  it(
    'should reject misspelled parameters with the closest names, and show the problems first, without the ' +
      "CLI's wrapping or a stack trace",
    async () => {
      const { run } = await packageTemplate('dev', {
        source: 'msk',
        consumergroup: 'x',
        mskAuth: 'sasl-scram',
        kafkaSecretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:s-AbCdEf',
      });
      const output = run.stdout + run.stderr;
      expect(run.code).not.toBe(0);
      // The problems right after the CLI's "Error:", not behind its wrapping of a variable resolver's rejection.
      expect(output).toMatch(
        new RegExp(
          '^Error:\\nInvalid deploy parameters:\\n {2}- consumergroup: not a parameter of this service; did you ' +
            'mean "consumerGroup"\\?\\n',
          'm',
        ),
      );
      expect(output).not.toContain('Cannot resolve');
      // The CLI runs on the tests' Node.js (the deployed runtime's version), not the machine's.
      expect(output).toContain(`Environment: ${process.platform}, node ${process.versions.node}, osls`);
      expect(output).not.toContain('topic,'); // not every parameter's name
      expect(output).toContain('kmsKeyArn must name the customer-managed KMS key of the SCRAM secret');
      expect(output).toContain(
        'kafkaSecretArn must be the SCRAM secret associated with the cluster, whose name starts with AmazonMSK_',
      );
      expect(output).toContain('dbSecretArn must be the Secrets Manager ARN');
      expect(output).not.toMatch(/^\s+at .*\.js:\d+/m);
    },
  );

  it('should refuse finite retries without a destination and an unverified database on any stage, each unless ' +
    'overridden by name', async () => {
    const params = byTitle(/^prod: msk\/iam$/).params;
    const refused = await packageTemplate('prod', {
      ...params,
      maxRetryAttempts: '10',
      maxRecordAgeSeconds: '604800',
      dbSsl: 'require',
    });
    const output = refused.run.stdout + refused.run.stderr;
    expect(refused.run.code).not.toBe(0);
    for (const expected of [
      'maxRetryAttempts=10 and maxRecordAgeSeconds=604800 without a failure destination: ' +
        'Lambda would discard a batch',
      '--param="allowDiscard=true"',
      "dbSsl=require: the functions would not verify the database's certificate",
      'Use dbSsl=verify-full',
      '--param="allowInsecureDb=true"',
    ])
      expect(output).toContain(expected);

    // Both overrides, and no alarm subscriber: packaged, with a warning that the alarms reach nobody.
    const { alarmEmail: _, ...withoutSubscriber } = params;
    const accepted = await packageTemplate('prod', {
      ...withoutSubscriber,
      maxRetryAttempts: '10',
      dbSsl: 'require',
      allowDiscard: 'true',
      allowInsecureDb: 'true',
    });
    const acceptedOutput = accepted.run.stdout + accepted.run.stderr;
    expect(accepted.run.code, acceptedOutput).toBe(0);
    expect(accepted.template!.Resources.ConsumerEventSourceMapping!.Properties!.MaximumRetryAttempts).toBe(10);
    expect(accepted.template!.Resources.ConsumerLambdaFunction!.Properties!.Environment).toMatchObject({
      Variables: { DB_SSL: 'require' },
    });
    expect(acceptedOutput).toContain('Warning: alarms=true, but nobody is subscribed to the alarm topic');

    // A stage of any other name is held to the same rule: dev too, and one whose name says nothing ("live").
    const devParams: Record<string, string> = {
      ...byTitle(/^dev: msk\/iam -> kafka$/).params,
      dbSsl: 'require',
      maxRetryAttempts: '3',
    };
    for (const stage of ['dev', 'live']) {
      const unverified = await packageTemplate(stage, devParams);
      expect(unverified.run.code).not.toBe(0);
      expect(unverified.run.stdout + unverified.run.stderr).toContain('dbSsl=require: the functions would not verify');
    }
    const dev = await packageTemplate('dev', { ...devParams, allowInsecureDb: 'true' });
    expect(dev.run.code, dev.run.stdout + dev.run.stderr).toBe(0); // a destination takes what the retries give up

    // `deploy function -f` pushes the function's environment: held to the same rules, before it reaches AWS.
    const { healthDbSecretArn: _h, ...shared } = devParams;
    const oneFunction = await runServerless([
      'deploy',
      'function',
      '-f',
      'health',
      '--stage',
      'live',
      ...Object.entries(shared).map(([k, v]) => `--param=${k}=${v}`),
    ]);
    const oneOutput = oneFunction.stdout + oneFunction.stderr;
    expect(oneFunction.code).not.toBe(0);
    expect(oneOutput).toContain('dbSsl=require: the functions would not verify');
    expect(oneOutput).toContain('healthDbSecretArn is not set');
    expect(oneOutput).not.toMatch(/credentials|AWS provider/i);
  }, 300_000); // six CLI runs

  it(
    'should refuse wrong types, settings that would fail in AWS or at cold start, and settings without ' + 'effect',
    async () => {
      const { run } = await packageTemplate(
        'prod',
        {
          ...byTitle(/^prod: msk\/iam$/).params,
          alarms: 'yes',
          bisectOnError: 'True', // neither may quietly mean false
          logLevel: 'verbose',
          dbSsl: 'verify_full',
          dbPort: 'abc',
          healthStaleAfterSeconds: '0', // the functions' lib/config.ts
          // no suffix: the grant would match nothing
          dbSecretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:trace-db',
          consumerReservedConcurrency: '0',
          consumerGroup: 'trace-*',
          deadLettersTimeout: '5',
          timeout: '5',
          alarmTopicArn: 'arn:aws:sns:us-east-1:123456789012:oncall',
        },
        ['--region', 'eu-west-1'],
      );
      const output = run.stdout + run.stderr;
      expect(run.code).not.toBe(0);
      for (const expected of [
        'alarms must be "true" or "false"',
        'bisectOnError must be "true" or "false"',
        'logLevel (LOG_LEVEL of the functions) must be one of debug',
        'dbSsl (DB_SSL of the functions) must be disable, require or verify-full (got "verify_full")',
        'dbPort (DB_PORT of the functions) must be a whole number',
        'healthStaleAfterSeconds (HEALTH_STALE_AFTER_SECONDS of the functions) must be at least 1',
        'dbSecretArn must be the Secrets Manager ARN of the database credentials, in full',
        'consumerReservedConcurrency must be empty (unreserved) or a whole number 1-1000',
        'consumerGroup must not contain "*" with mskAuth=iam',
        'deadLettersTimeout must be whole seconds, 10-900',
        'timeout must be whole seconds, 10-900',
        'mskClusterArn arn:aws:kafka:us-east-1:123456789012:cluster/trace/0f1e2d3c-aaaa-bbbb-cccc-1234567890ab-3 ' +
          'is in us-east-1, but the stack deploys to eu-west-1',
        'alarmTopicArn arn:aws:sns:us-east-1:123456789012:oncall is in us-east-1, but the stack deploys to eu-west-1',
      ])
        expect(output).toContain(expected);
      expect(output.match(/Invalid deploy parameters/g)).toHaveLength(1);
      expect(output).not.toContain('dbSecretArn (DB_SECRET_ARN'); // said once, in the deploy's words
      expect(output).not.toMatch(/^\s+at .*\.js:\d+/m);

      // Commands aimed at one function skip the mapping's checks, not the environment: `deploy function -f` pushes it.
      const oneFunction = await runServerless([
        'invoke',
        'local',
        '-f',
        'consumer',
        '-p',
        'events/msk-batch.json',
        '--param=logLevel=verbose',
      ]);
      expect(oneFunction.code).not.toBe(0);
      expect(oneFunction.stdout + oneFunction.stderr).toContain(
        'logLevel (LOG_LEVEL of the functions) must be one of debug',
      );
      expect(oneFunction.stdout + oneFunction.stderr).not.toMatch(/^\s+at .*\.js:\d+/m);

      const quiet = await packageTemplate('dev', {
        ...byTitle(/^dev: msk\/iam -> kafka$/).params,
        alarmEmail: 'oncall@example.com',
      });
      expect(quiet.run.code).not.toBe(0);
      expect(quiet.run.stdout + quiet.run.stderr).toContain(
        'alarmTopicArn and alarmEmail only take effect with alarms=true',
      );
    },
  );
});
