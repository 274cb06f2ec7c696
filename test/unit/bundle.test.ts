import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

const root = join(__dirname, '../..');
/** The esbuild target of serverless.yml (custom.esbuild.target), so that these bundles are the deployed ones. */
const target = /^ {4}target: (\S+)/m.exec(readFileSync(join(root, 'serverless.yml'), 'utf8'))![1]!;

/*
 * The Lambda functions are bundled without migrations/: they read the version table and compare it with
 * SCHEMA_VERSION, and must not reach for migration files at run time. Bundled as serverless.yml's esbuild section
 * does; keepNames leaves function names readable.
 */
/** Each function as serverless.yml's esbuild section bundles it (the AWS SDK is the runtime's own). */
async function bundle(name: string): Promise<string> {
  const result = await build({
    entryPoints: [join(root, 'functions', `${name}.ts`)],
    bundle: true,
    platform: 'node',
    target,
    format: 'cjs',
    minify: true,
    keepNames: true,
    external: ['@aws-sdk/*'],
    write: false,
    logLevel: 'silent',
  });
  return result.outputFiles[0]!.text;
}

describe('the Lambda bundles', () => {
  // A small bundle keeps cold starts short (issue 23: the restructuring must not grow it past 1 MB).
  it.each(['consumer', 'health', 'dead-letters'])('should keep functions/%s under 1 MB', async (name) => {
    const bytes = Buffer.byteLength(await bundle(name));
    expect(bytes).toBeGreaterThan(10_000); // a real bundle, not an empty one
    expect(bytes).toBeLessThan(1024 * 1024);
  });

  it.each(['consumer', 'health', 'dead-letters'])(
    'should check the schema version in functions/%s without the migration runner',
    async (name) => {
      const code = await bundle(name);
      const contains = (text: string) => code.includes(text);
      expect(contains('schema_migrations') && contains('SCHEMA_VERSION_MISMATCH')).toBe(true);
      // The runner's function and its messages, and any directory listing: none of it reaches the bundle.
      for (const runnerOnly of ['readMigrations', 'NNNN_snake_case', 'baseline_check', 'readdirSync'])
        expect(contains(runnerOnly), runnerOnly).toBe(false);
    },
  );
});
