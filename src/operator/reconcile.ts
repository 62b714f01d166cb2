/**
 * reconcile(key): level-triggered and idempotent. It reads the ScaledObject from the informer cache and makes the
 * world match it:
 *   deleted   → stop its scaling loop and drop its metrics (the HPA goes with the owner reference);
 *   invalid   → stop the loop, delete any HPA it had, Ready=False naming the field (not retried until it changes);
 *   valid     → server-side apply the HPA, (re)start the scaling loop when the spec changed, write the status.
 * It is the only writer of ScaledObject status, and writes it only when it changed. Connecting to a backend is
 * never part of validation: a valid object whose broker is down still gets its HPA (keda-compat §14).
 */
import type { KubernetesObject, ObjectCache } from '@kubernetes/client-node';
import { ValidationError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { MetricStore } from '../metric-store.ts';
import { GuardedScaler, breakerOptionsFor } from '../scalers/breaker.ts';
import { createScaler } from '../scalers/registry.ts';
import type { ClusterPort, Scaler } from '../scalers/scaler.ts';
import {
  READY,
  activeUnknown,
  equalConditions,
  noFallbackFound,
  notPaused,
  scaledObjectCheckFailed,
  scaledObjectReady,
  setCondition,
  kubeTime,
  type ConditionFields,
} from './conditions.ts';
import { AuthResolutionError, type AuthResolution, type AuthResolver } from './auth-resolver.ts';
import { desiredHpa } from './hpa.ts';
import type { KubePort, ObjectRef } from './kube.ts';
import {
  GROUP,
  PLURAL,
  VERSION,
  hpaNameFor,
  parseScaledObject,
  type ScaledObject,
  type ScaledObjectStatus,
} from './scaled-object.ts';
import { ScalingLoop, type LoopSnapshot } from './scaling-loop.ts';
import type { HandlerResult } from './workqueue.ts';

export interface ReconcilerDeps {
  readonly kube: KubePort;
  /** Resolves TriggerAuthentications and the scale target's environment (read afresh on every reconcile). */
  readonly auth: AuthResolver;
  /** Handed to scalers that discover endpoints. */
  readonly cluster: ClusterPort;
  readonly store: MetricStore;
  readonly cache: ObjectCache<KubernetesObject>;
  readonly log: Logger;
  /** Queue a key again (the scaling loops use it to report news). */
  readonly enqueue: (key: string) => void;
  readonly now?: () => Date;
}

interface Running {
  readonly uid: string;
  readonly generation: number;
  /** Of the resolved credentials: a changed Secret restarts the loop with new scalers. */
  readonly fingerprint: string;
  readonly loop: ScalingLoop;
}

export interface Reconciler {
  reconcile(key: string): Promise<HandlerResult | undefined>;
  /** The scaling loop of a key, if one runs (for the CLI and tests). */
  loop(key: string): ScalingLoop | undefined;
  stopAll(): Promise<void>;
}

function splitKey(key: string): { namespace: string; name: string } {
  const slash = key.indexOf('/');
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

function buildScalers(so: ScaledObject, owner: string, cluster: ClusterPort, auth: AuthResolution): Scaler[] {
  const built: Scaler[] = [];
  try {
    for (const [index, trigger] of so.spec.triggers.entries()) {
      built.push(
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
          owner,
        }),
      );
    }
    return built;
  } catch (err) {
    for (const scaler of built) void scaler.close();
    throw err;
  }
}

export function createReconciler(deps: ReconcilerDeps): Reconciler {
  const now = deps.now ?? (() => new Date());
  const running = new Map<string, Running>();

  async function stopLoop(key: string): Promise<Running | undefined> {
    const current = running.get(key);
    if (!current) return undefined;
    running.delete(key);
    await current.loop.stop();
    return current;
  }

  async function writeStatus(raw: KubernetesObject, ref: ObjectRef, status: ScaledObjectStatus): Promise<void> {
    const current = (raw as { status?: ScaledObjectStatus }).status ?? {};
    if (sameStatus(current, status)) return;
    // Merge patch: fields set to null are removed, so a field that no longer applies is cleared explicitly.
    const patch: Record<string, unknown> = { ...status };
    for (const field of Object.keys(current)) if (!(field in status)) patch[field] = null;
    await deps.kube.patchStatus(ref, patch);
  }

  async function reconcile(key: string): Promise<HandlerResult | undefined> {
    const { namespace, name } = splitKey(key);
    const raw = deps.cache.get(name, namespace);
    if (!raw) {
      await stopLoop(key);
      deps.store.deleteOwner(key);
      return undefined;
    }
    const ref: ObjectRef = { group: GROUP, version: VERSION, plural: PLURAL, namespace, name };
    const previous = (raw as { status?: ScaledObjectStatus }).status ?? {};

    let so: ScaledObject;
    let auth: AuthResolution;
    let scalers: Scaler[];
    try {
      so = parseScaledObject(raw);
      auth = await deps.auth.resolve(so);
      scalers = buildScalers(so, key, deps.cluster, auth);
    } catch (err) {
      if (err instanceof AuthResolutionError) {
        // May heal by itself (a Secret created a moment later, an API hiccup): say so, keep what runs, retry.
        await writeStatus(raw, ref, {
          ...previous,
          conditions: withConditions(previous, [scaledObjectCheckFailed(err)], now()),
        });
        throw err;
      }
      if (!(err instanceof ValidationError)) throw err;
      await stopLoop(key);
      deps.store.deleteOwner(key);
      // No HPA for an invalid object: remove one a previous valid version had.
      if (previous.hpaName !== undefined) await deps.kube.deleteHpa(namespace, previous.hpaName);
      // Once per distinct problem: the status write below triggers another reconcile of the same object.
      const before = previous.conditions?.find((c) => c.type === READY);
      if (before?.status !== 'False' || before.message?.includes(err.message) !== true) {
        deps.log('warn', `ScaledObject ${key} is invalid`, { error: err.message });
      }
      await writeStatus(raw, ref, invalidStatus(previous, err, now()));
      return undefined;
    }

    const hpa = desiredHpa({
      scaledObject: so,
      metrics: scalers.map((s) => ({ metricName: s.metricName, target: s.target, metricType: s.metricType })),
    });
    const hpaName = hpaNameFor(so);
    if (previous.hpaName !== undefined && previous.hpaName !== hpaName) {
      await deps.kube.deleteHpa(namespace, previous.hpaName);
    }
    await deps.kube.applyHpa(hpa);

    const uid = so.metadata.uid ?? '';
    const generation = so.metadata.generation ?? 0;
    let current = running.get(key);
    if (current?.uid === uid && current.generation === generation && current.fingerprint === auth.fingerprint) {
      for (const scaler of scalers) void scaler.close();
    } else {
      const old = await stopLoop(key);
      const lastActiveTime =
        old?.loop.snapshot().lastActiveTime ??
        (previous.lastActiveTime !== undefined ? new Date(previous.lastActiveTime) : undefined);
      const breaker = breakerOptionsFor(so.spec.pollingInterval);
      const loop = new ScalingLoop(
        {
          namespace,
          name,
          generation,
          target: {
            namespace,
            apiVersion: so.spec.scaleTargetRef.apiVersion,
            kind: so.spec.scaleTargetRef.kind,
            name: so.spec.scaleTargetRef.name,
          },
          pollingIntervalS: so.spec.pollingInterval,
          cooldownPeriodS: so.spec.cooldownPeriod,
          initialCooldownPeriodS: so.spec.initialCooldownPeriod,
          minReplicaCount: so.spec.minReplicaCount,
          maxReplicaCount: so.spec.maxReplicaCount,
          idleReplicaCount: so.spec.idleReplicaCount,
          createdAt: so.metadata.creationTimestamp !== undefined ? new Date(so.metadata.creationTimestamp) : now(),
        },
        scalers.map((s) => new GuardedScaler(s, breaker)),
        {
          kube: deps.kube,
          store: deps.store,
          now,
          log: (level, message, fields) => {
            deps.log(level, message, fields);
          },
          onChange: () => {
            deps.enqueue(key);
          },
        },
        lastActiveTime,
      );
      current = { uid, generation, fingerprint: auth.fingerprint, loop };
      running.set(key, current);
      loop.start();
      deps.log('info', `scaling loop started for ${key}`, {
        generation,
        triggers: scalers.map((s) => s.metricName),
        pollingInterval: so.spec.pollingInterval,
      });
    }

    const metricNames = scalers.map((s) => s.metricName);
    await writeStatus(
      raw,
      ref,
      validStatus({ so, previous, snapshot: current.loop.snapshot(), metricNames, at: now() }),
    );
    return undefined;
  }

  return {
    reconcile,
    loop: (key) => running.get(key)?.loop,
    async stopAll() {
      await Promise.all([...running.keys()].map((key) => stopLoop(key)));
    },
  };
}

/**
 * KEDA's TriggerError / PartialTriggerError message, followed by what failed (`<metric>: <error>; …`), so that
 * `kubectl describe` says why. Scaler errors never contain credentials.
 */
function withTriggerErrors(ready: ConditionFields, snapshot: LoopSnapshot): ConditionFields {
  if (ready.reason !== 'TriggerError' && ready.reason !== 'PartialTriggerError') return ready;
  const failures = snapshot.triggers.flatMap((t) => (t.error !== undefined ? [`${t.metricName}: ${t.error}`] : []));
  return failures.length > 0 ? { ...ready, message: `${ready.message ?? ''}: ${failures.join('; ')}` } : ready;
}

function withConditions(previous: ScaledObjectStatus, updates: readonly ConditionFields[], at: Date) {
  let conditions = previous.conditions ?? [];
  for (const update of updates) conditions = setCondition(conditions, update, at);
  return conditions;
}

/** Status of an object that cannot work as written. */
export function invalidStatus(previous: ScaledObjectStatus, err: ValidationError, at: Date): ScaledObjectStatus {
  return {
    ...(previous.originalReplicaCount !== undefined ? { originalReplicaCount: previous.originalReplicaCount } : {}),
    ...(previous.lastActiveTime !== undefined ? { lastActiveTime: previous.lastActiveTime } : {}),
    conditions: withConditions(
      previous,
      [scaledObjectCheckFailed(err), activeUnknown(), noFallbackFound(), notPaused()],
      at,
    ),
  };
}

/** Status of a valid object, folding in what its scaling loop saw on its last tick. */
export function validStatus({
  so,
  previous,
  snapshot,
  metricNames,
  at,
}: {
  so: ScaledObject;
  previous: ScaledObjectStatus;
  snapshot: LoopSnapshot;
  metricNames: readonly string[];
  at: Date;
}): ScaledObjectStatus {
  const target = so.spec.scaleTargetRef;
  const slash = target.apiVersion.indexOf('/');
  const ready: ConditionFields = snapshot.scaleError
    ? {
        type: READY,
        status: 'False',
        reason: 'ErrorGettingCurrentReplicas',
        message: `cannot read or write the replicas of ${target.kind} ${target.name}: ${snapshot.scaleError}`,
      }
    : withTriggerErrors(snapshot.decision?.readyCondition ?? scaledObjectReady(), snapshot);
  const active = snapshot.decision?.condition ?? activeUnknown();
  const authNames = [
    ...new Set(so.spec.triggers.flatMap((t) => (t.authenticationRef ? [t.authenticationRef.name] : []))),
  ];
  const originalReplicaCount = previous.originalReplicaCount ?? snapshot.firstSeenReplicas;
  const lastActiveTime = snapshot.lastActiveTime ? kubeTime(snapshot.lastActiveTime) : previous.lastActiveTime;
  return {
    scaleTargetKind: `${target.apiVersion}.${target.kind}`,
    ...(snapshot.resource !== undefined
      ? {
          scaleTargetGVKR: {
            group: slash === -1 ? '' : target.apiVersion.slice(0, slash),
            version: slash === -1 ? target.apiVersion : target.apiVersion.slice(slash + 1),
            kind: target.kind,
            resource: snapshot.resource,
          },
        }
      : previous.scaleTargetGVKR !== undefined
        ? { scaleTargetGVKR: previous.scaleTargetGVKR }
        : {}),
    ...(originalReplicaCount !== undefined ? { originalReplicaCount } : {}),
    ...(lastActiveTime !== undefined ? { lastActiveTime } : {}),
    hpaName: hpaNameFor(so),
    externalMetricNames: [...metricNames],
    triggersTypes: [...new Set(so.spec.triggers.map((t) => t.type))].join(','),
    ...(authNames.length > 0 ? { authenticationsTypes: authNames.join(',') } : {}),
    ...(snapshot.triggers.length > 0
      ? { triggersActivity: Object.fromEntries(snapshot.triggers.map((t) => [t.metricName, { isActive: t.active }])) }
      : {}),
    observedGeneration: so.metadata.generation ?? 0,
    conditions: withConditions(previous, [ready, active, noFallbackFound(), notPaused()], at),
  };
}

function sameStatus(a: ScaledObjectStatus, b: ScaledObjectStatus): boolean {
  const { conditions: ca, ...restA } = a;
  const { conditions: cb, ...restB } = b;
  return equalConditions(ca, cb) && JSON.stringify(sortKeys(restA)) === JSON.stringify(sortKeys(restB));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .sort(([x], [y]) => x.localeCompare(y))
        .map(([k, v]) => [k, sortKeys(v)]),
    );
  }
  return value;
}
