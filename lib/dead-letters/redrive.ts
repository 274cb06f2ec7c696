import type postgres from 'postgres';
import { inSavepoint } from '../postgres/client';
import { parseMessage, type ParseResult } from '../batch/trace-message';
import { collapseTraceIds, toCandidate, type Candidate } from '../batch/write-plan';
import { classifyFailure, failureDetail } from '../postgres/failure-kind';
import { halvingSearch } from '../batch/halving-search';
import { diagnoseDatabaseFailure } from '../postgres/diagnose-failure';
import { settleInstructors, writeBatch, type TraceStatus } from '../batch/write-batch';
import { timeLeft } from '../deadline';
import type { OperationContext } from './operation-context';
import { inBatches } from './in-batches';
import { runInTransaction } from '../postgres/retry';
import { DEAD_LETTER_COLUMNS, toKafkaRecord, type StoredDeadLetter } from './stored-dead-letter';
import type { RedriveRequest } from './request';
import { selectionFilter } from './selection-filter';
import { tableIdentifiers } from '../postgres/table-names';

/** What a redrive made of a dead letter: the state the consumer would have reported for it today. */
export type RedriveResult = TraceStatus | 'dead_lettered';
const REDRIVE_RESULTS: readonly RedriveResult[] = [
  'stored',
  'duplicate',
  'superseded',
  'upstream_error',
  'dead_lettered',
];

interface RedrivenLetter {
  id: number;
  topic: string;
  partition: number;
  offset: number;
  traceId: string | null;
  result: RedriveResult;
  /** When dead-lettered again: the new reason code and its detail. */
  reason?: string;
  detail?: string;
}

export interface RedriveReport {
  dryRun: boolean;
  /** Dead letters sent through the consumer's path by this invocation. */
  redriven: number;
  results: Record<RedriveResult, number>;
  /** True when the selection has nothing left after `cursor`; false when time, `limit` or an error stopped it. */
  done: boolean;
  /** The last dead letter id handled: pass it as `after` to resume. */
  cursor: number;
  /** The first {@link LETTERS_SHOWN} dead letters and what became of each. */
  letters: RedrivenLetter[];
}

/** Per-letter lines returned at most; the counts always cover everything. */
const LETTERS_SHOWN = 200;

export interface RedriveContext extends OperationContext {
  /** The validation of the deployed code: parseMessage, unless a test stands in a relaxed rule. */
  parse?: (value: Buffer | null) => ParseResult;
}

interface BatchOutcome {
  letters: RedrivenLetter[];
  /** Rows the batch's select returned: fewer than asked means the selection is exhausted. */
  selected: number;
  lastId: number | null;
}

/**
 * Sends the selected dead letters through the consumer's own path: the stored bytes are validated by the deployed
 * code (so a fix deployed since applies), planned and written by writeBatch, exactly as a new Kafka batch would be.
 * Exactly once and newest-wins hold because the write is the consumer's: trace ids are claimed in processed_traces,
 * and an older report loses to a newer one (`superseded`).
 *
 * Each batch is one transaction: its dead letters are locked (FOR UPDATE SKIP LOCKED, so a concurrent redrive takes
 * others), written, and their outcome recorded on them, all committed together. A record dead-lettered again keeps
 * its row (the consumer's insert would conflict with it) and gets the new reason in redrive_reason/redrive_detail.
 * Dead letters already redriven are not selected again, so a second redrive changes nothing; `again` takes those
 * that were dead-lettered again. A dry run does each batch's work in a transaction that is rolled back at once, so
 * that it never holds the consumer up for longer than a batch; what it reports is what a real run would do, except
 * that a report is judged newest-wins against the database, not against letters of an earlier batch of the run.
 */
export async function redrive(request: RedriveRequest, ctx: RedriveContext): Promise<RedriveReport> {
  if (request.dryRun) {
    // Each batch rolled back at once: a dry run holds the consumer's rows (claims, courses, pairs) for one batch at
    // most, never for the whole run. Trace ids an earlier batch would have claimed are carried to the later ones.
    const claimed = new Set<string>();
    return runBatches(request, ctx, (after, size) =>
      rolledBack(ctx, (tx) => redriveBatch(tx, request, ctx, after, size, claimed)),
    );
  }
  // Never twice: a batch whose COMMIT answer was lost, its outcome unknown, would mark a second set of letters (past
  // `limit`) and report one; the operator runs the action again instead, which skips what committed.
  return runBatches(request, ctx, async (after, size) => {
    await settleLettersInstructors(request, ctx, after, size);
    return runInTransaction(ctx.database, (tx) => redriveBatch(tx, request, ctx, after, size), {
      ...ctx.attempts,
      onUnknownCommit: { stop: 'a redrive batch' },
    });
  });
}

/**
 * The instructors the next batch's letters name, committed in a short transaction of their own before the batch's,
 * as the consumer settles a batch's (docs/design.md, "Shared reference rows"): a new name inserted inside the redrive
 * batch's transaction would make every consumer batch that names it wait for that transaction to end. The letters
 * are read here without a lock; should the batch then select others (a concurrent redrive took some), writeBatch
 * inserts what is missing itself. Best effort, as the consumer's (retried as all dead-letter work is): a failure only
 * brings the waiting back. A dry run
 * commits nothing, so it does not do this.
 */
async function settleLettersInstructors(
  request: RedriveRequest,
  ctx: RedriveContext,
  after: number,
  size: number,
): Promise<void> {
  const parse = ctx.parse ?? parseMessage;
  // A quarter of the time left at most: should the table be locked, the batch itself still has the time to try, and
  // to fail naming the lock.
  const deadline = Math.min(
    ctx.attempts.deadline,
    ctx.attempts.now() + timeLeft(ctx.attempts.deadline, ctx.attempts.now) / 4,
  );
  try {
    await runInTransaction(
      ctx.database,
      async (tx) => {
        const eligible = request.again
          ? tx`(redriven_at is null or redrive_result = 'dead_lettered')`
          : tx`redriven_at is null`;
        const rows = await tx<{ value: Buffer | null }[]>`
          select value from ${tableIdentifiers(tx, ctx.schema).dead_letters}
          where id > ${after} and ${eligible} ${selectionFilter(tx, request)}
          order by id
          limit ${size}`;
        const reports = rows.flatMap((row) => {
          const parsed = parse(row.value);
          return parsed.ok && parsed.message.kind === 'survey'
            ? [{ name: parsed.message.instructor.name, traceId: parsed.message.traceId }]
            : [];
        });
        await settleInstructors(tx, ctx.schema, reports);
      },
      { ...ctx.attempts, deadline },
    );
  } catch (error) {
    ctx.logger.warn('instructors not settled ahead of the redrive batch; the batch transaction inserts them', {
      error: diagnoseDatabaseFailure(error),
    });
  }
}

/** Batches from `after` until the selection is exhausted, `limit` is reached or no time is left (see inBatches). */
async function runBatches(
  request: RedriveRequest,
  ctx: RedriveContext,
  runBatch: (after: number, size: number) => Promise<BatchOutcome>,
): Promise<RedriveReport> {
  const report: RedriveReport = {
    dryRun: request.dryRun,
    redriven: 0,
    results: Object.fromEntries(REDRIVE_RESULTS.map((r) => [r, 0])) as Record<RedriveResult, number>,
    done: false,
    cursor: request.after,
    letters: [],
  };
  const run = await inBatches(ctx, { ...request, what: 'redrive' }, async (after, size) => {
    // Counted once the batch has committed (or, in a dry run, rolled back as meant): a batch that fails counts nothing.
    const batch = await runBatch(after, size);
    for (const letter of batch.letters) {
      report.results[letter.result] += 1;
      if (report.letters.length < LETTERS_SHOWN) report.letters.push(letter);
    }
    report.redriven += batch.letters.length;
    return { handled: batch.letters.length, selected: batch.selected, lastId: batch.lastId };
  });
  return { ...report, ...run };
}

async function redriveBatch(
  tx: postgres.ReservedSql,
  request: RedriveRequest,
  ctx: RedriveContext,
  after: number,
  size: number,
  /** A dry run's trace ids that its earlier, rolled-back batches claimed: a later copy is a duplicate, as for real. */
  claimedBefore?: Set<string>,
): Promise<BatchOutcome> {
  const table = tableIdentifiers(tx, ctx.schema).dead_letters;
  const eligible = request.again
    ? tx`(redriven_at is null or redrive_result = 'dead_lettered')`
    : tx`redriven_at is null`;
  const rows = await tx<StoredDeadLetter[]>`
    select ${tx([...DEAD_LETTER_COLUMNS])} from ${table}
    where id > ${after} and ${eligible} ${selectionFilter(tx, request)}
    order by id
    limit ${size}
    for update skip locked`;

  const parse = ctx.parse ?? parseMessage;
  const outcomes = new Map<StoredDeadLetter, Omit<RedrivenLetter, 'id' | 'topic' | 'partition' | 'offset'>>();
  const rowOf = new Map<Candidate, StoredDeadLetter>();
  for (const row of rows) {
    const record = toKafkaRecord(row);
    const parsed = parse(record.value);
    if (parsed.ok && claimedBefore?.has(parsed.message.traceId))
      outcomes.set(row, { traceId: parsed.message.traceId, result: 'duplicate' });
    else if (parsed.ok) rowOf.set(toCandidate(record, parsed.message), row);
    else
      outcomes.set(row, {
        traceId: row.trace_id,
        result: 'dead_lettered',
        reason: parsed.reason,
        detail: parsed.detail,
      });
  }
  // A trace id selected twice is written twice, one after the other: the second finds the first's claim and ends
  // `duplicate`, as a repeat in a Kafka batch does. Each round writes at least one candidate, so the loop ends.
  let todo = [...rowOf.keys()];
  while (todo.length > 0) {
    const { unique, repeats } = collapseTraceIds(todo);
    for (const [candidate, outcome] of await writeIsolating(tx, ctx.schema, unique))
      outcomes.set(rowOf.get(candidate)!, outcome);
    todo = repeats;
  }
  const letters = rows.map(
    (row): RedrivenLetter => ({
      id: Number(row.id),
      topic: row.kafka_topic,
      partition: row.kafka_partition,
      offset: Number(row.kafka_offset),
      ...outcomes.get(row)!,
    }),
  );
  if (letters.length > 0) {
    const updates = letters.map((l) => ({
      id: l.id,
      result: l.result,
      reason: l.reason ?? null,
      detail: l.detail ?? null,
      trace_id: l.traceId,
    }));
    await tx`
      update ${table} as d set redriven_at = now(), redrive_result = x.result, redrive_reason = x.reason,
        redrive_detail = x.detail, redrive_count = d.redrive_count + 1, trace_id = coalesce(d.trace_id, x.trace_id)
      from json_to_recordset(${JSON.stringify(updates)}::text::json) as x(id bigint, result text, reason text,
        detail text, trace_id text)
      where d.id = x.id`;
  }
  // Only once the batch's last statement has answered: a batch that fails before this runs again (a lost connection)
  // and must not find its own trace ids claimed, which made a dry run report every letter `duplicate`.
  for (const { traceId, result } of outcomes.values())
    if (traceId !== null && result !== 'dead_lettered') claimedBefore?.add(traceId);
  return { letters, selected: rows.length, lastId: letters.at(-1)?.id ?? null };
}

type WriteOutcome = Omit<RedrivenLetter, 'id' | 'topic' | 'partition' | 'offset'>;

/**
 * The consumer's write, each attempt inside a savepoint of the batch's transaction, by the halving search
 * (lib/batch/halving-search.ts, which holds the termination and bound argument: 1 + 2k⌈log2 n⌉ savepoints for n
 * candidates of which k are rejected). A message PostgreSQL rejects on its own ends `dead_lettered` with
 * `db_rejected`, as the consumer's isolation would, without a write: its outcome is recorded with the batch. Any
 * other failure aborts the batch's transaction, which is retried whole.
 */
async function writeIsolating(
  tx: postgres.ReservedSql,
  schema: string,
  candidates: Candidate[],
): Promise<Map<Candidate, WriteOutcome>> {
  const settled = await halvingSearch<Candidate, [Candidate, WriteOutcome]>(
    candidates,
    {
      attempt: async (some) => {
        const statuses = await inSavepoint(tx, () => writeBatch(tx, schema, { candidates: some, deadLetters: [] }));
        return some.map((c) => [c, { traceId: c.message.traceId, result: statuses.get(c.message.traceId)! }]);
      },
      isRejection: (error) => classifyFailure(error) === 'data',
      rejectOne: async (c, error) => [
        [
          c,
          { traceId: c.message.traceId, result: 'dead_lettered', reason: 'db_rejected', detail: failureDetail(error) },
        ],
      ],
      failAll: (_, error) => {
        throw error;
      },
    },
    'redrive',
  );
  return new Map(settled);
}

/** Thrown to make the transaction roll back a dry run; carries the run's report out (never retried: it has no code). */
class DryRunRollback<T> {
  constructor(readonly result: T) {}
}

/**
 * Runs `work` in a transaction (retried, bounded, as any) that is always rolled back, through inTransaction's careful
 * rollback.
 */
async function rolledBack<T>(ctx: OperationContext, work: (tx: postgres.ReservedSql) => Promise<T>): Promise<T> {
  try {
    await runInTransaction(
      ctx.database,
      async (tx) => {
        throw new DryRunRollback(await work(tx));
      },
      ctx.attempts,
    );
  } catch (thrown) {
    if (thrown instanceof DryRunRollback) return thrown.result as T;
    throw thrown;
  }
  throw new Error('unreachable: the dry run transaction committed');
}
