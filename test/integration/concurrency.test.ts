import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildKafkaEvent } from '../../scripts/encode-kafka-event';
import type { Database } from '../../lib/postgres/database';
import { consumerDatabase, countRows, testDatabase, type TestDatabase } from '../helpers/db';
import { surveyMessage } from '../helpers/factories';
import { relaxedParse, runAction } from '../helpers/dead-letters';
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
  it(
    'should store overlapping instructors and courses from two invocations at once, each trace exactly ' + 'once',
    async () => {
      // Two Lambda environments: two clients, each with its own connection, sharing half of their trace ids.
      const shared = overlappingMessages('shared', 24);
      const a = [...shared.slice(0, 12), ...overlappingMessages('a', 12)];
      const b = [...shared, ...overlappingMessages('b', 12)];
      const clientA = consumerDatabase(db.config);
      const clientB = consumerDatabase(db.config);
      try {
        for (let round = 0; round < 3; round++) {
          const [runA, runB] = await Promise.all([
            runBatch(
              db,
              buildKafkaEvent(
                a.map((value) => ({ value })),
                { partitions: 3 },
              ),
              { database: clientA },
            ),
            runBatch(
              db,
              buildKafkaEvent(
                b.map((value) => ({ value })),
                { partitions: 3, firstOffset: 1000 },
              ),
              { database: clientB },
            ),
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
        expect(counts).toMatchObject({
          processed_traces: 48,
          instructors: 4,
          course_instructors: pairs,
          ratings: 2 * pairs,
          comments: pairs,
        });
      } finally {
        await clientA.end();
        await clientB.end();
      }
    },
  );

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
          environments.map((database, i) =>
            runBatch(
              db,
              buildKafkaEvent(
                batches[i]!.map((value) => ({ value })),
                { partitions: 4, firstOffset: round * 1000 + i * 100 },
              ),
              { database },
            ),
          ),
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
      expect(counts).toMatchObject({
        processed_traces: seen.size,
        instructors: 4,
        course_instructors: pairs.size,
        ratings: 2 * pairs.size,
        comments: pairs.size,
      });
    } finally {
      await Promise.all(environments.map((e) => e.end()));
    }
  });

  it(
    'should never make an invocation wait on the open batch transaction of another for new shared ' + 'instructors',
    async () => {
      // Invocation A's transaction is held open by a third session's lock on a course it updates, after A has met its
      // new instructors; B and C then write reports by the same new instructors (other courses and traces). Before
      // the instructors were settled in their own short transaction, B and C waited on A's uncommitted inserts
      // (Lock:transactionid) until A committed. Not timed: what is checked is who waited on whom.
      const teachers = ['New Teacher 1', 'New Teacher 2', 'New Teacher 3'];
      const report = (traceId: string, courseId: string, i: number, processedAt = '2024-01-01T00:00:00Z') => ({
        value: surveyMessage(
          { traceId, processedAt, instructor: { name: teachers[i % teachers.length] } },
          { courseId },
        ),
      });
      const seed = await runBatch(
        db,
        buildKafkaEvent(
          [report('seed', 'HELD', 0, '2000-01-01T00:00:00Z')].map((r) => ({
            value: { ...r.value, instructor: { name: 'Seed Teacher' } },
          })),
        ),
      );
      expect(seed.result?.summary.stored).toBe(1);
      const client = (name: string) => consumerDatabase(db.config, { connection: { application_name: name } });
      const environments: Record<string, Database> = {
        a: client('shared-a'),
        b: client('shared-b'),
        c: client('shared-c'),
      };
      const { pid: holderPid, release } = await holdCourse('HELD');
      try {
        const eventOf = (who: string, offset: number, courses: string[]) =>
          buildKafkaEvent(
            teachers.map((_, i) => report(`${who}-${i}`, courses[i % courses.length]!, i)),
            { partitions: 1, firstOffset: offset },
          );
        // A's courses statement reaches HELD (sorted first: 'A-...' < 'HELD') after its instructors, and waits there.
        const runA = runBatch(db, eventOf('a', 100, ['A-1', 'HELD']), { database: environments.a });
        const [a] = await waitFor(async () =>
          (await backends('shared-a')).find((x) => x.blockedBy.includes(holderPid)),
        );
        const waitsOnA: string[] = [];
        let others: Awaited<ReturnType<typeof runBatch>>[] | undefined;
        const runOthers = Promise.all([
          runBatch(db, eventOf('b', 200, ['B-1', 'B-2']), { database: environments.b }),
          runBatch(db, eventOf('c', 300, ['C-1', 'C-2']), { database: environments.c }),
        ]).then((r) => (others = r));
        while (others === undefined) {
          for (const x of [...(await backends('shared-b')), ...(await backends('shared-c'))]) {
            if (x.blockedBy.includes(a!.pid)) waitsOnA.push(`${x.application} waited on A: ${x.waitEvent}`);
          }
          if (waitsOnA.length > 0) break; // it would wait until A commits: let A go, so that the test ends and fails
          await sleep(10);
        }
        const stillHeld = (await backends('shared-a')).some((x) => x.blockedBy.includes(holderPid));
        await release();
        const [b, c] = await runOthers;
        const doneA = await runA;
        expect(waitsOnA).toEqual([]);
        expect(stillHeld).toBe(true); // B and C finished while A's transaction was still open
        for (const run of [b!, c!, doneA]) {
          expect(run.error).toBeUndefined();
          expect(run.result?.summary).toMatchObject({ stored: 3, failed: 0 });
        }
        expect(await countRows(db)).toMatchObject({
          instructors: 4,
          processed_traces: 10,
          courses: 6,
          course_instructors: 10,
        });
      } finally {
        await release().catch(() => {});
        await Promise.all(Object.values(environments).map((e) => e.end()));
      }
    },
  );

  it('should settle no instructor ahead of the batch for a report whose trace id is already stored', async () => {
    // A corrected resend of a stored trace id is a duplicate: exactly once keeps the first report, and a name only
    // the resend carries belongs to no stored report. The early step used to insert it all the same.
    const first = await runBatch(
      db,
      buildKafkaEvent([{ value: surveyMessage({ traceId: 't-1', instructor: { name: 'Original Name' } }) }]),
    );
    expect(first.result?.summary.stored).toBe(1);
    const resend = surveyMessage({ traceId: 't-1', instructor: { name: 'Corrected Name' } });
    const fresh = surveyMessage({ traceId: 't-2', instructor: { name: 'Another Name' } });
    const again = await runBatch(db, buildKafkaEvent([{ value: resend }, { value: fresh }], { firstOffset: 50 }));
    expect(again.result?.summary).toMatchObject({ duplicates: 1, stored: 1, failed: 0 });
    const names = await db.sql<
      { name: string }[]
    >`select name from ${db.sql(`${db.config.db.schema}.instructors`)} order by name`;
    expect(names.map((r) => r.name)).toEqual(['Another Name', 'Original Name']);
  });

  it('should never make an invocation wait on an open dead-letter redrive batch for a new instructor', async () => {
    // A redrive writes through writeBatch inside its own transaction. A new instructor its letters name must not be
    // left uncommitted there: a consumer batch naming it would wait (Lock:transactionid) the redrive batch long.
    const seed = await runBatch(
      db,
      buildKafkaEvent([
        { value: surveyMessage({ traceId: 'seed', processedAt: '2000-01-01T00:00:00Z' }, { courseId: 'HELD' }) },
      ]),
    );
    expect(seed.result?.summary.stored).toBe(1);
    const letter = surveyMessage(
      { traceId: 'letter', instructor: { name: 'Redriven Teacher' } },
      { courseId: 'HELD', enrollment: -1 },
    );
    const left = await runBatch(db, buildKafkaEvent([{ value: letter }], { firstOffset: 10 }));
    expect(left.result?.summary.deadLettered).toBe(1);
    const redriver = consumerDatabase(db.config, { connection: { application_name: 'redriver' } });
    const consumer = consumerDatabase(db.config, { connection: { application_name: 'consumer-x' } });
    const { pid: holderPid, release } = await holdCourse('HELD');
    try {
      const redrive = runAction(db, { action: 'redrive', dryRun: false }, { database: redriver, parse: relaxedParse });
      const [r] = await waitFor(async () => (await backends('redriver')).find((x) => x.blockedBy.includes(holderPid)));
      const waits: string[] = [];
      let done: Awaited<ReturnType<typeof runBatch>> | undefined;
      const run = runBatch(
        db,
        buildKafkaEvent(
          [
            {
              value: surveyMessage(
                { traceId: 'fresh', instructor: { name: 'Redriven Teacher' } },
                { courseId: 'ELSEWHERE' },
              ),
            },
          ],
          { firstOffset: 20 },
        ),
        {
          database: consumer,
        },
      ).then((x) => (done = x));
      while (done === undefined) {
        for (const x of await backends('consumer-x'))
          if (x.blockedBy.includes(r!.pid)) waits.push(`consumer waited on the redrive: ${x.waitEvent}`);
        if (waits.length > 0) break;
        await sleep(10);
      }
      const stillHeld = (await backends('redriver')).some((x) => x.blockedBy.includes(holderPid));
      await release();
      const [consumed, redriven] = await Promise.all([run, redrive]);
      expect(waits).toEqual([]);
      expect(stillHeld).toBe(true); // the consumer finished while the redrive's transaction was still open
      expect(consumed.result?.summary).toMatchObject({ stored: 1, failed: 0 });
      expect(redriven.response?.results.stored).toBe(1);
      expect(await countRows(db)).toMatchObject({ processed_traces: 3, course_instructors: 3 });
    } finally {
      await release().catch(() => {});
      await Promise.all([redriver.end(), consumer.end()]);
    }
  });
});

/**
 * A third session's transaction holding `courseId`'s row (FOR UPDATE): a batch that upserts that course waits there,
 * its transaction open. `release` commits and returns the connection; it may be called more than once.
 */
async function holdCourse(courseId: string) {
  const holder = await db.sql.reserve();
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    try {
      await holder`commit`;
    } finally {
      holder.release();
    }
  };
  await holder`begin`;
  await holder`select 1 from ${db.sql(`${db.config.db.schema}.courses`)} where course_id = ${courseId} for update`;
  const [{ pid } = { pid: -1 }] = await holder<{ pid: number }[]>`select pg_backend_pid() as pid`;
  return { pid, release };
}

/** The sessions of `application`, with what they are waiting on and the sessions that block them. */
async function backends(application: string) {
  return db.sql<{ pid: number; application: string; waitEvent: string | null; blockedBy: number[] }[]>`
    select pid, application_name as application, wait_event_type || ':' || wait_event as "waitEvent",
      pg_blocking_pids(pid) as "blockedBy"
    from pg_stat_activity where application_name = ${application}`;
}

async function waitFor<T>(probe: () => Promise<T | undefined>): Promise<[T]> {
  for (let i = 0; i < 1000; i++) {
    const found = await probe();
    if (found !== undefined) return [found];
    await sleep(20);
  }
  throw new Error('the condition was not met within 20 s');
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
