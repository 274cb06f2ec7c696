import type { EmfDocument } from '../aws/emf-metrics';

/**
 * One EMF document per dead-letter action, dimensioned by service and action. A dry run is its own action
 * (`redrive-dry-run`, `purge-dry-run`), so that alarms and dashboards on real redrives never count rehearsals.
 * https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
 */
export function actionMetrics(
  counts: Record<string, number>,
  ctx: { namespace: string; service: string; action: string; durationMs: number; now: number },
): EmfDocument {
  const values = { ...counts, ActionDuration: ctx.durationMs };
  return {
    _aws: {
      Timestamp: ctx.now,
      CloudWatchMetrics: [
        {
          Namespace: ctx.namespace,
          Dimensions: [['service', 'action']],
          Metrics: Object.keys(values).map((name) => ({ Name: name, Unit: name === 'ActionDuration' ? 'Milliseconds' : 'Count' })),
        },
      ],
    },
    service: ctx.service,
    action: ctx.action,
    ...values,
  };
}
