import * as v from 'valibot';
import { EnvelopeError } from '../errors';
import { eventKind } from './event-kind';
import type { KafkaRecord, KafkaHeader } from '../batch/kafka-record';

/**
 * The Kafka event Lambda sends for Amazon MSK (`aws:kafka`) and self-managed Kafka (`SelfManagedKafka`): the two
 * share one shape. Only what identifies a record is required; everything else is checked per record, so one odd
 * record never fails the envelope. https://docs.aws.amazon.com/lambda/latest/dg/with-msk.html
 */
const KafkaRecordSchema = v.object({
  topic: v.pipe(v.string(), v.nonEmpty()),
  partition: v.pipe(v.number(), v.integer(), v.minValue(0)),
  offset: v.pipe(v.number(), v.integer(), v.minValue(0)),
  timestamp: v.optional(v.nullable(v.number())),
  key: v.optional(v.nullable(v.unknown())),
  value: v.optional(v.nullable(v.unknown())),
  headers: v.optional(v.nullable(v.unknown())),
});

const KafkaEventSchema = v.object({
  eventSource: v.optional(v.string()),
  records: v.record(v.string(), v.array(KafkaRecordSchema)),
});

/**
 * Decodes every record of every partition, in event order. Throws {@link EnvelopeError} only when the envelope
 * itself is not a Kafka event; a record's odd key, value or headers are kept for the message step to judge.
 */
export function decodeEvent(event: unknown): KafkaRecord[] {
  const kind = eventKind(event);
  if (kind.kind === 'http')
    throw new EnvelopeError(
      `it is an HTTP API request (${kind.request}), meant for the health function`,
      'Send it to the health function instead (locally: npx serverless invoke local -f health -p <file>).',
    );
  const parsed = v.safeParse(KafkaEventSchema, event);
  if (!parsed.success) {
    const issue = parsed.issues[0];
    throw new EnvelopeError(`${v.getDotPath(issue) ?? 'event'}: ${issue.message}`);
  }
  const records: KafkaRecord[] = [];
  for (const partition of Object.values(parsed.output.records)) {
    for (const r of partition) {
      records.push({
        topic: r.topic,
        partition: r.partition,
        offset: r.offset,
        timestamp: decodeTimestamp(r.timestamp),
        key: decodeBase64(r.key),
        value: decodeBase64(r.value),
        headers: decodeHeaders(r.headers),
      });
    }
  }
  return records;
}

/** A value that is not a base64 string is kept as its JSON text, so it can still be dead-lettered and inspected. */
function decodeBase64(field: unknown): Buffer | null {
  if (field === undefined || field === null) return null;
  if (typeof field === 'string') return Buffer.from(field, 'base64');
  return Buffer.from(JSON.stringify(field), 'utf8');
}

/**
 * Kafka writes -1 for a record without a timestamp, and rejects every other negative value, so a negative
 * timestamp means "none", never an instant before 1970.
 */
function decodeTimestamp(field: unknown): number | null {
  return typeof field === 'number' && Number.isFinite(field) && field >= 0 ? field : null;
}

/**
 * Headers arrive as `[{ "name": [byte, byte, ...] }, ...]`, one entry per header in Kafka order, a name possibly
 * repeated. Values are kept as bytes; numbers outside 0-255 are masked as Lambda's own runtimes do (they may send
 * Java's signed bytes). Malformed entries are skipped: headers carry no survey data.
 */
function decodeHeaders(field: unknown): KafkaHeader[] {
  const headers: KafkaHeader[] = [];
  if (!Array.isArray(field)) return headers;
  for (const entry of field) {
    if (entry === null || typeof entry !== 'object') continue;
    for (const [key, bytes] of Object.entries(entry)) {
      if (Array.isArray(bytes) && bytes.every((b) => typeof b === 'number')) {
        headers.push({ key, value: Buffer.from(bytes.map((b: number) => b & 0xff)) });
      }
    }
  }
  return headers;
}
