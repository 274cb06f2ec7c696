/**
 * Ctrl-C as a terminal gives it: `npm run kafka`, `npm run local:esm`, `npm run db` and `npm start` run as the
 * leaders of their own process group, which is signalled twice in quick succession (the terminal signals every
 * process of the group, and npm and tsx forward the signal again). Each must then end leaving no process of its group
 * and no folder in its TMPDIR behind (scripts/stop-signals.ts). One run per script: each starts a real server.
 * The Kafka ones are skipped with a notice when Java or the broker is missing (REQUIRE_KAFKA_TESTS=1 fails instead).
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Admin } from '@platformatic/kafka';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../../scripts/local-db';
import { projectRoot } from '../helpers/cli';
import { brokerOrSkip } from '../helpers/kafka';

const TOPIC = 'trace-survey-stop';
const broker = await brokerOrSkip({ [TOPIC]: 2 });
afterAll(async () => {
  await broker?.stop();
});

/** The pids of the processes whose process group is `group`, read from /proc (field 5 of `stat`). */
function groupMembers(group: number): number[] {
  const members: number[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === group) members.push(Number(pid));
    } catch {
      // gone meanwhile
    }
  }
  return members;
}

/** The process's command name (`comm`), or its pid when it is gone meanwhile. */
function command(pid: number): string {
  try {
    return `${readFileSync(`/proc/${pid}/comm`, 'utf8').trim()} (${pid})`;
  } catch {
    return String(pid);
  }
}

/**
 * Folders tools keep in TMPDIR for every run, not left by our scripts: tsx's compile cache (`tsx-<uid>`), and npm's
 * on Node.js 22 and later (`node-compile-cache`, meant to outlive every run, as npm's other caches do).
 */
const caches = (name: string) => /^tsx-\d+$/.test(name) || name === 'node-compile-cache';

interface Stopped {
  output: string;
  /** What TMPDIR holds once npm has exited, tools' caches aside. */
  left: string[];
  /** Processes of the group still running when npm has exited: command names and pids. */
  running: string[];
}

/**
 * Runs `npm run <script>` as the leader of a new process group with its own TMPDIR, waits for `ready` in its output,
 * sends `signal` to the whole group twice, 20 ms apart, and reports what is left once npm has exited.
 */
async function stopTwice(
  script: string,
  args: string[],
  env: Record<string, string>,
  ready: string,
  signal: NodeJS.Signals,
): Promise<Stopped> {
  const tmp = mkdtempSync(join(tmpdir(), 'trace-stop-'));
  chmodSync(tmp, 0o755); // as root the embedded server runs as "postgres", which must enter it
  try {
    const child = spawn('npm', ['run', '--silent', script, ...(args.length ? ['--', ...args] : [])], {
      cwd: projectRoot,
      detached: true, // its own process group, as a terminal's foreground job
      env: { ...process.env, SLS_TELEMETRY_DISABLED: '1', AWS_EC2_METADATA_DISABLED: 'true', ...env, TMPDIR: tmp },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const group = child.pid!;
    let output = '';
    const closed = new Promise<number | null>((resolve) => child.on('close', resolve));
    const isReady = new Promise<void>((resolve) => {
      const read = (chunk: Buffer) => {
        output += chunk.toString('utf8');
        if (output.includes(ready)) resolve();
      };
      child.stdout.on('data', read);
      child.stderr.on('data', read);
    });
    const started = await Promise.race([
      isReady.then(() => true),
      closed.then(() => false),
      sleep(240_000).then(() => false),
    ]);
    if (!started) {
      process.kill(-group, 'SIGKILL');
      throw new Error(`npm run ${script} did not print "${ready}":\n${output}`);
    }
    process.kill(-group, signal);
    await sleep(20);
    process.kill(-group, signal);
    const ended = await Promise.race([closed.then(() => true), sleep(90_000).then(() => false)]);
    if (!ended) {
      process.kill(-group, 'SIGKILL');
      throw new Error(`npm run ${script} did not end within 90 s of ${signal}:\n${output}`);
    }
    // After SIGINT, at once: npm returns only when the script has ended (the shell between them waits out a Ctrl-C),
    // so a server still shutting down then (a PostgreSQL that would refuse the next `npm run db` on the same folder,
    // a JVM holding the port) was left behind. SIGTERM ends that shell at once, and npm with it, while the script is
    // still cleaning up: then the group is given 30 s to end.
    for (let waited = 0; signal !== 'SIGINT' && waited < 30_000 && groupMembers(group).length > 0; waited += 100)
      await sleep(100);
    const running = groupMembers(group).map(command);
    const left = readdirSync(tmp).filter((name) => !caches(name));
    if (running.length > 0) process.kill(-group, 'SIGKILL');
    return { output, left, running };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

describe('a script signalled twice as a process group', () => {
  it('should stop npm run kafka with its JVM and remove the broker folder', async () => {
    if (!broker) return; // skipped with the notice above
    const port = await freePort();
    const stopped = await stopTwice('kafka', [], { KAFKA_PORT: String(port) }, 'export KAFKA_BROKERS', 'SIGTERM');
    expect(stopped).toEqual({ output: expect.stringContaining('Kafka stopped'), left: [], running: [] });
  }, 300_000);

  it('should stop npm run local:esm after leaving its consumer group', async () => {
    if (!broker) return;
    const group = `stop-test-${process.pid}`;
    const stopped = await stopTwice(
      'local:esm',
      [],
      {
        ...inject('database'),
        KAFKA_BROKERS: broker.bootstrap,
        KAFKA_TOPIC: TOPIC,
        KAFKA_CONSUMER_GROUP: group,
        ESM_ON_FAILURE_FILE: join(tmpdir(), `stop-test-${process.pid}.jsonl`),
      },
      'Ctrl-C stops.',
      'SIGINT',
    );
    expect(stopped).toEqual({ output: expect.stringContaining('stopping after'), left: [], running: [] });
    // A mapping killed before it left would stay a member until its session timed out.
    const admin = new Admin({ clientId: 'stop-test', bootstrapBrokers: [broker.bootstrap] });
    try {
      const described = await admin.describeGroups({ groups: [group] });
      expect([...(described.get(group)?.members.keys() ?? [])]).toEqual([]);
    } finally {
      await admin.close();
    }
  }, 300_000);

  it('should stop npm run db with its PostgreSQL, keeping the data folder only', async () => {
    const port = await freePort();
    const parent = mkdtempSync(join(tmpdir(), 'trace-stop-data-'));
    chmodSync(parent, 0o755);
    const data = join(parent, 'pgdata');
    try {
      const stopped = await stopTwice(
        'db',
        ['--data', data, '--port', String(port)],
        {},
        'Ctrl-C stops the',
        'SIGTERM',
      );
      // The data stays, by design; the server that ran on it must be gone.
      expect({ ...stopped, serverGone: !existsSync(join(data, 'data', 'postmaster.pid')) }).toEqual({
        output: expect.stringContaining('Stopping PostgreSQL'),
        left: [],
        running: [],
        serverGone: true,
      });
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  }, 300_000);

  it('should stop npm start with its invoke local and embedded PostgreSQL and remove the data folder', async () => {
    const stopped = await stopTwice('start', [], { DB_HOST: '' }, 'Running serverless invoke', 'SIGINT');
    expect({ left: stopped.left, running: stopped.running }).toEqual({ left: [], running: [] });
    expect(stopped.output).toContain('Stopping: no further events are invoked');
    expect(stopped.output).not.toMatch(/^\s+at /m);
  }, 300_000);
});
