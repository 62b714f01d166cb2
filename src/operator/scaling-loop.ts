/**
 * One scaling loop per ScaledObject: every pollingInterval it samples all triggers (in parallel, each behind its
 * circuit breaker), writes the values into the metric store for the external-metrics API, and applies the 0↔N
 * decision of `decideScale` through the target's scale subresource. Between 1 (or min) and max the HPA decides.
 *
 * The loop never writes the ScaledObject itself: when something status-worthy changes it calls `onChange`, and the
 * reconciler (the only status writer) folds `snapshot()` into the status.
 */
import { describeError } from '../errors.ts';
import type { MetricStore } from '../metric-store.ts';
import type { GuardedScaler } from '../scalers/breaker.ts';
import type { KubePort, ScaleTarget } from './kube.ts';
import { decideScale, type ScaleDecision } from './scale-decision.ts';
import { SCALED_OBJECT_LABEL } from './scaled-object.ts';

export interface LoopSettings {
  readonly namespace: string;
  readonly name: string;
  readonly generation: number;
  readonly target: ScaleTarget;
  readonly pollingIntervalS: number;
  readonly cooldownPeriodS: number;
  readonly initialCooldownPeriodS: number;
  readonly minReplicaCount: number;
  readonly maxReplicaCount: number;
  readonly idleReplicaCount: number | undefined;
  readonly createdAt: Date;
}

export interface TriggerState {
  readonly metricName: string;
  readonly value: number | undefined;
  readonly active: boolean;
  readonly error: string | undefined;
  readonly breaker: string;
}

export interface LoopSnapshot {
  readonly ticks: number;
  readonly triggers: readonly TriggerState[];
  readonly active: boolean;
  readonly anyError: boolean;
  readonly lastActiveTime: Date | undefined;
  /** Replicas read from the scale subresource on the last tick. */
  readonly currentReplicas: number | undefined;
  /** The target's resource (plural) name, once its scale was read. */
  readonly resource: string | undefined;
  /** The first replica count this process saw for the target. */
  readonly firstSeenReplicas: number | undefined;
  readonly decision: ScaleDecision | undefined;
  /** Why the last tick could not read or write the target's scale, if it could not. */
  readonly scaleError: string | undefined;
}

export interface LoopDeps {
  readonly kube: KubePort;
  readonly store: MetricStore;
  readonly now?: () => Date;
  readonly log: (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;
  readonly onChange: () => void;
}

export class ScalingLoop {
  readonly settings: LoopSettings;
  readonly #scalers: readonly GuardedScaler[];
  readonly #deps: LoopDeps;
  readonly #now: () => Date;
  readonly #owner: string;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;
  #snapshot: LoopSnapshot;
  readonly #lastLogged = new Map<string, { error: string; at: Date }>();

  constructor(settings: LoopSettings, scalers: readonly GuardedScaler[], deps: LoopDeps, lastActiveTime?: Date) {
    this.settings = settings;
    this.#scalers = scalers;
    this.#deps = deps;
    this.#now = deps.now ?? (() => new Date());
    this.#owner = `${settings.namespace}/${settings.name}`;
    this.#snapshot = {
      ticks: 0,
      triggers: [],
      active: false,
      anyError: false,
      lastActiveTime,
      currentReplicas: undefined,
      resource: undefined,
      firstSeenReplicas: undefined,
      decision: undefined,
      scaleError: undefined,
    };
  }

  snapshot(): LoopSnapshot {
    return this.#snapshot;
  }

  /** Starts polling: the first tick after a random fraction of the interval (no thundering herd), capped at 1 s. */
  start(): void {
    const jitterMs = Math.random() * Math.min(1000, this.settings.pollingIntervalS * 1000);
    this.#schedule(jitterMs);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#running;
    await Promise.all(this.#scalers.map((s) => s.close()));
    this.#deps.store.deleteOwner(this.#owner);
  }

  #schedule(delayMs: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.tick().finally(() => {
        this.#running = undefined;
        this.#schedule(this.settings.pollingIntervalS * 1000);
      });
    }, delayMs);
  }

  /** One poll: sample, store, decide, act. Public for tests; never throws. */
  async tick(): Promise<void> {
    const before = this.#snapshot;
    const triggers = await this.#sampleAll();
    const active = triggers.some((t) => t.active);
    const anyError = triggers.some((t) => t.error !== undefined);

    let currentReplicas: number | undefined;
    let readReplicas: number | undefined;
    let scaleError: string | undefined;
    let decision: ScaleDecision | undefined;
    let lastActiveTime = before.lastActiveTime;
    let resource = before.resource;
    try {
      const scale = await this.#deps.kube.readScale(this.settings.target);
      currentReplicas = scale.replicas;
      readReplicas = scale.replicas;
      resource = scale.resource;
      const now = this.#now();
      decision = decideScale({
        currentReplicas,
        minReplicaCount: this.settings.minReplicaCount,
        maxReplicaCount: this.settings.maxReplicaCount,
        idleReplicaCount: this.settings.idleReplicaCount,
        active,
        anyError,
        allError: triggers.length > 0 && triggers.every((t) => t.error !== undefined),
        lastActiveTime,
        createdAt: this.settings.createdAt,
        cooldownPeriodS: this.settings.cooldownPeriodS,
        initialCooldownPeriodS: this.settings.initialCooldownPeriodS,
        now,
      });
      if (decision.refreshLastActiveTime) lastActiveTime = now;
      if (decision.action === 'scale') {
        await this.#deps.kube.writeScale(this.settings.target, decision.to);
        this.#deps.log('info', `scaled ${this.#describeTarget()} from ${currentReplicas} to ${decision.to}`, {
          scaledObject: this.#owner,
          reason: decision.reason,
        });
        currentReplicas = decision.to;
      }
    } catch (err) {
      scaleError = describeError(err);
      this.#deps.log('warn', `cannot scale ${this.#describeTarget()}`, {
        scaledObject: this.#owner,
        error: scaleError,
      });
    }

    this.#snapshot = {
      ticks: before.ticks + 1,
      triggers,
      active,
      anyError,
      lastActiveTime,
      currentReplicas,
      resource,
      firstSeenReplicas: before.firstSeenReplicas ?? readReplicas,
      decision,
      scaleError,
    };
    if (statusWorthyChange(before, this.#snapshot, this.settings.cooldownPeriodS)) this.#deps.onChange();
  }

  /**
   * Logs a trigger's failure when it starts or changes, a reminder every 5 minutes while it lasts, and its recovery:
   * one line per change, not one per poll.
   */
  #logTransition(metricName: string, error: string | undefined, at: Date): void {
    const last = this.#lastLogged.get(metricName);
    if (error === undefined) {
      if (last !== undefined) {
        this.#lastLogged.delete(metricName);
        this.#deps.log('info', `trigger ${metricName} recovered`, { scaledObject: this.#owner });
      }
      return;
    }
    if (last?.error === error && at.getTime() - last.at.getTime() < 300_000) return;
    this.#lastLogged.set(metricName, { error, at });
    this.#deps.log('warn', `trigger ${metricName} failed; its value is unknown (not zero)`, {
      scaledObject: this.#owner,
      error,
    });
  }

  #describeTarget(): string {
    const t = this.settings.target;
    return `${t.kind} ${t.namespace}/${t.name}`;
  }

  async #sampleAll(): Promise<TriggerState[]> {
    const results = await Promise.allSettled(this.#scalers.map((s) => s.sample()));
    const timestamp = this.#now();
    return results.map((result, i) => {
      const guarded = this.#scalers[i];
      if (!guarded) throw new Error('unreachable: one result per scaler');
      const metricName = guarded.scaler.metricName;
      const value = result.status === 'fulfilled' ? result.value.value : undefined;
      const error = result.status === 'rejected' ? describeError(result.reason) : undefined;
      this.#deps.store.set({
        namespace: this.settings.namespace,
        metricName,
        labels: { [SCALED_OBJECT_LABEL]: this.settings.name },
        value,
        error,
        timestamp,
        owner: this.#owner,
      });
      this.#logTransition(metricName, error, timestamp);
      return {
        metricName,
        value,
        active: result.status === 'fulfilled' && result.value.active,
        error,
        breaker: guarded.state,
      };
    });
  }
}

/**
 * Whether the status should be rewritten: activity, errors, decisions and replica reads that change conditions, and
 * lastActiveTime only when it moved by more than a tenth of the cooldown (at least 10 s): it is kept exactly in
 * memory, and the status copy only has to survive a restart. This keeps an active object from patching its
 * status on every poll (KEDA's status-PATCH-per-tick throttles at ~100 objects, PR keda#7615).
 */
function statusWorthyChange(a: LoopSnapshot, b: LoopSnapshot, cooldownPeriodS: number): boolean {
  if (a.ticks === 0) return true;
  if (a.active !== b.active || a.anyError !== b.anyError || a.scaleError !== b.scaleError) return true;
  if (a.decision?.condition.reason !== b.decision?.condition.reason) return true;
  if (a.currentReplicas !== b.currentReplicas) return true;
  if (a.triggers.length !== b.triggers.length) return true;
  for (const [i, t] of b.triggers.entries()) {
    const u = a.triggers[i];
    if (u?.active !== t.active || u.error !== t.error) return true;
  }
  const before = a.lastActiveTime?.getTime();
  const after = b.lastActiveTime?.getTime();
  if (before === undefined || after === undefined) return before !== after;
  return after - before > Math.max(10_000, cooldownPeriodS * 100);
}
