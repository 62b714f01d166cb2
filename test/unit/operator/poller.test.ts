// Proves the Poller with a hub the test drives and a real MetricStore: readings become labelled series, a failure
// is an error series (never 0), the fallback engages exactly failureThreshold × pollingInterval after the first
// failure with the value each behavior implies, ends on the first good read, and onChange/events/summary say exactly
// what changed.
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { BackendError, ScalerError } from '../../../src/errors.ts';
import type { Logger } from '../../../src/log.ts';
import { MetricStore } from '../../../src/metric-store.ts';
import type { ObjectReference } from '../../../src/operator/events.ts';
import { parseFormula } from '../../../src/operator/formula.ts';
import { Poller, type ReplicaCounts } from '../../../src/operator/poller.ts';
import type { Fallback } from '../../../src/operator/scaled-object.ts';
import type { MetricType, Reading, Source, SourceHub, Subscription } from '../../../src/scalers/scaler.ts';
import { FakeSource, fakeScaler } from '../../support/fake-source.ts';
import { recordingEvents } from '../../support/operator.ts';

type Listener = (reading: Reading<unknown>, changed: boolean) => void;

/** A SourceHub whose deliveries the test makes. */
class FakeHub implements SourceHub {
  readonly listeners = new Map<string, Set<Listener>>();
  subscribes = 0;
  closes = 0;

  subscribe<R>(source: Source<R>, listener: (reading: Reading<R>, changed: boolean) => void): Subscription {
    this.subscribes++;
    const set = this.listeners.get(source.key) ?? new Set<Listener>();
    this.listeners.set(source.key, set);
    const wrapped = listener as unknown as Listener;
    set.add(wrapped);
    let closed = false;
    return {
      close: () => {
        if (closed) return;
        closed = true;
        this.closes++;
        set.delete(wrapped);
      },
    };
  }

  deliver(key: string, reading: Reading<number>, changed = true): void {
    for (const listener of this.listeners.get(key) ?? []) listener(reading, changed);
  }
}

const REF: ObjectReference = {
  apiVersion: 'sluice.dev/v1alpha1',
  kind: 'ScaledObject',
  namespace: 'shop',
  name: 'orders',
  uid: 'uid-1',
};
const OWNER = 'shop/orders';
const LABEL = 'scaledobject.sluice.dev/name';
const INTERVAL_S = 10;
const log: Logger = () => undefined;

const ok = (value: number): Reading<number> => ({ ok: true, value, at: Date.now() });
const fail = (message = 'connect ECONNREFUSED 10.0.0.1:5672'): Reading<number> => ({
  ok: false,
  error: new BackendError(message),
  at: Date.now(),
});

interface TriggerSpec {
  readonly metricType?: MetricType;
  readonly target?: number;
}

/** scalingModifiers as the poller gets them: the formula over the triggers named `names` (in trigger order). */
interface CompositeOption {
  readonly formula: string;
  readonly names: readonly (string | undefined)[];
  readonly target?: number;
  readonly activationTarget?: number;
  readonly metricType?: MetricType;
}

function setup(
  options: {
    fallback?: Fallback;
    triggers?: TriggerSpec[];
    replicas?: ReplicaCounts | (() => Promise<ReplicaCounts>);
    composite?: CompositeOption;
  } = {},
) {
  const hub = new FakeHub();
  const store = new MetricStore();
  const events = recordingEvents();
  const onChange = vi.fn();
  let counts: ReplicaCounts = { replicas: 1, readyReplicas: 1 };
  const replicasOption = options.replicas;
  if (replicasOption !== undefined && typeof replicasOption !== 'function') counts = replicasOption;
  const replicas = vi.fn(typeof replicasOption === 'function' ? replicasOption : () => Promise.resolve(counts));
  const specs = options.triggers ?? [{}];
  const sources = specs.map((_, i) => new FakeSource(`src-${i}`));
  const poller = new Poller(
    {
      ref: REF,
      triggers: specs.map((spec, index) => {
        const source = sources[index];
        if (source === undefined) throw new Error('no source');
        return fakeScaler(source, { index, target: spec.target ?? 5, metricType: spec.metricType ?? 'AverageValue' });
      }),
      pollingIntervalS: INTERVAL_S,
      fallback: options.fallback,
      composite:
        options.composite === undefined
          ? undefined
          : {
              spec: {
                formula: parseFormula(options.composite.formula),
                target: options.composite.target ?? 5,
                activationTarget: options.composite.activationTarget ?? 0,
                metricType: options.composite.metricType ?? 'AverageValue',
              },
              names: options.composite.names,
            },
    },
    { hub, store, events, log, replicas, onChange },
  );
  poller.start();
  return {
    hub,
    store,
    events,
    onChange,
    replicas,
    poller,
    setCounts: (next: ReplicaCounts) => {
      counts = next;
    },
    deliver: (reading: Reading<number>, changed = true, index = 0) => {
      hub.deliver(`src-${index}`, reading, changed);
    },
    series: (index = 0) => store.find('shop', `s${index}-fake`)[0],
    composite: () => store.find('shop', 'composite-metric')[0],
  };
}

const flush = () => vi.advanceTimersByTimeAsync(0);
const advance = (ms: number) => vi.advanceTimersByTimeAsync(ms);

beforeEach(() => {
  vi.useFakeTimers({ now: new Date('2026-06-01T12:00:00Z') });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('series', () => {
  test('a reading is written as a series labelled with the ScaledObject, owned by it', () => {
    const t = setup();
    expect(t.hub.subscribes).toBe(1);
    const reading = ok(5);
    t.deliver(reading);
    expect(t.store.find('shop', 's0-fake')).toStrictEqual([
      {
        namespace: 'shop',
        metricName: 's0-fake',
        labels: { [LABEL]: 'orders' },
        value: 5,
        error: undefined,
        timestamp: new Date(reading.at),
        owner: OWNER,
      },
    ]);
  });

  test('an error writes an error series: no value, never 0; one KEDAScalerFailed event per run of failures', () => {
    const t = setup();
    t.deliver(ok(5));
    t.deliver(fail());
    expect(t.series()).toMatchObject({ value: undefined, error: 'connect ECONNREFUSED 10.0.0.1:5672' });
    t.deliver({ ok: false, error: new ScalerError('queue "orders" not found'), at: Date.now() });
    expect(t.series()).toMatchObject({ value: undefined, error: 'queue "orders" not found' });
    expect(t.events.events).toMatchObject([
      { type: 'Warning', reason: 'KEDAScalerFailed', note: 's0-fake: connect ECONNREFUSED 10.0.0.1:5672' },
    ]);
    t.deliver(ok(0));
    expect(t.series()).toMatchObject({ value: 0, error: undefined });
    t.deliver(fail());
    expect(t.events.reasons()).toStrictEqual(['KEDAScalerFailed', 'KEDAScalerFailed']);
  });

  test('an unchanged reading only refreshes the timestamp, and calls no onChange', async () => {
    const t = setup();
    t.deliver(ok(5));
    expect(t.onChange).toHaveBeenCalledTimes(1);
    await advance(1000);
    const again = ok(5);
    t.deliver(again, false);
    expect(t.series()).toMatchObject({ value: 5, timestamp: new Date(again.at) });
    t.deliver(fail());
    expect(t.onChange).toHaveBeenCalledTimes(2);
    await advance(1000);
    const failedAgain = fail();
    t.deliver(failedAgain, false);
    expect(t.series()).toMatchObject({
      value: undefined,
      error: expect.any(String) as unknown,
      timestamp: new Date(failedAgain.at),
    });
    expect(t.onChange).toHaveBeenCalledTimes(2);
  });

  test('onChange only when activity, errors or readiness change, not for a new value of an active trigger', () => {
    const t = setup();
    const steps: { comment: string; reading: Reading<number>; calls: number }[] = [
      { comment: 'first read (ready, active)', reading: ok(5), calls: 1 },
      { comment: 'another active value', reading: ok(6), calls: 1 },
      { comment: 'inactive', reading: ok(0), calls: 2 },
      { comment: 'still inactive', reading: ok(0), calls: 2 },
      { comment: 'failing', reading: fail('a'), calls: 3 },
      { comment: 'failing differently', reading: fail('b'), calls: 4 },
      { comment: 'active again', reading: ok(1), calls: 5 },
    ];
    for (const step of steps) {
      t.deliver(step.reading);
      expect(t.onChange.mock.calls.length, step.comment).toBe(step.calls);
    }
  });

  test('a first reading flagged unchanged (a restarted poller joining a shared reader) is still written', () => {
    const t = setup();
    t.deliver(ok(5), false);
    expect(t.series()).toMatchObject({ value: 5 });
    expect(t.onChange).toHaveBeenCalledTimes(1);
  });

  test('stop() unsubscribes and writes nothing more', () => {
    const t = setup();
    t.poller.stop();
    expect(t.hub.closes).toBe(1);
    t.deliver(ok(5));
    expect(t.store.ofOwner(OWNER)).toStrictEqual([]);
  });
});

describe('summary', () => {
  test('before every trigger was read: not ready', () => {
    const t = setup({ triggers: [{}, {}] });
    expect(t.poller.summary()).toMatchObject({ ready: false, active: false, anyError: false, allError: false });
    t.deliver(ok(3), true, 0);
    expect(t.poller.summary().ready).toBe(false);
    t.deliver(ok(0), true, 1);
    expect(t.poller.summary().ready).toBe(true);
  });

  const rows: { comment: string; readings: Reading<number>[]; want: Record<string, unknown> }[] = [
    {
      comment: 'one active, one inactive',
      readings: [ok(3), ok(0)],
      want: { ready: true, active: true, anyError: false, allError: false, activeMetrics: ['s0-fake'] },
    },
    {
      comment: 'none active',
      readings: [ok(0), ok(0)],
      want: { ready: true, active: false, anyError: false, allError: false, activeMetrics: [] },
    },
    {
      comment: 'one active, one failing',
      readings: [fail(), ok(2)],
      want: { ready: true, active: true, anyError: true, allError: false, activeMetrics: ['s1-fake'] },
    },
    {
      comment: 'all failing',
      readings: [fail(), fail()],
      want: {
        ready: true,
        active: false,
        anyError: true,
        allError: true,
        fallbackActive: false,
        fallbackReplicas: undefined,
      },
    },
  ];
  test.each(rows)('$comment', ({ readings, want }) => {
    const t = setup({ triggers: [{}, {}] });
    readings.forEach((reading, i) => {
      t.deliver(reading, true, i);
    });
    expect(t.poller.summary()).toMatchObject(want);
  });

  test('trigger states: identity, values, errors (each failed read) and failures counted by pollingInterval', async () => {
    const t = setup({ triggers: [{}, {}] });
    const start = Date.now();
    t.deliver(ok(3), true, 0);
    t.deliver(fail(), true, 1);
    await advance(25_000);
    expect(t.poller.summary().triggers).toStrictEqual([
      {
        index: 0,
        type: '',
        metricName: 's0-fake',
        sourceKey: 'src-0',
        errors: 0,
        value: 3,
        active: true,
        error: undefined,
        readAt: start,
        failingSince: undefined,
        failures: 0,
        fallbackReplicas: undefined,
      },
      {
        index: 1,
        type: '',
        metricName: 's1-fake',
        sourceKey: 'src-1',
        errors: 1,
        value: undefined,
        active: false,
        error: 'connect ECONNREFUSED 10.0.0.1:5672',
        readAt: start,
        failingSince: start,
        failures: 3,
        fallbackReplicas: undefined,
      },
    ]);
  });
});

describe('fallback', () => {
  const THRESHOLD = 3;
  const ENGAGES_AFTER = THRESHOLD * INTERVAL_S * 1000;

  const rows: {
    comment: string;
    fallback: Omit<Fallback, 'failureThreshold'>;
    metricType: MetricType;
    counts: ReplicaCounts;
    replicas: number;
    value: number;
    readsCounts: boolean;
  }[] = [
    {
      comment: 'static, AverageValue: target × fallback.replicas, without reading the target',
      fallback: { behavior: 'static', replicas: 4 },
      metricType: 'AverageValue',
      counts: { replicas: 9, readyReplicas: 9 },
      replicas: 4,
      value: 20,
      readsCounts: false,
    },
    {
      comment: 'currentReplicas: holds the current count (injected replicas())',
      fallback: { behavior: 'currentReplicas', replicas: 4 },
      metricType: 'AverageValue',
      counts: { replicas: 6, readyReplicas: 6 },
      replicas: 6,
      value: 30,
      readsCounts: true,
    },
    {
      comment: 'currentReplicasIfHigher, current below: fallback.replicas',
      fallback: { behavior: 'currentReplicasIfHigher', replicas: 4 },
      metricType: 'AverageValue',
      counts: { replicas: 2, readyReplicas: 2 },
      replicas: 4,
      value: 20,
      readsCounts: true,
    },
    {
      comment: 'currentReplicasIfLower, current below: the current count',
      fallback: { behavior: 'currentReplicasIfLower', replicas: 4 },
      metricType: 'AverageValue',
      counts: { replicas: 2, readyReplicas: 2 },
      replicas: 2,
      value: 10,
      readsCounts: true,
    },
    {
      comment: 'static, Value: target × replicas / ready pods',
      fallback: { behavior: 'static', replicas: 4 },
      metricType: 'Value',
      counts: { replicas: 3, readyReplicas: 2 },
      replicas: 4,
      value: 10,
      readsCounts: true,
    },
  ];

  test.each(rows)('$comment: engages exactly threshold × pollingInterval after the first failure', async (row) => {
    const t = setup({
      fallback: { failureThreshold: THRESHOLD, ...row.fallback },
      triggers: [{ metricType: row.metricType, target: 5 }],
      replicas: row.counts,
    });
    t.deliver(ok(1));
    t.deliver(fail());
    await advance(5000);
    t.deliver(fail(), false); // reads keep failing: they do not move the moment
    await advance(ENGAGES_AFTER - 5000 - 1);
    expect(t.series()).toMatchObject({ value: undefined, error: 'connect ECONNREFUSED 10.0.0.1:5672' });
    expect(t.poller.summary()).toMatchObject({ fallbackActive: false, anyError: true });
    expect(t.events.reasons()).toStrictEqual(['KEDAScalerFailed']);
    const changes = t.onChange.mock.calls.length;

    await advance(1);
    expect(t.series()).toMatchObject({ value: row.value, error: undefined });
    expect(t.poller.summary()).toMatchObject({
      fallbackActive: true,
      fallbackReplicas: row.replicas,
      active: true,
      anyError: false,
      allError: false,
      activeMetrics: ['s0-fake'],
    });
    expect(t.poller.summary().triggers[0]).toMatchObject({ failures: THRESHOLD + 1, fallbackReplicas: row.replicas });
    expect(t.replicas).toHaveBeenCalledTimes(row.readsCounts ? 1 : 0);
    expect(t.onChange.mock.calls.length).toBe(changes + 1);
    expect(t.events.events.at(-1)).toMatchObject({
      type: 'Warning',
      reason: 'ScaledObjectFallbackActivated',
      note: `Fallback activated for s0-fake after 4 failed polls: serving ${row.replicas} replicas (${row.fallback.behavior}); last error: connect ECONNREFUSED 10.0.0.1:5672`,
    });

    // Failing reads while falling back keep serving the fallback value, even with a new error.
    t.deliver(fail('503 Service Unavailable'));
    expect(t.series()).toMatchObject({ value: row.value, error: undefined });
  });

  test('threshold 0 engages on the first failed read', async () => {
    const t = setup({ fallback: { failureThreshold: 0, replicas: 2, behavior: 'static' } });
    t.deliver(fail());
    await flush();
    expect(t.series()).toMatchObject({ value: 10, error: undefined });
  });

  test('a recovery before the threshold cancels it', async () => {
    const t = setup({ fallback: { failureThreshold: THRESHOLD, replicas: 2, behavior: 'static' } });
    t.deliver(fail());
    await advance(ENGAGES_AFTER - 1);
    t.deliver(ok(3));
    await advance(ENGAGES_AFTER);
    expect(t.series()).toMatchObject({ value: 3 });
    expect(t.events.reasons()).toStrictEqual(['KEDAScalerFailed']);
  });

  test('the first good read ends it: the real value again, a Deactivated event, onChange', async () => {
    const t = setup({ fallback: { failureThreshold: THRESHOLD, replicas: 4, behavior: 'static' } });
    t.deliver(fail());
    await advance(ENGAGES_AFTER);
    expect(t.series()).toMatchObject({ value: 20 });
    const changes = t.onChange.mock.calls.length;

    t.deliver(ok(3));
    expect(t.series()).toMatchObject({ value: 3, error: undefined });
    expect(t.poller.summary()).toMatchObject({ fallbackActive: false, fallbackReplicas: undefined, anyError: false });
    expect(t.onChange.mock.calls.length).toBe(changes + 1);
    expect(t.events.events.at(-1)).toMatchObject({
      type: 'Normal',
      reason: 'ScaledObjectFallbackDeactivated',
      note: 'Fallback deactivated: s0-fake answers again',
    });
    await advance(10 * ENGAGES_AFTER);
    expect(t.series()).toMatchObject({ value: 3 });
    expect(t.events.reasons()).toStrictEqual([
      'KEDAScalerFailed',
      'ScaledObjectFallbackActivated',
      'ScaledObjectFallbackDeactivated',
    ]);
  });

  test('one Activated event for the object, however many triggers fall back', async () => {
    const t = setup({
      fallback: { failureThreshold: 1, replicas: 2, behavior: 'static' },
      triggers: [{}, {}],
    });
    t.deliver(fail(), true, 0);
    t.deliver(fail(), true, 1);
    await advance(INTERVAL_S * 1000);
    expect(t.poller.summary()).toMatchObject({ fallbackActive: true, allError: false, anyError: false });
    expect(t.events.reasons().filter((r) => r === 'ScaledObjectFallbackActivated')).toHaveLength(1);
    // The Deactivated event waits for the last trigger to recover.
    t.deliver(ok(1), true, 0);
    expect(t.events.reasons()).not.toContain('ScaledObjectFallbackDeactivated');
    t.deliver(ok(1), true, 1);
    expect(t.events.reasons()).toContain('ScaledObjectFallbackDeactivated');
  });

  test('fallback.replicas 0: served, but the object is not active', async () => {
    const t = setup({ fallback: { failureThreshold: 1, replicas: 0, behavior: 'static' } });
    t.deliver(fail());
    await advance(INTERVAL_S * 1000);
    expect(t.series()).toMatchObject({ value: 0, error: undefined });
    expect(t.poller.summary()).toMatchObject({
      fallbackActive: true,
      fallbackReplicas: 0,
      active: false,
      anyError: false,
      activeMetrics: [],
    });
  });

  test('Value metric with 0 ready pods: not engaged yet, retried every pollingInterval until there are', async () => {
    const t = setup({
      fallback: { failureThreshold: 1, replicas: 4, behavior: 'static' },
      triggers: [{ metricType: 'Value', target: 5 }],
      replicas: { replicas: 0, readyReplicas: 0 },
    });
    t.deliver(fail());
    await advance(INTERVAL_S * 1000);
    expect(t.replicas).toHaveBeenCalledTimes(1);
    expect(t.series()).toMatchObject({ value: undefined, error: expect.any(String) as unknown });
    expect(t.poller.summary()).toMatchObject({ fallbackActive: false, anyError: true });

    t.setCounts({ replicas: 1, readyReplicas: 1 });
    await advance(INTERVAL_S * 1000 - 1);
    expect(t.poller.summary().fallbackActive).toBe(false);
    await advance(1);
    expect(t.replicas).toHaveBeenCalledTimes(2);
    expect(t.series()).toMatchObject({ value: 20, error: undefined });
    expect(t.poller.summary()).toMatchObject({ fallbackActive: true, fallbackReplicas: 4 });
  });

  test('a replica count that cannot be read is retried a poll later', async () => {
    let calls = 0;
    const t = setup({
      fallback: { failureThreshold: 1, replicas: 4, behavior: 'currentReplicas' },
      replicas: () =>
        ++calls === 1
          ? Promise.reject(new Error('the API server is down'))
          : Promise.resolve({ replicas: 3, readyReplicas: 3 }),
    });
    t.deliver(fail());
    await advance(INTERVAL_S * 1000);
    expect(t.poller.summary().fallbackActive).toBe(false);
    await advance(INTERVAL_S * 1000);
    expect(t.series()).toMatchObject({ value: 15 });
  });

  test('currentReplicas follows the target while falling back (recomputed every pollingInterval)', async () => {
    const t = setup({
      fallback: { failureThreshold: 1, replicas: 4, behavior: 'currentReplicas' },
      replicas: { replicas: 6, readyReplicas: 6 },
    });
    t.deliver(fail());
    await advance(INTERVAL_S * 1000);
    expect(t.series()).toMatchObject({ value: 30 });
    t.setCounts({ replicas: 8, readyReplicas: 8 });
    await advance(INTERVAL_S * 1000);
    expect(t.series()).toMatchObject({ value: 40 });
    expect(t.poller.summary().fallbackReplicas).toBe(8);
    // One Activated event, not one per recomputation.
    expect(t.events.reasons().filter((r) => r === 'ScaledObjectFallbackActivated')).toHaveLength(1);
  });

  test('a trigger that recovers while the replica count is being read is not put into fallback', async () => {
    let release!: (counts: ReplicaCounts) => void;
    const t = setup({
      fallback: { failureThreshold: 1, replicas: 4, behavior: 'currentReplicas' },
      replicas: () =>
        new Promise<ReplicaCounts>((resolve) => {
          release = resolve;
        }),
    });
    t.deliver(fail());
    await advance(INTERVAL_S * 1000);
    t.deliver(ok(2));
    release({ replicas: 5, readyReplicas: 5 });
    await flush();
    expect(t.series()).toMatchObject({ value: 2 });
    expect(t.poller.summary().fallbackActive).toBe(false);
  });

  test('stop() cancels a pending fallback', async () => {
    const t = setup({ fallback: { failureThreshold: 1, replicas: 4, behavior: 'static' } });
    t.deliver(fail());
    t.poller.stop();
    await advance(10 * INTERVAL_S * 1000);
    expect(t.series()).toMatchObject({ value: undefined });
    expect(t.events.reasons()).toStrictEqual(['KEDAScalerFailed']);
  });

  test('without spec.fallback, a failing trigger stays an error forever', async () => {
    const t = setup();
    t.deliver(fail());
    await advance(100 * INTERVAL_S * 1000);
    expect(t.series()).toMatchObject({ value: undefined, error: expect.any(String) as unknown });
    expect(t.poller.summary()).toMatchObject({ fallbackActive: false, anyError: true, allError: true });
  });
});

describe('scalingModifiers (composite-metric)', () => {
  const AB = { formula: 'a + b * 2', names: ['a', 'b'] };

  test('one series, composite-metric, with the formula over the triggers by name; no per-trigger series', () => {
    const t = setup({ triggers: [{}, {}], composite: AB });
    t.deliver(ok(3), true, 0);
    // Until every trigger was read the formula cannot run: an error series (never 0).
    expect(t.composite()).toMatchObject({ value: undefined, error: 'not every trigger has been read yet' });
    expect(t.poller.summary()).toMatchObject({ ready: false, active: false, anyError: false });
    const reading = ok(4);
    t.deliver(reading, true, 1);
    expect(t.store.ofOwner(OWNER)).toStrictEqual([
      {
        namespace: 'shop',
        metricName: 'composite-metric',
        labels: { [LABEL]: 'orders' },
        value: 11,
        error: undefined,
        timestamp: new Date(reading.at),
        owner: OWNER,
      },
    ]);
    expect(t.poller.summary()).toMatchObject({
      ready: true,
      active: true,
      anyError: false,
      allError: false,
      activeMetrics: ['composite-metric'],
      compositeError: undefined,
    });
    // The per-trigger states are still there (status.triggersActivity).
    expect(t.poller.summary().triggers.map((x) => [x.metricName, x.value])).toStrictEqual([
      ['s0-fake', 3],
      ['s1-fake', 4],
    ]);
    // A new value of one trigger recomputes the composite value.
    t.deliver(ok(0), true, 0);
    expect(t.composite()).toMatchObject({ value: 8 });
  });

  test('an unchanged reading refreshes the composite series timestamp', async () => {
    const t = setup({ triggers: [{}], composite: { formula: 'a', names: ['a'] } });
    t.deliver(ok(2));
    await advance(1000);
    const again = ok(2);
    t.deliver(again, false);
    expect(t.composite()).toMatchObject({ value: 2, timestamp: new Date(again.at) });
  });

  const activation: { comment: string; value: number; activationTarget: number; active: boolean }[] = [
    { comment: 'value above activationTarget: active', value: 3.5, activationTarget: 3, active: true },
    {
      comment: 'value equal to activationTarget: not active (strictly above)',
      value: 3,
      activationTarget: 3,
      active: false,
    },
    { comment: 'value below activationTarget: not active', value: 2, activationTarget: 3, active: false },
    { comment: 'default activationTarget 0, value 0: not active', value: 0, activationTarget: 0, active: false },
    { comment: 'default activationTarget 0, value 0.1: active', value: 0.1, activationTarget: 0, active: true },
    { comment: 'negative activationTarget, value 0: active', value: 0, activationTarget: -1, active: true },
  ];
  test.each(activation)('activation: $comment', ({ value, activationTarget, active }) => {
    const t = setup({ triggers: [{}], composite: { formula: 'a', names: ['a'], activationTarget } });
    t.deliver(ok(value));
    expect(t.composite()).toMatchObject({ value, error: undefined });
    expect(t.poller.summary()).toMatchObject({ active, activeMetrics: active ? ['composite-metric'] : [] });
  });

  test("activity is the composite value's, not the triggers' (a trigger above 0 does not activate)", () => {
    const t = setup({ triggers: [{}, {}], composite: { formula: 'a - b', names: ['a', 'b'] } });
    t.deliver(ok(5), true, 0);
    t.deliver(ok(5), true, 1);
    expect(t.poller.summary()).toMatchObject({ active: false, activeMetrics: [] });
    expect(t.poller.summary().triggers.every((x) => x.active)).toBe(true);
  });

  test('a failing trigger without fallback: the composite metric is an error (no value), the summary all errors', () => {
    const t = setup({ triggers: [{}, {}], composite: AB });
    t.deliver(ok(3), true, 0);
    t.deliver(fail(), true, 1);
    expect(t.composite()).toMatchObject({ value: undefined, error: 's1-fake: connect ECONNREFUSED 10.0.0.1:5672' });
    expect(t.poller.summary()).toMatchObject({
      ready: true,
      active: false,
      anyError: true,
      allError: true,
      fallbackActive: false,
      compositeError: 's1-fake: connect ECONNREFUSED 10.0.0.1:5672',
    });
    // It answers again: the formula's value again.
    t.deliver(ok(1), true, 1);
    expect(t.composite()).toMatchObject({ value: 5, error: undefined });
    expect(t.poller.summary()).toMatchObject({ anyError: false, compositeError: undefined });
  });

  test('a formula that fails at evaluation (an operator on nil would, a division by zero does): an error', () => {
    const t = setup({ triggers: [{}, {}], composite: { formula: 'a / b', names: ['a', 'b'] } });
    t.deliver(ok(1), true, 0);
    t.deliver(ok(0), true, 1);
    expect(t.composite()).toMatchObject({ value: undefined });
    expect(t.composite()?.error).toContain('the scalingModifiers formula failed');
    expect(t.poller.summary()).toMatchObject({ active: false, anyError: true });
  });

  test('fallback static: the composite target × fallback.replicas (not the trigger target)', async () => {
    const t = setup({
      fallback: { failureThreshold: 1, replicas: 4, behavior: 'static' },
      triggers: [{ target: 100 }, { target: 100 }],
      composite: { ...AB, target: 5 },
    });
    t.deliver(ok(3), true, 0);
    t.deliver(fail(), true, 1);
    await advance(INTERVAL_S * 1000 - 1);
    expect(t.composite()).toMatchObject({ value: undefined });
    await advance(1);
    expect(t.composite()).toMatchObject({ value: 20, error: undefined });
    expect(t.replicas).not.toHaveBeenCalled();
    expect(t.poller.summary()).toMatchObject({
      fallbackActive: true,
      fallbackReplicas: 4,
      active: true,
      anyError: false,
      activeMetrics: ['composite-metric'],
    });
  });

  test('fallback static with a Value composite metric: target × replicas / ready pods', async () => {
    const t = setup({
      fallback: { failureThreshold: 1, replicas: 4, behavior: 'static' },
      triggers: [{}],
      composite: { formula: 'a', names: ['a'], target: 5, metricType: 'Value' },
      replicas: { replicas: 3, readyReplicas: 2 },
    });
    t.deliver(fail());
    await advance(INTERVAL_S * 1000);
    expect(t.replicas).toHaveBeenCalled();
    expect(t.composite()).toMatchObject({ value: 10, error: undefined });
  });

  test('fallback scalingModifiers: the failing trigger is nil in the formula (`??` still gives a value)', async () => {
    const t = setup({
      fallback: { failureThreshold: 1, replicas: 4, behavior: 'scalingModifiers' },
      triggers: [{}, {}],
      composite: { formula: '(a ?? 10) + b', names: ['a', 'b'] },
    });
    t.deliver(fail(), true, 0);
    t.deliver(ok(3), true, 1);
    // Before the threshold the failure is an error, as without fallback.
    expect(t.composite()).toMatchObject({ value: undefined, error: 's0-fake: connect ECONNREFUSED 10.0.0.1:5672' });
    await advance(INTERVAL_S * 1000);
    expect(t.composite()).toMatchObject({ value: 13, error: undefined });
    expect(t.replicas).not.toHaveBeenCalled();
    expect(t.poller.summary()).toMatchObject({ fallbackActive: true, active: true, anyError: false });
    // A new value of the other trigger: the formula runs again with a still nil.
    t.deliver(ok(7), true, 1);
    expect(t.composite()).toMatchObject({ value: 17 });
    // a answers again: its value replaces nil.
    t.deliver(ok(1), true, 0);
    expect(t.composite()).toMatchObject({ value: 8 });
    expect(t.poller.summary()).toMatchObject({ fallbackActive: false });
  });

  test('fallback scalingModifiers, the whole formula nil: fallback.replicas × the composite target', async () => {
    const t = setup({
      fallback: { failureThreshold: 1, replicas: 4, behavior: 'scalingModifiers' },
      triggers: [{}, {}],
      composite: { formula: 'a ?? b', names: ['a', 'b'], target: 5 },
    });
    t.deliver(fail(), true, 0);
    t.deliver(fail(), true, 1);
    await advance(INTERVAL_S * 1000);
    expect(t.composite()).toMatchObject({ value: 20, error: undefined });
    expect(t.poller.summary()).toMatchObject({ fallbackActive: true, active: true, anyError: false });
  });

  test('fallback scalingModifiers, an operator on the nil trigger: an error, no value', async () => {
    const t = setup({
      fallback: { failureThreshold: 1, replicas: 4, behavior: 'scalingModifiers' },
      triggers: [{}, {}],
      composite: AB,
    });
    t.deliver(fail(), true, 0);
    t.deliver(ok(3), true, 1);
    await advance(INTERVAL_S * 1000);
    expect(t.composite()).toMatchObject({ value: undefined });
    expect(t.composite()?.error).toContain('the scalingModifiers formula failed');
    expect(t.poller.summary()).toMatchObject({ active: false, anyError: true });
  });
});
