import type { Context } from 'aws-lambda';

let counter = 0;

/** A valid survey message in the upstream format; `overrides` replace top-level fields. */
export function surveyMessage(overrides: Record<string, unknown> = {}, course: Record<string, unknown> = {}) {
  counter += 1;
  return {
    traceId: `trace-${counter}-${Math.random().toString(36).slice(2, 8)}`,
    course: {
      courseId: `CS${1000 + (counter % 50)}-01-2023FA`,
      courseName: 'Fundamentals of Computer Science',
      subject: 'CS',
      catalogSection: '2500-01',
      semester: 'Fall',
      year: 2023,
      enrollment: 120,
      responses: 80,
      declines: 2,
      processedAt: '2023-12-20T10:00:00Z',
      originalFileName: 'cs2500.pdf',
      gcsBucket: 'trace-reports',
      gcsPath: 'fall-2023/cs2500.pdf',
      ...course,
    },
    instructor: { name: 'Ada Lovelace' },
    ratings: [
      {
        questionText: 'Overall rating of teaching',
        category: 'Instructor',
        responses: 78,
        responseRate: 0.65,
        courseMean: 4.5,
        deptMean: 4.2,
        univMean: 4.1,
        courseMedian: 5,
        deptMedian: 4,
        univMedian: 4,
      },
      {
        questionText: 'The course was well organised',
        category: 'Course',
        responses: 79,
        responseRate: 0.66,
        courseMean: 4.1,
        deptMean: 4.0,
        univMean: 3.9,
        courseMedian: 4,
        deptMedian: 4,
        univMedian: 4,
      },
    ],
    comments: [
      { category: 'Instructor', questionText: 'What did you like?', responseNumber: 1, commentText: 'Clear lectures.' },
    ],
    processedAt: '2023-12-20T10:00:00Z',
    ...overrides,
  };
}

/** A Lambda context whose remaining time counts down from `ms`. */
export function lambdaContext(ms = 60_000): Context {
  const deadline = Date.now() + ms;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: 'trace-consumer-test-consumer',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:us-east-1:123456789012:function:trace-consumer-test-consumer',
    memoryLimitInMB: '512',
    awsRequestId: `req-${Math.random().toString(36).slice(2)}`,
    logGroupName: '/aws/lambda/trace-consumer-test-consumer',
    logStreamName: 'test',
    getRemainingTimeInMillis: () => deadline - Date.now(),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}
