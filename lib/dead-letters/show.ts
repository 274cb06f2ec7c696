import { isUtf8 } from 'node:buffer';
import type { Sql } from '../db';
import { holdsExactInteger, parseJson } from '../json';
import { DEAD_LETTER_COLUMNS, storedHeaders, type StoredDeadLetter } from './record';
import type { ShowRequest } from './request';
import { deadLettersTable, selectionFilter } from './selection';

/** Bytes decoded for a person: parsed JSON when they are UTF-8 JSON, else text when UTF-8, else base64. */
export type DecodedBytes =
  | { format: 'json'; bytes: number; json: unknown }
  | { format: 'text'; bytes: number; text: string }
  | { format: 'base64'; bytes: number; base64: string };

export interface ShownDeadLetter {
  id: number;
  topic: string;
  partition: number;
  offset: number;
  timestamp: string | null;
  key: DecodedBytes | null;
  /** null for a tombstone. */
  value: DecodedBytes | null;
  /** In Kafka order, repeats kept; each value as text when it is UTF-8, else as base64 (header values are not JSON). */
  headers: Array<{ key: string; value: DecodedBytes }>;
  reason: string;
  detail: string | null;
  traceId: string | null;
  createdAt: string;
  redrive: { at: string; result: string; reason: string | null; detail: string | null; count: number } | null;
}

export interface ShowPage {
  letters: ShownDeadLetter[];
  /** Pass as `after` for the next page; null when this page is the last. */
  nextAfter: number | null;
}

/**
 * Raw bytes (key, value, headers) one page carries at most. Lambda refuses a response over 6 MB, and bytes shown as
 * base64 or JSON grow by a third or more: past this, the page ends early and `nextAfter` leads on. A page always
 * holds at least one dead letter, whose record reached the consumer inside a Lambda event and so fits.
 */
export const PAGE_BYTES = 3 * 1024 * 1024;

/** One page of the selected dead letters, oldest id first, decoded. Returns content; the caller must not log it. */
export async function show(sql: Sql, schema: string, request: ShowRequest): Promise<ShowPage> {
  const rows = await sql<StoredDeadLetter[]>`
    select ${sql([...DEAD_LETTER_COLUMNS])} from ${deadLettersTable(sql, schema)}
    where id > ${request.after} ${selectionFilter(sql, request)}
    order by id
    limit ${request.limit + 1}`;
  const page: ShownDeadLetter[] = [];
  let bytes = 0;
  for (const row of rows.slice(0, request.limit)) {
    bytes += rawBytes(row);
    if (page.length > 0 && bytes > PAGE_BYTES) break;
    page.push(present(row));
  }
  return { letters: page, nextAfter: rows.length > page.length ? (page.at(-1)?.id ?? null) : null };
}

function rawBytes(row: StoredDeadLetter): number {
  const sum = (buffers: readonly Buffer[]) => buffers.reduce((n, b) => n + b.length, 0);
  return (row.key?.length ?? 0) + (row.value?.length ?? 0) + sum(row.header_keys) + sum(row.header_values);
}

function present(row: StoredDeadLetter): ShownDeadLetter {
  return {
    id: Number(row.id),
    topic: row.kafka_topic,
    partition: row.kafka_partition,
    offset: Number(row.kafka_offset),
    timestamp: row.kafka_timestamp?.toISOString() ?? null,
    key: row.key === null ? null : decodeBytes(row.key),
    value: row.value === null ? null : decodeBytes(row.value),
    headers: storedHeaders(row).map((h) => ({ key: h.key, value: decodeText(h.value) })),
    reason: row.reason,
    detail: row.detail,
    traceId: row.trace_id,
    createdAt: row.created_at.toISOString(),
    redrive:
      row.redriven_at === null || row.redrive_result === null
        ? null
        : { at: row.redriven_at.toISOString(), result: row.redrive_result, reason: row.redrive_reason, detail: row.redrive_detail, count: row.redrive_count },
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
  return holdsExactInteger(json) ? decoded : { format: 'json', bytes: bytes.length, json };
}

const BOM = '\ufeff';
