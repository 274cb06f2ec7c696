import type { SurveyMessage, TraceMessage } from './trace-message';
import { fromEpochMs, storableText } from './storable-text';
import type { KafkaRecord, RecordRef } from './kafka-record';

/*
 * What to write, decided without the database: duplicates inside the batch collapsed, the newest report per course
 * and per course-and-instructor pair chosen, rows shaped for their tables and sorted by key, so that concurrent
 * invocations take row locks in the same order and cannot deadlock one another.
 */

/** A valid message with the record it came from and the time that orders it against other reports. */
export interface Candidate {
  record: KafkaRecord;
  message: TraceMessage;
  /** Canonical UTC timestamp (see canonicalTimestamp): processedAt, else course.processedAt, else Kafka's time. */
  reportAt: string;
}

export type SurveyCandidate = Candidate & { message: SurveyMessage };

const EPOCH = '1970-01-01T00:00:00.000000Z';

export function toCandidate(record: KafkaRecord, message: TraceMessage): Candidate {
  const reportAt =
    message.processedAt ??
    (message.kind === 'survey' ? message.course.processedAt : null) ??
    (record.timestamp === null ? null : fromEpochMs(record.timestamp)) ??
    EPOCH;
  return { record, message, reportAt };
}

/**
 * Newer report first: a later report time wins, ties go to the higher Kafka offset, then the higher partition
 * (only so that the order is total). The database compares the same triple in the same order.
 */
export function compareReports(a: Candidate, b: Candidate): number {
  if (a.reportAt !== b.reportAt) return a.reportAt < b.reportAt ? 1 : -1;
  if (a.record.offset !== b.record.offset) return b.record.offset - a.record.offset;
  return b.record.partition - a.record.partition;
}

/**
 * Splits candidates into the first copy of each trace id (in event order) and the later copies. `nextCopy` chains
 * the copies of each trace id in event order: a later copy is written only when the one before it was
 * dead-lettered (a corrected resend gets its chance, as it would in a later batch); otherwise it is a duplicate.
 */
export function collapseTraceIds(candidates: readonly Candidate[]): {
  unique: Candidate[];
  repeats: Candidate[];
  nextCopy: Map<Candidate, Candidate>;
} {
  const last = new Map<string, Candidate>();
  const unique: Candidate[] = [];
  const repeats: Candidate[] = [];
  const nextCopy = new Map<Candidate, Candidate>();
  for (const c of candidates) {
    const previous = last.get(c.message.traceId);
    if (previous === undefined) unique.push(c);
    else {
      repeats.push(c);
      nextCopy.set(previous, c);
    }
    last.set(c.message.traceId, c);
  }
  return { unique, repeats, nextCopy };
}

// Row shapes, keyed by column name: they are sent to PostgreSQL as JSON and read with json_to_recordset.

interface Version {
  report_at: string;
  report_offset: number;
  report_partition: number;
}

export interface ClaimRow extends Version {
  trace_id: string;
  status: 'stored' | 'upstream_error';
  error: string | null;
  kafka_topic: string;
  kafka_partition: number;
  kafka_offset: number;
}

interface CourseRow extends Version {
  course_id: string;
  course_name: string | null;
  subject: string | null;
  catalog_section: string | null;
  semester: string | null;
  year: number | null;
  enrollment: number | null;
  responses: number | null;
  declines: number | null;
  processed_at: string | null;
  original_file_name: string | null;
  gcs_bucket: string | null;
  gcs_path: string | null;
  trace_id: string;
}

interface PairRow extends Version {
  trace_id: string;
  course_id: string;
  instructor: string;
}

export interface DeadLetterRow {
  kafka_topic: string;
  kafka_partition: number;
  kafka_offset: number;
  kafka_timestamp: string | null;
  /** Bytes as hex: sent as JSON text, decoded to bytea by the database. */
  key: string | null;
  value: string | null;
  /** UTF-8 bytes of each header key and each value, hex, in Kafka order: two arrays of the same length. */
  header_keys: string[];
  header_values: string[];
  reason: string;
  detail: string;
  trace_id: string | null;
}

const version = (c: Candidate): Version => ({
  report_at: c.reportAt,
  report_offset: c.record.offset,
  report_partition: c.record.partition,
});

const byKey =
  <T>(key: (x: T) => string) =>
  (a: T, b: T): number => {
    const ka = key(a);
    const kb = key(b);
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  };

/** One row per trace id to claim in processed_traces, sorted by trace id. */
export function claimRows(unique: readonly Candidate[]): ClaimRow[] {
  return unique
    .map((c) => ({
      trace_id: c.message.traceId,
      status: c.message.kind === 'survey' ? ('stored' as const) : ('upstream_error' as const),
      error: c.message.kind === 'upstream_error' ? c.message.error : null,
      kafka_topic: c.record.topic,
      kafka_partition: c.record.partition,
      kafka_offset: c.record.offset,
      ...version(c),
    }))
    .sort(byKey((r) => r.trace_id));
}

/** What to write for the survey reports whose trace ids were claimed. */
export interface SurveyPlan {
  /** Distinct instructor names, sorted. */
  instructors: string[];
  /** The newest report's attributes per course, sorted by course id. */
  courses: CourseRow[];
  /** The newest report per course and instructor; the database keeps it only if it is newer than what it has. */
  pairs: PairRow[];
  /** Reports that a newer one in the same batch replaces for the same course and instructor. */
  supersededInBatch: SurveyCandidate[];
}

export function planSurvey(claimed: readonly SurveyCandidate[]): SurveyPlan {
  const newestFirst = [...claimed].sort(compareReports);
  const courses = new Map<string, SurveyCandidate>();
  const pairs = new Map<string, SurveyCandidate>();
  const supersededInBatch: SurveyCandidate[] = [];
  for (const c of newestFirst) {
    const { courseId } = c.message.course;
    if (!courses.has(courseId)) courses.set(courseId, c);
    const pairKey = JSON.stringify([courseId, c.message.instructor.name]);
    if (pairs.has(pairKey)) supersededInBatch.push(c);
    else pairs.set(pairKey, c);
  }
  return {
    instructors: [...new Set(claimed.map((c) => c.message.instructor.name))].sort(),
    courses: [...courses.values()].map(courseRow).sort(byKey((r) => r.course_id)),
    pairs: [...pairs.values()].map((c) => ({
      trace_id: c.message.traceId,
      course_id: c.message.course.courseId,
      instructor: c.message.instructor.name,
      ...version(c),
    })),
    supersededInBatch,
  };
}

function courseRow(c: SurveyCandidate): CourseRow {
  const course = c.message.course;
  return {
    course_id: course.courseId,
    course_name: course.courseName,
    subject: course.subject,
    catalog_section: course.catalogSection,
    semester: course.semester,
    year: course.year,
    enrollment: course.enrollment,
    responses: course.responses,
    declines: course.declines,
    processed_at: course.processedAt,
    original_file_name: course.originalFileName,
    gcs_bucket: course.gcsBucket,
    gcs_path: course.gcsPath,
    trace_id: c.message.traceId,
    ...version(c),
  };
}

/** A report the database accepted as the newest for its pair, with the pair's database ids. */
export interface Winner {
  trace_id: string;
  course_id: string;
  instructor_id: string;
  /** True when the pair row is new, so that it holds no ratings or comments yet. */
  inserted: boolean;
}

export const RATING_COLUMNS = [
  'course_id',
  'instructor_id',
  'trace_id',
  'question_text',
  'category',
  'responses',
  'response_rate',
  'course_mean',
  'dept_mean',
  'univ_mean',
  'course_median',
  'dept_median',
  'univ_median',
] as const;
export const COMMENT_COLUMNS = [
  'course_id',
  'instructor_id',
  'trace_id',
  'category',
  'question_text',
  'response_number',
  'comment_text',
] as const;

/**
 * Ratings and comments rows of the winning reports, which replace whatever their pairs held before: one array of
 * values per row, in RATING_COLUMNS and COMMENT_COLUMNS order, ready for COPY. Made one at a time as COPY reads
 * them, never all at once: a 6 MB batch of tiny ratings holds 1.3 million, and as arrays they took 216 MB beside the
 * 171 MB of the messages themselves, over the 512 MB of a default deployment on every delivery.
 */
export function replacementRows(
  winners: readonly Omit<Winner, 'inserted'>[],
  byTraceId: ReadonlyMap<string, SurveyCandidate>,
) {
  const won = winners.map((w) => {
    const message = byTraceId.get(w.trace_id)?.message;
    if (!message) throw new Error(`The database returned trace id ${w.trace_id}, which this batch did not write.`);
    return { w, message };
  });
  const rows = <T>(
    items: (m: SurveyMessage) => readonly T[],
    row: (w: Omit<Winner, 'inserted'>, item: T) => unknown[],
  ): Iterable<unknown[]> => ({
    *[Symbol.iterator]() {
      for (const { w, message } of won) for (const item of items(message)) yield row(w, item);
    },
  });
  return {
    ratings: rows(
      (m) => m.ratings,
      (w, r) => [
        w.course_id,
        w.instructor_id,
        w.trace_id,
        r.questionText,
        r.category,
        r.responses,
        r.responseRate,
        r.courseMean,
        r.deptMean,
        r.univMean,
        r.courseMedian,
        r.deptMedian,
        r.univMedian,
      ],
    ),
    comments: rows(
      (m) => m.comments,
      (w, c) => [w.course_id, w.instructor_id, w.trace_id, c.category, c.questionText, c.responseNumber, c.commentText],
    ),
  };
}

/**
 * A dead letter row for a record: raw bytes as received (hex in transit, bytea at rest), headers byte-exact and in
 * order, a reason code. Every text column is made storable (see storableText), so that nothing a record carries can
 * make the row itself rejected: the bytes, where anything may hide, travel as bytea.
 */
export function deadLetterRow(
  record: KafkaRecord,
  reason: string,
  detail: string,
  traceId: string | null = null,
): DeadLetterRow {
  return {
    ...minimalDeadLetterRow(record, reason, detail),
    kafka_timestamp: record.timestamp === null ? null : fromEpochMs(record.timestamp),
    header_keys: record.headers.map((h) => Buffer.from(h.key, 'utf8').toString('hex')),
    header_values: record.headers.map((h) => h.value.toString('hex')),
    trace_id: traceId === null ? null : storableText(traceId),
  };
}

/**
 * The last resort when PostgreSQL rejects a dead letter row: where the record sits, its key and value bytes and the
 * reason, nothing else that could be rejected. `detail` says why the full row was not written.
 */
export function minimalDeadLetterRow(record: KafkaRecord, reason: string, detail: string): DeadLetterRow {
  return {
    kafka_topic: storableText(record.topic),
    kafka_partition: record.partition,
    kafka_offset: record.offset,
    kafka_timestamp: null,
    key: record.key?.toString('hex') ?? null,
    value: record.value?.toString('hex') ?? null,
    header_keys: [],
    header_values: [],
    reason: storableText(reason),
    detail: storableText(detail),
    trace_id: null,
  };
}

/** Stable identity of a record within a batch. */
export function refKey(ref: RecordRef): string {
  return `${ref.topic}\u0000${ref.partition}\u0000${ref.offset}`;
}
