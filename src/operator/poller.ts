/**
 * The poller of one ScaledObject: it subscribes each trigger to its shared reader (readers.ts), turns every reading
 * into the trigger's metric series in the MetricStore (what the external-metrics API serves), and counts each
 * trigger's consecutive failures for the fallback (fallback.ts). It runs on every replica of sluice and never writes to
 * the cluster; the executor (executor.ts) acts on what it summarises.
 *
 * A failing trigger's series holds no value (the HPA gets an error and holds), unless its fallback has engaged: then the
 * series holds the fallback value, which lands the HPA on the fallback replica count. The first good read ends the
 * fallback.
 *
 * `onChange` is called when something the executor or the status depends on changed (activity, errors, fallback),
 * never for a reading that only confirms the previous one.
 */
import { describeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { MetricStore } from '../metric-store.ts';
import type { Scaler, SourceHub, Subscription, TriggerResult } from '../scalers/scaler.ts';
import type { EventRecorder, ObjectReference } from './events.ts';
import { FailureLog } from './failure-log.ts';
import { failureCount, fallbackEngagesAt, fallbackReplicas, fallbackValue } from './fallback.ts';
import { COMPOSITE_METRIC, type CompositeSpec } from './composite.ts';
import type { Fallback } from './scaled-object.ts';
import { SCALED_OBJECT_LABEL } from './scaled-object.ts';
import { setSafeTimeout, type SafeTimer } from './timers.ts';

/** Which trigger of spec.triggers a scaler is (KEDA's `triggerIndex` and `scaler` labels on /metrics). */
export interface TriggerIdentity {
  /** Its position in spec.triggers. */
  readonly index: number;
  /** Its type (`rabbitmq`, `prometheus`, …). */
  readonly type: string;
}

export interface PollerSettings {
  readonly ref: ObjectReference;
  readonly triggers: readonly Scaler[];
  /**
   * Each scaler's identity, in the same order (reconcile gives it). Without it the index comes from the metric name
   * (`s<index>-…`) and the type is empty.
   */
  readonly identities?: readonly TriggerIdentity[] | undefined;
  readonly pollingIntervalS: number;
  readonly fallback: Fallback | undefined;
  /**
   * scalingModifiers: the triggers combine into one series, `composite-metric`, the formula over their values by
   * trigger name (`names`, one per trigger, in order).
   */
  readonly composite?: { readonly spec: CompositeSpec; readonly names: readonly (string | undefined)[] } | undefined;
}

/** The target's replica counts, for fallback behaviors that depend on them. */
export interface ReplicaCounts {
  readonly replicas: number;
  /** Ready pods (Value metrics' fallback); undefined when the target does not report them. */
  readonly readyReplicas: number | undefined;
}

export interface PollerDeps {
  readonly hub: SourceHub;
  readonly store: MetricStore;
  readonly events: EventRecorder;
  readonly log: Logger;
  /** Where trigger failures and recoveries are logged: one for every poller, so a backend failing for all is one line. */
  readonly failures?: FailureLog;
  /** Reads the target's replicas (fallback behaviors currentReplicas*, and Value metrics). */
  readonly replicas: () => Promise<ReplicaCounts>;
  readonly onChange: () => void;
  readonly now?: () => number;
}

export interface TriggerState extends TriggerIdentity {
  readonly metricName: string;
  /** The key of the source it reads (the hub's reader). */
  readonly sourceKey: string;
  /** Failed reads since this poller started (/metrics counts them; a new poller starts from 0). */
  readonly errors: number;
  /** The last value read (undefined while failing or before the first read). */
  readonly value: number | undefined;
  readonly active: boolean;
  readonly error: string | undefined;
  /** When the last read finished (ms since the epoch). */
  readonly readAt: number | undefined;
  /** When the current run of failures began. */
  readonly failingSince: number | undefined;
  /** Consecutive failures (fallback.ts counts them by pollingInterval). */
  readonly failures: number;
  /** The fallback replica count this trigger serves, while its fallback is engaged. */
  readonly fallbackReplicas: number | undefined;
}

/** What the executor and the status need of the poller. */
export interface PollerSummary {
  /** Every trigger has been read at least once (before that, nothing is decided). */
  readonly ready: boolean;
  /** Some trigger is active, or falling back to a count above 0 (KEDA: a fallback counts as active). */
  readonly active: boolean;
  /** Some trigger fails without a fallback serving for it. */
  readonly anyError: boolean;
  /** Every trigger fails without a fallback. */
  readonly allError: boolean;
  /** Some trigger serves its fallback. */
  readonly fallbackActive: boolean;
  /** The largest fallback replica count served (activation from zero goes straight to it). */
  readonly fallbackReplicas: number | undefined;
  /** The metric names of the active triggers (event messages, status.triggersActivity). */
  readonly activeMetrics: readonly string[];
  /** Why the composite metric (scalingModifiers) has no value, when it has none. */
  readonly compositeError?: string | undefined;
  readonly triggers: readonly TriggerState[];
}

interface MutableTrigger {
  readonly scaler: Scaler;
  readonly identity: TriggerIdentity;
  errors: number;
  value: number | undefined;
  active: boolean;
  error: string | undefined;
  readAt: number | undefined;
  failingSince: number | undefined;
  fallbackReplicas: number | undefined;
  timer: SafeTimer | undefined;
  subscription: Subscription | undefined;
  loggedError: { error: string; at: number } | undefined;
}

export class Poller {
  readonly settings: PollerSettings;
  readonly #deps: PollerDeps;
  readonly #now: () => number;
  readonly #owner: string;
  readonly #triggers: MutableTrigger[];
  readonly #failures: FailureLog;
  #refresh: SafeTimer | undefined;
  #stopped = false;
  #lastSignature = '';
  /** Ready pods, as last read for a fallback (Value metrics). */
  #readyReplicas: number | undefined;

  constructor(settings: PollerSettings, deps: PollerDeps) {
    this.settings = settings;
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
    this.#owner = `${settings.ref.namespace}/${settings.ref.name}`;
    this.#failures = deps.failures ?? new FailureLog(deps.log, { now: this.#now });
    this.#triggers = settings.triggers.map((scaler, i) => ({
      scaler,
      identity: settings.identities?.[i] ?? { index: indexOf(scaler.metricName, i), type: '' },
      errors: 0,
      value: undefined,
      active: false,
      error: undefined,
      readAt: undefined,
      failingSince: undefined,
      fallbackReplicas: undefined,
      timer: undefined,
      subscription: undefined,
      loggedError: undefined,
    }));
  }

  get metricNames(): string[] {
    return this.#triggers.map((t) => t.scaler.metricName);
  }

  start(): void {
    for (const trigger of this.#triggers) {
      trigger.subscription = trigger.scaler.watch(
        this.#deps.hub,
        (result, changed) => {
          this.#onResult(trigger, result, changed);
        },
        this.settings.ref.namespace,
      );
    }
  }

  /** Unsubscribes (the last subscriber of a source closes its reader). Leaves the store to the caller. */
  stop(): void {
    this.#stopped = true;
    this.#refresh?.clear();
    for (const trigger of this.#triggers) {
      trigger.timer?.clear();
      trigger.subscription?.close();
    }
  }

  summary(): PollerSummary {
    const triggers = this.#triggers.map((t) => this.#state(t));
    if (this.settings.composite !== undefined) return this.#compositeSummary(triggers);
    return summarizeTriggers(triggers);
  }

  #state(t: MutableTrigger): TriggerState {
    const now = this.#now();
    return {
      index: t.identity.index,
      type: t.identity.type,
      metricName: t.scaler.metricName,
      sourceKey: t.scaler.sourceKey,
      errors: t.errors,
      value: t.value,
      active: t.active,
      error: t.error,
      readAt: t.readAt,
      failingSince: t.failingSince,
      failures:
        t.failingSince === undefined ? 0 : failureCount(t.failingSince, now, this.settings.pollingIntervalS * 1000),
      fallbackReplicas: t.fallbackReplicas,
    };
  }

  #onResult(trigger: MutableTrigger, result: TriggerResult, changed: boolean): void {
    if (this.#stopped) return;
    trigger.readAt = result.at;
    if (!result.ok) trigger.errors++;
    const metricName = trigger.scaler.metricName;
    if (!changed && this.#synced(trigger, result)) {
      const series = this.settings.composite === undefined ? metricName : COMPOSITE_METRIC;
      this.#deps.store.touch(this.#owner, this.settings.ref.namespace, series, new Date(result.at));
      return;
    }
    if (result.ok) {
      const endedFallback = trigger.fallbackReplicas !== undefined;
      trigger.value = result.sample.value;
      trigger.active = result.sample.active;
      trigger.error = undefined;
      trigger.failingSince = undefined;
      trigger.fallbackReplicas = undefined;
      trigger.timer?.clear();
      trigger.timer = undefined;
      this.#logRecovery(trigger);
      if (endedFallback) this.#fallbackEnded(trigger);
    } else {
      trigger.value = undefined;
      trigger.active = false;
      trigger.error = result.error;
      if (trigger.failingSince === undefined) {
        trigger.failingSince = result.at;
        this.#scheduleFallback(trigger);
        this.#deps.events.emit(this.settings.ref, 'Warning', 'KEDAScalerFailed', `${metricName}: ${result.error}`);
      }
      this.#logFailure(trigger, result.error, result.at);
    }
    this.#writeSeries(trigger, result.at);
    this.#notifyIfChanged();
  }

  /** Whether the trigger's state already reflects `result` (an unchanged reading after a poller restart may not). */
  #synced(trigger: MutableTrigger, result: TriggerResult): boolean {
    return result.ok
      ? trigger.error === undefined && trigger.value === result.sample.value
      : trigger.error === result.error;
  }

  #writeSeries(trigger: MutableTrigger, at: number): void {
    const { namespace, name } = this.settings.ref;
    if (this.settings.composite !== undefined) {
      const composite = this.#composite();
      this.#deps.store.set({
        namespace,
        metricName: COMPOSITE_METRIC,
        labels: { [SCALED_OBJECT_LABEL]: name },
        value: composite.value,
        error: composite.value === undefined ? composite.error : undefined,
        timestamp: new Date(at),
        owner: this.#owner,
      });
      return;
    }
    const synthetic =
      trigger.fallbackReplicas === undefined
        ? undefined
        : this.#syntheticValue(trigger, trigger.fallbackReplicas, this.#readyReplicas);
    this.#deps.store.set({
      namespace,
      metricName: trigger.scaler.metricName,
      labels: { [SCALED_OBJECT_LABEL]: name },
      value: trigger.error === undefined ? trigger.value : synthetic,
      error: trigger.error === undefined || synthetic !== undefined ? undefined : trigger.error,
      timestamp: new Date(at),
      owner: this.#owner,
    });
  }

  /**
   * The composite metric (scalingModifiers): the formula over the triggers' values, KEDA's way. A failing trigger
   * without an engaged fallback makes it unknown; an engaged fallback serves `target × replicas` of the composite
   * target, except behavior `scalingModifiers`, where the failing trigger is nil in the formula (for `??`) and
   * fallback.replicas applies only when the whole formula is nil.
   */
  #composite(): {
    value: number | undefined;
    error: string | undefined;
    active: boolean;
    /** The fallback replica count the value serves, when it is a fallback value. */
    fallback?: number;
  } {
    const composite = this.settings.composite;
    if (composite === undefined) return { value: undefined, error: 'no composite metric', active: false };
    const { spec, names } = composite;
    const fallback = this.settings.fallback;
    const values: Record<string, number | null> = {};
    const failing: string[] = [];
    let served: number | undefined;
    for (const [i, t] of this.#triggers.entries()) {
      const name = names[i];
      if (t.readAt === undefined)
        return { value: undefined, error: 'not every trigger has been read yet', active: false };
      if (t.error === undefined) {
        if (name !== undefined && t.value !== undefined) values[name] = t.value;
      } else if (t.fallbackReplicas !== undefined && fallback?.behavior === 'scalingModifiers') {
        if (name !== undefined) values[name] = null;
      } else if (t.fallbackReplicas !== undefined) {
        served = Math.max(served ?? 0, t.fallbackReplicas);
      } else {
        failing.push(`${t.scaler.metricName}: ${t.error}`);
      }
    }
    if (failing.length > 0) return { value: undefined, error: failing.join('; '), active: false };
    const synthetic = (replicas: number) => {
      const value = fallbackValue(spec.metricType, spec.target, replicas, this.#readyReplicas);
      return {
        value,
        error: value === undefined ? 'the fallback value needs ready pods' : undefined,
        active: replicas > 0,
        fallback: replicas,
      };
    };
    if (served !== undefined) return synthetic(served);
    let result: ReturnType<CompositeSpec['formula']['evaluate']>;
    try {
      result = spec.formula.evaluate(values);
    } catch (err) {
      return { value: undefined, error: `the scalingModifiers formula failed: ${describeError(err)}`, active: false };
    }
    if (result.kind === 'number')
      return { value: result.value, error: undefined, active: result.value > spec.activationTarget };
    if (fallback?.behavior === 'scalingModifiers' && this.#triggers.some((t) => t.fallbackReplicas !== undefined)) {
      return synthetic(fallback.replicas);
    }
    return { value: undefined, error: 'the scalingModifiers formula gave nil', active: false };
  }

  #compositeSummary(triggers: TriggerState[]): PollerSummary {
    const composite = this.#composite();
    const falling = triggers.filter((t) => t.fallbackReplicas !== undefined);
    const failed = composite.value === undefined && triggers.every((t) => t.readAt !== undefined);
    return {
      ready: triggers.every((t) => t.readAt !== undefined),
      active: composite.active,
      anyError: failed,
      allError: failed,
      fallbackActive: falling.length > 0,
      // Only when the composite value is a fallback value: a formula that still gives a number (through `??`) scales
      // as that number says.
      fallbackReplicas: composite.active ? composite.fallback : undefined,
      activeMetrics: composite.active ? [COMPOSITE_METRIC] : [],
      compositeError: failed ? composite.error : undefined,
      triggers,
    };
  }

  #syntheticValue(trigger: MutableTrigger, replicas: number, ready: number | undefined): number | undefined {
    return fallbackValue(trigger.scaler.metricType, trigger.scaler.target, replicas, ready);
  }

  /** A precise timer for the moment this trigger's failures pass the threshold. */
  #scheduleFallback(trigger: MutableTrigger): void {
    const fallback = this.settings.fallback;
    if (fallback === undefined || trigger.failingSince === undefined) return;
    const at = fallbackEngagesAt(
      trigger.failingSince,
      fallback.failureThreshold,
      this.settings.pollingIntervalS * 1000,
    );
    trigger.timer?.clear();
    trigger.timer = setSafeTimeout(
      () => {
        trigger.timer = undefined;
        void this.#engage(trigger);
      },
      Math.max(0, at - this.#now()),
    );
  }

  async #engage(trigger: MutableTrigger): Promise<void> {
    const fallback = this.settings.fallback;
    if (this.#stopped || fallback === undefined || trigger.error === undefined) return;
    let counts: ReplicaCounts | undefined;
    const needsCounts =
      (fallback.behavior !== 'static' && fallback.behavior !== 'scalingModifiers') ||
      (this.settings.composite?.spec.metricType ?? trigger.scaler.metricType) === 'Value';
    if (needsCounts) {
      try {
        counts = await this.#deps.replicas();
      } catch (err) {
        this.#deps.log('warn', `fallback for ${trigger.scaler.metricName} of ${this.#owner} needs the replica count`, {
          error: describeError(err),
        });
      }
    }
    if (!this.#stillFailing(trigger)) return;
    const replicas = fallbackReplicas(fallback, counts?.replicas);
    this.#readyReplicas = counts?.readyReplicas;
    const composite = this.settings.composite?.spec;
    const value =
      replicas === undefined
        ? undefined
        : composite === undefined
          ? this.#syntheticValue(trigger, replicas, counts?.readyReplicas)
          : fallbackValue(composite.metricType, composite.target, replicas, counts?.readyReplicas);
    if (replicas === undefined || value === undefined) {
      // Try again a poll later (e.g. no ready pods yet for a Value metric, or the scale could not be read).
      this.#deps.log('warn', `fallback for ${trigger.scaler.metricName} of ${this.#owner} cannot be served yet`, {
        behavior: fallback.behavior,
        metricType: trigger.scaler.metricType,
        replicas: counts?.replicas,
        readyReplicas: counts?.readyReplicas,
      });
      trigger.timer = setSafeTimeout(() => {
        trigger.timer = undefined;
        void this.#engage(trigger);
      }, this.settings.pollingIntervalS * 1000);
      return;
    }
    const wasFalling = this.#triggers.some((t) => t.fallbackReplicas !== undefined);
    trigger.fallbackReplicas = replicas;
    this.#writeSeries(trigger, this.#now());
    this.#deps.log('warn', `fallback engaged for ${trigger.scaler.metricName} of ${this.#owner}`, {
      replicas,
      behavior: fallback.behavior,
      error: trigger.error,
    });
    if (!wasFalling) {
      this.#deps.events.emit(
        this.settings.ref,
        'Warning',
        'ScaledObjectFallbackActivated',
        `Fallback activated for ${trigger.scaler.metricName} after ${fallback.failureThreshold + 1} failed polls: serving ${replicas} replicas (${fallback.behavior}); last error: ${trigger.error}`,
      );
    }
    // Behaviors that follow the current count, and Value metrics, are recomputed every poll while falling back.
    if (needsCounts) this.#scheduleRefresh();
    this.#notifyIfChanged();
  }

  /** Read through a method: the trigger may have recovered (or the poller stopped) while awaiting. */
  #stillFailing(trigger: MutableTrigger): boolean {
    return !this.#stopped && trigger.error !== undefined;
  }

  #scheduleRefresh(): void {
    if (this.#refresh !== undefined) return;
    this.#refresh = setSafeTimeout(() => {
      this.#refresh = undefined;
      for (const trigger of this.#triggers) if (trigger.fallbackReplicas !== undefined) void this.#engage(trigger);
    }, this.settings.pollingIntervalS * 1000);
  }

  #fallbackEnded(trigger: MutableTrigger): void {
    if (this.#triggers.some((t) => t.fallbackReplicas !== undefined)) return;
    this.#refresh?.clear();
    this.#refresh = undefined;
    this.#deps.log('info', `fallback ended for ${this.#owner}: ${trigger.scaler.metricName} answers again`);
    this.#deps.events.emit(
      this.settings.ref,
      'Normal',
      'ScaledObjectFallbackDeactivated',
      `Fallback deactivated: ${trigger.scaler.metricName} answers again`,
    );
  }

  /** Calls onChange when the executor's inputs or the status-relevant state changed. */
  #notifyIfChanged(): void {
    const s = this.summary();
    const signature = JSON.stringify([
      s.ready,
      s.active,
      s.anyError,
      s.fallbackReplicas,
      s.triggers.map((t) => [t.active, t.error, t.fallbackReplicas]),
    ]);
    if (signature === this.#lastSignature) return;
    this.#lastSignature = signature;
    this.#deps.onChange();
  }

  /**
   * One line when a trigger starts failing or its error changes, a reminder every 5 minutes, and its recovery; lines
   * with the same error from many triggers collapse into one (failure-log.ts).
   */
  #logFailure(trigger: MutableTrigger, error: string, at: number): void {
    const last = trigger.loggedError;
    if (last?.error === error && at - last.at < 300_000) return;
    trigger.loggedError = { error, at };
    this.#failures.failed(`${trigger.scaler.metricName} of ${this.#owner}`, error, {
      failingSince: trigger.failingSince === undefined ? undefined : new Date(trigger.failingSince).toISOString(),
    });
  }

  #logRecovery(trigger: MutableTrigger): void {
    if (trigger.loggedError === undefined) return;
    trigger.loggedError = undefined;
    this.#failures.recovered(`${trigger.scaler.metricName} of ${this.#owner}`);
  }
}

/**
 * What the executor decides on, from the triggers' states (without scalingModifiers): active when a trigger is active
 * or falls back to more than 0 replicas; an error when a trigger fails without a fallback serving for it. Pure (also
 * what `sluice simulate` summarises a trace step with).
 */
export function summarizeTriggers(triggers: readonly TriggerState[]): PollerSummary {
  const failing = triggers.filter((t) => t.error !== undefined && t.fallbackReplicas === undefined);
  const falling = triggers.filter((t) => t.fallbackReplicas !== undefined);
  // A fallback of 0 replicas is the user asking for "no work while the backend is down": not active.
  const active = triggers.filter((t) => t.active || (t.fallbackReplicas ?? 0) > 0);
  return {
    ready: triggers.every((t) => t.readAt !== undefined),
    active: active.length > 0,
    anyError: failing.length > 0,
    allError: triggers.length > 0 && failing.length === triggers.length,
    fallbackActive: falling.length > 0,
    fallbackReplicas: falling.length > 0 ? Math.max(...falling.map((t) => t.fallbackReplicas ?? 0)) : undefined,
    activeMetrics: active.map((t) => t.metricName),
    triggers,
  };
}

/** The trigger index in a metric name `s<index>-…` (KEDA's form), or `fallback`. */
function indexOf(metricName: string, fallback: number): number {
  const match = /^s(\d+)-/.exec(metricName);
  return match?.[1] === undefined ? fallback : Number(match[1]);
}
