import { describe, expect, it } from 'vitest';
import { canonicalTimestamp, fromEpochMs, normaliseName, storableText } from '../../lib/batch/storable-text';

describe('canonicalTimestamp', () => {
  it.each([
    ['2023-01-01T00:00:00Z', '2023-01-01T00:00:00.000000Z'],
    ['2023-01-01T00:00:00.5Z', '2023-01-01T00:00:00.500000Z'],
    ['2023-01-01T00:00:00.123456789Z', '2023-01-01T00:00:00.123456Z'],
    ['2023-01-01T02:00:00+02:00', '2023-01-01T00:00:00.000000Z'],
    ['2023-01-01T00:00:00-0530', '2023-01-01T05:30:00.000000Z'],
    ['2023-06-15T12:30:45.654321', '2023-06-15T12:30:45.654321Z'],
    ['2023-06-15 12:30', '2023-06-15T12:30:00.000000Z'],
    ['2023-06-15', '2023-06-15T00:00:00.000000Z'],
    ['0050-01-01T00:00:00Z', '0050-01-01T00:00:00.000000Z'],
  ])('should read %s as %s', (input, expected) => {
    expect(canonicalTimestamp(input)).toBe(expected);
  });

  it.each(['yesterday', '2023-02-30T00:00:00Z', '2023-13-01', '2023-01-01T24:00:00Z', '', '2023-1-1', '1700000000'])(
    'should reject %j',
    (input) => {
      expect(canonicalTimestamp(input)).toBeNull();
    },
  );

  it('should sort as text in time order', () => {
    const times = ['2023-01-01T00:00:00.000001Z', '2022-12-31T23:59:59.999999-01:00', '2023-01-01T00:00:00Z'];
    const sorted = times.map((t) => canonicalTimestamp(t)!).sort();
    expect(sorted).toEqual([
      '2023-01-01T00:00:00.000000Z',
      '2023-01-01T00:00:00.000001Z',
      '2023-01-01T00:59:59.999999Z',
    ]);
  });
});

describe('fromEpochMs', () => {
  it('should give the canonical form of an epoch', () => {
    expect(fromEpochMs(1_700_000_000_123)).toBe('2023-11-14T22:13:20.123000Z');
    expect(fromEpochMs(Number.NaN)).toBeNull();
    expect(fromEpochMs(8.64e15)).toBeNull(); // year 275760 has no four-digit form
  });
});

describe('storableText', () => {
  it('should remove U+0000 and replace unpaired surrogates, keeping everything else', () => {
    expect(storableText('a\u0000b')).toBe('ab');
    expect(storableText('x\ud800y')).toBe('x\ufffdy');
    expect(storableText('emoji 👍 and 课程')).toBe('emoji 👍 and 课程');
  });
});

describe('normaliseName', () => {
  it('should trim and collapse inner whitespace', () => {
    expect(normaliseName('  Ada \t  Lovelace\n')).toBe('Ada Lovelace');
  });
});
