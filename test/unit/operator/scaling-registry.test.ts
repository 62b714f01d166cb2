// Proves the ScalingRegistry's lifecycle over a real ReaderHub with in-memory sources: ensure starts, keeps or
// restarts only what changed (a new poller subscribes before the old one leaves, so shared readers are never closed
// and reopened; surviving series keep their values, removed ones are pruned), an executor restart keeps the object's
// state (lastActiveTime), and remove stops everything and drops the series.
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import type { Logger } from '../../../src/log.ts';
import { MetricStore } from '../../../src/metric-store.ts';
import type { ObjectReference } from '../../../src/operator/events.ts';
import type { ExecutorSettings } from '../../../src/operator/executor.ts';
import { ScalingRegistry, type RuntimeSpec } from '../../../src/operator/scaling-registry.ts';
import { ReaderHub } from '../../../src/scalers/readers.ts';
import { SharedPool } from '../../../src/scalers/shared.ts';
import { FakeSource, fakeScaler } from '../../support/fake-source.ts';
import { MemoryKube, executorSettings, recordingEvents } from '../../support/operator.ts';

const T0 = new Date('2026-06-01T12:00:00Z');
const KEY = 'shop/orders';
const REF: ObjectReference = {
  apiVersion: 'sluice.dev/v1alpha1',
  kind: 'ScaledObject',
  namespace: 'shop',
  name: 'orders',
  uid: 'uid-1',
};
const log: Logger = () => undefined;
/** The hub reads every second; with Math.random() pinned to 0.5 its turns fall at 500, 1500, … ms. */
const TURN = 500;

let pool: SharedPool;
let hub: ReaderHub;
let store: MetricStore;
let kube: MemoryKube;
let registry: ScalingRegistry;
let onChange: ReturnType<typeof vi.fn<(key: string) => void>>;

beforeEach(() => {
  vi.useFakeTimers({ now: T0 });
  vi.spyOn(Math, 'random').mockReturnValue(0.5);
  pool = new SharedPool();
  hub = new ReaderHub({ intervalMs: 1000, shared: pool });
  store = new MetricStore();
  kube = new MemoryKube();
  onChange = vi.fn<(key: string) => void>();
  registry = new ScalingRegistry({ hub, store, kube, events: recordingEvents(), log, onChange });
});
afterEach(async () => {
  await registry.stopAll();
  await hub.close();
  vi.restoreAllMocks();
  vi.useRealTimers();
});

const flush = () => vi.advanceTimersByTimeAsync(0);

/** A trigger named `name` at `index`, reading `source`. */
interface TriggerDef {
  readonly name: string;
  readonly source: FakeSource;
}

function spec(
  triggers: readonly TriggerDef[],
  hashes: { poller: string; executor: string },
  executor: Partial<ExecutorSettings> = {},
): RuntimeSpec {
  return {
    key: KEY,
    poller: {
      ref: REF,
      triggers: triggers.map((t, index) => fakeScaler(t.source, { index, name: t.name })),
      pollingIntervalS: 30,
      fallback: undefined,
    },
    executor: executorSettings(REF, T0, executor),
    pollerHash: hashes.poller,
    executorHash: hashes.executor,
    lastActiveTime: undefined,
  };
}

const values = () =>
  Object.fromEntries(store.ofOwner(KEY).map((s) => [s.metricName, s.value] as const)) as Record<string, unknown>;

describe('ensure', () => {
  test('starts the poller and the executor of a new object', async () => {
    const a = new FakeSource('rabbit|a', 'rabbit').value(0);
    expect(await registry.ensure(spec([{ name: 'a', source: a }], { poller: 'p1', executor: 'e1' }))).toBe('started');
    await flush();
    expect(registry.has(KEY)).toBe(true);
    expect(a.opens).toBe(1);
    expect(values()).toStrictEqual({ 's0-a': 0 });
    expect(registry.snapshot(KEY)).toMatchObject({
      metricNames: ['s0-a'],
      poller: { ready: true, active: false },
      executor: { evaluations: 1, decision: { rule: 'steady' } },
      state: { firstSeenReplicas: 0 },
    });
    expect(onChange).toHaveBeenCalledWith(KEY);
  });

  test('a trigger becoming active reaches the executor at once (activation within the read)', async () => {
    const a = new FakeSource('rabbit|a', 'rabbit').value(0);
    await registry.ensure(spec([{ name: 'a', source: a }], { poller: 'p1', executor: 'e1' }));
    await flush();
    a.value(7);
    await vi.advanceTimersByTimeAsync(TURN);
    expect(kube.writes()).toStrictEqual([1]);
  });

  test('the same hashes change nothing: no new subscription, no restart', async () => {
    const a = new FakeSource('rabbit|a', 'rabbit').value(3);
    await registry.ensure(spec([{ name: 'a', source: a }], { poller: 'p1', executor: 'e1' }));
    await flush();
    const subscribe = vi.spyOn(hub, 'subscribe');
    const evaluations = registry.snapshot(KEY)?.executor.evaluations;
    expect(await registry.ensure(spec([{ name: 'a', source: a }], { poller: 'p1', executor: 'e1' }))).toBe('unchanged');
    await flush();
    expect(subscribe).not.toHaveBeenCalled();
    expect([a.opens, a.closes]).toStrictEqual([1, 0]);
    expect(registry.snapshot(KEY)?.executor.evaluations).toBe(evaluations);
  });

  test('a poller change: the new poller subscribes before the old leaves; surviving series kept, removed ones pruned', async () => {
    const a = new FakeSource('rabbit|a', 'rabbit').value(3);
    const b = new FakeSource('rabbit|b', 'rabbit').value(4);
    await registry.ensure(
      spec(
        [
          { name: 'a', source: a },
          { name: 'b', source: b },
        ],
        { poller: 'p1', executor: 'e1' },
      ),
    );
    await flush();
    expect(values()).toStrictEqual({ 's0-a': 3, 's1-b': 4 });
    const readsOfA = a.reads;

    // The same source key for s0 (a new Source object, as a rebuilt scaler has), s1 now reads c.
    const a2 = new FakeSource('rabbit|a', 'rabbit').value(3);
    const c = new FakeSource('rabbit|c', 'rabbit').value(5);
    const outcome = await registry.ensure(
      spec(
        [
          { name: 'a', source: a2 },
          { name: 'c', source: c },
        ],
        { poller: 'p2', executor: 'e1' },
      ),
    );
    expect(outcome).toBe('restarted');
    // Before any new read: s0-a still has its value, s1-b is gone.
    expect(values()).toStrictEqual({ 's0-a': 3 });
    await flush();
    expect(values()).toStrictEqual({ 's0-a': 3, 's1-c': 5 });
    // The shared reader of a was never closed nor reopened, and the new poller needed no read of its own.
    expect([a.opens, a.closes, a2.opens]).toStrictEqual([1, 0, 0]);
    expect(a.reads).toBe(readsOfA);
    expect(b.closes).toBe(1);
    expect(pool.held()).toStrictEqual(new Map([['conn|rabbit', 2]]));
    expect(hub.stats().sources).toBe(2);
    expect(registry.snapshot(KEY)?.metricNames).toStrictEqual(['s0-a', 's1-c']);
  });

  test('a poller change notifies the executor (it evaluates on the new summary)', async () => {
    const a = new FakeSource('rabbit|a', 'rabbit').value(0);
    await registry.ensure(spec([{ name: 'a', source: a }], { poller: 'p1', executor: 'e1' }));
    await flush();
    const evaluations = registry.snapshot(KEY)?.executor.evaluations ?? 0;
    const hot = new FakeSource('rabbit|hot', 'rabbit').value(9);
    await registry.ensure(spec([{ name: 'hot', source: hot }], { poller: 'p2', executor: 'e1' }));
    await flush();
    expect(registry.snapshot(KEY)?.executor.evaluations).toBeGreaterThan(evaluations);
    expect(kube.writes()).toStrictEqual([1]);
    expect(a.closes).toBe(1);
  });

  test('an executor change restarts the executor only, keeping the object state (lastActiveTime)', async () => {
    kube.replicas = 3;
    const a = new FakeSource('rabbit|a', 'rabbit').value(5);
    await registry.ensure(spec([{ name: 'a', source: a }], { poller: 'p1', executor: 'e1' }));
    await flush();
    expect(registry.snapshot(KEY)?.executor.decision?.rule).toBe('active');

    a.value(0);
    await vi.advanceTimersByTimeAsync(TURN); // the trigger goes inactive at this read
    const endedAt = new Date(T0.getTime() + TURN);
    expect(registry.snapshot(KEY)).toMatchObject({
      executor: { decision: { rule: 'cooldown' } },
      state: { lastActiveTime: endedAt },
    });
    const state = registry.snapshot(KEY)?.state;

    const subscribe = vi.spyOn(hub, 'subscribe');
    const outcome = await registry.ensure(
      spec([{ name: 'a', source: a }], { poller: 'p1', executor: 'e2' }, { maxReplicaCount: 20 }),
    );
    expect(outcome).toBe('restarted');
    await flush();
    const snapshot = registry.snapshot(KEY);
    // A new executor (its own evaluation count), the same state: still cooling down from endedAt, no scale-in.
    expect(snapshot?.executor.evaluations).toBe(1);
    expect(snapshot?.state).toBe(state);
    expect(snapshot?.state.lastActiveTime).toStrictEqual(endedAt);
    expect(snapshot?.executor.decision?.rule).toBe('cooldown');
    expect(kube.writes()).toStrictEqual([]);
    expect(subscribe).not.toHaveBeenCalled();
    expect([a.opens, a.closes]).toStrictEqual([1, 0]);
  });

  test('lastActiveTime from the spec (the persisted status) seeds the state', async () => {
    kube.replicas = 3;
    const a = new FakeSource('rabbit|a', 'rabbit').value(0);
    const lastActiveTime = new Date(T0.getTime() - 60_000);
    await registry.ensure({ ...spec([{ name: 'a', source: a }], { poller: 'p1', executor: 'e1' }), lastActiveTime });
    await flush();
    expect(registry.snapshot(KEY)).toMatchObject({
      state: { lastActiveTime, persistedLastActiveTime: lastActiveTime },
      executor: { decision: { rule: 'cooldown' } },
    });
    expect(kube.writes()).toStrictEqual([]);
  });
});

describe('remove', () => {
  test('stops both parts, closes the readers and drops the series', async () => {
    const a = new FakeSource('rabbit|a', 'rabbit').value(3);
    const b = new FakeSource('prom|b', 'prom').value(4);
    await registry.ensure(
      spec(
        [
          { name: 'a', source: a },
          { name: 'b', source: b },
        ],
        { poller: 'p1', executor: 'e1' },
      ),
    );
    await flush();
    expect(store.ofOwner(KEY)).toHaveLength(2);

    await registry.remove(KEY);
    await flush();
    expect(registry.has(KEY)).toBe(false);
    expect(registry.snapshot(KEY)).toBeUndefined();
    expect(store.ofOwner(KEY)).toStrictEqual([]);
    expect(store.metricNames()).toStrictEqual([]);
    expect([a.closes, b.closes]).toStrictEqual([1, 1]);
    expect(pool.held().size).toBe(0);
    expect(hub.stats()).toMatchObject({ sources: 0, backends: 0 });

    const reads = kube.of('readScale').length;
    await vi.advanceTimersByTimeAsync(120_000);
    expect(kube.of('readScale')).toHaveLength(reads);
    expect(a.reads + b.reads).toBe(2);
  });

  test('removing an unknown key still drops any series it owns', async () => {
    store.set({
      namespace: 'shop',
      metricName: 's0-left-over',
      labels: {},
      value: 1,
      error: undefined,
      timestamp: T0,
      owner: KEY,
    });
    await registry.remove(KEY);
    expect(store.ofOwner(KEY)).toStrictEqual([]);
  });
});

describe('leader election: executors only on the leader', () => {
  function follower(): ScalingRegistry {
    return new ScalingRegistry({ hub, store, kube, events: recordingEvents(), log, onChange, leading: false });
  }

  test('a follower polls (the store fills) and never writes the scale', async () => {
    registry = follower();
    const a = new FakeSource('rabbit|a', 'rabbit').value(7);
    await registry.ensure(spec([{ name: 'a', source: a }], { poller: 'p1', executor: 'e1' }));
    await vi.advanceTimersByTimeAsync(5_000);
    expect(values()).toStrictEqual({ 's0-a': 7 });
    expect(registry.snapshot(KEY)?.executor.evaluations).toBe(0);
    expect(kube.calls.filter((c) => c.op === 'writeScale' || c.op === 'readScale')).toStrictEqual([]);
  });

  test('lead() starts every executor at once; follow() stops them and the pollers carry on', async () => {
    registry = follower();
    const a = new FakeSource('rabbit|a', 'rabbit').value(7);
    await registry.ensure(spec([{ name: 'a', source: a }], { poller: 'p1', executor: 'e1' }));
    await flush();
    registry.lead();
    await flush();
    expect(kube.writes()).toStrictEqual([1]);
    await registry.follow();
    expect(registry.leading).toBe(false);
    a.value(0);
    kube.replicas = 1;
    await vi.advanceTimersByTimeAsync(400_000); // past the cooldown: a leader would scale to zero
    expect(kube.writes()).toStrictEqual([1]);
    expect(values()).toStrictEqual({ 's0-a': 0 });
  });

  test("a follower takes lastActiveTime from the leader's status: the cooldown resumes where it was", async () => {
    registry = follower();
    kube.replicas = 1;
    const a = new FakeSource('rabbit|a', 'rabbit').value(0);
    await registry.ensure(spec([{ name: 'a', source: a }], { poller: 'p1', executor: 'e1' }));
    // The leader last saw activity 290 s ago (status.lastActiveTime), of a 300 s cooldown.
    const lastActiveTime = new Date(Date.now() - 290_000);
    await registry.ensure({ ...spec([{ name: 'a', source: a }], { poller: 'p1', executor: 'e1' }), lastActiveTime });
    registry.lead();
    await vi.advanceTimersByTimeAsync(9_000);
    expect(kube.writes()).toStrictEqual([]);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(kube.writes()).toStrictEqual([0]);
  });
});

describe('logging', () => {
  test('objects whose triggers fail with one backend error share one line, and the count follows', async () => {
    const lines: string[] = [];
    await registry.stopAll();
    registry = new ScalingRegistry({
      hub,
      store,
      kube,
      events: recordingEvents(),
      log: (level, message) => lines.push(`${level}: ${message}`),
      onChange,
    });
    const source = new FakeSource('broker|q', 'broker').set({ kind: 'backend-error', message: 'connect ECONNREFUSED' });
    for (const name of ['a', 'b', 'c']) {
      const base = spec([{ name: 'q', source }], { poller: 'p', executor: 'e' });
      await registry.ensure({
        ...base,
        key: `shop/${name}`,
        poller: { ...base.poller, ref: { ...REF, name, uid: name } },
      });
    }
    await flush();
    expect(lines.filter((l) => l.includes('failed'))).toStrictEqual([
      'warn: trigger s0-q of shop/a failed; its value is unknown (not zero)',
    ]);
    await registry.stopAll();
    expect(lines.filter((l) => l.includes('failed'))).toStrictEqual([
      'warn: trigger s0-q of shop/a failed; its value is unknown (not zero)',
      'warn: 2 more triggers failed with the same error in the 60 s after that line',
    ]);
  });
});
