import { copyChunks } from '../lib/postgres/copy-rows';
import { decodeEvent } from '../lib/aws/kafka-event';
import { parseMessage } from '../lib/batch/trace-message';
import {
  claimRows,
  collapseTraceIds,
  planSurvey,
  replacementRows,
  toCandidate,
  type SurveyCandidate,
} from '../lib/batch/write-plan';

/**
 * The consumer's JavaScript work on one batch, stage by stage and without a database: what the client spends before
 * and between its statements. The stages run the same library functions as processBatch, on the same event.
 */
export interface ClientStages {
  decode: number;
  validate: number;
  plan: number;
  serialise: number;
}

export function timeClientStages(event: unknown): ClientStages {
  let t = performance.now();
  const lap = () => {
    const now = performance.now();
    const ms = now - t;
    t = now;
    return ms;
  };
  const records = decodeEvent(event);
  const decode = lap();
  const candidates = records.map((record) => {
    const parsed = parseMessage(record.value);
    if (!parsed.ok) throw new Error('benchmark message did not validate');
    return toCandidate(record, parsed.message);
  });
  const { unique } = collapseTraceIds(candidates);
  const validate = lap();
  const claims = claimRows(unique);
  const survey = unique as SurveyCandidate[];
  const plan = planSurvey(survey);
  // Every pair wins here, as in a backfill; database ids are stand-ins of the usual width.
  const winners = plan.pairs.map((p, n) => ({
    trace_id: p.trace_id,
    course_id: String(100_000 + n),
    instructor_id: String(1_000 + (n % 300)),
  }));
  const rows = replacementRows(winners, new Map(survey.map((c) => [c.message.traceId, c])));
  const planned = lap();
  let bytes = JSON.stringify(claims).length + JSON.stringify(plan.courses).length + JSON.stringify(plan.pairs).length;
  for (const chunk of copyChunks(rows.ratings)) bytes += chunk.length;
  for (const chunk of copyChunks(rows.comments)) bytes += chunk.length;
  const serialise = lap();
  if (bytes === 0) throw new Error('nothing serialised');
  return { decode, validate, plan: planned, serialise };
}
