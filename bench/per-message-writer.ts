import type { Sql } from '../lib/postgres/client';
import type { SurveyMessage } from '../lib/batch/trace-message';

/**
 * The reference a user would otherwise have: the Python service's data flow, literally. One transaction per
 * message and one statement per row: find or create the instructor, upsert the course, link them, insert each
 * rating, insert each comment, record the trace id. Written against the same tables as the consumer.
 */
export async function writePerMessage(sql: Sql, schema: string, messages: readonly SurveyMessage[]): Promise<void> {
  const t = (name: string) => sql(`${schema}.${name}`);
  for (const m of messages) {
    await sql.begin(async (tx) => {
      const [seen] = await tx`select 1 from ${t('processed_traces')} where trace_id = ${m.traceId}`;
      if (seen) return;
      let [instructor] = await tx<
        { id: string }[]
      >`insert into ${t('instructors')} (name) values (${m.instructor.name}) on conflict (name) do nothing
        returning id`;
      if (!instructor)
        [instructor] = await tx<{ id: string }[]>`select id from ${t('instructors')} where name = ${m.instructor.name}`;
      const c = m.course;
      const [course] = await tx<{ id: string }[]>`
        insert into ${t('courses')} (course_id, course_name, subject, catalog_section, semester, year,
          enrollment, responses,
          declines, processed_at, original_file_name, gcs_bucket, gcs_path, trace_id, report_at, report_offset,
            report_partition)
        values (${c.courseId}, ${c.courseName}, ${c.subject}, ${c.catalogSection}, ${c.semester}, ${c.year},
          ${c.enrollment},
          ${c.responses}, ${c.declines}, ${c.processedAt}, ${c.originalFileName}, ${c.gcsBucket}, ${c.gcsPath},
            ${m.traceId}, ${m.processedAt ?? c.processedAt}, 0, 0)
        on conflict (course_id) do update set course_name = excluded.course_name, updated_at = now()
        returning id`;
      await tx`
        insert into ${t('course_instructors')} (course_id, instructor_id, trace_id, report_at, report_offset,
          report_partition)
        values (${course!.id}, ${instructor!.id}, ${m.traceId}, ${m.processedAt ?? c.processedAt}, 0, 0)
        on conflict (course_id, instructor_id) do update set trace_id = excluded.trace_id`;
      for (const r of m.ratings) {
        await tx`
          insert into ${t('ratings')} (course_id, instructor_id, trace_id, question_text, category, responses,
            response_rate, course_mean, dept_mean, univ_mean, course_median, dept_median, univ_median)
          values (${course!.id}, ${instructor!.id}, ${m.traceId}, ${r.questionText}, ${r.category},
            ${r.responses}, ${r.responseRate},
            ${r.courseMean}, ${r.deptMean}, ${r.univMean}, ${r.courseMedian}, ${r.deptMedian}, ${r.univMedian})`;
      }
      for (const k of m.comments) {
        await tx`
          insert into ${t('comments')} (course_id, instructor_id, trace_id, category, question_text,
            response_number, comment_text)
          values (${course!.id}, ${instructor!.id}, ${m.traceId}, ${k.category}, ${k.questionText},
            ${k.responseNumber}, ${k.commentText})`;
      }
      await tx`
        insert into ${t('processed_traces')} (trace_id, status, kafka_topic, kafka_partition, kafka_offset)
        values (${m.traceId}, 'stored', 'trace-survey-processed', 0, 0)`;
    });
  }
}
