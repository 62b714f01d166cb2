// Proves the two pure steps the executor (and `sluice simulate`) decide with: summarizeTriggers (poller.ts), what the
// triggers' states add up to, and evaluateScale (executor.ts), decideScale plus the lastActiveTime it keeps.
import { describe, expect, test } from 'vitest';
import { evaluateScale, type DecisionSettings } from '../../../src/operator/executor.ts';
import { summarizeTriggers, type TriggerState } from '../../../src/operator/poller.ts';
import type { ScaleDecision } from '../../../src/operator/scale-decision.ts';

function trigger(fields: Partial<TriggerState>): TriggerState {
  return {
    index: 0,
    type: 'rabbitmq',
    metricName: 's0-rabbitmq-q',
    sourceKey: 'q',
    errors: 0,
    value: 0,
    active: false,
    error: undefined,
    readAt: 1,
    failingSince: undefined,
    failures: 0,
    fallbackReplicas: undefined,
    ...fields,
  };
}

describe('summarizeTriggers', () => {
  const failing = trigger({ value: undefined, error: 'down', failingSince: 1, failures: 1 });
  const rows: { comment: string; triggers: TriggerState[]; want: Record<string, unknown> }[] = [
    { comment: 'no trigger read yet: not ready', triggers: [trigger({ readAt: undefined })], want: { ready: false } },
    {
      comment: 'one active of two: active, the active one named',
      triggers: [trigger({ active: true, value: 5 }), trigger({ index: 1, metricName: 's1-x' })],
      want: { ready: true, active: true, anyError: false, activeMetrics: ['s0-rabbitmq-q'] },
    },
    {
      comment: 'one failing of two: an error, not all',
      triggers: [failing, trigger({ index: 1 })],
      want: { active: false, anyError: true, allError: false },
    },
    { comment: 'all failing', triggers: [failing], want: { anyError: true, allError: true, fallbackActive: false } },
    {
      comment: 'failing with a fallback of 3: active, no error, the fallback count',
      triggers: [trigger({ ...failing, fallbackReplicas: 3 })],
      want: { active: true, anyError: false, fallbackActive: true, fallbackReplicas: 3 },
    },
    {
      comment: 'a fallback of 0 is not activity ("no work while the backend is down")',
      triggers: [trigger({ ...failing, fallbackReplicas: 0 })],
      want: { active: false, anyError: false, fallbackReplicas: 0 },
    },
  ];
  test.each(rows)('$comment', ({ triggers, want }) => {
    expect(summarizeTriggers(triggers)).toMatchObject(want);
  });
});

describe('evaluateScale', () => {
  const settings: DecisionSettings = {
    minReplicaCount: 0,
    maxReplicaCount: 10,
    idleReplicaCount: undefined,
    hasFallback: false,
    createdAt: new Date(0),
    cooldownPeriodS: 30,
    initialCooldownPeriodS: 0,
    pausedScaleIn: false,
    pausedScaleOut: false,
    forceActivation: false,
    alwaysActive: false,
  };
  const idle = { active: false, anyError: false, allError: false, fallbackReplicas: undefined };
  const busy = { ...idle, active: true };
  const now = new Date(100_000);
  const wasActive = evaluateScale({
    settings,
    summary: busy,
    currentReplicas: 3,
    lastActiveTime: undefined,
    previous: undefined,
    now: new Date(50_000),
  }).decision;

  test('activity that ended since the previous decision starts the cooldown now, not at the last evaluation', () => {
    const got = evaluateScale({
      settings,
      summary: idle,
      currentReplicas: 3,
      lastActiveTime: new Date(50_000),
      previous: wasActive,
      now,
    });
    expect(got.lastActiveTime).toEqual(now);
    expect(got.decision.rule).toBe('cooldown');
  });

  test('already inactive: the lastActiveTime stays, and the cooldown is measured from it', () => {
    const previous: ScaleDecision = evaluateScale({
      settings,
      summary: idle,
      currentReplicas: 3,
      lastActiveTime: new Date(50_000),
      previous: wasActive,
      now: new Date(60_000),
    }).decision;
    const got = evaluateScale({
      settings,
      summary: idle,
      currentReplicas: 3,
      lastActiveTime: new Date(60_000),
      previous,
      now: new Date(90_001),
    });
    expect(got.lastActiveTime).toEqual(new Date(60_000));
    expect(got.decision).toMatchObject({ action: 'scale', to: 0, rule: 'scale-in' });
  });

  test('cpu/memory-only (alwaysActive) and force-activation count as active: no cooldown starts', () => {
    for (const extra of [{ alwaysActive: true }, { forceActivation: true }]) {
      const got = evaluateScale({
        settings: { ...settings, ...extra },
        summary: idle,
        currentReplicas: 3,
        lastActiveTime: new Date(50_000),
        previous: wasActive,
        now,
      });
      expect(got.lastActiveTime).toEqual(new Date(50_000));
      expect(got.decision.refreshLastActiveTime).toBe(true);
    }
  });

  test('a fallback count activates from zero straight to it', () => {
    const got = evaluateScale({
      settings: { ...settings, hasFallback: true },
      summary: { ...busy, fallbackReplicas: 4 },
      currentReplicas: 0,
      lastActiveTime: undefined,
      previous: undefined,
      now,
    });
    expect(got.decision).toMatchObject({ action: 'scale', to: 4, rule: 'scale-from-zero' });
  });
});
