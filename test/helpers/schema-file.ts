import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The SQL of schema.sql (or of `text`) for `schema`, without its psql meta-commands, so that it runs through any
 * client as `psql -v schema=<schema> -f schema.sql` would. Tests use it; `schema` must be a validated identifier.
 */
export function schemaSql(
  schema: string,
  text = readFileSync(join(__dirname, '..', '..', 'schema.sql'), 'utf8'),
): string {
  return text
    .split('\n')
    .filter((line) => !line.startsWith('\\'))
    .join('\n')
    .replaceAll(':"schema"', `"${schema}"`);
}
