import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/local-db';
import { runCommand } from '../helpers/cli';

/**
 * The Kafka scripts' mistakes as a new user makes them, run as separate processes (npm run kafka, local:esm,
 * produce, replay). None needs a broker: each must stop before or instead of using one, with one message naming
 * cause and fix, exit code 1 and no stack trace.
 */
describe('npm run kafka, local:esm, produce and replay on a setup mistake', () => {
  let taken: Server;
  let takenPort: number;
  let closedPort: number;
  beforeAll(async () => {
    // A port something listens on (a broker already running), and one nothing listens on (no broker started).
    taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    takenPort = (taken.address() as { port: number }).port;
    closedPort = await freePort();
  });
  afterAll(() => new Promise<void>((resolve) => taken.close(() => resolve())));

  const noBroker = () => ({ KAFKA_BROKERS: `127.0.0.1:${closedPort}` });
  const mistakes: {
    mistake: string;
    script: string;
    args: string[];
    env: () => Record<string, string>;
    says: () => string[];
  }[] = [
    {
      mistake: 'local:esm before npm run kafka',
      script: 'scripts/esm/run.ts',
      args: [],
      env: noBroker,
      says: () => [`No Kafka broker answers at 127.0.0.1:${closedPort}`, 'npm run kafka'],
    },
    {
      mistake: 'produce before npm run kafka',
      script: 'scripts/esm/produce.ts',
      args: ['--count', '1'],
      env: noBroker,
      says: () => ['No Kafka broker answers', 'KAFKA_BROKERS'],
    },
    {
      mistake: 'replay before npm run kafka',
      script: 'scripts/esm/replay.ts',
      args: ['--partition', '0', '--from', '0', '--to', '1'],
      env: noBroker,
      says: () => ['No Kafka broker answers'],
    },
    {
      mistake: 'replay with an unknown option',
      script: 'scripts/esm/replay.ts',
      args: ['--bogus'],
      env: noBroker,
      says: () => ["Unknown option '--bogus'", 'docs/local-kafka.md'],
    },
    {
      mistake: 'replay of an on-failure file that is not there',
      script: 'scripts/esm/replay.ts',
      args: ['--on-failure', 'no-such-file.jsonl'],
      env: noBroker,
      says: () => ['cannot be read (ENOENT)', 'only when it gives up'],
    },
    {
      mistake: 'produce of an event file that is not there',
      script: 'scripts/esm/produce.ts',
      args: ['--event', 'events/nope.json'],
      env: noBroker,
      says: () => ['--event events/nope.json cannot be read'],
    },
    {
      mistake: 'a second npm run kafka on the same port',
      script: 'scripts/kafka/run.ts',
      args: [],
      env: () => ({ KAFKA_PORT: String(takenPort) }),
      says: () => [`Port ${takenPort} on 127.0.0.1 is in use`, `KAFKA_PORT=${takenPort + 1}`],
    },
    {
      mistake: 'local:esm with a batch size of 0',
      script: 'scripts/esm/run.ts',
      args: [],
      env: () => ({ ...noBroker(), ESM_BATCH_SIZE: '0' }),
      says: () => ['ESM_BATCH_SIZE must be at least 1', 'run it again'],
    },
    {
      mistake: 'npm run kafka with a partition count that is not a number',
      script: 'scripts/kafka/run.ts',
      args: [],
      env: () => ({ KAFKA_PARTITIONS: 'x' }),
      says: () => ['KAFKA_PARTITIONS must be a whole number'],
    },
  ];

  it.each(mistakes)(
    'should name the cause and fix of $mistake, exit 1 and print no stack trace',
    async ({ script, args, env, says }) => {
      const run = await runCommand('npx', ['tsx', script, ...args], env(), 120_000);
      expect(run.code, run.stderr).toBe(1);
      for (const words of says()) expect(run.stderr).toContain(words);
      expect(run.stderr).not.toMatch(/^\s+at /m);
    },
  );
});
