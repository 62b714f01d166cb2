/**
 * reconcile(key): level-triggered and idempotent. It reads the ScaledObject from the informer cache and makes the
 * world match it, as a checklist; the first step that fails decides the status, and nothing runs on a spec the status
 * does not describe:
 *
 *   0. gone            → stop its poller and executor, drop its metrics (the HPA goes with the owner reference).
 *   1. valid?          → schema, cross-field rules, every trigger's parameters, the HPA it implies (pure; a target
 *                         that rounds to a zero Quantity is caught here). No: Ready=False naming the field, no HPA,
 *                         nothing running; not retried until the object changes.
 *   2. credentials     → TriggerAuthentications, Secrets, the target's environment. A failure that may heal by
 *                         itself (a Secret created a moment later, an API error) is retried with backoff; what ran on
 *                         this same generation keeps running meanwhile.
 *   3. scale target    → it must exist and have a scale subresource. No: Ready=False naming it, no HPA, nothing
 *                         running; checked again every 10 s, so creating the target heals it.
 *   4. HPA             → server-side apply (a renamed HPA's old one deleted first). Refused by the API server (an
 *                         admission policy, a quota): Ready=False with the server's answer, nothing running; checked
 *                         again every 30 s and on every change.
 *   5. run             → the registry starts, keeps or restarts the poller and executor (only what changed).
 *   6. status          → written when it differs; Events for what changed (ScaledObjectReady, …CheckFailed).
 *
 * It is the only writer of ScaledObject status. Connecting to a backend is never part of it: a valid object whose
 * broker is down gets its HPA, and its poller reports the failure (docs/scaling-core.md).
 */
import { ApiException, type KubernetesObject, type V2HorizontalPodAutoscaler } from '@kubernetes/client-node';
import { SluiceError, ValidationError } from '../errors.ts';
import { apiErrorMessage } from '../kube-client.ts';
import { fingerprint } from '../fingerprint.ts';
import type { Logger } from '../log.ts';
import { isResourceTrigger, parseResourceTrigger, type ResourceMetric } from '../scalers/cpu-memory.ts';
import { createScaler } from '../scalers/registry.ts';
import type { ClusterPort, Scaler } from '../scalers/scaler.ts';
import { AuthResolutionError, type AuthResolution, type AuthResolver } from './auth-resolver.ts';
import type { EventRecorder, ObjectReference } from './events.ts';
import { anyPause, parseAnnotations, type ObjectAnnotations } from './annotations.ts';
import { COMPOSITE_METRIC, parseComposite, type CompositeSpec } from './composite.ts';
import { PAUSED, findCondition } from './conditions.ts';
import { desiredHpa, hpaUpToDate, withDesiredDigest, type DesiredHpa, type HpaMetric } from './hpa.ts';
import {
  TargetNotFoundError,
  isNotFound,
  type KubePort,
  type ObjectRef,
  type ScaleState,
  type ScaleTarget,
} from './kube.ts';
import { decideOwnership, workloadOf, type Workload } from './ownership.ts';
import type { TriggerIdentity } from './poller.ts';
import {
  API_VERSION,
  GROUP,
  KIND,
  PLURAL,
  VERSION,
  hpaNameFor,
  parseScaledObject,
  type ScaledObject,
  type ScaledObjectStatus,
} from './scaled-object.ts';
import type { RuntimeSnapshot, RuntimeSpec } from './scaling-registry.ts';
import {
  checkFailedStatus,
  isNewFailure,
  pausedStatus,
  runningStatus,
  sameStatus,
  statusPatch,
  wasReady,
} from './status.ts';
import type { Targeting } from './workload-index.ts';
import type { HandlerResult } from './workqueue.ts';

/** What reconcile needs of the registry (scaling-registry.ts; tests pass an in-memory one). */
export interface RuntimePort {
  ensure(spec: RuntimeSpec): Promise<unknown>;
  remove(key: string): Promise<void>;
  has(key: string): boolean;
  snapshot(key: string): RuntimeSnapshot | undefined;
}

export interface ReconcilerDeps {
  readonly kube: KubePort;
  /** Resolves TriggerAuthentications and the scale target's environment. */
  readonly auth: AuthResolver;
  /** Handed to scalers that discover endpoints. */
  readonly cluster: ClusterPort;
  readonly runtime: RuntimePort;
  readonly events: EventRecorder;
  /** The ScaledObject informer's cache. */
  readonly cache: {
    get(name: string, namespace: string): KubernetesObject | undefined;
  };
  /** Every HPA of a namespace (the HPA informer's cache): one autoscaler per workload. */
  readonly hpas: {
    list(namespace: string): readonly V2HorizontalPodAutoscaler[];
    get(name: string, namespace: string): V2HorizontalPodAutoscaler | undefined;
  };
  /** The ScaledObjects and HPAs of a namespace that target a workload (controller.ts keeps the index). */
  readonly targeting: (namespace: string, workload: Workload) => Targeting;
  readonly log: Logger;
  readonly now?: () => Date;
  /**
   * Whether this replica leads (leader.ts; default always). A follower validates, resolves and runs the triggers'
   * pollers (its metrics API serves fresh values) and writes nothing: no HPA, status, finalizer, Event or scale.
   */
  readonly leading?: () => boolean;
}

export interface Reconciler {
  reconcile(key: string): Promise<HandlerResult | undefined>;
}

/** How often a missing scale target is looked for again. */
export const TARGET_RECHECK_MS = 10_000;
/** How often an HPA the API server refused is tried again (an edit of the ScaledObject tries at once). */
export const HPA_RECHECK_MS = 30_000;

function splitKey(key: string): { namespace: string; name: string } {
  const slash = key.indexOf('/');
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/** Every trigger, built (validated): pure, no I/O, nothing to close. */
export interface BuiltTriggers {
  /** The external triggers' scalers, in trigger order. */
  readonly scalers: readonly Scaler[];
  /** Each scaler's trigger name (for a scalingModifiers formula). */
  readonly names: readonly (string | undefined)[];
  /** Each scaler's index in spec.triggers and type (/metrics labels). */
  readonly identities: readonly TriggerIdentity[];
  /** The cpu and memory triggers: Resource metrics the HPA reads itself. */
  readonly resources: readonly ResourceMetric[];
}

export function buildTriggers(
  so: ScaledObject,
  cluster: ClusterPort,
  auth: AuthResolution,
  composite: CompositeSpec | undefined,
): BuiltTriggers {
  const scalers: Scaler[] = [];
  const names: (string | undefined)[] = [];
  const identities: TriggerIdentity[] = [];
  const resources: ResourceMetric[] = [];
  for (const [index, trigger] of so.spec.triggers.entries()) {
    const built = buildTrigger(so, index, cluster, auth, composite);
    if (built.kind === 'resource') {
      resources.push(built.resource);
      continue;
    }
    scalers.push(built.scaler);
    names.push(trigger.name === '' ? undefined : trigger.name);
    identities.push({ index, type: trigger.type });
  }
  return { scalers, names, identities, resources };
}

/**
 * `spec.triggers[index]`, built (validated): a cpu/memory Resource metric or a scaler. Pure, no I/O (also what
 * `sluice validate` checks offline, trigger by trigger).
 */
export function buildTrigger(
  so: ScaledObject,
  index: number,
  cluster: ClusterPort,
  auth: Pick<AuthResolution, 'triggers'>,
  composite: CompositeSpec | undefined,
):
  | { readonly kind: 'resource'; readonly resource: ResourceMetric }
  | { readonly kind: 'scaler'; readonly scaler: Scaler } {
  const trigger = so.spec.triggers[index];
  if (trigger === undefined) throw new RangeError(`no spec.triggers[${index}]`);
  if (isResourceTrigger(trigger.type)) {
    return {
      kind: 'resource',
      resource: parseResourceTrigger({
        index,
        type: trigger.type,
        metadata: trigger.metadata,
        metricType: trigger.metricType,
        hasAuthenticationRef: trigger.authenticationRef !== undefined,
      }),
    };
  }
  return {
    kind: 'scaler',
    scaler: createScaler({
      namespace: so.metadata.namespace ?? '',
      index,
      type: trigger.type,
      name: trigger.name,
      metadata: trigger.metadata,
      // Utilization is rejected by parseScaledObject for external triggers.
      metricType: trigger.metricType === 'Value' ? 'Value' : 'AverageValue',
      authParams: auth.triggers[index]?.authParams ?? {},
      resolvedEnv: auth.triggers[index]?.resolvedEnv ?? {},
      cluster,
      compositeSource: composite !== undefined,
    }),
  };
}

/** The External metrics of the HPA: one per scaler, or the one composite metric under scalingModifiers. */
export function hpaMetrics(scalers: readonly Scaler[], composite: CompositeSpec | undefined): HpaMetric[] {
  if (composite === undefined) {
    return scalers.map((s) => ({ metricName: s.metricName, target: s.target, metricType: s.metricType }));
  }
  return scalers.length === 0
    ? []
    : [{ metricName: COMPOSITE_METRIC, target: composite.target, metricType: composite.metricType }];
}

/** What the poller and executor of `so` are built from, with hashes that say when either must restart. */
export function runtimeSpec(
  key: string,
  so: ScaledObject,
  built: BuiltTriggers,
  auth: AuthResolution,
  annotations: ObjectAnnotations,
  composite: CompositeSpec | undefined,
): RuntimeSpec {
  const { spec, metadata } = so;
  const ref = objectReference(so);
  const target = spec.scaleTargetRef;
  const createdAt = metadata.creationTimestamp !== undefined ? new Date(metadata.creationTimestamp) : new Date();
  const lastActive = so.status?.lastActiveTime;
  const alwaysActive = built.scalers.length === 0;
  return {
    key,
    poller: {
      ref,
      triggers: built.scalers,
      identities: built.identities,
      pollingIntervalS: spec.pollingInterval,
      fallback: spec.fallback,
      composite: composite === undefined ? undefined : { spec: composite, names: built.names },
    },
    executor: {
      ref,
      target: {
        namespace: metadata.namespace ?? '',
        apiVersion: target.apiVersion,
        kind: target.kind,
        name: target.name,
      },
      targetKind: `${target.apiVersion}.${target.kind}`,
      pollingIntervalS: spec.pollingInterval,
      cooldownPeriodS: spec.cooldownPeriod,
      initialCooldownPeriodS: spec.initialCooldownPeriod,
      minReplicaCount: spec.minReplicaCount,
      maxReplicaCount: spec.maxReplicaCount,
      idleReplicaCount: spec.idleReplicaCount,
      hasFallback: spec.fallback !== undefined,
      createdAt,
      pausedScaleIn: annotations.pausedScaleIn,
      pausedScaleOut: annotations.pausedScaleOut,
      forceActivation: annotations.forceActivation,
      alwaysActive,
    },
    pollerHash: fingerprint(
      metadata.uid,
      spec.triggers,
      auth.fingerprint,
      spec.pollingInterval,
      spec.fallback ?? null,
      spec.advanced?.scalingModifiers ?? null,
    ),
    executorHash: fingerprint(
      metadata.uid,
      target,
      spec.pollingInterval,
      spec.cooldownPeriod,
      spec.initialCooldownPeriod,
      spec.minReplicaCount,
      spec.maxReplicaCount,
      spec.idleReplicaCount ?? null,
      spec.fallback !== undefined,
      createdAt.toISOString(),
      annotations.pausedScaleIn,
      annotations.pausedScaleOut,
      annotations.forceActivation,
      alwaysActive,
    ),
    lastActiveTime: lastActive !== undefined ? new Date(lastActive) : undefined,
  };
}

export function objectReference(so: Pick<ScaledObject, 'metadata'>): ObjectReference {
  return {
    apiVersion: API_VERSION,
    kind: KIND,
    namespace: so.metadata.namespace ?? '',
    name: so.metadata.name,
    uid: so.metadata.uid ?? '',
  };
}

/** An answer about the request itself (refused, invalid, forbidden), not a failure that a retry could heal. */
function isRefusal(err: unknown): boolean {
  return err instanceof ApiException && err.code >= 400 && err.code < 500 && ![404, 408, 409, 429].includes(err.code);
}

/** Reconcile's memory between calls: the uid and generation its running parts were last set up for. */
interface Ensured {
  readonly uid: string;
  readonly generation: number;
}

export function createReconciler(deps: ReconcilerDeps): Reconciler {
  const now = deps.now ?? (() => new Date());
  const leading = deps.leading ?? (() => true);
  const ensured = new Map<string, Ensured>();
  /**
   * The objects (key → uid) whose ScaledObjectReady was emitted and that have not been refused since. The cache can
   * still show the status from before our own write when the next reconcile comes (a poller's news right after the
   * first write): without this, that reconcile announces Ready a second time.
   */
  const announcedReady = new Map<string, string>();

  async function stop(key: string): Promise<void> {
    ensured.delete(key);
    announcedReady.delete(key);
    await deps.runtime.remove(key);
  }

  /**
   * Writes what changed from `current` (the status in the informer's copy this reconcile read) to `next`, only if the
   * object is still at that copy's resourceVersion. A merge patch computed from a copy that is behind would write back
   * what the copy lacks: a status.originalReplicaCount read after the executor had already scaled to 0 replaced the 2
   * an earlier reconcile had written (an e2e flake). On 409 the reconcile is run again once the cache has caught up.
   */
  async function writeStatus(at: VersionedRef, current: ScaledObjectStatus, next: ScaledObjectStatus): Promise<void> {
    if (!leading() || sameStatus(current, next)) return;
    const { ref, resourceVersion } = at;
    try {
      await deps.kube.patchStatus(ref, statusPatch(current, next), resourceVersion);
    } catch (err) {
      if (err instanceof ApiException && err.code === 409) {
        throw new StaleCacheError(`${ref.namespace}/${ref.name}`, resourceVersion, { cause: err });
      }
      // Deleted since the cache saw it: its delete event reconciles it again.
      if (!isNotFound(err)) throw err;
    }
  }

  /** Ready=False for a reason only a change can fix (or that is checked again later); nothing runs, no HPA. */
  async function refuse(
    key: string,
    so: Pick<ScaledObject, 'metadata'>,
    at: VersionedRef,
    previous: ScaledObjectStatus,
    message: string,
    /** The HPA named in previous.hpaName is now someone else's: leave it. */
    keepHpa = false,
  ): Promise<void> {
    await stop(key);
    if (!leading()) return;
    if (previous.hpaName !== undefined && !keepHpa) await deps.kube.deleteHpa(at.ref.namespace, previous.hpaName);
    if (isNewFailure(previous, message)) {
      deps.log('warn', `ScaledObject ${key} cannot be scaled`, { error: message });
      deps.events.emit(objectReference(so), 'Warning', 'ScaledObjectCheckFailed', message);
    }
    await writeStatus(at, previous, checkFailedStatus(previous, message, now(), 'invalid', so.metadata.generation));
  }

  /** The target's scale (it must exist), or a refusal naming it (checked again every TARGET_RECHECK_MS). */
  async function readTarget(so: ScaledObject): Promise<ScaleState | TargetNotFoundError> {
    try {
      return await deps.kube.readScale(scaleTarget(so));
    } catch (err) {
      if (err instanceof TargetNotFoundError) return err;
      throw err;
    }
  }

  /**
   * The ScaledObject is being deleted: stop scaling, put the workload back to its count from before sluice when
   * `restoreToOriginalReplicaCount` asks for it, and let the deletion finish (remove sluice's finalizer).
   */
  async function finalize(key: string, so: ScaledObject, raw: KubernetesObject, ref: ObjectRef): Promise<void> {
    await stop(key);
    const finalizers = raw.metadata?.finalizers ?? [];
    if (!leading() || !finalizers.includes(FINALIZER)) return;
    const original = so.status?.originalReplicaCount;
    if (so.spec.advanced?.restoreToOriginalReplicaCount === true && original !== undefined) {
      try {
        await deps.kube.writeScale(scaleTarget(so), original);
        deps.log(
          'info',
          `restored ${so.spec.scaleTargetRef.kind} ${ref.namespace}/${so.spec.scaleTargetRef.name} to its original ${original} replicas`,
        );
      } catch (err) {
        // The workload is gone too: nothing to restore.
        if (!(err instanceof TargetNotFoundError) && !isNotFound(err)) throw err;
      }
    }
    await deps.kube.setFinalizers(
      ref,
      finalizers.filter((f) => f !== FINALIZER),
      raw.metadata?.resourceVersion,
    );
    deps.events.emit(objectReference(so), 'Normal', 'ScaledObjectDeleted', 'ScaledObject was deleted');
  }

  async function reconcile(key: string): Promise<HandlerResult | undefined> {
    const { namespace, name } = splitKey(key);
    const raw = deps.cache.get(name, namespace);

    // 0. gone
    if (!raw) {
      if (deps.runtime.has(key)) deps.log('info', `ScaledObject ${key} is gone; stopping its scaling`);
      else deps.log('debug', `ScaledObject ${key} is not in the informer cache: nothing to do`);
      await stop(key);
      return undefined;
    }
    const ref: ObjectRef = { group: GROUP, version: VERSION, plural: PLURAL, namespace, name };
    /** The object at the version this reconcile read: status writes are guarded by it. */
    const at: VersionedRef = { ref, resourceVersion: raw.metadata?.resourceVersion };
    const previous = (raw as { status?: ScaledObjectStatus }).status ?? {};
    const meta = {
      metadata: {
        name,
        namespace,
        ...(raw.metadata?.uid === undefined ? {} : { uid: raw.metadata.uid }),
        ...(raw.metadata?.generation === undefined ? {} : { generation: raw.metadata.generation }),
      },
    };

    // 1. valid? (schema, cross-field rules, annotations; the triggers once credentials are known)
    let so: ScaledObject;
    let annotations: ObjectAnnotations;
    let composite: CompositeSpec | undefined;
    try {
      so = parseScaledObject(raw);
      annotations = parseAnnotations(so.metadata.annotations);
      composite = parseComposite(so.spec);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      if (raw.metadata?.deletionTimestamp !== undefined) {
        // Being deleted and invalid: let it go.
        await stop(key);
        const finalizers = raw.metadata.finalizers ?? [];
        if (leading() && finalizers.includes(FINALIZER)) {
          await deps.kube.setFinalizers(
            ref,
            finalizers.filter((f) => f !== FINALIZER),
            raw.metadata.resourceVersion,
          );
        }
        return undefined;
      }
      await refuse(key, meta, at, previous, err.message);
      return undefined;
    }
    const uid = so.metadata.uid ?? '';
    const generation = so.metadata.generation ?? 0;

    // Deletion, and the finalizer that restoreToOriginalReplicaCount needs.
    if (raw.metadata?.deletionTimestamp !== undefined) {
      await finalize(key, so, raw, ref);
      return undefined;
    }
    const finalizers = raw.metadata?.finalizers ?? [];
    const restore = so.spec.advanced?.restoreToOriginalReplicaCount === true;
    if (leading() && restore !== finalizers.includes(FINALIZER)) {
      await deps.kube.setFinalizers(
        ref,
        restore ? [...finalizers, FINALIZER] : finalizers.filter((f) => f !== FINALIZER),
        raw.metadata?.resourceVersion,
      );
      // The update event brings the object back with its new finalizers.
      return undefined;
    }

    // One autoscaler per workload (before pausing: a paused object writes /scale too)
    const hpaName = hpaNameFor(so);
    const target = workloadOf(so.spec.scaleTargetRef);
    const others = deps.targeting(namespace, target);
    const named = deps.hpas.get(hpaName, namespace);
    const ownership = decideOwnership({
      name,
      uid,
      creationTimestamp: so.metadata.creationTimestamp,
      target,
      targetKind: `${so.spec.scaleTargetRef.apiVersion}.${so.spec.scaleTargetRef.kind}`,
      hpaName,
      transfer: annotations.transferHpaOwnership && so.spec.advanced?.horizontalPodAutoscalerConfig?.name !== undefined,
      scaledObjects: others.scaledObjects,
      hpas: named === undefined || others.hpas.includes(named) ? others.hpas : [named, ...others.hpas],
      scaledObjectExists: (owner) => deps.cache.get(owner.name, namespace)?.metadata?.uid === owner.uid,
    });
    if (ownership.kind === 'conflict') {
      // Our own HPA, if one was made before the conflict appeared, goes; the other owner's is never touched.
      // (The real previous status goes to refuse: its event and status write are then made once, not every time.)
      const theirs = ownership.message.includes(`HPA '${previous.hpaName ?? ''}'`);
      await refuse(key, so, at, previous, ownership.message, theirs);
      return undefined;
    }

    // Paused (`paused`, `paused-replicas`): no HPA, nothing running; the target held at paused-replicas.
    if (annotations.paused && !leading()) {
      await stop(key);
      return undefined;
    }
    if (annotations.paused) {
      const scale = await readTarget(so);
      if (scale instanceof TargetNotFoundError) {
        await refuse(key, so, at, previous, targetMessage(scale));
        return { requeueAfterMs: TARGET_RECHECK_MS };
      }
      await stop(key);
      // Only HPAs this object made: the one its status names, or one under its HPA name that it controls.
      const mine = deps.hpas
        .list(namespace)
        .filter((h) => h.metadata?.ownerReferences?.some((o) => o.controller === true && o.uid === uid) === true)
        .map((h) => h.metadata?.name);
      for (const hpa of new Set([previous.hpaName, ...mine])) {
        if (hpa !== undefined) await deps.kube.deleteHpa(namespace, hpa);
      }
      if (annotations.pausedReplicas !== undefined && scale.replicas !== annotations.pausedReplicas) {
        await deps.kube.writeScale(scaleTarget(so), annotations.pausedReplicas);
        deps.log('info', `paused ${key} at ${annotations.pausedReplicas} replicas`, { from: scale.replicas });
      }
      const next = pausedStatus({
        so,
        previous,
        pausedReplicas: annotations.pausedReplicas,
        originalReplicaCount: scale.replicas,
        at: now(),
      });
      if (findCondition(previous.conditions, PAUSED)?.status !== 'True') {
        deps.events.emit(objectReference(so), 'Normal', 'ScaledObjectPaused', pausedNote(annotations));
      }
      await writeStatus(at, previous, next);
      return undefined;
    }

    // 2. credentials
    let auth: AuthResolution;
    try {
      auth = await deps.auth.resolve(so);
    } catch (err) {
      if (err instanceof ValidationError) {
        await refuse(key, so, at, previous, err.message);
        return undefined;
      }
      if (!(err instanceof AuthResolutionError)) throw err;
      // May heal by itself: keep what runs for this same generation, stop what ran on an older spec; retry.
      const running = ensured.get(key);
      if (running !== undefined && (running.uid !== uid || running.generation !== generation)) await stop(key);
      announcedReady.delete(key);
      if (isNewFailure(previous, err.message)) {
        deps.events.emit(objectReference(so), 'Warning', 'ScaledObjectCheckFailed', err.message);
      }
      await writeStatus(at, previous, checkFailedStatus(previous, err.message, now(), 'transient'));
      throw err;
    }

    // 1 (continued). every trigger's parameters and the HPA they imply: pure, no I/O
    let built: BuiltTriggers;
    let hpa: DesiredHpa;
    try {
      built = buildTriggers(so, deps.cluster, auth, composite);
      hpa = desiredHpa({
        scaledObject: so,
        metrics: hpaMetrics(built.scalers, composite),
        resources: built.resources,
        annotations,
      });
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      await refuse(key, so, at, previous, err.message);
      return undefined;
    }

    // A follower runs the pollers (its metrics API stays fresh) and leaves every write to the leader.
    if (!leading()) {
      await deps.runtime.ensure(runtimeSpec(key, so, built, auth, annotations, composite));
      ensured.set(key, { uid, generation });
      return undefined;
    }

    // 3. scale target
    const scale = await readTarget(so);
    if (scale instanceof TargetNotFoundError) {
      await refuse(key, so, at, previous, targetMessage(scale));
      return { requeueAfterMs: TARGET_RECHECK_MS };
    }

    // 4. HPA
    try {
      if (previous.hpaName !== undefined && previous.hpaName !== hpaName) {
        await deps.kube.deleteHpa(namespace, previous.hpaName);
      }
      const applied = withDesiredDigest(hpa);
      if (ownership.kind === 'adopt') {
        await deps.kube.adoptHpa(applied);
        deps.log('info', `took over HPA ${namespace}/${ownership.hpa} for ScaledObject ${key}`);
      }
      // At rest the informer's copy already is what sluice wants: no write.
      if (ownership.kind === 'adopt' || !hpaUpToDate(applied, deps.hpas.get(hpaName, namespace))) {
        await deps.kube.applyHpa(applied);
      }
    } catch (err) {
      if (!isRefusal(err)) throw err;
      const message = `failed to ensure HPA is correctly created for ScaledObject: HPA ${namespace}/${hpaName}: ${apiErrorMessage(err)}`;
      await refuse(key, so, at, previous, message);
      return { requeueAfterMs: HPA_RECHECK_MS };
    }

    // 5. run
    await deps.runtime.ensure(runtimeSpec(key, so, built, auth, annotations, composite));
    ensured.set(key, { uid, generation });

    // 6. status
    const snapshot = deps.runtime.snapshot(key);
    const pausedScale = anyPause(annotations);
    const next = runningStatus({
      so,
      previous,
      runtime:
        snapshot === undefined
          ? undefined
          : {
              poller: snapshot.poller,
              executor: snapshot.executor,
              lastActiveTime: snapshot.state.lastActiveTime,
              firstSeenReplicas: snapshot.state.firstSeenReplicas,
            },
      metricNames: built.scalers.map((s) => s.metricName),
      thresholds: built.scalers,
      resourceMetricNames: built.resources.map((r) => r.name),
      composite: composite !== undefined,
      pausedScale,
      originalReplicaCount: scale.replicas,
      at: now(),
    });
    const reference = objectReference(so);
    if (!wasReady(next)) announcedReady.delete(key);
    else if (!wasReady(previous) && announcedReady.get(key) !== uid) {
      announcedReady.set(key, uid);
      deps.events.emit(reference, 'Normal', 'ScaledObjectReady', 'ScaledObject is ready for scaling');
    }
    const wasPaused = findCondition(previous.conditions, PAUSED)?.status === 'True';
    if (pausedScale && !wasPaused) deps.events.emit(reference, 'Normal', 'ScaledObjectPaused', pausedNote(annotations));
    if (!pausedScale && wasPaused) {
      deps.events.emit(reference, 'Normal', 'ScaledObjectUnpaused', 'pause annotation removed for ScaledObject');
    }
    await writeStatus(at, previous, next);
    return undefined;
  }

  /** A status write that found the cache behind is not a failure: run again shortly, against the newer copy. */
  async function reconcileOnce(key: string): Promise<HandlerResult | undefined> {
    try {
      return await reconcile(key);
    } catch (err) {
      if (!(err instanceof StaleCacheError)) throw err;
      deps.log('debug', err.message);
      return { requeueAfterMs: STALE_CACHE_RETRY_MS };
    }
  }

  return { reconcile: reconcileOnce };
}

/** How soon a reconcile whose status write found the informer's copy behind runs again (a watch event's lag). */
export const STALE_CACHE_RETRY_MS = 100;

/** The ScaledObject a reconcile read, at the resourceVersion it read (status writes are guarded by it). */
interface VersionedRef {
  readonly ref: ObjectRef;
  readonly resourceVersion: string | undefined;
}

/** The API server has a newer ScaledObject than the informer's copy a status was computed from (409 Conflict). */
export class StaleCacheError extends SluiceError {
  override name = 'StaleCacheError';

  constructor(key: string, resourceVersion: string | undefined, options?: ErrorOptions) {
    super(
      'STALE_CACHE',
      `status of ScaledObject ${key} not written: the object changed since resourceVersion ${resourceVersion ?? '(none)'} that reconcile read; reconciling again`,
      options,
    );
  }
}

/** sluice's finalizer: present while `restoreToOriginalReplicaCount` has to act on deletion. */
export const FINALIZER = 'sluice.dev/finalizer';

function scaleTarget(so: ScaledObject): ScaleTarget {
  return {
    namespace: so.metadata.namespace ?? '',
    apiVersion: so.spec.scaleTargetRef.apiVersion,
    kind: so.spec.scaleTargetRef.kind,
    name: so.spec.scaleTargetRef.name,
  };
}

function targetMessage(err: TargetNotFoundError): string {
  return `spec.scaleTargetRef: Target resource doesn't exist or doesn't expose /scale: ${err.message}`;
}

function pausedNote(a: ObjectAnnotations): string {
  if (a.pausedReplicas !== undefined) return `ScaledObject is paused at ${a.pausedReplicas} replicas (paused-replicas)`;
  if (a.paused) return 'ScaledObject is paused at its current replica count (paused)';
  const sides = [a.pausedScaleIn ? 'scale-in' : '', a.pausedScaleOut ? 'scale-out' : ''].filter(Boolean).join(' and ');
  return `ScaledObject ${sides} is paused`;
}
