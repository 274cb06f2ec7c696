import type { InvocationReport } from './poller';

/** One human line per invocation: which records went in, and what the mapping did with the answer. */
export function describeReport(r: InvocationReport): string {
  const head =
    `partition ${r.partition} offsets ${r.firstOffset}-${r.lastOffset} (${r.records} ` +
    `records${r.attempt > 0 ? `, retry ${r.attempt}` : ''}, ${r.durationMs} ms)`;
  const d = r.decision;
  if (d.action === 'commit') return `${head}: ok, committed ${d.commit}`;
  const reason = d.reason.replace(/\.$/, '');
  if (d.action === 'retry')
    return `${head}: ${reason}; committed ${d.commit}, redelivering from ${d.from} (retry ${d.attempt})`;
  return (
    `${head}: ${reason}; retries used up, offsets ${d.failed.from}-${d.failed.to} written to the ` +
    `on-failure file, committed ${d.commit}`
  );
}
