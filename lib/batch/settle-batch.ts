import type { Database } from '../postgres/database';
import { diagnoseDatabaseFailure } from '../postgres/diagnose-failure';
import type { Logger } from '../log';
import { DatabaseSetupError } from '../errors';
import { deadLetterRow, minimalDeadLetterRow, type Candidate } from './write-plan';
import { classifyFailure, failureDetail } from '../postgres/failure-kind';
import { halvingSearch, type HalvingSteps } from './halving-search';
import { settleInstructors, writeBatch, type DeadLetter, type TraceStatus } from './write-batch';
import { runInTransaction, type RetryOptions } from '../postgres/retry';
import type { Prelude } from '../postgres/client';

/** One thing a batch writes: a valid message (a candidate) or the dead letter of a record that can never be stored. */
export type Unit =
  | { kind: 'candidate'; candidate: Candidate }
  | {
      kind: 'dead_letter';
      deadLetter: DeadLetter /** The minimal row written when the full one was rejected. */;
      lastResort?: true;
    };

export interface SettleInput {
  /** In event order; candidates have distinct trace ids. */
  units: readonly Unit[];
  /**
   * The next copy of a candidate's trace id in the batch. When PostgreSQL rejects a candidate, its next copy is
   * written in its place (a corrected resend), as a later batch would have written it.
   */
  nextCopy?: ReadonlyMap<Candidate, Candidate>;
}

/** The final state of a unit: a candidate's trace status, a dead letter written, or a failure to retry. */
export type Settled =
  | { kind: 'candidate'; candidate: Candidate; status: TraceStatus }
  | { kind: 'candidate'; candidate: Candidate; status: 'dead_lettered'; reason: string; detail: string }
  | { kind: 'dead_letter'; deadLetter: DeadLetter; status: 'dead_lettered' }
  | { kind: 'candidate'; candidate: Candidate; status: 'failed'; error: unknown }
  | { kind: 'dead_letter'; deadLetter: DeadLetter; status: 'failed'; error: unknown };

export interface SettleContext {
  database: Database;
  schema: string;
  logger: Logger;
  /** Retries, and the invocation's one deadline (`retry.deadline`) that every attempt of every unit shares. */
  retry: Omit<RetryOptions, 'onRetry'>;
}

/**
 * Writes the batch and settles every unit of it. The normal path is one transaction. When PostgreSQL rejects the
 * data, the units are split in halves and each half written on its own, down to the unit responsible: a candidate
 * is dead-lettered as `db_rejected` (and its trace id's next copy in the batch gets its chance), a dead letter whose
 * row is rejected is written as a minimal row. One bad message never holds back the others.
 *
 * Cost, for n units of which k are rejected: at most 1 + k(2⌈log2 n⌉ + 1) write transactions (see halvingSearch), and
 * never more than the deadline allows: every attempt starts with at least MIN_ATTEMPT_MS left before the one
 * deadline and is cut off at it, so once the time is spent what is left is reported failed without a try.
 * Transient failures are retried (each retry is one more transaction); what still fails is returned as failed, for
 * Lambda to deliver again. Nothing a record contains makes it fail: only the database being unavailable does.
 */
export async function settleBatch(input: SettleInput, ctx: SettleContext): Promise<Settled[]> {
  let prelude = referenceRowsPrelude(input.units, ctx);
  const takePrelude = () => {
    const once = prelude;
    prelude = undefined;
    return once;
  };
  return settleUnits(input.units, { ...ctx, nextCopy: input.nextCopy ?? new Map(), takePrelude });
}

/**
 * The batch's instructors, committed in a short transaction of their own before any batch transaction, so that
 * concurrent invocations never wait on one another's batch for a shared new name (docs/design.md, "Shared reference
 * rows"). It goes out ahead of the batch's first transaction, on its connection and in its first round trip
 * (Prelude, lib/postgres/client.ts). Once per batch, not per attempt: isolation and retries find the names there.
 * Best effort: if it fails, the batch transaction inserts what is missing itself, as it always can, and only the
 * waiting comes back.
 */
function referenceRowsPrelude(units: readonly Unit[], ctx: SettleContext): Prelude | undefined {
  const reports = units.flatMap((u) =>
    u.kind === 'candidate' && u.candidate.message.kind === 'survey'
      ? [{ name: u.candidate.message.instructor.name, traceId: u.candidate.message.traceId }]
      : [],
  );
  if (reports.length === 0) return undefined;
  return {
    statement: (tx) => settleInstructors(tx, ctx.schema, reports),
    onError: (error) => {
      // A login or connection that fails here fails the batch transaction too, which logs it as the batch's error.
      const diagnosed = diagnoseDatabaseFailure(error);
      const level = diagnosed instanceof DatabaseSetupError ? 'debug' : 'warn';
      ctx.logger[level]('instructors not settled ahead of the batch; the batch transaction inserts them', {
        error: diagnosed,
      });
    },
  };
}

type Context = SettleContext & {
  nextCopy: ReadonlyMap<Candidate, Candidate>;
  /** The reference rows' prelude, for the first transaction that goes out, and then no more. */
  takePrelude: () => Prelude | undefined;
};

/** The units settled by the halving search, each attempt one transaction through `write`. */
function settleUnits(units: readonly Unit[], ctx: Context): Promise<Settled[]> {
  return halvingSearch(units, consumerSteps(ctx), 'consumer');
}

/**
 * The consumer's steps of the halving search (lib/batch/halving-search.ts, which holds the termination and bound
 * argument): each attempt one transaction, retried on transient failures; a rejected unit settled by rejectUnit,
 * whose dead letter (with the trace id's next copy) is one more search; anything else reported failed.
 */
function consumerSteps(ctx: Context): HalvingSteps<Unit, Settled> {
  return {
    attempt: async (units) => {
      const statuses = await write(units, ctx);
      return units.map((unit): Settled => {
        if (unit.kind === 'dead_letter')
          return { kind: 'dead_letter', deadLetter: unit.deadLetter, status: 'dead_lettered' };
        const { candidate } = unit;
        const status = statuses.get(candidate.message.traceId);
        // writeBatch settles every candidate; a gap is a bug, reported (the records retried), never guessed at.
        if (status === undefined)
          throw new Error(`The write returned no status for trace id ${candidate.message.traceId}.`);
        return { kind: 'candidate', candidate, status };
      });
    },
    isRejection: (error) => classifyFailure(error) === 'data',
    rejectOne: (unit, error) => rejectUnit(unit, error, ctx),
    failAll: (units, error) => failAll(units, error, ctx.logger),
  };
}

/** One unit PostgreSQL rejects on its own. */
async function rejectUnit(unit: Unit, error: unknown, ctx: Context): Promise<Settled[]> {
  const why = failureDetail(error);
  if (unit.kind === 'dead_letter') {
    // Cannot happen with rows from deadLetterRow, whose text is storable and whose bytes travel as bytea; if it
    // does anyway, keep the record's bytes and reason rather than block the partition.
    if (unit.lastResort) return failAll([unit], error, ctx.logger);
    const { record, row } = unit.deadLetter;
    ctx.logger.error('dead letter row rejected; writing a minimal one', {
      error,
      reason: row.reason,
      offset: record.offset,
    });
    const minimal = minimalDeadLetterRow(
      record,
      row.reason,
      `${row.detail} [headers, timestamp and trace id not kept: ${why}]`,
    );
    return settleUnits([{ kind: 'dead_letter', deadLetter: { record, row: minimal }, lastResort: true }], ctx);
  }
  // A rejected report is dead-lettered with the database's reason, and its trace id's next copy takes its place.
  const { candidate } = unit;
  const deadLetter: DeadLetter = {
    record: candidate.record,
    row: deadLetterRow(candidate.record, 'db_rejected', why, candidate.message.traceId),
  };
  const next = ctx.nextCopy.get(candidate);
  const replacement: Unit[] = [
    { kind: 'dead_letter', deadLetter },
    ...(next ? [{ kind: 'candidate' as const, candidate: next }] : []),
  ];
  return (await settleUnits(replacement, ctx)).map((s): Settled => {
    if (s.kind !== 'dead_letter' || s.deadLetter.record !== candidate.record) return s;
    if (s.status === 'failed') return { kind: 'candidate', candidate, status: 'failed', error: s.error };
    return {
      kind: 'candidate',
      candidate,
      status: 'dead_lettered',
      reason: s.deadLetter.row.reason,
      detail: s.deadLetter.row.detail,
    };
  });
}

/** One transaction for `units`, retried on transient failures. */
function write(units: readonly Unit[], ctx: Context): Promise<Map<string, TraceStatus>> {
  const input = {
    candidates: units.flatMap((u) => (u.kind === 'candidate' ? [u.candidate] : [])),
    deadLetters: units.flatMap((u) => (u.kind === 'dead_letter' ? [u.deadLetter] : [])),
  };
  return runInTransaction(ctx.database, (tx) => writeBatch(tx, ctx.schema, input), {
    ...ctx.retry,
    prelude: ctx.takePrelude(),
    onRetry: (error, attempt, delayMs) =>
      ctx.logger.warn('database write failed, retrying', { error, attempt, delayMs, records: units.length }),
  });
}

function failAll(units: readonly Unit[], error: unknown, logger: Logger): Settled[] {
  logger.error('database write failed; the records are reported for retry', {
    error: diagnoseDatabaseFailure(error),
    failure: classifyFailure(error),
    records: units.length,
  });
  return units.map(
    (u): Settled =>
      u.kind === 'candidate'
        ? { kind: 'candidate', candidate: u.candidate, status: 'failed', error }
        : { kind: 'dead_letter', deadLetter: u.deadLetter, status: 'failed', error },
  );
}
