import { describe, expect, it } from 'vitest';
import { kafkaSecretProblems, type KafkaSecretPurpose } from '../../scripts/kafka-secret-check';

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----';
const FIELDS = {
  username: 'trace',
  password: 'p4ss',
  certificate: PEM,
  privateKey: '-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----',
};
const REQUIRED: Record<KafkaSecretPurpose, (keyof typeof FIELDS)[]> = {
  sasl: ['username', 'password'],
  mtls: ['certificate', 'privateKey'],
  'root-ca': ['certificate'],
};
const PURPOSES = Object.keys(REQUIRED) as KafkaSecretPurpose[];

/** Every subset of the four fields, each present, empty or of the wrong type: 3^4 shapes per purpose. */
function* shapes(): Generator<{
  secret: Record<string, unknown>;
  kinds: Record<string, 'present' | 'empty' | 'number' | 'absent'>;
}> {
  const names = Object.keys(FIELDS) as (keyof typeof FIELDS)[];
  const kinds = ['present', 'empty', 'number', 'absent'] as const;
  for (let n = 0; n < kinds.length ** names.length; n++) {
    const secret: Record<string, unknown> = {};
    const chosen: Record<string, (typeof kinds)[number]> = {};
    names.forEach((name, i) => {
      const kind = kinds[Math.floor(n / kinds.length ** i) % kinds.length]!;
      chosen[name] = kind;
      if (kind === 'present') secret[name] = FIELDS[name];
      if (kind === 'empty') secret[name] = '';
      if (kind === 'number') secret[name] = 42;
    });
    yield { secret, kinds: chosen };
  }
}

describe('kafkaSecretProblems', () => {
  it('should accept a secret exactly when every field its purpose needs is a non-empty string', () => {
    let checked = 0;
    for (const purpose of PURPOSES) {
      for (const { secret, kinds } of shapes()) {
        const usable = REQUIRED[purpose].every((k) => kinds[k] === 'present');
        const problems = kafkaSecretProblems(JSON.stringify(secret), purpose);
        expect(problems.length === 0, `${purpose} ${JSON.stringify(kinds)}: ${problems.join('; ')}`).toBe(usable);
        for (const p of problems) for (const value of Object.values(FIELDS)) expect(p).not.toContain(value);
        checked++;
      }
    }
    expect(checked).toBe(3 * 256);
  });

  it('should name what is wrong with text that is not a JSON object, or a certificate that is not PEM', () => {
    for (const purpose of PURPOSES) {
      expect(kafkaSecretProblems('username=trace', purpose)).toEqual(['is not JSON']);
      expect(kafkaSecretProblems('["trace"]', purpose)).toEqual(['is not a JSON object']);
      expect(kafkaSecretProblems('null', purpose)).toEqual(['is not a JSON object']);
    }
    expect(kafkaSecretProblems(JSON.stringify({ certificate: 'not a pem' }), 'root-ca')).toEqual([
      '"certificate" is not a PEM certificate',
    ]);
    expect(kafkaSecretProblems(JSON.stringify({ password: 'x' }), 'sasl')).toEqual([
      'has no "username" (needed for sasl)',
    ]);
  });
});
