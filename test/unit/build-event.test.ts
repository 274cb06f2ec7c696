import { describe, expect, it } from 'vitest';
import { decodeEvent } from '../../lib/kafka';
import { parseMessages } from '../../scripts/build-event';
import { buildKafkaEvent } from '../../scripts/event-builder';

describe('parseMessages', () => {
  it('should read one object, an array, or JSON lines', () => {
    expect(parseMessages('{"a":1}', 'f')).toEqual([{ a: 1 }]);
    expect(parseMessages('[{"a":1},{"a":2}]', 'f')).toEqual([{ a: 1 }, { a: 2 }]);
    expect(parseMessages('{"a":1}\n\n{"a":2}\n', 'f')).toEqual([{ a: 1 }, { a: 2 }]);
    expect(parseMessages('  ', 'f')).toEqual([]);
  });

  it('should name the file and line that is not JSON', () => {
    expect(() => parseMessages('{"a":1}\n{oops', 'messages.jsonl')).toThrow(/messages\.jsonl:2 is not JSON/);
  });
});

describe('buildKafkaEvent', () => {
  it('should spread records round-robin with consecutive offsets and round-trip through decodeEvent', () => {
    const event = buildKafkaEvent(
      [{ value: { n: 1 }, key: 'k1', headers: { h: 'v' } }, { value: { n: 2 } }, { value: { n: 3 } }, { value: null }],
      { source: 'self-managed', partitions: 2, firstOffset: 40, topic: 'tp' },
    );
    expect(event.eventSource).toBe('SelfManagedKafka');
    expect(Object.keys(event.records)).toEqual(['tp-0', 'tp-1']);
    const decoded = decodeEvent(event);
    expect(decoded.map((r) => [r.partition, r.offset, r.value?.toString() ?? null])).toEqual([
      [0, 40, '{"n":1}'], [0, 41, '{"n":3}'], [1, 40, '{"n":2}'], [1, 41, null],
    ]);
    expect(decoded[0]?.key?.toString()).toBe('k1');
    expect(decoded[0]?.headers).toEqual([{ key: 'h', value: Buffer.from('v') }]);
  });
});
