/**
 * KEDA's ScaledObject conditions (docs/keda-compatibility.md#conditions-and-events) with their exact type, reason and
 * message strings, and the helpers the reconciler uses to update `status.conditions` without churn: `setCondition`
 * keeps lastTransitionTime while the status stays the same, `equalConditions` tells whether anything changed at all.
 */
import { describeError } from '../errors.ts';
import type { Condition, ConditionStatus } from './scaled-object.ts';

/** A condition as the builders return it: `setCondition` stamps `lastTransitionTime`. */
export type ConditionFields = Omit<Condition, 'lastTransitionTime'>;

export const READY = 'Ready';
export const ACTIVE = 'Active';
export const FALLBACK = 'Fallback';
export const PAUSED = 'Paused';

function condition(type: string, status: ConditionStatus, reason?: string, message?: string): ConditionFields {
  return {
    type,
    status,
    ...(reason === undefined ? {} : { reason }),
    ...(message === undefined ? {} : { message }),
  };
}

// Ready

export function scaledObjectReady(): ConditionFields {
  return condition(READY, 'True', 'ScaledObjectReady', 'ScaledObject is defined correctly and is ready for scaling');
}

/**
 * Ready=False ScaledObjectCheckFailed. The message is KEDA's `<context>: <error>`; a ValidationError's message already
 * starts with the offending field (`spec.maxReplicaCount: must be at least 1, got 0`).
 */
export function scaledObjectCheckFailed(error: unknown, context?: string): ConditionFields {
  const detail = describeError(error);
  return condition(READY, 'False', 'ScaledObjectCheckFailed', context === undefined ? detail : `${context}: ${detail}`);
}

export function triggerError(): ConditionFields {
  return condition(READY, 'False', 'TriggerError', 'Triggers defined in ScaledObject are not working correctly');
}

export function partialTriggerError(): ConditionFields {
  return condition(
    READY,
    'Unknown',
    'PartialTriggerError',
    'Some triggers defined in ScaledObject are not working correctly',
  );
}

// Active

export function scalerActive(forced = false): ConditionFields {
  return condition(
    ACTIVE,
    'True',
    'ScalerActive',
    forced
      ? 'Scaling is performed because activation is being forced by annotation'
      : 'Scaling is performed because triggers are active',
  );
}

export function scalerNotActive(): ConditionFields {
  return condition(ACTIVE, 'False', 'ScalerNotActive', 'Scaling is not performed because triggers are not active');
}

export function scalerCooldown(): ConditionFields {
  return condition(ACTIVE, 'False', 'ScalerCooldown', 'Scaler cooling down because triggers are not active');
}

/** Active=Unknown UnknownState, set when the reconciler fails. */
export function activeUnknown(): ConditionFields {
  return condition(ACTIVE, 'Unknown', 'UnknownState', 'ScaledObject check failed');
}

// Fallback

export function noFallbackFound(): ConditionFields {
  return condition(FALLBACK, 'False', 'NoFallbackFound', 'No fallbacks are active on this scaled object');
}

export function fallbackExists(): ConditionFields {
  return condition(FALLBACK, 'True', 'FallbackExists', 'At least one trigger is falling back on this scaled object');
}

// Paused

/** Paused=False as KEDA initialises it: no reason, no message. */
export function notPaused(): ConditionFields {
  return condition(PAUSED, 'False');
}

export function scaledObjectPaused(): ConditionFields {
  return condition(PAUSED, 'True', 'ScaledObjectPaused', 'ScaledObject is paused');
}

export function scaledObjectUnpaused(): ConditionFields {
  return condition(PAUSED, 'False', 'ScaledObjectUnpaused', 'pause annotation removed for ScaledObject');
}

/** KEDA's GetInitializedConditions: Ready, Active and Fallback Unknown, Paused False (no reasons). */
export function initialConditions(): ConditionFields[] {
  return [condition(READY, 'Unknown'), condition(ACTIVE, 'Unknown'), condition(FALLBACK, 'Unknown'), notPaused()];
}

// updating

/** A Kubernetes timestamp (RFC 3339, whole seconds, UTC), as metav1.Time serialises: `2026-01-31T12:00:00Z`. */
export function kubeTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/**
 * Returns a new list with `next` in place of the condition of the same type (appended if absent; order kept).
 * lastTransitionTime is kept while the status does not change (reason and message may), else set to `now`.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  next: ConditionFields,
  now: Date,
): Condition[] {
  const list = conditions ?? [];
  const previous = findCondition(list, next.type);
  const lastTransitionTime =
    previous?.status === next.status && previous.lastTransitionTime !== undefined
      ? previous.lastTransitionTime
      : kubeTime(now);
  const updated: Condition = { ...next, lastTransitionTime };
  return previous === undefined ? [...list, updated] : list.map((c) => (c.type === next.type ? updated : c));
}

/**
 * Whether two condition lists say the same thing: same types with the same status, reason, message and
 * lastTransitionTime, in any order. A missing reason or message equals an empty one (Go's omitempty drops them).
 */
export function equalConditions(a: readonly Condition[] | undefined, b: readonly Condition[] | undefined): boolean {
  const left = a ?? [];
  const right = b ?? [];
  if (left.length !== right.length) return false;
  if (!right.every((y) => findCondition(left, y.type) !== undefined)) return false;
  return left.every((x) => {
    const y = findCondition(right, x.type);
    return (
      y !== undefined &&
      x.status === y.status &&
      (x.reason ?? '') === (y.reason ?? '') &&
      (x.message ?? '') === (y.message ?? '') &&
      x.lastTransitionTime === y.lastTransitionTime
    );
  });
}
