/**
 * deploy/invoke-local-plugin.js called as the Serverless CLI calls it (constructor, then the hook before
 * `invoke local` loads the environment), without starting the CLI: which events it stops with what advice, and which
 * shell variables it hands the function. test/e2e/serverless-cli.test.ts runs the real CLI on a few of these.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { VARIABLES } from '../../lib/config';
import { surveyMessage } from '../helpers/factories';

const root = join(__dirname, '..', '..');
const Plugin = createRequire(__filename)(join(root, 'deploy', 'invoke-local-plugin.js')) as new (
  serverless: unknown,
  options: Record<string, unknown>,
) => { hooks: Record<string, () => void> };

interface Service {
  provider: { environment: Record<string, unknown> };
  functions: Record<string, { environment?: Record<string, unknown> }>;
}

/** The plugin for `invoke local -f <fn>` with `options`, its hook run: the error it stops with, and the service. */
function invoke(options: Record<string, unknown>, shell: Record<string, string> = {}) {
  const saved = { ...process.env };
  for (const name of Object.keys(VARIABLES)) delete process.env[name]; // only `shell`, whatever runs the tests
  Object.assign(process.env, shell);
  const service: Service = {
    provider: { environment: { DB_HOST: '', DB_SSL: 'verify-full', LOG_LEVEL: 'debug' } },
    functions: { health: { environment: { DB_SECRET_ARN: 'arn:health' } } },
  };
  const serverless = { service, serviceDir: root, classes: { Error } };
  try {
    const plugin = new Plugin(serverless, { function: 'consumer', ...options });
    plugin.hooks['before:invoke:local:loadEnvVars']!();
    return { error: undefined, service };
  } catch (error) {
    return { error: (error as Error).message, service };
  } finally {
    process.env = saved;
  }
}

const dir = mkdtempSync(join(tmpdir(), 'trace-plugin-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
afterEach(() => {
  process.setSourceMapsEnabled(false);
});

describe('invoke local given something other than a Kafka event', () => {
  it('should stop on the docs own sample messages file (JSON lines) and say how to wrap it', () => {
    const docs = readFileSync(join(root, 'docs', 'local-development.md'), 'utf8');
    expect(docs).toContain('`events/my-messages.jsonl` holds three sample messages');
    const lines = readFileSync(join(root, 'events', 'my-messages.jsonl'), 'utf8')
      .trim()
      .split('\n').length;
    const { error } = invoke({ path: 'events/my-messages.jsonl' });
    expect(error).toBe(
      `The consumer takes the Kafka event Lambda sends, and events/my-messages.jsonl holds ${lines} JSON lines ` +
        '(messages, one per line), not an event. Wrap your messages into one: npm run --silent build-event -- ' +
        'events/my-messages.jsonl --out my-events/mine.json, then npx serverless invoke local -f consumer -p ' +
        'my-events/mine.json (docs/local-development.md).',
    );
  });

  it('should suggest --out, which creates the folder, for any message, list or JSON lines, never a redirection', () => {
    fc.assert(
      fc.property(
        fc
          .array(fc.constantFrom('a', 'b'), { minLength: 1, maxLength: 4 })
          .map((ids) => ids.map((id, i) => surveyMessage({}, { traceId: `${id}-${i}` }))),
        fc.constantFrom('object', 'list', 'lines', 'data'),
        (messages, form) => {
          const text =
            form === 'object'
              ? JSON.stringify(messages[0])
              : form === 'list'
                ? JSON.stringify(messages)
                : messages.map((m) => JSON.stringify(m)).join('\n') + '\n';
          const path = form === 'data' ? undefined : file(`m-${form}.json`, text);
          const { error } = invoke(path ? { path } : { data: JSON.stringify(messages[0]) });
          expect(error).toContain(
            `npm run --silent build-event -- ${path ?? 'messages.json'} --out my-events/mine.json`,
          );
          expect(error).not.toContain('>');
        },
      ),
      { numRuns: 25 },
    );
  });

  it.each(readdirSync(join(root, 'events')).filter((f) => f.startsWith('health-')))(
    'should send events/%s, an HTTP API request, to the health function',
    (name) => {
      const { error } = invoke({ path: `events/${name}` });
      expect(error).toMatch(/is an HTTP API request \((GET|POST) \/[\w/-]+\), meant for the health function/);
      expect(error).toContain(`npx serverless invoke local -f health -p events/${name}`);
      expect(error).not.toContain('build-event');
    },
  );

  it.each(['msk-batch', 'self-managed-batch', 'mixed-batch'])('should let events/%s.json through', (name) => {
    expect(invoke({ path: `events/${name}.json` }).error).toBeUndefined();
  });

  it('should leave other functions, and files that are not JSON, to the CLI', () => {
    expect(invoke({ function: 'health', path: 'events/my-messages.jsonl' }).error).toBeUndefined();
    expect(invoke({ path: file('broken.json', '{"records": ') }).error).toBeUndefined();
    expect(invoke({ path: 'events/no-such-file.json' }).error).toBeUndefined();
  });
});

describe('invoke local and the shell', () => {
  it('should hand the function every documented variable the shell sets, and nothing else', () => {
    const names = Object.keys(VARIABLES);
    fc.assert(
      fc.property(fc.subarray(names, { minLength: 1 }), (chosen) => {
        const shell = Object.fromEntries(chosen.map((name) => [name, `shell-${name}`]));
        const { error, service } = invoke({ path: 'events/msk-batch.json' }, { ...shell, NOT_DOCUMENTED_X: 'x' });
        expect(error).toBeUndefined();
        const env = service.provider.environment;
        for (const name of chosen) expect(env[name], name).toBe(`shell-${name}`);
        expect(env.NOT_DOCUMENTED_X).toBeUndefined();
        // Unset in the shell: serverless.yml's value, DB_SSL=disable for a local server and LOG_LEVEL=info (not the
        // dev stage's debug: a person at the terminal reads errors without debug lines and stack traces).
        if (!chosen.includes('LOG_LEVEL')) expect(env.LOG_LEVEL).toBe('info');
        if (!chosen.includes('DB_SSL')) expect(env.DB_SSL).toBe('disable');
        // A function's own value of a variable the shell sets is replaced too (the health function's secret).
        if (chosen.includes('DB_SECRET_ARN'))
          expect(service.functions.health?.environment?.DB_SECRET_ARN).toBe('shell-DB_SECRET_ARN');
      }),
      { numRuns: 30 },
    );
  });
});
