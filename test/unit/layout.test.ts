import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/*
 * The direction of dependencies between folders (docs/design.md, "Map of the code"): biome's noImportCycles forbids
 * cycles, this forbids the imports that would point the wrong way even without a cycle.
 */

const root = resolve(__dirname, '../..');

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(root, join(e.parentPath, e.name)));
}

/** Every relative module a file imports, exports from, or loads (import(), require()), as a path from the root. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(root, file), 'utf8');
  const specifiers = [
    ...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g),
  ].map((m) => m[1] as string);
  return specifiers.map((s) => relative(root, resolve(root, dirname(file), s)));
}

/** The imports of `files` that point into one of `forbidden` (folders or files, root-relative). */
function violations(files: readonly string[], forbidden: readonly string[]): string[] {
  return files.flatMap((file) =>
    importsOf(file)
      .filter((target) => forbidden.some((f) => target === f || target.startsWith(`${f}/`) || `${target}.ts` === f))
      .map((target) => `${file} -> ${target}`),
  );
}

describe('folder layout', () => {
  it('should read the imports it checks (a check that sees none proves nothing)', () => {
    expect(importsOf('lib/batch/process-batch.ts')).toContain('lib/batch/settle-batch');
    expect(importsOf('functions/consumer.ts')).toContain('lib/aws/kafka-event');
    expect(violations(['functions/consumer.ts'], ['lib/aws'])).not.toEqual([]);
  });

  it("should keep lib/batch free of AWS, Lambda and the other functions' cores", () => {
    expect(
      violations(sourceFiles('lib/batch'), ['lib/aws', 'lib/health', 'lib/dead-letters', 'functions', 'scripts']),
    ).toEqual([]);
  });

  // lib/aws adapts Lambda's shapes: the functions' cores use it, never the reverse.
  it("should keep lib/aws below the functions' cores", () => {
    expect(violations(sourceFiles('lib/aws'), ['lib/health', 'lib/dead-letters', 'functions', 'scripts'])).toEqual([]);
  });

  // The two cores sit side by side: each answers its own function, neither reaches into the other.
  it('should keep lib/health and lib/dead-letters apart, and below the handlers and the tooling', () => {
    expect(violations(sourceFiles('lib/health'), ['lib/dead-letters', 'functions', 'scripts'])).toEqual([]);
    expect(violations(sourceFiles('lib/dead-letters'), ['lib/health', 'functions', 'scripts'])).toEqual([]);
  });

  it("should keep lib/postgres below the pipeline, AWS and the functions' cores", () => {
    expect(
      violations(sourceFiles('lib/postgres'), [
        'lib/batch',
        'lib/aws',
        'lib/health',
        'lib/dead-letters',
        'functions',
        'scripts',
      ]),
    ).toEqual([]);
  });

  it('should never import the handlers, the tooling, the tests or the benchmark from lib/', () => {
    expect(violations(sourceFiles('lib'), ['functions', 'scripts', 'test', 'bench'])).toEqual([]);
  });

  it('should keep the shared leaves (lib/*.ts) free of every folder of lib/', () => {
    const leaves = readdirSync(join(root, 'lib'))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => `lib/${f}`);
    const folders = readdirSync(join(root, 'lib'), { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => `lib/${e.name}`);
    expect(leaves.length).toBeGreaterThan(3);
    expect(violations(leaves, [...folders, 'functions', 'scripts'])).toEqual([]);
  });
});
