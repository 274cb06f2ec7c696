import { channel } from 'node:diagnostics_channel';

/*
 * Where a batch's time goes, for whoever measures it: processBatch marks the end of each stage on a diagnostics
 * channel (Node's way for a library to expose its inner timings). The benchmark subscribes, so that its breakdown
 * splits the very batch it timed, not another one timed alone. Nothing subscribes in Lambda: a mark then costs one
 * property read.
 */

export const BATCH_STAGE_CHANNEL = 'trace-consumer:batch-stage';

/**
 * decoded: the records in hand (the caller decoded the event before calling processBatch) and, on an execution
 * environment's first batch, the schema version checked; validated: every record a candidate or a dead letter;
 * written: every unit settled in the database; reported: outcomes, log and metrics ready (the handler builds
 * Lambda's response from the outcomes).
 */
export type BatchStage = 'decoded' | 'validated' | 'written' | 'reported';

export interface BatchStageMark {
  stage: BatchStage;
  /** performance.now() when the stage ended. */
  at: number;
}

const stages = channel(BATCH_STAGE_CHANNEL);

export function markStage(stage: BatchStage): void {
  if (stages.hasSubscribers) stages.publish({ stage, at: performance.now() } satisfies BatchStageMark);
}
