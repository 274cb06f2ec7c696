import { vi } from 'vitest';
import type { TestDatabase } from './db';

type Handler = (event: unknown, context: import('aws-lambda').Context) => Promise<unknown>;

const baseline = { ...process.env };

/**
 * Loads functions/<name>.ts the way Lambda does at cold start: with its environment set first and a fresh module,
 * so configuration and the database client are created from `env`. The environment stays in place afterwards, as
 * it does for a Lambda environment (the AWS SDK reads its settings when it sends); the next cold start replaces it.
 */
export async function coldStart(name: 'consumer' | 'health', db: TestDatabase, env: Record<string, string> = {}) {
  process.env = { ...baseline, ...db.env, LOG_LEVEL: 'info', ...env };
  delete process.env.IS_LOCAL;
  vi.resetModules();
  const module = (await import(`../../functions/${name}.ts`)) as { handler: Handler };
  return module.handler;
}

/** Runs `fn` while collecting the JSON lines written to stdout. */
export async function captureLogs<T>(
  fn: () => Promise<T>,
): Promise<{ value?: T; error?: unknown; logs: Record<string, unknown>[] }> {
  const logs: Record<string, unknown>[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    for (const line of String(chunk).split('\n')) {
      if (line.startsWith('{')) logs.push(JSON.parse(line));
    }
    return true;
  });
  try {
    return { value: await fn(), logs };
  } catch (error) {
    return { error, logs };
  } finally {
    spy.mockRestore();
  }
}
