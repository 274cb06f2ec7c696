import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type postgres from 'postgres';

/**
 * Streams rows into a table with COPY ... FROM STDIN (text format), PostgreSQL's fastest way in: one statement
 * however many rows, no per-row parameters, no JSON to parse on the server. Used for ratings and comments, the bulk
 * of every batch, which have no unique keys to conflict on.
 *
 * The COPY statement is sent at once, behind whatever is already queued on `tx` (so that its start shares their
 * round trip); the rows follow when `into` is given them, which may be once the answers to those earlier statements
 * are in. postgres.js runs no other query while a COPY is open (it refuses one with COPY_IN_PROGRESS); `afterRows`
 * is called the moment the COPY's end is written, when queries may be queued again: what it queues goes out right
 * behind the COPY's end, in its round trip, instead of one round trip later. Every COPY started must be given its
 * rows, none at all included, or it stays open.
 */
export function startCopy(
  tx: postgres.ReservedSql,
  table: postgres.Helper<string, []>,
  columns: readonly string[],
): { into: (rows: Iterable<readonly unknown[]>, afterRows?: () => void) => Promise<void> } {
  const query = tx`copy ${table} (${tx(columns as string[])}) from stdin`;
  const target = query.writable();
  target.catch(() => {}); // its error is the one `into` throws
  void query.execute(); // now, behind what is queued, not a microtask later (in its own write, on a fast server)
  return {
    into: async (rows, afterRows) => {
      const stream = await target;
      if (afterRows) {
        // Writable's _final is the driver's: it writes CopyDone and closes the COPY, and answers once the server
        // has. Queries made after it, before that answer, are queued behind the CopyDone.
        const final = stream._final.bind(stream);
        stream._final = (callback) => {
          final(callback);
          afterRows();
        };
      }
      await pipeline(Readable.from(copyChunks(rows)), stream);
    },
  };
}

/** Streams `rows` into `table` with COPY; no statement at all for no rows (see startCopy). */
export async function copyRows(
  tx: postgres.ReservedSql,
  table: postgres.Helper<string, []>,
  columns: readonly string[],
  rows: Iterable<readonly unknown[]>,
): Promise<void> {
  // Rows may be made as they are read (replacementRows), so the first is looked at.
  const iterator = rows[Symbol.iterator]();
  const first = iterator.next();
  if (first.done) return;
  await startCopy(tx, table, columns).into({ [Symbol.iterator]: () => withFirst(first.value, iterator) });
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
