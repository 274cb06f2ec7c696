import { LOG_LEVELS, type LogLevel } from './config';

export type LogFields = Record<string, unknown>;

/** The logging the core needs. Lines are structured JSON so that CloudWatch Logs Insights can query their fields. */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A logger whose lines also carry `fields` (the request id, for one invocation). */
  child(fields: LogFields): Logger;
}

/**
 * Writes one JSON object per line to `write` (stdout by default), dropping lines below `level`. Errors are reduced
 * to name, code and message: no stack traces, no connection strings.
 *
 * Every line starts with `level`, `message` and `timestamp`, named and formatted as Powertools for AWS Lambda's
 * Logger writes them (the level in upper case, the time in ISO 8601), so that queries written for Powertools find
 * our lines too. A field of the same name does not replace them: a query on `level` must not be misled by a caller.
 * https://docs.aws.amazon.com/powertools/typescript/latest/features/logger/#standard-structured-keys
 */
export function createLogger(
  level: LogLevel,
  base: LogFields = {},
  write: (line: string) => void = (line) => process.stdout.write(line + '\n'),
): Logger {
  const threshold = LOG_LEVELS.indexOf(level);
  const log =
    (lineLevel: LogLevel) =>
    (message: string, fields: LogFields = {}) => {
      if (LOG_LEVELS.indexOf(lineLevel) < threshold) return;
      const standard = { level: lineLevel.toUpperCase(), message, timestamp: new Date().toISOString() };
      write(JSON.stringify({ ...standard, ...base, ...fields, ...standard }, errorReplacer));
    };
  return {
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    child: (fields) => createLogger(level, { ...base, ...fields }, write),
  };
}

/** Errors as name, code and message, and the same of their cause (JSON.stringify applies this to it in turn). */
function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    const code = (value as { code?: unknown }).code;
    return {
      name: value.name,
      ...(code === undefined ? {} : { code }),
      message: value.message,
      ...(value.cause instanceof Error ? { cause: value.cause } : {}),
    };
  }
  return value;
}
