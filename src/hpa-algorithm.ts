/**
 * What kube-controller-manager's HorizontalPodAutoscaler controller does on one sync of an HPA with External metrics
 * (the only kind sluice's HPAs carry besides cpu/memory), as pure functions over an explicit history. It follows
 * kubernetes/kubernetes v1.37 `pkg/controller/podautoscaler/horizontal.go` (reconcileAutoscaler,
 * computeReplicasForMetrics, normalizeDesiredReplicas[WithBehaviors], stabilizeRecommendation[WithBehaviors],
 * convertDesiredReplicasWithBehaviorRate, calculateScale{Up,Down}Limit…, storeScaleEvent) and `replica_calculator.go`
 * (GetExternalPerPodMetricReplicas, GetExternalMetricReplicas, getUsageRatioReplicaCount), and the API server's
 * defaulting of `spec.behavior` (`pkg/apis/autoscaling/v2/defaults.go`).
 *
 * One implementation for sluice: `sluice simulate` replays traces through `hpaSync`, and the operator's fallback
 * (operator/fallback.ts) computes the value that lands the HPA on a replica count with `metricValueForReplicas`, the
 * inverse of `replicasForMetric`.
 *
 * Units: the controller works in milli-units (`Quantity.MilliValue()`, which rounds up); so does this module.
 */

export type HpaMetricType = 'AverageValue' | 'Value';

/** One External metric of the HPA: its target (per replica for AverageValue, total for Value). */
export interface HpaMetricTarget {
  readonly metricType: HpaMetricType;
  readonly target: number;
  /** For reasons ("queue above target"); the metric's index otherwise. */
  readonly name?: string | undefined;
}

export interface HpaScalingPolicy {
  readonly type: 'Pods' | 'Percent';
  readonly value: number;
  readonly periodSeconds: number;
}

/** autoscaling/v2 HPAScalingRules (`tolerance` is a Quantity: a number or a string such as "0.05"). */
export interface HpaScalingRules {
  readonly stabilizationWindowSeconds?: number | undefined;
  readonly selectPolicy?: 'Max' | 'Min' | 'Disabled' | undefined;
  readonly policies?: readonly HpaScalingPolicy[] | undefined;
  readonly tolerance?: number | string | undefined;
}

export interface HpaBehaviorRules {
  readonly scaleUp?: HpaScalingRules | undefined;
  readonly scaleDown?: HpaScalingRules | undefined;
}

/** `--horizontal-pod-autoscaler-tolerance` default. */
export const DEFAULT_TOLERANCE = 0.1;
/** `--horizontal-pod-autoscaler-downscale-stabilization` default, in seconds. */
export const DEFAULT_DOWNSCALE_STABILIZATION_S = 300;
/** `--horizontal-pod-autoscaler-sync-period` default, in seconds. */
export const DEFAULT_SYNC_PERIOD_S = 15;

/** The controller's flags that change the algorithm. */
export interface HpaControllerFlags {
  /** `--horizontal-pod-autoscaler-tolerance` (default 0.1). */
  readonly tolerance?: number | undefined;
  /** `--horizontal-pod-autoscaler-downscale-stabilization` in seconds (default 300). */
  readonly downscaleStabilizationS?: number | undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// one metric

/** `resource.Quantity.MilliValue()`: milli-units, rounded up (the float noise of `x * 1000` is not rounded up). */
export function milliValue(value: number): number {
  const scaled = value * 1000;
  const nearest = Math.round(scaled);
  return Math.abs(scaled - nearest) < 1e-6 ? nearest : Math.ceil(scaled);
}

export interface Tolerances {
  readonly scaleDown: number;
  readonly scaleUp: number;
}

/** tolerancesForHpa: the flag, overridden per direction by `behavior.scale{Up,Down}.tolerance` (GA in 1.37). */
export function tolerancesFor(behavior: HpaBehaviorRules | undefined, flags: HpaControllerFlags = {}): Tolerances {
  const base = flags.tolerance ?? DEFAULT_TOLERANCE;
  const down = behavior?.scaleDown?.tolerance;
  const up = behavior?.scaleUp?.tolerance;
  return {
    scaleDown: down === undefined ? base : Number(down),
    scaleUp: up === undefined ? base : Number(up),
  };
}

/** Tolerances.isWithin: 1 - down ≤ ratio ≤ 1 + up leaves the replica count alone. */
export function withinTolerance(usageRatio: number, tolerances: Tolerances): boolean {
  return 1 - tolerances.scaleDown <= usageRatio && usageRatio <= 1 + tolerances.scaleUp;
}

const MAX_INT32 = 2_147_483_647;

export interface MetricReplicasInput {
  readonly metric: HpaMetricTarget;
  /** The value the external-metrics API serves (the sum of its items). */
  readonly value: number;
  /** The scale subresource's `spec.replicas`. */
  readonly specReplicas: number;
  /** The scale subresource's `status.replicas` (pods that exist). */
  readonly statusReplicas: number;
  /** Running and Ready pods of the target (Value targets only). */
  readonly readyReplicas: number;
  readonly tolerances: Tolerances;
}

/**
 * The replica count one External metric proposes:
 * - AverageValue (GetExternalPerPodMetricReplicas): ratio = value / (target × statusReplicas); within the tolerance the
 *   count stays statusReplicas, else ceil(value / target);
 * - Value (GetExternalMetricReplicas → getUsageRatioReplicaCount): ratio = value / target; at specReplicas 0 the
 *   proposal is ceil(ratio); within the tolerance it stays specReplicas; else ceil(ratio × readyPods).
 * Undefined where the controller fails the metric (a Value target whose target has no pods at all).
 */
export function replicasForMetric(input: MetricReplicasInput): number | undefined {
  const usage = milliValue(input.value);
  const target = milliValue(input.metric.target);
  if (input.metric.metricType === 'AverageValue') {
    const ratio = usage / (target * input.statusReplicas);
    if (withinTolerance(ratio, input.tolerances)) return input.statusReplicas;
    return Math.min(MAX_INT32, Math.ceil(usage / target));
  }
  const ratio = usage / target;
  if (input.specReplicas === 0) return Math.ceil(ratio);
  if (withinTolerance(ratio, input.tolerances)) return input.specReplicas;
  if (input.statusReplicas === 0) return undefined; // "no pods returned by selector while calculating replica count"
  return Math.min(MAX_INT32, Math.ceil(ratio * input.readyReplicas));
}

/**
 * The inverse of replicasForMetric at a steady state: the value that makes the HPA propose `replicas` (what KEDA's
 * fallback serves). AverageValue: target × replicas. Value: target × replicas / readyPods (unknown without ready pods).
 */
export function metricValueForReplicas(
  metric: HpaMetricTarget,
  replicas: number,
  readyReplicas: number | undefined,
): number | undefined {
  if (metric.metricType === 'AverageValue') return metric.target * replicas;
  if (readyReplicas === undefined || readyReplicas <= 0) return undefined;
  return (metric.target * replicas) / readyReplicas;
}

/**
 * computeReplicasForMetrics: the largest proposal over the metrics. `values[i]` undefined = metric i failed. When every
 * metric failed, or some failed and the rest would scale below specReplicas, the controller does nothing this sync
 * (undefined, with the reason).
 */
export function replicasForMetrics(
  metrics: readonly HpaMetricTarget[],
  values: readonly (number | undefined)[],
  counts: Pick<MetricReplicasInput, 'specReplicas' | 'statusReplicas' | 'readyReplicas' | 'tolerances'>,
):
  | { readonly replicas: number; readonly metricIndex: number }
  | { readonly replicas: undefined; readonly error: string } {
  let replicas = 0;
  let metricIndex = -1;
  let invalid = 0;
  for (const [i, metric] of metrics.entries()) {
    const value = values[i];
    const proposal = value === undefined ? undefined : replicasForMetric({ ...counts, metric, value });
    if (proposal === undefined) {
      invalid++;
      continue;
    }
    if (replicas === 0 || proposal > replicas) {
      replicas = proposal;
      metricIndex = i;
    }
  }
  if (invalid >= metrics.length || (invalid > 0 && replicas < counts.specReplicas)) {
    return {
      replicas: undefined,
      error: `invalid metrics (${invalid} invalid out of ${metrics.length}): the HPA holds (FailedGetExternalMetric)`,
    };
  }
  return { replicas, metricIndex };
}

// ---------------------------------------------------------------------------------------------------------------
// behavior

/** A behavior as the API server stores it: every field of both directions set (SetDefaults_HorizontalPodAutoscalerBehavior). */
export interface ResolvedRules {
  readonly stabilizationWindowSeconds: number;
  readonly selectPolicy: 'Max' | 'Min' | 'Disabled';
  readonly policies: readonly HpaScalingPolicy[];
}

export interface ResolvedBehavior {
  readonly scaleUp: ResolvedRules;
  readonly scaleDown: ResolvedRules;
}

/**
 * The API server's defaults for a behavior that is set (fields left out take these), and the controller's for the
 * scale-down window (maybeInitScaleDownStabilizationWindow: the flag): scale up max(4 pods, 100 %) per 15 s with no
 * window; scale down 100 % per 15 s with the `--horizontal-pod-autoscaler-downscale-stabilization` window (300 s).
 */
export function resolveBehavior(behavior: HpaBehaviorRules, flags: HpaControllerFlags = {}): ResolvedBehavior {
  const up = behavior.scaleUp;
  const down = behavior.scaleDown;
  return {
    scaleUp: {
      stabilizationWindowSeconds: up?.stabilizationWindowSeconds ?? 0,
      selectPolicy: up?.selectPolicy ?? 'Max',
      policies: up?.policies ?? [
        { type: 'Pods', value: 4, periodSeconds: 15 },
        { type: 'Percent', value: 100, periodSeconds: 15 },
      ],
    },
    scaleDown: {
      stabilizationWindowSeconds:
        down?.stabilizationWindowSeconds ?? flags.downscaleStabilizationS ?? DEFAULT_DOWNSCALE_STABILIZATION_S,
      selectPolicy: down?.selectPolicy ?? 'Max',
      policies: down?.policies ?? [{ type: 'Percent', value: 100, periodSeconds: 15 }],
    },
  };
}

/** A recommendation the controller remembers (timestampedRecommendation), `at` in ms. */
export interface Recommendation {
  readonly replicas: number;
  readonly at: number;
}

/** A scale the controller made (timestampedScaleEvent): the change, always positive, in its direction's list. */
export interface ScaleEvent {
  readonly change: number;
  readonly at: number;
  readonly outdated: boolean;
}

/** What the controller keeps in memory per HPA between syncs. */
export interface HpaHistory {
  /** Undefined until the first sync records the current count (recordInitialRecommendation). */
  readonly recommendations: readonly Recommendation[] | undefined;
  readonly scaleUpEvents: readonly ScaleEvent[];
  readonly scaleDownEvents: readonly ScaleEvent[];
}

export const EMPTY_HISTORY: HpaHistory = { recommendations: undefined, scaleUpEvents: [], scaleDownEvents: [] };

/**
 * stabilizeRecommendation (no behavior): the highest recommendation within the downscale window, and the history with
 * this one recorded (in place of the last one older than the window, if any).
 */
export function stabilizeLegacy(
  recommendations: readonly Recommendation[],
  desired: number,
  now: number,
  windowS: number,
): { readonly replicas: number; readonly recommendations: Recommendation[] } {
  const cutoff = now - windowS * 1000;
  let max = desired;
  let old = -1;
  for (const [i, rec] of recommendations.entries()) {
    if (rec.at < cutoff) old = i;
    else if (rec.replicas > max) max = rec.replicas;
  }
  return { replicas: max, recommendations: record(recommendations, old, { replicas: desired, at: now }) };
}

/**
 * stabilizeRecommendationWithBehaviors: the count is raised to the lowest recommendation within the scale-up window
 * and lowered to the highest within the scale-down window (both including this one), starting from the current count.
 */
export function stabilizeWithBehavior(
  recommendations: readonly Recommendation[],
  args: {
    readonly desired: number;
    readonly current: number;
    readonly now: number;
    readonly behavior: ResolvedBehavior;
  },
): { readonly replicas: number; readonly recommendations: Recommendation[] } {
  const upCutoff = args.now - args.behavior.scaleUp.stabilizationWindowSeconds * 1000;
  const downCutoff = args.now - args.behavior.scaleDown.stabilizationWindowSeconds * 1000;
  let up = args.desired;
  let down = args.desired;
  let old = -1;
  for (const [i, rec] of recommendations.entries()) {
    if (rec.at > upCutoff) up = Math.min(rec.replicas, up);
    if (rec.at > downCutoff) down = Math.max(rec.replicas, down);
    if (rec.at < upCutoff && rec.at < downCutoff) old = i;
  }
  let replicas = args.current;
  if (replicas < up) replicas = up;
  if (replicas > down) replicas = down;
  return { replicas, recommendations: record(recommendations, old, { replicas: args.desired, at: args.now }) };
}

function record(list: readonly Recommendation[], old: number, next: Recommendation): Recommendation[] {
  const copy = [...list];
  if (old >= 0) copy[old] = next;
  else copy.push(next);
  return copy;
}

/** getReplicasChangePerPeriod: the changes made in the last `periodSeconds` (strictly after the cutoff). */
function changeInPeriod(periodSeconds: number, events: readonly ScaleEvent[], now: number): number {
  const cutoff = now - periodSeconds * 1000;
  return events.reduce((sum, e) => (e.at > cutoff ? sum + e.change : sum), 0);
}

/** The replica count at the start of a policy's period: the current count less the changes made within it. */
function periodStart(
  current: number,
  history: Pick<HpaHistory, 'scaleUpEvents' | 'scaleDownEvents'>,
  periodSeconds: number,
  now: number,
): number {
  return (
    current -
    changeInPeriod(periodSeconds, history.scaleUpEvents, now) +
    changeInPeriod(periodSeconds, history.scaleDownEvents, now)
  );
}

/** calculateScaleUpLimitWithScalingRules: the most replicas the policies allow now. */
export function scaleUpLimit(
  current: number,
  history: Pick<HpaHistory, 'scaleUpEvents' | 'scaleDownEvents'>,
  rules: ResolvedRules,
  now: number,
): number {
  if (rules.selectPolicy === 'Disabled') return current;
  const pick = rules.selectPolicy === 'Min' ? Math.min : Math.max;
  let result = rules.selectPolicy === 'Min' ? Number.MAX_SAFE_INTEGER : Number.MIN_SAFE_INTEGER;
  for (const policy of rules.policies) {
    const start = periodStart(current, history, policy.periodSeconds, now);
    // The controller's float64 arithmetic, rounding noise included (25 × 1.12 = 28.000000000000004 → 29).
    const proposed = policy.type === 'Pods' ? start + policy.value : Math.ceil(start * (1 + policy.value / 100));
    result = pick(result, proposed);
  }
  return result;
}

/** calculateScaleDownLimitWithBehaviors: the fewest replicas the policies allow now. */
export function scaleDownLimit(
  current: number,
  history: Pick<HpaHistory, 'scaleUpEvents' | 'scaleDownEvents'>,
  rules: ResolvedRules,
  now: number,
): number {
  if (rules.selectPolicy === 'Disabled') return current;
  const pick = rules.selectPolicy === 'Min' ? Math.max : Math.min;
  let result = rules.selectPolicy === 'Min' ? Number.MIN_SAFE_INTEGER : Number.MAX_SAFE_INTEGER;
  for (const policy of rules.policies) {
    const start = periodStart(current, history, policy.periodSeconds, now);
    // Go's int32(float64) truncates toward zero.
    const proposed = policy.type === 'Pods' ? start - policy.value : Math.trunc(start * (1 - policy.value / 100));
    result = pick(result, proposed);
  }
  return result;
}

/** The ScalingLimited reasons of the controller. */
export type LimitReason =
  'DesiredWithinRange' | 'ScaleUpLimit' | 'ScaleDownLimit' | 'TooManyReplicas' | 'TooFewReplicas';

/** convertDesiredReplicasWithBehaviorRate: bounds by the policies' rate limits and by min/max replicas. */
export function limitWithBehavior(
  args: {
    readonly desired: number;
    readonly current: number;
    readonly minReplicas: number;
    readonly maxReplicas: number;
    readonly behavior: ResolvedBehavior;
    readonly now: number;
  },
  history: Pick<HpaHistory, 'scaleUpEvents' | 'scaleDownEvents'>,
): { readonly replicas: number; readonly reason: LimitReason } {
  const { desired, current } = args;
  if (desired > current) {
    const limit = Math.max(current, scaleUpLimit(current, history, args.behavior.scaleUp, args.now));
    const maximum = Math.min(args.maxReplicas, limit);
    const reason = args.maxReplicas > limit ? 'ScaleUpLimit' : 'TooManyReplicas';
    if (desired > maximum) return { replicas: maximum, reason };
  } else if (desired < current) {
    const limit = Math.min(current, scaleDownLimit(current, history, args.behavior.scaleDown, args.now));
    const minimum = Math.max(args.minReplicas, limit);
    const reason = args.minReplicas < limit ? 'ScaleDownLimit' : 'TooFewReplicas';
    if (desired < minimum) return { replicas: minimum, reason };
  }
  return { replicas: desired, reason: 'DesiredWithinRange' };
}

/** convertDesiredReplicasWithRules (no behavior): at most max(2 × current, 4), within min and max. */
export function limitLegacy(
  current: number,
  desired: number,
  minReplicas: number,
  maxReplicas: number,
): { readonly replicas: number; readonly reason: LimitReason } {
  const upLimit = Math.max(2 * current, 4);
  const maximum = maxReplicas > upLimit ? upLimit : maxReplicas;
  const upReason = maxReplicas > upLimit ? 'ScaleUpLimit' : 'TooManyReplicas';
  if (desired < minReplicas) return { replicas: minReplicas, reason: 'TooFewReplicas' };
  if (desired > maximum) return { replicas: maximum, reason: upReason };
  return { replicas: desired, reason: 'DesiredWithinRange' };
}

/**
 * storeScaleEvent: remembers a scale (behavior set only), reusing the last entry older than the direction's longest
 * policy period.
 */
export function storeScaleEvent(
  history: HpaHistory,
  behavior: ResolvedBehavior,
  from: number,
  to: number,
  now: number,
): HpaHistory {
  const upward = to > from;
  const rules = upward ? behavior.scaleUp : behavior.scaleDown;
  const longest = rules.policies.reduce((m, p) => Math.max(m, p.periodSeconds), 0);
  const cutoff = now - longest * 1000;
  const events = (upward ? history.scaleUpEvents : history.scaleDownEvents).map((e) =>
    e.at < cutoff ? { ...e, outdated: true } : e,
  );
  let old = -1;
  for (const [i, e] of events.entries()) if (e.outdated) old = i;
  const event: ScaleEvent = { change: Math.abs(to - from), at: now, outdated: false };
  if (old >= 0) events[old] = event;
  else events.push(event);
  return upward ? { ...history, scaleUpEvents: events } : { ...history, scaleDownEvents: events };
}

// ---------------------------------------------------------------------------------------------------------------
// one sync

export interface HpaSpecInput {
  /** `spec.minReplicas` (sluice: max(1, minReplicaCount)). */
  readonly minReplicas: number;
  readonly maxReplicas: number;
  readonly metrics: readonly HpaMetricTarget[];
  /** `spec.behavior` as written (undefined: the controller's behavior-less path). */
  readonly behavior?: HpaBehaviorRules | undefined;
}

export interface HpaSyncInput {
  readonly hpa: HpaSpecInput;
  /** The scale subresource's spec.replicas. */
  readonly currentReplicas: number;
  /** status.replicas (default: currentReplicas, every pod created). */
  readonly statusReplicas?: number | undefined;
  /** Running and Ready pods (default: currentReplicas; Value targets only). */
  readonly readyReplicas?: number | undefined;
  /** Per metric, the value served; undefined = the metrics API answered an error for it. */
  readonly values: readonly (number | undefined)[];
  /** The sync's time, ms. */
  readonly now: number;
  readonly history: HpaHistory;
  readonly flags?: HpaControllerFlags | undefined;
}

export interface HpaSyncResult {
  /** What the target is scaled to (or stays at). */
  readonly replicas: number;
  /** Whether the controller writes the scale subresource. */
  readonly rescale: boolean;
  /** The metrics' proposal before stabilization and limits (undefined when not computed). */
  readonly metricReplicas: number | undefined;
  /** The controller's words: its rescale reason, or why it did not scale. */
  readonly reason: string;
  readonly history: HpaHistory;
}

/**
 * One reconcileAutoscaler for an HPA whose ScaledToZero condition is not True (sluice's: minReplicas ≥ 1, so the
 * controller never scales them to zero itself): at 0 replicas scaling is disabled; above max it scales to max, below
 * min to min; else the metrics' proposal, stabilized and limited by the behavior (or the behavior-less rules).
 */
export function hpaSync(input: HpaSyncInput): HpaSyncResult {
  const { hpa, currentReplicas: current, now } = input;
  const flags = input.flags ?? {};
  let history: HpaHistory = input.history;
  if (history.recommendations === undefined) {
    history = { ...history, recommendations: [{ replicas: current, at: now }] };
  }
  const hold = (reason: string, metricReplicas?: number): HpaSyncResult => ({
    replicas: current,
    rescale: false,
    metricReplicas,
    reason,
    history,
  });
  if (current === 0) return hold('scaling is disabled since the replica count of the target is zero');

  let desired: number;
  let reason: string;
  let metricReplicas: number | undefined;
  if (current > hpa.maxReplicas) {
    desired = hpa.maxReplicas;
    reason = 'Current number of replicas above Spec.MaxReplicas';
  } else if (current < hpa.minReplicas) {
    desired = hpa.minReplicas;
    reason = 'Current number of replicas below Spec.MinReplicas';
  } else {
    const computed = replicasForMetrics(hpa.metrics, input.values, {
      specReplicas: current,
      statusReplicas: input.statusReplicas ?? current,
      readyReplicas: input.readyReplicas ?? current,
      tolerances: tolerancesFor(hpa.behavior, flags),
    });
    if (computed.replicas === undefined) return hold(computed.error);
    metricReplicas = computed.replicas;
    desired = Math.max(0, computed.replicas);
    reason =
      desired > current
        ? `${hpa.metrics[computed.metricIndex]?.name ?? `metric ${computed.metricIndex}`} above target`
        : desired < current
          ? 'All metrics below target'
          : 'within tolerance or at target';
    const recommendations = history.recommendations ?? [];
    if (hpa.behavior === undefined) {
      const stabilized = stabilizeLegacy(
        recommendations,
        desired,
        now,
        flags.downscaleStabilizationS ?? DEFAULT_DOWNSCALE_STABILIZATION_S,
      );
      history = { ...history, recommendations: stabilized.recommendations };
      const limited = limitLegacy(current, stabilized.replicas, hpa.minReplicas, hpa.maxReplicas);
      desired = limited.replicas;
      reason = describe(reason, stabilized.replicas !== metricReplicas, limited.reason);
    } else {
      const behavior = resolveBehavior(hpa.behavior, flags);
      const stabilized = stabilizeWithBehavior(recommendations, { desired, current, now, behavior });
      history = { ...history, recommendations: stabilized.recommendations };
      const limited = limitWithBehavior(
        {
          desired: stabilized.replicas,
          current,
          minReplicas: hpa.minReplicas,
          maxReplicas: hpa.maxReplicas,
          behavior,
          now,
        },
        history,
      );
      desired = limited.replicas;
      reason = describe(reason, stabilized.replicas !== metricReplicas, limited.reason);
    }
  }
  if (desired === current) return hold(reason, metricReplicas);
  if (hpa.behavior !== undefined) {
    history = storeScaleEvent(history, resolveBehavior(hpa.behavior, flags), current, desired, now);
  }
  return { replicas: desired, rescale: true, metricReplicas, reason, history };
}

function describe(base: string, stabilized: boolean, limit: LimitReason): string {
  const parts = [base];
  if (stabilized) parts.push('stabilized');
  if (limit !== 'DesiredWithinRange') parts.push(limit);
  return parts.join('; ');
}
