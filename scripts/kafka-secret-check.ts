/**
 * What a Kafka secret must hold for the event source mapping to use it, as AWS documents the secret formats:
 * SASL (SCRAM or PLAIN) `{"username", "password"}`, mutual TLS `{"certificate", "privateKey", "privateKeyPassword"?}`,
 * a private root CA `{"certificate"}`. Used by the pre-flight check before a deployment.
 */
export type KafkaSecretPurpose = 'sasl' | 'mtls' | 'root-ca';

const REQUIRED: Record<KafkaSecretPurpose, readonly string[]> = {
  sasl: ['username', 'password'],
  mtls: ['certificate', 'privateKey'],
  'root-ca': ['certificate'],
};

/** Why `secret` cannot serve `purpose`; an empty list means it can. Never includes the secret's values. */
export function kafkaSecretProblems(secret: string, purpose: KafkaSecretPurpose): string[] {
  let json: unknown;
  try {
    json = JSON.parse(secret);
  } catch {
    return ['is not JSON'];
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return ['is not a JSON object'];
  const fields = json as Record<string, unknown>;
  const missing = REQUIRED[purpose].filter((k) => typeof fields[k] !== 'string' || fields[k] === '');
  const problems =
    missing.length > 0 ? [`has no ${missing.map((k) => `"${k}"`).join(' or ')} (needed for ${purpose})`] : [];
  if (
    purpose !== 'sasl' &&
    typeof fields.certificate === 'string' &&
    fields.certificate !== '' &&
    !fields.certificate.includes('-----BEGIN CERTIFICATE-----')
  ) {
    problems.push('"certificate" is not a PEM certificate');
  }
  return problems;
}
