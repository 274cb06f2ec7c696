import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

/*
 * Checks that keep the documentation true: links and anchors resolve, every `npm run X` exists, and the reference
 * tables (configuration, deploy parameters, errors) list exactly what the code defines. Each check is a pure function
 * of the texts it is given and returns the problems it found, so a test can feed it a deliberately broken copy.
 */

export interface DocFile {
  /** Path relative to the repository root, e.g. `docs/deploy.md`. */
  path: string;
  text: string;
}

/** README.md and every Markdown file under docs/. */
export function readDocs(root: string): DocFile[] {
  const files = ['README.md'];
  const walk = (dir: string) => {
    if (!existsSync(join(root, dir))) return;
    for (const name of readdirSync(join(root, dir)).sort()) {
      const path = join(dir, name);
      if (statSync(join(root, path)).isDirectory()) walk(path);
      else if (name.endsWith('.md')) files.push(path);
    }
  };
  walk('docs');
  return files.map((path) => ({ path, text: readFileSync(join(root, path), 'utf8') }));
}

/** Markdown without fenced code blocks, whose contents are not links or headings. */
function withoutCode(text: string): string {
  return text.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens; repeats get -1, -2, ... */
function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const result = new Set<string>();
  for (const match of withoutCode(text).matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = match[1]!
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .trim()
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    result.add(n === 0 ? base : `${base}-${n}`);
  }
  return result;
}

/** Relative links whose file does not exist or whose #anchor names no heading there. */
export function brokenLinks(
  docs: readonly DocFile[],
  root: string,
  exists: (path: string) => boolean = existsSync,
): string[] {
  const byPath = new Map(docs.map((d) => [d.path, d]));
  const problems: string[] = [];
  for (const doc of docs) {
    for (const match of withoutCode(doc.text).matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
      const target = match[1]!;
      if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: ...
      const [file = '', anchor] = target.split('#');
      const targetPath = file === '' ? doc.path : relative(root, resolve(root, dirname(doc.path), file));
      if (file !== '' && !exists(join(root, targetPath))) {
        problems.push(`${doc.path}: link to ${target}: no file ${targetPath}`);
        continue;
      }
      if (anchor === undefined || anchor === '') continue;
      const targetDoc = byPath.get(targetPath);
      if (targetDoc === undefined) continue; // an anchor into a non-Markdown file (e.g. a line number)
      if (!anchors(targetDoc.text).has(anchor))
        problems.push(`${doc.path}: link to ${target}: no heading #${anchor} in ${targetPath}`);
    }
  }
  return problems;
}

/** `npm run X`, `npm start` and `npm test` in the docs that package.json does not define. */
export function unknownScripts(docs: readonly DocFile[], scripts: Readonly<Record<string, string>>): string[] {
  const problems: string[] = [];
  for (const doc of docs) {
    for (const match of doc.text.matchAll(/\bnpm (?:run(?:-script)?(?:\s+--?[\w-]+)*\s+([\w:.-]+)|(start|test)\b)/g)) {
      const name = match[1] ?? match[2]!;
      if (!(name in scripts))
        problems.push(`${doc.path}: "npm ${match[1] ? 'run ' : ''}${name}" is not a script in package.json`);
    }
  }
  return problems;
}

/**
 * The rows of the first table under the heading `heading` (any level) in `text`, each as its cells with surrounding
 * backticks removed. Throws when there is no such heading or no table under it: a moved table must move its check.
 */
export function tableUnder(text: string, heading: string): string[][] {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => new RegExp(`^#{1,6}\\s+${escapeRegExp(heading)}\\s*$`).test(l));
  if (start < 0) throw new Error(`no heading "${heading}"`);
  const rows: string[][] = [];
  for (const line of lines.slice(start + 1)) {
    if (/^#{1,6}\s/.test(line)) break;
    if (!line.startsWith('|')) {
      if (rows.length > 0) break;
      continue;
    }
    rows.push(splitRow(line));
  }
  if (rows.length < 2) throw new Error(`no table under "${heading}"`);
  return rows.slice(2); // header and separator
}

function splitRow(line: string): string[] {
  return line
    .replace(/^\||\|$/g, '')
    .split(/(?<!\\)\|/)
    .map((cell) => cell.trim().replace(/^`(.*)`$/, '$1'));
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The folders and files of `paths` (under lib/) that the project layout table does not name: a folder by its path in
 * a row's first cell (`lib/batch/`), each of its files by name without `.ts` in that row's second cell
 * (`process-batch`), a file directly in lib/ by its path in a first cell (`lib/log.ts`).
 */
export function unlistedInLayout(rows: readonly string[][], files: readonly string[]): string[] {
  // A first cell lists paths separated by commas (its outer backticks already gone); a second cell is prose in which
  // the names are the backticked words.
  const paths = (cell = '') => cell.split(',').map((p) => p.trim().replace(/^`|`$/g, ''));
  const ticked = (cell = '') => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1] as string);
  const rowFor = (name: string) => rows.find((r) => paths(r[0]).includes(name));
  const problems = new Set<string>();
  for (const path of files) {
    const slash = path.lastIndexOf('/');
    const folder = path.slice(0, slash + 1);
    if (folder === 'lib/') {
      if (!rowFor(path)) problems.add(`${path} is not in the layout table`);
      continue;
    }
    const row = rowFor(folder);
    if (!row) problems.add(`${folder} is not in the layout table`);
    else if (!ticked(row[1]).includes(path.slice(slash + 1).replace(/\.ts$/, '')))
      problems.add(`${path} is not named in the ${folder} row`);
  }
  // The other way: a module a lib/ folder's row names (a backticked lower-case word) must exist in that folder.
  for (const row of rows) {
    const folder = paths(row[0]).find((p) => p.startsWith('lib/') && p.endsWith('/'));
    if (!folder) continue;
    for (const name of ticked(row[1]).filter((t) => /^[a-z][a-z0-9-]*$/.test(t)))
      if (!files.includes(`${folder}${name}.ts`))
        problems.add(`${folder}${name}.ts is named in the layout table but not there`);
  }
  return [...problems];
}

/** The words that document an empty default. */
const EMPTY = new Set(['', 'empty', '(empty)', '(unset)', '(none)']);

/**
 * Compares a table of names (first column) and defaults (second column) with what the code defines: every name
 * documented, none that the code does not define, and each default as the code has it.
 */
export function tableMatches(kind: string, rows: readonly string[][], defined: ReadonlyMap<string, string>): string[] {
  const problems: string[] = [];
  const documented = new Map(rows.map((r) => [r[0] ?? '', r[1] ?? '']));
  for (const [name, value] of defined) {
    const doc = documented.get(name);
    if (doc === undefined) problems.push(`${kind} ${name} is not documented`);
    else if (!(doc === value || (value === '' && EMPTY.has(doc))))
      problems.push(`${kind} ${name}: documented default "${doc}", the code has "${value}"`);
  }
  for (const name of documented.keys())
    if (!defined.has(name)) problems.push(`${kind} ${name} is documented but not defined`);
  return problems;
}

/** Compares a table of codes (first column) with the codes the code defines; defaults are not compared. */
export function codesMatch(kind: string, rows: readonly string[][], defined: ReadonlySet<string>): string[] {
  return tableMatches(
    kind,
    rows.map((r) => [r[0] ?? '', '']),
    new Map([...defined].map((c) => [c, ''])),
  );
}

/** The names in a table's first column, where one cell may list several: "`minPollers`, `maxPollers`". */
export function namesInFirstColumn(rows: readonly string[][]): string[][] {
  return rows.map((r) =>
    (r[0] ?? '')
      .split(',')
      .map((n) => n.trim().replace(/^`|`$/g, ''))
      .filter(Boolean),
  );
}

/** A table's rows with one row per name, where a first cell may list several names sharing the other cells. */
export function oneRowPerName(rows: readonly string[][]): string[][] {
  return rows.flatMap((r) => namesInFirstColumn([r])[0]!.map((name) => [name, ...r.slice(1)]));
}

/** The parameters and their defaults in serverless.yml's `params.default` block. */
export function serverlessParams(yaml: string): Map<string, string> {
  const block = /^params:\n {2}default:\n((?: {4}.*\n| *#.*\n|\s*\n)+)/m.exec(yaml);
  if (!block) throw new Error('serverless.yml has no params.default block');
  const params = new Map<string, string>();
  for (const m of block[1]!.matchAll(/^ {4}(\w+):\s*('[^']*'|"[^"]*"|[^#\n]*?)\s*(?:#.*)?$/gm)) {
    params.set(m[1]!, m[2]!.replace(/^['"]|['"]$/g, ''));
  }
  return params;
}

/**
 * The stable error codes `lib/errors.ts` defines: each `super('CODE', ...)`, and the codes a `code` parameter may take.
 */
export function errorCodes(source: string): Set<string> {
  const literal = [...source.matchAll(/super\(\s*'([A-Z][A-Z0-9_]+)'/g)].map((m) => m[1]!);
  // A class that takes its code as a parameter lists the codes it may take: `constructor(code: 'A' | 'B', ...)`, on
  // one line or, as the formatter breaks a long parameter list, on the line after the parenthesis.
  const unions = [...source.matchAll(/constructor\(\s*code: ([^,)]+)/g)].flatMap((m) =>
    [...m[1]!.matchAll(/'([A-Z][A-Z0-9_]+)'/g)].map((c) => c[1]!),
  );
  return new Set([...literal, ...unions]);
}

/**
 * The rows of an error table ("you see" in the first cell, the code in the second) whose quote does not match the
 * message the code prints for that code: the first backticked text of the first cell, each `...` standing for any
 * text, must be where `printed[code]` begins. Rows of codes not in `printed` are not checked.
 */
export function driftedQuotes(rows: readonly string[][], printed: Readonly<Record<string, string>>): string[] {
  const drifted: string[] = [];
  for (const row of rows) {
    const code = /^`?([A-Z_]+)`?/.exec(row[1] ?? '')?.[1];
    const quote = /^`?([^`]+)`?/.exec(row[0] ?? '')?.[1];
    const message = code === undefined ? undefined : printed[code];
    if (message === undefined || quote === undefined) continue;
    const pattern = new RegExp(`^${quote.split('...').map(escapeRegExp).join('[\\s\\S]*')}`);
    if (!pattern.test(message)) drifted.push(`${code}: the docs quote "${quote}", the code prints "${message}"`);
  }
  return drifted;
}
