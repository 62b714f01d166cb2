// Proves hpa-algorithm.ts against kube-controller-manager's HPA controller (kubernetes v1.37
// pkg/controller/podautoscaler): rows marked "controller test" are taken from horizontal_test.go / replica_calculator
// tests with their inputs and expected outputs; the others follow the source line by line.
import { describe, expect, test } from 'vitest';
import {
  EMPTY_HISTORY,
  hpaSync,
  limitLegacy,
  limitWithBehavior,
  metricValueForReplicas,
  milliValue,
  replicasForMetric,
  replicasForMetrics,
  resolveBehavior,
  scaleDownLimit,
  scaleUpLimit,
  stabilizeLegacy,
  stabilizeWithBehavior,
  storeScaleEvent,
  tolerancesFor,
  type HpaBehaviorRules,
  type HpaHistory,
  type HpaMetricTarget,
  type HpaScalingRules,
  type Recommendation,
  type ScaleEvent,
} from '../../src/hpa-algorithm.ts';

const T = { scaleUp: 0.1, scaleDown: 0.1 };
const NOW = 1_000_000_000;
const ago = (s: number): number => NOW - s * 1000;

/** horizontal_test.go generateScalingRules(pods, podsPeriod, percent, percentPeriod, window), selectPolicy Max. */
function rules(
  pods: number,
  podsPeriod: number,
  percent: number,
  percentPeriod: number,
  window: number,
): HpaScalingRules {
  return {
    stabilizationWindowSeconds: window,
    selectPolicy: 'Max',
    policies: [
      ...(pods !== 0 ? [{ type: 'Pods' as const, value: pods, periodSeconds: podsPeriod }] : []),
      ...(percent !== 0 ? [{ type: 'Percent' as const, value: percent, periodSeconds: percentPeriod }] : []),
    ],
  };
}

/** horizontal_test.go generateEventsUniformDistribution: events spread over the last `period` seconds. */
function uniform(changes: number[], period: number): ScaleEvent[] {
  const segment = period / changes.length;
  return changes.map((change, i) => ({
    change,
    at: ago(Math.trunc(period - segment * (i + 1) + segment / 2)),
    outdated: false,
  }));
}

describe('replicasForMetric', () => {
  const avg = (target: number): HpaMetricTarget => ({ metricType: 'AverageValue', target });
  const val = (target: number): HpaMetricTarget => ({ metricType: 'Value', target });
  const rows: {
    comment: string;
    metric: HpaMetricTarget;
    value: number;
    spec: number;
    status?: number;
    ready?: number;
    want: number | undefined;
  }[] = [
    { comment: 'AverageValue: ceil(value / target)', metric: avg(10), value: 95, spec: 2, want: 10 },
    { comment: 'AverageValue: ratio 1.1 is within the tolerance, stays', metric: avg(10), value: 22, spec: 2, want: 2 },
    { comment: 'AverageValue: ratio 1.15 leaves the tolerance', metric: avg(10), value: 23, spec: 2, want: 3 },
    { comment: 'AverageValue: ratio 0.9 is within, stays', metric: avg(10), value: 18, spec: 2, want: 2 },
    { comment: 'AverageValue: ratio 0.85 scales down', metric: avg(10), value: 17, spec: 2, want: 2 },
    { comment: 'AverageValue: 0 scales to 0 (min applies later)', metric: avg(10), value: 0, spec: 3, want: 0 },
    {
      // controller test TestReplicaCalcScaleUpCMExternal (per pod): 8600 over target 2000 at 3 pods → 5
      comment: 'controller test: external per-pod 8600/2000 → 5',
      metric: avg(2),
      value: 8.6,
      spec: 3,
      want: 5,
    },
    {
      comment: 'AverageValue divides by status.replicas (pods that exist), not spec',
      metric: avg(10),
      value: 40,
      spec: 4,
      status: 2,
      want: 4,
    },
    {
      // controller test TestReplicaCalcScaleUpCMExternal (Value): 8600 over target 4400 at 3 ready pods → 6
      comment: 'controller test: external Value 8600/4400 at 3 ready → ceil(1.95 × 3) = 6',
      metric: val(4.4),
      value: 8.6,
      spec: 3,
      want: 6,
    },
    { comment: 'Value within tolerance: stays at spec', metric: val(10), value: 10.5, spec: 3, want: 3 },
    { comment: 'Value with no ready pods proposes 0', metric: val(10), value: 50, spec: 3, ready: 0, want: 0 },
    { comment: 'Value at spec 0: ceil(ratio)', metric: val(10), value: 25, spec: 0, status: 0, want: 3 },
    { comment: 'milli-units: 0.0011 reads as 2m, target 1m', metric: avg(0.001), value: 0.0011, spec: 1, want: 2 },
  ];
  test.each(rows)('$comment', ({ metric, value, spec, status, ready, want }) => {
    expect(
      replicasForMetric({
        metric,
        value,
        specReplicas: spec,
        statusReplicas: status ?? spec,
        readyReplicas: ready ?? spec,
        tolerances: T,
      }),
    ).toBe(want);
  });

  test('metricValueForReplicas is its inverse (the value a fallback serves)', () => {
    for (const replicas of [1, 2, 5, 17]) {
      for (const current of [1, 3, 10]) {
        const metric = avg(7.5);
        const value = metricValueForReplicas(metric, replicas, current) ?? NaN;
        const got = replicasForMetric({
          metric,
          value,
          specReplicas: current,
          statusReplicas: current,
          readyReplicas: current,
          tolerances: { scaleUp: 0, scaleDown: 0 },
        });
        expect(got).toBe(replicas);
        const v = metricValueForReplicas(val(7.5), replicas, current) ?? NaN;
        expect(
          replicasForMetric({
            metric: val(7.5),
            value: v,
            specReplicas: current,
            statusReplicas: current,
            readyReplicas: current,
            tolerances: { scaleUp: 0, scaleDown: 0 },
          }),
        ).toBe(replicas);
      }
    }
    expect(metricValueForReplicas(val(7.5), 3, 0)).toBeUndefined();
  });

  test('milliValue rounds up as Quantity.MilliValue, without float noise', () => {
    expect(milliValue(0.1 + 0.2)).toBe(300);
    expect(milliValue(1.0001)).toBe(1001);
    expect(milliValue(3)).toBe(3000);
  });
});

describe('replicasForMetrics (computeReplicasForMetrics)', () => {
  const metrics: HpaMetricTarget[] = [
    { metricType: 'AverageValue', target: 10 },
    { metricType: 'AverageValue', target: 5 },
  ];
  const counts = { specReplicas: 4, statusReplicas: 4, readyReplicas: 4, tolerances: T };
  const rows: { comment: string; values: (number | undefined)[]; want: number | undefined }[] = [
    { comment: 'the largest proposal wins (3 vs 8)', values: [30, 40], want: 8 },
    { comment: 'one failing, the other scales up: proceeds', values: [undefined, 40], want: 8 },
    // controller test TestNoScaleDownOneMetricInvalid: an invalid metric forbids a scale down
    {
      comment: 'controller test: one failing, the other would scale down: holds',
      values: [undefined, 5],
      want: undefined,
    },
    { comment: 'all failing: holds', values: [undefined, undefined], want: undefined },
  ];
  test.each(rows)('$comment', ({ values, want }) => {
    expect(replicasForMetrics(metrics, values, counts).replicas).toBe(want);
  });
});

describe('tolerancesFor', () => {
  test('the flag, overridden per direction by behavior.tolerance (a Quantity string)', () => {
    expect(tolerancesFor(undefined)).toEqual({ scaleUp: 0.1, scaleDown: 0.1 });
    expect(tolerancesFor(undefined, { tolerance: 0.2 })).toEqual({ scaleUp: 0.2, scaleDown: 0.2 });
    expect(tolerancesFor({ scaleUp: { tolerance: '0.05' } })).toEqual({ scaleUp: 0.05, scaleDown: 0.1 });
  });
});

describe('resolveBehavior (the API server defaults of a set behavior)', () => {
  test('scaleUp max(4 pods, 100 %) per 15 s, window 0; scaleDown 100 % per 15 s, the flag window', () => {
    expect(resolveBehavior({})).toEqual({
      scaleUp: {
        stabilizationWindowSeconds: 0,
        selectPolicy: 'Max',
        policies: [
          { type: 'Pods', value: 4, periodSeconds: 15 },
          { type: 'Percent', value: 100, periodSeconds: 15 },
        ],
      },
      scaleDown: {
        stabilizationWindowSeconds: 300,
        selectPolicy: 'Max',
        policies: [{ type: 'Percent', value: 100, periodSeconds: 15 }],
      },
    });
    expect(resolveBehavior({}, { downscaleStabilizationS: 5 }).scaleDown.stabilizationWindowSeconds).toBe(5);
    expect(resolveBehavior({ scaleDown: { stabilizationWindowSeconds: 30 } }).scaleDown.policies).toHaveLength(1);
  });
});

describe('stabilizeWithBehavior: controller test TestNormalizeDesiredReplicasWithBehavior', () => {
  const rows: {
    comment: string;
    recs: [number, number][];
    current: number;
    desired: number;
    want: number;
    wantRecs?: number[];
    up?: number;
    down?: number;
  }[] = [
    { comment: 'empty recommendations for scaling down', recs: [], current: 100, desired: 5, want: 5, wantRecs: [5] },
    {
      comment: 'simple scale down stabilization',
      recs: [
        [4, 120],
        [5, 60],
      ],
      current: 100,
      desired: 3,
      want: 5,
      wantRecs: [4, 5, 3],
      down: 180,
    },
    {
      comment: 'simple scale up stabilization',
      recs: [
        [4, 120],
        [5, 60],
      ],
      current: 1,
      desired: 7,
      want: 4,
      wantRecs: [4, 5, 7],
      up: 300,
    },
    {
      comment: 'no scale down stabilization',
      recs: [
        [1, 120],
        [2, 60],
      ],
      current: 100,
      desired: 3,
      want: 3,
      wantRecs: [1, 2, 3],
      up: 300,
    },
    {
      comment: 'no scale up stabilization',
      recs: [
        [4, 120],
        [5, 60],
      ],
      current: 1,
      desired: 3,
      want: 3,
      wantRecs: [4, 5, 3],
      down: 300,
    },
    {
      comment: 'no scale down stabilization, reuse recommendation element (the last old one)',
      recs: [
        [10, 600],
        [9, 540],
      ],
      current: 100,
      desired: 3,
      want: 3,
      wantRecs: [10, 3],
    },
    {
      comment: 'scale down stabilization, reuse one of obsolete recommendation element',
      recs: [
        [10, 600],
        [4, 60],
        [5, 120],
        [9, 540],
      ],
      current: 100,
      desired: 3,
      want: 5,
      wantRecs: [10, 4, 5, 3],
      down: 180,
    },
    {
      comment: 'scale up stabilization, reuse one of obsolete recommendation element',
      recs: [
        [10, 6000],
        [6, 60],
        [5, 120],
        [9, 180],
      ],
      current: 1,
      desired: 100,
      want: 5,
      wantRecs: [100, 6, 5, 9],
      up: 300,
      down: 300,
    },
    {
      comment: 'scale up and down stabilization, do not scale up when prenormalized rec goes down',
      recs: [
        [2, 6000],
        [3, 180],
      ],
      current: 2,
      desired: 1,
      want: 2,
      up: 300,
      down: 300,
    },
    {
      comment: 'scale up and down stabilization, do not scale down when prenormalized rec goes up',
      recs: [
        [2, 6000],
        [1, 180],
      ],
      current: 2,
      desired: 3,
      want: 2,
      up: 300,
      down: 300,
    },
  ];
  test.each(rows)('$comment', ({ recs, current, desired, want, wantRecs, up, down }) => {
    const behavior = resolveBehavior({
      scaleUp: { stabilizationWindowSeconds: up ?? 0 },
      scaleDown: { stabilizationWindowSeconds: down ?? 0 },
    });
    const history: Recommendation[] = recs.map(([replicas, s]) => ({ replicas, at: ago(s) }));
    const got = stabilizeWithBehavior(history, { desired, current, now: NOW, behavior });
    expect(got.replicas).toBe(want);
    if (wantRecs) expect(got.recommendations.map((r) => r.replicas)).toEqual(wantRecs);
  });
});

describe('stabilizeLegacy (no behavior: the downscale window)', () => {
  test('controller test TestStabilizeDownscale: 10 (10 min ago) has left the 5 min window, 4 (1 min ago) holds', () => {
    const got = stabilizeLegacy(
      [
        { replicas: 10, at: ago(600) },
        { replicas: 4, at: ago(60) },
      ],
      2,
      NOW,
      300,
    );
    expect(got.replicas).toBe(4);
    expect(got.recommendations.map((r) => r.replicas)).toEqual([2, 4]);
  });
});

describe('limitWithBehavior: controller test TestScalingWithRules', () => {
  const rows: {
    comment: string;
    current: number;
    desired: number;
    min: number;
    max: number;
    up?: HpaScalingRules;
    down?: HpaScalingRules;
    upEvents?: ScaleEvent[];
    downEvents?: ScaleEvent[];
    want: number;
    reason: string;
  }[] = [
    {
      comment: 'prenormalized desired replicas within range',
      current: 5,
      desired: 7,
      min: 3,
      max: 8,
      want: 7,
      reason: 'DesiredWithinRange',
    },
    {
      comment: 'prenormalized desired replicas < minReplicas',
      current: 3,
      desired: 1,
      min: 2,
      max: 8,
      want: 2,
      reason: 'TooFewReplicas',
    },
    {
      comment: 'maxReplicas is the limit because maxReplicas < scaleUpLimit',
      current: 20,
      desired: 1000,
      min: 1,
      max: 10,
      want: 10,
      reason: 'TooManyReplicas',
    },
    {
      comment: 'scaleUpLimit < maxReplicas with user policies',
      current: 3,
      desired: 1000,
      min: 1,
      max: 2000,
      up: rules(0, 0, 1, 60, 0),
      want: 4,
      reason: 'ScaleUpLimit',
    },
    {
      comment: 'scaleUp with default behavior',
      current: 10,
      desired: 50,
      min: 1,
      max: 1000,
      want: 20,
      reason: 'ScaleUpLimit',
    },
    {
      comment: 'scaleUp with pods policy larger than percent policy',
      current: 10,
      desired: 500,
      min: 1,
      max: 1000,
      up: rules(100, 60, 100, 60, 0),
      want: 110,
      reason: 'ScaleUpLimit',
    },
    {
      comment: 'scaleUp with percent policy larger than pods policy',
      current: 10,
      desired: 500,
      min: 1,
      max: 1000,
      up: rules(2, 60, 100, 60, 0),
      want: 20,
      reason: 'ScaleUpLimit',
    },
    {
      comment: 'scaleUp with pod policy limitation',
      current: 10,
      desired: 50,
      min: 1,
      max: 1000,
      up: rules(30, 60, 0, 0, 0),
      want: 40,
      reason: 'ScaleUpLimit',
    },
    {
      comment: 'scaleUp with percent policy limitation',
      current: 10,
      desired: 50,
      min: 1,
      max: 1000,
      up: rules(0, 0, 200, 60, 0),
      want: 30,
      reason: 'ScaleUpLimit',
    },
    {
      comment: 'scaleDown with percent policy larger than pod policy',
      current: 100,
      desired: 2,
      min: 1,
      max: 1000,
      down: rules(20, 60, 1, 60, 300),
      want: 80,
      reason: 'ScaleDownLimit',
    },
    {
      comment: 'scaleDown with pod policy larger than percent policy',
      current: 100,
      desired: 2,
      min: 1,
      max: 1000,
      down: rules(2, 60, 1, 60, 300),
      want: 98,
      reason: 'ScaleDownLimit',
    },
    {
      comment: 'scaleDown with spec MinReplicas limitation with large pod policy',
      current: 10,
      desired: 0,
      min: 1,
      max: 1000,
      down: rules(100, 60, 0, 0, 300),
      want: 1,
      reason: 'TooFewReplicas',
    },
    {
      comment: 'scaleDown with pod policy limitation',
      current: 10,
      desired: 2,
      min: 1,
      max: 1000,
      down: rules(5, 60, 0, 0, 300),
      want: 5,
      reason: 'ScaleDownLimit',
    },
    {
      comment: 'scaleDown with percent policy limitation',
      current: 10,
      desired: 5,
      min: 1,
      max: 1000,
      down: rules(0, 0, 50, 60, 300),
      want: 5,
      reason: 'DesiredWithinRange',
    },
    {
      comment: 'scaleUp, MaxReplicas limit, large pod policy and events (200 < 100 - 15 + 300)',
      current: 100,
      desired: 500,
      min: 1,
      max: 200,
      up: rules(300, 60, 0, 0, 0),
      upEvents: uniform([1, 5, 9], 120),
      want: 200,
      reason: 'TooManyReplicas',
    },
    {
      comment: 'scaleUp with a lot of recent scale up events: no further scale up',
      current: 100,
      desired: 500,
      min: 1,
      max: 1000,
      up: rules(5, 120, 0, 0, 0),
      upEvents: uniform([1, 5, 9], 120),
      want: 100,
      reason: 'ScaleUpLimit',
    },
    {
      comment: 'scaleUp with pod policy and previous scale up events (100 - 15 + 150)',
      current: 100,
      desired: 500,
      min: 1,
      max: 1000,
      up: rules(150, 120, 0, 0, 0),
      upEvents: uniform([1, 5, 9], 120),
      want: 235,
      reason: 'ScaleUpLimit',
    },
    {
      comment: 'scaleUp with percent policy and previous scale up events ((100 - 15) + 200 %)',
      current: 100,
      desired: 500,
      min: 1,
      max: 1000,
      up: rules(0, 0, 200, 120, 0),
      upEvents: uniform([1, 5, 9], 120),
      want: 255,
      reason: 'ScaleUpLimit',
    },
    {
      comment: 'scaleUp with percent policy and previous scale up and down events',
      current: 6,
      desired: 24,
      min: 1,
      max: 1000,
      up: rules(0, 0, 300, 300, 0),
      upEvents: uniform([4], 120),
      downEvents: uniform([2], 120),
      want: 16,
      reason: 'ScaleUpLimit',
    },
    {
      comment: 'scaleDown with default policy and previous events',
      current: 10,
      desired: 5,
      min: 1,
      max: 1000,
      downEvents: uniform([1, 5, 9], 120),
      want: 5,
      reason: 'DesiredWithinRange',
    },
    {
      comment: 'scaleDown with MinReplicas limit, large pod policy and previous events',
      current: 100,
      desired: 0,
      min: 1,
      max: 1000,
      down: rules(115, 120, 0, 0, 300),
      downEvents: uniform([1, 5, 9], 120),
      want: 1,
      reason: 'TooFewReplicas',
    },
    {
      comment: 'Disabled scale up holds',
      current: 3,
      desired: 9,
      min: 1,
      max: 10,
      up: { selectPolicy: 'Disabled' },
      want: 3,
      reason: 'ScaleUpLimit',
    },
  ];
  test.each(rows)('$comment', ({ current, desired, min, max, up, down, upEvents, downEvents, want, reason }) => {
    const behavior = resolveBehavior({ scaleUp: up, scaleDown: down });
    const got = limitWithBehavior(
      { desired, current, minReplicas: min, maxReplicas: max, behavior, now: NOW },
      { scaleUpEvents: upEvents ?? [], scaleDownEvents: downEvents ?? [] },
    );
    expect(got).toEqual({ replicas: want, reason });
  });

  test('Percent policies round as the controller’s float64 does', () => {
    const none = { scaleUpEvents: [], scaleDownEvents: [] };
    const up = resolveBehavior({ scaleUp: rules(0, 0, 12, 60, 0) }).scaleUp;
    // 25 × (1 + 0.12) is 28.000000000000004 in float64: math.Ceil makes it 29, as in the controller.
    expect(scaleUpLimit(25, none, up, NOW)).toBe(29);
    expect(scaleUpLimit(10, none, up, NOW)).toBe(12); // 11.2 → 12
    // Down: int32() truncates: 7 × 0.9 = 6.3 → 6.
    const down = resolveBehavior({ scaleDown: rules(0, 0, 10, 60, 0) }).scaleDown;
    expect(scaleDownLimit(7, none, down, NOW)).toBe(6);
  });

  test('controller tests TestCalculateScale{Up,Down}Limit…: selectPolicy Min', () => {
    const minRules = resolveBehavior({
      scaleUp: {
        selectPolicy: 'Min',
        policies: [
          { type: 'Pods', value: 2, periodSeconds: 60 },
          { type: 'Percent', value: 50, periodSeconds: 60 },
        ],
      },
    }).scaleUp;
    const none = { scaleUpEvents: [], scaleDownEvents: [] };
    expect(scaleUpLimit(1, none, minRules, NOW)).toBe(2);
    expect(scaleDownLimit(5, none, minRules, NOW)).toBe(3);
  });
});

describe('limitLegacy (no behavior): controller test TestConvertDesiredReplicasWithRules', () => {
  const rows: {
    comment: string;
    current: number;
    desired: number;
    min: number;
    max: number;
    want: number;
    reason: string;
  }[] = [
    { comment: 'within range', current: 5, desired: 7, min: 3, max: 8, want: 7, reason: 'DesiredWithinRange' },
    { comment: 'below min', current: 3, desired: 1, min: 2, max: 8, want: 2, reason: 'TooFewReplicas' },
    {
      comment: 'above max(2 × current, 4)',
      current: 3,
      desired: 1000,
      min: 1,
      max: 2000,
      want: 6,
      reason: 'ScaleUpLimit',
    },
    {
      comment: 'at 1 replica the limit is 4',
      current: 1,
      desired: 100,
      min: 1,
      max: 2000,
      want: 4,
      reason: 'ScaleUpLimit',
    },
    {
      comment: 'max below the rate limit',
      current: 20,
      desired: 1000,
      min: 1,
      max: 10,
      want: 10,
      reason: 'TooManyReplicas',
    },
  ];
  test.each(rows)('$comment', ({ current, desired, min, max, want, reason }) => {
    expect(limitLegacy(current, desired, min, max)).toEqual({ replicas: want, reason });
  });
});

describe('storeScaleEvent: controller test TestStoreScaleEvents', () => {
  test('replace one entry, use policies with different periods', () => {
    const behavior = resolveBehavior({ scaleUp: rules(10, 60, 100, 30, 0) });
    const history: HpaHistory = {
      ...EMPTY_HISTORY,
      scaleUpEvents: [
        { change: 8, at: ago(29), outdated: false },
        { change: 6, at: ago(59), outdated: false },
        { change: 7, at: ago(61), outdated: false },
        { change: 9, at: ago(61), outdated: false },
      ],
    };
    const got = storeScaleEvent(history, behavior, 10, 15, NOW);
    expect(got.scaleUpEvents.map((e) => [e.change, e.outdated])).toEqual([
      [8, false],
      [6, false],
      [7, true],
      [5, false],
    ]);
  });
  test('two entries, both actual: appended', () => {
    const behavior = resolveBehavior({ scaleDown: rules(10, 120, 100, 30, 0) });
    const history: HpaHistory = {
      ...EMPTY_HISTORY,
      scaleDownEvents: [
        { change: 7, at: ago(58), outdated: false },
        { change: 6, at: ago(59), outdated: false },
      ],
    };
    expect(storeScaleEvent(history, behavior, 10, 5, NOW).scaleDownEvents.map((e) => e.change)).toEqual([7, 6, 5]);
  });
});

describe('hpaSync (one reconcileAutoscaler)', () => {
  const metrics: HpaMetricTarget[] = [{ metricType: 'AverageValue', target: 10 }];
  const hpa = (behavior?: HpaBehaviorRules) => ({ minReplicas: 1, maxReplicas: 20, metrics, behavior });

  test('at 0 replicas scaling is disabled (the scale-from-zero rule: sluice activates, not the HPA)', () => {
    const got = hpaSync({ hpa: hpa(), currentReplicas: 0, values: [500], now: NOW, history: EMPTY_HISTORY });
    expect(got.rescale).toBe(false);
    expect(got.replicas).toBe(0);
    expect(got.reason).toMatch(/disabled/);
  });

  test('above max: to max without reading metrics; below min: to min', () => {
    expect(hpaSync({ hpa: hpa(), currentReplicas: 25, values: [0], now: NOW, history: EMPTY_HISTORY }).replicas).toBe(
      20,
    );
    const min3 = { ...hpa(), minReplicas: 3 };
    expect(hpaSync({ hpa: min3, currentReplicas: 1, values: [500], now: NOW, history: EMPTY_HISTORY }).replicas).toBe(
      3,
    );
  });

  test('no behavior: up at most max(2 × current, 4) per sync; down waits out the 300 s window', () => {
    let history = EMPTY_HISTORY;
    let current = 1;
    const seen: number[] = [];
    for (const [s, value] of [
      [0, 150],
      [15, 150],
      [30, 150],
      [45, 10],
      [300, 10],
      [346, 10],
    ] as const) {
      const got = hpaSync({ hpa: hpa(), currentReplicas: current, values: [value], now: NOW + s * 1000, history });
      history = got.history;
      current = got.replicas;
      seen.push(current);
    }
    // 1 → 4 (the floor of 4), → 8 (2×), → 15 (ceil 150/10); value falls: 15 held within 300 s of the last 15
    expect(seen).toEqual([4, 8, 15, 15, 15, 1]);
  });

  test('behavior: scaleUp 100 % per 5 s with window 0, scaleDown window 30 s', () => {
    const behavior: HpaBehaviorRules = {
      scaleUp: { stabilizationWindowSeconds: 0, policies: [{ type: 'Percent', value: 100, periodSeconds: 5 }] },
      scaleDown: { stabilizationWindowSeconds: 30 },
    };
    let history = EMPTY_HISTORY;
    let current = 1;
    const seen: number[] = [];
    for (const [s, value] of [
      [0, 100],
      [1, 100],
      [5, 100],
      [10, 100],
      [15, 100],
      [20, 5],
      [40, 5],
      [51, 5],
    ] as const) {
      const got = hpaSync({
        hpa: hpa(behavior),
        currentReplicas: current,
        values: [value],
        now: NOW + s * 1000,
        history,
      });
      history = got.history;
      current = got.replicas;
      seen.push(current);
    }
    // 1→2; at 1 s the 5 s period still holds the +1 (start 1, limit 2); 5 s: the event is exactly 5 s old, outside
    // (strictly after the cutoff counts): 2→4; 4→8; 8→10 (ceil 100/10); down at 20 s held by the 30 s window of 10s,
    // still at 40 s (the 10 at 15 s is 25 s old); at 51 s all 10s are older than 30 s: 1
    expect(seen).toEqual([2, 2, 4, 8, 10, 10, 10, 1]);
  });

  test('a failing metric holds (never read as 0)', () => {
    const got = hpaSync({ hpa: hpa(), currentReplicas: 5, values: [undefined], now: NOW, history: EMPTY_HISTORY });
    expect(got).toMatchObject({ replicas: 5, rescale: false });
    expect(got.reason).toMatch(/invalid metrics/);
  });
});
