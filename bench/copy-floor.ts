import { copyRows } from '../lib/postgres/copy-rows';
import { inTransaction, type Sql } from '../lib/postgres/client';
import type { SurveyMessage } from '../lib/batch/trace-message';

/**
 * The floor no upserting writer can beat: COPY of the same rows into tables without keys, indexes or constraints,
 * in one transaction per batch. No lookups, no conflicts, no ordering rules: just moving the bytes in.
 */
export const COPY_TABLES_SQL = (schema: string) =>
  `
  create schema if not exists "${schema}";
  create table if not exists "${schema}".instructors (name text);
  create table if not exists "${schema}".courses (course_id text, course_name text, subject text, ` +
  `catalog_section text, semester text,
    year integer, enrollment integer, responses integer, declines integer, processed_at timestamptz, ` +
  `original_file_name text,
    gcs_bucket text, gcs_path text, trace_id text);
  create table if not exists "${schema}".ratings (course_id text, instructor text, trace_id text, question_text ` +
  `text, category text,
    responses integer, response_rate double precision, course_mean double precision, dept_mean double precision,
    univ_mean double precision, course_median double precision, dept_median double precision, univ_median ` +
  `double precision);
  create table if not exists "${schema}".comments (course_id text, instructor text, trace_id text, category ` +
  `text, question_text text,
    response_number integer, comment_text text);
  create table if not exists "${schema}".processed_traces (trace_id text, status text, kafka_topic text, ` +
  `kafka_partition integer,
    kafka_offset bigint);`;

/** Same COPY path as the consumer's (lib/postgres/copy-rows.ts), so the two differ only in what they do around it. */
export async function copyBatch(sql: Sql, schema: string, messages: readonly SurveyMessage[]): Promise<void> {
  const table = (name: string) => sql(`${schema}.${name}`);
  await inTransaction(sql, async (tx) => {
    await copyRows(
      tx,
      table('instructors'),
      ['name'],
      messages.map((m) => [m.instructor.name]),
    );
    await copyRows(
      tx,
      table('courses'),
      [
        'course_id',
        'course_name',
        'subject',
        'catalog_section',
        'semester',
        'year',
        'enrollment',
        'responses',
        'declines',
        'processed_at',
        'original_file_name',
        'gcs_bucket',
        'gcs_path',
        'trace_id',
      ],
      messages.map(({ course: c, traceId }) => [
        c.courseId,
        c.courseName,
        c.subject,
        c.catalogSection,
        c.semester,
        c.year,
        c.enrollment,
        c.responses,
        c.declines,
        c.processedAt,
        c.originalFileName,
        c.gcsBucket,
        c.gcsPath,
        traceId,
      ]),
    );
    await copyRows(
      tx,
      table('ratings'),
      [
        'course_id',
        'instructor',
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
      ],
      messages.flatMap((m) =>
        m.ratings.map((r) => [
          m.course.courseId,
          m.instructor.name,
          m.traceId,
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
        ]),
      ),
    );
    await copyRows(
      tx,
      table('comments'),
      ['course_id', 'instructor', 'trace_id', 'category', 'question_text', 'response_number', 'comment_text'],
      messages.flatMap((m) =>
        m.comments.map((k) => [
          m.course.courseId,
          m.instructor.name,
          m.traceId,
          k.category,
          k.questionText,
          k.responseNumber,
          k.commentText,
        ]),
      ),
    );
    await copyRows(
      tx,
      table('processed_traces'),
      ['trace_id', 'status', 'kafka_topic', 'kafka_partition', 'kafka_offset'],
      messages.map((m) => [m.traceId, 'stored', 'trace-survey-processed', 0, 0]),
    );
  });
}
