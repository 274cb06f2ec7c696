import { join } from 'node:path';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

const root = join(__dirname, '../..');

/*
 * The Lambda functions are bundled without migrations/: they read the version table and compare it with
 * SCHEMA_VERSION, and must not reach for migration files at run time. Bundled as serverless.yml's esbuild section
 * does; keepNames leaves function names readable.
 */
describe('the Lambda bundles', () => {
  it.each(['consumer', 'health', 'dead-letters'])(
    'should check the schema version in functions/%s without the migration runner, in a bundle under 1 MB',
    async (name) => {
      const result = await build({
        entryPoints: [join(root, 'functions', `${name}.ts`)],
        bundle: true,
        platform: 'node',
        target: 'node22',
        format: 'cjs',
        minify: true,
        keepNames: true,
        external: ['@aws-sdk/*'],
        write: false,
        logLevel: 'silent',
      });
      const code = result.outputFiles[0]!.text;
      // Issue 23's bound (about 110 KB each today): a dependency or tooling that slips into lib/ shows here first.
      expect(Buffer.byteLength(code)).toBeLessThan(1024 * 1024);
      const contains = (text: string) => code.includes(text);
      expect(contains('schema_migrations') && contains('SCHEMA_VERSION_MISMATCH')).toBe(true);
      // The runner's function and its messages, and any directory listing: none of it reaches the bundle.
      for (const runnerOnly of ['readMigrations', 'NNNN_snake_case', 'baseline_check', 'readdirSync'])
        expect(contains(runnerOnly), runnerOnly).toBe(false);
    },
  );
});
