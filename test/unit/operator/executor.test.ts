// Proves the Executor against an in-memory KubePort and a summary the test sets, on fake timers: it decides only once
// every trigger was read, activates on notify without waiting for the heartbeat (to the fallback count when one is
// served), waits out the cooldown from the moment activity ended and scales in exactly then, asks for status writes
// when they matter (and at most every max(1 s, cooldown/10) while active), reports scale errors and stuck calls, and
// coalesces notifications.
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import type { Logger } from '../../../src/log.ts';
import type { ObjectReference } from '../../../src/operator/events.ts';
import { Executor, type ExecutorSettings, type ObjectState } from '../../../src/operator/executor.ts';
import type { PollerSummary } from '../../../src/operator/poller.ts';
import { deferred } from '../../support/fake-source.ts';
import { MemoryKube, pollerSummary, recordingEvents } from '../../support/operator.ts';

const T0 = new Date('2026-06-01T12:00:00Z');
const REF: ObjectReference = {
  apiVersion: 'sluice.dev/v1alpha1',
  kind: 'ScaledObject',
  namespace: 'shop',
  name: 'orders',
  uid: 'uid-1',
};
const log: Logger = () => undefined;

const ACTIVE = pollerSummary({ active: true, activeMetrics: ['s0-rabbitmq-orders'] });
const INACTIVE = pollerSummary();

function setup(
  options: {
    settings?: Partial<ExecutorSettings>;
    replicas?: number;
    summary?: PollerSummary;
    state?: Partial<ObjectState>;
  } = {},
) {
  const kube = new MemoryKube();
  kube.replicas = options.replicas ?? 0;
  const events = recordingEvents();
  const onChange = vi.fn();
  const state: ObjectState = {
    lastActiveTime: undefined,
    persistedLastActiveTime: undefined,
    firstSeenReplicas: undefined,
    ...options.state,
  };
  let summary = options.summary ?? INACTIVE;
  const settings: ExecutorSettings = {
    ref: REF,
    target: { namespace: 'shop', apiVersion: 'apps/v1', kind: 'Deployment', name: 'orders' },
    targetKind: 'apps/v1.Deployment',
    pollingIntervalS: 30,
    cooldownPeriodS: 60,
    initialCooldownPeriodS: 0,
    minReplicaCount: 0,
    maxReplicaCount: 10,
    idleReplicaCount: undefined,
    hasFallback: false,
    createdAt: new Date(T0.getTime() - 3_600_000),
    pausedScaleIn: false,
    pausedScaleOut: false,
    forceActivation: false,
    alwaysActive: false,
    ...options.settings,
  };
  const executor = new Executor(settings, state, {
    kube,
    events,
    log,
    summary: () => summary,
    onChange,
  });
  return {
    kube,
    events,
    onChange,
    state,
    executor,
    setSummary: (next: PollerSummary) => {
      summary = next;
    },
    /** Sets the summary and notifies, as the poller's onChange does. */
    change: (next: PollerSummary) => {
      summary = next;
      executor.notify();
    },
    readScales: () => kube.of('readScale').length,
  };
}

const flush = () => vi.advanceTimersByTimeAsync(0);
const advance = (ms: number) => vi.advanceTimersByTimeAsync(ms);
/** Milliseconds since T0. */
const elapsed = () => Date.now() - T0.getTime();
const at = (ms: number) => new Date(T0.getTime() + ms);

let running: Executor[] = [];
beforeEach(() => {
  vi.useFakeTimers({ now: T0 });
  running = [];
});
afterEach(async () => {
  for (const e of running) await e.stop();
  vi.useRealTimers();
});
function start<T extends ReturnType<typeof setup>>(t: T): T {
  running.push(t.executor);
  t.executor.start();
  return t;
}

describe('readiness', () => {
  test('no decision until every trigger was read; then at once on notify', async () => {
    const t = start(setup({ summary: pollerSummary({ ready: false, active: true }) }));
    await advance(5 * 30_000); // heartbeats come and go
    expect(t.readScales()).toBe(0);
    expect(t.executor.snapshot().evaluations).toBe(0);
    expect(t.onChange).not.toHaveBeenCalled();

    t.change(ACTIVE);
    await flush();
    expect(t.kube.writes()).toStrictEqual([1]);
    expect(t.executor.snapshot()).toMatchObject({ evaluations: 1, currentReplicas: 1, resource: 'deployments' });
  });
});

describe('activation', () => {
  test('active at 0: scales to 1 on notify without waiting for the heartbeat, with KEDA’s event', async () => {
    const t = start(setup());
    await flush();
    expect(t.executor.snapshot().decision?.rule).toBe('steady');
    await advance(1000);
    t.change(pollerSummary({ active: true, activeMetrics: ['s0-rabbitmq-orders', 's1-prometheus'] }));
    await flush();
    expect(t.kube.writes()).toStrictEqual([1]);
    expect(elapsed()).toBe(1000);
    expect(t.events.events).toMatchObject([
      {
        type: 'Normal',
        reason: 'KEDAScaleTargetActivated',
        note: 'Scaled apps/v1.Deployment shop/orders from 0 to 1, triggered by s0-rabbitmq-orders;s1-prometheus',
        regarding: REF,
      },
    ]);
    expect(t.executor.snapshot()).toMatchObject({ currentReplicas: 1, decision: { rule: 'scale-from-zero' } });
    expect(t.state).toMatchObject({ lastActiveTime: at(1000), firstSeenReplicas: 0 });
  });

  const fallbackRows: { comment: string; min: number; max: number; fallbackReplicas: number; to: number }[] = [
    { comment: 'straight to the fallback count', min: 0, max: 10, fallbackReplicas: 4, to: 4 },
    { comment: 'clamped to maxReplicaCount', min: 0, max: 10, fallbackReplicas: 20, to: 10 },
    { comment: 'at least minReplicaCount', min: 3, max: 10, fallbackReplicas: 2, to: 3 },
    { comment: 'at least 1', min: 0, max: 10, fallbackReplicas: 1, to: 1 },
  ];
  test.each(fallbackRows)('fallback activation from 0: $comment', async ({ min, max, fallbackReplicas, to }) => {
    const t = start(
      setup({
        settings: { minReplicaCount: min, maxReplicaCount: max, hasFallback: true },
        summary: pollerSummary({
          active: true,
          fallbackActive: true,
          fallbackReplicas,
          activeMetrics: ['s0-rabbitmq-orders'],
        }),
      }),
    );
    await flush();
    expect(t.kube.writes()).toStrictEqual([to]);
    expect(t.events.events[0]?.note).toBe(
      `Scaled apps/v1.Deployment shop/orders from 0 to ${to}, triggered by s0-rabbitmq-orders`,
    );
  });

  test('the heartbeat notices a replica count someone changed', async () => {
    const t = start(setup({ settings: { minReplicaCount: 2 }, replicas: 2 }));
    await flush();
    t.kube.replicas = 0;
    await advance(30_000 - 1);
    expect(t.kube.writes()).toStrictEqual([]);
    await advance(1);
    expect(t.kube.writes()).toStrictEqual([2]);
    expect(t.executor.snapshot().decision?.rule).toBe('below-min');
  });
});

describe('cooldown', () => {
  test('inactive holds; the cooldown-end timer scales to 0 exactly after cooldownPeriod from the end of activity', async () => {
    // A long pollingInterval: no heartbeat interferes, only the cooldown-end timer can scale in.
    const t = start(setup({ replicas: 3, summary: ACTIVE, settings: { pollingIntervalS: 3600 } }));
    await flush();
    expect(t.executor.snapshot().decision?.rule).toBe('active');
    expect(t.state.lastActiveTime).toStrictEqual(at(0));

    await advance(20_000);
    t.change(INACTIVE);
    await flush();
    expect(t.executor.snapshot().decision?.rule).toBe('cooldown');
    // The cooldown runs from the transition, not from the last evaluation (at 0).
    expect(t.state.lastActiveTime).toStrictEqual(at(20_000));

    await advance(60_000);
    expect(elapsed()).toBe(80_000);
    expect(t.kube.writes()).toStrictEqual([]);
    await advance(5);
    expect(t.kube.writes()).toStrictEqual([0]);
    expect(t.executor.snapshot()).toMatchObject({ currentReplicas: 0, decision: { rule: 'scale-in' } });
    expect(t.events.events).toMatchObject([
      {
        type: 'Normal',
        reason: 'KEDAScaleTargetDeactivated',
        note: 'Deactivated apps/v1.Deployment shop/orders from 3 to 0',
      },
    ]);
    expect(t.readScales()).toBe(3);
  });

  test('activity again during the cooldown cancels the scale-in', async () => {
    const t = start(setup({ replicas: 3, summary: ACTIVE, settings: { pollingIntervalS: 3600 } }));
    await flush();
    t.change(INACTIVE);
    await advance(30_000);
    t.change(ACTIVE);
    await advance(120_000);
    expect(t.kube.writes()).toStrictEqual([]);
    expect(t.executor.snapshot().decision?.rule).toBe('active');
  });

  test('a persisted lastActiveTime (from the status) resumes the cooldown', async () => {
    const t = start(
      setup({
        replicas: 3,
        state: { lastActiveTime: new Date(T0.getTime() - 50_000) },
        settings: { pollingIntervalS: 3600 },
      }),
    );
    await flush();
    expect(t.executor.snapshot().decision?.rule).toBe('cooldown');
    await advance(10_000 + 5);
    expect(t.kube.writes()).toStrictEqual([0]);
  });

  test('never active: the initial cooldown runs from creation', async () => {
    const t = start(
      setup({
        replicas: 2,
        settings: { pollingIntervalS: 3600, initialCooldownPeriodS: 120, createdAt: new Date(T0.getTime() - 100_000) },
      }),
    );
    await flush();
    expect(t.executor.snapshot().decision?.rule).toBe('cooldown');
    await advance(20_000);
    expect(t.kube.writes()).toStrictEqual([]);
    await advance(5);
    expect(t.kube.writes()).toStrictEqual([0]);
  });
});

describe('annotations and cpu/memory-only objects', () => {
  test('force-activation: activates from 0 with inactive triggers', async () => {
    const t = start(setup({ settings: { forceActivation: true } }));
    await flush();
    expect(t.kube.writes()).toStrictEqual([1]);
    expect(t.executor.snapshot().decision).toMatchObject({
      rule: 'scale-from-zero',
      condition: {
        reason: 'ScalerActive',
        message: 'Scaling is performed because activation is being forced by annotation',
      },
    });
    expect(t.events.events[0]).toMatchObject({ reason: 'KEDAScaleTargetActivated' });
    expect(t.events.events[0]?.note).toMatch(/^Scaled apps\/v1\.Deployment shop\/orders from 0 to 1, triggered by/);
    expect(t.state.lastActiveTime).toStrictEqual(at(0));
  });

  test('force-activation: never scales in, however long the triggers stay inactive', async () => {
    const t = start(setup({ replicas: 3, settings: { forceActivation: true, cooldownPeriodS: 60 } }));
    await advance(10 * 60_000);
    expect(t.kube.writes()).toStrictEqual([]);
    expect(t.executor.snapshot().decision?.rule).toBe('active');
  });

  test('paused-scale-out: active at 0 is not activated', async () => {
    const t = start(setup({ summary: ACTIVE, settings: { pausedScaleOut: true } }));
    await advance(5 * 30_000);
    expect(t.kube.writes()).toStrictEqual([]);
    expect(t.executor.snapshot().decision?.rule).toBe('paused-scale-out');
    expect(t.events.events).toStrictEqual([]);
  });

  test('paused-scale-in: the cooldown ends without a scale-in', async () => {
    const t = start(
      setup({
        replicas: 3,
        summary: ACTIVE,
        settings: { pausedScaleIn: true, cooldownPeriodS: 60, pollingIntervalS: 3600 },
      }),
    );
    await flush();
    t.change(INACTIVE);
    await advance(60_000 + 5);
    expect(t.kube.writes()).toStrictEqual([]);
    await advance(3_600_000);
    expect(t.kube.writes()).toStrictEqual([]);
    expect(t.executor.snapshot().decision?.rule).toBe('paused-scale-in');
  });

  test('only cpu/memory triggers (alwaysActive): no poller triggers, active, never scaled in', async () => {
    const t = start(
      setup({
        replicas: 2,
        summary: pollerSummary(),
        settings: { alwaysActive: true, minReplicaCount: 1, cooldownPeriodS: 0 },
      }),
    );
    await advance(10 * 30_000);
    expect(t.kube.writes()).toStrictEqual([]);
    expect(t.executor.snapshot().decision).toMatchObject({
      rule: 'active',
      condition: { status: 'True', message: 'Scaling is performed because triggers are active' },
    });
  });

  test('alwaysActive found at 0 (scaled down by hand): back to max(1, min)', async () => {
    const t = start(setup({ replicas: 0, settings: { alwaysActive: true, minReplicaCount: 2 } }));
    await flush();
    expect(t.kube.writes()).toStrictEqual([2]);
  });
});

describe('status write requests (onChange)', () => {
  const rows: { comment: string; cooldownS: number; pollingS: number; until: number; times: number[] }[] = [
    {
      comment: 'cooldown 100 s, polled every 2 s: every 10 s',
      cooldownS: 100,
      pollingS: 2,
      until: 31_000,
      times: [0, 10_000, 20_000, 30_000],
    },
    {
      comment: 'cooldown 300 s, polled every 7 s: every 30 s (the first evaluation at least 30 s later)',
      cooldownS: 300,
      pollingS: 7,
      until: 71_000,
      times: [0, 35_000, 70_000],
    },
    {
      comment: 'cooldown 0, polled every second: at most every second',
      cooldownS: 0,
      pollingS: 1,
      until: 3000,
      times: [0, 1000, 2000, 3000],
    },
  ];
  test.each(rows)('while active, $comment', async ({ cooldownS, pollingS, until, times }) => {
    const t = setup({
      replicas: 3,
      summary: ACTIVE,
      settings: { cooldownPeriodS: cooldownS, pollingIntervalS: pollingS },
    });
    const calls: number[] = [];
    t.onChange.mockImplementation(() => calls.push(elapsed()));
    start(t);
    await advance(until);
    expect(calls).toStrictEqual(times);
    expect(t.state.persistedLastActiveTime).toStrictEqual(at(times.at(-1) ?? NaN));
    expect(t.readScales()).toBe(Math.floor(until / (pollingS * 1000)) + 1);
  });

  test('when activity ends: requested, with the transition time to persist', async () => {
    const t = start(setup({ replicas: 3, summary: ACTIVE, settings: { cooldownPeriodS: 100, pollingIntervalS: 2 } }));
    await advance(5000);
    const before = t.onChange.mock.calls.length;
    t.change(INACTIVE);
    await flush();
    expect(t.onChange.mock.calls.length).toBe(before + 1);
    expect(t.state.lastActiveTime).toStrictEqual(at(5000));
    expect(t.state.persistedLastActiveTime).toStrictEqual(at(5000));
    // Inactive and unchanged: no more requests.
    await advance(20_000);
    expect(t.onChange.mock.calls.length).toBe(before + 1);
  });
});

describe('failures', () => {
  test('readScale fails: snapshot.scaleError, no write, onChange; cleared by the next good read', async () => {
    const t = setup({ summary: ACTIVE });
    t.kube.onReadScale = () => Promise.reject(new Error('the API server answered 500'));
    start(t);
    await flush();
    expect(t.kube.writes()).toStrictEqual([]);
    expect(t.executor.snapshot()).toMatchObject({
      scaleError: 'the API server answered 500',
      decision: undefined,
      currentReplicas: undefined,
    });
    expect(t.onChange).toHaveBeenCalledTimes(1);
    expect(t.events.events).toStrictEqual([]);

    t.kube.onReadScale = undefined;
    await advance(30_000);
    expect(t.kube.writes()).toStrictEqual([1]);
    expect(t.executor.snapshot().scaleError).toBeUndefined();
    expect(t.onChange).toHaveBeenCalledTimes(2);
  });

  const writeRows: {
    comment: string;
    replicas: number;
    summary: PollerSummary;
    settings: Partial<ExecutorSettings>;
    reason: string | undefined;
    note?: string;
  }[] = [
    {
      comment: 'activation',
      replicas: 0,
      summary: ACTIVE,
      settings: {},
      reason: 'KEDAScaleTargetActivationFailed',
      note: 'Failed to scale Deployment shop/orders from 0 to 1: admission webhook denied the request',
    },
    {
      comment: 'deactivation',
      replicas: 2,
      summary: INACTIVE,
      settings: { cooldownPeriodS: 0 },
      reason: 'KEDAScaleTargetDeactivationFailed',
      note: 'Failed to scale Deployment shop/orders from 2 to 0: admission webhook denied the request',
    },
    {
      comment: 'a repair below minReplicaCount (no event)',
      replicas: 0,
      summary: INACTIVE,
      settings: { minReplicaCount: 2 },
      reason: undefined,
    },
  ];
  test.each(writeRows)('writeScale fails on $comment', async ({ replicas, summary, settings, reason, note }) => {
    const t = setup({ replicas, summary, settings });
    t.kube.onWriteScale = () => Promise.reject(new Error('admission webhook denied the request'));
    start(t);
    await flush();
    expect(t.kube.of('writeScale')).toHaveLength(1);
    expect(t.events.events).toMatchObject(reason === undefined ? [] : [{ type: 'Warning', reason, note }]);
    expect(t.executor.snapshot()).toMatchObject({
      scaleError: 'admission webhook denied the request',
      // What was read; the write did not happen.
      currentReplicas: replicas,
    });
    // A failed activation is not activity: lastActiveTime stays unset.
    expect(t.state.lastActiveTime).toBeUndefined();
  });

  test('an evaluation hanging on the API server for 30 s is reported as stuck (snapshot.stuckSince, onChange)', async () => {
    const t = setup({ summary: ACTIVE });
    const hang = deferred<{ replicas: number; statusReplicas: number; resource: string }>();
    t.kube.onReadScale = () => hang.promise;
    start(t);
    await advance(30_000 - 1);
    expect(t.executor.snapshot().stuckSince).toBeUndefined();
    expect(t.onChange).not.toHaveBeenCalled();
    await advance(1);
    expect(t.executor.snapshot().stuckSince).toStrictEqual(at(0));
    expect(t.onChange).toHaveBeenCalledTimes(1);

    hang.resolve({ replicas: 0, statusReplicas: 0, resource: 'deployments' });
    await flush();
    expect(t.executor.snapshot()).toMatchObject({ stuckSince: undefined, currentReplicas: 1 });
  });
});

describe('scheduling', () => {
  test('notifications during an evaluation coalesce into one more evaluation', async () => {
    const t = setup({ summary: INACTIVE });
    const gate = deferred<undefined>();
    let first = true;
    t.kube.onReadScale = async () => {
      if (first) {
        first = false;
        await gate.promise;
      }
      return { replicas: t.kube.replicas, statusReplicas: 0, resource: 'deployments' };
    };
    start(t);
    await flush();
    expect(t.readScales()).toBe(1);
    t.change(ACTIVE);
    t.executor.notify();
    t.executor.notify();
    await flush();
    expect(t.readScales()).toBe(1);
    gate.resolve(undefined);
    await flush();
    expect(t.readScales()).toBe(2);
    expect(t.executor.snapshot().evaluations).toBe(2);
    // The second evaluation saw the new summary.
    expect(t.kube.writes()).toStrictEqual([1]);
  });

  test('stop() ends every timer: no evaluation afterwards', async () => {
    const t = setup({ replicas: 3, summary: ACTIVE });
    start(t);
    await flush();
    t.setSummary(INACTIVE);
    await t.executor.stop();
    t.executor.notify();
    await advance(3_600_000);
    expect(t.readScales()).toBe(1);
    expect(t.kube.writes()).toStrictEqual([]);
  });
});
