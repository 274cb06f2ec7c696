import type { ClientStages } from './client-stages';
import { median, medianByKey, round } from './stats';
import type { Sample } from './throughput';

/**
 * Where a batch's time goes, consumer beside floor: server time per statement (pg_stat_statements), the
 * consumer's JavaScript stages (measured alone on the same kind of batch), and what is left: round trips, result
 * parsing in postgres.js, garbage collection, waiting for a busy CPU.
 */
export interface Breakdown {
  size: number;
  consumer: Side;
  copy: Side;
  /** Medians of the consumer's JavaScript stages; decode and validate are the floor's too. */
  client: Partial<ClientStages>;
}

interface Side {
  wallMs: number;
  /** Median milliseconds per statement kind. */
  statements: Record<string, number>;
  serverMs: number;
  /** Wall time less server time less decode, validate and plan (serialising overlaps the COPYs, whose time holds it). */
  otherMs: number;
}

export function breakdownOf(size: number, consumer: readonly Sample[], copy: readonly Sample[], stages: readonly ClientStages[]): Breakdown {
  const client: Partial<ClientStages> = stages.length === 0 ? {} : medianByKey(stages.map((s) => ({ ...s })));
  const js = (client.decode ?? 0) + (client.validate ?? 0);
  const side = (samples: readonly Sample[], plan: number): Side => {
    const statements = medianByKey(samples.map((s) => s.statements));
    const serverMs = median(samples.map((s) => Object.values(s.statements).reduce((a, x) => a + x, 0)));
    const wallMs = median(samples.map((s) => s.ms));
    return { wallMs: round(wallMs, 2), statements, serverMs: round(serverMs, 2), otherMs: stages.length === 0 ? NaN : round(wallMs - serverMs - js - plan, 2) };
  };
  return { size, consumer: side(consumer, client.plan ?? 0), copy: side(copy, 0), client };
}

/** Statement kinds in the order a batch runs them, with the names the docs use. */
const ROWS: [string, string][] = [
  ['begin', 'begin'],
  ['statement timeout', 'set statement_timeout'],
  ['insert processed_traces', 'claim trace ids'],
  ['insert dead_letters', 'dead letters'],
  ['insert instructors', 'instructors'],
  ['insert courses', 'courses (newest wins)'],
  ['insert course_instructors', 'pairs (newest wins)'],
  ['delete ratings', 'delete replaced ratings'],
  ['delete comments', 'delete replaced comments'],
  ['update processed_traces', 'mark superseded'],
  ['copy instructors', 'COPY instructors'],
  ['copy courses', 'COPY courses'],
  ['copy processed_traces', 'COPY processed_traces'],
  ['copy ratings', 'COPY ratings'],
  ['copy comments', 'COPY comments'],
  ['commit', 'commit'],
];

/** The breakdown as a table: one column pair (consumer, floor) per batch size. */
export function printBreakdown(breakdowns: readonly (Breakdown & { label?: string })[]): void {
  const cell = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(1)).padStart(8);
  const header = breakdowns.map((b) => (b.label ?? `${b.size.toLocaleString('en-US')} records`).padStart(17)).join(' |');
  console.log(`\nWhere the time goes, ms per batch (medians; server = planning + execution in pg_stat_statements)`);
  console.log(`${''.padEnd(26)} |${header}`);
  console.log(`${'stage'.padEnd(26)} |${breakdowns.map(() => `${'consumer'.padStart(8)} ${'floor'.padStart(8)}`).join(' |')}`);
  const line = (name: string, values: [number | undefined, number | undefined][]) =>
    console.log(`${name.padEnd(26)} |${values.map(([c, f]) => `${cell(c)} ${cell(f)}`).join(' |')}`);
  line('decode (JS)', breakdowns.map((b) => [b.client.decode, b.client.decode]));
  line('validate (JS)', breakdowns.map((b) => [b.client.validate, b.client.validate]));
  line('plan (JS)', breakdowns.map((b) => [b.client.plan, undefined]));
  line('serialise (JS, in COPY)', breakdowns.map((b) => [b.client.serialise, undefined]));
  for (const [kind, name] of ROWS) {
    if (!breakdowns.some((b) => kind in b.consumer.statements || kind in b.copy.statements)) continue;
    line(name, breakdowns.map((b) => [b.consumer.statements[kind], b.copy.statements[kind]]));
  }
  line('server total', breakdowns.map((b) => [b.consumer.serverMs, b.copy.serverMs]));
  line('other (round trips, GC)', breakdowns.map((b) => [b.consumer.otherMs, b.copy.otherMs]));
  line('wall', breakdowns.map((b) => [b.consumer.wallMs, b.copy.wallMs]));
}
