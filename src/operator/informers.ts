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
 * - **Diagnosis.** A watch broken by an error is either resumed from its resourceVersion (the API server replays what
 *   was missed) or, when that resourceVersion is no longer served, answered 410 Gone and listed again
 *   (https://kubernetes.io/docs/reference/using-api/api-concepts/#410-gone-responses). Each is one info line with the
 *   resource and how long its cache was not kept up to date (`awayMs`); `current()` says whether it is now.
 */
import {
  type CustomObjectsApi,
  ListWatch,
  Watch,
  type Informer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type ObjectCache,
} from '@kubernetes/client-node';
import { describeError } from '../errors.ts';
import { GROUP as SLUICE_GROUP, VERSION as SLUICE_VERSION } from './scaled-object.ts';

export type InformerLog = (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;

/** What an informer's log lines name it by ("ScaledObjects", "Deployments") and where they go. */
export interface WatchReport {
  readonly name: string;
  readonly log: InformerLog;
  readonly now?: () => number;
}

/** An informer whose cache holds slim objects, and says whether that cache is complete now. */
export type SlimInformer<T extends KubernetesObject> = Informer<T> &
  ObjectCache<T> & {
    /**
     * True while the cache is complete: it has listed, and its watch runs (or was resumed from where it left off,
     * which replays what it missed). False from a watch broken by an error or expired (410 Gone) until a watch runs
     * again (after a list, for a 410).
     */
    current(): boolean;
  };

function isGone(value: unknown): boolean {
  const { statusCode, code } = (value ?? {}) as { statusCode?: unknown; code?: unknown };
  return statusCode === 410 || code === 410;
}

/**
 * Follows one informer's watches and lists, for `current()` and for the log: a watch broken by an error (supervise
 * logs that and restarts it), then either resumed from its resourceVersion (the API server replays the events since)
 * or expired with 410 Gone and listed again. Each of these is one info line with the resource and how long the cache
 * was not kept up to date. Routine ends (the client's inactivity timeout, the server closing a watch after its
 * timeout) are not logged: the watch is simply made again from the same resourceVersion.
 */
class WatchTracker {
  readonly #report: WatchReport;
  readonly #now: () => number;
  #lists = 0;
  #watching = false;
  /** When the cache stopped being kept up to date (a watch broken by an error), until it is again. */
  #lostAt: number | undefined;
  /** #lostAt of the last resume: a 410 right after a resume counts the time away from there. */
  #resumedFrom: number | undefined;
  /** Whether the last watch expired (410 Gone): the list that follows says why it listed. */
  #expired = false;

  constructor(report: WatchReport) {
    this.#report = report;
    this.#now = report.now ?? Date.now;
  }

  current(): boolean {
    return this.#lists > 0 && this.#watching;
  }

  #awayMs(): number | undefined {
    return this.#lostAt === undefined ? undefined : this.#now() - this.#lostAt;
  }

  listed(items: number, resourceVersion: string | undefined): void {
    this.#lists++;
    if (this.#lists > 1) {
      const reason = this.#expired ? 'its resourceVersion expired (410 Gone)' : 'its watch could not be resumed';
      const awayMs = this.#awayMs();
      this.#report.log('info', `${this.#report.name} listed again (${reason}): ${String(items)} objects`, {
        resourceVersion,
        ...(awayMs === undefined ? {} : { awayMs }),
      });
    }
    this.#lostAt = undefined;
    this.#resumedFrom = undefined;
    this.#expired = false;
  }

  established(resourceVersion: string | undefined): void {
    this.#watching = true;
    // After a list the watch starts from the list's resourceVersion: nothing was resumed.
    if (this.#lostAt === undefined || this.#expired || resourceVersion === undefined || resourceVersion === '') return;
    const awayMs = this.#awayMs() ?? 0;
    this.#report.log(
      'info',
      `watch of ${this.#report.name} resumed from resourceVersion ${resourceVersion} after ${String(awayMs)} ms away`,
      { resourceVersion, awayMs },
    );
    this.#resumedFrom = this.#lostAt;
    this.#lostAt = undefined;
  }

  gone(resourceVersion: string | undefined, message: unknown): void {
    this.#watching = false;
    // Expired at once on resuming (the API server answers 200, then the 410 event): away since the watch was lost.
    this.#lostAt ??= this.#resumedFrom ?? this.#now();
    if (this.#expired) return;
    this.#expired = true;
    this.#report.log(
      'info',
      `watch of ${this.#report.name} expired: resourceVersion ${String(resourceVersion)} is too old (410 Gone); listing again`,
      { resourceVersion, awayMs: this.#awayMs(), ...(typeof message === 'string' ? { message } : {}) },
    );
  }

  /** An event arrived: a watch that was resumed runs. */
  event(): void {
    this.#resumedFrom = undefined;
  }

  ended(err: unknown): void {
    if (err === null || err === undefined || (err as { name?: unknown }).name === 'TimeoutError') {
      // A routine end: the watch ran (and is made again from where it is).
      this.#resumedFrom = undefined;
      return;
    }
    this.#watching = false;
    this.#lostAt ??= this.#now();
  }
}

/**
 * A Watch whose ADDED/MODIFIED/DELETED objects pass through `slim` (errors and bookmarks untouched), and which tells
 * its tracker when a watch runs, ends or expires.
 */
class SlimWatch<T extends KubernetesObject> extends Watch {
  readonly #slim: (obj: T) => T;
  readonly #tracker: WatchTracker;

  constructor(kc: KubeConfig, slim: (obj: T) => T, tracker: WatchTracker) {
    super(kc);
    this.#slim = slim;
    this.#tracker = tracker;
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const from = queryParams['resourceVersion'] === undefined ? undefined : String(queryParams['resourceVersion']);
    const state = { ended: false };
    const controller = await super.watch(
      path,
      queryParams,
      (phase: string, apiObj: unknown, watchObj?: unknown) => {
        if (phase === 'ERROR' && isGone(apiObj)) this.#tracker.gone(from, (apiObj as { message?: unknown }).message);
        else this.#tracker.event();
        const keep = phase === 'ADDED' || phase === 'MODIFIED' || phase === 'DELETED';
        callback(phase, keep ? this.#slim(apiObj as T) : apiObj, watchObj);
      },
      (err: unknown) => {
        state.ended = true;
        if (isGone(err)) this.#tracker.gone(from, undefined);
        else this.#tracker.ended(err);
        done(err);
      },
    );
    // Watch.watch returns once the API server answered 200 and the stream runs, or after `done` for a failure.
    if (!state.ended) this.#tracker.established(from);
    return controller;
  }
}

/**
 * An informer (not started) on `path` whose cache holds `slim(object)` for every object `list` and the watch give,
 * logging as `report` says when its watch is resumed, expires or is listed again.
 */
export function slimInformer<T extends KubernetesObject>(
  kc: KubeConfig,
  path: string,
  list: () => Promise<KubernetesListObject<T>>,
  slim: (obj: T) => T,
  report: WatchReport,
): SlimInformer<T> {
  const tracker = new WatchTracker(report);
  const slimList = async (): Promise<KubernetesListObject<T>> => {
    const answer = await list();
    tracker.listed(answer.items.length, answer.metadata?.resourceVersion);
    return { ...answer, items: answer.items.map(slim) };
  };
  const informer = new ListWatch<T>(path, new SlimWatch<T>(kc, slim, tracker), slimList, false);
  return Object.assign(informer, { current: () => tracker.current() });
}

/** An informer (not started) on every `sluice.dev/v1alpha1` object of `plural`, all namespaces, caches slimmed. */
export function sluiceInformer<T extends KubernetesObject>(
  kc: KubeConfig,
  custom: CustomObjectsApi,
  plural: string,
  report: WatchReport,
): SlimInformer<T> {
  return slimInformer<T>(
    kc,
    `/apis/${SLUICE_GROUP}/${SLUICE_VERSION}/${plural}`,
    async () =>
      (await custom.listClusterCustomObject({
        group: SLUICE_GROUP,
        version: SLUICE_VERSION,
        plural,
      })) as KubernetesListObject<T>,
    withoutManagedFields,
    report,
  );
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
