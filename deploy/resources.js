// @ts-check
/**
 * The parts of serverless.yml that depend on which Kafka the consumer reads (Amazon MSK or self-managed) and on
 * optional parameters: the event source mapping, the two functions' IAM roles, and the functions' VPC settings.
 * serverless.yml reads each as `${file(deploy/resources.js):<name>}`; the Serverless CLI calls the function with
 * the resolved parameters. Plain CommonJS because the CLI loads it with require().
 *
 * The mapping is a plain AWS::Lambda::EventSourceMapping rather than an `msk`/`kafka` function event: neither event
 * syntax can set FunctionResponseTypes, retries, bisect or an MSK destination, and the partial batch response the
 * consumer returns is only honoured with ReportBatchItemFailures in provisioned poller mode.
 * https://docs.aws.amazon.com/lambda/latest/dg/kafka-retry-configurations.html
 */

/** Reads every parameter this file uses, with its type. */
async function readParams(resolveVariable) {
  const p = async (name) => String((await resolveVariable(`param:${name}`)) ?? '').trim();
  const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);
  return {
    source: await p('source'),
    mskClusterArn: await p('mskClusterArn'),
    mskAuth: await p('mskAuth'),
    kafkaSecretArn: await p('kafkaSecretArn'),
    bootstrapServers: list(await p('bootstrapServers')),
    brokerSubnetIds: list(await p('brokerSubnetIds')),
    brokerSecurityGroupId: await p('brokerSecurityGroupId'),
    topic: await p('topic'),
    consumerGroup: await p('consumerGroup'),
    batchSize: Number(await p('batchSize')),
    batchingWindowSeconds: Number(await p('batchingWindowSeconds')),
    startingPosition: await p('startingPosition'),
    minPollers: Number(await p('minPollers')),
    maxPollers: Number(await p('maxPollers')),
    maxRetryAttempts: Number(await p('maxRetryAttempts')),
    maxRecordAgeSeconds: Number(await p('maxRecordAgeSeconds')),
    bisectOnError: (await p('bisectOnError')) === 'true',
    failureDestinationType: await p('failureDestinationType'),
    failureDestination: await p('failureDestination'),
    subnetIds: list(await p('subnetIds')),
    securityGroupIds: list(await p('securityGroupIds')),
    dbSecretArn: await p('dbSecretArn'),
    kmsKeyArn: await p('kmsKeyArn'),
    alarms: (await p('alarms')) === 'true',
    alarmTopicArn: await p('alarmTopicArn'),
    metricsNamespace: await p('metricsNamespace'),
    deadLetterAlarmThreshold: Number(await p('deadLetterAlarmThreshold')),
    lagAlarmSeconds: Number(await p('lagAlarmSeconds')),
  };
}

/**
 * Checks the parameters a deployment needs. Commands aimed at one function (`invoke local -f`, `deploy function -f`,
 * `logs -f`) do not create the mapping, so they are not held up by a missing cluster.
 */
function validate(params, options) {
  if (options && options.function) return;
  const problems = [];
  const need = (ok, message) => ok || problems.push(message);
  need(['msk', 'self-managed'].includes(params.source), `source must be "msk" or "self-managed" (got "${params.source}")`);
  if (params.source === 'msk') {
    need(/^arn:aws[\w-]*:kafka:[\w-]+:\d{12}:cluster\/[^/]+\/[^/]+$/.test(params.mskClusterArn), 'mskClusterArn must be the ARN of an MSK cluster');
    need(['iam', 'sasl-scram'].includes(params.mskAuth), `mskAuth must be "iam" or "sasl-scram" (got "${params.mskAuth}")`);
    if (params.mskAuth === 'sasl-scram') need(isSecretArn(params.kafkaSecretArn), 'kafkaSecretArn must be a Secrets Manager ARN for SASL/SCRAM');
  }
  if (params.source === 'self-managed') {
    need(params.bootstrapServers.length > 0, 'bootstrapServers must list the brokers (host:port,host:port)');
    need(!params.kafkaSecretArn || isSecretArn(params.kafkaSecretArn), 'kafkaSecretArn must be a Secrets Manager ARN');
    need(params.brokerSubnetIds.length === 0 || Boolean(params.brokerSecurityGroupId), 'brokerSecurityGroupId is required with brokerSubnetIds');
  }
  need(Number.isInteger(params.batchSize) && params.batchSize >= 1 && params.batchSize <= 10000, 'batchSize must be 1-10000');
  need(Number.isInteger(params.batchingWindowSeconds) && params.batchingWindowSeconds >= 0 && params.batchingWindowSeconds <= 300, 'batchingWindowSeconds must be 0-300');
  need(['TRIM_HORIZON', 'LATEST'].includes(params.startingPosition), 'startingPosition must be TRIM_HORIZON or LATEST');
  need(Number.isInteger(params.minPollers) && params.minPollers >= 1 && params.minPollers <= 200, 'minPollers must be 1-200');
  need(Number.isInteger(params.maxPollers) && params.maxPollers >= params.minPollers && params.maxPollers <= 2000, 'maxPollers must be minPollers-2000');
  need(Number.isInteger(params.maxRetryAttempts) && params.maxRetryAttempts >= -1 && params.maxRetryAttempts <= 10000, 'maxRetryAttempts must be -1 (infinite) to 10000');
  need(params.maxRecordAgeSeconds === -1 || (params.maxRecordAgeSeconds >= 60 && params.maxRecordAgeSeconds <= 604800), 'maxRecordAgeSeconds must be -1 (infinite) or 60-604800');
  need(['none', 'sqs', 'sns', 's3', 'kafka'].includes(params.failureDestinationType), 'failureDestinationType must be none, sqs, sns, s3 or kafka');
  if (params.failureDestinationType === 'kafka') need(/^kafka:\/\/[\w.-]+$/.test(params.failureDestination), 'failureDestination must be kafka://<topic> for a Kafka destination');
  else if (params.failureDestinationType !== 'none') {
    need(params.failureDestination.startsWith(`arn:aws:${params.failureDestinationType}:`) || params.failureDestination.startsWith(`arn:aws-`), `failureDestination must be the ${params.failureDestinationType.toUpperCase()} ARN`);
  }
  need(isSecretArn(params.dbSecretArn), 'dbSecretArn must be the Secrets Manager ARN of the database credentials');
  need(params.subnetIds.length > 0 && params.securityGroupIds.length > 0, 'subnetIds and securityGroupIds must name the database VPC subnets and security groups');
  if (params.alarms) {
    need(!params.alarmTopicArn || /^arn:aws[\w-]*:sns:/.test(params.alarmTopicArn), 'alarmTopicArn must be an SNS topic ARN');
    need(Number.isInteger(params.deadLetterAlarmThreshold) && params.deadLetterAlarmThreshold >= 0, 'deadLetterAlarmThreshold must be a whole number');
    need(Number.isInteger(params.lagAlarmSeconds) && params.lagAlarmSeconds > 0, 'lagAlarmSeconds must be a positive whole number');
  }
  if (problems.length > 0) {
    throw new Error(`Invalid deploy parameters:\n  - ${problems.join('\n  - ')}\nPass them as --param="name=value" (see the README's deploy section).`);
  }
}

const isSecretArn = (s) => /^arn:aws[\w-]*:secretsmanager:[\w-]+:\d{12}:secret:.+$/.test(s);

/** Topic and consumer group ARNs of an MSK cluster, for kafka-cluster: IAM actions. */
function mskArns(clusterArn, topic, group) {
  const [prefix, rest] = clusterArn.split(':cluster/');
  return {
    cluster: clusterArn,
    topic: `${prefix}:topic/${rest}/${topic}`,
    group: `${prefix}:group/${rest}/${group}`,
  };
}

function eventSourceMapping(params) {
  const isMsk = params.source === 'msk';
  const access = [];
  if (params.kafkaSecretArn && (!isMsk || params.mskAuth === 'sasl-scram')) {
    access.push({ Type: 'SASL_SCRAM_512_AUTH', URI: params.kafkaSecretArn });
  }
  if (!isMsk) {
    for (const subnet of params.brokerSubnetIds) access.push({ Type: 'VPC_SUBNET', URI: `subnet:${subnet}` });
    if (params.brokerSecurityGroupId) access.push({ Type: 'VPC_SECURITY_GROUP', URI: `security_group:${params.brokerSecurityGroupId}` });
  }
  const properties = {
    FunctionName: { 'Fn::GetAtt': ['ConsumerLambdaFunction', 'Arn'] },
    Topics: [params.topic],
    StartingPosition: params.startingPosition,
    BatchSize: params.batchSize,
    MaximumBatchingWindowInSeconds: params.batchingWindowSeconds,
    FunctionResponseTypes: ['ReportBatchItemFailures'],
    ProvisionedPollerConfig: { MinimumPollers: params.minPollers, MaximumPollers: params.maxPollers },
    MaximumRetryAttempts: params.maxRetryAttempts,
    MaximumRecordAgeInSeconds: params.maxRecordAgeSeconds,
    BisectBatchOnFunctionError: params.bisectOnError,
    ...(isMsk
      ? {
          EventSourceArn: params.mskClusterArn,
          AmazonManagedKafkaEventSourceConfig: { ConsumerGroupId: params.consumerGroup },
        }
      : {
          SelfManagedEventSource: { Endpoints: { KafkaBootstrapServers: params.bootstrapServers } },
          SelfManagedKafkaEventSourceConfig: { ConsumerGroupId: params.consumerGroup },
        }),
    ...(access.length > 0 ? { SourceAccessConfigurations: access } : {}),
    ...(params.failureDestinationType !== 'none' ? { DestinationConfig: { OnFailure: { Destination: params.failureDestination } } } : {}),
  };
  return {
    Type: 'AWS::Lambda::EventSourceMapping',
    // The role must allow reading the cluster before the mapping is created.
    DependsOn: ['ConsumerRole'],
    Properties: properties,
  };
}

const logStatement = (functionKey) => ({
  Effect: 'Allow',
  Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
  Resource: [{ 'Fn::Sub': `arn:\${AWS::Partition}:logs:\${AWS::Region}:\${AWS::AccountId}:log-group:/aws/lambda/\${AWS::StackName}-${functionKey}:*` }],
});

/**
 * Network interfaces for a function (or the mapping's pollers) in a VPC. EC2's Describe actions accept no resource
 * narrower than "*"; the others are limited to this account and region.
 */
const vpcStatements = () => [
  {
    Effect: 'Allow',
    Action: ['ec2:DescribeNetworkInterfaces', 'ec2:DescribeSubnets', 'ec2:DescribeSecurityGroups', 'ec2:DescribeVpcs'],
    Resource: '*',
  },
  {
    Effect: 'Allow',
    Action: ['ec2:CreateNetworkInterface', 'ec2:DeleteNetworkInterface', 'ec2:AssignPrivateIpAddresses', 'ec2:UnassignPrivateIpAddresses'],
    Resource: [{ 'Fn::Sub': 'arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:*' }],
  },
];

function secretStatements(secretArns, kmsKeyArn) {
  const statements = [{ Effect: 'Allow', Action: ['secretsmanager:GetSecretValue'], Resource: secretArns }];
  if (kmsKeyArn) statements.push({ Effect: 'Allow', Action: ['kms:Decrypt'], Resource: [kmsKeyArn] });
  return statements;
}

function consumerStatements(params) {
  const statements = [logStatement('consumer'), ...vpcStatements()];
  const secrets = [params.dbSecretArn];
  if (params.kafkaSecretArn && (params.source !== 'msk' || params.mskAuth === 'sasl-scram')) secrets.push(params.kafkaSecretArn);
  statements.push(...secretStatements(secrets, params.kmsKeyArn));
  if (params.source === 'msk') {
    const arns = mskArns(params.mskClusterArn, params.topic, params.consumerGroup);
    statements.push({ Effect: 'Allow', Action: ['kafka:DescribeClusterV2', 'kafka:GetBootstrapBrokers'], Resource: [arns.cluster] });
    if (params.mskAuth === 'iam') {
      statements.push(
        { Effect: 'Allow', Action: ['kafka-cluster:Connect', 'kafka-cluster:DescribeClusterDynamicConfiguration'], Resource: [arns.cluster] },
        { Effect: 'Allow', Action: ['kafka-cluster:DescribeTopic', 'kafka-cluster:ReadData'], Resource: [arns.topic] },
        { Effect: 'Allow', Action: ['kafka-cluster:DescribeGroup', 'kafka-cluster:AlterGroup'], Resource: [arns.group] },
      );
    }
  }
  const destination = params.failureDestination;
  switch (params.failureDestinationType) {
    case 'sqs':
      statements.push({ Effect: 'Allow', Action: ['sqs:SendMessage'], Resource: [destination] });
      break;
    case 'sns':
      statements.push({ Effect: 'Allow', Action: ['sns:Publish'], Resource: [destination] });
      break;
    case 's3':
      statements.push({ Effect: 'Allow', Action: ['s3:PutObject', 's3:ListBucket'], Resource: [destination, `${destination}/*`] });
      break;
    case 'kafka':
      if (params.source === 'msk' && params.mskAuth === 'iam') {
        const topic = destination.slice('kafka://'.length);
        statements.push({
          Effect: 'Allow',
          Action: ['kafka-cluster:DescribeTopic', 'kafka-cluster:WriteData'],
          Resource: [mskArns(params.mskClusterArn, topic, params.consumerGroup).topic],
        });
      }
      break;
  }
  return statements;
}

function role(name, statements) {
  return {
    Type: 'AWS::IAM::Role',
    Properties: {
      AssumeRolePolicyDocument: {
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Principal: { Service: ['lambda.amazonaws.com'] }, Action: ['sts:AssumeRole'] }],
      },
      Policies: [{ PolicyName: name, PolicyDocument: { Version: '2012-10-17', Statement: statements } }],
    },
  };
}

/**
 * Three alarms on the consumer's EMF metrics, for an on-call engineer: records reported for retry (the database or
 * the network is failing), records dead-lettered (upstream sends what cannot be stored), and lag (the oldest record
 * of a batch is older than lagAlarmSeconds: the consumer is falling behind or stuck on a partition).
 */
function alarms(params) {
  const actions = params.alarmTopicArn ? { AlarmActions: [params.alarmTopicArn], OKActions: [params.alarmTopicArn] } : {};
  const metric = (name, statistic) => ({
    Namespace: params.metricsNamespace,
    MetricName: name,
    Dimensions: [{ Name: 'service', Value: 'trace-consumer' }, { Name: 'topic', Value: params.topic }],
    Statistic: statistic,
    Period: 300,
  });
  const alarm = (description, props) => ({
    Type: 'AWS::CloudWatch::Alarm',
    Properties: {
      AlarmDescription: description,
      TreatMissingData: 'notBreaching',
      ComparisonOperator: 'GreaterThanThreshold',
      ...actions,
      ...props,
    },
  });
  return {
    ConsumerFailuresAlarm: alarm('trace-consumer: records failed and were reported for retry. Check the error log lines: usually the database is unreachable.', {
      ...metric('RecordsFailed', 'Sum'), Threshold: 0, EvaluationPeriods: 3, DatapointsToAlarm: 2,
    }),
    ConsumerDeadLettersAlarm: alarm('trace-consumer: records were dead-lettered. Query dead_letters by reason; upstream is sending what cannot be stored.', {
      ...metric('RecordsDeadLettered', 'Sum'), Threshold: params.deadLetterAlarmThreshold, EvaluationPeriods: 1,
    }),
    ConsumerLagAlarm: alarm(`trace-consumer: the oldest record of a batch is older than ${params.lagAlarmSeconds} s. The consumer is falling behind or stuck.`, {
      ...metric('OldestRecordAge', 'Maximum'), Threshold: params.lagAlarmSeconds * 1000, EvaluationPeriods: 3, DatapointsToAlarm: 3,
    }),
  };
}

async function build({ options, resolveVariable }) {
  const params = await readParams(resolveVariable);
  validate(params, options);
  return { params };
}

module.exports = {
  /** CloudFormation resources: the event source mapping and one least-privilege role per function. */
  async resources(context) {
    const { params } = await build(context);
    return {
      ConsumerEventSourceMapping: eventSourceMapping(params),
      ConsumerRole: role('trace-consumer', consumerStatements(params)),
      HealthRole: role('trace-consumer-health', [logStatement('health'), ...vpcStatements(), ...secretStatements([params.dbSecretArn], params.kmsKeyArn)]),
      // The dead-letter function reaches the database and nothing else: no Kafka, no HTTP route.
      DeadLettersRole: role('trace-consumer-dead-letters', [logStatement('deadLetters'), ...vpcStatements(), ...secretStatements([params.dbSecretArn], params.kmsKeyArn)]),
      ...(params.alarms ? alarms(params) : {}),
    };
  },
  /** The functions' VPC: the database's subnets and security groups. */
  async vpc({ resolveVariable }) {
    const params = await readParams(resolveVariable);
    return { subnetIds: params.subnetIds, securityGroupIds: params.securityGroupIds };
  },
};
