import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildKafkaEvent } from '../../scripts/event-builder';
import { consumerDatabase, countRows, testDatabase, type TestDatabase } from '../helpers/db';
import { surveyMessage } from '../helpers/factories';
import { runBatch } from '../helpers/run';

let db: TestDatabase;
beforeEach(async () => {
  db = await testDatabase();
});
afterEach(() => db.close());

const instructors = ['Ada Lovelace', 'Grace Hopper', 'Alan Turing', 'Barbara Liskov'];
const courses = ['C-1', 'C-2', 'C-3'];

/** Messages whose pairs are all distinct, over a few shared instructors and courses, in a shuffled order. */
function overlappingMessages(prefix: string, count: number) {
  return Array.from({ length: count }, (_, i) =>
    surveyMessage(
      { traceId: `${prefix}-${i}`, instructor: { name: instructors[i % instructors.length] } },
      { courseId: `${courses[i % courses.length]}-${Math.floor(i / 12)}` },
    ),
  ).sort(() => Math.random() - 0.5);
}

describe('concurrent invocations', () => {
  it('should store overlapping instructors and courses from two invocations at once, each trace exactly once', async () => {
    // Two Lambda environments: two clients, each with its own connection, sharing half of their trace ids.
    const shared = overlappingMessages('shared', 24);
    const a = [...shared.slice(0, 12), ...overlappingMessages('a', 12)];
    const b = [...shared, ...overlappingMessages('b', 12)];
    const clientA = consumerDatabase(db.config);
    const clientB = consumerDatabase(db.config);
    try {
      for (let round = 0; round < 3; round++) {
        const [runA, runB] = await Promise.all([
          runBatch(db, buildKafkaEvent(a.map((value) => ({ value })), { partitions: 3 }), { database: clientA }),
          runBatch(db, buildKafkaEvent(b.map((value) => ({ value })), { partitions: 3, firstOffset: 1000 }), { database: clientB }),
        ]);
        expect(runA.error).toBeUndefined();
        expect(runB.error).toBeUndefined();
        expect(runA.result?.summary.failed).toBe(0);
        expect(runB.result?.summary.failed).toBe(0);
        if (round === 0) {
          // Every one of the 48 distinct traces was stored by exactly one of the two invocations.
          const stored = runA.result!.summary.stored + runB.result!.summary.stored;
          const superseded = runA.result!.summary.superseded + runB.result!.summary.superseded;
          expect(stored + superseded).toBe(48);
          expect(runA.result!.summary.duplicates + runB.result!.summary.duplicates).toBe(12);
        } else {
          expect(runA.result!.summary.duplicates + runB.result!.summary.duplicates).toBe(60);
        }
      }
      const pairs = new Set([...a, ...b].map((m) => `${m.course.courseId}|${m.instructor.name}`)).size;
      const counts = await countRows(db);
      expect(counts).toMatchObject({ processed_traces: 48, instructors: 4, course_instructors: pairs, ratings: 2 * pairs, comments: pairs });
    } finally {
      await clientA.end();
      await clientB.end();
    }
  });
});
