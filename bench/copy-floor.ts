import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type { Sql } from '../lib/db';
import type { SurveyMessage } from '../lib/message';

/**
 * The floor no upserting writer can beat: COPY of the same rows into tables without keys, indexes or constraints,
 * in one transaction per batch. No lookups, no conflicts, no ordering rules: just moving the bytes in.
 */
export const COPY_TABLES_SQL = (schema: string) => `
  create schema if not exists "${schema}";
  create table if not exists "${schema}".instructors (name text);
  create table if not exists "${schema}".courses (course_id text, course_name text, subject text, catalog_section text, semester text,
    year integer, enrollment integer, responses integer, declines integer, processed_at timestamptz, original_file_name text,
    gcs_bucket text, gcs_path text, trace_id text);
  create table if not exists "${schema}".ratings (course_id text, instructor text, trace_id text, question_text text, category text,
    responses integer, response_rate double precision, course_mean double precision, dept_mean double precision,
    univ_mean double precision, course_median double precision, dept_median double precision, univ_median double precision);
  create table if not exists "${schema}".comments (course_id text, instructor text, trace_id text, category text, question_text text,
    response_number integer, comment_text text);
  create table if not exists "${schema}".processed_traces (trace_id text, status text, kafka_topic text, kafka_partition integer,
    kafka_offset bigint);`;

const field = (v: unknown): string =>
  v === null || v === undefined ? '\\N' : String(v).replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
const line = (values: unknown[]) => values.map(field).join('\t') + '\n';

export async function copyBatch(sql: Sql, schema: string, messages: readonly SurveyMessage[]): Promise<void> {
  const table = (name: string) => sql(`${schema}.${name}`);
  const copy = async (tx: Sql, name: string, rows: Generator<string>) => {
    const target = await tx`copy ${table(name)} from stdin`.writable();
    await pipeline(Readable.from(rows), target);
  };
  await sql.begin(async (tx) => {
    await copy(tx as unknown as Sql, 'instructors', (function* () {
      for (const m of messages) yield line([m.instructor.name]);
    })());
    await copy(tx as unknown as Sql, 'courses', (function* () {
      for (const { course: c, traceId } of messages) {
        yield line([c.courseId, c.courseName, c.subject, c.catalogSection, c.semester, c.year, c.enrollment, c.responses, c.declines, c.processedAt, c.originalFileName, c.gcsBucket, c.gcsPath, traceId]);
      }
    })());
    await copy(tx as unknown as Sql, 'ratings', (function* () {
      for (const m of messages) {
        for (const r of m.ratings) {
          yield line([m.course.courseId, m.instructor.name, m.traceId, r.questionText, r.category, r.responses, r.responseRate, r.courseMean, r.deptMean, r.univMean, r.courseMedian, r.deptMedian, r.univMedian]);
        }
      }
    })());
    await copy(tx as unknown as Sql, 'comments', (function* () {
      for (const m of messages) {
        for (const k of m.comments) yield line([m.course.courseId, m.instructor.name, m.traceId, k.category, k.questionText, k.responseNumber, k.commentText]);
      }
    })());
    await copy(tx as unknown as Sql, 'processed_traces', (function* () {
      for (const m of messages) yield line([m.traceId, 'stored', 'trace-survey-processed', 0, 0]);
    })());
  });
}
