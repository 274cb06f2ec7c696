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

  it('should settle eight invocations at once, repeated, with exact row counts', async () => {
    const environments = Array.from({ length: 8 }, () => consumerDatabase(db.config));
    const seen = new Set<string>();
    const pairs = new Set<string>();
    try {
      for (let round = 0; round < 3; round++) {
        // Each invocation: 20 reports of its own and 10 shared with every other invocation of the round.
        const shared = overlappingMessages(`r${round}-shared`, 10);
        const batches = environments.map((_, i) => [...overlappingMessages(`r${round}-env${i}`, 20), ...shared]);
        for (const m of batches.flat()) {
          seen.add(m.traceId);
          pairs.add(`${m.course.courseId}|${m.instructor.name}`);
        }
        const runs = await Promise.all(
          environments.map((database, i) => runBatch(db, buildKafkaEvent(batches[i]!.map((value) => ({ value })), { partitions: 4, firstOffset: round * 1000 + i * 100 }), { database })),
        );
        for (const run of runs) {
          expect(run.error).toBeUndefined();
          expect(run.result?.summary.failed).toBe(0);
        }
        const settled = runs.reduce((sum, r) => sum + r.result!.summary.stored + r.result!.summary.superseded, 0);
        const duplicates = runs.reduce((sum, r) => sum + r.result!.summary.duplicates, 0);
        expect(settled).toBe(8 * 20 + 10); // every trace of the round stored or superseded exactly once
        expect(duplicates).toBe(7 * 10); // the shared ones, by the seven invocations that lost the claim
      }
      const counts = await countRows(db);
      expect(counts).toMatchObject({ processed_traces: seen.size, instructors: 4, course_instructors: pairs.size, ratings: 2 * pairs.size, comments: pairs.size });
    } finally {
      await Promise.all(environments.map((e) => e.end()));
    }
  });
});
