import type { ClientStages } from './client-stages';
import { median, medianByKey, round } from './stats';
import type { Sample, Stages } from './throughput';

/**
 * Where a batch's time goes, consumer beside floor, all from the same batches: the client's stages (decode,
 * validate, write, report), and within the write the server's time per statement (pg_stat_statements) and what is
 * left of it on the client (planning, JSON parameters, result parsing, round trips). Planning and serialising are
 * also timed alone, for scale (serialising runs while the COPYs do, so its time is inside theirs).
 */
export interface Breakdown {
  size: number;
  consumer: Side;
  copy: Side;
  /** Medians of the consumer's JavaScript stages timed alone, without a database. */
  client: Partial<ClientStages>;
}

interface Side {
  wallMs: number;
  /** Median milliseconds per statement kind. */
  statements: Record<string, number>;
  serverMs: number;
  /** Median milliseconds per stage of the batch. */
  stages: Stages;
  /** The write stage less the server's time in it: plan, JSON parameters, result parsing, round trips. */
  clientInWriteMs: number;
}

export function breakdownOf(
  size: number,
  consumer: readonly Sample[],
  copy: readonly Sample[],
  stages: readonly ClientStages[],
): Breakdown {
  const client: Partial<ClientStages> = stages.length === 0 ? {} : medianByKey(stages.map((s) => ({ ...s })));
  const serverOf = (s: Sample) => Object.values(s.statements).reduce((a, x) => a + x, 0);
  const side = (samples: readonly Sample[]): Side => ({
    wallMs: round(median(samples.map((s) => s.ms)), 2),
    statements: medianByKey(samples.map((s) => s.statements)),
    serverMs: round(median(samples.map(serverOf)), 2),
    stages: medianByKey(samples.map((s) => ({ ...s.stages }))) as unknown as Stages,
    clientInWriteMs: round(median(samples.map((s) => s.stages.write - serverOf(s))), 2),
  });
  return { size, consumer: side(consumer), copy: side(copy), client };
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
  const header = breakdowns
    .map((b) => (b.label ?? `${b.size.toLocaleString('en-US')} records`).padStart(18))
    .join(' |');
  console.log(
    `\nWhere the time goes, ms per batch (medians of the same batches; server = planning + execution in ` +
      `pg_stat_statements)`,
  );
  console.log(`${''.padEnd(26)} |${header}`);
  console.log(
    `${'stage'.padEnd(26)} |${breakdowns.map(() => ` ${'consumer'.padStart(8)} ${'floor'.padStart(8)}`).join(' |')}`,
  );
  const line = (name: string, values: [number | undefined, number | undefined][]) =>
    console.log(`${name.padEnd(26)} |${values.map(([c, f]) => ` ${cell(c)} ${cell(f)}`).join(' |')}`);
  line(
    'decode (JS)',
    breakdowns.map((b) => [b.consumer.stages.decode, b.copy.stages.decode]),
  );
  line(
    'validate (JS)',
    breakdowns.map((b) => [b.consumer.stages.validate, b.copy.stages.validate]),
  );
  for (const [kind, name] of ROWS) {
    if (!breakdowns.some((b) => kind in b.consumer.statements || kind in b.copy.statements)) continue;
    line(
      name,
      breakdowns.map((b) => [b.consumer.statements[kind], b.copy.statements[kind]]),
    );
  }
  line(
    'server total',
    breakdowns.map((b) => [b.consumer.serverMs, b.copy.serverMs]),
  );
  line(
    'client in the write',
    breakdowns.map((b) => [b.consumer.clientInWriteMs, b.copy.clientInWriteMs]),
  );
  line(
    '  plan (JS, timed alone)',
    breakdowns.map((b) => [b.client.plan, undefined]),
  );
  line(
    '  serialise (JS, alone)',
    breakdowns.map((b) => [b.client.serialise, undefined]),
  );
  line(
    'report (JS)',
    breakdowns.map((b) => [b.consumer.stages.report, undefined]),
  );
  line(
    'wall',
    breakdowns.map((b) => [b.consumer.wallMs, b.copy.wallMs]),
  );
}
