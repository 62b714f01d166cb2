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
import { createHash } from 'node:crypto';
import { ValidationError } from '../errors.ts';
import { canonicalJson } from '../fingerprint.ts';
import { MAX_METRIC_NAME_LENGTH } from '../metric-store.ts';
import { formatQuantity } from '../quantity.ts';
import type { ResourceMetric } from '../scalers/cpu-memory.ts';
import type { MetricType } from '../scalers/scaler.ts';
import type { ObjectAnnotations } from './annotations.ts';
import { COMPOSITE_METRIC } from './composite.ts';
import {
  API_VERSION,
  hpaNameFor,
  KIND,
  MAX_NAME_LENGTH,
  SCALED_OBJECT_LABEL,
  type HpaBehavior,
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
  /** One per external trigger, in trigger order; or the one composite metric under scalingModifiers. */
  readonly metrics: readonly HpaMetric[];
  /** The cpu and memory triggers, in trigger order. */
  readonly resources?: readonly ResourceMetric[];
  /** The annotations sluice acts on (paused-scale-in/out, hpa-excluded-labels). */
  readonly annotations?: ObjectAnnotations;
}

/** Annotations of the ScaledObject not copied onto its HPA (kubectl's copy of the whole object would only mislead). */
const NOT_COPIED_ANNOTATIONS: readonly string[] = ['kubectl.kubernetes.io/last-applied-configuration'];

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
export function desiredHpa({ scaledObject: so, metrics, resources = [], annotations }: DesiredHpaInput): DesiredHpa {
  const { name, namespace, uid } = so.metadata;
  if (namespace === undefined || namespace === '') throw new ValidationError('metadata.namespace', 'is required');
  if (uid === undefined || uid === '') throw new ValidationError('metadata.uid', 'is required to own the HPA');
  if (metrics.length === 0 && resources.length === 0) {
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
  const behavior = withPauses(spec.advanced?.horizontalPodAutoscalerConfig?.behavior, annotations);
  const excluded = new Set(annotations?.hpaExcludedLabels ?? []);
  const labels = Object.fromEntries(Object.entries(so.metadata.labels ?? {}).filter(([key]) => !excluded.has(key)));
  const copied = Object.fromEntries(
    Object.entries(so.metadata.annotations ?? {}).filter(([key]) => !NOT_COPIED_ANNOTATIONS.includes(key)),
  );
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: {
      name: hpaName,
      namespace,
      labels: {
        'app.kubernetes.io/name': labelValue(hpaName),
        'app.kubernetes.io/part-of': name,
        ...labels,
        [MANAGED_BY_LABEL]: MANAGED_BY,
        [SCALED_OBJECT_LABEL]: name,
      },
      ...(Object.keys(copied).length > 0 ? { annotations: copied } : {}),
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
      ...(behavior === undefined ? {} : { behavior }),
      // Sorted by type as KEDA does (ContainerResource < External < Resource), trigger order within a type: stable
      // across reconciles.
      metrics: [
        ...resources.filter((r) => r.container !== undefined).map(resourceMetric),
        ...metrics.map((metric) => externalMetric(metric, name)),
        ...resources.filter((r) => r.container === undefined).map(resourceMetric),
      ],
    },
  };
}

/**
 * The user's behavior, verbatim, with `selectPolicy: Disabled` on the side a paused-scale-in / paused-scale-out
 * annotation stops (KEDA's way of pausing one direction of the HPA).
 */
function withPauses(
  behavior: HpaBehavior | undefined,
  annotations: ObjectAnnotations | undefined,
): HpaBehavior | undefined {
  const copy = behavior === undefined ? undefined : structuredClone(behavior);
  if (annotations?.pausedScaleIn !== true && annotations?.pausedScaleOut !== true) return copy;
  const out: HpaBehavior = copy ?? {};
  if (annotations.pausedScaleIn) out.scaleDown = { ...out.scaleDown, selectPolicy: 'Disabled' };
  if (annotations.pausedScaleOut) out.scaleUp = { ...out.scaleUp, selectPolicy: 'Disabled' };
  return out;
}

function resourceMetric(resource: ResourceMetric): V2MetricSpec {
  const target =
    resource.target.type === 'Utilization'
      ? { type: 'Utilization', averageUtilization: resource.target.averageUtilization }
      : { type: 'AverageValue', averageValue: resource.target.averageValue };
  return resource.container === undefined
    ? { type: 'Resource', resource: { name: resource.name, target } }
    : { type: 'ContainerResource', containerResource: { name: resource.name, container: resource.container, target } };
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

/** `s<i>-…` comes from spec.triggers[i]; the composite metric from spec.advanced.scalingModifiers. */
function triggerField(metricName: string): string {
  if (metricName === COMPOSITE_METRIC) return 'spec.advanced.scalingModifiers.target';
  const index = /^s(\d+)-/.exec(metricName)?.[1];
  return index === undefined ? 'spec.triggers' : `spec.triggers[${index}]`;
}

/** KEDA's label value for app.kubernetes.io/name: truncated to 63 characters, trailing non-alphanumerics trimmed. */
function labelValue(value: string): string {
  return value.slice(0, MAX_NAME_LENGTH).replace(/[^A-Za-z0-9]+$/, '');
}

/**
 * The annotation that records which desired HPA sluice last applied: a digest of everything it sets. With the cached
 * HPA it lets a reconcile skip the apply when nothing would change (hpaUpToDate), so objects at rest cost no write.
 */
export const DESIRED_DIGEST_ANNOTATION = 'sluice.dev/desired-digest';

/** `hpa` with DESIRED_DIGEST_ANNOTATION set to the digest of the rest of it (stable across processes). */
export function withDesiredDigest(hpa: DesiredHpa): DesiredHpa {
  const copy = structuredClone(hpa);
  const annotations = Object.fromEntries(
    Object.entries(copy.metadata.annotations ?? {}).filter(([key]) => key !== DESIRED_DIGEST_ANNOTATION),
  );
  copy.metadata.annotations = annotations;
  const digest = createHash('sha256').update(canonicalJson(copy)).digest('hex').slice(0, 32);
  annotations[DESIRED_DIGEST_ANNOTATION] = digest;
  return copy;
}

/**
 * Whether applying `desired` (withDesiredDigest) would change nothing in `current` (the informer's copy): the same
 * digest (so nothing sluice set before has since been dropped from what it wants) and every field of `desired`
 * present in `current` with the same value (so nobody changed what sluice owns). Fields others own and the server's
 * defaults are not compared.
 */
export function hpaUpToDate(desired: DesiredHpa, current: V2HorizontalPodAutoscaler | undefined): boolean {
  if (current === undefined) return false;
  const digest = desired.metadata.annotations?.[DESIRED_DIGEST_ANNOTATION];
  if (digest === undefined || current.metadata?.annotations?.[DESIRED_DIGEST_ANNOTATION] !== digest) return false;
  return contains(current.metadata, desired.metadata) && contains(current.spec, desired.spec);
}

/** Whether `whole` holds `part`: its keys with equal values at every level, arrays element by element. */
function contains(whole: unknown, part: unknown): boolean {
  if (part === undefined) return true;
  if (part === null || typeof part !== 'object') return Object.is(whole, part);
  if (whole === null || typeof whole !== 'object') return false;
  if (Array.isArray(part)) {
    return Array.isArray(whole) && whole.length === part.length && part.every((p, i) => contains(whole[i], p));
  }
  if (Array.isArray(whole)) return false;
  return Object.entries(part).every(([key, value]) => contains((whole as Record<string, unknown>)[key], value));
}
