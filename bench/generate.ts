/**
 * Realistic TRACE messages for the benchmark: 17 ratings and 8 comments each (as a typical report has), a few
 * hundred distinct instructors with unicode names, comments from a few words to a long paragraph. Deterministic
 * for a given seed, so that runs compare.
 */

const FIRST = [
  'José',
  'Zoë',
  'Björn',
  'Ana',
  'Łukasz',
  'Chloé',
  'Mei',
  'Oluwaseun',
  'Søren',
  'Aditi',
  'Jürgen',
  'François',
  'Hana',
  'Dmitrii',
  'Noor',
];
const LAST = [
  'Álvarez',
  "O'Brien",
  'Nguyễn',
  'Müller',
  'Kowalski',
  '李',
  'García',
  'Ødegaard',
  'Ibáñez',
  'Tanaka',
  'Okafor',
  'Çelik',
  'Dubois',
  'Kim',
  'Haddad',
  'Smith',
  'Ivanova',
  'Rossi',
  'Patel',
  'Novák',
];
const SUBJECTS = ['CS', 'MATH', 'PHYS', 'ENGL', 'HIST', 'CHEM', 'BIOL', 'ECON', 'PSYC', 'ARTH'];
const WORDS = (
  'the lectures were clear and engaging but the pace was fast; problem sets helped a lot, office hours were ' +
  'useful, exams felt fair and the labs taught me more than I expected — très bien, 很好 👍'
).split(' ');
const CATEGORIES = [
  'Course Related Questions',
  'Learning Related Questions',
  'Instructor Related Questions',
  'Online Experience',
];

/** A small, fast, seeded generator (mulberry32), so messages are the same run after run. */
function random(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const INSTRUCTOR_POOL = 300;
const COURSE_POOL = 3000;

export function instructorName(i: number): string {
  return (
    `${FIRST[i % FIRST.length]} ` +
    `${LAST[Math.floor(i / FIRST.length) % LAST.length]}${i >= FIRST.length * LAST.length ? ` ${i}` : ''}`
  );
}

/** A 32-bit hash of a string (FNV-1a), to seed each run differently. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

// Every message generated is reported later than the one before, as reports are in production, so that a report
// for a pair seen in an earlier round replaces it rather than being superseded.
let clock = Date.UTC(2024, 4, 1);

/** Message number `n` of run `run`: unique trace id, a course and instructor drawn from the pools. */
export function benchMessage(run: string, n: number) {
  const rnd = random(hash(run) ^ Math.imul(n + 1, 0x9e3779b1));
  clock += 1000;
  const processedAt = new Date(clock).toISOString();
  const course = Math.floor(rnd() * COURSE_POOL);
  const subject = SUBJECTS[course % SUBJECTS.length]!;
  const sentence = (words: number) =>
    Array.from({ length: words }, () => WORDS[Math.floor(rnd() * WORDS.length)]).join(' ');
  const stat = () => Math.round((2.5 + rnd() * 2.5) * 100) / 100;
  return {
    traceId: `${run}-${n}`,
    course: {
      courseId: `${subject}${1000 + course}-0${course % 4}-2024SP`,
      courseName: `${subject} ${1000 + course}: ${sentence(3)}`,
      subject,
      catalogSection: `${1000 + course}-0${course % 4}`,
      semester: 'Spring',
      year: 2024,
      enrollment: 20 + Math.floor(rnd() * 200),
      responses: 10 + Math.floor(rnd() * 100),
      declines: Math.floor(rnd() * 5),
      processedAt,
      originalFileName: `${subject.toLowerCase()}${1000 + course}.pdf`,
      gcsBucket: 'trace-reports',
      gcsPath: `2024SP/${subject.toLowerCase()}${1000 + course}.pdf`,
    },
    instructor: { name: instructorName(Math.floor(rnd() * INSTRUCTOR_POOL)) },
    ratings: Array.from({ length: 17 }, (_, q) => ({
      questionText: `Question ${q + 1}: ${sentence(6)}`,
      category: CATEGORIES[q % CATEGORIES.length],
      responses: 10 + Math.floor(rnd() * 90),
      responseRate: Math.round(rnd() * 100) / 100,
      courseMean: stat(),
      deptMean: stat(),
      univMean: stat(),
      courseMedian: Math.round(stat()),
      deptMedian: Math.round(stat()),
      univMedian: Math.round(stat()),
    })),
    comments: Array.from({ length: 8 }, (_, c) => ({
      category: CATEGORIES[c % CATEGORIES.length],
      questionText: 'What were the strengths of this course and the instructor?',
      responseNumber: c + 1,
      commentText: sentence(2 + Math.floor(rnd() ** 2 * 120)),
    })),
    processedAt,
  };
}
