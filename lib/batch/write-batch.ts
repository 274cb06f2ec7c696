import type postgres from 'postgres';
import { startCopy } from '../postgres/copy-rows';
import {
  claimRows,
  COMMENT_COLUMNS,
  planSurvey,
  RATING_COLUMNS,
  replacementRows,
  type Candidate,
  type DeadLetterRow,
  type SurveyCandidate,
  type Winner,
} from './write-plan';
import { tableIdentifiers } from '../postgres/table-names';
import type { KafkaRecord } from './kafka-record';

/** What became of a claimed or repeated trace id. */
export type TraceStatus = 'stored' | 'superseded' | 'upstream_error' | 'duplicate';

export interface WriteInput {
  /** Valid messages with distinct trace ids. */
  candidates: readonly Candidate[];
  deadLetters: readonly DeadLetter[];
}

/** A record that can never be stored, and the row that keeps it in dead_letters. */
export interface DeadLetter {
  record: KafkaRecord;
  row: DeadLetterRow;
}

/**
 * Writes one batch, in the transaction `tx` (lib/postgres/retry.ts runInTransaction: its statement_timeout is set
 * there, from the deadline), with a fixed number of set-based statements, whatever the batch size. Rows
 * travel as one JSON parameter per table (read with json_to_recordset), so PostgreSQL's 65,535-parameter limit
 * never applies; ratings and comments, the bulk, are streamed with COPY. Statements are pipelined wherever no
 * statement needs an earlier one's answer: four round trips for a batch with reports, whatever its size
 * (docs/performance.md, "Round trips").
 *
 * Exactly once: trace ids are claimed first with INSERT ... ON CONFLICT DO NOTHING. A trace id claimed by an
 * earlier batch, or by a concurrent one that commits first (the insert waits for it), is not returned and its
 * message writes nothing. Newer reports win through the conditional upserts on courses and course_instructors.
 *
 * Returns the status of every candidate's trace id. Throws whatever PostgreSQL throws; the caller's transaction is
 * then rolled back whole (or to a savepoint: dead-letter redrive writes inside its own batch transaction), and the
 * caller decides whether to retry or to isolate a bad message.
 */
export async function writeBatch(
  tx: postgres.ReservedSql,
  schema: string,
  input: WriteInput,
): Promise<Map<string, TraceStatus>> {
  const t = tableIdentifiers(tx, schema);
  const json = (rows: unknown) => JSON.stringify(rows);
  const claims = claimRows(input.candidates);
  const [claimed] = await inStatementOrder([
    claims.length === 0
      ? []
      : tx<{ trace_id: string }[]>`
        insert into ${t.processed_traces} (trace_id, status, error, kafka_topic, kafka_partition, kafka_offset,
          report_at)
        select trace_id, status, error, kafka_topic, kafka_partition, kafka_offset, report_at
        from json_to_recordset(${json(claims)}::text::json) as x(trace_id text, status text, error text,
          kafka_topic text, kafka_partition integer, kafka_offset bigint, report_at timestamptz)
        order by trace_id
        on conflict (trace_id) do nothing
        returning trace_id`.execute(),
    input.deadLetters.length === 0
      ? null
      : tx`
        insert into ${t.dead_letters} (kafka_topic, kafka_partition, kafka_offset, kafka_timestamp, key, value,
          header_keys, header_values, reason, detail, trace_id)
        select kafka_topic, kafka_partition, kafka_offset, kafka_timestamp, decode(key, 'hex'), decode(value, 'hex'),
          array(select decode(h, 'hex') from unnest(header_keys) with ordinality as u(h, n) order by n),
          array(select decode(h, 'hex') from unnest(header_values) with ordinality as u(h, n) order by n),
          reason, detail, trace_id
        from json_to_recordset(${json(input.deadLetters.map((d) => d.row))}::text::json) as x(kafka_topic text,
          kafka_partition integer,
          kafka_offset bigint, kafka_timestamp timestamptz, key text, value text, header_keys text[],
            header_values text[], reason text, detail text, trace_id text)
        order by kafka_topic, kafka_partition, kafka_offset
        -- A replay of the same bytes finds its row; another record at the same coordinates (topic recreated,
        -- another cluster) differs in record_digest, which PostgreSQL computes, and gets its own row.
        on conflict (kafka_topic, kafka_partition, kafka_offset, record_digest) do nothing`.execute(),
  ]);

  const claimedIds = new Set(claimed.map((r) => r.trace_id));
  const statuses = new Map<string, TraceStatus>();
  const survey: SurveyCandidate[] = [];
  for (const c of input.candidates) {
    if (!claimedIds.has(c.message.traceId)) statuses.set(c.message.traceId, 'duplicate');
    else if (c.message.kind === 'upstream_error') statuses.set(c.message.traceId, 'upstream_error');
    else survey.push(c as SurveyCandidate);
  }
  if (survey.length === 0) return statuses;

  const plan = planSurvey(survey);
  // One round trip: instructors, courses, pairs and the start of the ratings' COPY, each run in this order (execute()
  // sends a query at once; the pairs join the courses and instructors written just before, in the same transaction).
  const reference = [
    // Normally the prelude (settleInstructors) has already committed every name, so this finds them all and inserts
    // nothing: no new row, hence nothing a concurrent invocation could wait for. It stays for the paths that skip
    // that step (a dry-run redrive, a name whose early insert failed or whose letter a concurrent redrive took, the
    // next copy of a rejected report), so that the pairs statement below always finds its instructors.
    insertInstructors(tx, t.instructors, plan.instructors).execute(),
    tx`
      insert into ${t.courses} as c (course_id, course_name, subject, catalog_section, semester, year, enrollment,
        responses, declines, processed_at, original_file_name, gcs_bucket, gcs_path, trace_id, report_at, report_offset,
        report_partition)
      select course_id, course_name, subject, catalog_section, semester, year, enrollment, responses, declines,
        processed_at, original_file_name, gcs_bucket, gcs_path, trace_id, report_at, report_offset, report_partition
      from json_to_recordset(${json(plan.courses)}::text::json) as x(course_id text, course_name text, subject text,
        catalog_section text, semester text, year integer, enrollment integer, responses integer, declines integer,
        processed_at timestamptz, original_file_name text, gcs_bucket text, gcs_path text, trace_id text,
        report_at timestamptz, report_offset bigint, report_partition integer)
      order by course_id
      on conflict (course_id) do update set
        course_name = excluded.course_name, subject = excluded.subject, catalog_section = excluded.catalog_section,
        semester = excluded.semester, year = excluded.year, enrollment = excluded.enrollment,
        responses = excluded.responses, declines = excluded.declines, processed_at = excluded.processed_at,
        original_file_name = excluded.original_file_name, gcs_bucket = excluded.gcs_bucket,
        gcs_path = excluded.gcs_path, trace_id = excluded.trace_id, report_at = excluded.report_at,
        report_offset = excluded.report_offset, report_partition = excluded.report_partition, updated_at = now()
      where (c.report_at, c.report_offset, c.report_partition)
          < (excluded.report_at, excluded.report_offset, excluded.report_partition)`.execute(),
  ] as const;
  // The pair row names the report whose ratings and comments the pair holds. A report wins only if it is newer;
  // the row lock taken here also orders concurrent invocations that write the same pair.
  const winnersQuery = tx<Winner[]>`
    insert into ${t.course_instructors} as ci (course_id, instructor_id, trace_id, report_at, report_offset,
      report_partition)
    select c.id, i.id, x.trace_id, x.report_at, x.report_offset, x.report_partition
    from json_to_recordset(${json(plan.pairs)}::text::json) as x(trace_id text, course_id text, instructor text,
      report_at timestamptz, report_offset bigint, report_partition integer)
    join ${t.courses} c on c.course_id = x.course_id
    join ${t.instructors} i on i.name = x.instructor
    order by c.id, i.id
    on conflict (course_id, instructor_id) do update set
      trace_id = excluded.trace_id, report_at = excluded.report_at, report_offset = excluded.report_offset,
      report_partition = excluded.report_partition, updated_at = now()
    where (ci.report_at, ci.report_offset, ci.report_partition)
        < (excluded.report_at, excluded.report_offset, excluded.report_partition)
    returning ci.trace_id, ci.course_id::text, ci.instructor_id::text, ci.xmax = 0 as inserted`.execute();
  const ratingsCopy = startCopy(tx, t.ratings, RATING_COLUMNS);
  // The first statement that fails is the error seen; the COPY then fails in the aborted transaction, given no rows.
  const winners = await inStatementOrder([reference[0], reference[1], winnersQuery] as const).then(
    ([, , w]) => w,
    async (error: unknown) => {
      await ratingsCopy.into([]).catch(() => {});
      throw error;
    },
  );

  const byTraceId = new Map(survey.map((c) => [c.message.traceId, c]));
  const { ratings, comments } = replacementRows(winners, byTraceId);
  const winnerIds = new Set(winners.map((w) => w.trace_id));
  const superseded = survey.map((c) => c.message.traceId).filter((id) => !winnerIds.has(id));

  // Only a pair that existed before the pairs statement can hold older ratings and comments: they are written
  // nowhere but here, in the transaction that inserts or updates their pair row (xmax = 0 marks a row that statement
  // inserted rather than updated). In a backfill nearly every pair is new, and probing for rows that cannot exist
  // cost as much as a tenth of the batch. The pair's own new rows (already copied, for ratings) carry the winning
  // trace id; every other row of a replaced pair is an older report's.
  const replaced = winners.filter((w) => !w.inserted);
  const pairs = json(
    replaced.map((w) => ({ course_id: w.course_id, instructor_id: w.instructor_id, trace_id: w.trace_id })),
  );
  const replacedOf = (table: postgres.Helper<string, []>) =>
    tx`delete from ${table} r using json_to_recordset(${pairs}::text::json) as p(course_id bigint,
        instructor_id bigint, trace_id text)
      where r.course_id = p.course_id and r.instructor_id = p.instructor_id and r.trace_id <> p.trace_id`.execute();
  // The deletes, the superseded and the start of the comments' COPY go out behind the end of the ratings' COPY, in
  // its round trip.
  let tail: Promise<unknown> | undefined;
  let commentsCopy: ReturnType<typeof startCopy> | undefined;
  const queueTail = () => {
    tail = inStatementOrder([
      replaced.length === 0 ? null : replacedOf(t.ratings),
      replaced.length === 0 ? null : replacedOf(t.comments),
      superseded.length === 0
        ? null
        : tx`update ${t.processed_traces} set status = 'superseded'
          where trace_id = any(${superseded}::text[])`.execute(),
    ]);
    tail.catch(() => {}); // awaited below
    commentsCopy = startCopy(tx, t.comments, COMMENT_COLUMNS);
  };
  // The bulk of a batch (some 25 rows per report) goes in by COPY: no parameters, no JSON for the server to parse.
  await ratingsCopy.into(ratings, queueTail);
  if (!tail || !commentsCopy) queueTail(); // not reached when the COPY ended without its end being written
  const copied = commentsCopy!.into(comments);
  // The first failure is the one that counts: a COPY after a failed statement fails only as "transaction aborted".
  const [before, copy] = await Promise.allSettled([tail!, copied]);
  if (before.status === 'rejected') throw before.reason;
  if (copy.status === 'rejected') throw copy.reason;

  for (const id of winnerIds) statuses.set(id, 'stored');
  for (const id of superseded) statuses.set(id, 'superseded');
  return statuses;
}

/** An instructor name and the trace id of the report that names it. */
export interface InstructorOfReport {
  name: string;
  traceId: string;
}

/**
 * Inserts the instructor names that are missing, in `tx`: a short transaction of their own (runInTransaction) that
 * commits before the batch's transaction begins.
 *
 * Why apart: a row inserted inside the batch's transaction stays uncommitted until that transaction ends, and a
 * concurrent invocation inserting the same new name (`ON CONFLICT` must know whether the row will exist) waits for
 * it, the whole batch long. Committed first, the row is simply there for everyone. An instructor is immutable
 * reference data found by name: inserting it before the report that names it is stored changes no promise, even
 * if that report is then superseded, rejected or retried (see docs/design.md, "Shared reference rows").
 *
 * Two invocations inserting the same new name at the same moment still meet here, but only for this one statement
 * (names in sorted order, so they cannot deadlock): microseconds, not a batch.
 */
export function settleInstructors(
  tx: postgres.ReservedSql,
  schema: string,
  reports: readonly InstructorOfReport[],
): postgres.PendingQuery<postgres.Row[]> {
  const { instructors, processed_traces } = tableIdentifiers(tx, schema);
  // Only for reports whose trace id is not claimed yet: a redelivered report is a duplicate, and a name only it
  // carries (a corrected resend of a stored trace id) must not appear; its batch would never insert it.
  return tx`
    insert into ${instructors} (name)
    select distinct x.name from unnest(${reports.map((r) => r.name)}::text[],
      ${reports.map((r) => r.traceId)}::text[]) as x(name, trace_id)
    where not exists (select from ${processed_traces} p where p.trace_id = x.trace_id)
      and not exists (select from ${instructors} i where i.name = x.name)
    order by x.name
    on conflict (name) do nothing`;
}

/**
 * The names of `names` (sorted, distinct) that are not there yet. Names already stored are filtered out before the
 * insert, so that they neither take a value from the identity sequence nor write anything: in the steady state,
 * where every instructor exists, the statement reads only.
 */
function insertInstructors(tx: postgres.ReservedSql, table: postgres.Helper<string, []>, names: readonly string[]) {
  return tx`
    insert into ${table} (name)
    select name from unnest(${names as string[]}::text[]) as x(name)
    where not exists (select from ${table} i where i.name = x.name)
    order by name
    on conflict (name) do nothing`;
}

/**
 * The results of pipelined statements, or the error of the first of them, in the order they were sent, that failed.
 * After a statement fails, PostgreSQL fails every later one of the transaction with "transaction aborted" (25P02);
 * Promise.all would throw whichever rejection came first through the promise chains, which can be that one, and
 * the caller classifies by the error (a data error is isolated, 25P02 would be retried).
 */
async function inStatementOrder<T extends readonly unknown[]>(
  statements: T,
): Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }> {
  const settled = await Promise.allSettled(statements);
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<unknown>).value) as {
    -readonly [K in keyof T]: Awaited<T[K]>;
  };
}
