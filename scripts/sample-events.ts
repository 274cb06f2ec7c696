/**
 * Writes the sample events in events/ (run: npm run events:samples). They are committed; this script documents how
 * they were made and regenerates them after a format change. Each event's expected response is in events/responses/.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildKafkaEvent, type RecordInput } from './encode-kafka-event';

const dir = join(__dirname, '..', 'events');

const instructors = ['Ada Lovelace', 'Grace Hopper', 'Edsger Dijkstra', 'Barbara Liskov', 'Donald Knuth'];
const subjects = ['CS', 'MATH', 'PHYS', 'ENGL'];
const questions = [
  ['Overall rating of teaching', 'Instructor Related Questions'],
  ['The instructor was well prepared', 'Instructor Related Questions'],
  ['The course was well organised', 'Course Related Questions'],
  ['Online course materials were helpful', 'Learning Related Questions'],
];
const commentTexts = [
  'Clear lectures and fair exams.',
  'Office hours helped a lot — merci!',
  'The labs were too long; 课程很好.',
  'Great course, would take again 👍',
];

export function sampleMessage(i: number, semester = '2023FA') {
  const subject = subjects[i % subjects.length]!;
  return {
    traceId: `sample-${semester}-${String(i).padStart(4, '0')}`,
    course: {
      courseId: `${subject}${2000 + (i % 7) * 100}-0${(i % 3) + 1}-${semester}`,
      courseName: `${subject} ${2000 + (i % 7) * 100}`,
      subject,
      catalogSection: `${2000 + (i % 7) * 100}-0${(i % 3) + 1}`,
      semester: semester.endsWith('FA') ? 'Fall' : 'Spring',
      year: Number(semester.slice(0, 4)),
      enrollment: 30 + (i % 50),
      responses: 20 + (i % 25),
      declines: i % 3,
      processedAt: `2023-12-${String(10 + (i % 18)).padStart(2, '0')}T09:30:00Z`,
      originalFileName: `${subject.toLowerCase()}-${i}.pdf`,
      gcsBucket: 'trace-reports',
      gcsPath: `${semester}/${subject.toLowerCase()}-${i}.pdf`,
    },
    instructor: { name: instructors[i % instructors.length]! },
    ratings: questions.map(([questionText, category], q) => ({
      questionText,
      category,
      responses: 20 + ((i + q) % 25),
      responseRate: Number((0.5 + ((i + q) % 5) / 10).toFixed(2)),
      courseMean: Number((3.5 + ((i * 7 + q) % 15) / 10).toFixed(2)),
      deptMean: 4.1,
      univMean: 4.0,
      courseMedian: 4 + ((i + q) % 2),
      deptMedian: 4,
      univMedian: 4,
    })),
    comments: commentTexts.slice(0, 1 + (i % commentTexts.length)).map((commentText, n) => ({
      category: 'What were the strengths of this course?',
      questionText: 'What were the strengths of this course?',
      responseNumber: n + 1,
      commentText,
    })),
    processedAt: `2023-12-${String(10 + (i % 18)).padStart(2, '0')}T09:30:00Z`,
  };
}

const valid = (from: number, count: number, semester = '2023FA'): RecordInput[] =>
  Array.from({ length: count }, (_, k) => ({
    key: sampleMessage(from + k, semester).traceId,
    value: sampleMessage(from + k, semester),
  }));

function mixedRecords(): RecordInput[] {
  const stored = sampleMessage(100);
  const invalid = { ...sampleMessage(101), instructor: { name: '   ' } };
  return [
    { key: stored.traceId, value: stored, partition: 0 },
    { key: stored.traceId, value: stored, partition: 1 }, // the same trace delivered twice: a duplicate
    { key: 'bad-utf8', value: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), partition: 0 },
    { key: 'bad-json', value: '{"traceId": "truncated", "course": {', partition: 1 },
    { key: 'not-object', value: '["an", "array"]', partition: 0 },
    { key: invalid.traceId, value: invalid, partition: 1 },
    { key: 'sample-tombstone', value: null, partition: 0 },
    {
      key: 'sample-upstream-error',
      value: {
        traceId: 'sample-upstream-error',
        error: 'PDF could not be parsed: page 2 is empty',
        processedAt: '2023-12-20T10:00:00Z',
      },
      partition: 1,
    },
    {
      key: sampleMessage(102).traceId,
      value: sampleMessage(102),
      partition: 0,
      headers: { 'content-type': 'application/json' },
    },
  ];
}

const samples: Record<string, { event: unknown; response: unknown }> = {
  'msk-batch': {
    event: buildKafkaEvent(valid(0, 6), { source: 'msk', partitions: 3, firstOffset: 100 }),
    response: { batchItemFailures: [] },
  },
  'self-managed-batch': {
    event: buildKafkaEvent(valid(10, 4), { source: 'self-managed', partitions: 2, firstOffset: 5000 }),
    response: { batchItemFailures: [] },
  },
  'large-batch': {
    event: buildKafkaEvent(valid(1000, 500, '2024SP'), { source: 'msk', partitions: 4, firstOffset: 250_000 }),
    response: { batchItemFailures: [] },
  },
  'mixed-batch': {
    event: buildKafkaEvent(mixedRecords(), { source: 'msk', partitions: 2, firstOffset: 40 }),
    response: { batchItemFailures: [] },
  },
};

/** An HTTP API (payload format 2.0) request, as API Gateway sends it to the health function. */
function httpRequest(method: string, path: string) {
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: path,
    rawQueryString: '',
    headers: { accept: 'application/json', 'user-agent': 'uptime-monitor/1.0' },
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123defg',
      domainName: 'abc123defg.execute-api.us-east-1.amazonaws.com',
      domainPrefix: 'abc123defg',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '198.51.100.7', userAgent: 'uptime-monitor/1.0' },
      requestId: 'health-request',
      routeKey: '$default',
      stage: '$default',
      time: '20/Dec/2023:10:00:00 +0000',
      timeEpoch: 1703066400000,
    },
    isBase64Encoded: false,
  };
}

/** Health answers hold durations and clocks; their pairs list the fields that must match. */
const healthSamples: Record<string, { event: unknown; response: unknown }> = {
  'health-live': { event: httpRequest('GET', '/healthz/live'), response: { statusCode: 200, body: { status: 'ok' } } },
  'health-ready': {
    event: httpRequest('GET', '/healthz/ready'),
    response: {
      statusCode: 200,
      body: {
        status: 'ready',
        checks: [
          { name: 'credentials', ok: true },
          { name: 'database', ok: true },
          { name: 'schema', ok: true },
        ],
      },
    },
  },
  'health-freshness': {
    event: httpRequest('GET', '/healthz'),
    response: { statusCode: 200, body: { status: 'ok', stale: false } },
  },
  'health-not-found': {
    event: httpRequest('GET', '/status'),
    response: { statusCode: 404, body: { error: 'not_found' } },
  },
  'health-wrong-method': {
    event: httpRequest('POST', '/healthz/ready'),
    response: { statusCode: 405, body: { error: 'method_not_allowed' } },
  },
};
Object.assign(samples, healthSamples);

if (require.main === module) {
  mkdirSync(join(dir, 'responses'), { recursive: true });
  for (const [name, { event, response }] of Object.entries(samples)) {
    writeFileSync(join(dir, `${name}.json`), JSON.stringify(event, null, 2) + '\n');
    writeFileSync(join(dir, 'responses', `${name}.json`), JSON.stringify(response, null, 2) + '\n');
  }
  console.log(`wrote ${Object.keys(samples).length} sample events to ${dir}`);
}
