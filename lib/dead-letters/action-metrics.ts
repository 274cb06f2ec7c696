import { type EmfDocument, emfDocument } from '../aws/emf-metrics';

/**
 * One EMF document per dead-letter action, dimensioned by service and action. A dry run is its own action
 * (`redrive-dry-run`, `purge-dry-run`), so that alarms and dashboards on real redrives never count rehearsals.
 * https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
 */
export function actionMetrics(
  counts: Record<string, number>,
  ctx: { namespace: string; service: string; action: string; durationMs: number; now: number },
): EmfDocument {
  return emfDocument({
    namespace: ctx.namespace,
    dimensions: { service: ctx.service, action: ctx.action },
    values: { ...counts, ActionDuration: ctx.durationMs },
    units: { ActionDuration: 'Milliseconds' },
    now: ctx.now,
  });
}
