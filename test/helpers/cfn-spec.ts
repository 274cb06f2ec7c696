/**
 * Checks a CloudFormation template against the CloudFormation resource specification, as AWS's CDK team publishes it
 * in machine-readable form (`@aws-cdk/aws-service-spec`): every resource type exists, every property is one the
 * type declares, required properties are present, values have the declared type and allowed value, and every Ref,
 * Fn::GetAtt, Fn::Sub and DependsOn names something that exists. The specification has no string patterns or
 * numeric ranges; the few that matter here are in `CONSTRAINTS`, copied from the AWS API references.
 */
import { loadAwsServiceSpecSync } from '@aws-cdk/aws-service-spec';
import type { PropertyType, Resource, SpecDatabase, TypeDefinition } from '@aws-cdk/service-spec-types';

export interface TemplateResource {
  Type: string;
  Properties?: Record<string, unknown>;
  DependsOn?: string | string[];
  Condition?: string;
}
export interface Template {
  Resources: Record<string, TemplateResource>;
  Outputs?: Record<string, { Value: unknown; Description?: string }>;
  Parameters?: Record<string, unknown>;
  Conditions?: Record<string, unknown>;
}

let database: SpecDatabase | undefined;
const spec = () => (database ??= loadAwsServiceSpecSync());

const INTRINSICS = new Set([
  'Ref',
  'Fn::GetAtt',
  'Fn::Sub',
  'Fn::Join',
  'Fn::If',
  'Fn::Select',
  'Fn::Split',
  'Fn::ImportValue',
  'Fn::GetAZs',
  'Fn::Base64',
  'Fn::FindInMap',
  'Fn::Cidr',
  'Fn::Length',
  'Fn::ToJsonString',
]);
const isIntrinsic = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' &&
  v !== null &&
  !Array.isArray(v) &&
  Object.keys(v).length === 1 &&
  INTRINSICS.has(Object.keys(v)[0]!);

interface Constraint {
  pattern?: RegExp;
  min?: number;
  max?: number;
  maxLength?: number;
}
/** One label of a host name in the reference's KafkaBootstrapServers pattern: letters and digits, inner hyphens. */
const HOST_LABEL = /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/.source;
/**
 * Patterns and ranges from the AWS Lambda API reference (CreateEventSourceMapping and its types), keyed by
 * "<resource type>/<property path>", `[]` standing for an array element.
 */
const CONSTRAINTS: Record<string, Constraint> = {
  'AWS::Lambda::EventSourceMapping/BatchSize': { min: 1, max: 10000 },
  'AWS::Lambda::EventSourceMapping/FunctionResponseTypes[]': { pattern: /^ReportBatchItemFailures$/ },
  'AWS::Lambda::EventSourceMapping/StartingPosition': { pattern: /^(TRIM_HORIZON|LATEST|AT_TIMESTAMP)$/ },
  'AWS::Lambda::EventSourceMapping/MaximumBatchingWindowInSeconds': { min: 0, max: 300 },
  'AWS::Lambda::EventSourceMapping/MaximumRetryAttempts': { min: -1, max: 10000 },
  'AWS::Lambda::EventSourceMapping/MaximumRecordAgeInSeconds': { min: -1, max: 604800 },
  'AWS::Lambda::EventSourceMapping/ProvisionedPollerConfig.MinimumPollers': { min: 1, max: 200 },
  'AWS::Lambda::EventSourceMapping/ProvisionedPollerConfig.MaximumPollers': { min: 1, max: 2000 },
  // The CloudFormation registry schema's (the Lambda API reference gives none).
  'AWS::Lambda::EventSourceMapping/ProvisionedPollerConfig.PollerGroupName': {
    pattern: /^[a-zA-Z0-9-_]*$/,
    maxLength: 128,
  },
  'AWS::Lambda::EventSourceMapping/Topics[]': { pattern: /^[^.]([a-zA-Z0-9\-_.]+)$/, maxLength: 249 },
  'AWS::Lambda::EventSourceMapping/AmazonManagedKafkaEventSourceConfig.ConsumerGroupId': {
    pattern: /^[a-zA-Z0-9-/*:_+=.@-]*$/,
    maxLength: 200,
  },
  'AWS::Lambda::EventSourceMapping/SelfManagedKafkaEventSourceConfig.ConsumerGroupId': {
    pattern: /^[a-zA-Z0-9-/*:_+=.@-]*$/,
    maxLength: 200,
  },
  'AWS::Lambda::EventSourceMapping/SelfManagedEventSource.Endpoints.KafkaBootstrapServers[]': {
    pattern: new RegExp(`^(${HOST_LABEL}\\.)*${HOST_LABEL}:[0-9]{1,5}$`),
    maxLength: 300,
  },
  'AWS::Lambda::EventSourceMapping/SourceAccessConfigurations[].URI': {
    pattern: /^[a-zA-Z0-9-/*:_+=.@-]*$/,
    maxLength: 200,
  },
  'AWS::Lambda::EventSourceMapping/EventSourceArn': {
    pattern: /^arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9-])+:([a-z]{2}(-gov)?-[a-z]+-\d{1})?:(\d{12})?:(.*)$/,
  },
  'AWS::Lambda::EventSourceMapping/DestinationConfig.OnFailure.Destination': {
    pattern:
      /^(arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9-])+:([a-z]{2}(-gov)?-[a-z]+-\d{1})?:(\d{12})?:(.*))|(kafka:\/\/[\w.-]+)$/,
    maxLength: 1024,
  },
  'AWS::Lambda::Function/ReservedConcurrentExecutions': { min: 0 },
  'AWS::Lambda::Function/MemorySize': { min: 128, max: 10240 },
  'AWS::Lambda::Function/Timeout': { min: 1, max: 900 },
  'AWS::CloudWatch::Alarm/EvaluationPeriods': { min: 1 },
  'AWS::CloudWatch::Alarm/DatapointsToAlarm': { min: 1 },
  'AWS::CloudWatch::Alarm/Period': { min: 10 },
};

function resourceSpec(type: string): Resource | undefined {
  return spec().lookup('resource', 'cloudFormationType', 'equals', type)[0];
}

/** Problems with one value against its declared type; none when an intrinsic function computes it. */
function checkValue(value: unknown, type: PropertyType, path: string, problems: string[]): void {
  if (isIntrinsic(value)) return;
  const fail = (expected: string) => problems.push(`${path}: expected ${expected}, got ${JSON.stringify(value)}`);
  switch (type.type) {
    case 'string':
      if (typeof value !== 'string') return void fail('a string');
      if (type.allowedValues && !type.allowedValues.includes(value)) fail(`one of ${type.allowedValues.join(', ')}`);
      return;
    case 'integer':
      if (!Number.isInteger(typeof value === 'string' ? Number(value) : value)) return void fail('an integer');
      if (type.allowedValues && !type.allowedValues.includes(Number(value)))
        fail(`one of ${type.allowedValues.join(', ')}`);
      return;
    case 'number':
      if (!Number.isFinite(typeof value === 'string' ? Number(value) : value)) fail('a number');
      return;
    case 'boolean':
      if (typeof value !== 'boolean' && value !== 'true' && value !== 'false') fail('a boolean');
      return;
    case 'date-time':
      if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) fail('a date-time');
      return;
    case 'json':
      if (typeof value !== 'object' && typeof value !== 'string') fail('a JSON object');
      return;
    case 'null':
      if (value !== null) fail('null');
      return;
    case 'tag':
      if (typeof value !== 'object' || value === null || !('Key' in value)) fail('a tag {Key, Value}');
      return;
    case 'array':
      if (!Array.isArray(value)) return void fail('an array');
      for (const [i, v] of value.entries()) checkValue(v, type.element, `${path}[${i}]`, problems);
      return;
    case 'map':
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return void fail('a map');
      for (const [k, v] of Object.entries(value)) checkValue(v, type.element, `${path}.${k}`, problems);
      return;
    case 'union': {
      const attempts = type.types.map((member) => {
        const own: string[] = [];
        checkValue(value, member, path, own);
        return own;
      });
      if (!attempts.some((a) => a.length === 0)) problems.push(...attempts.sort((a, b) => a.length - b.length)[0]!);
      return;
    }
    case 'ref': {
      const definition = spec().get('typeDefinition', type.reference.$ref) as TypeDefinition;
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        return void fail(`an object (${definition.name})`);
      checkProperties(value as Record<string, unknown>, definition.properties, path, problems);
      return;
    }
  }
}

function checkProperties(
  values: Record<string, unknown>,
  declared: Resource['properties'],
  path: string,
  problems: string[],
) {
  for (const [name, property] of Object.entries(declared)) {
    if (property.required && !(name in values)) problems.push(`${path}.${name}: required property missing`);
  }
  for (const [name, value] of Object.entries(values)) {
    const property = declared[name];
    if (!property) {
      problems.push(`${path}.${name}: not a property of this type (valid: ${Object.keys(declared).sort().join(', ')})`);
      continue;
    }
    checkValue(value, property.type, `${path}.${name}`, problems);
  }
}

/** Walks the raw property values to apply `CONSTRAINTS` by path. */
function checkConstraints(type: string, id: string, properties: Record<string, unknown>, problems: string[]) {
  const visit = (value: unknown, path: string) => {
    const constraint = CONSTRAINTS[`${type}/${path}`];
    if (constraint && !isIntrinsic(value)) {
      const where = `${id}.${path}`;
      if (constraint.pattern && !(typeof value === 'string' && constraint.pattern.test(value)))
        problems.push(`${where}: ${JSON.stringify(value)} does not match ${constraint.pattern}`);
      if (constraint.maxLength !== undefined && typeof value === 'string' && value.length > constraint.maxLength)
        problems.push(`${where}: longer than ${constraint.maxLength}`);
      if (constraint.min !== undefined && Number(value) < constraint.min)
        problems.push(`${where}: ${String(value)} is below ${constraint.min}`);
      if (constraint.max !== undefined && Number(value) > constraint.max)
        problems.push(`${where}: ${String(value)} is above ${constraint.max}`);
    }
    if (Array.isArray(value)) for (const v of value) visit(v, `${path}[]`);
    else if (typeof value === 'object' && value !== null && !isIntrinsic(value)) {
      for (const [k, v] of Object.entries(value)) visit(v, path ? `${path}.${k}` : k);
    }
  };
  visit(properties, '');
}

const PSEUDO = new Set([
  'AWS::AccountId',
  'AWS::NotificationARNs',
  'AWS::NoValue',
  'AWS::Partition',
  'AWS::Region',
  'AWS::StackId',
  'AWS::StackName',
  'AWS::URLSuffix',
]);

/** Every Ref, GetAtt and Sub variable anywhere in `value` names a resource (with that attribute) or a parameter. */
function checkReferences(value: unknown, where: string, template: Template, problems: string[]): void {
  const names = (name: string) => name in template.Resources || name in (template.Parameters ?? {}) || PSEUDO.has(name);
  const getAtt = (target: string, attribute: string) => {
    const resource = template.Resources[target];
    if (!resource) return void problems.push(`${where}: Fn::GetAtt target ${target} does not exist`);
    const attributes = resourceSpec(resource.Type)?.attributes ?? {};
    if (!(attribute in attributes))
      problems.push(
        `${where}: ${resource.Type} has no attribute ${attribute} (has ${Object.keys(attributes).join(', ')})`,
      );
  };
  if (Array.isArray(value)) {
    for (const v of value) checkReferences(v, where, template, problems);
    return;
  }
  if (typeof value !== 'object' || value === null) return;
  for (const [key, inner] of Object.entries(value)) {
    if (key === 'Ref') {
      if (typeof inner !== 'string' || !names(inner))
        problems.push(`${where}: Ref target ${JSON.stringify(inner)} does not exist`);
    } else if (key === 'Fn::GetAtt') {
      const [target, ...attribute] = Array.isArray(inner) ? (inner as string[]) : String(inner).split('.');
      getAtt(String(target), attribute.join('.'));
    } else if (key === 'Fn::Sub') {
      const [text, variables = {}] = Array.isArray(inner)
        ? (inner as [string, Record<string, unknown>])
        : [inner as string];
      for (const [, expression] of String(text).matchAll(/\$\{(?!!)([^}]+)\}/g)) {
        const [target, ...attribute] = expression!.split('.');
        if (target! in variables) continue;
        if (attribute.length > 0) getAtt(target!, attribute.join('.'));
        else if (!names(target!))
          problems.push(`${where}: Fn::Sub variable \${${expression}} names nothing in the template`);
      }
      checkReferences(variables, where, template, problems);
    } else checkReferences(inner, where, template, problems);
  }
}

/** Every problem the specification finds in `template`; an empty list means it passed. */
export function specProblems(template: Template): string[] {
  const problems: string[] = [];
  for (const [id, resource] of Object.entries(template.Resources)) {
    const definition = resourceSpec(resource.Type);
    if (!definition) {
      if (!resource.Type.startsWith('Custom::')) problems.push(`${id}: unknown resource type ${resource.Type}`);
      continue;
    }
    checkProperties(resource.Properties ?? {}, definition.properties, id, problems);
    checkConstraints(resource.Type, id, resource.Properties ?? {}, problems);
    checkReferences(resource.Properties ?? {}, id, template, problems);
    for (const dependency of [resource.DependsOn ?? []].flat()) {
      if (!(dependency in template.Resources)) problems.push(`${id}: DependsOn ${dependency} does not exist`);
    }
  }
  for (const [id, output] of Object.entries(template.Outputs ?? {}))
    checkReferences(output.Value, `Outputs.${id}`, template, problems);
  return problems;
}
