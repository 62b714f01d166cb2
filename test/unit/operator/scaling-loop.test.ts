import { describe, expect, it } from 'vitest';
import { ScalerError } from '../../../src/errors.ts';
import { MetricStore } from '../../../src/metric-store.ts';
import { GuardedScaler } from '../../../src/scalers/breaker.ts';
import type { Sample, Scaler } from '../../../src/scalers/scaler.ts';
import type { KubePort, ScaleTarget } from '../../../src/operator/kube.ts';
import { ScalingLoop, type LoopSettings } from '../../../src/operator/scaling-loop.ts';

/** A scaler whose next reading the test sets: a number, or an Error to throw. */
class ScriptedScaler implements Scaler {
  readonly metricName: string;
  readonly target = 10;
  readonly metricType = 'AverageValue' as const;
  next: number | Error = 0;
  activation = 0;

  constructor(metricName: string) {
    this.metricName = metricName;
  }

  sample(): Promise<Sample> {
    if (this.next instanceof Error) return Promise.reject(this.next);
    return Promise.resolve({ value: this.next, active: this.next > this.activation });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The scale subresource of one workload, in memory. */
class MemoryScale implements Pick<KubePort, 'readScale' | 'writeScale'> {
  replicas: number;
  writes: number[] = [];
  failReads = false;

  constructor(replicas: number) {
    this.replicas = replicas;
  }

  readScale(_target: ScaleTarget) {
    if (this.failReads) return Promise.reject(new Error('deployments.apps "worker" not found'));
    return Promise.resolve({
      replicas: this.replicas,
      statusReplicas: this.replicas,
      selector: 'app=w',
      resource: 'deployments',
    });
  }

  writeScale(_target: ScaleTarget, replicas: number) {
    this.replicas = replicas;
    this.writes.push(replicas);
    return Promise.resolve();
  }
}

const settings: LoopSettings = {
  namespace: 'ns',
  name: 'so',
  generation: 1,
  target: { namespace: 'ns', apiVersion: 'apps/v1', kind: 'Deployment', name: 'worker' },
  pollingIntervalS: 1,
  cooldownPeriodS: 30,
  initialCooldownPeriodS: 0,
  minReplicaCount: 0,
  maxReplicaCount: 10,
  idleReplicaCount: undefined,
  createdAt: new Date('2026-01-01T00:00:00Z'),
};

function setup(replicas: number, options: { lastActiveTime?: Date } = {}) {
  const clock = { now: new Date('2026-01-01T01:00:00Z') };
  const scaler = new ScriptedScaler('s0-rabbitmq-q');
  const scale = new MemoryScale(replicas);
  const store = new MetricStore();
  let changes = 0;
  const logs: { level: string; message: string }[] = [];
  const kube: KubePort = {
    readScale: (t) => scale.readScale(t),
    writeScale: (t, r) => scale.writeScale(t, r),
    applyHpa: () => Promise.reject(new Error('not used')),
    deleteHpa: () => Promise.reject(new Error('not used')),
    patchStatus: () => Promise.reject(new Error('not used')),
  };
  const loop = new ScalingLoop(
    settings,
    [new GuardedScaler(scaler, { timeoutMs: 1000, resetTimeoutMs: 5000, windowMs: 10_000 })],
    {
      kube,
      store,
      now: () => clock.now,
      log: (level, message) => logs.push({ level, message }),
      onChange: () => {
        changes++;
      },
    },
    options.lastActiveTime,
  );
  const advance = (seconds: number) => {
    clock.now = new Date(clock.now.getTime() + seconds * 1000);
  };
  return { loop, scaler, scale, store, clock, advance, changes: () => changes, logs };
}

describe('ScalingLoop', () => {
  it('writes each value to the store under the ScaledObject label, and scales from zero when active', async () => {
    const t = setup(0);
    t.scaler.next = 7;
    await t.loop.tick();
    expect(t.scale.writes).toEqual([1]);
    const [series] = t.store.find('ns', 's0-rabbitmq-q');
    expect(series).toMatchObject({ value: 7, error: undefined, labels: { 'scaledobject.sluice.dev/name': 'so' } });
    expect(t.loop.snapshot()).toMatchObject({
      active: true,
      currentReplicas: 1,
      firstSeenReplicas: 0,
      resource: 'deployments',
    });
    expect(t.loop.snapshot().lastActiveTime).toEqual(t.clock.now);
  });

  it('stays at zero while no trigger is active', async () => {
    const t = setup(0);
    t.scaler.next = 0;
    await t.loop.tick();
    t.advance(60);
    await t.loop.tick();
    expect(t.scale.writes).toEqual([]);
    expect(t.loop.snapshot().decision?.condition.reason).toBe('ScalerNotActive');
  });

  it('scales to zero only after the cooldown since the last activity', async () => {
    const t = setup(3);
    t.scaler.next = 50;
    await t.loop.tick(); // active: lastActiveTime = now
    t.scaler.next = 0;
    t.advance(29);
    await t.loop.tick();
    expect(t.scale.writes).toEqual([]);
    expect(t.loop.snapshot().decision?.condition.reason).toBe('ScalerCooldown');
    t.advance(2);
    await t.loop.tick();
    expect(t.scale.writes).toEqual([0]);
  });

  it('records an error as unknown (no value) and never scales in on it, however long it lasts', async () => {
    const t = setup(3, { lastActiveTime: new Date('2026-01-01T00:00:00Z') });
    t.scaler.next = new ScalerError('connection refused');
    for (let i = 0; i < 5; i++) {
      await t.loop.tick();
      t.advance(600);
    }
    expect(t.scale.writes).toEqual([]);
    const [series] = t.store.find('ns', 's0-rabbitmq-q');
    expect(series?.value).toBeUndefined();
    expect(series?.error).toContain('connection refused');
    expect(t.loop.snapshot().decision?.readyCondition.reason).toBe('TriggerError');
  });

  it('reports a scale subresource it cannot read, without scaling', async () => {
    const t = setup(0);
    t.scale.failReads = true;
    t.scaler.next = 99;
    await t.loop.tick();
    expect(t.loop.snapshot().scaleError).toContain('not found');
    expect(t.scale.writes).toEqual([]);
    // The value is still served: the metric does not depend on the target.
    expect(t.store.find('ns', 's0-rabbitmq-q')[0]?.value).toBe(99);
  });

  it('signals a status change on the first tick and on flips, not on steady polls', async () => {
    const t = setup(0);
    t.scaler.next = 0;
    await t.loop.tick();
    expect(t.changes()).toBe(1);
    await t.loop.tick();
    await t.loop.tick();
    expect(t.changes()).toBe(1);
    t.scaler.next = 5;
    await t.loop.tick(); // becomes active and scales 0 → 1
    expect(t.changes()).toBe(2);
    t.advance(1);
    await t.loop.tick(); // still active: lastActiveTime moves by 1 s only
    expect(t.changes()).toBe(2);
    t.advance(20);
    await t.loop.tick(); // moved by more than max(10 s, cooldown / 10): persist it
    expect(t.changes()).toBe(3);
  });

  it('logs a failing trigger once per change (and every 5 minutes), not once per poll', async () => {
    const t = setup(1);
    t.scaler.next = new ScalerError('connection refused');
    for (let i = 0; i < 10; i++) {
      await t.loop.tick();
      t.advance(1);
    }
    // Two changes: the first failure, then the circuit breaker opening after repeated failures.
    const warnings = () => t.logs.filter((l) => l.level === 'warn');
    expect(warnings()).toHaveLength(2);
    t.advance(300);
    await t.loop.tick();
    expect(warnings()).toHaveLength(3);
  });

  it('logs a recovery once', async () => {
    const t = setup(1);
    t.scaler.next = new ScalerError('HTTP 503');
    await t.loop.tick();
    t.scaler.next = 4;
    await t.loop.tick();
    await t.loop.tick();
    expect(t.logs.filter((l) => l.message.includes('recovered'))).toHaveLength(1);
  });

  it('drops its series from the store when stopped', async () => {
    const t = setup(0);
    await t.loop.tick();
    expect(t.store.find('ns', 's0-rabbitmq-q')).toHaveLength(1);
    await t.loop.stop();
    expect(t.store.find('ns', 's0-rabbitmq-q')).toHaveLength(0);
  });
});
