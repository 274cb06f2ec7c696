import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countRows, testDatabase, type TestDatabase } from '../helpers/db';
import { buildKafkaEvent } from '../../scripts/event-builder';
import { invokeLocal, lastJson, projectRoot, runCommand } from '../helpers/cli';

let db: TestDatabase;
let dbEnv: Record<string, string>;
beforeAll(async () => {
  db = await testDatabase();
  const names = ['DB_HOST', 'DB_PORT', 'DB_NAME', 'DB_USER', 'DB_PASSWORD', 'DB_SCHEMA'];
  dbEnv = Object.fromEntries(names.map((n) => [n, db.env[n] ?? '']));
});
afterAll(() => db.close());

describe('serverless invoke local (offline, real CLI)', () => {
  it('should store a sample event in the configured database and print the response', async () => {
    const run = await invokeLocal('consumer', 'events/mixed-batch.json', dbEnv);
    expect(run.code, run.stderr + run.stdout).toBe(0);
    expect(lastJson(run.stdout)).toEqual({ batchItemFailures: [] });
    expect(run.stdout).toContain('"message":"batch processed"');
    expect(await countRows(db)).toMatchObject({ processed_traces: 3, dead_letters: 5, ratings: 8 });
  });

  it('should exit non-zero when the database cannot be reached, so the batch would be retried', async () => {
    const run = await invokeLocal('consumer', 'events/msk-batch.json', { ...dbEnv, DB_PORT: '1', MAX_RETRIES: '0', DB_CONNECT_TIMEOUT: '2' });
    expect(run.code).not.toBe(0);
    expect(run.stdout + run.stderr).toContain('BatchFailedError');
  });

  it.each(['health-live', 'health-ready', 'health-freshness', 'health-not-found', 'health-wrong-method'])(
    'should answer events/%s.json from the health function',
    async (name) => {
      const expected = JSON.parse(readFileSync(join(projectRoot, 'events', 'responses', `${name}.json`), 'utf8'));
      const run = await invokeLocal('health', `events/${name}.json`, dbEnv);
      expect(run.code, run.stderr + run.stdout).toBe(0);
      const answer = lastJson(run.stdout) as { statusCode: number; body: unknown };
      expect(answer.statusCode).toBe(expected.statusCode);
      const body = typeof answer.body === 'string' ? JSON.parse(answer.body) : answer.body; // invoke local may parse it
      expect(body).toMatchObject(expected.body);
    },
  );
});

describe('serverless invoke local -f deadLetters --data (offline, real CLI)', () => {
  /** `invoke local --data` as an operator types it, with the local database's settings. */
  const invokeDeadLetters = async (request: Record<string, unknown>) => {
    const args = ['serverless', 'invoke', 'local', '-f', 'deadLetters', '--data', JSON.stringify(request)];
    for (const [k, v] of Object.entries({ DB_SSL: 'disable', ...dbEnv })) args.push('--env', `${k}=${v}`);
    const run = await runCommand('npx', args);
    expect(run.code, run.stderr + run.stdout).toBe(0);
    return { answer: lastJson(run.stdout) as Record<string, any>, stdout: run.stdout };
  };

  it('should run summary, show, redrive (dry run, then real) and purge on dead letters the consumer left', async () => {
    const topic = 'cli-dead-letters';
    const t = (name: string) => db.sql(`${db.config.db.schema}.${name}`);
    // A record PostgreSQL rejects (a constraint, lifted below as a database-side fix would be) beside a valid one.
    await db.sql`alter table ${t('courses')} add constraint cli_poison check (course_name is distinct from 'cli-poison')`;
    const poison = { traceId: 'cli-poison-1', course: { courseId: 'CLI-1', courseName: 'cli-poison' }, instructor: { name: 'Jane Doe' } };
    const valid = { traceId: 'cli-valid-1', course: { courseId: 'CLI-2' }, instructor: { name: 'Jane Doe' } };
    const dir = mkdtempSync(join(tmpdir(), 'trace-dl-'));
    writeFileSync(join(dir, 'event.json'), JSON.stringify(buildKafkaEvent([{ value: poison }, { value: valid }], { topic })));
    expect((await invokeLocal('consumer', join(dir, 'event.json'), dbEnv)).code).toBe(0);
    await db.sql`alter table ${t('courses')} drop constraint cli_poison`;
    // And a tombstone, written directly: a batch of exactly one rejected record and one dead letter never ends in
    // settle.ts's isolation today (both halves are the whole batch), so the consumer event above holds no dead letter.
    await db.sql`insert into ${t('dead_letters')} (kafka_topic, kafka_partition, kafka_offset, reason, detail) values (${topic}, 0, 2, 'tombstone', 'record has no value (a Kafka tombstone)')`;

    const summary = await invokeDeadLetters({ action: 'summary', topic });
    expect(summary.answer).toMatchObject({ action: 'summary', total: 2, unresolved: 2 });
    expect(summary.answer.byReason.map((r: { reason: string }) => r.reason).sort()).toEqual(['db_rejected', 'tombstone']);
    expect(summary.stdout).toContain('"_aws"'); // the EMF document

    const shown = await invokeDeadLetters({ action: 'show', topic, reasons: 'db_rejected' });
    expect(shown.answer.letters).toEqual([expect.objectContaining({ reason: 'db_rejected', value: expect.objectContaining({ format: 'json', json: poison }) })]);
    expect(shown.stdout.split('\n').filter((line) => line.includes('"level"')).join('\n')).not.toContain('cli-poison');

    const dry = await invokeDeadLetters({ action: 'redrive', topic, dryRun: true });
    expect(dry.answer).toMatchObject({ dryRun: true, redriven: 2, results: { stored: 1, dead_lettered: 1 } });
    const real = await invokeDeadLetters({ action: 'redrive', topic });
    expect(real.answer).toMatchObject({ dryRun: false, redriven: 2, results: { stored: 1, dead_lettered: 1 }, done: true });
    const [claim] = await db.sql`select status, kafka_topic from ${t('processed_traces')} where trace_id = 'cli-poison-1'`;
    expect(claim).toEqual({ status: 'stored', kafka_topic: topic });

    const purgeDry = await invokeDeadLetters({ action: 'purge', topic, redriven: true });
    expect(purgeDry.answer).toMatchObject({ dryRun: true, purged: 1, byReason: { db_rejected: 1 } });
    const purged = await invokeDeadLetters({ action: 'purge', topic, redriven: true, dryRun: false });
    expect(purged.answer).toMatchObject({ dryRun: false, purged: 1 });
    const left = await db.sql`select reason from ${t('dead_letters')} where kafka_topic = ${topic}`;
    expect(left).toEqual([{ reason: 'tombstone' }]);
  }, 300_000); // seven CLI runs, each bundling and starting the function
});

// Packaging runs in this file too: the CLI builds into .esbuild/ in the project, so CLI runs must not overlap.
const ACCOUNT = '123456789012';
const common = {
  dbSecretArn: `arn:aws:secretsmanager:us-east-1:${ACCOUNT}:secret:trace-db-AbCdEf`,
  subnetIds: 'subnet-0aaa,subnet-0bbb',
  securityGroupIds: 'sg-0ccc',
  dbHost: 'trace.cluster-abc.us-east-1.rds.amazonaws.com',
};
const CLUSTER = `arn:aws:kafka:us-east-1:${ACCOUNT}:cluster/trace-cluster/0f1e2d3c-aaaa-bbbb-cccc-1234567890ab-3`;

interface Template {
  Resources: Record<string, { Type: string; Properties: Record<string, any>; DependsOn?: string[] }>;
}

async function packageWith(params: Record<string, string>, stage = 'dev'): Promise<Template> {
  const dir = mkdtempSync(join(tmpdir(), 'trace-package-'));
  const args = ['serverless', 'package', '--stage', stage, '--package', dir];
  for (const [k, v] of Object.entries({ ...common, ...params })) args.push(`--param=${k}=${v}`);
  const run = await runCommand('npx', args, { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', AWS_PROFILE: '' });
  expect(run.code, run.stdout + run.stderr).toBe(0);
  return JSON.parse(readFileSync(join(dir, 'cloudformation-template-update-stack.json'), 'utf8'));
}

function statementsOf(template: Template, roleName: string) {
  const policies = template.Resources[roleName]!.Properties.Policies as { PolicyDocument: { Statement: { Action: string[]; Resource: unknown }[] } }[];
  return policies.flatMap((p) => p.PolicyDocument.Statement);
}

function resourceFor(template: Template, roleName: string, action: string): unknown {
  return statementsOf(template, roleName).find((s) => s.Action.includes(action))?.Resource;
}

describe('your own messages, end to end', () => {
  it('should store a message file wrapped by the event builder and run through invoke local', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trace-own-'));
    const messages = [
      { traceId: 'own-1', course: { courseId: 'OWN-101', courseName: 'My course' }, instructor: { name: 'Jane Doe' }, ratings: [{ questionText: 'Q', courseMean: 4.2 }] },
      { traceId: 'own-2', course: { courseId: 'OWN-102' }, instructor: { name: 'John Roe' }, comments: [{ commentText: 'Nice' }] },
    ];
    writeFileSync(join(dir, 'messages.jsonl'), messages.map((m) => JSON.stringify(m)).join('\n'));
    const eventFile = join(dir, 'event.json');
    const built = await runCommand('npx', ['tsx', 'scripts/build-event.ts', '--source', 'self-managed', '--partitions', '2', '--out', eventFile, join(dir, 'messages.jsonl')]);
    expect(built.code, built.stderr).toBe(0);

    const run = await invokeLocal('consumer', eventFile, dbEnv);
    expect(run.code, run.stderr + run.stdout).toBe(0);
    expect(lastJson(run.stdout)).toEqual({ batchItemFailures: [] });
    const schema = db.config.db.schema;
    const rows = await db.sql`select trace_id, status, kafka_partition from ${db.sql(`${schema}.processed_traces`)} where trace_id like 'own-%' order by 1`;
    expect(rows).toEqual([
      { trace_id: 'own-1', status: 'stored', kafka_partition: 0 },
      { trace_id: 'own-2', status: 'stored', kafka_partition: 1 },
    ]);
    const [rating] = await db.sql`select question_text, course_mean from ${db.sql(`${schema}.ratings`)} where trace_id = 'own-1'`;
    expect(rating).toEqual({ question_text: 'Q', course_mean: 4.2 });
  });
});

describe('serverless package (offline, no AWS credentials)', () => {
  it('should build Amazon MSK with IAM authentication', async () => {
    const t = await packageWith({ source: 'msk', mskClusterArn: CLUSTER, mskAuth: 'iam' }, 'prod');
    const esm = t.Resources.ConsumerEventSourceMapping!;
    expect(esm.Type).toBe('AWS::Lambda::EventSourceMapping');
    expect(esm.Properties).toMatchObject({
      EventSourceArn: CLUSTER,
      Topics: ['trace-survey-processed'],
      AmazonManagedKafkaEventSourceConfig: { ConsumerGroupId: 'trace-consumer' },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ProvisionedPollerConfig: { MinimumPollers: 2, MaximumPollers: 10 }, // the prod stage's parameters
      BatchSize: 1000,
      StartingPosition: 'TRIM_HORIZON',
      MaximumRetryAttempts: 10,
      MaximumRecordAgeInSeconds: 604800,
      BisectBatchOnFunctionError: true,
    });
    expect(esm.Properties.SourceAccessConfigurations).toBeUndefined();
    expect(esm.Properties.DestinationConfig).toBeUndefined();

    // IAM: the cluster, its topic and consumer group, the database secret; nothing for "*" but EC2's Describe calls.
    expect(resourceFor(t, 'ConsumerRole', 'kafka-cluster:Connect')).toEqual([CLUSTER]);
    expect(resourceFor(t, 'ConsumerRole', 'kafka-cluster:ReadData')).toEqual([
      `arn:aws:kafka:us-east-1:${ACCOUNT}:topic/trace-cluster/0f1e2d3c-aaaa-bbbb-cccc-1234567890ab-3/trace-survey-processed`,
    ]);
    expect(resourceFor(t, 'ConsumerRole', 'kafka-cluster:AlterGroup')).toEqual([
      `arn:aws:kafka:us-east-1:${ACCOUNT}:group/trace-cluster/0f1e2d3c-aaaa-bbbb-cccc-1234567890ab-3/trace-consumer`,
    ]);
    expect(resourceFor(t, 'ConsumerRole', 'secretsmanager:GetSecretValue')).toEqual([common.dbSecretArn]);
    for (const role of ['ConsumerRole', 'HealthRole']) {
      for (const s of statementsOf(t, role)) {
        if (s.Resource === '*') expect(s.Action.every((a) => a.startsWith('ec2:Describe'))).toBe(true);
      }
    }
    expect(resourceFor(t, 'HealthRole', 'secretsmanager:GetSecretValue')).toEqual([common.dbSecretArn]);
    expect(resourceFor(t, 'HealthRole', 'kafka-cluster:ReadData')).toBeUndefined();

    const consumer = t.Resources.ConsumerLambdaFunction!.Properties;
    expect(consumer).toMatchObject({
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      Role: { 'Fn::GetAtt': ['ConsumerRole', 'Arn'] },
      VpcConfig: { SubnetIds: ['subnet-0aaa', 'subnet-0bbb'], SecurityGroupIds: ['sg-0ccc'] },
    });
    expect(consumer.Environment.Variables).toMatchObject({
      DB_HOST: common.dbHost,
      DB_SECRET_ARN: common.dbSecretArn,
      DB_SCHEMA: 'trace',
      REPORT_BATCH_ITEM_FAILURES: 'true',
      LOG_LEVEL: 'info',
      DB_SSL: 'verify-full',
    });
    expect(JSON.stringify(consumer.Environment)).not.toMatch(/PASSWORD/);

    const routes = Object.values(t.Resources).filter((r) => r.Type === 'AWS::ApiGatewayV2::Route').map((r) => r.Properties.RouteKey).sort();
    expect(routes).toEqual(['GET /healthz', 'GET /healthz/live', 'GET /healthz/ready']);
    expect(t.Resources.HealthLambdaFunction!.Properties.Role).toEqual({ 'Fn::GetAtt': ['HealthRole', 'Arn'] });

    // prod turns the alarms on: failures, dead letters and lag, on the consumer's EMF metrics.
    const alarms = Object.entries(t.Resources).filter(([, r]) => r.Type === 'AWS::CloudWatch::Alarm');
    expect(alarms.map(([id]) => id).sort()).toEqual(['ConsumerDeadLettersAlarm', 'ConsumerFailuresAlarm', 'ConsumerLagAlarm']);
    expect(t.Resources.ConsumerLagAlarm!.Properties).toMatchObject({
      Namespace: 'TraceConsumer', MetricName: 'OldestRecordAge', Statistic: 'Maximum', Threshold: 900_000,
      Dimensions: [{ Name: 'service', Value: 'trace-consumer' }, { Name: 'topic', Value: 'trace-survey-processed' }],
    });
    expect(t.Resources.ConsumerFailuresAlarm!.Properties).toMatchObject({ MetricName: 'RecordsFailed', Statistic: 'Sum', Threshold: 0 });
    expect(t.Resources.ConsumerDeadLettersAlarm!.Properties).toMatchObject({ MetricName: 'RecordsDeadLettered', Statistic: 'Sum' });
    expect(consumer.Environment.Variables.METRICS_NAMESPACE).toBe('TraceConsumer');

    // The dead-letter function: same VPC and database settings, a role for its log group, the database secret and
    // network interfaces only, and no trigger or route.
    const deadLetters = t.Resources.DeadLettersLambdaFunction!.Properties;
    expect(deadLetters).toMatchObject({
      Role: { 'Fn::GetAtt': ['DeadLettersRole', 'Arn'] },
      VpcConfig: { SubnetIds: ['subnet-0aaa', 'subnet-0bbb'], SecurityGroupIds: ['sg-0ccc'] },
      Timeout: 300,
    });
    expect(deadLetters.Environment.Variables).toEqual(consumer.Environment.Variables);
    const actions = statementsOf(t, 'DeadLettersRole').flatMap((s) => s.Action).sort();
    expect(actions).toEqual([
      'ec2:AssignPrivateIpAddresses', 'ec2:CreateNetworkInterface', 'ec2:DeleteNetworkInterface', 'ec2:DescribeNetworkInterfaces',
      'ec2:DescribeSecurityGroups', 'ec2:DescribeSubnets', 'ec2:DescribeVpcs', 'ec2:UnassignPrivateIpAddresses',
      'logs:CreateLogStream', 'logs:PutLogEvents', 'secretsmanager:GetSecretValue',
    ]);
    expect(resourceFor(t, 'DeadLettersRole', 'secretsmanager:GetSecretValue')).toEqual([common.dbSecretArn]);
    const plumbing = ['AWS::Lambda::Function', 'AWS::Lambda::Version', 'AWS::IAM::Role', 'AWS::Logs::LogGroup'];
    const wired = JSON.stringify(Object.values(t.Resources).filter((r) => !plumbing.includes(r.Type)));
    expect(wired).not.toContain('DeadLettersLambdaFunction');
  });

  it('should build Amazon MSK with SASL/SCRAM and an SQS on-failure destination', async () => {
    const secret = `arn:aws:secretsmanager:us-east-1:${ACCOUNT}:secret:AmazonMSK_trace-AbCdEf`;
    const queue = `arn:aws:sqs:us-east-1:${ACCOUNT}:trace-consumer-failures`;
    const t = await packageWith({
      source: 'msk', mskClusterArn: CLUSTER, mskAuth: 'sasl-scram', kafkaSecretArn: secret,
      failureDestinationType: 'sqs', failureDestination: queue, batchSize: '500', startingPosition: 'LATEST',
    });
    const esm = t.Resources.ConsumerEventSourceMapping!.Properties;
    expect(esm.SourceAccessConfigurations).toEqual([{ Type: 'SASL_SCRAM_512_AUTH', URI: secret }]);
    expect(esm.DestinationConfig).toEqual({ OnFailure: { Destination: queue } });
    expect(esm).toMatchObject({ BatchSize: 500, StartingPosition: 'LATEST', FunctionResponseTypes: ['ReportBatchItemFailures'], ProvisionedPollerConfig: { MinimumPollers: 1, MaximumPollers: 2 } });
    expect(resourceFor(t, 'ConsumerRole', 'secretsmanager:GetSecretValue')).toEqual([common.dbSecretArn, secret]);
    expect(resourceFor(t, 'ConsumerRole', 'sqs:SendMessage')).toEqual([queue]);
    expect(resourceFor(t, 'ConsumerRole', 'kafka-cluster:ReadData')).toBeUndefined(); // SCRAM, not IAM
    expect(Object.values(t.Resources).some((r) => r.Type === 'AWS::CloudWatch::Alarm')).toBe(false); // dev: off
  });

  it('should wire the alarms to an SNS topic when asked', async () => {
    const topic = `arn:aws:sns:us-east-1:${ACCOUNT}:on-call`;
    const t = await packageWith({ source: 'msk', mskClusterArn: CLUSTER, alarms: 'true', alarmTopicArn: topic, lagAlarmSeconds: '120' });
    for (const id of ['ConsumerDeadLettersAlarm', 'ConsumerFailuresAlarm', 'ConsumerLagAlarm']) {
      expect(t.Resources[id]!.Properties).toMatchObject({ AlarmActions: [topic], OKActions: [topic] });
    }
    expect(t.Resources.ConsumerLagAlarm!.Properties.Threshold).toBe(120_000);
  });

  it('should build self-managed Kafka with SASL/SCRAM, broker VPC and a Kafka destination', async () => {
    const secret = `arn:aws:secretsmanager:us-east-1:${ACCOUNT}:secret:kafka-scram-AbCdEf`;
    const t = await packageWith({
      source: 'self-managed', bootstrapServers: 'kafka-1.internal:9096,kafka-2.internal:9096', kafkaSecretArn: secret,
      brokerSubnetIds: 'subnet-0kkk,subnet-0lll', brokerSecurityGroupId: 'sg-0kafka', consumerGroup: 'trace-consumer-v2',
      failureDestinationType: 'kafka', failureDestination: 'kafka://trace-survey-failed', topic: 'trace-survey-processed',
    });
    const esm = t.Resources.ConsumerEventSourceMapping!.Properties;
    expect(esm.EventSourceArn).toBeUndefined();
    expect(esm).toMatchObject({
      SelfManagedEventSource: { Endpoints: { KafkaBootstrapServers: ['kafka-1.internal:9096', 'kafka-2.internal:9096'] } },
      SelfManagedKafkaEventSourceConfig: { ConsumerGroupId: 'trace-consumer-v2' },
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      ProvisionedPollerConfig: { MinimumPollers: 1, MaximumPollers: 2 },
      DestinationConfig: { OnFailure: { Destination: 'kafka://trace-survey-failed' } },
    });
    expect(esm.SourceAccessConfigurations).toEqual([
      { Type: 'SASL_SCRAM_512_AUTH', URI: secret },
      { Type: 'VPC_SUBNET', URI: 'subnet:subnet-0kkk' },
      { Type: 'VPC_SUBNET', URI: 'subnet:subnet-0lll' },
      { Type: 'VPC_SECURITY_GROUP', URI: 'security_group:sg-0kafka' },
    ]);
    expect(resourceFor(t, 'ConsumerRole', 'secretsmanager:GetSecretValue')).toEqual([common.dbSecretArn, secret]);
    expect(resourceFor(t, 'ConsumerRole', 'kafka:DescribeClusterV2')).toBeUndefined();
  });

  it('should refuse to package without the parameters a deployment needs, naming them', async () => {
    const run = await runCommand('npx', ['serverless', 'package', '--package', mkdtempSync(join(tmpdir(), 'trace-package-')), '--param=source=self-managed']);
    expect(run.code).not.toBe(0);
    expect(run.stdout + run.stderr).toContain('bootstrapServers must list the brokers');
    expect(run.stdout + run.stderr).toContain('dbSecretArn must be the Secrets Manager ARN');
  });
});
