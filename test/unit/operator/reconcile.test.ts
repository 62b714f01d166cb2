// Proves reconcile's checklist against in-memory ports: gone → removed; invalid (schema, trigger parameters, a target
// that rounds to a zero Quantity) → no HPA, nothing running, Ready=False naming the field, one event; a missing target
// or a refused HPA → the same with a requeue; API errors and credential failures → retried without stopping what runs
// on the same generation; valid → the desired HPA, a RuntimeSpec whose hashes change only with what they cover, and
// the status written only when it differs.
import { ApiException, type KubernetesObject } from '@kubernetes/client-node';
import { beforeEach, describe, expect, test, vi } from 'vitest';
import { ValidationError } from '../../../src/errors.ts';
import type { Logger } from '../../../src/log.ts';
import { AuthResolutionError, type AuthResolution, type AuthResolver } from '../../../src/operator/auth-resolver.ts';
import { desiredHpa } from '../../../src/operator/hpa.ts';
import { TargetNotFoundError } from '../../../src/operator/kube.ts';
import {
  createReconciler,
  HPA_RECHECK_MS,
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

/** A ScaledObject as the informer cache holds it (plain JSON). */
interface Raw {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; uid: string; generation: number; creationTimestamp: string };
  spec: Record<string, unknown> & { triggers: { type: string; metadata: Record<string, string> }[] };
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
let resolve: ReturnType<typeof vi.fn<AuthResolver['resolve']>>;
let reconciler: Reconciler;
let so: Raw;

beforeEach(() => {
  kube = new MemoryKube();
  kube.replicas = 1;
  // The API server applies status merge patches to the object the cache then sees.
  kube.onPatchStatus = (ref, patch) => {
    const object = cache.get(`${ref.namespace}/${ref.name}`);
    if (object === undefined) return Promise.reject(new ApiException(404, 'Not Found', '{}', {}));
    const status: Record<string, unknown> = { ...object.status };
    for (const [field, value] of Object.entries(patch)) {
      if (value === null) Reflect.deleteProperty(status, field);
      else status[field] = structuredClone(value);
    }
    object.status = status;
    return Promise.resolve();
  };
  runtime = new FakeRuntime();
  events = recordingEvents();
  so = rawScaledObject();
  cache = new Map([[KEY, so]]);
  resolve = vi.fn<AuthResolver['resolve']>(() => Promise.resolve(RESOLVED));
  const auth: AuthResolver = { resolve };
  reconciler = createReconciler({
    kube,
    auth,
    cluster: noCluster,
    runtime,
    events,
    cache: { get: (name, namespace) => cache.get(`${namespace}/${name}`) as KubernetesObject | undefined },
    log,
    now: () => NOW,
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
      desiredHpa({
        scaledObject: parsed,
        metrics: [{ metricName: 's0-rabbitmq-orders', target: 20, metricType: 'AverageValue' }],
      }),
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

  test('a second reconcile of the same object writes no status and emits no event; same hashes', async () => {
    await reconcile();
    await reconcile();
    expect(patches()).toHaveLength(1);
    expect(events.reasons()).toStrictEqual(['ScaledObjectReady']);
    const [first, second] = runtime.ensured;
    expect(second?.pollerHash).toBe(first?.pollerHash);
    expect(second?.executorHash).toBe(first?.executorHash);
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
