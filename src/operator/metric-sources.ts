/**
 * The running MetricSources: the MetricDemand the external-metrics API asks (src/metric-demand.ts), and the readers
 * that fill the MetricStore for the selectors HPAs name.
 *
 * - **Demand.** A request that names a MetricSource's metric and a selector that fills its placeholders makes the
 *   selector live: its trigger is built from the filled metadata (validated by the scaler like any metadata) and
 *   subscribed to its shared reader in the ReaderHub, so a queue a ScaledObject reads too is read once. That first
 *   request waits for the first reading, bounded by the scaler's timeout; later ones are answered from the store.
 * - **Idle.** A selector no request named for `selectorIdleSeconds` is dropped (its subscription closed, its series
 *   removed), checked every `pollingInterval`.
 * - **Bounds.** At most `maxSelectors` live selectors per MetricSource; one more is refused (429) until one goes idle.
 * - **Errors.** A failed read leaves the series without a value and with the error: the API answers an error, never 0.
 *
 * It runs on every replica (each serves the API from its own store); only the leader writes the status the
 * controller builds from `snapshot`.
 */
import { ValidationError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { DemandAnswer, MetricDemand } from '../metric-demand.ts';
import type { MetricStore } from '../metric-store.ts';
import type { Selector } from '../labels.ts';
import { createScaler, type TriggerType } from '../scalers/registry.ts';
import type { ClusterPort, Scaler, SourceHub, Subscription, TriggerResult } from '../scalers/scaler.ts';
import { fillMetadata, namesScaledObject, selectorKey, selectorValues, type Placeholders } from './metric-source.ts';

/** What one MetricSource runs on (the controller, or `sluice serve`, builds it from a valid object). */
export interface MetricSourceSettings {
  /** `namespace/name`. */
  readonly key: string;
  readonly namespace: string;
  readonly metricName: string;
  readonly type: TriggerType;
  /** The trigger's metadata, placeholders unfilled. */
  readonly metadata: Readonly<Record<string, string>>;
  readonly placeholders: Placeholders;
  /** From the trigger's authenticationRef (secret values: never logged). */
  readonly authParams: Readonly<Record<string, string>>;
  readonly pollingIntervalS: number;
  readonly maxSelectors: number;
  readonly selectorIdleS: number;
  /** Of everything above (and the object's uid): a different hash restarts every selector. */
  readonly hash: string;
}

export interface SelectorSnapshot {
  /** The selector's values, canonical (`queue=worker_tasks`). */
  readonly labelSelector: string;
  /** When a request first named it. */
  readonly since: Date;
  /** When a request last named it. */
  readonly lastRequestAt: Date;
  readonly value: number | undefined;
  readonly error: string | undefined;
}

export interface MetricSourceSnapshot {
  readonly selectors: readonly SelectorSnapshot[];
  /** The error of the selector that failed last and still fails (undefined when none fails). */
  readonly lastError: string | undefined;
}

export interface MetricSourceRegistryDeps {
  readonly hub: SourceHub;
  readonly store: MetricStore;
  readonly cluster: ClusterPort;
  readonly log: Logger;
  /** The status of `key` would show something new (a selector came or went, an error began, changed or ended). */
  readonly onChange: (key: string) => void;
  readonly now?: () => number;
}

interface Live {
  readonly key: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly owner: string;
  readonly scaler: Scaler;
  readonly since: number;
  readonly firstRead: Promise<void>;
  lastRequestAt: number;
  subscription: Subscription | undefined;
  value: number | undefined;
  error: string | undefined;
  failedAt: number | undefined;
}

interface Running {
  readonly settings: MetricSourceSettings;
  readonly lives: Map<string, Live>;
  readonly sweep: NodeJS.Timeout;
}

/** The store owner of one live selector of one MetricSource (never a ScaledObject's `namespace/name`). */
export function selectorOwner(key: string, selector: string): string {
  return `MetricSource:${key}:${selector}`;
}

/** A scaler's message names ScaledObject fields (`spec.triggers[0].metadata.queueName`): a MetricSource's are these. */
export function asMetricSourceField(message: string): string {
  return message.replaceAll('spec.triggers[0].', 'spec.trigger.');
}

export class MetricSourceRegistry implements MetricDemand {
  readonly #deps: MetricSourceRegistryDeps;
  readonly #now: () => number;
  readonly #running = new Map<string, Running>();
  /** `namespace` NUL lower-cased metric name → key. */
  readonly #byName = new Map<string, string>();

  constructor(deps: MetricSourceRegistryDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
  }

  /** Builds the trigger of `settings` for `values` (throws ValidationError, fields named as a MetricSource's). */
  buildScaler(settings: MetricSourceSettings, values: Readonly<Record<string, string>>): Scaler {
    try {
      return createScaler({
        namespace: settings.namespace,
        index: 0,
        type: settings.type,
        name: undefined,
        metadata: fillMetadata(settings.metadata, values),
        metricType: 'AverageValue',
        authParams: settings.authParams,
        resolvedEnv: {},
        cluster: this.#deps.cluster,
        // The HPA holds the target: the trigger's own may be omitted.
        compositeSource: true,
      });
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      throw new ValidationError(
        asMetricSourceField(err.field),
        asMetricSourceField(err.message.slice(err.field.length + 2)),
        {
          cause: err,
        },
      );
    }
  }

  /** Runs `settings` (a changed hash drops every selector: the next request of each reads afresh). */
  ensure(settings: MetricSourceSettings): 'started' | 'restarted' | 'unchanged' {
    const current = this.#running.get(settings.key);
    if (current?.settings.hash === settings.hash) return 'unchanged';
    if (current !== undefined) this.remove(settings.key);
    const sweep = setInterval(() => {
      this.sweepIdle(settings.key);
    }, settings.pollingIntervalS * 1000);
    sweep.unref();
    this.#running.set(settings.key, { settings, lives: new Map(), sweep });
    this.#byName.set(nameKey(settings.namespace, settings.metricName), settings.key);
    this.#deps.log('info', `MetricSource ${settings.key} serves metric ${settings.metricName}`, {
      placeholders: [...settings.placeholders.keys()],
    });
    return current === undefined ? 'started' : 'restarted';
  }

  /** Stops every selector of `key` and drops their series. */
  remove(key: string): void {
    const running = this.#running.get(key);
    if (running === undefined) return;
    this.#running.delete(key);
    clearInterval(running.sweep);
    const name = nameKey(running.settings.namespace, running.settings.metricName);
    if (this.#byName.get(name) === key) this.#byName.delete(name);
    for (const live of running.lives.values()) this.#drop(live);
    running.lives.clear();
    this.#deps.log('info', `MetricSource ${key} no longer serves metric ${running.settings.metricName}`);
  }

  has(key: string): boolean {
    return this.#running.has(key);
  }

  stopAll(): void {
    for (const key of [...this.#running.keys()]) this.remove(key);
  }

  snapshot(key: string): MetricSourceSnapshot | undefined {
    const running = this.#running.get(key);
    if (running === undefined) return undefined;
    const lives = [...running.lives.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const failing = lives.filter((l) => l.error !== undefined).sort((a, b) => (b.failedAt ?? 0) - (a.failedAt ?? 0));
    return {
      selectors: lives.map((l) => ({
        labelSelector: l.key,
        since: new Date(l.since),
        lastRequestAt: new Date(l.lastRequestAt),
        value: l.value,
        error: l.error,
      })),
      lastError: failing[0]?.error,
    };
  }

  owns(namespace: string, metricName: string): boolean {
    return this.#byName.has(nameKey(namespace, metricName));
  }

  request(namespace: string, metricName: string, selector: Selector): DemandAnswer {
    if (namesScaledObject(selector)) return { kind: 'unowned' };
    const key = this.#byName.get(nameKey(namespace, metricName));
    const running = key === undefined ? undefined : this.#running.get(key);
    if (key === undefined || running === undefined) return { kind: 'unowned' };
    const { settings } = running;
    const filled = selectorValues(selector, settings.placeholders, key, settings.metricName);
    if (!filled.ok) return { kind: 'refused', code: 404, message: filled.message };
    const id = selectorKey(filled.values);
    const now = this.#now();
    const existing = running.lives.get(id);
    if (existing !== undefined) {
      existing.lastRequestAt = now;
      return { kind: 'served', firstRead: existing.firstRead };
    }
    if (running.lives.size >= settings.maxSelectors) {
      return {
        kind: 'refused',
        code: 429,
        message: `MetricSource ${key} already serves ${settings.maxSelectors} label selectors (spec.maxSelectors), the most it may; a selector no request names for ${settings.selectorIdleS} s (spec.selectorIdleSeconds) is dropped, or raise spec.maxSelectors`,
      };
    }
    let scaler: Scaler;
    try {
      scaler = this.buildScaler(settings, filled.values);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      return {
        kind: 'refused',
        code: 404,
        message: `the label selector's values do not make a valid trigger for MetricSource ${key}: ${err.message}`,
      };
    }
    return { kind: 'served', firstRead: this.#start(running, id, filled.values, scaler, now) };
  }

  #start(
    running: Running,
    id: string,
    labels: Readonly<Record<string, string>>,
    scaler: Scaler,
    now: number,
  ): Promise<void> {
    const { settings } = running;
    let settle: () => void = () => undefined;
    const first = new Promise<void>((resolve) => {
      settle = resolve;
    });
    const timer = setTimeout(settle, scaler.timeoutMs);
    timer.unref();
    const live: Live = {
      key: id,
      labels,
      owner: selectorOwner(settings.key, id),
      scaler,
      since: now,
      firstRead: first.finally(() => {
        clearTimeout(timer);
      }),
      lastRequestAt: now,
      subscription: undefined,
      value: undefined,
      error: undefined,
      failedAt: undefined,
    };
    running.lives.set(id, live);
    this.#write(settings, live, 'the first read has not finished yet', now);
    live.subscription = scaler.watch(
      this.#deps.hub,
      (result, changed) => {
        this.#onResult(running, live, result, changed);
        settle();
      },
      settings.namespace,
    );
    this.#deps.log('info', `MetricSource ${settings.key} serves selector ${id}`, {
      metricName: settings.metricName,
      live: running.lives.size,
    });
    this.#deps.onChange(settings.key);
    return live.firstRead;
  }

  #onResult(running: Running, live: Live, result: TriggerResult, changed: boolean): void {
    if (this.#running.get(running.settings.key) !== running || running.lives.get(live.key) !== live) return;
    const { settings } = running;
    const error = result.ok ? undefined : result.error;
    const value = result.ok ? result.sample.value : undefined;
    if (!changed && live.error === error && live.value === value) {
      this.#deps.store.touch(live.owner, settings.namespace, settings.metricName, new Date(result.at));
      return;
    }
    const errorChanged = live.error !== error;
    live.value = value;
    live.error = error;
    if (error !== undefined && errorChanged) {
      live.failedAt = result.at;
      this.#deps.log(
        'warn',
        `MetricSource ${settings.key}: reading selector ${live.key} failed; its value is unknown (not zero)`,
        {
          error,
        },
      );
    } else if (error === undefined && errorChanged) {
      live.failedAt = undefined;
      this.#deps.log('info', `MetricSource ${settings.key}: selector ${live.key} reads again`);
    }
    this.#write(settings, live, error, result.at);
    if (errorChanged) this.#deps.onChange(settings.key);
  }

  #write(settings: MetricSourceSettings, live: Live, error: string | undefined, at: number): void {
    this.#deps.store.set({
      namespace: settings.namespace,
      metricName: settings.metricName,
      labels: live.labels,
      value: error === undefined ? live.value : undefined,
      error,
      timestamp: new Date(at),
      owner: live.owner,
    });
  }

  /** Drops the selectors of `key` no request named for selectorIdleSeconds (every pollingInterval; tests call it). */
  sweepIdle(key: string): void {
    const running = this.#running.get(key);
    if (running === undefined) return;
    const idleMs = running.settings.selectorIdleS * 1000;
    const now = this.#now();
    let dropped = false;
    for (const live of [...running.lives.values()]) {
      if (now - live.lastRequestAt < idleMs) continue;
      running.lives.delete(live.key);
      this.#drop(live);
      dropped = true;
      this.#deps.log(
        'info',
        `MetricSource ${key} dropped selector ${live.key}: no request named it for ${running.settings.selectorIdleS} s`,
      );
    }
    if (dropped) this.#deps.onChange(key);
  }

  #drop(live: Live): void {
    live.subscription?.close();
    this.#deps.store.deleteOwner(live.owner);
  }
}

function nameKey(namespace: string, metricName: string): string {
  return `${namespace}\u0000${metricName.toLowerCase()}`;
}
