/**
 * Text as PostgreSQL can hold it. PostgreSQL `text` rejects U+0000, and UTF-8 has no encoding for an unpaired
 * UTF-16 surrogate (JSON allows `"\ud800"`), so both would make the database reject a whole message:
 * U+0000 is removed and an unpaired surrogate becomes U+FFFD, the replacement character. Everything else is kept
 * exactly as received.
 */
export function storableText(s: string): string {
  const noNul = s.includes('\u0000') ? s.replaceAll('\u0000', '') : s;
  return noNul.isWellFormed() ? noNul : noNul.toWellFormed();
}

/** Instructor names are matched by this form: surrounding whitespace removed, inner runs of whitespace as one space. */
export function normaliseName(s: string): string {
  return s.trim().replace(/\s+/g, ' ');
}

const ISO_8601 =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;

/**
 * Parses an ISO-8601 date or date-time into the canonical UTC form `YYYY-MM-DDTHH:MM:SS.ffffffZ` (microseconds,
 * PostgreSQL's precision). A time without a zone is taken as UTC, as Python's naive `isoformat()` output usually is.
 * The canonical form sorts as text in time order, which is how reports are ordered. Returns null when `s` is not a
 * valid ISO-8601 timestamp.
 */
export function canonicalTimestamp(s: string): string | null {
  const m = ISO_8601.exec(s.trim());
  if (!m) return null;
  const [, y, mo, d, h = '0', mi = '0', sec = '0', frac = '', zone] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(sec);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) return null;
  const micros = (frac + '000000').slice(0, 6);
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day); // unlike Date.UTC, keeps years 0-99 as written
  date.setUTCHours(hour, minute, second, Number(micros.slice(0, 3)));
  if (date.getUTCDate() !== day) return null; // 31 February and the like
  const local = date.getTime();
  const ms = local - zoneOffsetMinutes(zone) * 60_000;
  return fromEpochMs(ms, micros.slice(3));
}

/** Canonical form of an epoch-milliseconds instant (see {@link canonicalTimestamp}); `extraMicros` are 3 digits. */
export function fromEpochMs(ms: number, extraMicros = '000'): string | null {
  const date = new Date(ms);
  if (Number.isNaN(date.getTime())) return null;
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ, or a six-digit year outside 0000-9999
  if (iso.length !== 24) return null;
  return `${iso.slice(0, 23)}${extraMicros}Z`;
}

function zoneOffsetMinutes(zone: string | undefined): number {
  if (!zone || zone === 'Z' || zone === 'z') return 0;
  const sign = zone.startsWith('-') ? -1 : 1;
  const digits = zone.slice(1).replace(':', '');
  return sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || '0'));
}
