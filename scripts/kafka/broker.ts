/**
 * A real single-node Apache Kafka broker (KRaft: broker and controller in one JVM, no ZooKeeper) for local runs and
 * the end-to-end tests. The jars are the official artifacts on Maven Central, fetched once by Maven into `.kafka/`
 * (git-ignored); the data lives in a temporary folder removed on stop.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Admin } from '@platformatic/kafka';
import { freePort } from '../local-db';
import { KafkaBrokerError } from '../errors';
import { onStopSignal } from '../stop-signals';

/** Must match `kafka.version` in scripts/kafka/pom.xml. */
const KAFKA_VERSION = '4.1.1';
const POM = join(__dirname, 'pom.xml');
const CACHE = join(__dirname, '..', '..', '.kafka', 'lib', KAFKA_VERSION);
const COMPLETE = join(CACHE, '.complete');

export interface BrokerOptions {
  /** Topics to create, with their partition counts. */
  topics?: Record<string, number>;
  /** Port for clients; a free one by default. */
  port?: number;
  log?: (line: string) => void;
  /** Milliseconds to wait for the broker to answer. */
  startTimeoutMs?: number;
}

export interface LocalBroker {
  /** `host:port`, the value of KAFKA_BROKERS. */
  bootstrap: string;
  /** Milliseconds from launching the JVM to the topics being created. */
  startMs: number;
  stop(): Promise<void>;
}

/** The major version of the `java` on PATH, or null when there is none. */
function javaMajorVersion(): number | null {
  const result = spawnSync('java', ['-version'], { encoding: 'utf8' });
  if (result.error || result.status !== 0) return null;
  const match = /version "(\d+)(?:\.(\d+))?/.exec(result.stderr);
  if (!match) return null;
  // Java 8 and older report "1.8.0_x".
  return match[1] === '1' ? Number(match[2]) : Number(match[1]);
}

/**
 * The folder holding the broker's jars, downloaded on first use. Maven writes into a fresh folder that is renamed
 * into place when complete, so an interrupted download is never mistaken for a cache. Retried, because the first
 * run of a clean CI machine depends on the network.
 */
async function kafkaJars(log: (line: string) => void = () => {}, attempts = 3): Promise<string> {
  if (existsSync(COMPLETE)) return CACHE;
  mkdirSync(join(CACHE, '..'), { recursive: true });
  let lastError = '';
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const staging = mkdtempSync(join(CACHE, '..', `.download-${KAFKA_VERSION}-`));
    log(`downloading Apache Kafka ${KAFKA_VERSION} from Maven Central (attempt ${attempt} of ${attempts})`);
    const result = await run('mvn', [
      '-q',
      '-B',
      '-f',
      POM,
      'dependency:copy-dependencies',
      '-DincludeScope=runtime',
      `-DoutputDirectory=${staging}`,
    ]);
    if (result.code === 0 && existsSync(join(staging, `kafka_2.13-${KAFKA_VERSION}.jar`))) {
      writeFileSync(join(staging, '.complete'), `${new Date().toISOString()}\n`);
      if (!existsSync(COMPLETE)) {
        rmSync(CACHE, { recursive: true, force: true });
        renameSync(staging, CACHE);
      } else rmSync(staging, { recursive: true, force: true });
      return CACHE;
    }
    rmSync(staging, { recursive: true, force: true });
    lastError = result.output.trim().split('\n').slice(-5).join(' | ') || `mvn exited with ${result.code}`;
    if (attempt < attempts) await sleep(2000 * attempt);
  }
  throw new KafkaBrokerError(`Maven could not fetch org.apache.kafka:kafka_2.13:${KAFKA_VERSION} (${lastError})`);
}

/** Starts a broker on a fresh data folder and creates `topics`; rejects with {@link KafkaBrokerError}. */
export async function startBroker(options: BrokerOptions = {}): Promise<LocalBroker> {
  const log = options.log ?? (() => {});
  const java = javaMajorVersion();
  if (java === null || java < 17)
    throw new KafkaBrokerError(java === null ? 'no java on PATH' : `java ${java} is too old (Kafka 4 needs 17)`);
  const jars = await kafkaJars(log);
  const classpath = join(jars, '*');
  const startedAt = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'trace-kafka-'));
  let child: ChildProcess | undefined;
  let exited: Promise<number | null> = Promise.resolve(null);
  const stop = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const done = await Promise.race([exited.then(() => true), sleep(20_000).then(() => false)]);
      if (!done) child.kill('SIGKILL');
      await exited;
    }
    await rm(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 50 });
  };
  // On Ctrl-C, once the start under way has ended either way, the JVM is stopped and the folder removed before the
  // process ends (scripts/stop-signals.ts says why this is not left to an `exit` handler).
  let settle: () => void = () => {};
  const settled = new Promise<void>((resolve) => (settle = resolve));
  const forget = onStopSignal(async () => {
    await settled;
    await stop();
  });
  try {
    const bootstrap = await launch(
      dir,
      classpath,
      options.port,
      (launched) => {
        child = launched;
        exited = new Promise((resolve) => launched.once('exit', resolve));
        return exited;
      },
      options,
    );
    return {
      bootstrap,
      startMs: Date.now() - startedAt,
      async stop() {
        forget();
        await stop();
      },
    };
  } catch (error) {
    await stop();
    forget();
    throw error;
  } finally {
    settle();
  }
}

/** Formats the storage in `dir`, starts the JVM and creates the topics; the bootstrap address. */
async function launch(
  dir: string,
  classpath: string,
  requestedPort: number | undefined,
  started: (child: ChildProcess) => Promise<number | null>,
  options: BrokerOptions,
): Promise<string> {
  const port = requestedPort ?? (await freePort());
  const controllerPort = await freePort();
  const properties = join(dir, 'server.properties');
  writeFileSync(properties, serverProperties(join(dir, 'data'), port, controllerPort));
  const format = await run('java', [
    '-cp',
    classpath,
    'kafka.tools.StorageTool',
    'format',
    '-t',
    clusterId(),
    '-c',
    properties,
  ]);
  if (format.code !== 0)
    throw new KafkaBrokerError(`formatting the storage failed: ${format.output.trim().split('\n').pop()}`);
  const child = spawn('java', ['-Xms256m', '-Xmx768m', '-cp', classpath, 'kafka.Kafka', properties], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // The JVM's output is only read when it exits during startup; keep its tail, not hours of it.
  let chunks: Buffer[] = [];
  const keep = (c: Buffer) => {
    chunks.push(c);
    if (chunks.length > 200) chunks = chunks.slice(-100);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = started(child);
  const bootstrap = `127.0.0.1:${port}`;
  try {
    await Promise.race([
      createTopics(bootstrap, options.topics ?? {}, options.startTimeoutMs ?? 120_000),
      exited.then((code) => {
        throw new KafkaBrokerError(
          `the JVM exited with ${code}: ` +
            `${Buffer.concat(chunks).toString('utf8').trim().split('\n').slice(-3).join(' | ')}`,
        );
      }),
    ]);
  } catch (error) {
    throw error instanceof KafkaBrokerError ? error : new KafkaBrokerError(`it did not answer on ${bootstrap}`, error);
  }
  return bootstrap;
}

/** Creates the topics, retrying while the broker is still starting; resolves once they exist. */
async function createTopics(bootstrap: string, topics: Record<string, number>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const pending = new Map(Object.entries(topics));
  for (;;) {
    const admin = new Admin({
      clientId: 'trace-local-broker',
      bootstrapBrokers: [bootstrap],
      retries: 0,
      connectTimeout: 2000,
    });
    try {
      await admin.metadata({ topics: [] });
      for (const [topic, partitions] of pending) {
        await admin.createTopics({ topics: [topic], partitions, replicas: 1 });
        pending.delete(topic);
      }
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(250);
    } finally {
      await admin.close().catch(() => {});
    }
  }
}

function serverProperties(dataDir: string, port: number, controllerPort: number): string {
  return [
    'process.roles=broker,controller',
    'node.id=1',
    `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
    `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${port}`,
    'controller.listener.names=CONTROLLER',
    'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    'inter.broker.listener.name=PLAINTEXT',
    `log.dirs=${dataDir}`,
    // One node: every internal topic has a single replica; few partitions keep startup quick on small machines.
    'offsets.topic.replication.factor=1',
    'offsets.topic.num.partitions=4',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'share.coordinator.state.topic.replication.factor=1',
    'share.coordinator.state.topic.min.isr=1',
    // A lone consumer should not wait 3 s for others to join before it gets its partitions.
    'group.initial.rebalance.delay.ms=0',
    // Topics are created on purpose with their partition count, never by a typo in KAFKA_TOPIC.
    'auto.create.topics.enable=false',
    '',
  ].join('\n');
}

/** A KRaft cluster id: 16 random bytes, base64url without padding, as `kafka-storage random-uuid` prints. */
function clusterId(): string {
  return randomBytes(16).toString('base64url');
}

function run(command: string, args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      resolve({ code: -1, output: String(error) });
      return;
    }
    let output = '';
    child.stdout?.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.stderr?.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.on('error', (error) => resolve({ code: -1, output: `${output}${error.message}` }));
    child.on('close', (code) => resolve({ code, output }));
  });
}
