/**
 * The controller: informers on ScaledObjects and on the HPAs sluice manages feed keys (`namespace/name`) into a
 * keyed work queue; workers call reconcile(key). Events carry no meaning beyond "look at this key again".
 *
 * Informers stopped by an error are restarted with backoff (informers.ts), then every key is queued again. Their caches
 * hold the objects without `managedFields`.
 */
import { apiClient, apiErrorMessage } from '../kube-client.ts';
import {
  AutoscalingV2Api,
  CustomObjectsApi,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type ObjectCache,
  type V2HorizontalPodAutoscaler,
} from '@kubernetes/client-node';
import { refersToAuthentication } from './auth-resolver.ts';
import { MANAGED_BY, MANAGED_BY_LABEL } from './hpa.ts';
import { slimInformer, sluiceInformer, supervise, withoutManagedFields } from './informers.ts';
import { workloadOf, type Workload } from './ownership.ts';
import { GROUP, PLURAL, SCALED_OBJECT_LABEL, VERSION } from './scaled-object.ts';
import {
  CLUSTER_TRIGGER_AUTHENTICATION,
  TRIGGER_AUTHENTICATION,
  type AuthenticationKind,
} from './trigger-authentication.ts';
import { WorkQueue, type Handler, type Priority } from './workqueue.ts';
import { WorkloadIndex, type Targeting } from './workload-index.ts';

export type Log = (level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;

export interface ControllerOptions {
  readonly kc: KubeConfig;
  readonly log: Log;
  readonly concurrency?: number;
  /** Re-enqueue every object this often, as a safety net for anything an event missed (ms). */
  readonly resyncMs?: number;
  /** A (Cluster)TriggerAuthentication was added, changed or deleted (MetricSources refer to them too). */
  readonly onAuthenticationChange?: (kind: AuthenticationKind, obj: KubernetesObject) => void;
}

export interface Controller {
  /** The ScaledObject cache (read by reconcile). */
  readonly scaledObjects: ObjectCache<KubernetesObject>;
  /** Every HPA (read by reconcile: one autoscaler per workload). */
  readonly hpas: ObjectCache<V2HorizontalPodAutoscaler>;
  /** The ScaledObjects and HPAs of `namespace` that target `workload` (from an index, not a scan). */
  targeting(namespace: string, workload: Workload): Targeting;
  /** True once both informers have listed. */
  synced(): boolean;
  /** Queue a key for a status refresh (a scaling loop has news): after every change, resync and retry queued. */
  enqueue(key: string): void;
  /** Queue every ScaledObject (e.g. this replica just became the leader and has everything to write). */
  enqueueAll(): void;
  /** Keys waiting for a worker now (not those being reconciled or waiting out a backoff): /metrics. */
  queueLength(): number;
  stop(): Promise<void>;
}

/** What an update must change to be worth a reconcile: everything but status and bookkeeping. */
export function relevantSignature(obj: KubernetesObject): string {
  const m = obj.metadata ?? {};
  const spec = (obj as { spec?: unknown }).spec;
  return JSON.stringify([
    m.generation,
    m.labels ?? {},
    m.annotations ?? {},
    m.finalizers ?? [],
    m.deletionTimestamp ?? null,
    m.ownerReferences ?? [],
    // Objects without a generation (none of ours) fall back to their spec.
    m.generation === undefined ? (spec ?? null) : null,
  ]);
}

interface ScaleTargetView {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly name?: string;
}

/** The objects under `keys` (`namespace/name`) that `cache` holds. */
function cached<T extends KubernetesObject>(cache: ObjectCache<T>, keys: readonly string[]): T[] {
  return keys.flatMap((key) => {
    const slash = key.indexOf('/');
    const found = cache.get(key.slice(slash + 1), key.slice(0, slash));
    return found === undefined ? [] : [found];
  });
}

export function keyOf(obj: KubernetesObject): string | undefined {
  const { namespace, name } = obj.metadata ?? {};
  return namespace !== undefined && name !== undefined ? `${namespace}/${name}` : undefined;
}

/**
 * Creates the informers (not started) and returns the controller; `start(reconcile)` starts them. The ScaledObject
 * cache exists before any event is delivered, so a reconcile never runs against a cache it cannot see (a key looked up
 * in no cache reads as deleted, which once left objects unreconciled for minutes after a restart).
 */
export function createController(options: Omit<ControllerOptions, 'reconcile'>): Controller & {
  start(reconcile: Handler): Promise<void>;
} {
  const { kc, log } = options;
  // Lists of every object may be large: a longer deadline than single calls.
  const custom = apiClient(kc, CustomObjectsApi, 60_000);
  const autoscaling = apiClient(kc, AutoscalingV2Api, 60_000);

  let reconcile: Handler = () => Promise.reject(new Error('the controller has not started'));
  const queue = new WorkQueue({
    handler: (key) => reconcile(key),
    concurrency: options.concurrency ?? 4,
    describe: apiErrorMessage,
    onError: (key, message, retryInMs) => {
      log('warn', `reconcile of ${key} failed`, { error: message, retryInMs });
    },
  });
  let started = false;

  // An informer's start() resolves even when its list fails (it emits 'error' instead), so "synced" is recorded
  // by the list functions themselves.
  const synced = { so: false, hpa: false };
  const soInformer = slimInformer<KubernetesObject>(
    kc,
    `/apis/${GROUP}/${VERSION}/${PLURAL}`,
    async () => {
      const list = (await custom.listClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: PLURAL,
      })) as KubernetesListObject<KubernetesObject>;
      synced.so = true;
      return list;
    },
    withoutManagedFields,
    { name: 'ScaledObjects', log },
  );
  // Every HPA, not only sluice's: one autoscaler per workload means seeing the HPAs others made.
  const hpaInformer = slimInformer<V2HorizontalPodAutoscaler>(
    kc,
    '/apis/autoscaling/v2/horizontalpodautoscalers',
    async () => {
      const list = await autoscaling.listHorizontalPodAutoscalerForAllNamespaces();
      synced.hpa = true;
      return list;
    },
    withoutManagedFields,
    { name: 'HPAs', log },
  );

  const enqueueSo = (obj: KubernetesObject, priority: Priority = 'high'): void => {
    const key = keyOf(obj);
    if (key !== undefined && started) queue.add(key, priority);
  };
  // Which ScaledObjects and HPAs act on each workload (one autoscaler per workload), kept from the events below.
  const soTargets = new WorkloadIndex();
  const hpaTargets = new WorkloadIndex();
  /** Every ScaledObject of `namespace` whose scale target is `workload`. */
  const enqueueTargeting = (namespace: string | undefined, workload: Workload | undefined): void => {
    if (namespace === undefined || workload === undefined || !started) return;
    for (const key of soTargets.keys(namespace, workload)) queue.add(key);
  };
  /** Records an event's object in `index`; returns the workload it targets now and the one it targeted before. */
  const track = (
    index: WorkloadIndex,
    obj: KubernetesObject,
    ref: ScaleTargetView | undefined,
    removed: boolean,
  ): { now: Workload; before: Workload | undefined } => {
    const key = keyOf(obj);
    const now = workloadOf(ref ?? {});
    if (key === undefined || obj.metadata?.namespace === undefined) return { now, before: undefined };
    const before = removed ? index.delete(key) : index.set(key, obj.metadata.namespace, now);
    return { now, before };
  };
  // An event of sluice's HPA concerns its ScaledObject: someone edited or deleted what sluice applies. An event of
  // someone else's HPA concerns the ScaledObjects on the same workload (one may be refused because of it), before
  // and after a change of its target.
  const enqueueOwner = (hpa: V2HorizontalPodAutoscaler, removed = false): void => {
    const owner =
      hpa.metadata?.labels?.[MANAGED_BY_LABEL] === MANAGED_BY ? hpa.metadata.labels[SCALED_OBJECT_LABEL] : undefined;
    if (hpa.metadata?.namespace !== undefined && owner !== undefined && started) {
      queue.add(`${hpa.metadata.namespace}/${owner}`);
    }
    const { now, before } = track(hpaTargets, hpa, hpa.spec.scaleTargetRef, removed);
    enqueueTargeting(hpa.metadata?.namespace, now);
    enqueueTargeting(hpa.metadata?.namespace, before);
  };
  /** A ScaledObject's event also concerns its twins on the same workload, before and after a change of target. */
  const enqueueTwins = (obj: KubernetesObject, removed: boolean): void => {
    const { now, before } = track(
      soTargets,
      obj,
      (obj as { spec?: { scaleTargetRef?: ScaleTargetView } }).spec?.scaleTargetRef,
      removed,
    );
    enqueueTargeting(obj.metadata?.namespace, now);
    enqueueTargeting(obj.metadata?.namespace, before);
  };
  /**
   * Every object again. The periodic resync queues them `low`, behind every change: at 10,000 objects a resync at the
   * changes' priority re-queued the objects already done ahead of those still waiting for their HPA, every 5 minutes,
   * while reconciling all of them took longer than that.
   */
  const enqueueAll = (priority: Priority = 'high'): void => {
    for (const so of soInformer.list()) enqueueSo(so, priority);
  };
  /** An informer restarted after an error: everything may have changed meanwhile. */
  const relisted = (): void => {
    enqueueAll();
  };

  // A (Cluster)TriggerAuthentication that changes concerns every ScaledObject referring to it. These two informers
  // are not part of readiness: without them, the periodic resync still picks changes up.
  const authInformers = ([TRIGGER_AUTHENTICATION, CLUSTER_TRIGGER_AUTHENTICATION] as const).map((names) => {
    const informer = sluiceInformer<KubernetesObject>(kc, custom, names.plural, { name: `${names.kind}s`, log });
    const enqueueUsers = (auth: KubernetesObject): void => {
      options.onAuthenticationChange?.(names.kind, auth);
      const name = auth.metadata?.name;
      if (name === undefined) return;
      for (const so of soInformer.list()) {
        if (refersToAuthentication(so, names.kind, name, auth.metadata?.namespace)) enqueueSo(so);
      }
    };
    for (const verb of ['add', 'update', 'delete'] as const) informer.on(verb, enqueueUsers);
    return { name: names.kind, informer };
  });

  // An update matters only when it changes what reconcile reads: the spec (generation), labels, annotations (pause
  // annotations do not bump the generation), finalizers or deletion. Status-only updates (sluice's own status writes,
  // the HPA controller's status every sync) do not queue anything.
  const seen = new Map<string, string>();
  const changed = (obj: KubernetesObject): boolean => {
    const uid = obj.metadata?.uid;
    if (uid === undefined) return true;
    const signature = relevantSignature(obj);
    if (seen.get(uid) === signature) return false;
    seen.set(uid, signature);
    return true;
  };
  const forget = (obj: KubernetesObject): void => {
    if (obj.metadata?.uid !== undefined) seen.delete(obj.metadata.uid);
  };
  soInformer.on('add', (obj) => {
    changed(obj);
    enqueueSo(obj);
    enqueueTwins(obj, false);
  });
  soInformer.on('update', (obj) => {
    if (!changed(obj)) return;
    enqueueSo(obj);
    enqueueTwins(obj, false);
  });
  soInformer.on('delete', (obj) => {
    forget(obj);
    enqueueSo(obj);
    enqueueTwins(obj, true);
  });
  hpaInformer.on('add', (obj) => {
    changed(obj);
    enqueueOwner(obj);
  });
  hpaInformer.on('update', (obj) => {
    if (changed(obj)) enqueueOwner(obj);
  });
  hpaInformer.on('delete', (obj) => {
    forget(obj);
    enqueueOwner(obj, true);
  });

  const supervisions = [
    supervise('ScaledObjects', soInformer, log, relisted),
    supervise('HPAs', hpaInformer, log, relisted),
    ...authInformers.map(({ name, informer }) => supervise(`${name}s`, informer, log, relisted)),
  ];

  let resync: NodeJS.Timeout | undefined;

  return {
    scaledObjects: soInformer,
    hpas: hpaInformer,
    targeting: (namespace, workload) => ({
      scaledObjects: cached(soInformer, soTargets.keys(namespace, workload)),
      hpas: cached(hpaInformer, hpaTargets.keys(namespace, workload)),
    }),
    synced: () => synced.so && synced.hpa,
    enqueue: (key) => {
      if (started) queue.add(key, 'low');
    },
    enqueueAll: relisted,
    queueLength: () => queue.length,
    async start(handler) {
      reconcile = handler;
      started = true;
      await Promise.all([soInformer.start(), hpaInformer.start(), ...authInformers.map((a) => a.informer.start())]);
      const all = soInformer.list();
      log('info', `initial list: ${all.length} ScaledObjects, each queued for reconcile`, {
        synced: synced.so && synced.hpa,
      });
      enqueueAll();
      resync = setInterval(() => {
        enqueueAll('low');
      }, options.resyncMs ?? 300_000);
      resync.unref();
    },
    async stop() {
      clearInterval(resync);
      for (const supervision of supervisions) supervision.stop();
      await Promise.all([soInformer.stop(), hpaInformer.stop(), ...authInformers.map((a) => a.informer.stop())]);
      await queue.stop();
    },
  };
}
