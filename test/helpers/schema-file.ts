import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const SCHEMA_FILE = join(__dirname, '..', '..', 'schema.sql');

/**
 * The SQL of schema.sql (or of `text`, an altered copy) for `schema`, without its psql meta-commands, so that it
 * runs through postgres.js as psql would run it with `-v schema=<schema>`.
 */
export function schemaFileSql(schema: string, text = readFileSync(SCHEMA_FILE, 'utf8')): string {
  return text
    .split('\n')
    .filter((line) => !line.startsWith('\\'))
    .join('\n')
    .replaceAll(':"schema"', `"${schema}"`);
}
