import { describe, expect, it } from 'vitest';
import {
  explain,
  renderExplain,
  type ExplainInput,
  type HpaView,
  type MetricReading,
} from '../../../src/cli/explain-report.ts';
import { CIRCUIT_OPEN_NOTE } from '../../../src/scalers/breaker.ts';

const NOW = new Date('2026-12-07T12:00:00Z');
const METRIC = 's0-rabbitmq-worker_tasks';

function object(
  overrides: {
    spec?: Record<string, unknown>;
    status?: Record<string, unknown>;
    annotations?: Record<string, string>;
  } = {},
): Record<string, unknown> {
  return {
    apiVersion: 'sluice.dev/v1alpha1',
    kind: 'ScaledObject',
    metadata: {
      name: 'worker',
      namespace: 'shop',
      creationTimestamp: '2026-12-07T11:00:00Z',
      ...(overrides.annotations !== undefined ? { annotations: overrides.annotations } : {}),
    },
    spec: {
      scaleTargetRef: { name: 'worker' },
      minReplicaCount: 0,
      maxReplicaCount: 10,
      cooldownPeriod: 60,
      triggers: [{ type: 'rabbitmq', metadata: { host: 'amqp://r:5672', queueName: 'worker_tasks', value: '30' } }],
      ...overrides.spec,
    },
    status: {
      externalMetricNames: [METRIC],
      triggersThresholds: { [METRIC]: { metricType: 'AverageValue', target: '30', activation: '5' } },
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'ScaledObjectReady',
          message: 'ScaledObject is defined correctly and is ready for scaling',
        },
      ],
      ...overrides.status,
    },
  };
}

const HPA: HpaView = {
  name: 'sluice-hpa-worker',
  minReplicas: 1,
  maxReplicas: 10,
  metrics: [{ name: METRIC, type: 'AverageValue', target: 30 }],
  currentReplicas: 3,
  desiredReplicas: 3,
  lastScaleTime: undefined,
  conditions: [{ type: 'ScalingActive', status: 'True', reason: 'ValidMetricFound' }],
};

function input(partial: Partial<ExplainInput> & { reading?: MetricReading }): ExplainInput {
  const { reading, ...rest } = partial;
  return {
    object: object(),
    hpa: HPA,
    targetReplicas: 3,
    readings: new Map(reading !== undefined ? [[METRIC, reading]] : []),
    events: [],
    now: NOW,
    ...rest,
  };
}

describe('explain: one report per situation the issue names', () => {
  it.each([
    {
      comment: 'idle at 0: not active, what would activate it',
      in: input({ targetReplicas: 0, reading: { value: 2, timestamp: undefined } }),
      want: {
        currentReplicas: 0,
        desiredReplicas: 0,
        rule: 'steady',
        change: [`${METRIC} above 5 (now 2) → 0 → 1 replicas`],
        trigger: { value: 2, active: false, target: 30, activationThreshold: 5 },
      },
    },
    {
      comment: 'active at 3 with 110 messages: the HPA wants 4 (ceil(110 / 30)), above 120 it wants 5',
      in: input({
        reading: { value: 110, timestamp: undefined },
        object: object({ status: { lastActiveTime: '2026-12-07T11:59:59Z' } }),
      }),
      want: {
        currentReplicas: 3,
        desiredReplicas: 4,
        rule: 'active',
        change: [
          `${METRIC} above 120 (now 110) → 5 replicas`,
          `${METRIC} at or below 99 → 3 replicas (after the scale-down stabilization window)`,
        ],
        trigger: { value: 110, active: true },
      },
    },
    {
      comment: 'active at 3 with 85 messages: within the 10 % tolerance, stays 3; above 99 the HPA moves',
      in: input({ reading: { value: 85, timestamp: undefined } }),
      want: {
        currentReplicas: 3,
        desiredReplicas: 3,
        rule: 'active',
        change: [
          `${METRIC} above 99 (now 85) → 4 replicas`,
          `${METRIC} at or below 60 → 2 replicas (after the scale-down stabilization window)`,
        ],
        trigger: { value: 85, active: true },
      },
    },
    {
      comment: 'cooling down: inactive at 3, last active 20 s ago, cooldown 60 s → scales in in 40 s',
      in: input({
        reading: { value: 0, timestamp: undefined },
        object: object({ status: { lastActiveTime: '2026-12-07T11:59:40Z' } }),
      }),
      want: {
        currentReplicas: 3,
        desiredReplicas: 1,
        rule: 'cooldown',
        change: [
          'no trigger active for 40 s more → 3 → 0 replicas (any trigger above its activation threshold restarts the cooldown)',
          `${METRIC} above 30 (now 0) → 2 replicas`,
        ],
        trigger: { value: 0, active: false },
        remainingSeconds: 40,
      },
    },
    {
      comment: 'erroring with the breaker open: no value, held (error-hold), never read as 0',
      in: input({
        reading: { error: `dial tcp 127.0.0.1:1: connection refused (${CIRCUIT_OPEN_NOTE})`, status: 500 },
        object: object({ status: { lastActiveTime: '2026-12-07T11:00:00Z' } }),
      }),
      want: {
        currentReplicas: 3,
        desiredReplicas: 3,
        rule: 'error-hold',
        change: [`${METRIC} answers again → its value counts again (until then nothing scales in)`],
        trigger: { breaker: 'open', error: `dial tcp 127.0.0.1:1: connection refused (${CIRCUIT_OPEN_NOTE})` },
      },
    },
    {
      comment: 'in fallback: the served value is the fallback value, and the object counts as active',
      in: input({
        targetReplicas: 0,
        reading: { value: 150, timestamp: undefined },
        object: object({
          spec: { fallback: { failureThreshold: 3, replicas: 5 } },
          status: {
            health: { [METRIC]: { status: 'Failing', numberOfFailures: 4 } },
            conditions: [{ type: 'Fallback', status: 'True', reason: 'FallbackExists' }],
          },
        }),
      }),
      want: {
        currentReplicas: 0,
        desiredReplicas: 5,
        rule: 'scale-from-zero',
        change: [],
        trigger: { value: 150, fallbackValue: true },
      },
    },
  ])('$comment', ({ in: given, want }) => {
    const report = explain(given);
    expect(report.currentReplicas).toBe(want.currentReplicas);
    expect(report.desiredReplicas).toBe(want.desiredReplicas);
    expect(report.decision?.rule).toBe(want.rule);
    expect(report.whatWouldChange).toEqual(want.change);
    expect(report.triggers[0]).toMatchObject({ metricName: METRIC, ...want.trigger });
    if (want.remainingSeconds !== undefined) expect(report.cooldown.remainingSeconds).toBe(want.remainingSeconds);
    // The text names the same things.
    const text = renderExplain(report);
    expect(text).toContain(`ScaledObject shop/worker → Deployment worker`);
    for (const line of want.change) expect(text).toContain(line);
  });

  it('an unknown value has no `value` key in the JSON (absent, never 0)', () => {
    const report = explain(input({ reading: { error: 'queue not found', status: 500 } }));
    const json = JSON.parse(JSON.stringify(report)) as { triggers: Record<string, unknown>[] };
    expect(json.triggers[0]).not.toHaveProperty('value');
    expect(json.triggers[0]?.['error']).toBe('queue not found');
  });

  it('paused-replicas: desired is the paused count, and the way out is named', () => {
    const report = explain(
      input({
        object: object({ annotations: { 'autoscaling.keda.sh/paused-replicas': '2' } }),
        reading: { value: 9, timestamp: undefined },
      }),
    );
    expect(report.paused).toMatchObject({ paused: true, replicas: 2 });
    expect(report.desiredReplicas).toBe(2);
    expect(report.whatWouldChange).toEqual(['remove the paused annotation: sluice then scales it again']);
  });

  it('an invalid object says why and decides nothing', () => {
    const report = explain(input({ object: object({ spec: { maxReplicaCount: -1 } }) }));
    expect(report.valid).toBe(false);
    expect(report.decision).toBeUndefined();
    expect(report.problems[0]).toMatch(/spec\.maxReplicaCount/);
  });

  it('the last 0↔N Event is the newest scale event, other Events ignored', () => {
    const report = explain(
      input({
        events: [
          {
            reason: 'KEDAScaleTargetActivated',
            message: 'Scaled apps/v1.Deployment shop/worker from 0 to 1',
            at: '2026-12-07T11:10:00Z',
          },
          {
            reason: 'KEDAScaleTargetDeactivated',
            message: 'Deactivated apps/v1.Deployment shop/worker from 1 to 0',
            at: '2026-12-07T11:20:00Z',
          },
          { reason: 'ScaledObjectReady', message: 'ScaledObject is ready for scaling', at: '2026-12-07T11:30:00Z' },
        ],
      }),
    );
    expect(report.lastScale?.reason).toBe('KEDAScaleTargetDeactivated');
  });
});
