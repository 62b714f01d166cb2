/**
 * Fallback (KEDA's `spec.fallback`, kedacore/keda `pkg/fallback/fallback.go`) as pure functions: when a trigger has
 * failed for longer than `failureThreshold` polls, sluice serves the HPA a value that lands it on a replica count
 * chosen by `behavior`, instead of an error, and the executor activates a target at zero to that count.
 *
 * Counting: KEDA counts one failure per failed poll (and per HPA request; sluice counts polls only). sluice reads its
 * backends about once a second whatever the pollingInterval, so it counts by time: the first failed read counts 1,
 * and every full pollingInterval the trigger keeps failing adds 1. Fallback engages when the count exceeds
 * failureThreshold, i.e. `failureThreshold × pollingInterval` after the first failed read; KEDA's "threshold 3 ⇒ on the
 * 4th consecutive failed poll" is the same moment. The first good read ends it.
 */
import { metricValueForReplicas } from '../hpa-algorithm.ts';
import type { MetricType } from '../scalers/scaler.ts';
import type { Fallback } from './scaled-object.ts';

/** The consecutive failures a trigger failing since `firstFailureAt` has at `now` (ms). */
export function failureCount(firstFailureAt: number, now: number, pollingIntervalMs: number): number {
  return 1 + Math.max(0, Math.floor((now - firstFailureAt) / pollingIntervalMs));
}

/** When a trigger failing since `firstFailureAt` goes past the threshold (its count becomes threshold + 1), in ms. */
export function fallbackEngagesAt(firstFailureAt: number, failureThreshold: number, pollingIntervalMs: number): number {
  return firstFailureAt + failureThreshold * pollingIntervalMs;
}

/** Whether `failures` consecutive failures engage the fallback (strictly more than the threshold, as KEDA). */
export function fallbackEngaged(failures: number, failureThreshold: number): boolean {
  return failures > failureThreshold;
}

/**
 * The replica count the fallback aims for (KEDA's behaviors):
 * - `static`: `fallback.replicas`;
 * - `currentReplicas`: the current count (hold);
 * - `currentReplicasIfHigher`: max(current, fallback.replicas);
 * - `currentReplicasIfLower`: min(current, fallback.replicas);
 * - `scalingModifiers`: the failing trigger is nil in the formula; `fallback.replicas` when the formula gives nil.
 * Undefined when the behavior needs the current count and it is unknown.
 */
export function fallbackReplicas(
  fallback: Pick<Fallback, 'replicas' | 'behavior'>,
  currentReplicas: number | undefined,
): number | undefined {
  switch (fallback.behavior) {
    case 'static':
      return fallback.replicas;
    case 'currentReplicas':
      return currentReplicas;
    case 'currentReplicasIfHigher':
      return currentReplicas === undefined ? undefined : Math.max(currentReplicas, fallback.replicas);
    case 'currentReplicasIfLower':
      return currentReplicas === undefined ? undefined : Math.min(currentReplicas, fallback.replicas);
    case 'scalingModifiers':
      // The failing trigger enters the formula as nil; fallback.replicas applies when the whole formula is nil.
      return fallback.replicas;
  }
}

/**
 * The metric value that makes the HPA compute `replicas` (KEDA's synthetic fallback metric): the inverse of the HPA
 * controller's proposal (hpa-algorithm.ts metricValueForReplicas):
 * - AverageValue: the HPA wants ceil(value / target) replicas, so `target × replicas`;
 * - Value: the HPA wants ceil(value / target × readyPods), so `target × replicas / readyPods` (unknown without ready
 *   pods, as in KEDA).
 */
export function fallbackValue(
  metricType: MetricType,
  target: number,
  replicas: number,
  readyReplicas: number | undefined,
): number | undefined {
  return metricValueForReplicas({ metricType, target }, replicas, readyReplicas);
}
