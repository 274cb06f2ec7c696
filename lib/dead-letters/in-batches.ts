import { canStartAttempt, MIN_ATTEMPT_MS } from '../deadline';
import { OutOfTimeError } from '../errors';
import type { OperationContext } from './operation-context';

/** What one committed batch did: how many dead letters it acted on, how many it selected, the last id it reached. */
export interface BatchStep {
  handled: number;
  selected: number;
  lastId: number | null;
}

export interface BatchRun {
  /** True when the selection has nothing left after `cursor`. */
  done: boolean;
  /** The last dead letter id a committed batch reached: pass it as `after` to resume. */
  cursor: number;
}

/**
 * Runs `step` batch after batch from `after`, until the selection is exhausted (a batch selected fewer than it asked
 * for), `limit` dead letters were handled, or no time is left for another batch; the last two answer `done: false`
 * with the cursor of the last committed batch, which the caller counted as each batch committed.
 *
 * A batch starts only with MIN_ATTEMPT_MS, plus the longest batch so far, left before the deadline: a transaction
 * below MIN_ATTEMPT_MS is refused by runInTransaction, and one that reaches the deadline is cut off there. Should a
 * batch still run out of time (OutOfTimeError: it could not start after a retry, or the database did not answer by
 * the deadline), the run stops there too, as done: false, and says so in a warning; unless no batch committed at
 * all, when the OutOfTimeError is thrown, for the action's answer to name what held it up. Such a batch is rolled
 * back, or,
 * if its COMMIT was already on its way when the client gave up, may have committed without being counted; the
 * next run skips what it did (a redrive) or finds nothing of it left (a purge).
 */
export async function inBatches(
  ctx: OperationContext,
  range: { after: number; batchSize: number; limit?: number | undefined; what: string },
  step: (after: number, size: number) => Promise<BatchStep>,
): Promise<BatchRun> {
  const { deadline, now } = ctx.attempts;
  let cursor = range.after;
  let handled = 0;
  let longestMs = 0;
  for (;;) {
    const size = Math.min(range.batchSize, (range.limit ?? Infinity) - handled);
    if (size <= 0) return { done: false, cursor };
    if (!canStartAttempt(deadline, now, MIN_ATTEMPT_MS + longestMs)) {
      ctx.logger.info(`${range.what} stopped: no time left for another batch`, { cursor, longestBatchMs: longestMs });
      return { done: false, cursor };
    }
    const started = now();
    let batch: BatchStep;
    try {
      batch = await step(cursor, size);
    } catch (error) {
      // Nothing committed yet: the error (a table locked by a migration, a database that does not answer) is the
      // answer.
      if (!(error instanceof OutOfTimeError) || handled === 0) throw error;
      ctx.logger.warn(`${range.what} stopped: a batch ran out of time and is not counted`, { cursor, error });
      return { done: false, cursor };
    }
    longestMs = Math.max(longestMs, now() - started);
    handled += batch.handled;
    if (batch.lastId !== null) cursor = batch.lastId;
    if (batch.selected < size) return { done: true, cursor };
  }
}
