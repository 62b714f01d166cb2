// Proves fallback.ts: the replica count each behavior aims for, the synthetic metric value that lands the HPA on it,
// and the time-based failure count (KEDA's "threshold 3 ⇒ the 4th consecutive failed poll").
import { describe, expect, test } from 'vitest';
import {
  failureCount,
  fallbackEngaged,
  fallbackEngagesAt,
  fallbackReplicas,
  fallbackValue,
} from '../../../src/operator/fallback.ts';
import type { MetricType } from '../../../src/scalers/scaler.ts';
import type { FallbackBehavior } from '../../../src/operator/scaled-object.ts';

describe('fallbackReplicas (fallback.replicas = 4)', () => {
  const rows: { comment: string; behavior: FallbackBehavior; current: number | undefined; want: number | undefined }[] =
    [
      { comment: 'static, current unknown: fallback.replicas', behavior: 'static', current: undefined, want: 4 },
      { comment: 'static, below: fallback.replicas', behavior: 'static', current: 1, want: 4 },
      { comment: 'static, equal', behavior: 'static', current: 4, want: 4 },
      { comment: 'static, above: still fallback.replicas', behavior: 'static', current: 9, want: 4 },
      {
        comment: 'currentReplicas, unknown: cannot tell',
        behavior: 'currentReplicas',
        current: undefined,
        want: undefined,
      },
      { comment: 'currentReplicas, below: holds the current count', behavior: 'currentReplicas', current: 1, want: 1 },
      { comment: 'currentReplicas, equal', behavior: 'currentReplicas', current: 4, want: 4 },
      { comment: 'currentReplicas, above: holds the current count', behavior: 'currentReplicas', current: 9, want: 9 },
      { comment: 'currentReplicas at 0: 0', behavior: 'currentReplicas', current: 0, want: 0 },
      {
        comment: 'currentReplicasIfHigher, unknown: cannot tell',
        behavior: 'currentReplicasIfHigher',
        current: undefined,
        want: undefined,
      },
      {
        comment: 'currentReplicasIfHigher, below: fallback.replicas',
        behavior: 'currentReplicasIfHigher',
        current: 1,
        want: 4,
      },
      { comment: 'currentReplicasIfHigher, equal', behavior: 'currentReplicasIfHigher', current: 4, want: 4 },
      {
        comment: 'currentReplicasIfHigher, above: the current count',
        behavior: 'currentReplicasIfHigher',
        current: 9,
        want: 9,
      },
      {
        comment: 'currentReplicasIfLower, unknown: cannot tell',
        behavior: 'currentReplicasIfLower',
        current: undefined,
        want: undefined,
      },
      {
        comment: 'currentReplicasIfLower, below: the current count',
        behavior: 'currentReplicasIfLower',
        current: 1,
        want: 1,
      },
      { comment: 'currentReplicasIfLower, equal', behavior: 'currentReplicasIfLower', current: 4, want: 4 },
      {
        comment: 'currentReplicasIfLower, above: fallback.replicas',
        behavior: 'currentReplicasIfLower',
        current: 9,
        want: 4,
      },
      // scalingModifiers: the failing trigger is nil in the formula; fallback.replicas is what a nil formula serves.
      {
        comment: 'scalingModifiers, below: fallback.replicas (for a formula that gives nil)',
        behavior: 'scalingModifiers',
        current: 2,
        want: 4,
      },
      {
        comment: 'scalingModifiers, current unknown: fallback.replicas (it never needs the current count)',
        behavior: 'scalingModifiers',
        current: undefined,
        want: 4,
      },
      {
        comment: 'scalingModifiers, above: still fallback.replicas',
        behavior: 'scalingModifiers',
        current: 9,
        want: 4,
      },
    ];
  test.each(rows)('$comment', ({ behavior, current, want }) => {
    expect(fallbackReplicas({ replicas: 4, behavior }, current)).toBe(want);
  });
});

describe('fallbackValue (target 5, 4 replicas)', () => {
  const rows: { comment: string; metricType: MetricType; ready: number | undefined; want: number | undefined }[] = [
    {
      comment: 'AverageValue, ready unknown: target × replicas',
      metricType: 'AverageValue',
      ready: undefined,
      want: 20,
    },
    { comment: 'AverageValue, 0 ready: ready pods do not matter', metricType: 'AverageValue', ready: 0, want: 20 },
    { comment: 'AverageValue, 2 ready: target × replicas', metricType: 'AverageValue', ready: 2, want: 20 },
    { comment: 'Value, ready unknown: no value (KEDA)', metricType: 'Value', ready: undefined, want: undefined },
    { comment: 'Value, 0 ready: no value (would divide by zero)', metricType: 'Value', ready: 0, want: undefined },
    { comment: 'Value, 2 ready: target × replicas / ready', metricType: 'Value', ready: 2, want: 10 },
    { comment: 'Value, 3 ready: not rounded', metricType: 'Value', ready: 3, want: 20 / 3 },
  ];
  test.each(rows)('$comment', ({ metricType, ready, want }) => {
    expect(fallbackValue(metricType, 5, 4, ready)).toBe(want);
  });

  test('the HPA computes the fallback replica count from the value', () => {
    // AverageValue: ceil(value / target); Value: ceil(value / target × ready).
    for (const replicas of [0, 1, 4, 7]) {
      expect(Math.ceil((fallbackValue('AverageValue', 5, replicas, undefined) ?? NaN) / 5)).toBe(replicas);
      for (const ready of [1, 2, 3]) {
        expect(Math.round(((fallbackValue('Value', 5, replicas, ready) ?? NaN) / 5) * ready)).toBe(replicas);
      }
    }
  });
});

describe('failure counting by time (pollingInterval 30 s, first failure at t = 1000)', () => {
  const interval = 30_000;
  const first = 1000;
  // elapsed since the first failed read → consecutive failures
  const counts: { comment: string; elapsed: number; count: number }[] = [
    { comment: 'the first failed read counts 1', elapsed: 0, count: 1 },
    { comment: 'just below one interval: still 1', elapsed: interval - 1, count: 1 },
    { comment: 'at one interval: 2', elapsed: interval, count: 2 },
    { comment: 'just above one interval: 2', elapsed: interval + 1, count: 2 },
    { comment: 'just below three intervals: 3', elapsed: 3 * interval - 1, count: 3 },
    { comment: 'at three intervals: 4', elapsed: 3 * interval, count: 4 },
    { comment: 'just above three intervals: 4', elapsed: 3 * interval + 1, count: 4 },
    { comment: 'a clock going back never counts below 1', elapsed: -5000, count: 1 },
  ];

  test.each(counts)('failureCount: $comment', ({ elapsed, count }) => {
    expect(failureCount(first, first + elapsed, interval)).toBe(count);
  });

  const rows = [0, 1, 3].flatMap((threshold) =>
    [0, interval - 1, interval, interval + 1, 3 * interval - 1, 3 * interval, 3 * interval + 1].map((elapsed) => ({
      comment: `threshold ${threshold}, ${elapsed} ms after the first failure`,
      threshold,
      elapsed,
      // KEDA: engaged when the count exceeds the threshold, i.e. from threshold × interval on.
      engaged: elapsed >= threshold * interval,
    })),
  );

  test.each(rows)('$comment: engaged = $engaged', ({ threshold, elapsed, engaged }) => {
    const now = first + elapsed;
    expect(fallbackEngaged(failureCount(first, now, interval), threshold)).toBe(engaged);
    expect(now >= fallbackEngagesAt(first, threshold, interval)).toBe(engaged);
  });

  test.each([
    { comment: 'threshold 0 engages on the first failed read', threshold: 0, at: first },
    { comment: 'threshold 1 engages one interval later', threshold: 1, at: first + interval },
    { comment: 'threshold 3 engages three intervals later (the 4th failed poll)', threshold: 3, at: first + 90_000 },
  ])('fallbackEngagesAt: $comment', ({ threshold, at }) => {
    expect(fallbackEngagesAt(first, threshold, interval)).toBe(at);
    // The count there is exactly threshold + 1, and one ms earlier exactly threshold.
    expect(failureCount(first, at, interval)).toBe(threshold + 1);
    if (threshold > 0) expect(failureCount(first, at - 1, interval)).toBe(threshold);
  });

  test.each([
    { comment: '0 failures never engage threshold 0', failures: 0, threshold: 0, engaged: false },
    { comment: '1 failure engages threshold 0', failures: 1, threshold: 0, engaged: true },
    { comment: '1 failure does not engage threshold 1 (strictly more)', failures: 1, threshold: 1, engaged: false },
    { comment: '2 failures engage threshold 1', failures: 2, threshold: 1, engaged: true },
    { comment: '3 failures do not engage threshold 3', failures: 3, threshold: 3, engaged: false },
    { comment: '4 failures engage threshold 3', failures: 4, threshold: 3, engaged: true },
  ])('fallbackEngaged: $comment', ({ failures, threshold, engaged }) => {
    expect(fallbackEngaged(failures, threshold)).toBe(engaged);
  });
});
