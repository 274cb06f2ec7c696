import { describe, expect, it } from 'vitest';
import { copyField } from '../../lib/postgres/copy-rows';

describe('copyField', () => {
  it.each([
    [null, '\\N'],
    [undefined, '\\N'],
    [42, '42'],
    [4.125, '4.125'],
    ['plain text, with commas', 'plain text, with commas'],
    ['tab\there', 'tab\\there'],
    ['line\nbreak\r\n', 'line\\nbreak\\r\\n'],
    ['back\\slash \\N', 'back\\\\slash \\\\N'],
    ['课程 👍', '课程 👍'],
  ])('should write %j as %j', (value, expected) => {
    expect(copyField(value)).toBe(expected);
  });
});
