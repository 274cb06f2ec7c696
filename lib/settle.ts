import type { Database } from './database';
import { diagnoseDatabaseFailure } from './diagnose';
import type { Logger } from './log';
import { deadLetterRow, type Candidate } from './plan';
import { classifyFailure, errorCode, withRetry, type RetryOptions } from './retry';
import { writeBatch, type DeadLetter, type TraceStatus, type WriteInput } from './store';

/** The final state of a write unit: a candidate's trace status, a dead letter written, or a failure to retry. */
export type Settled =
  | { kind: 'candidate'; candidate: Candidate; status: TraceStatus }
  | { kind: 'candidate'; candidate: Candidate; status: 'dead_lettered'; reason: 'db_rejected'; detail: string }
  | { kind: 'dead_letter'; deadLetter: DeadLetter; status: 'dead_lettered' }
  | { kind: 'candidate'; candidate: Candidate; status: 'failed'; error: unknown }
  | { kind: 'dead_letter'; deadLetter: DeadLetter; status: 'failed'; error: unknown };

/** How long after the statement timeout the client gives up on a silent connection. Less than TIME_RESERVE_MS. */
const DEADLINE_GRACE_MS = 250;

export interface SettleContext {
  database: Database;
  schema: string;
  logger: Logger;
  retry: Omit<RetryOptions, 'onRetry'>;
}

/**
 * Writes the batch and settles every unit of it. The normal path is one transaction. When PostgreSQL rejects the
 * data, the batch is split in halves and each half written on its own, down to the one message responsible, which
 * is dead-lettered as `db_rejected`: one bad message never holds back the others. Transient failures are retried;
 * what still fails is returned as failed, for Lambda to deliver again.
 */
export async function settleBatch(input: WriteInput, ctx: SettleContext): Promise<Settled[]> {
  const size = input.candidates.length + input.deadLetters.length;
  if (size === 0) return [];
  try {
    const statuses = await withRetry(
      () => {
        // PostgreSQL's statement_timeout ends a slow statement; the client-side deadline, a little later and still
        // inside the reserved time, ends a connection that stopped answering altogether.
        const remaining = ctx.retry.remainingMs();
        return ctx.database.run((sql) => writeBatch(sql, ctx.schema, input, remaining), remaining + DEADLINE_GRACE_MS);
      },
      {
        ...ctx.retry,
        onRetry: (error, attempt, delayMs) =>
          ctx.logger.warn('database write failed, retrying', { error, attempt, delayMs, records: size }),
      },
    );
    return [
      ...input.candidates.map((candidate): Settled => {
        const status = statuses.get(candidate.message.traceId);
        // writeBatch settles every candidate; a gap is a bug, reported (the records retried), never guessed at.
        if (status === undefined) throw new Error(`The write returned no status for trace id ${candidate.message.traceId}.`);
        return { kind: 'candidate', candidate, status };
      }),
      ...input.deadLetters.map((deadLetter): Settled => ({ kind: 'dead_letter', deadLetter, status: 'dead_lettered' })),
    ];
  } catch (error) {
    if (classifyFailure(error) !== 'data') return failAll(input, error, ctx.logger, size);
    if (size > 1) return isolate(input, ctx);
    const [candidate] = input.candidates;
    if (candidate === undefined) return failAll(input, error, ctx.logger, size); // a dead letter itself was rejected
    return rejectCandidate(candidate, error, ctx);
  }
}

async function isolate(input: WriteInput, ctx: SettleContext): Promise<Settled[]> {
  const half = Math.ceil(input.candidates.length / 2);
  const dlHalf = Math.ceil(input.deadLetters.length / 2);
  const first = { candidates: input.candidates.slice(0, half), deadLetters: input.deadLetters.slice(0, dlHalf) };
  const second = { candidates: input.candidates.slice(half), deadLetters: input.deadLetters.slice(dlHalf) };
  return [...(await settleBatch(first, ctx)), ...(await settleBatch(second, ctx))];
}

/** The message PostgreSQL rejects on its own: dead-letter it with the database's reason, in its own transaction. */
async function rejectCandidate(candidate: Candidate, error: unknown, ctx: SettleContext): Promise<Settled[]> {
  const detail = `${errorCode(error) ?? 'unknown'}: ${error instanceof Error ? error.message : String(error)}`;
  const row = deadLetterRow(candidate.record, 'db_rejected', detail, candidate.message.traceId);
  const [settled] = await settleBatch({ candidates: [], deadLetters: [{ record: candidate.record, row }] }, ctx);
  if (settled?.status === 'dead_lettered') {
    return [{ kind: 'candidate', candidate, status: 'dead_lettered', reason: 'db_rejected', detail }];
  }
  return [{ kind: 'candidate', candidate, status: 'failed', error }];
}

function failAll(input: WriteInput, error: unknown, logger: Logger, size: number): Settled[] {
  logger.error('database write failed; the records are reported for retry', {
    error: diagnoseDatabaseFailure(error),
    failure: classifyFailure(error),
    records: size,
  });
  return [
    ...input.candidates.map((candidate): Settled => ({ kind: 'candidate', candidate, status: 'failed', error })),
    ...input.deadLetters.map((deadLetter): Settled => ({ kind: 'dead_letter', deadLetter, status: 'failed', error })),
  ];
}
