/**
 * What a ScaledObject's status says, as pure functions of what reconcile found and what its poller and executor saw.
 * Reconcile is the only writer of the status (it patches only when the result differs from what is there).
 *
 * Conditions carry KEDA's types, reasons and messages (kedacore/keda `apis/keda/v1alpha1/condition_types.go`), with
 * sluice's detail appended where KEDA's message alone does not say why (which trigger failed, and how).
 */
import type { ConditionFields } from './conditions.ts';
import {
  ACTIVE,
  READY,
  activeUnknown,
  equalConditions,
  fallbackExists,
  findCondition,
  kubeTime,
  noFallbackFound,
  notPaused,
  PAUSED,
  scaledObjectCheckFailed,
  scaledObjectPaused,
  scaledObjectReady,
  scaledObjectUnpaused,
  setCondition,
} from './conditions.ts';
import { formatQuantity } from '../quantity.ts';
import { COMPOSITE_METRIC } from './composite.ts';
import type { ExecutorSnapshot } from './executor.ts';
import type { PollerSummary } from './poller.ts';
import { hpaNameFor, type Condition, type ScaledObject, type ScaledObjectStatus } from './scaled-object.ts';

/** What one external trigger is measured against. */
export interface Threshold {
  readonly metricName: string;
  readonly metricType: 'AverageValue' | 'Value';
  readonly target: number;
  readonly activation: number;
}

/** What the poller and executor of a running object saw (the registry's snapshot). */
export interface RuntimeView {
  readonly poller: PollerSummary;
  readonly executor: ExecutorSnapshot;
  readonly lastActiveTime: Date | undefined;
  readonly firstSeenReplicas: number | undefined;
}

/**
 * Status of a valid object whose HPA is applied and whose poller and executor run (`runtime` undefined: they have not
 * reported yet).
 */
export function runningStatus({
  so,
  previous,
  runtime,
  metricNames,
  thresholds = [],
  resourceMetricNames = [],
  composite = false,
  pausedScale = false,
  originalReplicaCount: readReplicas,
  at,
}: {
  so: ScaledObject;
  previous: ScaledObjectStatus;
  runtime: RuntimeView | undefined;
  metricNames: readonly string[];
  /** Each external trigger's target and activation threshold (status.triggersThresholds, for sluice explain). */
  thresholds?: readonly Threshold[];
  /** `cpu`, `memory`: the cpu and memory triggers (status.resourceMetricNames). */
  resourceMetricNames?: readonly string[];
  /** scalingModifiers: status.compositeScalerName is `composite-metric`. */
  composite?: boolean;
  /** paused-scale-in or paused-scale-out is in effect (Paused=True while the object runs). */
  pausedScale?: boolean;
  /** The target's replicas as reconcile read them, for status.originalReplicaCount when it is not set yet. */
  originalReplicaCount?: number | undefined;
  at: Date;
}): ScaledObjectStatus {
  const target = so.spec.scaleTargetRef;
  const slash = target.apiVersion.indexOf('/');
  const executor = runtime?.executor;
  const poller = runtime?.poller;
  const authNames = [
    ...new Set(so.spec.triggers.flatMap((t) => (t.authenticationRef ? [t.authenticationRef.name] : []))),
  ];
  const originalReplicaCount = previous.originalReplicaCount ?? readReplicas ?? runtime?.firstSeenReplicas;
  const lastActiveTime =
    runtime?.lastActiveTime !== undefined ? kubeTime(runtime.lastActiveTime) : previous.lastActiveTime;
  const fallback = so.spec.fallback;
  const conditions = withConditions(
    previous.conditions,
    [
      readyCondition(target, runtime),
      executor?.decision?.condition ?? findCondition(previous.conditions, ACTIVE) ?? activeUnknown(),
      fallback !== undefined && poller?.fallbackActive === true ? fallbackExists() : noFallbackFound(),
      pausedCondition(previous, pausedScale),
    ],
    at,
  );
  return {
    scaleTargetKind: `${target.apiVersion}.${target.kind}`,
    ...(executor?.resource !== undefined
      ? {
          scaleTargetGVKR: {
            group: slash === -1 ? '' : target.apiVersion.slice(0, slash),
            version: slash === -1 ? target.apiVersion : target.apiVersion.slice(slash + 1),
            kind: target.kind,
            resource: executor.resource,
          },
        }
      : previous.scaleTargetGVKR !== undefined
        ? { scaleTargetGVKR: previous.scaleTargetGVKR }
        : {}),
    ...(originalReplicaCount !== undefined ? { originalReplicaCount } : {}),
    ...(lastActiveTime !== undefined ? { lastActiveTime } : {}),
    hpaName: hpaNameFor(so),
    externalMetricNames: [...metricNames],
    ...(resourceMetricNames.length > 0 ? { resourceMetricNames: [...resourceMetricNames] } : {}),
    ...(composite ? { compositeScalerName: COMPOSITE_METRIC } : {}),
    ...(thresholds.length > 0
      ? {
          triggersThresholds: Object.fromEntries(
            thresholds.map((t) => [
              t.metricName,
              { metricType: t.metricType, target: formatQuantity(t.target), activation: formatQuantity(t.activation) },
            ]),
          ),
        }
      : {}),
    triggersTypes: [...new Set(so.spec.triggers.map((t) => t.type))].join(','),
    ...(authNames.length > 0 ? { authenticationsTypes: authNames.join(',') } : {}),
    ...(poller !== undefined && poller.triggers.some((t) => t.readAt !== undefined)
      ? {
          triggersActivity: Object.fromEntries(
            poller.triggers.map((t) => [t.metricName, { isActive: t.active || (t.fallbackReplicas ?? 0) > 0 }]),
          ),
        }
      : previous.triggersActivity !== undefined
        ? { triggersActivity: previous.triggersActivity }
        : {}),
    ...(fallback !== undefined && poller !== undefined ? { health: health(poller, fallback.failureThreshold) } : {}),
    observedGeneration: so.metadata.generation ?? 0,
    conditions,
  };
}

/**
 * Paused=True while a pause annotation is in effect; once removed, Paused=False ScaledObjectUnpaused (KEDA's reason),
 * else KEDA's initial Paused=False without a reason.
 */
export function pausedCondition(previous: ScaledObjectStatus, paused: boolean): ConditionFields {
  if (paused) return scaledObjectPaused();
  return findCondition(previous.conditions, PAUSED)?.status === 'True'
    ? scaledObjectUnpaused()
    : (findCondition(previous.conditions, PAUSED) ?? notPaused());
}

/**
 * Status of a paused object (`paused` or `paused-replicas`): no HPA and nothing running; Ready stays True,
 * Paused=True, `pausedReplicaCount` mirrors `paused-replicas`; what the object last knew of its triggers is kept.
 */
export function pausedStatus({
  so,
  previous,
  pausedReplicas,
  originalReplicaCount,
  at,
}: {
  so: ScaledObject;
  previous: ScaledObjectStatus;
  pausedReplicas: number | undefined;
  originalReplicaCount: number | undefined;
  at: Date;
}): ScaledObjectStatus {
  const { hpaName: _hpa, pausedReplicaCount: _paused, ...kept } = previous;
  const original = previous.originalReplicaCount ?? originalReplicaCount;
  return {
    ...kept,
    ...(original !== undefined ? { originalReplicaCount: original } : {}),
    ...(pausedReplicas !== undefined ? { pausedReplicaCount: pausedReplicas } : {}),
    observedGeneration: so.metadata.generation ?? 0,
    conditions: withConditions(previous.conditions, [scaledObjectReady(), scaledObjectPaused()], at),
  };
}

/**
 * Status of an object reconcile could not make work: Ready=False ScaledObjectCheckFailed with `message` (which names
 * the field, or quotes the API server's answer), Active=Unknown. An `invalid` object (it cannot work as written)
 * loses what only a running object has (HPA name, metric names, activity); a `transient` failure (a Secret read that
 * failed, an API error) keeps the rest of the status as it was.
 */
export function checkFailedStatus(
  previous: ScaledObjectStatus,
  message: string,
  at: Date,
  kind: 'invalid' | 'transient',
  generation?: number,
): ScaledObjectStatus {
  const conditions = withConditions(
    previous.conditions,
    [
      scaledObjectCheckFailed(message),
      activeUnknown(),
      ...(kind === 'invalid' ? [noFallbackFound(), findCondition(previous.conditions, 'Paused') ?? notPaused()] : []),
    ],
    at,
  );
  if (kind === 'transient') return { ...previous, conditions };
  return {
    ...(previous.originalReplicaCount !== undefined ? { originalReplicaCount: previous.originalReplicaCount } : {}),
    ...(previous.lastActiveTime !== undefined ? { lastActiveTime: previous.lastActiveTime } : {}),
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    conditions,
  };
}

/**
 * Ready: ErrorGettingCurrentReplicas when the executor cannot read or write the target's scale (or waits on the API
 * server), else the decision's (ScaledObjectReady, TriggerError, PartialTriggerError) with the failing triggers named.
 */
export function readyCondition(
  target: ScaledObject['spec']['scaleTargetRef'],
  runtime: RuntimeView | undefined,
): ConditionFields {
  const executor = runtime?.executor;
  if (executor?.stuckSince !== undefined) {
    return {
      type: READY,
      status: 'False',
      reason: 'ErrorGettingCurrentReplicas',
      message: `a call to the API server for ${target.kind} ${target.name} has not returned since ${kubeTime(executor.stuckSince)}`,
    };
  }
  if (executor?.scaleError !== undefined) {
    return {
      type: READY,
      status: 'False',
      reason: 'ErrorGettingCurrentReplicas',
      message: `cannot read or write the replicas of ${target.kind} ${target.name}: ${executor.scaleError}`,
    };
  }
  const ready = executor?.decision?.readyCondition ?? scaledObjectReady();
  if (ready.reason !== 'TriggerError' && ready.reason !== 'PartialTriggerError') return ready;
  const composite = runtime?.poller.compositeError;
  const failures =
    composite !== undefined
      ? [`composite-metric: ${composite}`]
      : (runtime?.poller.triggers ?? []).flatMap((t) =>
          t.error !== undefined && t.fallbackReplicas === undefined ? [`${t.metricName}: ${t.error}`] : [],
        );
  return failures.length > 0 ? { ...ready, message: `${ready.message ?? ''}: ${failures.join('; ')}` } : ready;
}

/**
 * KEDA's `status.health`: per metric, Happy or Failing with the consecutive failures. Written with the rest of the
 * status when something status-worthy happens (a trigger starts failing, its fallback engages, it recovers), so the
 * count shown is the count at that moment (1 when it starts failing, failureThreshold + 1 when the fallback engages).
 */
export function health(
  poller: PollerSummary,
  failureThreshold: number,
): Record<string, { numberOfFailures: number; status: 'Happy' | 'Failing' }> {
  return Object.fromEntries(
    poller.triggers.map((t) => [
      t.metricName,
      t.error === undefined
        ? { numberOfFailures: 0, status: 'Happy' as const }
        : {
            numberOfFailures: t.fallbackReplicas !== undefined ? Math.max(t.failures, failureThreshold + 1) : 1,
            status: 'Failing' as const,
          },
    ]),
  );
}

export function withConditions(
  previous: readonly Condition[] | undefined,
  updates: readonly ConditionFields[],
  at: Date,
): Condition[] {
  let conditions = [...(previous ?? [])];
  for (const update of updates) conditions = setCondition(conditions, update, at);
  return conditions;
}

/** Whether two statuses say the same thing (conditions in any order, other fields by value). */
export function sameStatus(a: ScaledObjectStatus, b: ScaledObjectStatus): boolean {
  const { conditions: ca, ...restA } = a;
  const { conditions: cb, ...restB } = b;
  return equalConditions(ca, cb) && JSON.stringify(sortKeys(restA)) === JSON.stringify(sortKeys(restB));
}

/** The merge patch that turns `current` into `next`: fields `next` lacks are removed (set to null). */
export function statusPatch(current: ScaledObjectStatus, next: ScaledObjectStatus): Record<string, unknown> {
  const patch: Record<string, unknown> = { ...next };
  for (const field of Object.keys(current)) if (!(field in next)) patch[field] = null;
  return patch;
}

/** A Ready=False check failure is new (worth a log line and an Event) unless the same message is already shown. */
export function isNewFailure(previous: ScaledObjectStatus, message: string): boolean {
  const ready = findCondition(previous.conditions, READY);
  return ready?.status !== 'False' || ready.reason !== 'ScaledObjectCheckFailed' || ready.message !== message;
}

/** Whether the object was Ready=True before (so that becoming ready again is worth an Event). */
export function wasReady(previous: ScaledObjectStatus): boolean {
  return findCondition(previous.conditions, READY)?.status === 'True';
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .sort(([x], [y]) => x.localeCompare(y))
        .map(([k, v]) => [k, sortKeys(v)]),
    );
  }
  return value;
}
