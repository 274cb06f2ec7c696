import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/*
 * No line over 120 characters (issue 23). Biome formats at that width but cannot break a long string, SQL inside a
 * template literal, a comment or a table-like array; those are wrapped by hand, and this keeps them so.
 */

const root = resolve(__dirname, '../..');
const MAX = 120;
const FOLDERS = ['lib', 'functions', 'scripts', 'deploy', 'bench', 'test'];
const SOURCE = /\.(ts|js|mts|cjs)$/;

/** `file:line (n characters)` for every line of `text` longer than MAX characters (code points, not bytes). */
function longLines(file: string, text: string): string[] {
  return text.split('\n').flatMap((line, i) => {
    const length = [...line].length;
    return length > MAX ? [`${file}:${i + 1} (${length} characters)`] : [];
  });
}

/** The tracked source files of FOLDERS, and the CI script, as git lists them (untracked scratch files do not count). */
function trackedFiles(): string[] {
  const listed = execFileSync('git', ['ls-files', '-z', '--', ...FOLDERS], { cwd: root, encoding: 'utf8' });
  return [...listed.split('\0').filter((f) => SOURCE.test(f)), '.ci/run'];
}

describe('line length', () => {
  it('should name file and line of every line over 120 characters, counting characters, not bytes', () => {
    const sample = ['short', 'x'.repeat(MAX), 'y'.repeat(MAX + 1), '⌈'.repeat(MAX), `  // ${'z'.repeat(MAX)}`].join(
      '\n',
    );
    expect(longLines('sample.ts', sample)).toEqual(['sample.ts:3 (121 characters)', 'sample.ts:5 (125 characters)']);
  });

  it(`should find no line over ${MAX} characters in ${FOLDERS.join(', ')} or .ci/run`, () => {
    const files = trackedFiles();
    expect(files.length).toBeGreaterThan(100);
    expect(files.flatMap((file) => longLines(file, readFileSync(join(root, file), 'utf8')))).toEqual([]);
  });
});
