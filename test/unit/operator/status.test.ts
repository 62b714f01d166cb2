// Proves the status functions: what runningStatus says for each situation a running object can be in (conditions with
// KEDA's reasons and sluice's detail, health, activity, the fields kept from the previous status), what
// checkFailedStatus keeps for an invalid versus a transient failure, and the patch/compare helpers.
import { describe, expect, test } from 'vitest';
import type { ExecutorSnapshot } from '../../../src/operator/executor.ts';
import type { PollerSummary, TriggerState } from '../../../src/operator/poller.ts';
import { decideScale, type ScaleInput } from '../../../src/operator/scale-decision.ts';
import {
  parseScaledObject,
  type Condition,
  type ScaledObject,
  type ScaledObjectStatus,
} from '../../../src/operator/scaled-object.ts';
import {
  checkFailedStatus,
  health,
  isNewFailure,
  pausedCondition,
  pausedStatus,
  runningStatus,
  sameStatus,
  statusPatch,
  wasReady,
  type RuntimeView,
} from '../../../src/operator/status.ts';
import { pollerSummary } from '../../support/operator.ts';

const AT = new Date('2026-06-01T12:00:00.500Z');
const EARLIER = '2026-06-01T11:00:00Z';

function scaledObject(spec: Record<string, unknown> = {}): ScaledObject {
  return parseScaledObject({
    apiVersion: 'sluice.dev/v1alpha1',
    kind: 'ScaledObject',
    metadata: { name: 'orders', namespace: 'shop', uid: 'uid-1', generation: 2 },
    spec: {
      scaleTargetRef: { name: 'orders' },
      triggers: [
        {
          type: 'rabbitmq',
          authenticationRef: { name: 'rabbitmq-auth' },
          metadata: { queueName: 'orders', mode: 'QueueLength', value: '20' },
        },
      ],
      ...spec,
    },
  });
}

const TWO_TRIGGERS = {
  triggers: [
    { type: 'rabbitmq', authenticationRef: { name: 'rabbitmq-auth' }, metadata: { queueName: 'orders', value: '20' } },
    { type: 'prometheus', metadata: { serverAddress: 'http://prom:9090', query: 'up', threshold: '1' } },
  ],
};
const FALLBACK = { fallback: { failureThreshold: 3, replicas: 2 } };

function trigger(fields: Partial<TriggerState> & Pick<TriggerState, 'metricName'>): TriggerState {
  return {
    index: 0,
    type: 'rabbitmq',
    sourceKey: 'source',
    errors: 0,
    value: 0,
    active: false,
    error: undefined,
    readAt: AT.getTime(),
    failingSince: undefined,
    failures: 0,
    fallbackReplicas: undefined,
    ...fields,
  };
}
const ok = (active: boolean, metricName = 's0-rabbitmq-orders') =>
  trigger({ metricName, value: active ? 30 : 0, active });
const failing = (error: string, metricName = 's0-rabbitmq-orders', more: Partial<TriggerState> = {}) =>
  trigger({ metricName, value: undefined, error, failingSince: AT.getTime() - 1000, failures: 1, ...more });

const decisionBase: ScaleInput = {
  currentReplicas: 2,
  minReplicaCount: 0,
  maxReplicaCount: 10,
  active: false,
  anyError: false,
  lastActiveTime: new Date(AT.getTime() - 10_000),
  createdAt: new Date(AT.getTime() - 3_600_000),
  cooldownPeriodS: 300,
  initialCooldownPeriodS: 0,
  now: AT,
};

function executor(fields: Partial<ExecutorSnapshot> = {}, decision: Partial<ScaleInput> = {}): ExecutorSnapshot {
  return {
    evaluations: 1,
    evaluatedAt: AT,
    currentReplicas: 2,
    resource: 'deployments',
    decision: decideScale({ ...decisionBase, ...decision }),
    scaleError: undefined,
    stuckSince: undefined,
    ...fields,
  };
}

function view(poller: Partial<PollerSummary>, exec: ExecutorSnapshot, more: Partial<RuntimeView> = {}): RuntimeView {
  return {
    poller: pollerSummary(poller),
    executor: exec,
    lastActiveTime: new Date('2026-06-01T11:59:58.123Z'),
    firstSeenReplicas: 2,
    ...more,
  };
}

type Expected = Pick<Condition, 'status' | 'reason'> & { message?: string | RegExp };

const conditionOf = (status: ScaledObjectStatus, type: string) => status.conditions?.find((c) => c.type === type);

describe('runningStatus', () => {
  const rows: {
    comment: string;
    so?: ScaledObject;
    previous?: ScaledObjectStatus;
    runtime: RuntimeView | undefined;
    conditions: Record<string, Expected>;
    fields?: Partial<ScaledObjectStatus>;
    absent?: (keyof ScaledObjectStatus)[];
    /** runningStatus's options beyond the object, the previous status and the runtime. */
    options?: {
      pausedScale?: boolean;
      composite?: boolean;
      resourceMetricNames?: string[];
      originalReplicaCount?: number;
    };
  }[] = [
    {
      comment: 'no runtime yet: Ready, Active unknown, the static fields',
      runtime: undefined,
      conditions: {
        Ready: { status: 'True', reason: 'ScaledObjectReady' },
        Active: { status: 'Unknown', reason: 'UnknownState' },
        Fallback: { status: 'False', reason: 'NoFallbackFound' },
        Paused: { status: 'False' },
      },
      fields: {
        scaleTargetKind: 'apps/v1.Deployment',
        hpaName: 'sluice-hpa-orders',
        externalMetricNames: ['s0-rabbitmq-orders'],
        triggersTypes: 'rabbitmq',
        authenticationsTypes: 'rabbitmq-auth',
        observedGeneration: 2,
      },
      absent: ['scaleTargetGVKR', 'triggersActivity', 'health', 'lastActiveTime', 'originalReplicaCount'],
    },
    {
      comment: 'active: Active True, activity per metric, GVKR, lastActiveTime in whole seconds',
      runtime: view(
        { active: true, activeMetrics: ['s0-rabbitmq-orders'], triggers: [ok(true)] },
        executor({}, { active: true }),
      ),
      conditions: {
        Ready: { status: 'True', reason: 'ScaledObjectReady' },
        Active: { status: 'True', reason: 'ScalerActive', message: 'Scaling is performed because triggers are active' },
      },
      fields: {
        scaleTargetGVKR: { group: 'apps', version: 'v1', kind: 'Deployment', resource: 'deployments' },
        triggersActivity: { 's0-rabbitmq-orders': { isActive: true } },
        lastActiveTime: '2026-06-01T11:59:58Z',
        originalReplicaCount: 2,
      },
      absent: ['health'],
    },
    {
      comment: 'cooling down: Active False ScalerCooldown',
      runtime: view({ triggers: [ok(false)] }, executor()),
      conditions: {
        Ready: { status: 'True', reason: 'ScaledObjectReady' },
        Active: { status: 'False', reason: 'ScalerCooldown' },
      },
      fields: { triggersActivity: { 's0-rabbitmq-orders': { isActive: false } } },
    },
    {
      comment: 'every trigger failing: TriggerError naming the failing metric and why',
      runtime: view(
        { anyError: true, allError: true, triggers: [failing('connect ECONNREFUSED 10.0.0.1:5672')] },
        executor({}, { anyError: true, allError: true }),
      ),
      conditions: {
        Ready: {
          status: 'False',
          reason: 'TriggerError',
          message:
            'Triggers defined in ScaledObject are not working correctly: s0-rabbitmq-orders: connect ECONNREFUSED 10.0.0.1:5672',
        },
        Active: { status: 'False', reason: 'ScalerNotActive' },
      },
    },
    {
      comment: 'one of two triggers failing while active: PartialTriggerError naming only the failing one',
      so: scaledObject(TWO_TRIGGERS),
      runtime: view(
        {
          active: true,
          anyError: true,
          activeMetrics: ['s0-rabbitmq-orders'],
          triggers: [ok(true), failing('HTTP 503', 's1-prometheus')],
        },
        executor({}, { active: true, anyError: true }),
      ),
      conditions: {
        Ready: {
          status: 'Unknown',
          reason: 'PartialTriggerError',
          message: 'Some triggers defined in ScaledObject are not working correctly: s1-prometheus: HTTP 503',
        },
      },
      fields: {
        externalMetricNames: ['s0-rabbitmq-orders', 's1-prometheus'],
        triggersTypes: 'rabbitmq,prometheus',
        triggersActivity: { 's0-rabbitmq-orders': { isActive: true }, 's1-prometheus': { isActive: false } },
      },
    },
    {
      comment: 'falling back: Fallback True, Ready True, health Failing with threshold + 1 failures, active',
      so: scaledObject(FALLBACK),
      runtime: view(
        {
          active: true,
          fallbackActive: true,
          fallbackReplicas: 2,
          activeMetrics: ['s0-rabbitmq-orders'],
          triggers: [failing('connect ECONNREFUSED', 's0-rabbitmq-orders', { failures: 4, fallbackReplicas: 2 })],
        },
        executor({}, { active: true, fallback: { replicas: 2 }, fallbackReplicas: 2 }),
      ),
      conditions: {
        Ready: { status: 'True', reason: 'ScaledObjectReady' },
        Active: { status: 'True', reason: 'ScalerActive' },
        Fallback: { status: 'True', reason: 'FallbackExists' },
      },
      fields: {
        health: { 's0-rabbitmq-orders': { numberOfFailures: 4, status: 'Failing' } },
        triggersActivity: { 's0-rabbitmq-orders': { isActive: true } },
      },
    },
    {
      comment: 'fallback configured, trigger failing but not falling back yet: Failing with 1, Fallback False',
      so: scaledObject(FALLBACK),
      runtime: view(
        {
          anyError: true,
          allError: true,
          triggers: [failing('connect ECONNREFUSED', 's0-rabbitmq-orders', { failures: 3 })],
        },
        executor({}, { anyError: true, fallback: { replicas: 0 } }),
      ),
      conditions: {
        // With a fallback configured, errors keep Ready True (the HPA will be served the fallback).
        Ready: { status: 'True', reason: 'ScaledObjectReady' },
        Fallback: { status: 'False', reason: 'NoFallbackFound' },
      },
      fields: { health: { 's0-rabbitmq-orders': { numberOfFailures: 1, status: 'Failing' } } },
    },
    {
      comment: 'fallback configured, all well: health Happy',
      so: scaledObject(FALLBACK),
      runtime: view({ triggers: [ok(false)] }, executor()),
      conditions: { Fallback: { status: 'False', reason: 'NoFallbackFound' } },
      fields: { health: { 's0-rabbitmq-orders': { numberOfFailures: 0, status: 'Happy' } } },
    },
    {
      comment: 'the scale cannot be read: ErrorGettingCurrentReplicas with the error',
      runtime: view(
        { triggers: [ok(true)] },
        executor({
          decision: undefined,
          currentReplicas: undefined,
          scaleError: 'the API server answered 403: forbidden',
        }),
      ),
      conditions: {
        Ready: {
          status: 'False',
          reason: 'ErrorGettingCurrentReplicas',
          message: 'cannot read or write the replicas of Deployment orders: the API server answered 403: forbidden',
        },
      },
    },
    {
      comment: 'a call hanging on the API server: ErrorGettingCurrentReplicas since when (before any scale error)',
      runtime: view(
        { triggers: [ok(true)] },
        executor({ stuckSince: new Date('2026-06-01T11:59:30.999Z'), scaleError: 'older error' }),
      ),
      conditions: {
        Ready: {
          status: 'False',
          reason: 'ErrorGettingCurrentReplicas',
          message: 'a call to the API server for Deployment orders has not returned since 2026-06-01T11:59:30Z',
        },
      },
    },
    {
      comment:
        'originalReplicaCount, lastActiveTime, GVKR and activity are kept from the previous status; Paused=True without a pause annotation becomes Unpaused',
      previous: {
        originalReplicaCount: 5,
        lastActiveTime: EARLIER,
        scaleTargetGVKR: { group: 'apps', version: 'v1', kind: 'Deployment', resource: 'deployments' },
        triggersActivity: { 's0-rabbitmq-orders': { isActive: true } },
        conditions: [
          { type: 'Paused', status: 'True', reason: 'ScaledObjectPaused', lastTransitionTime: EARLIER },
          { type: 'Active', status: 'True', reason: 'ScalerActive', lastTransitionTime: EARLIER },
        ],
      },
      runtime: view(
        { ready: false, triggers: [trigger({ metricName: 's0-rabbitmq-orders', readAt: undefined })] },
        executor({ resource: undefined, decision: undefined }),
        { lastActiveTime: undefined, firstSeenReplicas: 2 },
      ),
      conditions: {
        Paused: {
          status: 'False',
          reason: 'ScaledObjectUnpaused',
          message: 'pause annotation removed for ScaledObject',
        },
        Active: { status: 'True', reason: 'ScalerActive' },
      },
      // The count reconcile read does not replace the one already recorded.
      options: { originalReplicaCount: 9 },
      fields: {
        originalReplicaCount: 5,
        lastActiveTime: EARLIER,
        scaleTargetGVKR: { group: 'apps', version: 'v1', kind: 'Deployment', resource: 'deployments' },
        triggersActivity: { 's0-rabbitmq-orders': { isActive: true } },
      },
    },
    {
      comment: 'paused-scale-in/out in effect: Paused=True ScaledObjectPaused while the object runs',
      runtime: view({ triggers: [ok(false)] }, executor()),
      options: { pausedScale: true },
      conditions: {
        Ready: { status: 'True', reason: 'ScaledObjectReady' },
        Paused: { status: 'True', reason: 'ScaledObjectPaused', message: 'ScaledObject is paused' },
      },
    },
    {
      comment: 'still paused (previous Paused=True): stays True',
      previous: { conditions: [{ type: 'Paused', status: 'True', reason: 'ScaledObjectPaused' }] },
      runtime: view({ triggers: [ok(false)] }, executor()),
      options: { pausedScale: true },
      conditions: { Paused: { status: 'True', reason: 'ScaledObjectPaused' } },
    },
    {
      comment: 'a previous Unpaused condition is kept as it is (not reset to the initial reason-less False)',
      previous: { conditions: [{ type: 'Paused', status: 'False', reason: 'ScaledObjectUnpaused' }] },
      runtime: view({ triggers: [ok(false)] }, executor()),
      conditions: { Paused: { status: 'False', reason: 'ScaledObjectUnpaused' } },
    },
    {
      comment: 'originalReplicaCount: the count reconcile read comes before the executor first-seen one',
      runtime: view({ triggers: [ok(false)] }, executor(), { firstSeenReplicas: 2 }),
      options: { originalReplicaCount: 7 },
      conditions: {},
      fields: { originalReplicaCount: 7 },
    },
    {
      comment: 'cpu/memory triggers: resourceMetricNames; scalingModifiers: compositeScalerName composite-metric',
      runtime: view({ triggers: [ok(false)] }, executor()),
      options: { resourceMetricNames: ['cpu', 'memory'], composite: true },
      conditions: {},
      fields: { resourceMetricNames: ['cpu', 'memory'], compositeScalerName: 'composite-metric' },
    },
    {
      comment: 'no cpu/memory triggers and no scalingModifiers: neither field',
      runtime: view({ triggers: [ok(false)] }, executor()),
      conditions: {},
      absent: ['resourceMetricNames', 'compositeScalerName', 'pausedReplicaCount'],
    },
    {
      comment: 'a custom HPA name and a target of another group',
      so: scaledObject({
        scaleTargetRef: { name: 'db', apiVersion: 'example.com/v2beta1', kind: 'Thing' },
        advanced: { horizontalPodAutoscalerConfig: { name: 'orders-hpa' } },
      }),
      runtime: view({ triggers: [ok(false)] }, executor({ resource: 'things' })),
      conditions: {},
      fields: {
        hpaName: 'orders-hpa',
        scaleTargetKind: 'example.com/v2beta1.Thing',
        scaleTargetGVKR: { group: 'example.com', version: 'v2beta1', kind: 'Thing', resource: 'things' },
      },
    },
  ];

  test.each(rows)('$comment', ({ so, previous, runtime, conditions, fields, absent, options }) => {
    const status = runningStatus({
      ...options,
      so: so ?? scaledObject(),
      previous: previous ?? {},
      runtime,
      metricNames: (so ?? scaledObject()).spec.triggers.map((t, i) =>
        t.type === 'rabbitmq' ? `s${i}-rabbitmq-orders` : `s${i}-${t.type}`,
      ),
      at: AT,
    });
    for (const [type, want] of Object.entries(conditions)) {
      const got = conditionOf(status, type);
      expect(got, type).toMatchObject({
        status: want.status,
        ...(want.reason === undefined ? {} : { reason: want.reason }),
      });
      if (typeof want.message === 'string') expect(got?.message, type).toBe(want.message);
    }
    expect(status.conditions?.map((c) => c.type).sort()).toStrictEqual(['Active', 'Fallback', 'Paused', 'Ready']);
    if (fields) expect(status).toMatchObject(fields);
    for (const field of absent ?? []) expect(status, field).not.toHaveProperty(field);
  });

  test('a condition that keeps its status keeps its lastTransitionTime; one that changes gets `at`', () => {
    const status = runningStatus({
      so: scaledObject(),
      previous: {
        conditions: [
          { type: 'Ready', status: 'True', reason: 'ScaledObjectReady', lastTransitionTime: EARLIER },
          { type: 'Active', status: 'False', reason: 'ScalerNotActive', lastTransitionTime: EARLIER },
        ],
      },
      runtime: view({ active: true, triggers: [ok(true)] }, executor({}, { active: true })),
      metricNames: ['s0-rabbitmq-orders'],
      at: AT,
    });
    expect(conditionOf(status, 'Ready')?.lastTransitionTime).toBe(EARLIER);
    expect(conditionOf(status, 'Active')?.lastTransitionTime).toBe('2026-06-01T12:00:00Z');
  });
});

describe('status.triggersThresholds', () => {
  test('each external trigger target and activation as Quantities, keyed by metric name', () => {
    const status = runningStatus({
      so: scaledObject(),
      previous: {},
      runtime: undefined,
      metricNames: ['s0-rabbitmq-orders'],
      thresholds: [{ metricName: 's0-rabbitmq-orders', metricType: 'AverageValue', target: 0.5, activation: 2 }],
      at: AT,
    });
    expect(status.triggersThresholds).toStrictEqual({
      's0-rabbitmq-orders': { metricType: 'AverageValue', target: '500m', activation: '2' },
    });
  });

  test('no thresholds (resource triggers only): no field', () => {
    const status = runningStatus({ so: scaledObject(), previous: {}, runtime: undefined, metricNames: [], at: AT });
    expect(status).not.toHaveProperty('triggersThresholds');
  });
});

describe('pausedCondition', () => {
  const paused = { type: 'Paused', status: 'True', reason: 'ScaledObjectPaused', lastTransitionTime: EARLIER } as const;
  const unpaused = {
    type: 'Paused',
    status: 'False',
    reason: 'ScaledObjectUnpaused',
    lastTransitionTime: EARLIER,
  } as const;
  const initial = { type: 'Paused', status: 'False', lastTransitionTime: EARLIER } as const;
  const rows: { comment: string; previous: Condition | undefined; paused: boolean; want: Record<string, unknown> }[] = [
    {
      comment: 'never paused, not paused: KEDA initial Paused=False without a reason',
      previous: undefined,
      paused: false,
      want: { type: 'Paused', status: 'False' },
    },
    {
      comment: 'initial False, not paused: kept as it is',
      previous: initial,
      paused: false,
      want: { type: 'Paused', status: 'False', lastTransitionTime: EARLIER },
    },
    {
      comment: 'never paused, now paused: True ScaledObjectPaused',
      previous: undefined,
      paused: true,
      want: { type: 'Paused', status: 'True', reason: 'ScaledObjectPaused', message: 'ScaledObject is paused' },
    },
    {
      comment: 'initial False, now paused: True',
      previous: initial,
      paused: true,
      want: { status: 'True', reason: 'ScaledObjectPaused' },
    },
    {
      comment: 'paused, still paused: True',
      previous: paused,
      paused: true,
      want: { status: 'True', reason: 'ScaledObjectPaused' },
    },
    {
      comment: 'paused, annotation removed: False ScaledObjectUnpaused (KEDA reason and message)',
      previous: paused,
      paused: false,
      want: {
        type: 'Paused',
        status: 'False',
        reason: 'ScaledObjectUnpaused',
        message: 'pause annotation removed for ScaledObject',
      },
    },
    {
      comment: 'unpaused, still not paused: the Unpaused condition stays (no flip back to the initial one)',
      previous: unpaused,
      paused: false,
      want: { status: 'False', reason: 'ScaledObjectUnpaused', lastTransitionTime: EARLIER },
    },
    {
      comment: 'unpaused, paused again: True',
      previous: unpaused,
      paused: true,
      want: { status: 'True', reason: 'ScaledObjectPaused' },
    },
  ];
  test.each(rows)('$comment', ({ previous, paused: isPaused, want }) => {
    const got = pausedCondition({ conditions: previous === undefined ? [] : [previous] }, isPaused);
    expect(got).toMatchObject(want);
    if (want['reason'] === undefined) expect(got).not.toHaveProperty('reason');
  });
});

describe('pausedStatus', () => {
  const running: ScaledObjectStatus = {
    scaleTargetKind: 'apps/v1.Deployment',
    originalReplicaCount: 3,
    lastActiveTime: EARLIER,
    hpaName: 'sluice-hpa-orders',
    externalMetricNames: ['s0-rabbitmq-orders'],
    triggersTypes: 'rabbitmq',
    triggersActivity: { 's0-rabbitmq-orders': { isActive: true } },
    observedGeneration: 1,
    conditions: [
      { type: 'Ready', status: 'True', reason: 'ScaledObjectReady', lastTransitionTime: EARLIER },
      { type: 'Active', status: 'True', reason: 'ScalerActive', lastTransitionTime: EARLIER },
      { type: 'Fallback', status: 'False', reason: 'NoFallbackFound', lastTransitionTime: EARLIER },
      { type: 'Paused', status: 'False', lastTransitionTime: EARLIER },
    ],
  };
  const rows: {
    comment: string;
    previous: ScaledObjectStatus;
    pausedReplicas: number | undefined;
    originalReplicaCount: number | undefined;
    want: Partial<ScaledObjectStatus>;
    absent: (keyof ScaledObjectStatus)[];
  }[] = [
    {
      comment: 'paused-replicas 2 on a running object: pausedReplicaCount 2, no hpaName, the rest kept',
      previous: running,
      pausedReplicas: 2,
      originalReplicaCount: 5,
      want: {
        pausedReplicaCount: 2,
        originalReplicaCount: 3,
        lastActiveTime: EARLIER,
        externalMetricNames: ['s0-rabbitmq-orders'],
        triggersActivity: { 's0-rabbitmq-orders': { isActive: true } },
        observedGeneration: 2,
      },
      absent: ['hpaName'],
    },
    {
      comment: 'paused-replicas "0" is a real 0',
      previous: running,
      pausedReplicas: 0,
      originalReplicaCount: 5,
      want: { pausedReplicaCount: 0 },
      absent: ['hpaName'],
    },
    {
      comment: 'paused (no count): no pausedReplicaCount, and a previous one is dropped',
      previous: { ...running, pausedReplicaCount: 4 },
      pausedReplicas: undefined,
      originalReplicaCount: 5,
      want: { originalReplicaCount: 3 },
      absent: ['hpaName', 'pausedReplicaCount'],
    },
    {
      comment: 'a new object paused from the start: originalReplicaCount is the count read',
      previous: {},
      pausedReplicas: 1,
      originalReplicaCount: 5,
      want: { originalReplicaCount: 5, pausedReplicaCount: 1, observedGeneration: 2 },
      absent: ['hpaName', 'externalMetricNames'],
    },
    {
      comment: 'count unknown and none recorded: no originalReplicaCount',
      previous: {},
      pausedReplicas: undefined,
      originalReplicaCount: undefined,
      want: {},
      absent: ['originalReplicaCount', 'pausedReplicaCount'],
    },
  ];
  test.each(rows)('$comment', ({ previous, pausedReplicas, originalReplicaCount, want, absent }) => {
    const status = pausedStatus({ so: scaledObject(), previous, pausedReplicas, originalReplicaCount, at: AT });
    expect(status).toMatchObject(want);
    for (const field of absent) expect(status, field).not.toHaveProperty(field);
    // Ready stays True, Paused=True; the other conditions as they were.
    expect(conditionOf(status, 'Ready')).toMatchObject({ status: 'True', reason: 'ScaledObjectReady' });
    expect(conditionOf(status, 'Paused')).toMatchObject({ status: 'True', reason: 'ScaledObjectPaused' });
    expect(conditionOf(status, 'Active')).toStrictEqual(conditionOf(previous, 'Active'));
  });

  test('the transition time: Paused gets `at`, an unchanged Ready keeps its own', () => {
    const status = pausedStatus({
      so: scaledObject(),
      previous: running,
      pausedReplicas: 2,
      originalReplicaCount: 3,
      at: AT,
    });
    expect(conditionOf(status, 'Paused')?.lastTransitionTime).toBe('2026-06-01T12:00:00Z');
    expect(conditionOf(status, 'Ready')?.lastTransitionTime).toBe(EARLIER);
  });
});

describe('checkFailedStatus', () => {
  const running: ScaledObjectStatus = {
    scaleTargetKind: 'apps/v1.Deployment',
    scaleTargetGVKR: { group: 'apps', version: 'v1', kind: 'Deployment', resource: 'deployments' },
    originalReplicaCount: 3,
    lastActiveTime: EARLIER,
    hpaName: 'sluice-hpa-orders',
    externalMetricNames: ['s0-rabbitmq-orders'],
    triggersTypes: 'rabbitmq',
    triggersActivity: { 's0-rabbitmq-orders': { isActive: true } },
    health: { 's0-rabbitmq-orders': { numberOfFailures: 0, status: 'Happy' } },
    observedGeneration: 1,
    conditions: [
      { type: 'Ready', status: 'True', reason: 'ScaledObjectReady', lastTransitionTime: EARLIER },
      { type: 'Active', status: 'True', reason: 'ScalerActive', lastTransitionTime: EARLIER },
      { type: 'Fallback', status: 'True', reason: 'FallbackExists', lastTransitionTime: EARLIER },
      { type: 'Paused', status: 'False', lastTransitionTime: EARLIER },
    ],
  };
  const MESSAGE = 'spec.maxReplicaCount: must be >= 1, got 0';

  test('invalid: Ready False naming the field, Active Unknown, Fallback False; only lasting fields kept', () => {
    const status = checkFailedStatus(running, MESSAGE, AT, 'invalid', 2);
    expect(status).toStrictEqual({
      originalReplicaCount: 3,
      lastActiveTime: EARLIER,
      observedGeneration: 2,
      conditions: [
        {
          type: 'Ready',
          status: 'False',
          reason: 'ScaledObjectCheckFailed',
          message: MESSAGE,
          lastTransitionTime: '2026-06-01T12:00:00Z',
        },
        {
          type: 'Active',
          status: 'Unknown',
          reason: 'UnknownState',
          message: 'ScaledObject check failed',
          lastTransitionTime: '2026-06-01T12:00:00Z',
        },
        {
          type: 'Fallback',
          status: 'False',
          reason: 'NoFallbackFound',
          message: 'No fallbacks are active on this scaled object',
          lastTransitionTime: '2026-06-01T12:00:00Z',
        },
        { type: 'Paused', status: 'False', lastTransitionTime: EARLIER },
      ],
    });
  });

  test('transient: Ready False and Active Unknown, everything else as it was', () => {
    const status = checkFailedStatus(
      running,
      'spec.triggers[0].authenticationRef: Secret shop/creds not found',
      AT,
      'transient',
      2,
    );
    const { conditions, ...rest } = status;
    const { conditions: _previous, ...previousRest } = running;
    expect(rest).toStrictEqual(previousRest);
    expect(conditions?.map((c) => [c.type, c.status, c.reason])).toStrictEqual([
      ['Ready', 'False', 'ScaledObjectCheckFailed'],
      ['Active', 'Unknown', 'UnknownState'],
      ['Fallback', 'True', 'FallbackExists'],
      ['Paused', 'False', undefined],
    ]);
  });

  test('invalid from an empty status: the four conditions, no generation when none is given', () => {
    const status = checkFailedStatus({}, MESSAGE, AT, 'invalid');
    expect(status.conditions?.map((c) => c.type)).toStrictEqual(['Ready', 'Active', 'Fallback', 'Paused']);
    expect(status).not.toHaveProperty('observedGeneration');
  });
});

describe('health', () => {
  const rows: { comment: string; trigger: TriggerState; want: { numberOfFailures: number; status: string } }[] = [
    { comment: 'healthy', trigger: ok(true), want: { numberOfFailures: 0, status: 'Happy' } },
    {
      comment: 'failing, not falling back: 1 (the moment it started failing)',
      trigger: failing('x', 's0-rabbitmq-orders', { failures: 3 }),
      want: { numberOfFailures: 1, status: 'Failing' },
    },
    {
      comment: 'falling back: at least threshold + 1',
      trigger: failing('x', 's0-rabbitmq-orders', { failures: 2, fallbackReplicas: 2 }),
      want: { numberOfFailures: 4, status: 'Failing' },
    },
    {
      comment: 'falling back for long: the count',
      trigger: failing('x', 's0-rabbitmq-orders', { failures: 9, fallbackReplicas: 2 }),
      want: { numberOfFailures: 9, status: 'Failing' },
    },
  ];
  test.each(rows)('$comment', ({ trigger: t, want }) => {
    expect(health(pollerSummary({ triggers: [t] }), 3)).toStrictEqual({ 's0-rabbitmq-orders': want });
  });
});

describe('statusPatch, sameStatus, isNewFailure, wasReady', () => {
  test('statusPatch sets what the next status has and nulls what it dropped', () => {
    expect(
      statusPatch(
        { hpaName: 'h', externalMetricNames: ['a'], lastActiveTime: EARLIER, observedGeneration: 1 },
        { lastActiveTime: EARLIER, observedGeneration: 2, conditions: [] },
      ),
    ).toStrictEqual({
      lastActiveTime: EARLIER,
      observedGeneration: 2,
      conditions: [],
      hpaName: null,
      externalMetricNames: null,
    });
  });

  const ready = (status: Condition['status'], reason: string, message?: string): Condition => ({
    type: 'Ready',
    status,
    reason,
    ...(message === undefined ? {} : { message }),
    lastTransitionTime: EARLIER,
  });
  const active: Condition = { type: 'Active', status: 'True', reason: 'ScalerActive', lastTransitionTime: EARLIER };

  const same: { comment: string; a: ScaledObjectStatus; b: ScaledObjectStatus; same: boolean }[] = [
    { comment: 'two empty statuses', a: {}, b: {}, same: true },
    {
      comment: 'conditions in another order, keys in another order',
      a: { hpaName: 'h', observedGeneration: 1, conditions: [ready('True', 'R'), active] },
      b: { conditions: [active, ready('True', 'R')], observedGeneration: 1, hpaName: 'h' },
      same: true,
    },
    {
      comment: 'nested keys in another order',
      a: { scaleTargetGVKR: { group: 'apps', version: 'v1', kind: 'Deployment', resource: 'deployments' } },
      b: { scaleTargetGVKR: { resource: 'deployments', kind: 'Deployment', version: 'v1', group: 'apps' } },
      same: true,
    },
    { comment: 'a field differs', a: { observedGeneration: 1 }, b: { observedGeneration: 2 }, same: false },
    { comment: 'a field is missing', a: { hpaName: 'h' }, b: {}, same: false },
    {
      comment: 'a condition message differs',
      a: { conditions: [ready('False', 'ScaledObjectCheckFailed', 'a')] },
      b: { conditions: [ready('False', 'ScaledObjectCheckFailed', 'b')] },
      same: false,
    },
    {
      comment: 'an array order differs (metric names are ordered)',
      a: { externalMetricNames: ['a', 'b'] },
      b: { externalMetricNames: ['b', 'a'] },
      same: false,
    },
  ];
  test.each(same)('sameStatus: $comment', ({ a, b, same: want }) => {
    expect(sameStatus(a, b)).toBe(want);
    expect(sameStatus(b, a)).toBe(want);
  });

  const failures: { comment: string; previous: ScaledObjectStatus; message: string; isNew: boolean }[] = [
    { comment: 'no status yet', previous: {}, message: 'm', isNew: true },
    { comment: 'was ready', previous: { conditions: [ready('True', 'ScaledObjectReady')] }, message: 'm', isNew: true },
    {
      comment: 'the same failure already shown',
      previous: { conditions: [ready('False', 'ScaledObjectCheckFailed', 'm')] },
      message: 'm',
      isNew: false,
    },
    {
      comment: 'another failure message',
      previous: { conditions: [ready('False', 'ScaledObjectCheckFailed', 'm')] },
      message: 'n',
      isNew: true,
    },
    {
      comment: 'Ready False for a trigger error, not a check failure',
      previous: { conditions: [ready('False', 'TriggerError', 'm')] },
      message: 'm',
      isNew: true,
    },
  ];
  test.each(failures)('isNewFailure: $comment', ({ previous, message, isNew }) => {
    expect(isNewFailure(previous, message)).toBe(isNew);
  });

  test.each([
    { comment: 'no status', previous: {}, was: false },
    { comment: 'Ready True', previous: { conditions: [ready('True', 'ScaledObjectReady')] }, was: true },
    {
      comment: 'Ready Unknown (partial errors)',
      previous: { conditions: [ready('Unknown', 'PartialTriggerError')] },
      was: false,
    },
    { comment: 'Ready False', previous: { conditions: [ready('False', 'ScaledObjectCheckFailed')] }, was: false },
  ])('wasReady: $comment', ({ previous, was }) => {
    expect(wasReady(previous)).toBe(was);
  });
});
