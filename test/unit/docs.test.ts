import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { VARIABLES } from '../../lib/config';
import { VARIABLES as ESM_VARIABLES } from '../../scripts/esm/settings';
import { loadConfig } from '../../lib/config';
import { environmentCredentials } from '../../lib/postgres/credentials';
import { Database } from '../../lib/postgres/database';
import { diagnoseDatabaseFailure } from '../../lib/postgres/diagnose-failure';
import { DatabaseLoginError, DatabaseNotFoundError } from '../../lib/errors';
import { freePort } from '../../scripts/local-db';
import {
  brokenLinks,
  codesMatch,
  driftedQuotes,
  errorCodes,
  namesInFirstColumn,
  oneRowPerName,
  readDocs,
  serverlessParams,
  tableMatches,
  tableUnder,
  unknownScripts,
  unlistedInLayout,
  type DocFile,
} from '../helpers/doc-checks';

/*
 * The documentation is checked against the code it describes, so that a removed script, variable, parameter, error
 * code or heading breaks the build instead of the reader's trust. Each check also runs on a deliberately broken copy,
 * to show it can fail.
 */

const root = join(__dirname, '..', '..');
const docs = readDocs(root);
const scripts = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> })
  .scripts;
// The consumer's errors and the scripts' own (usage, local server, Kafka, migrations) share one table.
const errorsSource = ['lib/errors.ts', 'scripts/errors.ts'].map((p) => readFileSync(join(root, p), 'utf8')).join('\n');
const params = serverlessParams(readFileSync(join(root, 'serverless.yml'), 'utf8'));
const defaults = (table: Record<string, { default: string }>) =>
  new Map(Object.entries(table).map(([name, spec]) => [name, spec.default]));
const configDefaults = defaults(VARIABLES);
const esmDefaults = defaults(ESM_VARIABLES);

/** Where each reference table lives: the file and the heading above it. */
const TABLES = {
  configuration: { path: 'docs/reference.md', heading: 'Configuration' },
  errors: { path: 'docs/reference.md', heading: 'Errors' },
  parameters: { path: 'docs/deploy.md', heading: 'Parameters' },
  kafkaSettings: { path: 'docs/local-kafka.md', heading: 'Settings' },
};

const doc = (path: string): DocFile => {
  const found = docs.find((d) => d.path === path);
  if (!found) throw new Error(`${path} is not among the documentation files`);
  return found;
};
const rowsOf = (table: keyof typeof TABLES, text = doc(TABLES[table].path).text) =>
  tableUnder(text, TABLES[table].heading);

function configProblems(text?: string) {
  return tableMatches('variable', rowsOf('configuration', text), configDefaults);
}
function kafkaSettingProblems(text?: string) {
  return tableMatches('setting', oneRowPerName(rowsOf('kafkaSettings', text)), esmDefaults);
}
function errorProblems(text?: string) {
  return codesMatch('error code', oneRowPerName(rowsOf('errors', text)), errorCodes(errorsSource));
}
function paramProblems(text?: string) {
  const documented = namesInFirstColumn(rowsOf('parameters', text)).flat();
  return tableMatches(
    'parameter',
    documented.map((n) => [n, '']),
    new Map([...params.keys()].map((n) => [n, ''])),
  );
}

/** The problems `check` finds in a changed text that it does not find in the committed one. */
function introduced(check: (text?: string) => string[], changed: string): string[] {
  const before = new Set(check());
  return check(changed).filter((p) => !before.has(p));
}

/** `text` without the first table row that starts with `| \`name\``. */
function withoutRow(text: string, name: string): string {
  const row = text.split('\n').find((l) => l.startsWith(`| \`${name}\``));
  if (!row) throw new Error(`no row for ${name}`);
  return text.replace(`${row}\n`, '');
}

/** Every folder and file under lib/, as paths from the root. */
const libPaths = readdirSync(join(root, 'lib'), { withFileTypes: true, recursive: true })
  .filter((e) => e.isFile())
  .map((e) => relative(root, join(e.parentPath, e.name)))
  .sort();
const layoutRows = (text?: string) => tableUnder(text ?? doc('docs/reference.md').text, 'Project layout');

describe('documentation', () => {
  it('should have relative links and anchors that resolve', () => {
    expect(brokenLinks(docs, root)).toEqual([]);
  });

  it('should name only npm scripts that package.json defines', () => {
    expect(unknownScripts(docs, scripts)).toEqual([]);
  });

  it('should document every configuration variable lib/config.ts reads, with its default', () => {
    expect(configDefaults.size).toBeGreaterThan(10);
    expect(configProblems()).toEqual([]);
  });

  it('should document every deploy parameter serverless.yml accepts', () => {
    expect(params.size).toBeGreaterThan(10);
    expect(paramProblems()).toEqual([]);
  });

  it('should document every local Kafka setting scripts/esm/settings.ts reads, with its default', () => {
    expect(esmDefaults.size).toBeGreaterThan(10);
    expect(kafkaSettingProblems()).toEqual([]);
  });

  it('should name every folder and file under lib/ in the project layout table', () => {
    expect(libPaths.length).toBeGreaterThan(30);
    expect(unlistedInLayout(layoutRows(), libPaths)).toEqual([]);
  });

  it('should document every error code lib/errors.ts defines', () => {
    expect(errorCodes(errorsSource).size).toBeGreaterThan(5);
    expect(errorProblems()).toEqual([]);
  });
});

describe('documentation checks', () => {
  it('should quote the database errors of local development as the code prints them', async () => {
    const rows = tableUnder(doc('docs/local-development.md').text, 'When something fails');
    const printed = await printedDatabaseErrors();
    expect(driftedQuotes(rows, printed)).toEqual([]);
    // A quote that drifted from the message (the one before the message named its server) is found.
    const drifted = [['`PostgreSQL could not be reached: connect ECONNREFUSED ...`', '`DB_UNREACHABLE`']];
    expect(driftedQuotes(drifted, printed)).toEqual([
      `DB_UNREACHABLE: the docs quote "PostgreSQL could not be reached: connect ECONNREFUSED ...", the code prints ` +
        `"${printed.DB_UNREACHABLE}"`,
    ]);
  });

  it('should fail when a documented variable, parameter or error code is removed', () => {
    const config = doc(TABLES.configuration.path).text;
    expect(introduced(configProblems, withoutRow(config, 'DB_PORT'))).toEqual(['variable DB_PORT is not documented']);
    expect(introduced(configProblems, config.replace('| `DB_PORT` | `5432` |', '| `DB_PORT` | `5433` |'))).toEqual([
      'variable DB_PORT: documented default "5433", the code has "5432"',
    ]);
    expect(introduced(errorProblems, withoutRow(doc(TABLES.errors.path).text, 'OUT_OF_TIME'))).toEqual([
      'error code OUT_OF_TIME is not documented',
    ]);
    expect(introduced(paramProblems, withoutRow(doc(TABLES.parameters.path).text, 'topic'))).toEqual([
      'parameter topic is not documented',
    ]);
    const kafka = doc(TABLES.kafkaSettings.path).text;
    expect(introduced(kafkaSettingProblems, withoutRow(kafka, 'ESM_BATCH_SIZE'))).toEqual([
      'setting ESM_BATCH_SIZE is not documented',
    ]);
    // A row naming two settings: dropping one name from it is caught too.
    expect(
      introduced(kafkaSettingProblems, kafka.replace('| `KAFKA_USERNAME`, `KAFKA_PASSWORD` |', '| `KAFKA_USERNAME` |')),
    ).toEqual(['setting KAFKA_PASSWORD is not documented']);
  });

  it('should fail when a file or folder under lib/ is missing from the project layout table', () => {
    const reference = doc('docs/reference.md').text;
    expect(
      unlistedInLayout(layoutRows(reference.replace('`settle-batch` (retry, isolation), ', '')), libPaths),
    ).toEqual(['lib/batch/settle-batch.ts is not named in the lib/batch/ row']);
    expect(
      unlistedInLayout(layoutRows(), [...libPaths, 'lib/batch/retry-queue.ts', 'lib/queue/sqs.ts', 'lib/clock.ts']),
    ).toEqual([
      'lib/batch/retry-queue.ts is not named in the lib/batch/ row',
      'lib/queue/ is not in the layout table',
      'lib/clock.ts is not in the layout table',
    ]);
    expect(
      unlistedInLayout(
        layoutRows(),
        libPaths.filter((p) => p !== 'lib/health/freshness.ts'),
      ),
    ).toEqual(['lib/health/freshness.ts is named in the layout table but not there']);
  });

  it('should fail when a heading the README links to is removed from the docs', () => {
    const changed = docs.map((d) =>
      d.path === 'docs/design.md'
        ? { ...d, text: d.text.replace('## Guarantees and how they are tested\n', '## Promises\n') }
        : d,
    );
    expect(brokenLinks(changed, root).filter((p) => !brokenLinks(docs, root).includes(p))).toEqual([
      'README.md: link to docs/design.md#guarantees-and-how-they-are-tested: no heading ' +
        '#guarantees-and-how-they-are-tested in docs/design.md',
      'docs/design.md: link to #guarantees-and-how-they-are-tested: no heading ' +
        '#guarantees-and-how-they-are-tested in docs/design.md',
    ]);
  });

  it('should read the codes of a constructor whose parameters the formatter put one per line', () => {
    const oneLine = "constructor(code: 'A_CODE' | 'B_CODE', message: string) {";
    const broken = "constructor(\n    code: 'A_CODE' | 'B_CODE',\n    message: string,\n  ) {";
    expect([...errorCodes(oneLine)]).toEqual(['A_CODE', 'B_CODE']);
    expect([...errorCodes(broken)]).toEqual(['A_CODE', 'B_CODE']);
  });

  it('should fail when a documented name is not defined by the code', () => {
    const config = doc(TABLES.configuration.path).text;
    const extra = config.replace('| `DB_PORT` |', '| `DB_NOPE` | `1` | invented |\n| `DB_PORT` |');
    expect(introduced(configProblems, extra)).toEqual(['variable DB_NOPE is documented but not defined']);
  });

  it('should fail when a script named in the docs is removed from package.json', () => {
    const { start: _removed, ...rest } = scripts;
    expect(unknownScripts([{ path: 'README.md', text: 'Run `npm start`, then `npm run typecheck`.' }], rest)).toEqual([
      'README.md: "npm start" is not a script in package.json',
    ]);
  });

  it('should fail on a link to a missing file or heading', () => {
    const files: DocFile[] = [
      {
        path: 'README.md',
        text: '# Title\n\nSee [deploy](docs/nope.md), [here](#title), [gone](#missing) and [ext](https://example.com).',
      },
      {
        path: 'docs/a.md',
        text:
          '## Tables and `columns`\n\n[back](../README.md#title) [bad](../README.md#nope) ' +
          '[self](#tables-and-columns)',
      },
    ];
    expect(brokenLinks(files, root, (path) => path.endsWith('README.md') || path.endsWith('docs/a.md'))).toEqual([
      'README.md: link to docs/nope.md: no file docs/nope.md',
      'README.md: link to #missing: no heading #missing in README.md',
      'docs/a.md: link to ../README.md#nope: no heading #nope in README.md',
    ]);
  });
});

/**
 * What the consumer prints for a refused connection (a real one, to a port nothing listens on), a rejected login and
 * a missing database (as lib/postgres/diagnose-failure.ts builds them from PostgreSQL's answers), by code.
 */
async function printedDatabaseErrors(): Promise<Record<string, string>> {
  const port = await freePort();
  // Through Database, as the consumer connects: it names the target on its client's failures.
  const config = loadConfig({ DB_HOST: '127.0.0.1', DB_PORT: String(port), DB_SSL: 'disable' });
  const database = new Database(config.db, environmentCredentials(config.db));
  const refused = await database
    .run((sql) => sql`select 1`)
    .then(
      () => 'connected',
      (error: unknown) => (diagnoseDatabaseFailure(error) as Error).message,
    );
  await database.end();
  const target = { host: '127.0.0.1', port: 5432, database: 'trace', user: 'postgres' };
  return {
    DB_UNREACHABLE: refused,
    DB_LOGIN_REJECTED: new DatabaseLoginError(
      '28P01',
      'password authentication failed for user "postgres" (SQLSTATE 28P01)',
      undefined,
      target,
    ).message,
    DB_NOT_FOUND: new DatabaseNotFoundError('database "trace" does not exist (SQLSTATE 3D000)', undefined, target)
      .message,
  };
}
