/**
 * The controller: informers on ScaledObjects and on the HPAs sluice manages feed keys (`namespace/name`) into a
 * keyed work queue; workers call reconcile(key). Events carry no meaning beyond "look at this key again".
 *
 * @kubernetes/client-node's informer relists by itself on 410 Gone and reconnects after a client timeout; any other
 * error stops it, so the controller restarts it with backoff and then re-enqueues every key it knows.
 */
import {
  AutoscalingV2Api,
  CustomObjectsApi,
  makeInformer,
  type Informer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type ObjectCache,
  type V2HorizontalPodAutoscaler,
} from '@kubernetes/client-node';
import { describeError } from '../errors.ts';
import { refersToAuthentication } from './auth-resolver.ts';
import { MANAGED_BY, MANAGED_BY_LABEL } from './hpa.ts';
import { GROUP, PLURAL, SCALED_OBJECT_LABEL, VERSION } from './scaled-object.ts';
import { CLUSTER_TRIGGER_AUTHENTICATION, TRIGGER_AUTHENTICATION } from './trigger-authentication.ts';
import { WorkQueue, type Handler } from './workqueue.ts';

export type Log = (level: 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;

export interface ControllerOptions {
  readonly kc: KubeConfig;
  readonly reconcile: Handler;
  readonly log: Log;
  readonly concurrency?: number;
  /** Re-enqueue every object this often, as a safety net for anything an event missed (ms). */
  readonly resyncMs?: number;
}

export interface Controller {
  /** The ScaledObject cache (read by reconcile). */
  readonly scaledObjects: ObjectCache<KubernetesObject>;
  /** True once both informers have listed. */
  synced(): boolean;
  /** Queue a key now (e.g. when a scaling loop has news). */
  enqueue(key: string): void;
  stop(): Promise<void>;
}

export function keyOf(obj: KubernetesObject): string | undefined {
  const { namespace, name } = obj.metadata ?? {};
  return namespace !== undefined && name !== undefined ? `${namespace}/${name}` : undefined;
}

export async function startController(options: ControllerOptions): Promise<Controller> {
  const { kc, log } = options;
  const custom = kc.makeApiClient(CustomObjectsApi);
  const autoscaling = kc.makeApiClient(AutoscalingV2Api);
  const managedSelector = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;

  const queue = new WorkQueue({
    handler: options.reconcile,
    concurrency: options.concurrency ?? 4,
    onError: (key, message, retryInMs) => {
      log('warn', `reconcile of ${key} failed`, { error: message, retryInMs });
    },
  });

  // An informer's start() resolves even when its list fails (it emits 'error' instead), so "synced" is recorded
  // by the list functions themselves.
  const synced = { so: false, hpa: false };
  const soInformer = makeInformer<KubernetesObject>(kc, `/apis/${GROUP}/${VERSION}/${PLURAL}`, async () => {
    const list = (await custom.listClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: PLURAL,
    })) as KubernetesListObject<KubernetesObject>;
    synced.so = true;
    return list;
  });
  const hpaInformer = makeInformer<V2HorizontalPodAutoscaler>(
    kc,
    '/apis/autoscaling/v2/horizontalpodautoscalers',
    async () => {
      const list = await autoscaling.listHorizontalPodAutoscalerForAllNamespaces({ labelSelector: managedSelector });
      synced.hpa = true;
      return list;
    },
    managedSelector,
  );

  const enqueueSo = (obj: KubernetesObject): void => {
    const key = keyOf(obj);
    if (key !== undefined) queue.add(key);
  };
  // An HPA event concerns its ScaledObject: someone edited or deleted what sluice applies.
  const enqueueOwner = (hpa: V2HorizontalPodAutoscaler): void => {
    const owner = hpa.metadata?.labels?.[SCALED_OBJECT_LABEL];
    if (hpa.metadata?.namespace !== undefined && owner !== undefined) queue.add(`${hpa.metadata.namespace}/${owner}`);
  };
  const enqueueAll = (): void => {
    for (const so of soInformer.list()) enqueueSo(so);
  };

  // A (Cluster)TriggerAuthentication that changes concerns every ScaledObject referring to it. These two informers
  // are not part of readiness: without them, the periodic resync still picks changes up.
  const authInformers = ([TRIGGER_AUTHENTICATION, CLUSTER_TRIGGER_AUTHENTICATION] as const).map((names) => {
    const informer = makeInformer<KubernetesObject>(
      kc,
      `/apis/${GROUP}/${VERSION}/${names.plural}`,
      async () =>
        (await custom.listClusterCustomObject({
          group: GROUP,
          version: VERSION,
          plural: names.plural,
        })) as KubernetesListObject<KubernetesObject>,
    );
    const enqueueUsers = (auth: KubernetesObject): void => {
      const name = auth.metadata?.name;
      if (name === undefined) return;
      for (const so of soInformer.list()) {
        if (refersToAuthentication(so, names.kind, name, auth.metadata?.namespace)) enqueueSo(so);
      }
    };
    for (const verb of ['add', 'update', 'delete'] as const) informer.on(verb, enqueueUsers);
    return { name: names.kind, informer };
  });

  for (const verb of ['add', 'update', 'delete'] as const) {
    soInformer.on(verb, enqueueSo);
    hpaInformer.on(verb, enqueueOwner);
  }

  let stopped = false;
  const restartTimers = new Set<NodeJS.Timeout>();

  const supervise = <T extends KubernetesObject>(name: string, informer: Informer<T>): void => {
    let failures = 0;
    informer.on('connect', () => {
      failures = 0;
    });
    informer.on('error', (err: unknown) => {
      if (stopped) return;
      failures++;
      const delayMs = Math.min(500 * 2 ** (failures - 1), 30_000);
      log('warn', `watch of ${name} ended; restarting in ${delayMs} ms`, {
        error: describeError(err),
      });
      const timer = setTimeout(() => {
        restartTimers.delete(timer);
        if (stopped) return;
        informer.start().then(enqueueAll, () => {
          // start() failing emits 'error' again, which schedules the next attempt.
        });
      }, delayMs);
      restartTimers.add(timer);
    });
  };
  supervise('ScaledObjects', soInformer);
  supervise('HPAs', hpaInformer);
  for (const { name, informer } of authInformers) supervise(`${name}s`, informer);

  await Promise.all([soInformer.start(), hpaInformer.start(), ...authInformers.map((a) => a.informer.start())]);
  enqueueAll();

  const resync = setInterval(enqueueAll, options.resyncMs ?? 300_000);
  resync.unref();

  return {
    scaledObjects: soInformer,
    synced: () => synced.so && synced.hpa,
    enqueue: (key) => {
      queue.add(key);
    },
    async stop() {
      stopped = true;
      clearInterval(resync);
      for (const timer of restartTimers) clearTimeout(timer);
      await Promise.all([soInformer.stop(), hpaInformer.stop(), ...authInformers.map((a) => a.informer.stop())]);
      await queue.stop();
    },
  };
}
