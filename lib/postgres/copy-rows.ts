import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type postgres from 'postgres';

/**
 * Streams rows into a table with COPY ... FROM STDIN (text format), PostgreSQL's fastest way in: one statement
 * however many rows, no per-row parameters, no JSON to parse on the server. Used for ratings and comments, the bulk
 * of every batch, which have no unique keys to conflict on.
 */
export async function copyRows(
  tx: postgres.ReservedSql,
  table: postgres.Helper<string, []>,
  columns: readonly string[],
  rows: Iterable<readonly unknown[]>,
): Promise<void> {
  // No statement for no rows; rows may be made as they are read (replacementRows), so the first is looked at.
  const iterator = rows[Symbol.iterator]();
  const first = iterator.next();
  if (first.done) return;
  const target = await tx`copy ${table} (${tx(columns as string[])}) from stdin`.writable();
  await pipeline(Readable.from(copyChunks(withFirst(first.value, iterator))), target);
}

function* withFirst<T>(first: T, rest: Iterator<T>): Generator<T> {
  yield first;
  for (let next = rest.next(); !next.done; next = rest.next()) yield next.value;
}

/** Rows as COPY text lines, gathered into chunks of about 64 KiB so that the socket sees few large writes. */
export function* copyChunks(rows: Iterable<readonly unknown[]>): Generator<string> {
  let chunk = '';
  for (const row of rows) {
    chunk += row.map(copyField).join('\t') + '\n';
    if (chunk.length >= 65_536) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk) yield chunk;
}

const SPECIAL = /[\\\t\n\r]/;

/** One value in COPY text format: \N for null, backslash escapes for the four characters that delimit. */
export function copyField(value: unknown): string {
  if (value === null || value === undefined) return '\\N';
  const text = String(value);
  if (!SPECIAL.test(text)) return text;
  return text.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
}
