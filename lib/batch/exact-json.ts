/*
 * JSON.parse reads every number as a double, so an integer beyond Number.MAX_SAFE_INTEGER (2^53 - 1) comes back
 * rounded: 9007199254740993 as ...992. Ids may be sent as JSON numbers, and a rounded id is another trace or another
 * course. parseJson keeps such integers as their digits instead.
 */

/** An integer JSON number too large for a double, kept as the digits it was written with. */
export class ExactInteger {
  constructor(readonly digits: string) {}
}

/**
 * An unsafe integer has at least 16 digits, not after a decimal point nor before a fraction or an exponent: text
 * without such a run is read exactly by JSON.parse. (Doubles such as 0.6666666666666666 do not trigger the second
 * reading; a long number inside a string may, harmlessly.)
 */
const LONG_INTEGER = /(?<![\d.])\d{16,}(?![\d.eE])/;
const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?/y;
const WHITESPACE = /[ \t\n\r]*/y;

/**
 * Parses JSON as JSON.parse does (and throws what it throws for text that is not JSON), except that an integer
 * literal beyond Number.MAX_SAFE_INTEGER becomes an {@link ExactInteger}. The usual message takes the native parser
 * alone; only text holding an integer of 16 digits or more is read a second time, by a small reader that keeps the
 * digits.
 */
export function parseJson(text: string): unknown {
  const value: unknown = JSON.parse(text);
  if (!LONG_INTEGER.test(text)) return value;
  return new ExactReader(text).value();
}

/** True when `value` (from parseJson) holds an integer that JSON.parse would have rounded. */
export function holdsExactInteger(value: unknown): boolean {
  // A loop, not recursion: JSON.parse accepts nesting far deeper than the call stack allows.
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const next = pending.pop();
    if (next instanceof ExactInteger) return true;
    if (next !== null && typeof next === 'object') for (const item of Object.values(next)) pending.push(item);
  }
  return false;
}

/**
 * Reads text that JSON.parse has accepted, so it checks no syntax: it only has to find where each value ends.
 * A loop over an explicit stack of open containers, not recursion: JSON.parse accepts nesting far deeper than the
 * call stack allows (100,000 levels of `[` is valid JSON), and a reader that recursed would throw RangeError on
 * such a message, which the consumer would then misreport as `invalid_json`. Every character is visited once.
 */
class ExactReader {
  private at = 0;
  constructor(private readonly text: string) {}

  value(): unknown {
    /** Open containers, innermost last; for an object, the key whose value is being read. */
    const open: Array<{ container: unknown[] } | { container: Record<string, unknown>; key: string }> = [];
    for (;;) {
      // Read one value; an opening bracket with content pushes its container and reads its first value.
      this.skipWhitespace();
      const c = this.text[this.at];
      let value: unknown;
      if (c === '{' || c === '[') {
        this.at++;
        this.skipWhitespace();
        if (this.text[this.at] === (c === '{' ? '}' : ']')) {
          this.at++;
          value = c === '{' ? {} : [];
        } else {
          open.push(c === '{' ? { container: {}, key: this.key() } : { container: [] });
          continue;
        }
      } else if (c === '"') value = this.string();
      else if (c === 't' || c === 'n') value = this.literal(4, c === 't' ? true : null);
      else if (c === 'f') value = this.literal(5, false);
      else value = this.number();
      // Store it in its container; a closing bracket completes the container, which is then stored in its own.
      for (;;) {
        const top = open.at(-1);
        if (top === undefined) return value;
        // defineProperty, as JSON.parse does: a "__proto__" key is data, never the prototype.
        if ('key' in top)
          Object.defineProperty(top.container, top.key, {
            value,
            enumerable: true,
            writable: true,
            configurable: true,
          });
        else top.container.push(value);
        this.skipWhitespace();
        if (this.text[this.at++] === ',') {
          if ('key' in top) top.key = this.key();
          break;
        }
        open.pop();
        value = top.container;
      }
    }
  }

  /** An object key and the colon after it. */
  private key(): string {
    this.skipWhitespace();
    const key = this.string();
    this.skipWhitespace();
    this.at++; // ':'
    return key;
  }

  private string(): string {
    const start = this.at++;
    let escaped = false;
    while (this.text[this.at] !== '"') {
      if (this.text[this.at] === '\\') {
        escaped = true;
        this.at++; // the escaped character, which may be a quote
      }
      this.at++;
    }
    this.at++;
    return escaped ? (JSON.parse(this.text.slice(start, this.at)) as string) : this.text.slice(start + 1, this.at - 1);
  }

  private number(): number | ExactInteger {
    NUMBER.lastIndex = this.at;
    const match = NUMBER.exec(this.text);
    if (match === null) throw new SyntaxError(`Unexpected character in JSON at position ${this.at}`);
    this.at += match[0].length;
    const n = Number(match[0]);
    const integerLiteral = match[1] === undefined && match[2] === undefined;
    return integerLiteral && !Number.isSafeInteger(n) ? new ExactInteger(match[0]) : n;
  }

  private literal<T>(length: number, value: T): T {
    this.at += length;
    return value;
  }

  private skipWhitespace(): void {
    WHITESPACE.lastIndex = this.at;
    WHITESPACE.exec(this.text);
    this.at = WHITESPACE.lastIndex;
  }
}
