import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeEvent } from '../../lib/aws/kafka-event';
import { parseMessage } from '../../lib/batch/trace-message';
import { parseMessages } from '../../scripts/build-event';
import { buildKafkaEvent } from '../../scripts/encode-kafka-event';

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
      [0, 40, '{"n":1}'],
      [0, 41, '{"n":3}'],
      [1, 40, '{"n":2}'],
      [1, 41, null],
    ]);
    expect(decoded[0]?.key?.toString()).toBe('k1');
    expect(decoded[0]?.headers).toEqual([{ key: 'h', value: Buffer.from('v') }]);
  });
});

describe('npm run build-event', () => {
  // The command docs/local-development.md gives, on the sample file it names, into a folder that does not exist yet.
  it('should wrap events/my-messages.jsonl into a valid MSK event in a new folder', () => {
    const dir = mkdtempSync(join(tmpdir(), 'build-event-'));
    try {
      const out = join(dir, 'my-events', 'mine.json');
      execFileSync(
        'npm',
        [
          'run',
          '--silent',
          'build-event',
          '--',
          '--source',
          'msk',
          '--partitions',
          '3',
          'events/my-messages.jsonl',
          '--out',
          out,
        ],
        {
          cwd: join(__dirname, '..', '..'),
          stdio: 'pipe',
        },
      );
      const event = JSON.parse(readFileSync(out, 'utf8'));
      expect(event.eventSource).toBe('aws:kafka');
      const records = decodeEvent(event);
      expect(records.map((r) => r.partition)).toEqual([0, 1, 2]);
      expect(records.map((r) => parseMessage(r.value))).toEqual(
        records.map(() => expect.objectContaining({ ok: true })),
      );
      expect(records.map((r) => r.key?.toString())).toEqual(['my-trace-1', 'my-trace-2', 'my-trace-3']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
