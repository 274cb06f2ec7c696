import { join } from 'node:path';

const root = join(__dirname, '..');

/** The consumer bundled as serverless.yml builds it (esbuild, minified, AWS SDK left to the runtime). */
export const bundleOptions = (outfile: string) => ({
  entryPoints: [join(root, 'functions', 'consumer.ts')],
  outfile,
  bundle: true,
  minify: true,
  keepNames: true,
  platform: 'node' as const,
  target: 'node24',
  format: 'cjs' as const,
  external: ['@aws-sdk/*'],
  logLevel: 'error' as const,
});
