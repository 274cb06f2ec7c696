import { buildKafkaEvent } from '../scripts/encode-kafka-event';
import { benchMessage, INSTRUCTOR_POOL, instructorName } from './generate';

/**
 * The rows of npm run bench:scale. Every process (one per partition) writes its own traces and courses, as the
 * issue measured (distinct courses per partition are the usual case); what partitions share is instructors:
 *   backfill: each round of batches brings new instructors, the same new names in every partition at once (the
 *             case in which concurrent batches used to wait on each other);
 *   steady:   the 300 instructors of the pool, all stored before the run.
 */
export const REGIMES = ['backfill', 'steady'] as const;
export type Regime = (typeof REGIMES)[number];

/** New instructors per round of batches in the backfill, shared by every partition. */
const NEW_INSTRUCTORS_PER_BATCH = 30;
const RATINGS_PER_REPORT = 17;
const COMMENTS_PER_REPORT = 8;

export interface Cell {
  /** Unique per measurement, so that no trace id, course or new instructor repeats across them. */
  tag: string;
  regime: Regime;
  batchSize: number;
  batches: number;
}

function instructor(cell: Cell, batch: number, n: number): string {
  return cell.regime === 'steady'
    ? instructorName((n * 7 + batch) % INSTRUCTOR_POOL)
    : `${instructorName(n % NEW_INSTRUCTORS_PER_BATCH)} ${cell.tag} ${batch}`;
}

/** Batch `batch` of partition `partition` in `cell`: an MSK event, offsets continuing from batch to batch. */
export function scaleEvent(cell: Cell, partition: number, batch: number) {
  const records = Array.from({ length: cell.batchSize }, (_, n) => {
    const message = benchMessage(`${cell.tag}-p${partition}-b${batch}`, n);
    const value = {
      ...message,
      course: { ...message.course, courseId: `${cell.tag}-P${partition}-B${batch}-${n}` },
      instructor: { name: instructor(cell, batch, n) },
    };
    return { value, key: value.traceId, partition };
  });
  return buildKafkaEvent(records, { firstOffset: batch * cell.batchSize, timestamp: Date.now() });
}

/** The names the steady regime stores before it runs. */
export const steadyInstructors = () => Array.from({ length: INSTRUCTOR_POOL }, (_, i) => instructorName(i));

/** Rows every table must hold after `n` processes wrote `cell`: every report is stored (distinct courses and pairs). */
export function expectedCounts(cell: Cell, n: number) {
  const reports = n * cell.batches * cell.batchSize;
  const instructors =
    cell.regime === 'steady' ? INSTRUCTOR_POOL : cell.batches * Math.min(NEW_INSTRUCTORS_PER_BATCH, cell.batchSize);
  return {
    consumer: {
      processed_traces: reports,
      courses: reports,
      course_instructors: reports,
      ratings: RATINGS_PER_REPORT * reports,
      comments: COMMENTS_PER_REPORT * reports,
      instructors,
      dead_letters: 0,
    },
    // The floor appends: one instructor row per report.
    floor: {
      processed_traces: reports,
      courses: reports,
      ratings: RATINGS_PER_REPORT * reports,
      comments: COMMENTS_PER_REPORT * reports,
      instructors: reports,
    },
  };
}
