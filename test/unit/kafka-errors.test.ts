import { describe, expect, it } from 'vitest';
import { diagnoseKafkaFailure } from '../../scripts/esm/kafka-errors';

/** The Kafka client's errors as @platformatic/kafka builds them: aggregates of network errors with their cause. */
const networkFailure = (operation: string, brokers: string) => {
  const refused = Object.assign(new Error(`connect ECONNREFUSED ${brokers}`), { code: 'ECONNREFUSED' });
  const network = Object.assign(new Error(`Connection to ${brokers} failed.`, { cause: refused }), {
    code: 'PLT_KFK_NETWORK',
  });
  const attempt = Object.assign(new AggregateError([network], 'Cannot connect to any broker.'), {
    code: 'PLT_KFK_MULTIPLE',
  });
  return Object.assign(new AggregateError([attempt, attempt], `${operation} failed 4 times.`), {
    code: 'PLT_KFK_MULTIPLE',
  });
};
const unknownTopic = (topic: string) => Object.assign(new Error(`Unknown topic ${topic}.`), { code: 'PLT_KFK_USER' });
const parseArgsError = () =>
  Object.assign(new TypeError("Unknown option '--bogus'"), { code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' });

describe('diagnoseKafkaFailure', () => {
  const envs = [{}, { KAFKA_BROKERS: '10.0.0.7:9094', KAFKA_TOPIC: 'my-topic' }];
  const failures = [
    {
      kind: 'no broker (group coordinator)',
      error: () => networkFailure('findGroupCoordinator', '127.0.0.1:9092'),
      code: 'KAFKA_UNREACHABLE',
      says: ['npm run kafka', 'KAFKA_BROKERS'],
    },
    {
      kind: 'no broker (metadata)',
      error: () => networkFailure('metadata', '127.0.0.1:9092'),
      code: 'KAFKA_UNREACHABLE',
      says: ['npm run kafka', 'export line'],
    },
    {
      kind: 'a missing topic',
      error: () => unknownTopic('my-topic'),
      code: 'KAFKA_TOPIC_MISSING',
      says: ['does not exist', 'KAFKA_TOPIC'],
    },
    {
      kind: 'an unknown option',
      error: parseArgsError,
      code: 'USAGE',
      says: ["Unknown option '--bogus'", 'docs/local-kafka.md'],
    },
  ];
  const cases = envs.flatMap((env) =>
    failures.map((f) => ({ ...f, env, where: env.KAFKA_BROKERS ?? 'the default broker' })),
  );

  it.each(cases)('should name the cause and fix of $kind at $where', ({ error, env, code, says }) => {
    const diagnosed = diagnoseKafkaFailure(error(), env);
    expect(diagnosed).toMatchObject({ code });
    for (const words of says) expect((diagnosed as Error).message).toContain(words);
    if (code !== 'USAGE') {
      expect((diagnosed as Error).message).toContain(env.KAFKA_BROKERS ?? '127.0.0.1:9092');
    }
  });

  it('should leave an error it does not know as it is', () => {
    const bug = new Error('something else');
    expect(diagnoseKafkaFailure(bug, {})).toBe(bug);
  });
});
