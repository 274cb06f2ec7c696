import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../lib/config';

const root = join(__dirname, '../..');
// Every folder of code that talks to PostgreSQL, subfolders included.
const sources = ['lib', 'functions', 'scripts'].flatMap((dir) =>
  readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => ({ path: `${dir}/${f}`, text: readFileSync(join(root, dir, f), 'utf8') })),
);

describe('no SQL is built from message data', () => {
  it('should run SQL text only through tagged templates, with two reviewed exceptions', () => {
    // sql.unsafe runs text as SQL. It runs migration files from migrations/, and the query a person types into
    // `npm run db:query` (their own database, one statement, a read-only session); never text from a message.
    const unsafe = sources.filter((s) => /\.unsafe\s*\(/.test(s.text)).map((s) => s.path);
    expect(unsafe.sort()).toEqual(['scripts/db-query.ts', 'scripts/db/migrations.ts']);
    const query = readFileSync(join(root, 'scripts', 'db-query.ts'), 'utf8').match(/\w+\.unsafe\([^)]*\)/g);
    expect(query).toEqual(['tx.unsafe(query, [], ONE_STATEMENT)']);
    const calls = readFileSync(join(root, 'scripts', 'db', 'migrations.ts'), 'utf8').match(/\w+\.unsafe\([^)]*\)/g);
    expect(calls).toEqual(['tx.unsafe(migration.sql)', 'tx.unsafe(first.sql)']);
  });

  it('should not call a client with a plain string (only tagged templates and identifiers)', () => {
    for (const { path, text } of sources) {
      // sql(`...`) with a template literal builds an identifier (postgres.js escapes it); sql('...') likewise.
      // What must not appear is a query assembled by concatenation and then executed.
      expect(text, path).not.toMatch(/\b(sql|tx)\s*\(\s*['"`][^'"`]*\b(select|insert|update|delete)\b/i);
    }
  });

  it('should accept only a plain identifier as the schema name from configuration', () => {
    for (const bad of ['trace; drop table x', 'Trace', 'a"b', 'public.trace', '1trace', 'x'.repeat(64), "trace'--"]) {
      expect(() => loadConfig({ DB_SCHEMA: bad }), bad).toThrow(/DB_SCHEMA/);
    }
    expect(loadConfig({ DB_SCHEMA: 'trace_v2' }).db.schema).toBe('trace_v2');
  });
});
