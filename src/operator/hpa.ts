/**
 * The HorizontalPodAutoscaler a ScaledObject wants (KEDA's `controllers/keda/hpa.go`,
 * docs/keda-compatibility.md#generated-hpa), as a pure function of the ScaledObject and its scalers' metric specs.
 * The result is a complete object for server-side apply (field manager `sluice-operator`, force): deterministic name,
 * labels, controller ownerReference.
 */
import type {
  V1ObjectMeta,
  V2HorizontalPodAutoscaler,
  V2HorizontalPodAutoscalerSpec,
  V2MetricSpec,
} from '@kubernetes/client-node';
import { ValidationError } from '../errors.ts';
import { MAX_METRIC_NAME_LENGTH } from '../metric-store.ts';
import { formatQuantity } from '../quantity.ts';
import type { MetricType } from '../scalers/scaler.ts';
import {
  API_VERSION,
  hpaNameFor,
  KIND,
  MAX_NAME_LENGTH,
  SCALED_OBJECT_LABEL,
  type ScaledObject,
} from './scaled-object.ts';

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'sluice-operator';

/** What each Scaler exposes for the HPA (Scaler.metricName, Scaler.target, Scaler.metricType). */
export interface HpaMetric {
  readonly metricName: string;
  /** Per replica for AverageValue, total for Value. */
  readonly target: number;
  readonly metricType: MetricType;
}

export interface DesiredHpaInput {
  /** A parsed ScaledObject (parseScaledObject): defaults applied, namespace and uid present. */
  readonly scaledObject: ScaledObject;
  /** One per trigger, in trigger order. */
  readonly metrics: readonly HpaMetric[];
}

/** An HPA as desiredHpa builds it: the fields it always sets are not optional. */
export type DesiredHpa = V2HorizontalPodAutoscaler & {
  apiVersion: 'autoscaling/v2';
  kind: 'HorizontalPodAutoscaler';
  metadata: V1ObjectMeta & { name: string; namespace: string; labels: Record<string, string> };
  spec: V2HorizontalPodAutoscalerSpec & { minReplicas: number; metrics: V2MetricSpec[] };
};

/**
 * The autoscaling/v2 HPA for the ScaledObject:
 * - name `sluice-hpa-<so>` or `advanced.horizontalPodAutoscalerConfig.name`, in the ScaledObject's namespace;
 * - labels `app.kubernetes.io/{name,part-of}` then the ScaledObject's own labels (which may override those two, as
 *   in KEDA), then `app.kubernetes.io/managed-by: sluice-operator` and `scaledobject.sluice.dev/name: <so>`, which
 *   always win (the controller maps HPAs back to their ScaledObject by them);
 * - a controller ownerReference to the ScaledObject, so the HPA is garbage-collected with it;
 * - minReplicas max(1, minReplicaCount) (an HPA never goes to 0), maxReplicas, scaleTargetRef, behavior;
 * - one External metric per scaler metric, selected by `scaledobject.sluice.dev/name=<so>`.
 *
 * Throws ValidationError when the ScaledObject lacks a namespace or uid, when no metric is given, when two metrics
 * share a name, or when a target is not a positive finite number (the HPA API would reject it).
 */
export function desiredHpa({ scaledObject: so, metrics }: DesiredHpaInput): DesiredHpa {
  const { name, namespace, uid } = so.metadata;
  if (namespace === undefined || namespace === '') throw new ValidationError('metadata.namespace', 'is required');
  if (uid === undefined || uid === '') throw new ValidationError('metadata.uid', 'is required to own the HPA');
  if (metrics.length === 0) {
    throw new ValidationError(
      'spec.triggers',
      `no metric specs returned from scalers for ScaledObject ${namespace}/${name}`,
    );
  }
  const seen = new Set<string>();
  for (const metric of metrics) {
    if (metric.metricName.length > MAX_METRIC_NAME_LENGTH) {
      throw new ValidationError(
        triggerField(metric.metricName),
        `the metric name would be ${metric.metricName.length} characters, over sluice's limit of ${MAX_METRIC_NAME_LENGTH}`,
      );
    }
    if (seen.has(metric.metricName)) {
      throw new ValidationError(
        triggerField(metric.metricName),
        `metricName ${metric.metricName} defined multiple times in ScaledObject ${name}`,
      );
    }
    seen.add(metric.metricName);
  }

  const hpaName = hpaNameFor(so);
  const spec = so.spec;
  const behavior = spec.advanced?.horizontalPodAutoscalerConfig?.behavior;
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: {
      name: hpaName,
      namespace,
      labels: {
        'app.kubernetes.io/name': labelValue(hpaName),
        'app.kubernetes.io/part-of': name,
        ...so.metadata.labels,
        [MANAGED_BY_LABEL]: MANAGED_BY,
        [SCALED_OBJECT_LABEL]: name,
      },
      ownerReferences: [{ apiVersion: API_VERSION, kind: KIND, name, uid, controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      minReplicas: Math.max(1, spec.minReplicaCount),
      maxReplicas: spec.maxReplicaCount,
      scaleTargetRef: {
        apiVersion: spec.scaleTargetRef.apiVersion,
        kind: spec.scaleTargetRef.kind,
        name: spec.scaleTargetRef.name,
      },
      ...(behavior === undefined ? {} : { behavior: structuredClone(behavior) }),
      // KEDA sorts metrics by type (ContainerResource < External < Resource); all of sluice's are External, so the
      // trigger order is kept, which is stable across reconciles.
      metrics: metrics.map((metric) => externalMetric(metric, name)),
    },
  };
}

function externalMetric(metric: HpaMetric, scaledObjectName: string): V2MetricSpec {
  const quantity = formatQuantity(metric.target);
  if (!Number.isFinite(metric.target) || quantity === '0') {
    throw new ValidationError(
      triggerField(metric.metricName),
      `the target of metric ${metric.metricName} must be a number greater than 0 (at least 0.001), got ${metric.target}`,
    );
  }
  return {
    type: 'External',
    external: {
      metric: { name: metric.metricName, selector: { matchLabels: { [SCALED_OBJECT_LABEL]: scaledObjectName } } },
      target:
        metric.metricType === 'Value'
          ? { type: 'Value', value: quantity }
          : { type: 'AverageValue', averageValue: quantity },
    },
  };
}

/** `s<i>-…` comes from spec.triggers[i]. */
function triggerField(metricName: string): string {
  const index = /^s(\d+)-/.exec(metricName)?.[1];
  return index === undefined ? 'spec.triggers' : `spec.triggers[${index}]`;
}

/** KEDA's label value for app.kubernetes.io/name: truncated to 63 characters, trailing non-alphanumerics trimmed. */
function labelValue(value: string): string {
  return value.slice(0, MAX_NAME_LENGTH).replace(/[^A-Za-z0-9]+$/, '');
}
