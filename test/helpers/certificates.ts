import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/**
 * Writes a self-signed certificate for localhost and its key as `<dir>/<name>.crt` and `<dir>/<name>.key` (openssl,
 * valid two days): a server's certificate, and the CA bundle that verifies it, in one.
 */
export function selfSignedCertificate(dir: string, name: string): { key: string; crt: string } {
  const key = join(dir, `${name}.key`);
  const crt = join(dir, `${name}.crt`);
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=localhost'].concat([
      '-addext',
      'subjectAltName=DNS:localhost',
      '-keyout',
      key,
      '-out',
      crt,
    ]),
    { stdio: 'ignore' },
  );
  return { key, crt };
}
