// @ts-check
/**
 * The parts of serverless.yml that depend on which Kafka the consumer reads (Amazon MSK or self-managed) and on
 * optional parameters: the event source mapping, the functions' IAM roles and VPC settings, alarms, the dashboard,
 * outputs and guard rails. serverless.yml reads each as `${file(deploy/resources.js):<name>}`; the Serverless CLI
 * calls the function with the resolved parameters. Plain CommonJS because the CLI loads it with require().
 *
 * The mapping is a plain AWS::Lambda::EventSourceMapping rather than an `msk`/`kafka` function event: neither event
 * syntax can set FunctionResponseTypes, retries, bisect, metrics or an MSK destination, and the partial batch
 * response the consumer returns is only honoured with ReportBatchItemFailures in provisioned poller mode.
 * https://docs.aws.amazon.com/lambda/latest/dg/kafka-retry-configurations.html
 *
 * Every AWS rule encoded here is also checked, independently, by test/helpers/aws-rules.ts on packaged templates.
 */

const { readFileSync } = require('node:fs');
const { join } = require('node:path');

/** Authentication choices and the SourceAccessConfigurations type each one puts on the mapping. */
const MSK_AUTH = { iam: null, 'sasl-scram': 'SASL_SCRAM_512_AUTH', mtls: 'CLIENT_CERTIFICATE_TLS_AUTH' };
const SELF_MANAGED_AUTH = {
  none: null,
  'sasl-scram-512': 'SASL_SCRAM_512_AUTH',
  'sasl-scram-256': 'SASL_SCRAM_256_AUTH',
  'sasl-plain': 'BASIC_AUTH',
  mtls: 'CLIENT_CERTIFICATE_TLS_AUTH',
};
/** How the health function is reached: a public HTTP API, one that needs SigV4-signed requests, or only `invoke`. */
const HEALTH_ROUTES = ['public', 'iam', 'none'];
const HEALTH_PATHS = ['/healthz', '/healthz/live', '/healthz/ready'];
/**
 * The mapping's system log levels, most detail first (LoggingConfig.SystemLogLevel): DEBUG includes INFO, INFO
 * includes WARN. https://docs.aws.amazon.com/lambda/latest/dg/esm-logging.html
 */
const ESM_SYSTEM_LOG_LEVELS = ['DEBUG', 'INFO', 'WARN'];
/** The largest maxRecordBytes and maxTextChars: INPUT_CAP_CEILING of lib/config.ts (deploy-guards.test.ts compares). */
const INPUT_CAP_CEILING = 6 * 1024 * 1024;

/**
 * Raised for a deployment's parameter mistakes. The CLI prints `error.stack` of whatever a variable resolver throws;
 * the stack of this error is its message alone, so the user reads one plain message instead of a trace into the
 * CLI's internals.
 */
class DeployParameterError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'DeployParameterError';
    this.stack = message;
  }
}

/** Reads every parameter this file uses, with its type. */
async function readParams(resolveVariable) {
  const p = async (name) => String((await resolveVariable(`param:${name}`)) ?? '').trim();
  const list = (s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean);
  const optionalInt = (s) => (s === '' ? null : Number(s));
  // Only the two words: "yes" or "True" must not quietly mean false (prod without alarms, a batch never bisected).
  const flag = (s) => (s === 'true' ? true : s === 'false' ? false : null);
  return {
    stage: String(await resolveVariable('sls:stage')),
    region: String(await resolveVariable('self:provider.region')),
    source: await p('source'),
    mskClusterArn: await p('mskClusterArn'),
    mskAuth: await p('mskAuth'),
    selfManagedAuth: await p('selfManagedAuth'),
    kafkaSecretArn: await p('kafkaSecretArn'),
    kafkaRootCaSecretArn: await p('kafkaRootCaSecretArn'),
    bootstrapServers: list(await p('bootstrapServers')),
    brokerSubnetIds: list(await p('brokerSubnetIds')),
    brokerSecurityGroupId: await p('brokerSecurityGroupId'),
    topic: await p('topic'),
    consumerGroup: await p('consumerGroup'),
    mapping: await p('mapping'),
    batchSize: Number(await p('batchSize')),
    batchingWindowSeconds: Number(await p('batchingWindowSeconds')),
    startingPosition: await p('startingPosition'),
    minPollers: Number(await p('minPollers')),
    maxPollers: Number(await p('maxPollers')),
    pollerGroupName: await p('pollerGroupName'),
    esmSystemLogLevel: await p('esmSystemLogLevel'),
    maxRetryAttempts: Number(await p('maxRetryAttempts')),
    maxRecordAgeSeconds: Number(await p('maxRecordAgeSeconds')),
    allowDiscard: flag(await p('allowDiscard')),
    bisectOnError: flag(await p('bisectOnError')),
    failureDestinationType: await p('failureDestinationType'),
    failureDestination: await p('failureDestination'),
    failureDestinationKmsKeyArn: await p('failureDestinationKmsKeyArn'),
    subnetIds: list(await p('subnetIds')),
    securityGroupIds: list(await p('securityGroupIds')),
    dbSecretArn: await p('dbSecretArn'),
    healthDbSecretArn: await p('healthDbSecretArn'),
    healthRoute: await p('healthRoute'),
    dbSsl: await p('dbSsl'),
    allowInsecureDb: flag(await p('allowInsecureDb')),
    allowSharedHealthSecret: flag(await p('allowSharedHealthSecret')),
    kmsKeyArns: list(await p('kmsKeyArn')),
    consumerReservedConcurrency: optionalInt(await p('consumerReservedConcurrency')),
    healthReservedConcurrency: optionalInt(await p('healthReservedConcurrency')),
    timeout: Number(await p('timeout')),
    deadLettersTimeout: Number(await p('deadLettersTimeout')),
    healthThrottleRate: Number(await p('healthThrottleRate')),
    healthThrottleBurst: Number(await p('healthThrottleBurst')),
    healthStaleAfterSeconds: await p('healthStaleAfterSeconds'),
    maxRecordBytes: await p('maxRecordBytes'),
    maxTextChars: await p('maxTextChars'),
    alarms: flag(await p('alarms')),
    alarmTopicArn: await p('alarmTopicArn'),
    alarmEmail: await p('alarmEmail'),
    metricsNamespace: await p('metricsNamespace'),
    deadLetterAlarmThreshold: Number(await p('deadLetterAlarmThreshold')),
    lagAlarmSeconds: Number(await p('lagAlarmSeconds')),
    offsetLagAlarmRecords: Number(await p('offsetLagAlarmRecords')),
  };
}

/** Levenshtein distance, to suggest the parameter a misspelled name meant. */
function distance(a, b) {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = Math.min(
        row[j] + 1,
        row[j - 1] + 1,
        diagonal + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1),
      );
      diagonal = above;
    }
  }
  return row[b.length];
}

/**
 * The declared parameters closest to a misspelled name: within a quarter of its length (at least 2 edits), or
 * containing it (`kmsKey` for `kmsKeyArn`), best first, at most three. Empty when nothing is close: listing all the
 * parameters would bury the one that was meant.
 */
function closestNames(name, valid) {
  const lower = name.toLowerCase();
  const limit = Math.max(2, Math.ceil(name.length / 4));
  return valid
    .map((candidate) => ({ candidate, d: distance(name, candidate) }))
    .filter(({ candidate, d }) => d <= limit || (lower.length >= 4 && candidate.toLowerCase().includes(lower)))
    .sort((a, b) => a.d - b.d || a.candidate.localeCompare(b.candidate))
    .slice(0, 3)
    .map(({ candidate }) => candidate);
}

/**
 * `--param` names that serverless.yml does not declare. The CLI would silently ignore them, so a typo
 * (`--param="consumergroup=..."`) would deploy the default instead of what the user asked for.
 */
async function unknownParamProblems(options, resolveConfigurationProperty) {
  const given = [].concat(options?.param || []).map((entry) => String(entry).split('=')[0].trim());
  const declared = (await resolveConfigurationProperty(['params'])) || {};
  const valid = [...new Set(Object.values(declared).flatMap((stage) => Object.keys(stage || {})))].sort();
  return [...new Set(given.filter((name) => !valid.includes(name)))].map((name) => {
    const closest = closestNames(name, valid);
    const hint =
      closest.length > 0
        ? `did you mean ${closest.map((c) => `"${c}"`).join(' or ')}?`
        : 'see the table in docs/deploy.md, "Parameters"';
    return `${name}: not a parameter of this service; ${hint}`;
  });
}

/**
 * Checks the parameters a deployment needs. Commands aimed at one function (`invoke local -f`, `deploy function -f`,
 * `logs -f`) do not create the mapping, so they are not held up by a missing cluster.
 */
function validate(params, options) {
  if (options?.function) return [];
  const problems = [];
  const need = (ok, message) => ok || problems.push(message);
  const isMsk = params.source === 'msk';
  need(
    ['msk', 'self-managed'].includes(params.source),
    `source must be "msk" or "self-managed" (got "${params.source}")`,
  );
  if (isMsk) {
    need(
      /^arn:aws[\w-]*:kafka:[\w-]+:\d{12}:cluster\/[^/]+\/[^/]+$/.test(params.mskClusterArn),
      'mskClusterArn must be the ARN of an MSK cluster',
    );
    need(
      params.mskAuth in MSK_AUTH,
      `mskAuth must be one of ${Object.keys(MSK_AUTH).join(', ')} (got "${params.mskAuth}")`,
    );
    need(
      params.mskAuth === 'iam' ? !params.kafkaSecretArn : isSecretArn(params.kafkaSecretArn),
      params.mskAuth === 'iam'
        ? 'kafkaSecretArn is not used with mskAuth=iam; remove it'
        : `kafkaSecretArn must be a Secrets Manager ARN for mskAuth=${params.mskAuth}${FULL_ARN}`,
    );
    // MSK refuses SCRAM secrets under the default aws/secretsmanager key, and the mapping decrypts with the role.
    // MSK only associates SCRAM secrets whose name starts with AmazonMSK_; the mapping must use that same secret.
    if (params.mskAuth === 'sasl-scram' && isSecretArn(params.kafkaSecretArn)) {
      need(
        /:secret:AmazonMSK_/.test(params.kafkaSecretArn),
        'kafkaSecretArn must be the SCRAM secret associated with the cluster, whose name starts with AmazonMSK_',
      );
    }
    if (params.mskAuth === 'sasl-scram')
      need(
        params.kmsKeyArns.length > 0,
        'kmsKeyArn must name the customer-managed KMS key of the SCRAM secret: MSK does not accept secrets ' +
          'encrypted with the default key',
      );
    need(
      !params.kafkaRootCaSecretArn,
      'kafkaRootCaSecretArn is for self-managed brokers only: MSK brokers use certificates Lambda already trusts',
    );
    need(
      params.brokerSubnetIds.length === 0 && !params.brokerSecurityGroupId && params.bootstrapServers.length === 0,
      'bootstrapServers, brokerSubnetIds and brokerSecurityGroupId are for self-managed Kafka; MSK takes its ' +
        'network from the cluster',
    );
  } else if (params.source === 'self-managed') {
    need(params.bootstrapServers.length > 0, 'bootstrapServers must list the brokers (host:port,host:port)');
    need(
      params.bootstrapServers.every((s) => /^[A-Za-z0-9.-]+:\d{1,5}$/.test(s)),
      'bootstrapServers must be host:port entries',
    );
    need(
      params.selfManagedAuth in SELF_MANAGED_AUTH,
      `selfManagedAuth must be one of ${Object.keys(SELF_MANAGED_AUTH).join(', ')} (got "${params.selfManagedAuth}")`,
    );
    need(
      params.selfManagedAuth === 'none' ? !params.kafkaSecretArn : isSecretArn(params.kafkaSecretArn),
      params.selfManagedAuth === 'none'
        ? 'kafkaSecretArn is set but selfManagedAuth=none: choose sasl-scram-512, sasl-scram-256, sasl-plain or mtls'
        : `kafkaSecretArn must be a Secrets Manager ARN for selfManagedAuth=${params.selfManagedAuth}${FULL_ARN}`,
    );
    need(
      !params.kafkaRootCaSecretArn || isSecretArn(params.kafkaRootCaSecretArn),
      `kafkaRootCaSecretArn must be a Secrets Manager ARN${FULL_ARN}`,
    );
    need(
      params.brokerSubnetIds.length === 0 || Boolean(params.brokerSecurityGroupId),
      'brokerSecurityGroupId is required with brokerSubnetIds',
    );
    need(
      !params.brokerSecurityGroupId || params.brokerSubnetIds.length > 0,
      'brokerSubnetIds are required with brokerSecurityGroupId',
    );
  }
  need(params.kmsKeyArns.every(isKmsKeyArn), 'kmsKeyArn must be KMS key ARNs, comma-separated');
  need(/^[a-zA-Z0-9._-]{1,249}$/.test(params.topic), 'topic must be a Kafka topic name');
  need(
    /^[a-zA-Z0-9-/*:_+=.@]{1,200}$/.test(params.consumerGroup),
    'consumerGroup must be 1-200 characters of letters, digits and -/*:_+=.@',
  );
  need(
    ['enabled', 'removed'].includes(params.mapping),
    'mapping must be "enabled" or "removed" (see docs/deploy.md, "Changing the consumer group or starting position")',
  );
  need(
    Number.isInteger(params.batchSize) && params.batchSize >= 1 && params.batchSize <= 10000,
    'batchSize must be 1-10000',
  );
  need(
    Number.isInteger(params.batchingWindowSeconds) &&
      params.batchingWindowSeconds >= 0 &&
      params.batchingWindowSeconds <= 300,
    'batchingWindowSeconds must be 0-300',
  );
  need(['TRIM_HORIZON', 'LATEST'].includes(params.startingPosition), 'startingPosition must be TRIM_HORIZON or LATEST');
  need(
    Number.isInteger(params.minPollers) && params.minPollers >= 1 && params.minPollers <= 200,
    'minPollers must be 1-200',
  );
  need(
    Number.isInteger(params.maxPollers) && params.maxPollers >= params.minPollers && params.maxPollers <= 2000,
    'maxPollers must be minPollers-2000',
  );
  // The CloudFormation schema's pattern and length; the group's other rules (one VPC, at most 100 mappings, 2,000
  // pollers in all) span stacks, so docs/deploy.md states them instead.
  need(
    /^[a-zA-Z0-9_-]{0,128}$/.test(params.pollerGroupName),
    `pollerGroupName must be up to 128 letters, digits, - and _ (got "${params.pollerGroupName}"), or empty for ` +
      "pollers of the mapping's own",
  );
  need(
    ['', ...ESM_SYSTEM_LOG_LEVELS].includes(params.esmSystemLogLevel),
    'esmSystemLogLevel must be DEBUG, INFO or WARN (upper case; WARN, the least detail, includes the errors), or ' +
      `empty for no system logs (got "${params.esmSystemLogLevel}")`,
  );
  need(
    Number.isInteger(params.maxRetryAttempts) && params.maxRetryAttempts >= -1 && params.maxRetryAttempts <= 10000,
    'maxRetryAttempts must be -1 (infinite) to 10000',
  );
  need(
    params.maxRecordAgeSeconds === -1 || (params.maxRecordAgeSeconds >= 60 && params.maxRecordAgeSeconds <= 604800),
    'maxRecordAgeSeconds must be -1 (infinite) or 60-604800',
  );
  need(
    ['none', 'sqs', 'sns', 's3', 'kafka'].includes(params.failureDestinationType),
    'failureDestinationType must be none, sqs, sns, s3 or kafka',
  );
  if (params.failureDestinationType === 'kafka') {
    need(
      /^kafka:\/\/[\w.-]+$/.test(params.failureDestination),
      'failureDestination must be kafka://<topic> for a Kafka destination',
    );
    need(
      params.failureDestination !== `kafka://${params.topic}`,
      'failureDestination must not be the topic the consumer reads',
    );
  } else if (params.failureDestinationType !== 'none') {
    const service = params.failureDestinationType;
    const pattern =
      service === 's3'
        ? /^arn:aws[\w-]*:s3:::[a-z0-9.-]{3,63}$/
        : new RegExp(`^arn:aws[\\w-]*:${service}:[\\w-]+:\\d{12}:[\\w.-]+$`);
    need(pattern.test(params.failureDestination), `failureDestination must be the ${service.toUpperCase()} ARN`);
  } else {
    need(!params.failureDestination, 'failureDestination is set but failureDestinationType=none');
  }
  // Without a destination, a batch that exhausts its retries or its age is dropped with no trace: a deploy before
  // `db:apply` spends 11 attempts in ~40 ms, a rejected password in ~600 ms. Unbounded, it waits for the fix, and the
  // alarms (OffsetLag, OldestRecordAge, errors) say it is waiting.
  need(params.allowDiscard !== null, 'allowDiscard must be "true" or "false"');
  if (params.failureDestinationType === 'none' && params.allowDiscard === false) {
    const bounded = [
      ...(params.maxRetryAttempts !== -1 ? [`maxRetryAttempts=${params.maxRetryAttempts}`] : []),
      ...(params.maxRecordAgeSeconds !== -1 ? [`maxRecordAgeSeconds=${params.maxRecordAgeSeconds}`] : []),
    ];
    need(
      bounded.length === 0,
      `${bounded.join(' and ')} without a failure destination: Lambda would discard a batch that reaches ` +
        `${bounded.length > 1 ? 'either limit' : 'it'}, ` +
        'records lost without a trace. Leave the default -1 (retried until the cause is fixed), or set ' +
        'failureDestinationType and failureDestination, or accept the loss with --param="allowDiscard=true" ' +
        '(docs/deploy.md, "Retries and failed records")',
    );
  }
  need(
    !params.failureDestinationKmsKeyArn ||
      (isKmsKeyArn(params.failureDestinationKmsKeyArn) && ['sqs', 'sns', 's3'].includes(params.failureDestinationType)),
    'failureDestinationKmsKeyArn must be a KMS key ARN, for an sqs, sns or s3 destination',
  );
  need(
    isSecretArn(params.dbSecretArn),
    `dbSecretArn must be the Secrets Manager ARN of the database credentials${FULL_ARN}`,
  );
  need(
    params.subnetIds.length > 0 && params.securityGroupIds.length > 0,
    'subnetIds and securityGroupIds must name the database VPC subnets and security groups',
  );
  // EC2's id formats (8 or 17 hex digits), as CloudFormation checks them: a typo fails here, not mid-deployment.
  for (const [name, ids, prefix] of [
    ['subnetIds', params.subnetIds, 'subnet'],
    ['brokerSubnetIds', params.brokerSubnetIds, 'subnet'],
    ['securityGroupIds', params.securityGroupIds, 'sg'],
    ['brokerSecurityGroupId', [params.brokerSecurityGroupId].filter(Boolean), 'sg'],
  ]) {
    const bad = ids.filter((id) => !new RegExp(`^${prefix}-([0-9a-f]{8}|[0-9a-f]{17})$`).test(id));
    need(
      bad.length === 0,
      `${name}: ${bad.join(', ')} ${bad.length === 1 ? 'is' : 'are'} not ${
        prefix === 'sg' ? 'security ' + 'group' : 'subnet'
      } ids (${prefix}- and 8 or 17 hex digits)`,
    );
  }
  for (const name of ['consumerReservedConcurrency', 'healthReservedConcurrency']) {
    const value = params[name];
    // 0 is valid for Lambda but throttles every invocation: a consumer that only piles up lag, a health URL that only
    // answers errors. Pausing the consumer is mapping=removed.
    need(
      value === null || (Number.isInteger(value) && value >= 1 && value <= 1000),
      `${name} must be empty (unreserved) or a whole number 1-1000 (0 would throttle every invocation; to pause ` +
        `the consumer use mapping=removed)`,
    );
  }
  // The consumer answers TIME_RESERVE_MS (5 s) before Lambda's timeout and validates and writes in what is left: with
  // timeout=5 nothing is left, every record of every batch is reported for retry, and every partition stalls.
  need(
    Number.isInteger(params.timeout) && params.timeout >= 10 && params.timeout <= 900,
    'timeout must be whole seconds, 10-900: the consumer keeps 5 s (TIME_RESERVE_MS) to answer in and needs ' +
      'seconds more to work',
  );
  // `serverless invoke` waits 120 s for an answer, then gives up and invokes again: an operator's redrive must answer
  // within that, or set AWS_CLIENT_TIMEOUT (docs/deploy.md).
  need(
    Number.isInteger(params.deadLettersTimeout) && params.deadLettersTimeout >= 10 && params.deadLettersTimeout <= 900,
    'deadLettersTimeout must be whole seconds, 10-900',
  );
  // The input caps (MAX_RECORD_BYTES, MAX_TEXT_CHARS of lib/config.ts, the same bounds): Lambda hands the consumer at
  // most 6 MB per invocation, base64 included, so a larger cap is never reached; a survey report alone is a few KB.
  for (const [name, unit] of [
    ['maxRecordBytes', 'bytes of a record value'],
    ['maxTextChars', 'characters of a free-text field'],
  ]) {
    need(
      /^\d+$/.test(params[name]) && Number(params[name]) >= 1024 && Number(params[name]) <= INPUT_CAP_CEILING,
      `${name} must be whole ${unit}, 1024-${INPUT_CAP_CEILING} (6 MiB, Lambda's invocation payload limit)`,
    );
  }
  need(params.bisectOnError !== null, 'bisectOnError must be "true" or "false"');
  need(params.alarms !== null, 'alarms must be "true" or "false"');
  need(
    params.alarms !== false || (!params.alarmTopicArn && !params.alarmEmail),
    'alarmTopicArn and alarmEmail only take effect with alarms=true: add --param="alarms=true" or leave them out',
  );
  need(
    !(isMsk && params.mskAuth === 'iam' && params.consumerGroup.includes('*')),
    'consumerGroup must not contain "*" with mskAuth=iam: in the group ARN the role is granted, "*" would allow ' +
      'every matching group',
  );
  // The mapping reads a cluster of its own region, and the functions' SDK clients call their own region's endpoints.
  const arns = [
    ['mskClusterArn', isMsk ? [params.mskClusterArn] : []],
    ['kafkaSecretArn', [params.kafkaSecretArn]],
    ['kafkaRootCaSecretArn', [params.kafkaRootCaSecretArn]],
    ['dbSecretArn', [params.dbSecretArn]],
    ['kmsKeyArn', params.kmsKeyArns],
    ['alarmTopicArn', [params.alarmTopicArn]],
  ]; // CloudWatch alarms notify topics of their own region only
  for (const [name, values] of arns) {
    for (const arn of values.filter((a) => /^arn:[^:]+:[^:]+:[\w-]+:/.test(a))) {
      const region = arn.split(':')[3];
      need(
        region === params.region,
        `${name} ${arn} is in ${region}, but the stack deploys to ${params.region}: use --region ${region}, or ` +
          `resources of ${params.region}`,
      );
    }
  }
  need(
    !params.healthDbSecretArn || isSecretArn(params.healthDbSecretArn),
    `healthDbSecretArn must be the Secrets Manager ARN of the health function's read-only credentials${FULL_ARN}`,
  );
  need(
    HEALTH_ROUTES.includes(params.healthRoute),
    `healthRoute must be one of ${HEALTH_ROUTES.join(', ')} (got "${params.healthRoute}")`,
  );
  need(
    Number.isFinite(params.healthThrottleRate) && params.healthThrottleRate > 0,
    'healthThrottleRate must be a positive number of requests per second',
  );
  need(
    Number.isInteger(params.healthThrottleBurst) && params.healthThrottleBurst > 0,
    'healthThrottleBurst must be a positive whole number',
  );
  need(
    params.healthStaleAfterSeconds === 'never' || /^\d+$/.test(params.healthStaleAfterSeconds),
    'healthStaleAfterSeconds must be "never" or whole seconds',
  );
  if (params.alarms) {
    need(
      !params.alarmTopicArn || /^arn:aws[\w-]*:sns:[\w-]+:\d{12}:[\w-]+$/.test(params.alarmTopicArn),
      'alarmTopicArn must be an SNS topic ARN',
    );
    need(!params.alarmEmail || /^[^@\s]+@[^@\s]+$/.test(params.alarmEmail), 'alarmEmail must be an email address');
    need(
      !(params.alarmTopicArn && params.alarmEmail),
      'alarmEmail subscribes to the topic the stack creates; with alarmTopicArn, subscribe to your own topic instead',
    );
    need(
      Number.isInteger(params.deadLetterAlarmThreshold) && params.deadLetterAlarmThreshold >= 0,
      'deadLetterAlarmThreshold must be a whole number',
    );
    need(
      Number.isInteger(params.lagAlarmSeconds) && params.lagAlarmSeconds > 0,
      'lagAlarmSeconds must be a positive whole number',
    );
    need(
      Number.isInteger(params.offsetLagAlarmRecords) && params.offsetLagAlarmRecords > 0,
      'offsetLagAlarmRecords must be a positive whole number',
    );
  }
  return problems;
}

/** Where the read-only role of the health function is created. */
const HEALTH_ROLE_DOC = 'docs/operations.md, "A read-only role for the health function"';

/**
 * What keeps a deployed stack safe whatever the stage is called (`live`, `prd` and `prodeu` are as real as `prod`):
 * the functions verify the database's certificate, and the health function, whose routes may be public, does not
 * hold the consumer's read-write secret. Each can be accepted on purpose, by a parameter that says so.
 * `dbSslChecked` is false when lib/config.ts already refuses the value (`verify_full`): said once, in its words.
 */
function safetyProblems(params, dbSslChecked) {
  const problems = [];
  const need = (ok, message) => ok || problems.push(message);
  need(params.allowInsecureDb !== null, 'allowInsecureDb must be "true" or "false"');
  need(params.allowSharedHealthSecret !== null, 'allowSharedHealthSecret must be "true" or "false"');
  // Compared as lib/config.ts reads DB_SSL (trimmed, case-insensitively), where an empty value means disable.
  if (dbSslChecked && params.dbSsl.toLowerCase() !== 'verify-full' && params.allowInsecureDb !== true) {
    problems.push(
      `dbSsl=${params.dbSsl || '(empty: disable)'}: the functions would not verify the database's certificate, so ` +
        'whoever answers at dbHost gets the connection. Use dbSsl=verify-full (the default; the RDS CAs ship with ' +
        'the Lambda runtime), or accept it with --param="allowInsecureDb=true"',
    );
  }
  const shared = !params.healthDbSecretArn || params.healthDbSecretArn === params.dbSecretArn;
  const exposed = params.healthRoute === 'public' ? ', whose routes anyone can call,' : '';
  if (shared && params.allowSharedHealthSecret !== true) {
    problems.push(
      params.healthDbSecretArn
        ? `healthDbSecretArn is dbSecretArn, the consumer's read-write secret: the health function${exposed} ` +
            `would hold it. Pass the secret of its read-only role (${HEALTH_ROLE_DOC}), or leave ` +
            'healthDbSecretArn out and accept the shared secret with --param="allowSharedHealthSecret=true"'
        : `healthDbSecretArn is not set, so the health function${exposed} would connect with the consumer's ` +
            `read-write secret (dbSecretArn). Pass the secret of its read-only role ` +
            `(--param="healthDbSecretArn=<ARN>", ${HEALTH_ROLE_DOC}), or accept the shared secret with ` +
            '--param="allowSharedHealthSecret=true"',
    );
  }
  need(
    !(params.allowSharedHealthSecret === true && !shared),
    'allowSharedHealthSecret=true takes no effect: healthDbSecretArn already gives the health function a secret ' +
      'of its own. Leave allowSharedHealthSecret out',
  );
  return problems;
}

/**
 * What packages but deserves a second look: printed by the CLI run, without stopping it. Alarms that notify a topic
 * nobody reads are the same as no alarms; a failing batch waits for its fix silently without them.
 */
function warnings(params, options) {
  if (options?.function) return [];
  const result = [];
  if (params.alarms && !params.alarmTopicArn && !params.alarmEmail) {
    result.push(
      'alarms=true, but nobody is subscribed to the alarm topic the stack creates: add ' +
        '--param="alarmEmail=<on-call address>" or --param="alarmTopicArn=<your topic>", or subscribe to the ' +
        'AlarmTopicArn output after the deploy.',
    );
  }
  if (!params.alarms && params.failureDestinationType === 'none' && params.mapping === 'enabled') {
    result.push(
      'alarms=false and no failure destination: a batch that keeps failing (database down, schema not applied) holds ' +
        'its partition until fixed, and no alarm says so. Add --param="alarms=true" with alarmEmail, or watch ' +
        'the dashboard.',
    );
  }
  return result;
}

// The full ARN, with the six characters Secrets Manager appends to the name: a grant on the name alone matches nothing.
const isSecretArn = (s) => /^arn:aws[\w-]*:secretsmanager:[\w-]+:\d{12}:secret:[\w/+=.@-]+-[A-Za-z0-9]{6}$/.test(s);
const FULL_ARN = ', in full: arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 characters>';
const isKmsKeyArn = (s) => /^arn:aws[\w-]*:kms:[\w-]+:\d{12}:key\/[\w-]+$/.test(s);

/** Topic and consumer group ARNs of an MSK cluster, for kafka-cluster: IAM actions. */
function mskArns(clusterArn, topic, group) {
  const [prefix, rest] = clusterArn.split(':cluster/');
  return {
    cluster: clusterArn,
    topic: `${prefix}:topic/${rest}/${topic}`,
    group: `${prefix}:group/${rest}/${group}`,
  };
}

/** The secrets the mapping reads: the authentication secret and, self-managed, the brokers' private root CA. */
function kafkaSecrets(params) {
  const auth = params.source === 'msk' ? MSK_AUTH[params.mskAuth] : SELF_MANAGED_AUTH[params.selfManagedAuth];
  const secrets = [];
  if (auth) secrets.push({ Type: auth, URI: params.kafkaSecretArn });
  if (params.source !== 'msk' && params.kafkaRootCaSecretArn)
    secrets.push({ Type: 'SERVER_ROOT_CA_CERTIFICATE', URI: params.kafkaRootCaSecretArn });
  return secrets;
}

function eventSourceMapping(params) {
  const isMsk = params.source === 'msk';
  const access = kafkaSecrets(params);
  if (!isMsk) {
    for (const subnet of params.brokerSubnetIds) access.push({ Type: 'VPC_SUBNET', URI: `subnet:${subnet}` });
    if (params.brokerSecurityGroupId)
      access.push({ Type: 'VPC_SECURITY_GROUP', URI: `security_group:${params.brokerSecurityGroupId}` });
  }
  const properties = {
    FunctionName: { 'Fn::GetAtt': ['ConsumerLambdaFunction', 'Arn'] },
    Topics: [params.topic],
    StartingPosition: params.startingPosition,
    BatchSize: params.batchSize,
    MaximumBatchingWindowInSeconds: params.batchingWindowSeconds,
    FunctionResponseTypes: ['ReportBatchItemFailures'],
    ProvisionedPollerConfig: {
      MinimumPollers: params.minPollers,
      MaximumPollers: params.maxPollers,
      // Shares event poller capacity with the other mappings of the group (in the same VPC).
      ...(params.pollerGroupName ? { PollerGroupName: params.pollerGroupName } : {}),
    },
    MaximumRetryAttempts: params.maxRetryAttempts,
    MaximumRecordAgeInSeconds: params.maxRecordAgeSeconds,
    BisectBatchOnFunctionError: params.bisectOnError,
    // The mapping's own CloudWatch metrics: polled/filtered/dropped events, errors and the Kafka OffsetLag.
    MetricsConfig: { Metrics: ['EventCount', 'ErrorCount', 'KafkaMetrics'] },
    // The pollers' own log lines (connection, authentication, offset commits), written to the function's log group
    // in a stream of their own with the function's role: its log grant covers them. Provisioned mode only.
    ...(params.esmSystemLogLevel ? { LoggingConfig: { SystemLogLevel: params.esmSystemLogLevel } } : {}),
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
    ...(params.failureDestinationType !== 'none'
      ? { DestinationConfig: { OnFailure: { Destination: params.failureDestination } } }
      : {}),
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
  Resource: [
    {
      'Fn::Sub':
        `arn:\${AWS::Partition}:logs:\${AWS::Region}:\${AWS::AccountId}:log-group:` +
        `/aws/lambda/\${AWS::StackName}-${functionKey}:*`,
    },
  ],
});

/**
 * Network interfaces for a function in a VPC (what AWSLambdaVPCAccessExecutionRole grants), and, for a mapping whose
 * pollers run in a VPC (MSK, or self-managed brokers with subnets), the two Describe calls the pollers add. EC2's
 * Describe actions accept no resource narrower than "*"; the others are limited to this account and region.
 */
const vpcStatements = (pollersInVpc = false) => [
  {
    Effect: 'Allow',
    Action: [
      'ec2:DescribeNetworkInterfaces',
      'ec2:DescribeSubnets',
      ...(pollersInVpc ? ['ec2:DescribeSecurityGroups', 'ec2:DescribeVpcs'] : []),
    ],
    Resource: '*',
  },
  {
    Effect: 'Allow',
    Action: [
      'ec2:CreateNetworkInterface',
      'ec2:DeleteNetworkInterface',
      'ec2:AssignPrivateIpAddresses',
      'ec2:UnassignPrivateIpAddresses',
    ],
    Resource: [{ 'Fn::Sub': 'arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:*' }],
  },
];

function secretStatements(secretArns, kmsKeyArns) {
  const statements = [{ Effect: 'Allow', Action: ['secretsmanager:GetSecretValue'], Resource: secretArns }];
  if (kmsKeyArns.length > 0) statements.push({ Effect: 'Allow', Action: ['kms:Decrypt'], Resource: kmsKeyArns });
  return statements;
}

/** What the mapping needs to deliver records that exhausted their retries. */
function destinationStatements(params) {
  const destination = params.failureDestination;
  const statements = [];
  switch (params.failureDestinationType) {
    case 'sqs':
      statements.push({ Effect: 'Allow', Action: ['sqs:SendMessage'], Resource: [destination] });
      break;
    case 'sns':
      statements.push({ Effect: 'Allow', Action: ['sns:Publish'], Resource: [destination] });
      break;
    case 's3':
      statements.push({ Effect: 'Allow', Action: ['s3:ListBucket'], Resource: [destination] });
      statements.push({ Effect: 'Allow', Action: ['s3:PutObject'], Resource: [`${destination}/*`] });
      break;
    case 'kafka':
      // Self-managed brokers and MSK with SASL/mTLS authorise the write with the mapping's Kafka credentials.
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
  if (params.failureDestinationKmsKeyArn) {
    statements.push({
      Effect: 'Allow',
      Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
      Resource: [params.failureDestinationKmsKeyArn],
    });
  }
  return statements;
}

/** The consumer's role: what the function itself needs, plus what its mapping needs while there is one. */
function consumerStatements(params) {
  const mapping = params.mapping === 'enabled';
  const statements = [
    logStatement('consumer'),
    ...vpcStatements(mapping && (params.source === 'msk' || params.brokerSubnetIds.length > 0)),
  ];
  const secrets = [params.dbSecretArn, ...(mapping ? kafkaSecrets(params).map((s) => s.URI) : [])];
  statements.push(...secretStatements(secrets, params.kmsKeyArns));
  if (!mapping) return statements;
  if (params.source === 'msk') {
    const arns = mskArns(params.mskClusterArn, params.topic, params.consumerGroup);
    statements.push({ Effect: 'Allow', Action: ['kafka:DescribeClusterV2'], Resource: [arns.cluster] });
    // The Service Authorization Reference lists no resource type for GetBootstrapBrokers: only "*" matches.
    statements.push({ Effect: 'Allow', Action: ['kafka:GetBootstrapBrokers'], Resource: '*' });
    if (params.mskAuth === 'iam') {
      statements.push(
        {
          Effect: 'Allow',
          Action: ['kafka-cluster:Connect', 'kafka-cluster:DescribeClusterDynamicConfiguration'],
          Resource: [arns.cluster],
        },
        { Effect: 'Allow', Action: ['kafka-cluster:DescribeTopic', 'kafka-cluster:ReadData'], Resource: [arns.topic] },
        {
          Effect: 'Allow',
          Action: ['kafka-cluster:DescribeGroup', 'kafka-cluster:AlterGroup'],
          Resource: [arns.group],
        },
      );
    }
  }
  statements.push(...destinationStatements(params));
  return statements;
}

/**
 * The console of the stack's partition: the ARN checks accept aws-cn and aws-us-gov, so the dashboard link must too.
 */
function consoleHost(region) {
  if (region.startsWith('cn-')) return 'console.amazonaws.cn';
  if (region.startsWith('us-gov-')) return 'console.amazonaws-us-gov.com';
  return `${region}.console.aws.amazon.com`;
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

/** Where alarms notify: the given topic, or one this stack creates (with an optional email subscription). */
function alarmTarget(params) {
  if (params.alarmTopicArn) return { target: params.alarmTopicArn, resources: {} };
  const resources = {
    AlarmTopic: { Type: 'AWS::SNS::Topic', Properties: { DisplayName: 'trace-consumer alarms' } },
    ...(params.alarmEmail
      ? {
          AlarmEmailSubscription: {
            Type: 'AWS::SNS::Subscription',
            Properties: { TopicArn: { Ref: 'AlarmTopic' }, Protocol: 'email', Endpoint: params.alarmEmail },
          },
        }
      : {}),
  };
  return { target: { Ref: 'AlarmTopic' }, resources };
}

/**
 * Alarms for an on-call engineer. Missing data is breaching where silence itself is the failure: the mapping's
 * OffsetLag stops when the mapping is disabled or broken, and a topic that should be busy goes quiet when nothing is
 * stored. The consumer's own metrics are only written when a batch arrives, so for them silence means "no batch".
 */
function alarms(params) {
  const { target, resources } = alarmTarget(params);
  const consumerMetric = (name, statistic, period) => ({
    Namespace: params.metricsNamespace,
    MetricName: name,
    Dimensions: [
      { Name: 'service', Value: 'trace-consumer' },
      { Name: 'topic', Value: params.topic },
    ],
    Statistic: statistic,
    Period: period,
  });
  const lambdaMetric = (name, statistic, period) => ({
    Namespace: 'AWS/Lambda',
    MetricName: name,
    Dimensions: [{ Name: 'FunctionName', Value: { Ref: 'ConsumerLambdaFunction' } }],
    Statistic: statistic,
    Period: period,
  });
  const alarm = (description, missing, props) => ({
    Type: 'AWS::CloudWatch::Alarm',
    Properties: {
      AlarmDescription: description,
      TreatMissingData: missing,
      ComparisonOperator: 'GreaterThanThreshold',
      AlarmActions: [target],
      OKActions: [target],
      ...props,
    },
  });
  const result = {
    ...resources,
    ConsumerFailuresAlarm: alarm(
      'trace-consumer: records failed and were reported for retry. Check the error log lines: usually the ' +
        'database is unreachable.',
      'notBreaching',
      {
        ...consumerMetric('RecordsFailed', 'Sum', 300),
        Threshold: 0,
        EvaluationPeriods: 3,
        DatapointsToAlarm: 2,
      },
    ),
    ConsumerDeadLettersAlarm: alarm(
      `trace-consumer: more than ${params.deadLetterAlarmThreshold} records a minute were dead-lettered. Query ` +
        `dead_letters by reason; upstream is sending what cannot be stored.`,
      'notBreaching',
      {
        ...consumerMetric('RecordsDeadLettered', 'Sum', 60),
        Threshold: params.deadLetterAlarmThreshold,
        EvaluationPeriods: 1,
      },
    ),
    ConsumerLagAlarm: alarm(
      `trace-consumer: the oldest record of a batch is older than ${params.lagAlarmSeconds} s. The consumer is ` +
        `falling behind or stuck.`,
      'notBreaching',
      {
        ...consumerMetric('OldestRecordAge', 'Maximum', 300),
        Threshold: params.lagAlarmSeconds * 1000,
        EvaluationPeriods: 3,
        DatapointsToAlarm: 3,
      },
    ),
    ConsumerErrorsAlarm: alarm(
      'trace-consumer: the function threw (the whole batch is retried). Read its error lines.',
      'notBreaching',
      {
        ...lambdaMetric('Errors', 'Sum', 300),
        Threshold: 0,
        EvaluationPeriods: 1,
      },
    ),
    ConsumerThrottlesAlarm: alarm(
      'trace-consumer: invocations were throttled. Raise consumerReservedConcurrency or the account limit, or ' +
        'lower maxPollers.',
      'notBreaching',
      {
        ...lambdaMetric('Throttles', 'Sum', 300),
        Threshold: 0,
        EvaluationPeriods: 1,
      },
    ),
  };
  // Without a mapping (cutover, or step 1 of changing its group) there is no lag to measure: the pause is deliberate.
  if (params.mapping === 'enabled') {
    result.ConsumerOffsetLagAlarm = alarm(
      `trace-consumer: the mapping is more than ${params.offsetLagAlarmRecords} records behind, or reports no ` +
        `lag at all (mapping disabled, deleted or failing to poll).`,
      'breaching',
      {
        ...lambdaMetric('OffsetLag', 'Maximum', 300),
        Threshold: params.offsetLagAlarmRecords,
        EvaluationPeriods: 3,
        DatapointsToAlarm: 3,
      },
    );
  }
  if (params.healthStaleAfterSeconds !== 'never') {
    // Freshness: nothing stored for healthStaleAfterSeconds (the same limit /healthz reports as stale).
    const hours = Math.max(1, Math.ceil(Number(params.healthStaleAfterSeconds) / 3600));
    result.ConsumerFreshnessAlarm = alarm(
      `trace-consumer: no trace stored for ${hours} h. Check the mapping's state, OffsetLag and the upstream producer.`,
      'breaching',
      {
        ...consumerMetric('RecordsStored', 'Sum', 3600),
        ComparisonOperator: 'LessThanThreshold',
        Threshold: 1,
        EvaluationPeriods: Math.min(hours, 168),
        DatapointsToAlarm: Math.min(hours, 168),
      },
    );
  }
  return result;
}

/** One dashboard for the consumer: throughput, outcomes, lag, duration, errors and database health. */
function dashboard(params) {
  const ns = params.metricsNamespace;
  const own = (name, label) => [ns, name, 'service', 'trace-consumer', 'topic', params.topic, { label }];
  const fn = (name, label) => ['AWS/Lambda', name, 'FunctionName', '${ConsumerLambdaFunction}', { label }];
  const widget = (x, y, title, metrics, stat) => ({
    type: 'metric',
    x,
    y,
    width: 12,
    height: 6,
    properties: { title, region: '${AWS::Region}', stat, period: 60, view: 'timeSeries', metrics },
  });
  const logs = (x, y, title, query) => ({
    type: 'log',
    x,
    y,
    width: 12,
    height: 6,
    properties: { title, region: '${AWS::Region}', view: 'table', query },
  });
  const body = {
    widgets: [
      widget(
        0,
        0,
        'Throughput (records/min)',
        [own('RecordsReceived', 'received'), own('RecordsStored', 'stored')],
        'Sum',
      ),
      widget(
        12,
        0,
        'Outcomes (records/min)',
        [
          own('RecordsDuplicate', 'duplicate'),
          own('RecordsSuperseded', 'superseded'),
          own('RecordsUpstreamError', 'upstream error'),
          own('RecordsDeadLettered', 'dead-lettered'),
          own('RecordsFailed', 'failed, retried'),
        ],
        'Sum',
      ),
      widget(
        0,
        6,
        'Lag: mapping offset lag (records) and oldest record age (ms)',
        [
          fn('OffsetLag', 'offset lag (records)'),
          [
            ...own('OldestRecordAge', 'oldest record age (ms)').slice(0, 6),
            { label: 'oldest record age (ms)', yAxis: 'right' },
          ],
        ],
        'Maximum',
      ),
      widget(
        12,
        6,
        'Duration (ms)',
        [own('BatchDuration', 'batch (consumer)'), fn('Duration', 'invocation (Lambda)')],
        'Maximum',
      ),
      widget(
        0,
        12,
        'Errors',
        [fn('Errors', 'function errors'), fn('Throttles', 'throttles'), own('RecordsFailed', 'records failed')],
        'Sum',
      ),
      logs(
        12,
        12,
        'Database health: write failures and failed readiness checks',
        "SOURCE '/aws/lambda/${ConsumerLambdaFunction}' | SOURCE '/aws/lambda/${HealthLambdaFunction}' | fields " +
          '@timestamp, message, error.code, error.message, checks.0.error | filter message like /database write ' +
          'failed|not ready|freshness could not be read/ | sort @timestamp desc | limit 50',
      ),
    ],
  };
  return {
    Type: 'AWS::CloudWatch::Dashboard',
    Properties: { DashboardBody: { 'Fn::Sub': JSON.stringify(body) } },
  };
}

/**
 * The functions' environment, checked by the functions' own lib/config.ts (loaded through tsx, a dev dependency like
 * the CLI itself): a `--param="logLevel=verbose"` would otherwise deploy, and every function would then fail at cold
 * start. Each problem is named by the parameter that sets the variable in serverless.yml.
 */
async function environmentProblems(resolveConfigurationProperty) {
  // Also for commands aimed at one function: `deploy function -f` pushes this environment too. The defaults are
  // valid, so `invoke local -f` (whose DB_* come from the shell) is only stopped by a parameter that is wrong anyway.
  const environment = (await resolveConfigurationProperty(['provider', 'environment'])) || {};
  const { loadConfig } = require('tsx/cjs/api').require('../lib/config.ts', __filename);
  try {
    loadConfig(Object.fromEntries(Object.entries(environment).map(([name, value]) => [name, String(value ?? '')])));
    return [];
  } catch (error) {
    if (!Array.isArray(error.problems)) throw error;
    const yml = readFileSync(join(__dirname, '..', 'serverless.yml'), 'utf8');
    const paramOf = Object.fromEntries(
      [...yml.matchAll(/^\s+([A-Z][A-Z0-9_]*): \$\{param:(\w+)\}/gm)].map((m) => [m[1], m[2]]),
    );
    return error.problems.map(({ variable, problem }) => ({
      variable,
      name: paramOf[variable] ?? variable,
      text: `${paramOf[variable] ?? variable} (${variable} of the functions) ${problem}`,
    }));
  }
}

/**
 * Set by deploy/parameter-check-plugin.js when the CLI loads it: the parameter problems are then kept here and
 * reported by the plugin once the command is known, as the CLI's own error, instead of being thrown from this
 * variable resolver, where the CLI would bury them behind its own wrapping ("Cannot resolve serverless.yml:
 * Variables resolution errored with: ... Received rejection: ..."). Without the plugin they are thrown here.
 */
const deferred = { enabled: false, checks: null };

/**
 * Every problem of the parameters, by kind. `safety` holds for whatever deploys: the whole stack and
 * `deploy function -f`, which pushes a function's environment too.
 */
async function check({ options, resolveVariable, resolveConfigurationProperty }) {
  const params = await readParams(resolveVariable);
  const unknown = await unknownParamProblems(options, resolveConfigurationProperty);
  const stack = validate(params, options);
  const environment = await environmentProblems(resolveConfigurationProperty);
  const safety = safetyProblems(
    params,
    environment.every((p) => p.variable !== 'DB_SSL'),
  );
  const said = [...stack, ...safety];
  return {
    params,
    options,
    unknown,
    stack,
    safety,
    // Said once, in the deploy's words, when a deploy check already names the parameter.
    environment: environment
      .filter(({ name }) => !said.some((p) => p.startsWith(`${name} `) || p.startsWith(`${name}=`)))
      .map(({ text }) => text),
    warnings: warnings(params, options),
  };
}

/**
 * The problems that stop `commands`: every one for a command on the whole stack; for `invoke local`, which
 * deploys nothing (its DB_* come from the shell), the parameter names and the functions' environment only; for
 * `deploy function -f`, those and the safety checks.
 */
function problemsFor(checks, commands) {
  const command = commands.join(' ');
  if (command === 'invoke local') return [...checks.unknown, ...checks.environment];
  const safety = !checks.options?.function || command === 'deploy function' ? checks.safety : [];
  return [...checks.unknown, ...checks.stack, ...safety, ...checks.environment];
}

/** Throws the problems that stop `commands` as one message, or prints the warnings. */
function report(checks, commands, ErrorClass = DeployParameterError) {
  const problems = problemsFor(checks, commands);
  if (problems.length > 0) {
    throw new ErrorClass(
      `Invalid deploy parameters:\n  - ${problems.join('\n  - ')}\nPass them as --param="name=value" ` +
        '(docs/deploy.md, "Parameters").',
    );
  }
  for (const warning of checks.warnings) process.stderr.write(`Warning: ${warning}\n`);
}

async function build(context) {
  const checks = await check(context);
  if (deferred.enabled) deferred.checks = checks;
  else report(checks, commandsOf(process.argv));
  return checks.params;
}

/** The CLI's command words, as it reads them: the arguments before the first option (`deploy function -f x`). */
const commandsOf = (argv) => {
  const words = argv.slice(2);
  const first = words.findIndex((w) => w.startsWith('-'));
  return first === -1 ? words : words.slice(0, first);
};

/**
 * The secret the health function connects with: its own read-only role's (healthDbSecretArn), or the consumer's
 * read-write one, which a deployment accepts only with allowSharedHealthSecret=true (safetyProblems).
 */
const healthSecretArn = (params) => params.healthDbSecretArn || params.dbSecretArn;

/** The health function's HTTP API routes: none at all with healthRoute=none (reached by `serverless invoke` only). */
function healthEvents(params) {
  if (params.healthRoute === 'none') return [];
  const authorizer = params.healthRoute === 'iam' ? { authorizer: { type: 'aws_iam' } } : {};
  return HEALTH_PATHS.map((path) => ({ httpApi: { method: 'GET', path, ...authorizer } }));
}

module.exports = {
  /**
   * For deploy/parameter-check-plugin.js: keep the problems for it, and report them for the CLI's `commands`.
   * @returns {(commands: string[], ErrorClass: new (message: string) => Error) => void}
   */
  deferParameterChecks() {
    deferred.enabled = true;
    return (commands, ErrorClass) => {
      const { checks } = deferred;
      deferred.checks = null; // reported once
      if (checks) report(checks, commands, ErrorClass);
    };
  },
  /** CloudFormation resources: the mapping, one least-privilege role per function, alarms and the dashboard. */
  async resources(context) {
    const params = await build(context);
    return {
      ...(params.mapping === 'enabled' ? { ConsumerEventSourceMapping: eventSourceMapping(params) } : {}),
      ConsumerRole: role('trace-consumer', consumerStatements(params)),
      // The health function reads its own secret only: with healthDbSecretArn, never the consumer's credentials.
      HealthRole: role('trace-consumer-health', [
        logStatement('health'),
        ...vpcStatements(),
        ...secretStatements([healthSecretArn(params)], params.kmsKeyArns),
      ]),
      ConsumerDashboard: dashboard(params),
      // The dead-letter function reaches the database and nothing else: no Kafka, no HTTP route.
      DeadLettersRole: role('trace-consumer-dead-letters', [
        logStatement('deadLetters'),
        ...vpcStatements(),
        ...secretStatements([params.dbSecretArn], params.kmsKeyArns),
      ]),
      ...(params.alarms ? alarms(params) : {}),
    };
  },
  /** Stack outputs: where to look (dashboard, health URLs) and what the mapping was created with. */
  async outputs({ resolveVariable }) {
    const params = await readParams(resolveVariable);
    const url = (path) => ({ 'Fn::Sub': `https://\${HttpApi}.execute-api.\${AWS::Region}.\${AWS::URLSuffix}${path}` });
    return {
      DashboardUrl: {
        Description: 'CloudWatch dashboard of the consumer',
        Value: {
          'Fn::Sub':
            `https://${consoleHost(params.region)}/cloudwatch/home` +
            `?region=\${AWS::Region}#dashboards:name=\${ConsumerDashboard}`,
        },
      },
      // No URLs with healthRoute=none: there is no HTTP API then.
      ...(params.healthRoute === 'none'
        ? {}
        : {
            HealthLiveUrl: { Description: 'Liveness', Value: url('/healthz/live') },
            HealthReadyUrl: { Description: 'Readiness: credentials, database, schema', Value: url('/healthz/ready') },
            HealthFreshnessUrl: { Description: 'Freshness: last stored trace', Value: url('/healthz') },
          }),
      // Only while there is a mapping: after mapping=removed they would describe one that no longer exists.
      ...(params.mapping === 'enabled'
        ? {
            KafkaConsumerGroupId: {
              Description: 'Consumer group of the mapping (changing it needs the two-step procedure in docs/deploy.md)',
              Value: params.consumerGroup,
            },
            KafkaStartingPosition: {
              Description: 'Starting position of the mapping (ignored when the group has committed offsets)',
              Value: params.startingPosition,
            },
            // Names the mapping in the CLI and its system logs' stream (esmSystemLogLevel).
            KafkaEventSourceMappingId: {
              Description: "The mapping's id: aws lambda get-event-source-mapping --uuid <id>; its log stream's name",
              Value: { Ref: 'ConsumerEventSourceMapping' },
            },
          }
        : {}),
      ...(params.alarms && !params.alarmTopicArn
        ? {
            AlarmTopicArn: {
              Description: 'SNS topic the alarms notify: subscribe on-call here',
              Value: { Ref: 'AlarmTopic' },
            },
          }
        : {}),
    };
  },
  /** Properties added to resources the CLI generates: reserved concurrency and the health API's throttling. */
  async extensions({ resolveVariable }) {
    const params = await readParams(resolveVariable);
    const concurrency = (value) => (value === null ? {} : { Properties: { ReservedConcurrentExecutions: value } });
    return {
      ...(params.consumerReservedConcurrency === null
        ? {}
        : { ConsumerLambdaFunction: concurrency(params.consumerReservedConcurrency) }),
      ...(params.healthReservedConcurrency === null
        ? {}
        : { HealthLambdaFunction: concurrency(params.healthReservedConcurrency) }),
      // Each health request may open a database connection: a rate limit keeps a public URL from exhausting them.
      ...(params.healthRoute === 'none'
        ? {}
        : {
            HttpApiStage: {
              Properties: {
                DefaultRouteSettings: {
                  DetailedMetricsEnabled: false,
                  ThrottlingRateLimit: params.healthThrottleRate,
                  ThrottlingBurstLimit: params.healthThrottleBurst,
                },
              },
            },
          }),
    };
  },
  /** The health function's HTTP API events (healthRoute). */
  async healthEvents({ resolveVariable }) {
    return healthEvents(await readParams(resolveVariable));
  },
  /** The secret the health function connects with (DB_SECRET_ARN of that function only). */
  async healthSecretArn({ resolveVariable }) {
    return healthSecretArn(await readParams(resolveVariable));
  },
  /** The functions' VPC: the database's subnets and security groups. */
  async vpc({ resolveVariable }) {
    const params = await readParams(resolveVariable);
    return { subnetIds: params.subnetIds, securityGroupIds: params.securityGroupIds };
  },
};
