import { decodeEvent } from '../lib/kafka';
import { parseMessage } from '../lib/message';
import { buildKafkaEvent } from '../scripts/event-builder';
const small = (n: number) => ({ traceId: `s-${n}`, course: { courseId: `C${n % 500}`, courseName: 'Intro', semester: 'Fall', year: 2024 }, instructor: { name: `I ${n % 300}` }, ratings: [{ questionText: 'Overall', courseMean: 4.2, responses: 10 }], processedAt: '2024-05-01T00:00:00Z' });
const event = buildKafkaEvent(Array.from({ length: 10000 }, (_, n) => ({ value: small(n) })), { partitions: 4 });
console.log('MB', JSON.stringify(event).length / 2 ** 20);
for (let i = 0; i < 5; i++) {
  const t = performance.now();
  for (const r of decodeEvent(event)) parseMessage(r.value);
  console.log(performance.now() - t);
}
