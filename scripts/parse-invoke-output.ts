/** Reading what `serverless invoke local` prints: JSON log lines, then the handler's answer as indented JSON. */

/** The last JSON document in the CLI's output: invoke local prints the handler's response (or error) last. */
export function lastJson(stdout: string): unknown {
  const start = stdout.lastIndexOf('\n{\n');
  return JSON.parse(stdout.slice(start === -1 ? stdout.indexOf('{') : start + 1));
}

/** The one-line JSON log entries of the output (logs and metrics documents), skipping everything else. */
export function logLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('{"'))
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
}
