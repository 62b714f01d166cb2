/**
 * Informers that keep only what sluice reads, and their supervision.
 *
 * - **Slim caches.** A cached object holds only the fields a `slim` function keeps: every list item and every watch
 *   event passes through it before the cache sees it. A Deployment's pod template or any object's `managedFields`
 *   (often half of its JSON) would otherwise stay in memory for every object in the cluster.
 * - **Supervision.** @kubernetes/client-node's informer relists by itself on 410 Gone and reconnects after a client
 *   timeout; any other error stops it. `supervise` restarts it with backoff (0.5 s doubling to 8 s: a cluster back from an outage is seen within 8 s; back to 0.5 s
 *   after a minute without an error) and calls `restarted` once it has started again, so whoever depends on it can
 *   look at everything again. (The informer announces `connect` before each list, so a reset on `connect` would keep
 *   every retry of a long outage at 0.5 s.)
 */
import {
  ListWatch,
  Watch,
  type Informer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type ObjectCache,
} from '@kubernetes/client-node';
import { describeError } from '../errors.ts';

export type InformerLog = (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;

/** A Watch whose ADDED/MODIFIED/DELETED objects pass through `slim` (errors and bookmarks untouched). */
class SlimWatch<T extends KubernetesObject> extends Watch {
  readonly #slim: (obj: T) => T;

  constructor(kc: KubeConfig, slim: (obj: T) => T) {
    super(kc);
    this.#slim = slim;
  }

  override watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    return super.watch(
      path,
      queryParams,
      (phase: string, apiObj: unknown, watchObj?: unknown) => {
        const keep = phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED';
        callback(phase, keep ? this.#slim(apiObj as T) : apiObj, watchObj);
      },
      done,
    );
  }
}

/** An informer (not started) on `path` whose cache holds `slim(object)` for every object `list` and the watch give. */
export function slimInformer<T extends KubernetesObject>(
  kc: KubeConfig,
  path: string,
  list: () => Promise<KubernetesListObject<T>>,
  slim: (obj: T) => T,
): Informer<T> & ObjectCache<T> {
  const slimList = async (): Promise<KubernetesListObject<T>> => {
    const answer = await list();
    return { ...answer, items: answer.items.map(slim) };
  };
  return new ListWatch<T>(path, new SlimWatch<T>(kc, slim), slimList, false);
}

/** The object without `metadata.managedFields` (server-side apply's bookkeeping, which sluice never reads). */
export function withoutManagedFields<T extends KubernetesObject>(obj: T): T {
  if (obj.metadata?.managedFields === undefined) return obj;
  const { managedFields: _dropped, ...metadata } = obj.metadata;
  return { ...obj, metadata };
}

/** The longest wait between two restarts: an API server back from an outage is listed again within this. */
export const MAX_BACKOFF_MS = 8000;

/** An informer that ran this long without an error restarts from the shortest backoff again. */
export const HEALTHY_AFTER_MS = 60_000;

export interface Supervision {
  /** Stops restarting (the informer itself is stopped by its owner). */
  stop(): void;
}

/**
 * Restarts `informer` after an error that stopped it, with backoff, and calls `restarted` after each restart that
 * listed. `name` is for the log ("ScaledObjects", "Deployments").
 */
export function supervise<T extends KubernetesObject>(
  name: string,
  informer: Informer<T>,
  log: InformerLog,
  restarted: () => void,
  now: () => number = Date.now,
): Supervision {
  let failures = 0;
  let lastErrorAt = Number.NEGATIVE_INFINITY;
  let stopped = false;
  const timers = new Set<NodeJS.Timeout>();
  informer.on('error', (err: unknown) => {
    if (stopped) return;
    const at = now();
    if (at - lastErrorAt > HEALTHY_AFTER_MS) failures = 0;
    lastErrorAt = at;
    failures++;
    const delayMs = Math.min(500 * 2 ** (failures - 1), MAX_BACKOFF_MS);
    log('warn', `watch of ${name} ended; restarting in ${delayMs} ms`, { error: describeError(err) });
    const timer = setTimeout(() => {
      timers.delete(timer);
      if (stopped) return;
      informer.start().then(restarted, () => {
        // start() failing emits 'error' again, which schedules the next attempt.
      });
    }, delayMs);
    timers.add(timer);
  });
  return {
    stop() {
      stopped = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
    },
  };
}
