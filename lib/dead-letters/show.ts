import { isUtf8 } from 'node:buffer';
import type { Queryable } from '../postgres/client';
import { holdsExactInteger, parseJson } from '../batch/exact-json';
import { DEAD_LETTER_COLUMNS, storedHeaders, type StoredDeadLetter } from './stored-dead-letter';
import type { ShowRequest } from './request';
import { selectionFilter } from './selection-filter';
import { tableIdentifiers } from '../postgres/table-names';
import { SETTLED } from './resolution';

/**
 * Bytes decoded for a person: parsed JSON when they are UTF-8 JSON, else text when UTF-8, else base64. `bytes` is
 * always the full size; `truncated` marks text or base64 cut to fit the response, `shownBytes` how many it shows.
 */
export type DecodedBytes =
  | { format: 'json'; bytes: number; json: unknown }
  | ({ format: 'text'; bytes: number; text: string } & Truncation)
  | ({ format: 'base64'; bytes: number; base64: string } & Truncation);
type Truncation = { truncated?: true; shownBytes?: number };

interface ShownDeadLetter {
  id: number;
  topic: string;
  partition: number;
  offset: number;
  timestamp: string | null;
  key: DecodedBytes | null;
  /** null for a tombstone. */
  value: DecodedBytes | null;
  /**
   * In Kafka order, repeats kept; each value as text when it is UTF-8, else as base64 (header values are not JSON).
   * `keyTruncated` marks a key cut to fit HEADERS_SHOWN_BYTES; headers past it are counted in `headersOmitted`.
   */
  headers: Array<{ key: string; keyTruncated?: true; value: DecodedBytes }>;
  /** Headers not listed because those before them filled HEADERS_SHOWN_BYTES; absent when every one is listed. */
  headersOmitted?: number;
  reason: string;
  detail: string | null;
  traceId: string | null;
  createdAt: string;
  redrive: { at: string; result: string; reason: string | null; detail: string | null; count: number } | null;
  /**
   * The report stored under the letter's trace id, which resolves it (lib/dead-letters/resolution.ts): its status in
   * processed_traces, when it was processed, its Kafka coordinates, and `redriveOf`, the dead letter whose redrive
   * stored it (this one's own id when its own redrive did), null when the consumer stored it from Kafka. Null when
   * no report with this trace id is stored.
   */
  resolvedBy: {
    traceStatus: string;
    at: string;
    topic: string;
    partition: number;
    offset: number;
    redriveOf: number | null;
  } | null;
}

export interface ShowPage {
  letters: ShownDeadLetter[];
  /** Pass as `after` for the next page; null when this page is the last. */
  nextAfter: number | null;
}

/*
 * Lambda refuses a response over 6 MB, and bytes grow when shown: base64 by a third, a control character written as
 * `\u0001` six times (a 1.1 MB value of them made a 6.6 MB answer). So sizes are counted as shown, in JSON, not as
 * stored: a value, a key and a letter's headers each show at most a fixed amount (cut with `truncated: true`), so
 * that one letter always fits, and a page ends before PAGE_BYTES as shown, `nextAfter` leading on.
 */

/** Bytes of JSON one page carries at most, letters and all; Lambda's limit is 6 MB, this leaves room to spare. */
const PAGE_BYTES = 5 * 1024 * 1024;
/** Bytes of JSON a value is shown in at most; beyond, it is shown as text or base64 cut to this size. */
export const VALUE_SHOWN_BYTES = 2 * 1024 * 1024;
/** Bytes of JSON a key is shown in at most. */
const KEY_SHOWN_BYTES = 256 * 1024;
/** Bytes of JSON all of a letter's header keys and values are shown in at most, together. */
export const HEADERS_SHOWN_BYTES = 1024 * 1024;
/**
 * Levels of nesting a value is shown as parsed JSON with; a deeper one is shown as text. JSON.stringify, which
 * writes the response (and the CLI's output), recurses, and overflows the stack near 10,000 levels.
 */
export const SHOWN_DEPTH = 1000;

/**
 * Stored bytes (key, value, headers) read from the database at a time. A page shows at most PAGE_BYTES, but a
 * letter's stored bytes can be several MB (a `too_large` value): read all at once, 100 of them took over 600 MB, more
 * than the function's memory. So the page's letters are read in parts of about this size (at least one letter),
 * and no further part is read once the page is full.
 */
export const READ_BYTES = 8 * 1024 * 1024;

/** One page of the selected dead letters, oldest id first, decoded. Returns content; the caller must not log it. */
export async function show(sql: Queryable, schema: string, request: ShowRequest): Promise<ShowPage> {
  const t = tableIdentifiers(sql, schema);
  const table = t.dead_letters;
  // First which letters and how large, without their bytes.
  const selected = await sql<{ id: string; stored: number }[]>`
    select id, (coalesce(octet_length(key), 0) + coalesce(octet_length(value), 0)
      + coalesce((select sum(octet_length(h)) from unnest(header_keys || header_values) as h), 0))::float8 as stored
    from ${table}
    where id > ${request.after} ${selectionFilter(sql, request)}
    order by id
    limit ${request.limit + 1}`;
  const page: ShownDeadLetter[] = [];
  let bytes = 0;
  let full = false;
  for (const part of parts(selected.slice(0, request.limit))) {
    const rows = await sql<ShownRow[]>`
      select x.*, p.status as resolved_status, p.processed_at as resolved_at, p.kafka_topic as resolved_topic,
        p.kafka_partition as resolved_partition, p.kafka_offset::float8 as resolved_offset, r.id::float8 as redrive_of
      from (select ${sql([...DEAD_LETTER_COLUMNS])} from ${table} where id = any(${part}::bigint[])) as x
      left join ${t.processed_traces} p on p.trace_id = x.trace_id
      left join lateral (
        select r.id from ${table} r
        where r.kafka_topic = p.kafka_topic and r.kafka_partition = p.kafka_partition
          and r.kafka_offset = p.kafka_offset and r.trace_id = p.trace_id and r.redrive_result = any(${SETTLED}::text[])
        order by r.id limit 1
      ) as r on true
      order by x.id`;
    for (const row of rows) {
      const letter = present(row);
      bytes += shownBytes(letter);
      if (page.length > 0 && bytes > PAGE_BYTES) {
        full = true;
        break;
      }
      page.push(letter);
    }
    if (full) break;
  }
  const more = full || selected.length > request.limit;
  return { letters: page, nextAfter: more ? (page.at(-1)?.id ?? null) : null };
}

/** Ids in order, grouped so that each group's stored bytes stay within READ_BYTES (a larger letter alone). */
function parts(selected: ReadonlyArray<{ id: string; stored: number }>): string[][] {
  const groups: string[][] = [];
  let size = Infinity;
  for (const { id, stored } of selected) {
    if (size + stored > READ_BYTES) {
      groups.push([]);
      size = 0;
    }
    groups.at(-1)!.push(id);
    size += stored;
  }
  return groups;
}

const shownBytes = (x: unknown) => Buffer.byteLength(JSON.stringify(x));

/**
 * Bytes of JSON around one shown header's key and value (`{"key":,"keyTruncated":true,"value":}` and a comma),
 * kept free when cutting them, so that the header as shown, not only its key and value, fits what is left.
 */
const HEADER_FRAME_BYTES = 64;
/** Bytes of JSON a header cut to nothing is shown in (frame, empty key, empty value and its fields), about 120. */
const CUT_HEADER_BYTES = 160;

/**
 * A letter's headers as shown, all of them together within HEADERS_SHOWN_BYTES of JSON. Each header is counted as
 * shown, frame and all: a record may carry hundreds of thousands of empty headers (two bytes each in Kafka), whose
 * keys and values weigh nothing but whose entries made an 8 MB answer. The headers past the budget are not listed;
 * `omitted` says how many.
 */
function presentHeaders(row: StoredDeadLetter): { headers: ShownDeadLetter['headers']; omitted: number } {
  const stored = storedHeaders(row);
  const headers: ShownDeadLetter['headers'] = [];
  let left = HEADERS_SHOWN_BYTES;
  for (const [i, h] of stored.entries()) {
    // A large header leaves room for the ones after it to be listed, cut (at most half of what is left).
    const room = left - Math.min(Math.floor(left / 2), CUT_HEADER_BYTES * (stored.length - i - 1));
    const key = cutText(h.key, Math.max(0, room - HEADER_FRAME_BYTES));
    const value = fitToBytes(decodeText(h.value), Math.max(0, room - HEADER_FRAME_BYTES - shownBytes(key.text)));
    const shown = { key: key.text, ...(key.truncated ? { keyTruncated: true as const } : {}), value };
    const bytes = shownBytes(shown) + 1;
    if (bytes > left) break;
    left -= bytes;
    headers.push(shown);
  }
  return { headers, omitted: stored.length - headers.length };
}

/** A dead letter as read for show: its row, and the report stored under its trace id, if any. */
interface ShownRow extends StoredDeadLetter {
  resolved_status: string | null;
  resolved_at: Date | null;
  resolved_topic: string | null;
  resolved_partition: number | null;
  resolved_offset: number | null;
  redrive_of: number | null;
}

function present(row: ShownRow): ShownDeadLetter {
  const { headers, omitted } = presentHeaders(row);
  return {
    id: Number(row.id),
    topic: row.kafka_topic,
    partition: row.kafka_partition,
    offset: Number(row.kafka_offset),
    timestamp: row.kafka_timestamp?.toISOString() ?? null,
    key: row.key === null ? null : fitToBytes(decodeBytes(row.key), KEY_SHOWN_BYTES),
    value: row.value === null ? null : fitToBytes(decodeBytes(row.value), VALUE_SHOWN_BYTES),
    headers,
    ...(omitted > 0 ? { headersOmitted: omitted } : {}),
    reason: row.reason,
    detail: row.detail,
    traceId: row.trace_id,
    createdAt: row.created_at.toISOString(),
    redrive:
      row.redriven_at === null || row.redrive_result === null
        ? null
        : {
            at: row.redriven_at.toISOString(),
            result: row.redrive_result,
            reason: row.redrive_reason,
            detail: row.redrive_detail,
            count: row.redrive_count,
          },
    resolvedBy:
      row.resolved_status === null || row.resolved_at === null
        ? null
        : {
            traceStatus: row.resolved_status,
            at: row.resolved_at.toISOString(),
            topic: row.resolved_topic ?? '',
            partition: row.resolved_partition ?? 0,
            offset: row.resolved_offset ?? 0,
            redriveOf: row.redrive_of,
          },
  };
}

/** Bytes as text when they are UTF-8, else as base64. */
export function decodeText(bytes: Buffer): Extract<DecodedBytes, { format: 'text' | 'base64' }> {
  if (!isUtf8(bytes)) return { format: 'base64', bytes: bytes.length, base64: bytes.toString('base64') };
  return { format: 'text', bytes: bytes.length, text: bytes.toString('utf8') };
}

/**
 * Bytes as parsed JSON when they are UTF-8 JSON (after a byte order mark, which the consumer also accepts), else as
 * text or base64. JSON holding an integer beyond 2^53 is shown as its text: parsed, the id would read with other
 * digits than the producer wrote, and the operator would look for a trace that does not exist.
 */
export function decodeBytes(bytes: Buffer): DecodedBytes {
  const decoded = decodeText(bytes);
  if (decoded.format === 'base64') return decoded;
  const { text } = decoded;
  let json: unknown;
  try {
    json = parseJson(text.startsWith(BOM) ? text.slice(1) : text);
  } catch {
    return decoded;
  }
  return holdsExactInteger(json) || depthOver(json, SHOWN_DEPTH)
    ? decoded
    : { format: 'json', bytes: bytes.length, json };
}

/** True when `value` nests deeper than `max` levels. A loop, not recursion, for the reason SHOWN_DEPTH gives. */
function depthOver(value: unknown, max: number): boolean {
  const pending: Array<[unknown, number]> = [[value, 0]];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [item, depth] = next;
    if (item === null || typeof item !== 'object') continue;
    if (depth >= max) return true;
    for (const child of Object.values(item)) pending.push([child, depth + 1]);
  }
  return false;
}

/**
 * `decoded` as it is when its JSON takes at most `max` bytes; else cut to fit: JSON shown as text, text and base64
 * cut at a character (or a 3-byte group), marked `truncated` with the number of bytes shown. `bytes` stays the full
 * size. Linear in the size.
 */
export function fitToBytes(decoded: DecodedBytes, max: number): DecodedBytes {
  if (shownBytes(decoded) <= max) return decoded;
  // Room for the fields around the shown text ({"format":"text","bytes":N,"truncated":true,"shownBytes":N,"text":""}).
  const room = Math.max(0, max - 100);
  if (decoded.format === 'base64') {
    const shown = Math.floor(room / 4) * 3;
    const base64 = Buffer.from(decoded.base64, 'base64').subarray(0, shown).toString('base64');
    return { format: 'base64', bytes: decoded.bytes, truncated: true, shownBytes: shown, base64 };
  }
  const text = decoded.format === 'text' ? decoded.text : JSON.stringify(decoded.json);
  const cut = cutText(text, room);
  return {
    format: 'text',
    bytes: decoded.bytes,
    truncated: true,
    shownBytes: Buffer.byteLength(cut.text),
    text: cut.text,
  };
}

/** The longest start of `text` whose JSON string takes at most `max` bytes, never splitting a surrogate pair. */
function cutText(text: string, max: number): { text: string; truncated: boolean } {
  let used = 2; // the quotes
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const pair = code >= 0xd800 && code <= 0xdbff && i + 1 < text.length;
    used += shownCharBytes(code, pair);
    if (used > max) return { text: text.slice(0, i), truncated: true };
    if (pair) i++;
  }
  return { text, truncated: false };
}

/** Bytes JSON.stringify writes for one UTF-16 unit (a surrogate pair counted at its high half). */
function shownCharBytes(code: number, pair: boolean): number {
  if (
    code === 0x22 ||
    code === 0x5c ||
    code === 0x08 ||
    code === 0x09 ||
    code === 0x0a ||
    code === 0x0c ||
    code === 0x0d
  )
    return 2;
  if (code < 0x20) return 6;
  if (code < 0x80) return 1;
  if (code < 0x800) return 2;
  if (code >= 0xd800 && code <= 0xdfff) return pair ? 4 : 6;
  return 3;
}

const BOM = '\ufeff';
