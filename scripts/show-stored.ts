import type { Sql } from '../lib/postgres/client';
import { CONSUMER_TABLES, tableIdentifiers } from '../lib/postgres/table-names';

/**
 * What the consumer stored in `schema`, as npm start and npm run db:query print it: rows per table, traces by status,
 * the dead letters, and the first courses and instructors with their rating and comment counts.
 */
export async function showStored(sql: Sql, schema: string) {
  const t = tableIdentifiers(sql, schema);
  console.log('Rows per table:');
  for (const table of CONSUMER_TABLES) {
    const [row] = await sql<{ n: number }[]>`select count(*)::int as n from ${t[table]}`;
    console.log(`  ${table.padEnd(20)} ${row?.n}`);
  }
  const statuses =
    await sql`select status, count(*)::int as traces from ${t.processed_traces} group by status order by status`;
  console.log('\nprocessed_traces by status:');
  console.table(statuses);
  const dead = await sql`
    select kafka_partition as partition, kafka_offset as offset, reason, left(detail, 60) as detail
    from ${t.dead_letters} order by kafka_partition, kafka_offset limit 20`;
  console.log('dead_letters (first 20):');
  console.table(dead);
  const courses = await sql`
    select c.course_id, i.name as instructor, ci.trace_id,
      (select count(*)::int from ${t.ratings} r where r.course_id = c.id and r.instructor_id = i.id) as ratings,
      (select count(*)::int from ${t.comments} m where m.course_id = c.id and m.instructor_id = i.id) as comments
    from ${t.course_instructors} ci
    join ${t.courses} c on c.id = ci.course_id
    join ${t.instructors} i on i.id = ci.instructor_id
    order by c.course_id, i.name limit 20`;
  console.log('Courses and instructors stored (first 20):');
  console.table(courses);
}
