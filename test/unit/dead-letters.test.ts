import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { actionMetrics } from '../../lib/dead-letters/action-metrics';
import { toKafkaRecord, type StoredDeadLetter } from '../../lib/dead-letters/stored-dead-letter';
import { ACTION_OPTIONS, type Action, editDistance, parseRequest } from '../../lib/dead-letters/request';
import { decodeBytes, decodeText, fitToBytes, SHOWN_DEPTH, VALUE_SHOWN_BYTES } from '../../lib/dead-letters/show';
import { deadLetterRow } from '../../lib/batch/write-plan';
import { FLAG_NAMING, helpText, requestFromArgs } from '../../scripts/dead-letter-args';

describe('npm run dead-letters arguments', () => {
  it.each([
    [['summary'], { action: 'summary' }],
    [['show', '--ids', '3,4', '--limit', '5'], { action: 'show', ids: [3, 4], limit: 5 }],
    [
      ['redrive', '--reasons', 'invalid_message', '--dry-run', '--batch-size', '50'],
      { action: 'redrive', reasons: ['invalid_message'], dryRun: true, batchSize: 50 },
    ],
    [['redrive', '--trace-id', '0042', '--again'], { action: 'redrive', traceId: '0042', again: true }],
    [['purge', '--older-than-days', '30', '--no-dry-run'], { action: 'purge', olderThanDays: 30, dryRun: false }],
    [['--data', '{"action": "show", "ids": 3}'], { action: 'show', ids: 3 }],
  ])('should read %j as %j', (args, request) => {
    expect(requestFromArgs(args)).toEqual(request);
  });

  it.each([
    [['redrive', '--data', '{bad'], '--data is not JSON'],
    [['--data', '[1, 2]'], '--data must be a JSON object'],
    [['--data'], '--data needs a JSON request'],
    [['show', 'redrive'], 'unexpected argument "redrive"'],
  ])('should refuse %j with a usage message saying %s', (args, says) => {
    expect(() => requestFromArgs(args)).toThrow(
      expect.objectContaining({ code: 'USAGE', message: expect.stringContaining(says) }),
    );
  });

  it('should produce requests the function accepts, for any mix of options', () => {
    const option = fc.oneof(
      fc.constant(['--dry-run']),
      fc.constant(['--no-dry-run']),
      fc.constant(['--again']),
      fc.integer({ min: 1, max: 1000 }).map((n) => ['--batch-size', String(n)]),
      fc
        .array(fc.integer({ min: 1, max: 10_000 }), { minLength: 1, maxLength: 4 })
        .map((ids) => ['--ids', ids.join(',')]),
      fc.constantFrom('invalid_json', 'tombstone').map((r) => ['--reasons', r]),
      fc.integer({ min: 0, max: 9 }).map((p) => ['--partition', String(p)]),
      fc.constant(['--from', '2026-01-01T00:00:00Z']),
    );
    fc.assert(
      fc.property(
        fc.uniqueArray(option, { maxLength: 5, selector: (o) => o[0]!.replace('--no-', '--') }),
        (options) => {
          const request = parseRequest(requestFromArgs(['redrive', ...options.flat()]));
          expect(request.action).toBe('redrive');
        },
      ),
    );
  });
});

describe('decodeBytes', () => {
  it('should give JSON for UTF-8 JSON, text for other UTF-8 and base64 for anything else, keeping the size', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.jsonValue().map((j) => Buffer.from(JSON.stringify(j))),
          fc.string().map((s) => Buffer.from(s)),
          fc.uint8Array().map((b) => Buffer.from(b)),
        ),
        (bytes) => {
          const decoded = decodeBytes(bytes);
          expect(decoded.bytes).toBe(bytes.length);
          if (decoded.format === 'json')
            expect(Buffer.from(JSON.stringify(decoded.json))).toEqual(
              Buffer.from(JSON.stringify(JSON.parse(bytes.toString()))),
            );
          if (decoded.format === 'text') expect(Buffer.from(decoded.text)).toEqual(bytes);
          if (decoded.format === 'base64') expect(Buffer.from(decoded.base64, 'base64')).toEqual(bytes);
        },
      ),
    );
  });
  it(
    'should never show an id beyond 2^53 with other digits, nor refuse JSON that starts with a byte order ' + 'mark',
    () => {
      fc.assert(
        fc.property(
          fc.bigInt({ min: 2n ** 53n + 1n, max: 10n ** 30n }),
          fc.boolean(),
          fc.boolean(),
          (id, negative, bom) => {
            const digits = `${negative ? '-' : ''}${id}`;
            const text = `{"traceId": ${digits}, "course": {"courseId": ${digits}}, "n": 1.5}`;
            const decoded = decodeBytes(Buffer.from(`${bom ? '\ufeff' : ''}${text}`));
            // JSON.parse would round the id: the operator reads the text as written instead (the BOM left out).
            const shown = decoded.format === 'text' ? decoded.text : '';
            expect(decoded.format).toBe('text');
            expect(shown).toContain(`"traceId": ${digits}`);
          },
        ),
      );
      // Parsed, 100,000 levels would overflow JSON.stringify, which writes the response: shown as text instead.
      for (const deep of [
        `${'['.repeat(100_000)}${']'.repeat(100_000)}`,
        `${'{"a":['.repeat(50_000)}12345678901234567890${']}'.repeat(50_000)}`,
      ]) {
        const shown = decodeBytes(Buffer.from(deep));
        expect(shown.format).toBe('text');
        expect(JSON.stringify(shown).length).toBeGreaterThan(deep.length);
      }
      expect(decodeBytes(Buffer.from(`${'['.repeat(SHOWN_DEPTH)}${']'.repeat(SHOWN_DEPTH)}`)).format).toBe('json');
      expect(decodeBytes(Buffer.from(`${'['.repeat(SHOWN_DEPTH + 1)}${']'.repeat(SHOWN_DEPTH + 1)}`)).format).toBe(
        'text',
      );
      expect(decodeBytes(Buffer.from(JSON.stringify(Array(300_000).fill(1)))).format).toBe('json');
      const withBom = Buffer.from('\ufeff{"a": 1}');
      expect(decodeBytes(withBom)).toEqual({ format: 'json', bytes: withBom.length, json: { a: 1 } });
    },
  );
});

describe('fitToBytes', () => {
  it('should cut a shown value to its size in JSON, marking it and keeping the full size, for any bytes', () => {
    // Control characters grow sixfold when shown (a 1.1 MB value made a 6.6 MB answer), base64 by a third.
    const worst = [
      Buffer.alloc(1_100_000, 0x01),
      Buffer.alloc(1_700_000, 0xff),
      Buffer.from('"é\\𝄞'.repeat(300_000)),
      Buffer.from(JSON.stringify(Array(400_000).fill(1e21))),
    ];
    for (const bytes of worst) {
      const shown = fitToBytes(decodeBytes(bytes), VALUE_SHOWN_BYTES);
      expect(Buffer.byteLength(JSON.stringify(shown))).toBeLessThanOrEqual(VALUE_SHOWN_BYTES);
      expect(shown).toMatchObject({ bytes: bytes.length, truncated: true });
      const prefix =
        shown.format === 'base64'
          ? Buffer.from(shown.base64, 'base64')
          : Buffer.from(shown.format === 'text' ? shown.text : '');
      expect(prefix.length).toBe((shown as { shownBytes: number }).shownBytes);
      expect(prefix.length).toBeGreaterThan(VALUE_SHOWN_BYTES / 8);
    }
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ unit: 'binary' }), fc.string({ unit: fc.constantFrom('\u0001', '"', 'a', 'é', '\n') })),
        fc.integer({ min: 0, max: 400 }),
        (text, max) => {
          const shown = fitToBytes(decodeText(Buffer.from(text)), max);
          if (!('truncated' in shown)) expect(shown).toEqual(decodeText(Buffer.from(text)));
          else {
            expect(Buffer.byteLength(JSON.stringify(shown))).toBeLessThanOrEqual(Math.max(max, 100));
            if (shown.format === 'text') expect(text.startsWith(shown.text)).toBe(true);
          }
        },
      ),
    );
  });
});

describe('toKafkaRecord', () => {
  it('should give back the record a dead letter row was made from', () => {
    fc.assert(
      fc.property(
        fc.record({
          topic: fc.string({ minLength: 1 }),
          partition: fc.nat(1000),
          offset: fc.nat(),
          timestamp: fc.option(fc.integer({ min: 0, max: 4_000_000_000_000 })),
          key: fc.option(fc.uint8Array().map((b) => Buffer.from(b))),
          value: fc.option(fc.uint8Array().map((b) => Buffer.from(b))),
          headers: fc.array(fc.record({ key: fc.string(), value: fc.uint8Array().map((b) => Buffer.from(b)) })),
        }),
        (record) => {
          // What the consumer writes (bytes as hex), read back as postgres.js returns it: bytea as Buffer, bigint as
          // text.
          const row = deadLetterRow(record, 'invalid_json', 'detail');
          const bytes = (hex: string) => Buffer.from(hex, 'hex');
          const stored = {
            kafka_topic: row.kafka_topic,
            kafka_partition: row.kafka_partition,
            kafka_offset: String(row.kafka_offset),
            kafka_timestamp: row.kafka_timestamp === null ? null : new Date(row.kafka_timestamp),
            header_keys: row.header_keys.map(bytes),
            header_values: row.header_values.map(bytes),
            key: row.key === null ? null : bytes(row.key),
            value: row.value === null ? null : bytes(row.value),
          } as Partial<StoredDeadLetter> as StoredDeadLetter;
          expect(toKafkaRecord(stored)).toEqual(record);
        },
      ),
    );
  });
});

describe('actionMetrics', () => {
  it('should give one EMF document dimensioned by service and action with every count and the duration', () => {
    const document = actionMetrics(
      { DeadLettersPurged: 4 },
      { namespace: 'NS', service: 'svc', action: 'purge', durationMs: 12, now: 1_000 },
    );
    expect(document).toEqual({
      _aws: {
        Timestamp: 1_000,
        CloudWatchMetrics: [
          {
            Namespace: 'NS',
            Dimensions: [['service', 'action']],
            Metrics: [
              { Name: 'DeadLettersPurged', Unit: 'Count' },
              { Name: 'ActionDuration', Unit: 'Milliseconds' },
            ],
          },
        ],
      },
      service: 'svc',
      action: 'purge',
      DeadLettersPurged: 4,
      ActionDuration: 12,
    });
  });
});

describe('npm run dead-letters help and errors', () => {
  const actions = Object.keys(ACTION_OPTIONS) as Action[];

  it('should name every action and every option of each, as typed on the command line, in --help', () => {
    const help = helpText();
    for (const action of actions) {
      const section = help.slice(help.indexOf(`  ${action}: `)).split(/\n {2}(?=[a-z])|\n\n/)[0]!;
      for (const option of ACTION_OPTIONS[action])
        expect(`${section}\n${help.slice(help.indexOf('Selection'))}`).toContain(`${FLAG_NAMING.name(option)} `);
    }
    expect(help).not.toMatch(/--[a-z]+[A-Z]/);
  });

  it('should suggest the option meant for a slip of one letter in any option of any action', () => {
    const edit = fc.record({
      at: fc.nat(),
      kind: fc.constantFrom('insert', 'delete', 'replace'),
      letter: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz'),
    });
    fc.assert(
      fc.property(fc.constantFrom(...actions), fc.nat(), edit, (action, n, e) => {
        const options = ACTION_OPTIONS[action].filter((o) => o.length >= 6);
        const option = options[n % options.length]!;
        const at = e.at % option.length;
        const typed =
          e.kind === 'insert'
            ? option.slice(0, at) + e.letter + option.slice(at)
            : option.slice(0, at) + (e.kind === 'replace' ? e.letter : '') + option.slice(at + 1);
        fc.pre(
          typed.toLowerCase() !== option.toLowerCase() &&
            !Object.values(ACTION_OPTIONS)
              .flat()
              .includes(typed as never),
        );
        let message = '';
        try {
          parseRequest({ action, [typed]: 1 }, FLAG_NAMING);
        } catch (error) {
          message = (error as Error).message;
        }
        const suggested = /did you mean (--[a-z-]+)\?/.exec(message)?.[1];
        expect(suggested, message).toBeDefined();
        // The option meant, or another as close to what was typed (one edit away).
        const plain = (s: string) => s.toLowerCase().replace(/-/g, '');
        expect(editDistance(plain(suggested!), plain(typed))).toBeLessThanOrEqual(1);
        expect(message).toContain(`${FLAG_NAMING.name(typed)}: unknown option`);
      }),
      { numRuns: 300 },
    );
  });

  it('should name a bad value by its flag as typed, not by its request name, for any option taking a number', () => {
    const numeric = ['partition', 'offsetFrom', 'offsetTo', 'limit', 'after', 'batchSize', 'olderThanDays'];
    fc.assert(
      fc.property(
        fc.constantFrom(...actions),
        fc.nat(),
        fc.constantFrom('-1', 'abc', '1.5', '99999999999999999'),
        (action, n, bad) => {
          const options = ACTION_OPTIONS[action].filter((o) => numeric.includes(o));
          fc.pre(options.length > 0);
          const option = options[n % options.length]!;
          const flag = FLAG_NAMING.name(option);
          expect(() => parseRequest(requestFromArgs([action, '--ids', '1', flag, bad]), FLAG_NAMING)).toThrow(
            expect.objectContaining({
              code: 'DEAD_LETTER_REQUEST_INVALID',
              message: expect.stringMatching(new RegExp(`^The dead-letter request cannot be run: ${flag}: .*--help`)),
            }),
          );
        },
      ),
    );
  });

  it('should name the flags purge needs, and suggest the action meant', () => {
    expect(() => parseRequest({ action: 'purge' }, FLAG_NAMING)).toThrow(
      'purge needs --redriven, --resolved, --older-than-days or --ids',
    );
    expect(() => parseRequest({ action: 'sumary' }, FLAG_NAMING)).toThrow('not "sumary" (did you mean "summary"?)');
  });
});
