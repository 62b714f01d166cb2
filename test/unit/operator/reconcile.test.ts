// Proves reconcile's checklist against in-memory ports: gone → removed; invalid (schema, trigger parameters, a target
// that rounds to a zero Quantity) → no HPA, nothing running, Ready=False naming the field, one event; a missing target
// or a refused HPA → the same with a requeue; API errors and credential failures → retried without stopping what runs
// on the same generation; valid → the desired HPA, a RuntimeSpec whose hashes change only with what they cover, and
// the status written only when it differs.
import { ApiException, type KubernetesObject, type V2HorizontalPodAutoscaler } from '@kubernetes/client-node';
import { beforeEach, describe, expect, test, vi } from 'vitest';
import { ValidationError } from '../../../src/errors.ts';
import type { Logger } from '../../../src/log.ts';
import { AuthResolutionError, type AuthResolution, type AuthResolver } from '../../../src/operator/auth-resolver.ts';
import { desiredHpa, withDesiredDigest } from '../../../src/operator/hpa.ts';
import { TargetNotFoundError } from '../../../src/operator/kube.ts';
import { workloadOf } from '../../../src/operator/ownership.ts';
import {
  createReconciler,
  HPA_RECHECK_MS,
  STALE_CACHE_RETRY_MS,
  TARGET_RECHECK_MS,
  type Reconciler,
  type RuntimePort,
} from '../../../src/operator/reconcile.ts';
import { parseScaledObject, type ScaledObjectStatus } from '../../../src/operator/scaled-object.ts';
import type { RuntimeSnapshot, RuntimeSpec } from '../../../src/operator/scaling-registry.ts';
import { noCluster } from '../../support/trigger.ts';
import { MemoryKube, recordingEvents, type RecordingEvents } from '../../support/operator.ts';

const KEY = 'shop/orders';
const NOW = new Date('2026-06-01T12:00:00Z');
const log: Logger = () => undefined;

class FakeRuntime implements RuntimePort {
  readonly ensured: RuntimeSpec[] = [];
  readonly removed: string[] = [];
  readonly #running = new Set<string>();

  ensure(spec: RuntimeSpec): Promise<unknown> {
    this.ensured.push(spec);
    this.#running.add(spec.key);
    return Promise.resolve('started');
  }

  remove(key: string): Promise<void> {
    this.removed.push(key);
    this.#running.delete(key);
    return Promise.resolve();
  }

  has(key: string): boolean {
    return this.#running.has(key);
  }

  snapshot(_key: string): RuntimeSnapshot | undefined {
    return undefined;
  }
}

type Ref = Parameters<typeof workloadOf>[0];
/** A ScaledObject as the informer cache holds it (plain JSON). */
interface Raw {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    generation: number;
    creationTimestamp: string;
    resourceVersion?: string;
    annotations?: Record<string, string>;
    finalizers?: string[];
    deletionTimestamp?: string;
  };
  spec: Record<string, unknown> & {
    triggers: { type: string; name?: string; metricType?: string; metadata: Record<string, string> }[];
  };
  status?: ScaledObjectStatus;
}

function rawScaledObject(): Raw {
  return {
    apiVersion: 'sluice.dev/v1alpha1',
    kind: 'ScaledObject',
    metadata: {
      name: 'orders',
      namespace: 'shop',
      uid: 'uid-1',
      generation: 1,
      creationTimestamp: '2026-06-01T11:00:00Z',
    },
    spec: {
      scaleTargetRef: { name: 'orders' },
      minReplicaCount: 0,
      maxReplicaCount: 10,
      triggers: [{ type: 'rabbitmq', metadata: { host: 'http://guest:guest@127.0.0.1:1', queueName: 'orders' } }],
    },
  };
}

const RESOLVED: AuthResolution = { triggers: [], fingerprint: 'x' };

let kube: MemoryKube;
let runtime: FakeRuntime;
let events: RecordingEvents;
let cache: Map<string, Raw>;
/** The HPA informer's cache: every HPA of the namespace, not only sluice's. */
let hpas: V2HorizontalPodAutoscaler[];
let resolve: ReturnType<typeof vi.fn<AuthResolver['resolve']>>;
let reconciler: Reconciler;
let so: Raw;
/** Whether this replica leads (leader election); most tests lead. */
let leading: boolean;

beforeEach(() => {
  kube = new MemoryKube();
  kube.replicas = 1;
  // The API server applies status merge patches to the object the cache then sees (and refuses one guarded by a
  // resourceVersion the object no longer has).
  kube.onPatchStatus = (ref, patch, resourceVersion) => {
    const object = cache.get(`${ref.namespace}/${ref.name}`);
    if (object === undefined) return Promise.reject(new ApiException(404, 'Not Found', '{}', {}));
    if (resourceVersion !== object.metadata.resourceVersion) {
      return Promise.reject(new ApiException(409, 'Conflict', '{}', {}));
    }
    object.metadata.resourceVersion = String(Number(resourceVersion ?? '0') + 1);
    const status: Record<string, unknown> = { ...object.status };
    for (const [field, value] of Object.entries(patch)) {
      if (value === null) Reflect.deleteProperty(status, field);
      else status[field] = structuredClone(value);
    }
    object.status = status;
    return Promise.resolve();
  };
  // The API server sets the finalizers on the object the cache then sees; one being deleted goes once they are gone.
  kube.onSetFinalizers = (ref, finalizers) => {
    const key = `${ref.namespace}/${ref.name}`;
    const object = cache.get(key);
    if (object === undefined) return Promise.reject(new ApiException(404, 'Not Found', '{}', {}));
    object.metadata.finalizers = [...finalizers];
    if (object.metadata.deletionTimestamp !== undefined && finalizers.length === 0) cache.delete(key);
    return Promise.resolve();
  };
  runtime = new FakeRuntime();
  events = recordingEvents();
  so = rawScaledObject();
  cache = new Map([[KEY, so]]);
  hpas = [];
  resolve = vi.fn<AuthResolver['resolve']>(() => Promise.resolve(RESOLVED));
  leading = true;
  const auth: AuthResolver = { resolve };
  reconciler = createReconciler({
    kube,
    auth,
    cluster: noCluster,
    runtime,
    events,
    cache: {
      get: (name, namespace) => cache.get(`${namespace}/${name}`) as KubernetesObject | undefined,
    },
    hpas: {
      list: (namespace) => hpas.filter((h) => h.metadata?.namespace === namespace),
      get: (name, namespace) => hpas.find((h) => h.metadata?.namespace === namespace && h.metadata.name === name),
    },
    // The controller's index, by scanning the caches.
    targeting: (namespace, workload) => {
      const on = (ref: Parameters<typeof workloadOf>[0] | undefined) =>
        JSON.stringify(workloadOf(ref ?? {})) === JSON.stringify(workload);
      return {
        scaledObjects: [...cache.values()]
          .filter((o) => o.metadata.namespace === namespace && on(o.spec['scaleTargetRef'] as Ref | undefined))
          .map((o) => o as unknown as KubernetesObject),
        hpas: hpas.filter((h) => h.metadata?.namespace === namespace && on(h.spec.scaleTargetRef)),
      };
    },
    log,
    now: () => NOW,
    leading: () => leading,
  });
});

const reconcile = () => reconciler.reconcile(KEY);
const status = (): ScaledObjectStatus => so.status ?? {};
const ready = () => status().conditions?.find((c) => c.type === 'Ready');
const patches = () => kube.of('patchStatus');
/** Simulates an edit of the spec (the API server bumps the generation). */
function edit(change: (spec: Raw['spec']) => void): void {
  change(so.spec);
  so.metadata.generation++;
}

describe('gone', () => {
  test('an object no longer in the cache: its runtime is removed, nothing else', async () => {
    cache.clear();
    expect(await reconcile()).toBeUndefined();
    expect(runtime.removed).toStrictEqual([KEY]);
    expect(kube.calls).toStrictEqual([]);
  });
});

describe('valid', () => {
  test('applies the desired HPA, ensures the runtime, writes Ready and emits ScaledObjectReady once', async () => {
    expect(await reconcile()).toBeUndefined();
    const parsed = parseScaledObject(rawScaledObject());
    expect(kube.of('applyHpa').map((c) => c.hpa)).toStrictEqual([
      withDesiredDigest(
        desiredHpa({
          scaledObject: parsed,
          metrics: [{ metricName: 's0-rabbitmq-orders', target: 20, metricType: 'AverageValue' }],
        }),
      ),
    ]);
    expect(kube.ops()).toStrictEqual(['readScale', 'applyHpa', 'patchStatus']);
    expect(runtime.ensured).toHaveLength(1);
    const spec = runtime.ensured[0];
    expect(spec).toMatchObject({
      key: KEY,
      poller: { pollingIntervalS: 30, fallback: undefined },
      executor: {
        target: { namespace: 'shop', apiVersion: 'apps/v1', kind: 'Deployment', name: 'orders' },
        targetKind: 'apps/v1.Deployment',
        minReplicaCount: 0,
        maxReplicaCount: 10,
        cooldownPeriodS: 300,
        createdAt: new Date('2026-06-01T11:00:00Z'),
        hasFallback: false,
      },
      lastActiveTime: undefined,
    });
    expect(spec?.poller.triggers.map((t) => t.metricName)).toStrictEqual(['s0-rabbitmq-orders']);
    expect(ready()).toMatchObject({ status: 'True', reason: 'ScaledObjectReady' });
    expect(status()).toMatchObject({
      hpaName: 'sluice-hpa-orders',
      externalMetricNames: ['s0-rabbitmq-orders'],
      observedGeneration: 1,
    });
    expect(events.events).toMatchObject([
      { type: 'Normal', reason: 'ScaledObjectReady', regarding: { name: 'orders', namespace: 'shop', uid: 'uid-1' } },
    ]);
    expect(runtime.removed).toStrictEqual([]);
  });

  test('ScaledObjectReady once, even when the next reconcile still sees the status from before our write', async () => {
    // The informer has not delivered our status write yet (a poller's news comes right after the first write).
    kube.onPatchStatus = () => Promise.resolve();
    await reconcile();
    await reconcile();
    expect(patches()).toHaveLength(2);
    expect(events.reasons()).toStrictEqual(['ScaledObjectReady']);
  });

  test('a second reconcile of the same object writes no status and emits no event; same hashes', async () => {
    await reconcile();
    await reconcile();
    expect(patches()).toHaveLength(1);
    expect(events.reasons()).toStrictEqual(['ScaledObjectReady']);
    const [first, second] = runtime.ensured;
    expect(second?.pollerHash).toBe(first?.pollerHash);
    expect(second?.executorHash).toBe(first?.executorHash);
  });

  test('at rest no write at all: the HPA in the cache is what sluice applied (with server defaults and a status)', async () => {
    await reconcile();
    const applied = kube.calls.find((c) => c.op === 'applyHpa')?.hpa;
    expect(applied?.metadata?.annotations?.['sluice.dev/desired-digest']).toMatch(/^[0-9a-f]{32}$/);
    // What the informer holds: the applied object plus what the API server and the HPA controller add.
    const stored = structuredClone(applied) as V2HorizontalPodAutoscaler & { spec: { maxReplicas: number } };
    Object.assign(stored.metadata ?? {}, { resourceVersion: '7', uid: 'hpa-uid', generation: 1 });
    stored.status = { currentReplicas: 1, desiredReplicas: 1 };
    hpas.push(stored);
    kube.calls.length = 0;
    await reconcile();
    expect(kube.calls.filter((c) => c.op !== 'readScale')).toStrictEqual([]);
    // Someone changed a field sluice owns: applied again.
    stored.spec.maxReplicas = 99;
    await reconcile();
    expect(kube.calls.filter((c) => c.op === 'applyHpa')).toHaveLength(1);
  });

  const hashRows: { comment: string; change: (spec: Raw['spec']) => void; poller: boolean; executor: boolean }[] = [
    {
      comment: 'maxReplicaCount: the executor only',
      change: (spec) => {
        spec['maxReplicaCount'] = 20;
      },
      poller: false,
      executor: true,
    },
    {
      comment: 'cooldownPeriod: the executor only',
      change: (spec) => {
        spec['cooldownPeriod'] = 60;
      },
      poller: false,
      executor: true,
    },
    {
      comment: "a trigger's metadata: the poller only",
      change: (spec) => {
        const trigger = spec.triggers[0];
        if (trigger) trigger.metadata['queueName'] = 'invoices';
      },
      poller: true,
      executor: false,
    },
    {
      comment: 'pollingInterval: both',
      change: (spec) => {
        spec['pollingInterval'] = 10;
      },
      poller: true,
      executor: true,
    },
    {
      comment: 'a fallback: both (values for the poller, hasFallback for the executor)',
      change: (spec) => {
        spec['fallback'] = { failureThreshold: 3, replicas: 2 };
      },
      poller: true,
      executor: true,
    },
    {
      comment: 'a label-only edit (no spec change): neither',
      change: () => undefined,
      poller: false,
      executor: false,
    },
  ];
  test.each(hashRows)('hashes after an edit of $comment', async ({ change, poller, executor }) => {
    await reconcile();
    edit(change);
    await reconcile();
    const [before, after] = runtime.ensured;
    expect(after?.pollerHash !== before?.pollerHash, 'poller hash changed').toBe(poller);
    expect(after?.executorHash !== before?.executorHash, 'executor hash changed').toBe(executor);
  });

  test('new credentials (another fingerprint) change the poller hash only', async () => {
    await reconcile();
    resolve.mockResolvedValue({ triggers: [], fingerprint: 'y' });
    await reconcile();
    const [before, after] = runtime.ensured;
    expect(after?.pollerHash).not.toBe(before?.pollerHash);
    expect(after?.executorHash).toBe(before?.executorHash);
  });

  test('a renamed HPA: the old one is deleted before the new one is applied', async () => {
    await reconcile();
    edit((spec) => {
      spec['advanced'] = { horizontalPodAutoscalerConfig: { name: 'orders-hpa' } };
    });
    kube.calls.length = 0;
    await reconcile();
    expect(kube.calls.filter((c) => c.op === 'deleteHpa' || c.op === 'applyHpa').map((c) => c.op)).toStrictEqual([
      'deleteHpa',
      'applyHpa',
    ]);
    expect(kube.of('deleteHpa')).toMatchObject([{ namespace: 'shop', name: 'sluice-hpa-orders' }]);
    expect(kube.of('applyHpa')[0]?.hpa.metadata?.name).toBe('orders-hpa');
    expect(status().hpaName).toBe('orders-hpa');
  });

  test('the persisted lastActiveTime is handed to the runtime', async () => {
    so.status = { lastActiveTime: '2026-06-01T11:55:00Z' };
    await reconcile();
    expect(runtime.ensured[0]?.lastActiveTime).toStrictEqual(new Date('2026-06-01T11:55:00Z'));
  });

  test('a status write for an object deleted meanwhile is not an error', async () => {
    kube.onPatchStatus = () => Promise.reject(new ApiException(404, 'Not Found', '{}', {}));
    await expect(reconcile()).resolves.toBeUndefined();
  });
});

describe('status written from a cache that is behind', () => {
  test('guarded by the resourceVersion read: a 409 runs the reconcile again, and status.originalReplicaCount written before survives', async () => {
    // The API server already holds the first reconcile's status (2 replicas before sluice); the informer's copy does
    // not have it yet, and the executor has since scaled the target to 0.
    so.metadata.resourceVersion = '5';
    const server = structuredClone(so);
    server.metadata.resourceVersion = '6';
    server.status = { originalReplicaCount: 2 };
    kube.replicas = 0;
    kube.onPatchStatus = (_ref, _patch, resourceVersion) =>
      Promise.reject(new ApiException(resourceVersion === '6' ? 500 : 409, 'Conflict', '{}', {}));
    expect(await reconcile()).toStrictEqual({ requeueAfterMs: STALE_CACHE_RETRY_MS });
    expect(kube.of('patchStatus').map((c) => [c.resourceVersion, c.status['originalReplicaCount']])).toStrictEqual([
      ['5', 0],
    ]);

    // The watch event arrives: the next round computes from the newer copy and keeps the 2.
    reset();
    cache.set(KEY, server);
    kube.onPatchStatus = () => Promise.resolve();
    expect(await reconcile()).toBeUndefined();
    expect(kube.of('patchStatus').map((c) => [c.resourceVersion, c.status['originalReplicaCount']])).toStrictEqual([
      ['6', 2],
    ]);
  });
});

describe('invalid', () => {
  const rows: { comment: string; change: (spec: Raw['spec']) => void; field: string; resolves: boolean }[] = [
    {
      comment: 'a schema error (maxReplicaCount 0)',
      change: (spec) => {
        spec['maxReplicaCount'] = 0;
      },
      field: 'spec.maxReplicaCount',
      resolves: false,
    },
    {
      comment: 'a trigger parameter (rabbitmq without queueName)',
      change: (spec) => {
        const trigger = spec.triggers[0];
        if (trigger) delete trigger.metadata['queueName'];
      },
      field: 'spec.triggers[0].metadata.queueName',
      resolves: true,
    },
    {
      comment: 'a threshold that rounds to a zero Quantity (prometheus threshold "0.0004")',
      change: (spec) => {
        spec.triggers[0] = {
          type: 'prometheus',
          metadata: { serverAddress: 'http://prom:9090', query: 'up', threshold: '0.0004' },
        };
      },
      field: 'spec.triggers[0]',
      resolves: true,
    },
  ];

  test.each(rows)(
    '$comment: previous HPA deleted, nothing applied nor running, Ready=False naming it, one event',
    async ({ change, field, resolves }) => {
      await reconcile(); // valid first: an HPA and a runtime exist
      edit(change);
      kube.calls.length = 0;
      resolve.mockClear();
      events.events.length = 0;

      expect(await reconcile()).toBeUndefined();
      expect(kube.of('applyHpa')).toStrictEqual([]);
      expect(kube.of('deleteHpa')).toMatchObject([{ namespace: 'shop', name: 'sluice-hpa-orders' }]);
      expect(runtime.removed).toStrictEqual([KEY]);
      expect(runtime.ensured).toHaveLength(1);
      expect(resolve).toHaveBeenCalledTimes(resolves ? 1 : 0);
      expect(ready()).toMatchObject({ status: 'False', reason: 'ScaledObjectCheckFailed' });
      expect(ready()?.message?.startsWith(`${field}:`) || ready()?.message?.startsWith(`${field}.`)).toBe(true);
      expect(status()).not.toHaveProperty('hpaName');
      expect(status().observedGeneration).toBe(2);
      expect(events.events).toMatchObject([
        { type: 'Warning', reason: 'ScaledObjectCheckFailed', note: ready()?.message },
      ]);

      // Reconciled again with the same problem: no new event, no status write, no HPA call.
      kube.calls.length = 0;
      await reconcile();
      expect(events.events).toHaveLength(1);
      expect(kube.calls.filter((c) => c.op !== 'readScale')).toStrictEqual([]);
    },
  );

  test('a ValidationError from the credentials (e.g. a TriggerAuthentication that does not exist) refuses too', async () => {
    resolve.mockRejectedValue(
      new ValidationError('spec.triggers[0].authenticationRef', 'TriggerAuthentication shop/nope not found'),
    );
    expect(await reconcile()).toBeUndefined();
    expect(kube.of('applyHpa')).toStrictEqual([]);
    expect(runtime.ensured).toStrictEqual([]);
    expect(ready()).toMatchObject({
      status: 'False',
      message: 'spec.triggers[0].authenticationRef: TriggerAuthentication shop/nope not found',
    });
  });
});

describe('scale target and HPA', () => {
  test('a missing target: Ready=False naming spec.scaleTargetRef, no HPA, nothing running, checked again in 10 s', async () => {
    kube.onReadScale = (target) => Promise.reject(new TargetNotFoundError(target, 'not found'));
    expect(await reconcile()).toStrictEqual({ requeueAfterMs: TARGET_RECHECK_MS });
    expect(TARGET_RECHECK_MS).toBe(10_000);
    expect(kube.of('applyHpa')).toStrictEqual([]);
    expect(runtime.ensured).toStrictEqual([]);
    expect(runtime.removed).toStrictEqual([KEY]);
    expect(ready()).toMatchObject({
      status: 'False',
      reason: 'ScaledObjectCheckFailed',
      message:
        "spec.scaleTargetRef: Target resource doesn't exist or doesn't expose /scale: Deployment shop/orders: not found",
    });
    expect(events.reasons()).toStrictEqual(['ScaledObjectCheckFailed']);

    // The target appears: the next check heals it.
    kube.onReadScale = undefined;
    expect(await reconcile()).toBeUndefined();
    expect(ready()).toMatchObject({ status: 'True' });
    expect(runtime.ensured).toHaveLength(1);
    expect(events.reasons()).toStrictEqual(['ScaledObjectCheckFailed', 'ScaledObjectReady']);
  });

  test('an HPA the API server refuses (403): Ready=False quoting its answer, nothing running, checked again in 30 s', async () => {
    await reconcile();
    kube.onApplyHpa = () =>
      Promise.reject(new ApiException(403, 'Forbidden', '{"kind":"Status","message":"denied by policy"}', {}));
    edit((spec) => {
      spec['maxReplicaCount'] = 20;
    });
    expect(await reconcile()).toStrictEqual({ requeueAfterMs: HPA_RECHECK_MS });
    expect(HPA_RECHECK_MS).toBe(30_000);
    expect(runtime.removed).toStrictEqual([KEY]);
    expect(runtime.ensured).toHaveLength(1);
    expect(ready()).toMatchObject({
      status: 'False',
      reason: 'ScaledObjectCheckFailed',
      message:
        'failed to ensure HPA is correctly created for ScaledObject: HPA shop/sluice-hpa-orders: the API server answered 403: denied by policy',
    });
    expect(events.events.at(-1)).toMatchObject({ type: 'Warning', reason: 'ScaledObjectCheckFailed' });
  });

  test('a 500 from applyHpa throws (the work queue retries) without stopping what runs', async () => {
    await reconcile();
    kube.onApplyHpa = () => Promise.reject(new ApiException(500, 'Internal Server Error', '{}', {}));
    kube.calls.length = 0;
    await expect(reconcile()).rejects.toBeInstanceOf(ApiException);
    expect(runtime.removed).toStrictEqual([]);
    expect(runtime.has(KEY)).toBe(true);
    expect(patches()).toStrictEqual([]);
    expect(ready()).toMatchObject({ status: 'True' });
  });

  test('any other error reading the target throws without stopping what runs', async () => {
    await reconcile();
    kube.onReadScale = () => Promise.reject(new ApiException(503, 'Service Unavailable', '{}', {}));
    await expect(reconcile()).rejects.toBeInstanceOf(ApiException);
    expect(runtime.removed).toStrictEqual([]);
  });
});

describe('credentials that may heal (AuthResolutionError)', () => {
  const failure = new AuthResolutionError('spec.triggers[0].authenticationRef', 'Secret shop/rabbit-creds not found');

  test('same generation: status transient, throws, the runtime keeps running; one event', async () => {
    await reconcile();
    resolve.mockRejectedValue(failure);
    await expect(reconcile()).rejects.toBe(failure);
    expect(runtime.removed).toStrictEqual([]);
    expect(ready()).toMatchObject({
      status: 'False',
      reason: 'ScaledObjectCheckFailed',
      message: 'spec.triggers[0].authenticationRef: Secret shop/rabbit-creds not found',
    });
    // Transient: what the running object showed stays.
    expect(status()).toMatchObject({ hpaName: 'sluice-hpa-orders', externalMetricNames: ['s0-rabbitmq-orders'] });
    expect(kube.of('deleteHpa')).toStrictEqual([]);
    expect(events.reasons()).toStrictEqual(['ScaledObjectReady', 'ScaledObjectCheckFailed']);

    const writes = patches().length;
    await expect(reconcile()).rejects.toBe(failure);
    expect(patches()).toHaveLength(writes);
    expect(events.reasons()).toStrictEqual(['ScaledObjectReady', 'ScaledObjectCheckFailed']);
  });

  test('a changed generation: what ran on the older spec is stopped', async () => {
    await reconcile();
    resolve.mockRejectedValue(failure);
    edit((spec) => {
      spec['maxReplicaCount'] = 20;
    });
    await expect(reconcile()).rejects.toBe(failure);
    expect(runtime.removed).toStrictEqual([KEY]);
  });

  test('a recreated object (another uid) with the same generation: stopped too', async () => {
    await reconcile();
    resolve.mockRejectedValue(failure);
    so.metadata.uid = 'uid-2';
    await expect(reconcile()).rejects.toBe(failure);
    expect(runtime.removed).toStrictEqual([KEY]);
  });

  test('healed: Ready again, with a ScaledObjectReady event', async () => {
    await reconcile();
    resolve.mockRejectedValueOnce(failure);
    await expect(reconcile()).rejects.toBe(failure);
    await reconcile();
    expect(ready()).toMatchObject({ status: 'True', reason: 'ScaledObjectReady' });
    expect(events.reasons()).toStrictEqual(['ScaledObjectReady', 'ScaledObjectCheckFailed', 'ScaledObjectReady']);
  });
});

/** Simulates an edit of the annotations (metadata: the generation does not change). `undefined` removes a key. */
function annotate(annotations: Record<string, string | undefined>): void {
  const next: Record<string, string> = { ...so.metadata.annotations };
  for (const [key, value] of Object.entries(annotations)) {
    if (value === undefined) Reflect.deleteProperty(next, key);
    else next[key] = value;
  }
  so.metadata.annotations = next;
}
const condition = (type: string) => status().conditions?.find((c) => c.type === type);
/** Forgets what happened so far (calls, events, runtime history, credential lookups). */
function reset(): void {
  kube.calls.length = 0;
  events.events.length = 0;
  runtime.ensured.length = 0;
  runtime.removed.length = 0;
  resolve.mockClear();
}
/** Another ScaledObject of the namespace, in the cache. */
function another(name: string, uid: string, creationTimestamp: string, target = 'orders'): Raw {
  const other = rawScaledObject();
  other.metadata = { ...other.metadata, name, uid, creationTimestamp };
  other.spec['scaleTargetRef'] = { name: target };
  cache.set(`shop/${name}`, other);
  return other;
}
/** An HPA someone else made (or another ScaledObject's, with `owner`). */
function foreignHpa(
  name: string,
  target = 'orders',
  owner?: { name: string; uid: string },
  annotations?: Record<string, string>,
): V2HorizontalPodAutoscaler {
  const hpa: V2HorizontalPodAutoscaler = {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: {
      name,
      namespace: 'shop',
      ...(annotations === undefined ? {} : { annotations }),
      ...(owner === undefined
        ? {}
        : {
            ownerReferences: [{ apiVersion: 'sluice.dev/v1alpha1', kind: 'ScaledObject', ...owner, controller: true }],
          }),
    },
    spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: target }, maxReplicas: 5 },
  };
  hpas.push(hpa);
  return hpa;
}

describe('paused (paused-replicas, paused)', () => {
  test('paused-replicas on a running object: HPA deleted, runtime removed, target written to n, status, one event', async () => {
    await reconcile();
    reset();
    annotate({ 'autoscaling.keda.sh/paused-replicas': '2' });

    expect(await reconcile()).toBeUndefined();
    expect(kube.of('deleteHpa')).toMatchObject([{ namespace: 'shop', name: 'sluice-hpa-orders' }]);
    expect(kube.of('applyHpa')).toStrictEqual([]);
    expect(runtime.removed).toStrictEqual([KEY]);
    expect(runtime.ensured).toStrictEqual([]);
    expect(kube.writes()).toStrictEqual([2]);
    // Paused objects need no credentials.
    expect(resolve).not.toHaveBeenCalled();
    expect(status()).toMatchObject({ pausedReplicaCount: 2, originalReplicaCount: 1, observedGeneration: 1 });
    expect(status()).not.toHaveProperty('hpaName');
    expect(ready()).toMatchObject({ status: 'True', reason: 'ScaledObjectReady' });
    expect(condition('Paused')).toMatchObject({ status: 'True', reason: 'ScaledObjectPaused' });
    expect(events.events).toMatchObject([
      { type: 'Normal', reason: 'ScaledObjectPaused', note: 'ScaledObject is paused at 2 replicas (paused-replicas)' },
    ]);

    // Again: the target is at 2 already; no write, no status write, no second event.
    reset();
    await reconcile();
    expect(kube.writes()).toStrictEqual([]);
    expect(patches()).toStrictEqual([]);
    expect(events.events).toStrictEqual([]);
  });

  test('paused-replicas equal to the current count: no write', async () => {
    kube.replicas = 3;
    annotate({ 'autoscaling.sluice.dev/paused-replicas': '3' });
    await reconcile();
    expect(kube.writes()).toStrictEqual([]);
    expect(status()).toMatchObject({ pausedReplicaCount: 3 });
  });

  test('paused-replicas "0": a real 0', async () => {
    kube.replicas = 4;
    annotate({ 'autoscaling.keda.sh/paused-replicas': '0' });
    await reconcile();
    expect(kube.writes()).toStrictEqual([0]);
    expect(status()).toMatchObject({ pausedReplicaCount: 0, originalReplicaCount: 4 });
  });

  test('someone scales a paused-replicas target: the next reconcile puts it back', async () => {
    annotate({ 'autoscaling.keda.sh/paused-replicas': '2' });
    await reconcile();
    kube.replicas = 5;
    reset();
    await reconcile();
    expect(kube.writes()).toStrictEqual([2]);
  });

  test('paused: no write, no HPA, nothing running, Paused=True, no pausedReplicaCount', async () => {
    await reconcile();
    reset();
    annotate({ 'autoscaling.keda.sh/paused': 'true' });
    await reconcile();
    expect(kube.writes()).toStrictEqual([]);
    expect(kube.of('applyHpa')).toStrictEqual([]);
    expect(kube.of('deleteHpa')).toMatchObject([{ name: 'sluice-hpa-orders' }]);
    expect(runtime.removed).toStrictEqual([KEY]);
    expect(status()).not.toHaveProperty('pausedReplicaCount');
    expect(condition('Paused')).toMatchObject({ status: 'True', reason: 'ScaledObjectPaused' });
    expect(events.events).toMatchObject([
      { reason: 'ScaledObjectPaused', note: 'ScaledObject is paused at its current replica count (paused)' },
    ]);
  });

  test('paused from the start: no HPA ever applied, the target left as it is', async () => {
    kube.replicas = 6;
    annotate({ 'autoscaling.keda.sh/paused': 'true' });
    await reconcile();
    expect(kube.of('applyHpa')).toStrictEqual([]);
    expect(runtime.ensured).toStrictEqual([]);
    expect(kube.writes()).toStrictEqual([]);
    expect(status()).toMatchObject({ originalReplicaCount: 6 });
    expect(condition('Paused')).toMatchObject({ status: 'True' });
  });

  test('paused with a missing target: Ready=False naming spec.scaleTargetRef, checked again in 10 s', async () => {
    annotate({ 'autoscaling.keda.sh/paused-replicas': '1' });
    kube.onReadScale = (target) => Promise.reject(new TargetNotFoundError(target, 'not found'));
    expect(await reconcile()).toStrictEqual({ requeueAfterMs: TARGET_RECHECK_MS });
    expect(kube.writes()).toStrictEqual([]);
    expect(ready()?.message).toMatch(/^spec\.scaleTargetRef: /);
  });

  test('unpaused (paused-replicas removed): HPA and runtime back, Paused=False ScaledObjectUnpaused, one event', async () => {
    annotate({ 'autoscaling.keda.sh/paused-replicas': '2' });
    await reconcile();
    reset();
    annotate({ 'autoscaling.keda.sh/paused-replicas': undefined });
    await reconcile();
    expect(kube.of('applyHpa')).toHaveLength(1);
    expect(runtime.ensured).toHaveLength(1);
    expect(status()).not.toHaveProperty('pausedReplicaCount');
    expect(status().hpaName).toBe('sluice-hpa-orders');
    expect(condition('Paused')).toMatchObject({
      status: 'False',
      reason: 'ScaledObjectUnpaused',
      message: 'pause annotation removed for ScaledObject',
    });
    expect(events.events).toMatchObject([
      { type: 'Normal', reason: 'ScaledObjectUnpaused', note: 'pause annotation removed for ScaledObject' },
    ]);
    reset();
    await reconcile();
    expect(events.events).toStrictEqual([]);
  });
});

describe('paused-scale-in, paused-scale-out, force-activation', () => {
  test('paused-scale-in: runtime with the flag, HPA scaleDown Disabled, Paused=True and one event; executor hash only', async () => {
    await reconcile();
    const before = runtime.ensured[0];
    reset();
    annotate({ 'autoscaling.keda.sh/paused-scale-in': 'true' });
    await reconcile();
    expect(runtime.removed).toStrictEqual([]);
    expect(runtime.ensured[0]?.executor).toMatchObject({
      pausedScaleIn: true,
      pausedScaleOut: false,
      forceActivation: false,
    });
    expect(runtime.ensured[0]?.executorHash).not.toBe(before?.executorHash);
    expect(runtime.ensured[0]?.pollerHash).toBe(before?.pollerHash);
    expect(kube.of('applyHpa')[0]?.hpa.spec.behavior).toStrictEqual({ scaleDown: { selectPolicy: 'Disabled' } });
    expect(kube.writes()).toStrictEqual([]);
    expect(ready()).toMatchObject({ status: 'True' });
    expect(condition('Paused')).toMatchObject({ status: 'True', reason: 'ScaledObjectPaused' });
    expect(status().hpaName).toBe('sluice-hpa-orders');
    expect(events.events).toMatchObject([{ reason: 'ScaledObjectPaused', note: 'ScaledObject scale-in is paused' }]);
  });

  test('paused-scale-out (sluice prefix) with a user behavior: scaleUp Disabled merged, the user policies kept', async () => {
    so.spec['advanced'] = {
      horizontalPodAutoscalerConfig: {
        behavior: { scaleUp: { policies: [{ type: 'Pods', value: 4, periodSeconds: 15 }] } },
      },
    };
    annotate({ 'autoscaling.sluice.dev/paused-scale-out': 'true' });
    await reconcile();
    expect(runtime.ensured[0]?.executor).toMatchObject({ pausedScaleIn: false, pausedScaleOut: true });
    expect(kube.of('applyHpa')[0]?.hpa.spec.behavior).toStrictEqual({
      scaleUp: { policies: [{ type: 'Pods', value: 4, periodSeconds: 15 }], selectPolicy: 'Disabled' },
    });
    expect(condition('Paused')).toMatchObject({ status: 'True' });
  });

  test('both: one event naming both sides; removed: Paused=False ScaledObjectUnpaused and an event', async () => {
    annotate({ 'autoscaling.keda.sh/paused-scale-in': 'true', 'autoscaling.keda.sh/paused-scale-out': 'true' });
    await reconcile();
    expect(events.reasons()).toStrictEqual(['ScaledObjectReady', 'ScaledObjectPaused']);
    expect(events.events[1]?.note).toBe('ScaledObject scale-in and scale-out is paused');
    expect(kube.of('applyHpa')[0]?.hpa.spec.behavior).toStrictEqual({
      scaleDown: { selectPolicy: 'Disabled' },
      scaleUp: { selectPolicy: 'Disabled' },
    });

    reset();
    annotate({ 'autoscaling.keda.sh/paused-scale-in': undefined, 'autoscaling.keda.sh/paused-scale-out': 'false' });
    await reconcile();
    expect(kube.of('applyHpa')[0]?.hpa.spec).not.toHaveProperty('behavior');
    expect(runtime.ensured[0]?.executor).toMatchObject({ pausedScaleIn: false, pausedScaleOut: false });
    expect(condition('Paused')).toMatchObject({ status: 'False', reason: 'ScaledObjectUnpaused' });
    expect(events.reasons()).toStrictEqual(['ScaledObjectUnpaused']);
  });

  test('force-activation: handed to the executor, not a pause', async () => {
    annotate({ 'autoscaling.keda.sh/force-activation': 'true' });
    await reconcile();
    expect(runtime.ensured[0]?.executor).toMatchObject({ forceActivation: true, alwaysActive: false });
    expect(condition('Paused')).toMatchObject({ status: 'False' });
    expect(events.reasons()).toStrictEqual(['ScaledObjectReady']);
  });

  test('an annotation that does not parse: Ready=False naming it, nothing running, the HPA deleted', async () => {
    await reconcile();
    reset();
    annotate({ 'autoscaling.keda.sh/paused': 'yes' });
    await reconcile();
    expect(kube.of('applyHpa')).toStrictEqual([]);
    expect(kube.of('deleteHpa')).toMatchObject([{ name: 'sluice-hpa-orders' }]);
    expect(runtime.removed).toStrictEqual([KEY]);
    expect(ready()).toMatchObject({
      status: 'False',
      reason: 'ScaledObjectCheckFailed',
      message: 'metadata.annotations["autoscaling.keda.sh/paused"]: must be "true" or "false", got "yes"',
    });
    expect(events.events).toMatchObject([
      { type: 'Warning', reason: 'ScaledObjectCheckFailed', note: ready()?.message },
    ]);
  });
});

describe('restoreToOriginalReplicaCount (the finalizer)', () => {
  const FINALIZER = 'sluice.dev/finalizer';

  test('asked for: the finalizer is added, and nothing else happens that round', async () => {
    so.spec['advanced'] = { restoreToOriginalReplicaCount: true };
    so.metadata.resourceVersion = '7';
    so.metadata.finalizers = ['example.com/other'];
    expect(await reconcile()).toBeUndefined();
    expect(kube.calls).toStrictEqual([
      {
        op: 'setFinalizers',
        ref: { group: 'sluice.dev', version: 'v1alpha1', plural: 'scaledobjects', namespace: 'shop', name: 'orders' },
        finalizers: ['example.com/other', FINALIZER],
        resourceVersion: '7',
      },
    ]);
    expect(runtime.ensured).toStrictEqual([]);
    expect(events.events).toStrictEqual([]);

    // The update brings it back with the finalizer: the usual checklist, no second setFinalizers.
    reset();
    await reconcile();
    expect(kube.ops()).toStrictEqual(['readScale', 'applyHpa', 'patchStatus']);
  });

  test('no longer asked for: the finalizer is removed (other finalizers kept)', async () => {
    so.metadata.finalizers = [FINALIZER, 'example.com/other'];
    await reconcile();
    expect(kube.calls).toMatchObject([{ op: 'setFinalizers', finalizers: ['example.com/other'] }]);
  });

  test('deletion with the finalizer: stop, write the original replicas back, then remove the finalizer', async () => {
    so.spec['advanced'] = { restoreToOriginalReplicaCount: true };
    kube.replicas = 3;
    await reconcile(); // adds the finalizer
    await reconcile(); // runs; status.originalReplicaCount = 3
    expect(status().originalReplicaCount).toBe(3);
    kube.replicas = 8; // the HPA scaled it meanwhile
    reset();
    so.metadata.deletionTimestamp = '2026-06-01T12:30:00Z';

    expect(await reconcile()).toBeUndefined();
    expect(runtime.removed).toStrictEqual([KEY]);
    expect(kube.calls.map((c) => c.op)).toStrictEqual(['writeScale', 'setFinalizers']);
    expect(kube.writes()).toStrictEqual([3]);
    expect(kube.of('setFinalizers')).toMatchObject([{ finalizers: [] }]);
    expect(kube.of('applyHpa')).toStrictEqual([]);
    expect(events.events).toMatchObject([
      { type: 'Normal', reason: 'ScaledObjectDeleted', note: 'ScaledObject was deleted' },
    ]);
    expect(cache.has(KEY)).toBe(false);
  });

  test('deletion with the finalizer but the workload gone: the finalizer is removed anyway', async () => {
    so.spec['advanced'] = { restoreToOriginalReplicaCount: true };
    so.metadata.finalizers = [FINALIZER];
    so.status = { originalReplicaCount: 2 };
    so.metadata.deletionTimestamp = '2026-06-01T12:30:00Z';
    kube.onWriteScale = (target) => Promise.reject(new TargetNotFoundError(target, 'not found'));
    await reconcile();
    expect(kube.ops()).toStrictEqual(['writeScale', 'setFinalizers']);
    expect(cache.has(KEY)).toBe(false);
  });

  test('deletion with the finalizer and no original count known: nothing written, finalizer removed', async () => {
    so.spec['advanced'] = { restoreToOriginalReplicaCount: true };
    so.metadata.finalizers = [FINALIZER];
    so.metadata.deletionTimestamp = '2026-06-01T12:30:00Z';
    await reconcile();
    expect(kube.ops()).toStrictEqual(['setFinalizers']);
  });

  test('deletion without the finalizer: stopped, nothing written', async () => {
    await reconcile();
    reset();
    so.metadata.deletionTimestamp = '2026-06-01T12:30:00Z';
    await reconcile();
    expect(runtime.removed).toStrictEqual([KEY]);
    expect(kube.calls).toStrictEqual([]);
  });

  test('deletion of an invalid object with the finalizer: let go (finalizer removed, nothing written)', async () => {
    so.spec['maxReplicaCount'] = 0;
    so.metadata.finalizers = [FINALIZER];
    so.metadata.deletionTimestamp = '2026-06-01T12:30:00Z';
    await reconcile();
    expect(kube.calls).toMatchObject([{ op: 'setFinalizers', finalizers: [] }]);
    expect(patches()).toStrictEqual([]);
  });
});

describe('one autoscaler per workload', () => {
  const TWIN = "the workload 'orders' of type 'apps/v1.Deployment' is already managed by the ScaledObject 'legacy'";

  test('an older twin: refused naming it, no HPA applied, nothing of the older one touched', async () => {
    const legacy = another('legacy', 'uid-0', '2026-06-01T10:00:00Z');
    expect(await reconcile()).toBeUndefined();
    expect(kube.of('applyHpa')).toStrictEqual([]);
    expect(runtime.ensured).toStrictEqual([]);
    expect(ready()).toMatchObject({ status: 'False', reason: 'ScaledObjectCheckFailed', message: TWIN });
    expect(events.events).toMatchObject([{ type: 'Warning', reason: 'ScaledObjectCheckFailed', note: TWIN }]);
    expect(kube.of('deleteHpa')).toStrictEqual([]);
    expect(kube.of('patchStatus').map((c) => c.ref.name)).toStrictEqual(['orders']);
    expect(legacy.status).toBeUndefined();

    // The older one is reconciled as usual.
    reset();
    await reconciler.reconcile('shop/legacy');
    expect(kube.of('applyHpa').map((c) => c.hpa.metadata?.name)).toStrictEqual(['sluice-hpa-legacy']);
    expect(legacy.status?.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True' });
  });

  test('an older twin showing up later: our own HPA and runtime go, theirs stay', async () => {
    await reconcile();
    reset();
    another('legacy', 'uid-0', '2026-06-01T10:00:00Z');
    await reconcile();
    expect(kube.of('deleteHpa')).toMatchObject([{ name: 'sluice-hpa-orders' }]);
    expect(runtime.removed).toStrictEqual([KEY]);
    expect(ready()).toMatchObject({ status: 'False', message: TWIN });
    expect(status()).not.toHaveProperty('hpaName');
  });

  test('a newer twin does not stop us; a twin on another workload is none', async () => {
    another('zzz', 'uid-9', '2026-06-01T11:30:00Z');
    another('invoices', 'uid-0', '2026-06-01T10:00:00Z', 'invoices');
    await reconcile();
    expect(kube.of('applyHpa')).toHaveLength(1);
    expect(ready()).toMatchObject({ status: 'True' });
  });

  test('the twin is deleted: the next reconcile heals (Ready, HPA, runtime)', async () => {
    another('legacy', 'uid-0', '2026-06-01T10:00:00Z');
    await reconcile();
    cache.delete('shop/legacy');
    reset();
    await reconcile();
    expect(kube.of('applyHpa')).toHaveLength(1);
    expect(events.reasons()).toStrictEqual(['ScaledObjectReady']);
  });

  test('a foreign HPA on the workload: refused with the hint; with transfer-hpa-ownership and its name: adopted', async () => {
    foreignHpa('orders-hpa');
    await reconcile();
    expect(kube.of('applyHpa')).toStrictEqual([]);
    expect(ready()?.message).toBe(
      "the workload 'orders' of type 'apps/v1.Deployment' is already managed by the hpa 'orders-hpa' (to take it over, name it in spec.advanced.horizontalPodAutoscalerConfig.name and annotate the ScaledObject with scaledobject.keda.sh/transfer-hpa-ownership: \"true\")",
    );

    reset();
    edit((spec) => {
      spec['advanced'] = { horizontalPodAutoscalerConfig: { name: 'orders-hpa' } };
    });
    annotate({ 'scaledobject.keda.sh/transfer-hpa-ownership': 'true' });
    await reconcile();
    expect(kube.calls.filter((c) => c.op === 'adoptHpa' || c.op === 'applyHpa').map((c) => c.op)).toStrictEqual([
      'adoptHpa',
      'applyHpa',
    ]);
    const [adopted] = kube.of('adoptHpa');
    expect(adopted?.hpa).toStrictEqual(kube.of('applyHpa')[0]?.hpa);
    expect(adopted?.hpa.metadata).toMatchObject({
      name: 'orders-hpa',
      ownerReferences: [{ kind: 'ScaledObject', name: 'orders', uid: 'uid-1', controller: true }],
    });
    expect(ready()).toMatchObject({ status: 'True' });
    expect(runtime.ensured).toHaveLength(1);
  });

  test('transfer-hpa-ownership without naming the HPA: still refused', async () => {
    foreignHpa('orders-hpa');
    annotate({ 'scaledobject.keda.sh/transfer-hpa-ownership': 'true' });
    await reconcile();
    expect(kube.of('adoptHpa')).toStrictEqual([]);
    expect(kube.of('applyHpa')).toStrictEqual([]);
    expect(ready()?.message).toContain("is already managed by the hpa 'orders-hpa'");
  });

  test('a foreign HPA that opts out (validations.keda.sh/hpa-ownership: "false"): ignored', async () => {
    foreignHpa('orders-hpa', 'orders', undefined, { 'validations.keda.sh/hpa-ownership': 'false' });
    await reconcile();
    expect(kube.of('applyHpa')).toHaveLength(1);
    expect(kube.of('adoptHpa')).toStrictEqual([]);
  });

  test('our own HPA in the HPA cache is not a conflict', async () => {
    foreignHpa('sluice-hpa-orders', 'orders', { name: 'orders', uid: 'uid-1' });
    await reconcile();
    expect(kube.of('applyHpa')).toHaveLength(1);
    expect(ready()).toMatchObject({ status: 'True' });
  });

  test("an HPA under the name we recorded, now another ScaledObject's: refused once; theirs is never deleted", async () => {
    // Our status says we made `shared`; its controller is now the living ScaledObject `invoices`.
    so.spec['advanced'] = { horizontalPodAutoscalerConfig: { name: 'shared' } };
    so.status = { hpaName: 'shared' };
    another('invoices', 'uid-2', '2026-06-01T11:30:00Z', 'invoices');
    foreignHpa('shared', 'invoices', { name: 'invoices', uid: 'uid-2' });
    await reconcile();
    const message = "the HPA 'shared' is already managed by the ScaledObject 'invoices'";
    expect(ready()).toMatchObject({ status: 'False', message });
    expect(kube.of('deleteHpa')).toStrictEqual([]);
    expect(kube.of('applyHpa')).toStrictEqual([]);
    expect(events.reasons()).toStrictEqual(['ScaledObjectCheckFailed']);

    // Reconciled again with the same conflict: no new event, no status write, still nothing deleted.
    reset();
    await reconcile();
    expect(events.events).toStrictEqual([]);
    expect(patches()).toStrictEqual([]);
    expect(kube.of('deleteHpa')).toStrictEqual([]);
  });
});

describe('cpu and memory triggers', () => {
  test('only a cpu trigger (min 1): an HPA with a Resource metric, nothing polled, the executor always active', async () => {
    so.spec['minReplicaCount'] = 1;
    so.spec.triggers = [{ type: 'cpu', metricType: 'Utilization', metadata: { value: '60' } }];
    await reconcile();
    expect(kube.of('applyHpa')[0]?.hpa.spec.metrics).toStrictEqual([
      { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 60 } } },
    ]);
    expect(runtime.ensured[0]?.poller.triggers).toStrictEqual([]);
    expect(runtime.ensured[0]?.executor).toMatchObject({ alwaysActive: true, minReplicaCount: 1 });
    expect(status()).toMatchObject({ resourceMetricNames: ['cpu'], externalMetricNames: [], triggersTypes: 'cpu' });
    expect(ready()).toMatchObject({ status: 'True' });
  });

  test('a memory trigger for one container next to rabbitmq: ContainerResource first; not always active', async () => {
    so.spec.triggers.push({
      type: 'memory',
      metadata: { type: 'AverageValue', value: '256Mi', containerName: 'app' },
    });
    await reconcile();
    expect(kube.of('applyHpa')[0]?.hpa.spec.metrics?.map((m) => m.type)).toStrictEqual([
      'ContainerResource',
      'External',
    ]);
    expect(runtime.ensured[0]?.executor).toMatchObject({ alwaysActive: false });
    expect(runtime.ensured[0]?.poller.triggers.map((t) => t.metricName)).toStrictEqual(['s0-rabbitmq-orders']);
    expect(status()).toMatchObject({ resourceMetricNames: ['memory'], externalMetricNames: ['s0-rabbitmq-orders'] });
  });

  test('a cpu trigger whose AverageValue is not a Quantity: Ready=False naming it (not a retried crash)', async () => {
    so.spec.triggers.push({ type: 'cpu', metricType: 'AverageValue', metadata: { value: 'half a core' } });
    await expect(reconcile()).resolves.toBeUndefined();
    expect(ready()).toMatchObject({ status: 'False', reason: 'ScaledObjectCheckFailed' });
    expect(ready()?.message).toMatch(/^spec\.triggers\[1\]\.metadata\.value: must be a Kubernetes Quantity/);
    expect(kube.of('applyHpa')).toStrictEqual([]);
  });
});

describe('scalingModifiers', () => {
  function composite(): void {
    so.spec.triggers = [
      { type: 'rabbitmq', name: 'queue', metadata: { host: 'http://guest:guest@127.0.0.1:1', queueName: 'orders' } },
      // No threshold: a trigger that feeds the formula may leave its own target out (KEDA allows it).
      { type: 'prometheus', name: 'lag', metadata: { serverAddress: 'http://prom:9090', query: 'lag' } },
    ];
    so.spec['advanced'] = {
      scalingModifiers: { formula: 'queue + lag / 2', target: '10', activationTarget: '1', metricType: 'Value' },
    };
  }

  test('one External metric, composite-metric, with the composite target; the poller gets the formula', async () => {
    composite();
    await reconcile();
    expect(kube.of('applyHpa')[0]?.hpa.spec.metrics).toStrictEqual([
      {
        type: 'External',
        external: {
          metric: { name: 'composite-metric', selector: { matchLabels: { 'scaledobject.sluice.dev/name': 'orders' } } },
          target: { type: 'Value', value: '10' },
        },
      },
    ]);
    const poller = runtime.ensured[0]?.poller;
    expect(poller?.triggers.map((t) => t.metricName)).toStrictEqual(['s0-rabbitmq-orders', 's1-prometheus']);
    expect(poller?.composite?.names).toStrictEqual(['queue', 'lag']);
    expect(poller?.composite?.spec).toMatchObject({ target: 10, activationTarget: 1, metricType: 'Value' });
    expect(poller?.composite?.spec.formula.source).toBe('queue + lag / 2');
    expect(status()).toMatchObject({
      compositeScalerName: 'composite-metric',
      externalMetricNames: ['s0-rabbitmq-orders', 's1-prometheus'],
    });
    expect(ready()).toMatchObject({ status: 'True' });
  });

  test('an edit of the formula restarts the poller only', async () => {
    composite();
    await reconcile();
    edit((spec) => {
      spec['advanced'] = { scalingModifiers: { formula: 'max(queue, lag)', target: '10', metricType: 'Value' } };
    });
    await reconcile();
    const [before, after] = runtime.ensured;
    expect(after?.pollerHash).not.toBe(before?.pollerHash);
    expect(after?.executorHash).toBe(before?.executorHash);
  });

  test('a formula naming no trigger: Ready=False naming spec.advanced.scalingModifiers.formula', async () => {
    composite();
    so.spec['advanced'] = { scalingModifiers: { formula: 'queue + orders', target: '10' } };
    await reconcile();
    expect(ready()?.message).toMatch(
      /^spec\.advanced\.scalingModifiers\.formula: "orders" is not the name of a trigger/,
    );
    expect(kube.of('applyHpa')).toStrictEqual([]);
  });

  test('without scalingModifiers the prometheus threshold is still required', async () => {
    composite();
    so.spec['advanced'] = {};
    await reconcile();
    expect(ready()?.message).toMatch(/^spec\.triggers\[1\]\.metadata\.threshold: /);
  });
});

describe('a replica that does not lead (leader election)', () => {
  beforeEach(() => {
    leading = false;
  });

  test('a valid object: its pollers run (the metrics API stays fresh), and nothing is written', async () => {
    so.spec['advanced'] = { restoreToOriginalReplicaCount: true };
    expect(await reconcile()).toBeUndefined();
    expect(runtime.ensured.map((s) => s.key)).toStrictEqual([KEY]);
    expect(kube.calls).toStrictEqual([]);
    expect(events.events).toStrictEqual([]);
  });

  test('once it leads, the same reconcile writes the HPA, the finalizer and the status', async () => {
    await reconcile();
    leading = true;
    await reconcile();
    expect(kube.ops()).toStrictEqual(['readScale', 'applyHpa', 'patchStatus']);
    expect(events.reasons()).toStrictEqual(['ScaledObjectReady']);
  });

  test('an invalid object: nothing runs, no status, no event, no HPA deleted', async () => {
    so.status = { hpaName: 'keda-hpa-orders' };
    so.spec['maxReplicaCount'] = -1;
    await reconcile();
    expect(runtime.removed).toStrictEqual([KEY]);
    expect(kube.calls).toStrictEqual([]);
    expect(events.events).toStrictEqual([]);
  });

  test('paused: nothing runs and the target is not touched', async () => {
    so.metadata.annotations = { 'autoscaling.keda.sh/paused-replicas': '3' };
    await reconcile();
    expect(runtime.removed).toStrictEqual([KEY]);
    expect(kube.calls).toStrictEqual([]);
  });

  test('being deleted: its runtime stops and the finalizer is left to the leader', async () => {
    so.metadata.finalizers = ['sluice.dev/finalizer'];
    so.metadata.deletionTimestamp = '2026-06-01T12:00:00Z';
    so.spec['advanced'] = { restoreToOriginalReplicaCount: true };
    so.status = { originalReplicaCount: 4 };
    await reconcile();
    expect(runtime.removed).toStrictEqual([KEY]);
    expect(kube.calls).toStrictEqual([]);
  });
});
