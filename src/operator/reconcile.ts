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
import { ApiException, type KubernetesObject } from '@kubernetes/client-node';
import { ValidationError } from '../errors.ts';
import { apiErrorMessage } from '../kube-client.ts';
import { fingerprint } from '../fingerprint.ts';
import type { Logger } from '../log.ts';
import { createScaler } from '../scalers/registry.ts';
import type { ClusterPort, Scaler } from '../scalers/scaler.ts';
import { AuthResolutionError, type AuthResolution, type AuthResolver } from './auth-resolver.ts';
import type { EventRecorder, ObjectReference } from './events.ts';
import { desiredHpa, type DesiredHpa } from './hpa.ts';
import { TargetNotFoundError, isNotFound, type KubePort, type ObjectRef } from './kube.ts';
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
import { checkFailedStatus, isNewFailure, runningStatus, sameStatus, statusPatch, wasReady } from './status.ts';
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
  readonly cache: { get(name: string, namespace: string): KubernetesObject | undefined };
  readonly log: Logger;
  readonly now?: () => Date;
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

/** Builds (validates) every trigger's scaler: pure, no I/O, nothing to close. */
export function buildScalers(so: ScaledObject, cluster: ClusterPort, auth: AuthResolution): Scaler[] {
  return so.spec.triggers.map((trigger, index) =>
    createScaler({
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
    }),
  );
}

/** What the poller and executor of `so` are built from, with hashes that say when either must restart. */
export function runtimeSpec(
  key: string,
  so: ScaledObject,
  scalers: readonly Scaler[],
  auth: AuthResolution,
): RuntimeSpec {
  const { spec, metadata } = so;
  const ref = objectReference(so);
  const target = spec.scaleTargetRef;
  const createdAt = metadata.creationTimestamp !== undefined ? new Date(metadata.creationTimestamp) : new Date();
  const lastActive = so.status?.lastActiveTime;
  return {
    key,
    poller: { ref, triggers: scalers, pollingIntervalS: spec.pollingInterval, fallback: spec.fallback },
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
    },
    pollerHash: fingerprint(metadata.uid, spec.triggers, auth.fingerprint, spec.pollingInterval, spec.fallback ?? null),
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
  const ensured = new Map<string, Ensured>();

  async function stop(key: string): Promise<void> {
    ensured.delete(key);
    await deps.runtime.remove(key);
  }

  async function writeStatus(ref: ObjectRef, current: ScaledObjectStatus, next: ScaledObjectStatus): Promise<void> {
    if (sameStatus(current, next)) return;
    try {
      await deps.kube.patchStatus(ref, statusPatch(current, next));
    } catch (err) {
      // Deleted since the cache saw it: its delete event reconciles it again.
      if (!isNotFound(err)) throw err;
    }
  }

  /** Ready=False for a reason only a change can fix (or that is checked again later); nothing runs, no HPA. */
  async function refuse(
    key: string,
    so: Pick<ScaledObject, 'metadata'> & { spec?: ScaledObject['spec'] },
    ref: ObjectRef,
    previous: ScaledObjectStatus,
    message: string,
    eventReason: string,
  ): Promise<void> {
    await stop(key);
    if (previous.hpaName !== undefined) await deps.kube.deleteHpa(ref.namespace, previous.hpaName);
    if (isNewFailure(previous, message)) {
      deps.log('warn', `ScaledObject ${key} cannot be scaled`, { reason: eventReason, error: message });
      deps.events.emit(objectReference(so), 'Warning', eventReason, message);
    }
    await writeStatus(ref, previous, checkFailedStatus(previous, message, now(), 'invalid', so.metadata.generation));
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
    const previous = (raw as { status?: ScaledObjectStatus }).status ?? {};
    const meta = {
      metadata: {
        name,
        namespace,
        ...(raw.metadata?.uid === undefined ? {} : { uid: raw.metadata.uid }),
        ...(raw.metadata?.generation === undefined ? {} : { generation: raw.metadata.generation }),
      },
    };

    // 1. valid? (schema and cross-field rules; the rest once credentials are known)
    let so: ScaledObject;
    try {
      so = parseScaledObject(raw);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      await refuse(key, meta, ref, previous, err.message, 'ScaledObjectCheckFailed');
      return undefined;
    }
    const uid = so.metadata.uid ?? '';
    const generation = so.metadata.generation ?? 0;

    // 2. credentials
    let auth: AuthResolution;
    try {
      auth = await deps.auth.resolve(so);
    } catch (err) {
      if (err instanceof ValidationError) {
        await refuse(key, so, ref, previous, err.message, 'ScaledObjectCheckFailed');
        return undefined;
      }
      if (!(err instanceof AuthResolutionError)) throw err;
      // May heal by itself: keep what runs for this same generation, stop what ran on an older spec; retry.
      const running = ensured.get(key);
      if (running !== undefined && (running.uid !== uid || running.generation !== generation)) await stop(key);
      if (isNewFailure(previous, err.message)) {
        deps.events.emit(objectReference(so), 'Warning', 'ScaledObjectCheckFailed', err.message);
      }
      await writeStatus(ref, previous, checkFailedStatus(previous, err.message, now(), 'transient'));
      throw err;
    }

    // 1 (continued). every trigger's parameters and the HPA they imply: pure, no I/O
    let scalers: Scaler[];
    let hpa: DesiredHpa;
    try {
      scalers = buildScalers(so, deps.cluster, auth);
      hpa = desiredHpa({
        scaledObject: so,
        metrics: scalers.map((s) => ({ metricName: s.metricName, target: s.target, metricType: s.metricType })),
      });
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      await refuse(key, so, ref, previous, err.message, 'ScaledObjectCheckFailed');
      return undefined;
    }

    // 3. scale target
    try {
      await deps.kube.readScale({
        namespace,
        apiVersion: so.spec.scaleTargetRef.apiVersion,
        kind: so.spec.scaleTargetRef.kind,
        name: so.spec.scaleTargetRef.name,
      });
    } catch (err) {
      if (!(err instanceof TargetNotFoundError)) throw err;
      await refuse(
        key,
        so,
        ref,
        previous,
        `spec.scaleTargetRef: Target resource doesn't exist or doesn't expose /scale: ${err.message}`,
        'ScaledObjectCheckFailed',
      );
      return { requeueAfterMs: TARGET_RECHECK_MS };
    }

    // 4. HPA
    const hpaName = hpaNameFor(so);
    try {
      if (previous.hpaName !== undefined && previous.hpaName !== hpaName) {
        await deps.kube.deleteHpa(namespace, previous.hpaName);
      }
      await deps.kube.applyHpa(hpa);
    } catch (err) {
      if (!isRefusal(err)) throw err;
      const message = `failed to ensure HPA is correctly created for ScaledObject: HPA ${namespace}/${hpaName}: ${apiErrorMessage(err)}`;
      await refuse(key, so, ref, previous, message, 'ScaledObjectCheckFailed');
      return { requeueAfterMs: HPA_RECHECK_MS };
    }

    // 5. run
    await deps.runtime.ensure(runtimeSpec(key, so, scalers, auth));
    ensured.set(key, { uid, generation });

    // 6. status
    const snapshot = deps.runtime.snapshot(key);
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
      metricNames: scalers.map((s) => s.metricName),
      at: now(),
    });
    if (!wasReady(previous) && wasReady(next)) {
      deps.events.emit(objectReference(so), 'Normal', 'ScaledObjectReady', 'ScaledObject is ready for scaling');
    }
    await writeStatus(ref, previous, next);
    return undefined;
  }

  return { reconcile };
}
