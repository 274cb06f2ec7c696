import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCommand } from '../helpers/cli';
import { testDatabase, type TestDatabase } from '../helpers/db';

/*
 * npm run dead-letters (scripts/dead-letters.ts) as an operator runs it: its exit code, what it prints and where.
 */

let db: TestDatabase;
beforeAll(async () => {
  db = await testDatabase();
});
afterAll(() => db.close());

const deadLetters = (args: string[], env: Record<string, string> = {}) =>
  runCommand('npx', ['tsx', 'scripts/dead-letters.ts', ...args], { ...db.env, ...env });
/** Lines of standard error that are not the JSON log lines of a successful action. */
const messages = (stderr: string) => stderr.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('{'));

describe('npm run dead-letters', () => {
  it('should print the actions and their options for --help, and exit 0 without a database', async () => {
    const run = await deadLetters(['--help'], { DB_PORT: '1' });
    expect(run.code).toBe(0);
    for (const word of ['summary:', 'show:', 'redrive:', 'purge:', '--older-than-days <n>', '--reasons <code,...>'])
      expect(run.stdout).toContain(word);
  });

  it.each([
    [['summary', '--reason', 'x'], '--reason: unknown option (did you mean --reasons?)'],
    [['purge', '--older-than-days', 'ten'], '--older-than-days: must be a whole number'],
    [['purge'], 'purge needs --redriven, --resolved, --older-than-days or --ids'],
  ])('should refuse %j once, naming the options as typed: %s', async (args, says) => {
    const run = await deadLetters(args);
    expect(run.code).toBe(1);
    // One message, no JSON log line repeating it, no stack trace, no request names (olderThanDays).
    expect(run.stderr.trim().split('\n')).toEqual([expect.stringContaining(says)]);
    expect(run.stderr).not.toMatch(/olderThanDays|\n\s+at /);
  });

  it('should name the cause, the place and the fix of a database failure once, its stack only at debug', async () => {
    const run = await deadLetters(['summary'], { DB_PASSWORD: 'wrong' });
    expect(run.code).toBe(1);
    const lines = run.stderr.trim().split('\n');
    expect(lines).toEqual([expect.stringContaining('DatabaseLoginError')]);
    expect(lines[0]).toContain(`${db.config.db.host}:${db.config.db.port}`);
    expect(lines[0]).toContain('DB_PASSWORD');

    const debug = await deadLetters(['summary'], { DB_PASSWORD: 'wrong', LOG_LEVEL: 'debug' });
    expect(debug.code).toBe(1);
    expect(debug.stderr).toMatch(/\n\s+at /);
  });

  it('should exit 0 with done: false and the cursor when its time runs out, and say how to go on', async () => {
    const topic = `cli-${Math.random().toString(36).slice(2, 8)}`;
    await db.sql`
      insert into ${db.sql(`${db.config.db.schema}.dead_letters`)} (kafka_topic, kafka_partition, kafka_offset, reason)
      select ${topic}, 0, n, 'tombstone' from generate_series(1, 20000) as n`;
    // The command's 15 minutes less a reserve that leaves 1.2 s: far too little for 20,000 letters, 10 at a time.
    const run = await deadLetters(
      ['purge', '--topic', topic, '--older-than-days', '0', '--batch-size', '10', '--no-dry-run'],
      { TIME_RESERVE_MS: String(15 * 60_000 - 1200) },
    );
    expect(run.code).toBe(0);
    const answer = JSON.parse(run.stdout) as { done: boolean; cursor: number; purged: number };
    expect(answer).toMatchObject({ action: 'purge', done: false });
    expect(answer.purged).toBeGreaterThan(0);
    expect(messages(run.stderr)).toEqual([expect.stringContaining(`--after ${answer.cursor}`)]);
  });
});
