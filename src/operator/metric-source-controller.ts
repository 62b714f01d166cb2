/**
 * The MetricSource controller: an informer on MetricSources (and the ScaledObject controller's news of
 * TriggerAuthentications, which they may refer to) feeds a keyed work queue; `reconcile(key)` validates the object, resolves its credentials with the same resolver
 * and rules as a ScaledObject's, refuses a second MetricSource for a metric name already served in the namespace, and
 * has the registry (metric-sources.ts) serve it. It runs on every replica (each serves the API); only the leader
 * writes status: Ready with a reason, the live selectors and the last error.
 *
 * `prepareMetricSource` is the part `sluice serve --config` shares: everything but the cluster's informers and status.
 */
import { apiClient, apiErrorMessage } from '../kube-client.ts';
import { ApiException, CustomObjectsApi, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { ValidationError } from '../errors.ts';
import { fingerprint } from '../fingerprint.ts';
import type { Logger } from '../log.ts';
import { isKnownTriggerType } from '../scalers/registry.ts';
import { AuthResolutionError, type AuthSubject, type TriggerAuthResolver } from './auth-resolver.ts';
import { setCondition, type ConditionFields } from './conditions.ts';
import { relevantSignature } from './controller.ts';
import { sluiceInformer, supervise } from './informers.ts';
import { isNotFound, type ObjectRef } from './kube.ts';
import {
  METRIC_SOURCE,
  parseMetricSource,
  sampleValues,
  type MetricSource,
  type MetricSourceStatus,
} from './metric-source.ts';
import type { MetricSourceRegistry, MetricSourceSettings, MetricSourceSnapshot } from './metric-sources.ts';
import { GROUP, VERSION } from './scaled-object.ts';
import { TRIGGER_AUTHENTICATION, type AuthenticationKind } from './trigger-authentication.ts';
import { WorkQueue, type HandlerResult } from './workqueue.ts';

export const READY = 'Ready';

// ---------------------------------------------------------------------------------------------------------------
// preparing one MetricSource (shared with `sluice serve`)

export type Prepared =
  | { readonly ok: true; readonly source: MetricSource; readonly settings: MetricSourceSettings }
  | { readonly ok: false; readonly reason: 'InvalidSpec'; readonly message: string };

/** The MetricSource's one trigger as the auth resolver sees it. */
export function metricSourceSubject(source: MetricSource): AuthSubject {
  return {
    namespace: source.metadata.namespace ?? '',
    triggers: [source.spec.trigger],
    triggerField: () => 'spec.trigger',
    scaleTargetRef: undefined,
    kind: 'a MetricSource',
  };
}

/**
 * Validates `raw` (schema, placeholders, credentials, the scaler's own check of the metadata with every placeholder
 * filled by a sample value) and returns what the registry runs on. ValidationError becomes `InvalidSpec`;
 * AuthResolutionError (a Secret not there yet, a failed read) is thrown for the caller to retry.
 */
export async function prepareMetricSource(
  raw: unknown,
  deps: { readonly auth: TriggerAuthResolver; readonly registry: Pick<MetricSourceRegistry, 'buildScaler'> },
): Promise<Prepared> {
  try {
    const { source, placeholders } = parseMetricSource(raw);
    const namespace = source.metadata.namespace ?? '';
    if (namespace === '') throw new ValidationError('metadata.namespace', 'is required');
    const { type, metadata } = source.spec.trigger;
    if (!isKnownTriggerType(type)) throw new ValidationError('spec.trigger.type', `unknown trigger type "${type}"`);
    const auth = await deps.auth.resolveTriggers(metricSourceSubject(source));
    const { spec } = source;
    const settings: MetricSourceSettings = {
      key: `${namespace}/${source.metadata.name}`,
      namespace,
      metricName: spec.metricName,
      type,
      metadata,
      placeholders,
      authParams: auth.triggers[0]?.authParams ?? {},
      pollingIntervalS: spec.pollingInterval,
      maxSelectors: spec.maxSelectors,
      selectorIdleS: spec.selectorIdleSeconds,
      hash: fingerprint(source.metadata.uid ?? '', spec, auth.fingerprint),
    };
    // Validation is not connection: building a scaler never dials its backend.
    deps.registry.buildScaler(settings, sampleValues(placeholders));
    return { ok: true, source, settings };
  } catch (err) {
    if (err instanceof ValidationError) return { ok: false, reason: 'InvalidSpec', message: err.message };
    throw err;
  }
}

/**
 * Of the MetricSources of one namespace, the one that serves `metricName`: the oldest (then the first by name); the
 * others are refused. Names compared case-insensitively, as the metrics API matches them. Pure.
 */
export function metricNameOwner(
  candidates: readonly { readonly name: string; readonly metricName: string; readonly createdAt: string }[],
  metricName: string,
): string | undefined {
  const same = candidates.filter((c) => c.metricName.toLowerCase() === metricName.toLowerCase());
  same.sort((a, b) =>
    a.createdAt !== b.createdAt ? (a.createdAt < b.createdAt ? -1 : 1) : a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  );
  return same[0]?.name;
}

// ---------------------------------------------------------------------------------------------------------------
// status

export function metricSourceReady(metricName: string, live: number): ConditionFields {
  return {
    type: READY,
    status: 'True',
    reason: 'MetricSourceReady',
    message: `serving external metric ${metricName} (${live} live selector${live === 1 ? '' : 's'})`,
  };
}

export function metricSourceRefused(reason: string, message: string): ConditionFields {
  return { type: READY, status: 'False', reason, message };
}

/**
 * The status for a Ready condition and what the registry serves (no values: they change every read; no response
 * bodies or credentials: errors are the scalers', which quote neither). Pure.
 */
export function metricSourceStatus(
  previous: MetricSourceStatus,
  ready: ConditionFields,
  snapshot: MetricSourceSnapshot | undefined,
  generation: number | undefined,
  now: Date,
): MetricSourceStatus {
  const selectors = (snapshot?.selectors ?? []).map((s) => ({
    labelSelector: s.labelSelector,
    since: kubeTimeOf(s.since),
    ...(s.error === undefined ? {} : { error: s.error }),
  }));
  return {
    conditions: setCondition(previous.conditions, ready, now),
    selectors,
    ...(snapshot?.lastError === undefined ? {} : { lastError: snapshot.lastError }),
    ...(generation === undefined ? {} : { observedGeneration: generation }),
  };
}

function kubeTimeOf(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The merge patch from one status to the next (a field that goes away is written as null). */
export function metricSourceStatusPatch(next: MetricSourceStatus): Record<string, unknown> {
  return {
    conditions: next.conditions ?? [],
    selectors: next.selectors ?? [],
    lastError: next.lastError ?? null,
    observedGeneration: next.observedGeneration ?? null,
  };
}

function sameStatus(a: MetricSourceStatus, b: MetricSourceStatus): boolean {
  return JSON.stringify(metricSourceStatusPatch(a)) === JSON.stringify(metricSourceStatusPatch(b));
}

// ---------------------------------------------------------------------------------------------------------------
// the controller

export interface MetricSourceControllerOptions {
  readonly kc: KubeConfig;
  readonly log: Logger;
  readonly registry: MetricSourceRegistry;
  readonly auth: TriggerAuthResolver;
  readonly patchStatus: (
    ref: ObjectRef,
    status: Record<string, unknown>,
    resourceVersion: string | undefined,
  ) => Promise<void>;
  /** Whether this replica writes status (the leader). */
  readonly leading: () => boolean;
  readonly concurrency?: number;
  readonly resyncMs?: number;
  readonly now?: () => Date;
}

export interface MetricSourceController {
  start(): Promise<void>;
  /** Queue a MetricSource for a status refresh (its selectors or errors changed). */
  enqueue(key: string): void;
  /** Queue every MetricSource (this replica just became the leader). */
  enqueueAll(): void;
  /** A (Cluster)TriggerAuthentication changed (the ScaledObject controller's informers): its users are checked again. */
  authenticationChanged(kind: AuthenticationKind, obj: KubernetesObject): void;
  stop(): Promise<void>;
}

interface MetricSourceView extends KubernetesObject {
  spec?: { metricName?: unknown; trigger?: { authenticationRef?: { name?: unknown; kind?: unknown } } };
  status?: MetricSourceStatus;
}

function splitKey(key: string): { namespace: string; name: string } {
  const slash = key.indexOf('/');
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

export function createMetricSourceController(options: MetricSourceControllerOptions): MetricSourceController {
  const { kc, log, registry } = options;
  const now = options.now ?? (() => new Date());
  const custom = apiClient(kc, CustomObjectsApi, 60_000);
  const informer = sluiceInformer<MetricSourceView>(kc, custom, METRIC_SOURCE.plural, { name: 'MetricSources', log });
  let started = false;
  const queue = new WorkQueue({
    handler: (key) => reconcile(key),
    concurrency: options.concurrency ?? 2,
    describe: apiErrorMessage,
    onError: (key, message, retryInMs) => {
      log('warn', `reconcile of MetricSource ${key} failed`, { error: message, retryInMs });
    },
  });
  const keyOf = (obj: KubernetesObject) => `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;
  /**
   * Keys to validate and resolve again (an object or a TriggerAuthentication changed, a resync, a retry). Any other
   * reconcile (the registry's news of selectors and errors) only refreshes the status of what runs.
   */
  const stale = new Set<string>();
  /** What each running MetricSource was prepared from: its relevant signature and metric name. */
  const prepared = new Map<string, { readonly signature: string; readonly metricName: string }>();
  const reprepare = (key: string): void => {
    stale.add(key);
    queue.add(key);
  };
  const enqueueAll = (): void => {
    if (!started) return;
    for (const obj of informer.list()) reprepare(keyOf(obj));
  };
  // Any change may change which MetricSource of the namespace owns a metric name: look at all of them again.
  const enqueueNamespace = (obj: KubernetesObject): void => {
    if (!started) return;
    for (const other of informer.list(obj.metadata?.namespace)) reprepare(keyOf(other));
    reprepare(keyOf(obj));
  };
  // Status-only updates (our own writes) change nothing reconcile reads.
  const seen = new Map<string, string>();
  informer.on('add', (obj) => {
    if (obj.metadata?.uid !== undefined) seen.set(obj.metadata.uid, relevantSignature(obj));
    enqueueNamespace(obj);
  });
  informer.on('update', (obj) => {
    const uid = obj.metadata?.uid;
    const signature = relevantSignature(obj);
    if (uid !== undefined && seen.get(uid) === signature) return;
    if (uid !== undefined) seen.set(uid, signature);
    enqueueNamespace(obj);
  });
  informer.on('delete', (obj) => {
    if (obj.metadata?.uid !== undefined) seen.delete(obj.metadata.uid);
    enqueueNamespace(obj);
  });
  const supervision = supervise('MetricSources', informer, log, enqueueAll);
  let resync: NodeJS.Timeout | undefined;

  /**
   * Writes `next` unless it is what `raw` holds, guarded by `raw`'s resourceVersion. Returns false when the object
   * changed since (our own previous status write, not yet in the cache): the caller runs again shortly, since the
   * watch event of a status-only change queues nothing.
   */
  async function writeStatus(raw: MetricSourceView, next: MetricSourceStatus): Promise<boolean> {
    const previous = raw.status ?? {};
    if (!options.leading() || sameStatus(previous, next)) return true;
    const { namespace = '', name = '' } = raw.metadata ?? {};
    try {
      await options.patchStatus(
        { group: GROUP, version: VERSION, plural: METRIC_SOURCE.plural, namespace, name },
        metricSourceStatusPatch(next),
        raw.metadata?.resourceVersion,
      );
    } catch (err) {
      if (err instanceof ApiException && err.code === 409) {
        log('debug', `status of MetricSource ${namespace}/${name} not written: the cache is behind; reconciling again`);
        return false;
      }
      // Deleted meanwhile: its delete event reconciles it again.
      if (isNotFound(err)) return true;
      throw err;
    }
    return true;
  }

  async function refuse(key: string, raw: MetricSourceView, reason: string, message: string): Promise<boolean> {
    if (registry.has(key)) log('warn', `MetricSource ${key} is not served`, { reason, error: message });
    registry.remove(key);
    prepared.delete(key);
    const previous = raw.status ?? {};
    return writeStatus(
      raw,
      metricSourceStatus(previous, metricSourceRefused(reason, message), undefined, raw.metadata?.generation, now()),
    );
  }

  /** Run again this soon when a status write found the informer's copy behind (a watch event's lag). */
  const STALE_RETRY = { requeueAfterMs: 100 } as const;

  async function reconcile(key: string): Promise<HandlerResult | undefined> {
    const { namespace, name } = splitKey(key);
    const raw = informer.get(name, namespace);
    if (raw === undefined) {
      stale.delete(key);
      prepared.delete(key);
      registry.remove(key);
      return undefined;
    }
    const signature = relevantSignature(raw);
    const running = prepared.get(key);
    if (!stale.has(key) && registry.has(key) && running?.signature === signature) {
      return (await writeReady(key, raw, running.metricName)) ? undefined : STALE_RETRY;
    }
    stale.delete(key);
    let result: Prepared;
    try {
      result = await prepareMetricSource(raw, { auth: options.auth, registry });
    } catch (err) {
      if (!(err instanceof AuthResolutionError)) throw err;
      // Retried with backoff; what runs keeps running meanwhile (a Secret read that failed once is no reason to stop).
      stale.add(key);
      if (!registry.has(key)) await refuse(key, raw, 'AuthenticationUnresolved', `${err.message} (retried)`);
      throw err;
    }
    if (!result.ok) return (await refuse(key, raw, result.reason, result.message)) ? undefined : STALE_RETRY;
    const { settings } = result;
    const owner = metricNameOwner(
      informer.list(namespace).map((o) => ({
        name: o.metadata?.name ?? '',
        metricName: typeof o.spec?.metricName === 'string' ? o.spec.metricName : '',
        createdAt: createdAtOf(o),
      })),
      settings.metricName,
    );
    if (owner !== undefined && owner !== name) {
      const written = await refuse(
        key,
        raw,
        'MetricNameConflict',
        `metric ${settings.metricName} is already served in namespace ${namespace} by MetricSource ${owner} (the older one); give this one another spec.metricName, or delete ${owner}`,
      );
      return written ? undefined : STALE_RETRY;
    }
    registry.ensure(settings);
    prepared.set(key, { signature, metricName: settings.metricName });
    return (await writeReady(key, raw, settings.metricName)) ? undefined : STALE_RETRY;
  }

  async function writeReady(key: string, raw: MetricSourceView, metricName: string): Promise<boolean> {
    const snapshot = registry.snapshot(key);
    return writeStatus(
      raw,
      metricSourceStatus(
        raw.status ?? {},
        metricSourceReady(metricName, snapshot?.selectors.length ?? 0),
        snapshot,
        raw.metadata?.generation,
        now(),
      ),
    );
  }

  return {
    async start() {
      started = true;
      await informer.start();
      log('info', `initial list: ${informer.list().length} MetricSources`);
      enqueueAll();
      resync = setInterval(enqueueAll, options.resyncMs ?? 300_000);
      resync.unref();
    },
    enqueue(key) {
      if (started) queue.add(key, 'low');
    },
    enqueueAll,
    authenticationChanged(kind, obj) {
      if (!started) return;
      const namespace = kind === TRIGGER_AUTHENTICATION.kind ? obj.metadata?.namespace : undefined;
      for (const source of informer.list(namespace)) {
        const ref = source.spec?.trigger?.authenticationRef;
        const refKind = typeof ref?.kind === 'string' ? ref.kind : TRIGGER_AUTHENTICATION.kind;
        if (ref?.name === obj.metadata?.name && refKind === kind) reprepare(keyOf(source));
      }
    },
    async stop() {
      clearInterval(resync);
      supervision.stop();
      await informer.stop();
      await queue.stop();
      registry.stopAll();
    },
  };
}

function createdAtOf(obj: KubernetesObject): string {
  const created = obj.metadata?.creationTimestamp as unknown;
  if (created instanceof Date) return created.toISOString();
  return typeof created === 'string' ? new Date(created).toISOString() : '';
}
