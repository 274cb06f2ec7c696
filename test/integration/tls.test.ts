import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config';
import { createSql } from '../../lib/postgres/client';
import { startLocalDatabase, type LocalDatabase } from '../../scripts/local-db';
import { selfSignedCertificate } from '../helpers/certificates';

// A PostgreSQL server with TLS on, and its certificate as the CA bundle: as an RDS instance and the RDS CA bundle.
let server: LocalDatabase;
let dir: string;

const selfSigned = (name: string) => selfSignedCertificate(dir, name);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'trace-tls-'));
  chmodSync(dir, 0o755);
  selfSigned('server');
  selfSigned('other');
  if (process.getuid?.() === 0) {
    // As root, the server runs as "postgres" (see local-db.ts), and PostgreSQL insists that it owns the key.
    const id = () =>
      execFileSync('id', ['-u', 'postgres'], { stdio: ['ignore', 'pipe', 'ignore'] })
        .toString()
        .trim();
    let uid: string;
    try {
      uid = id();
    } catch {
      execFileSync('sh', ['-c', 'groupadd postgres; useradd -g postgres postgres'], { stdio: 'ignore' });
      uid = id();
    }
    chownSync(join(dir, 'server.key'), Number(uid), -1);
  }
  chmodSync(join(dir, 'server.key'), 0o600);
  const data = join(dir, 'pg');
  mkdirSync(data);
  server = await startLocalDatabase({
    useConfigured: false,
    dir: data,
    postgresFlags: [
      '-c',
      'ssl=on',
      '-c',
      `ssl_cert_file=${join(dir, 'server.crt')}`,
      '-c',
      `ssl_key_file=${join(dir, 'server.key')}`,
    ],
  });
}, 120_000);
afterAll(async () => {
  await server?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

async function sslInUse(env: Record<string, string>) {
  const config = loadConfig({ ...server.env, DB_HOST: 'localhost', ...env });
  const sql = createSql(config.db);
  try {
    const [row] = await sql<{ ssl: boolean }[]>`select ssl from pg_stat_ssl where pid = pg_backend_pid()`;
    return row?.ssl;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

describe('TLS to the database', () => {
  it('should verify the server against the CA bundle with verify-full', async () => {
    expect(await sslInUse({ DB_SSL: 'verify-full', DB_SSL_CA: join(dir, 'server.crt') })).toBe(true);
  });

  it('should refuse a server whose certificate the bundle does not vouch for', async () => {
    await expect(sslInUse({ DB_SSL: 'verify-full', DB_SSL_CA: join(dir, 'other.crt') })).rejects.toThrow(
      /self[- ]signed|unable to verify|certificate/i,
    );
  });

  it('should bind the SCRAM login to the certificate with DB_CHANNEL_BINDING=require (SCRAM-PLUS)', async () => {
    // require refuses any login that is not bound, so a successful one was bound.
    const ca = join(dir, 'server.crt');
    expect(await sslInUse({ DB_SSL: 'verify-full', DB_SSL_CA: ca, DB_CHANNEL_BINDING: 'require' })).toBe(true);
    expect(await sslInUse({ DB_SSL: 'require', DB_CHANNEL_BINDING: 'require' })).toBe(true);
  });

  it('should start TLS on the first byte with DB_SSL_NEGOTIATION=direct (PostgreSQL 17+)', async () => {
    const ca = join(dir, 'server.crt');
    expect(await sslInUse({ DB_SSL: 'verify-full', DB_SSL_CA: ca, DB_SSL_NEGOTIATION: 'direct' })).toBe(true);
  });

  it('should encrypt without verifying with require, and not at all with disable', async () => {
    expect(await sslInUse({ DB_SSL: 'require' })).toBe(true);
    expect(await sslInUse({ DB_SSL: 'disable' })).toBe(false);
  });
});
