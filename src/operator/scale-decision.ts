/**
 * The 0↔N decision of one scaling-loop tick: KEDA's executor table (docs/keda-compatibility.md#executor-decision-table)
 * as a pure function. The HPA alone scales between 1 (or minReplicaCount) and maxReplicaCount; this decides activation
 * from zero (or idle), the return to zero (or idle) after the cooldown, and repairs below minReplicaCount.
 *
 * Differences from KEDA, on purpose:
 * - Errors never scale in: a tick where no trigger is active and some trigger failed holds the replicas, even with
 *   `fallback.replicas: 0` (KEDA then falls through to scale-in). Repairing below minReplicaCount still happens.
 * - lastActiveTime is refreshed while active even when another trigger errors (KEDA skips it;
 *   docs/keda-compatibility.md#executor-decision-table).
 * - Ready is PartialTriggerError whenever a trigger errors while the object is active (KEDA skips it on the tick
 *   that scales from zero).
 *
 * `reason` is a sentence for people (the CLI's "why is/isn't this scaling"); `rule` is the stable key.
 */
import {
  partialTriggerError,
  scaledObjectReady,
  scalerActive,
  scalerCooldown,
  scalerNotActive,
  triggerError,
  type ConditionFields,
} from './conditions.ts';

export interface ScaleInput {
  /** `spec.replicas` of the target (its /scale subresource). */
  readonly currentReplicas: number;
  readonly minReplicaCount: number;
  readonly maxReplicaCount: number;
  /** Replicas while inactive, below minReplicaCount; unset disables it. */
  readonly idleReplicaCount?: number | undefined;
  /** At least one trigger is active (or falling back, or activation is forced). */
  readonly active: boolean;
  /** At least one trigger failed this tick. */
  readonly anyError: boolean;
  /** Every trigger failed this tick (wording only; `anyError` decides). */
  readonly allError?: boolean | undefined;
  /** `status.lastActiveTime`: the last tick a trigger was active; unset if never. */
  readonly lastActiveTime: Date | undefined;
  /** The ScaledObject's creationTimestamp: the initial cooldown runs from it while lastActiveTime is unset. */
  readonly createdAt: Date;
  readonly cooldownPeriodS: number;
  readonly initialCooldownPeriodS: number;
  readonly now: Date;
  /** `spec.fallback`, when configured: failing triggers are then served a fallback value and Ready stays True. */
  readonly fallback?: { readonly replicas: number } | undefined;
  /** The replica count an engaged fallback serves: activation from zero goes straight to it (within min and max). */
  readonly fallbackReplicas?: number | undefined;
  /** `paused-scale-in`: never scale in (to zero or idle). */
  readonly pausedScaleIn?: boolean | undefined;
  /** `paused-scale-out`: never activate from zero (or idle). */
  readonly pausedScaleOut?: boolean | undefined;
  /** `force-activation`: active whatever the triggers say. */
  readonly forceActivation?: boolean | undefined;
}

/** Which row of the table matched (stable, for tests, logs and the CLI). */
export type ScaleRule =
  /** Active at 0 (or below min with idle set): scale to max(1, min). KEDA 3a. */
  | 'scale-from-zero'
  /** Active at 0 (or idle), but `paused-scale-out` forbids activating. */
  | 'paused-scale-out'
  /** Not active and cooled down, but `paused-scale-in` forbids scaling in. */
  | 'paused-scale-in'
  /** Active: the HPA scales. KEDA 3b/3c. */
  | 'active'
  /** Not active and some trigger failed: hold. KEDA 4a/4b. */
  | 'error-hold'
  /** Not active, above zero/idle, cooldown not over: hold. KEDA 4c (inside the cooldown). */
  | 'cooldown'
  /** Not active, above zero/idle, cooled down: scale to idle or min. KEDA 4c. */
  | 'scale-in'
  /** Below minReplicaCount with no idle count: scale to min. KEDA 4d. */
  | 'below-min'
  /** Nothing to do. KEDA 4e. */
  | 'steady';

export type ScaleAction =
  | { readonly action: 'scale'; readonly to: number; readonly reason: string }
  | { readonly action: 'none'; readonly reason: string };

export type ScaleDecision = ScaleAction & {
  readonly rule: ScaleRule;
  /** The Active condition this tick implies (ScalerActive, ScalerNotActive or ScalerCooldown). */
  readonly condition: ConditionFields;
  /** The Ready condition this tick implies (ScaledObjectReady, PartialTriggerError or TriggerError). */
  readonly readyCondition: ConditionFields;
  /** Set lastActiveTime to `now` (for a 'scale' action, once the write succeeded). */
  readonly refreshLastActiveTime: boolean;
};

export function decideScale(input: ScaleInput): ScaleDecision {
  const { currentReplicas: current, minReplicaCount: min, maxReplicaCount: max, idleReplicaCount: idle } = input;
  const hpaRange = `the HPA scales between ${Math.max(1, min)} and ${max} replicas`;

  if (input.active || input.forceActivation === true) {
    const forced = input.forceActivation === true;
    const ready = input.anyError ? partialTriggerError() : scaledObjectReady();
    const failing = input.anyError ? ' (some triggers are failing)' : '';
    const why = forced ? 'activation forced by annotation' : 'triggers active';
    if (((idle !== undefined && current < min) || current === 0) && input.pausedScaleOut === true) {
      return {
        action: 'none',
        rule: 'paused-scale-out',
        reason: `${why} at ${replicas(current)}, but paused-scale-out: not activating`,
        condition: scalerActive(forced),
        readyCondition: ready,
        refreshLastActiveTime: true,
      };
    }
    if ((idle !== undefined && current < min) || current === 0) {
      const to = Math.min(max, Math.max(1, min, input.fallbackReplicas ?? 0));
      return {
        action: 'scale',
        to,
        rule: 'scale-from-zero',
        reason:
          input.fallbackReplicas === undefined
            ? `${why} at ${replicas(current)}${failing}; scaling to ${to}, then ${hpaRange}`
            : `fallback serves ${input.fallbackReplicas} replicas at ${replicas(current)}; scaling to ${to}`,
        condition: scalerActive(forced),
        readyCondition: ready,
        refreshLastActiveTime: true,
      };
    }
    return {
      action: 'none',
      rule: 'active',
      reason: `${why}${failing}; ${hpaRange} (now ${current})`,
      condition: scalerActive(forced),
      readyCondition: ready,
      refreshLastActiveTime: true,
    };
  }

  const notActive = { condition: scalerNotActive(), refreshLastActiveTime: false } as const;

  if (input.anyError) {
    const readyCondition = input.fallback === undefined ? triggerError() : scaledObjectReady();
    const which = input.allError === true ? 'all triggers failing' : 'no trigger active and some triggers failing';
    if (idle === undefined && current < min) {
      return {
        ...notActive,
        action: 'scale',
        to: min,
        rule: 'below-min',
        reason: `${which}; ${replicas(current)} is below minReplicaCount ${min}, scaling to ${min}`,
        readyCondition,
      };
    }
    const fallback = input.fallback === undefined ? '' : ', fallback configured';
    return {
      ...notActive,
      action: 'none',
      rule: 'error-hold',
      reason: `${which}; holding ${replicas(current)} (errors never scale in${fallback})`,
      readyCondition,
    };
  }

  const ready = { readyCondition: scaledObjectReady() } as const;
  if ((idle !== undefined && current > idle) || (current > 0 && min === 0)) {
    const to = idle ?? min;
    const cooldown = cooldownState(input);
    if (!cooldown.over) {
      return {
        ...notActive,
        ...ready,
        action: 'none',
        rule: 'cooldown',
        reason: `${cooldown.within}; holding ${replicas(current)}`,
        condition: scalerCooldown(),
      };
    }
    const target = idle === undefined ? '' : ' (idleReplicaCount)';
    if (input.pausedScaleIn === true) {
      return {
        ...notActive,
        ...ready,
        action: 'none',
        rule: 'paused-scale-in',
        reason: `${cooldown.past}, but paused-scale-in: holding ${replicas(current)}`,
      };
    }
    return {
      ...notActive,
      ...ready,
      action: 'scale',
      to,
      rule: 'scale-in',
      reason: `${cooldown.past}; scaling from ${current} to ${to}${target}`,
    };
  }
  if (idle === undefined && current < min) {
    return {
      ...notActive,
      ...ready,
      action: 'scale',
      to: min,
      rule: 'below-min',
      reason: `${replicas(current)} is below minReplicaCount ${min}; scaling to ${min}`,
    };
  }
  return {
    ...notActive,
    ...ready,
    action: 'none',
    rule: 'steady',
    reason:
      current === 0 || current === idle
        ? `triggers not active; already at ${replicas(current)}`
        : `triggers not active; ${hpaRange} (now ${current})`,
  };
}

/**
 * Cooled down ⇔ lastActiveTime + cooldownPeriod < now, or, while lastActiveTime is unset,
 * creationTimestamp + initialCooldownPeriod < now (strict, as KEDA's `Before`).
 */
function cooldownState(input: ScaleInput): { over: boolean; within: string; past: string } {
  const now = input.now.getTime();
  if (input.lastActiveTime !== undefined) {
    const elapsedMs = now - input.lastActiveTime.getTime();
    const periodS = input.cooldownPeriodS;
    return {
      over: elapsedMs > periodS * 1000,
      within: `triggers idle for ${seconds(elapsedMs)} of the ${periodS}s cooldown`,
      past: `triggers idle for ${seconds(elapsedMs)}, past the ${periodS}s cooldown`,
    };
  }
  const elapsedMs = now - input.createdAt.getTime();
  const periodS = input.initialCooldownPeriodS;
  return {
    over: elapsedMs > periodS * 1000,
    within: `triggers never active since creation ${seconds(elapsedMs)} ago, within the ${periodS}s initial cooldown`,
    past: `triggers never active since creation ${seconds(elapsedMs)} ago, past the ${periodS}s initial cooldown`,
  };
}

/** Whole seconds, rounded down (clock skew never shows a negative). */
function seconds(ms: number): string {
  return `${Math.max(0, Math.floor(ms / 1000))}s`;
}

function replicas(n: number): string {
  return n === 1 ? '1 replica' : `${n} replicas`;
}
