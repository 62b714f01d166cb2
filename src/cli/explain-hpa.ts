/**
 * The HPA controller's replica count for External metrics without its rate limits (kubernetes
 * pkg/controller/podautoscaler/replica_calculator.go: GetExternalPerPodMetricReplicas, GetExternalMetricReplicas;
 * tolerance 0.1), the largest over the metrics, within min and max.
 */
export interface ExternalMetric {
  readonly name: string;
  readonly targetType: 'AverageValue' | 'Value';
  readonly target: number;
  readonly value: number;
}

export const TOLERANCE = 0.1;

export function externalReplicas(
  metrics: readonly ExternalMetric[],
  current: number,
  bounds: { readonly min: number; readonly max: number },
): { readonly replicas: number } {
  let replicas = 0;
  for (const m of metrics) {
    const ratio = m.targetType === 'AverageValue' ? m.value / (m.target * current) : m.value / m.target;
    const proposal =
      Math.abs(1 - ratio) <= TOLERANCE
        ? current
        : m.targetType === 'AverageValue'
          ? Math.ceil(m.value / m.target)
          : Math.ceil(ratio * current);
    replicas = Math.max(replicas, proposal);
  }
  return { replicas: Math.min(bounds.max, Math.max(bounds.min, replicas)) };
}
