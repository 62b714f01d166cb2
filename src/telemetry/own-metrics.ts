/**
 * sluice's own Prometheus metrics (prom-client, on a registry of its own, never the global one): KEDA's operator
 * metrics under the `sluice_` prefix with KEDA's labels (https://keda.sh/docs/latest/integrations/prometheus/; the
 * list: README.md#its-own-metrics), plus what only sluice has (circuit breakers, fallback, the ScaledObject
 * conditions, leadership, the metrics API's latency).
 *
 * Almost everything is **collected on scrape**: the gauges and counters read what the ScaledObject cache, the scaling
 * registry and the ReaderHub already know (through `OwnMetricsSources`, which main.ts fills), so the read and
 * reconcile paths do no work for /metrics. Only what happens once (a reconcile, an API request, a failed reconcile) is
 * recorded when it happens, in O(1). A ScaledObject that is no longer in the cache has no series at the next scrape.
 *
 * No label carries a credential: label values are names from the ScaledObject (namespace, name, metric name, trigger
 * type), route patterns, status codes, and backends described by `safeBackend` (no userinfo, query or fragment).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const PREFIX = 'sluice_';

/** One trigger of a running ScaledObject, as the poller last saw it. */
export interface TriggerView {
  /** Its index in spec.triggers (KEDA's `triggerIndex`). */
  readonly index: number;
  /** Its type (`rabbitmq`, …). */
  readonly type: string;
  /** The external metric name (`s0-rabbitmq-orders`). */
  readonly metricName: string;
  /** The last value read; undefined while it fails or before the first read (no sample then: never a 0). */
  readonly value: number | undefined;
  readonly active: boolean;
  /** Failed reads so far (a counter; restarts at 0 when the trigger's settings change). */
  readonly errors: number;
  /** How long the last read of its source took. */
  readonly latencySeconds: number | undefined;
  /** How late its source's last scheduled read started. */
  readonly loopLagSeconds: number | undefined;
}

export interface ConditionView {
  readonly type: string;
  readonly status: string;
}

/** A ScaledObject in the cache, with what runs for it on this replica (nothing when it is invalid or paused). */
export interface ScaledObjectView {
  readonly namespace: string;
  readonly name: string;
  /** Its status conditions as the API server has them (written by the leader). */
  readonly conditions: readonly ConditionView[];
  /** Undefined when nothing runs for it here. */
  readonly running:
    | {
        readonly triggers: readonly TriggerView[];
        readonly fallbackActive: boolean;
      }
    | undefined;
}

export type BreakerStateName = 'closed' | 'halfOpen' | 'open';

/** What the collectors read at scrape time (main.ts binds it to the cache, the registry and the hub). */
export interface OwnMetricsSources {
  scaledObjects(): Iterable<ScaledObjectView>;
  /** Every backend the hub reads, `describe` as the hub has it (sanitized here again). */
  breakers(): Iterable<{ readonly describe: string; readonly state: BreakerStateName }>;
  /** This replica leads (or runs without leader election). */
  leading(): boolean;
  /** ScaledObject keys waiting in the work queue. */
  queueDepth(): number;
  /** Requests made to the Kubernetes API since the start, by `verb resource` (kube-client.ts). */
  kubeRequests(): ReadonlyMap<string, number>;
}

export interface OwnMetricsOptions {
  readonly sources: OwnMetricsSources;
  /** The prom-client default metrics (process, heap, event-loop lag, GC) with the prefix; default true. */
  readonly defaultMetrics?: boolean;
  /** Monotonic clock in ms (tests). */
  readonly now?: () => number;
  /** sluice's version, for `sluice_build_info` (KEDA's keda_build_info). */
  readonly version?: string;
}

/** KEDA's `scaler` label is its Go type (`rabbitMQScaler`); the same names for the triggers both have. */
const KEDA_SCALER_NAMES: Readonly<Record<string, string>> = {
  'aws-sqs-queue': 'awsSqsQueueScaler',
  'metrics-api': 'metricsAPIScaler',
  prometheus: 'prometheusScaler',
  rabbitmq: 'rabbitMQScaler',
};

/** The `scaler` label of a trigger type: KEDA's name where KEDA has the scaler, else `<camelCase>Scaler`. */
export function scalerLabel(type: string): string {
  const known = KEDA_SCALER_NAMES[type];
  if (known !== undefined) return known;
  if (type === '') return 'unknown';
  return `${type.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase())}Scaler`;
}

const BREAKER_VALUE: Readonly<Record<BreakerStateName, number>> = { closed: 0, halfOpen: 1, open: 2 };

/**
 * A backend's description safe for a label: every URL in it loses its userinfo, query and fragment, and anything else
 * shaped like `user:password@` or `key=value` is dropped. (The hub's descriptions already carry no credentials; this
 * is the second fence.)
 */
export function safeBackend(describe: string): string {
  return describe
    .split(/\s+/)
    .map((word) => {
      if (/^[a-z][a-z0-9+.-]*:\/\//i.test(word)) {
        try {
          const url = new URL(word);
          const hasPath = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*\//i.test(word);
          return `${url.protocol}//${url.host}${hasPath ? url.pathname : ''}`;
        } catch {
          return '<unparsable URL>';
        }
      }
      return word.replace(/^[^@/]*@/, '').replace(/[?#].*$/, '');
    })
    .filter((word) => word !== '' && !word.includes('='))
    .join(' ');
}

export class OwnMetrics {
  readonly registry = new Registry();
  readonly #sources: OwnMetricsSources;
  /** Reconciles of a key that threw, since sluice started (dropped with the object). */
  readonly #reconcileErrors = new Map<string, number>();
  readonly #reconcileDuration: Histogram<'result'>;
  readonly #apiDuration: Histogram<'route' | 'code'>;
  /** The views of the scrape in progress: every collector of one scrape reads the same snapshot. */
  #views: { readonly at: number; readonly list: readonly ScaledObjectView[] } | undefined;
  readonly #now: () => number;

  constructor(options: OwnMetricsOptions) {
    this.#sources = options.sources;
    this.#now = options.now ?? performance.now.bind(performance);
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: PREFIX });

    const triggerLabels = ['namespace', 'metric', 'scaledObject', 'scaler', 'triggerIndex', 'type'] as const;
    const objectLabels = ['namespace', 'scaledObject'] as const;
    // collect() runs with `this` bound to its metric: these reach the instance's state.
    const scaledObjects = () => this.#scaledObjects();
    const triggers = () => this.#triggers();
    const sources = this.#sources;
    const reconcileErrors = this.#reconcileErrors;
    const triggerGauge = (name: string, help: string, value: (t: TriggerView) => number | undefined) =>
      new Gauge<(typeof triggerLabels)[number]>({
        name: `${PREFIX}${name}`,
        help,
        labelNames: triggerLabels,
        registers,
        collect() {
          this.reset();
          for (const { so, trigger } of triggers()) {
            const v = value(trigger);
            if (v !== undefined) this.set(triggerLabelsOf(so, trigger), v);
          }
        },
      });
    triggerGauge(
      'scaler_metrics_value',
      "The current value of each trigger's metric, what the HPA computes with (no sample while it is unknown).",
      (t) => t.value,
    );
    triggerGauge('scaler_active', 'Whether each trigger is active (1) or not (0).', (t) => (t.active ? 1 : 0));
    triggerGauge(
      'scaler_metrics_latency_seconds',
      "How long the last read of each trigger's source took, in seconds.",
      (t) => t.latencySeconds,
    );

    new Counter<(typeof triggerLabels)[number]>({
      name: `${PREFIX}scaler_errors_total`,
      help: "Failed reads of each trigger's source (restarts at 0 when the trigger's settings change).",
      labelNames: triggerLabels,
      registers,
      collect() {
        this.reset();
        for (const { so, trigger } of triggers()) this.inc(triggerLabelsOf(so, trigger), trigger.errors);
      },
    });
    new Counter<(typeof objectLabels)[number]>({
      name: `${PREFIX}scaled_object_errors_total`,
      help: "Errors of each ScaledObject: failed reads of its triggers' sources and failed reconciles.",
      labelNames: objectLabels,
      registers,
      collect() {
        this.reset();
        for (const so of scaledObjects()) {
          const reads = so.running?.triggers.reduce((sum, t) => sum + t.errors, 0) ?? 0;
          const reconciles = reconcileErrors.get(`${so.namespace}/${so.name}`) ?? 0;
          this.inc({ namespace: so.namespace, scaledObject: so.name }, reads + reconciles);
        }
      },
    });
    new Gauge<'namespace' | 'type' | 'resource'>({
      name: `${PREFIX}internal_scale_loop_latency_seconds`,
      help: "How late the last scheduled read of each ScaledObject's sources started (timer and event-loop delay), in seconds; the largest over its triggers.",
      labelNames: ['namespace', 'type', 'resource'],
      registers,
      collect() {
        this.reset();
        for (const so of scaledObjects()) {
          const lags = (so.running?.triggers ?? []).flatMap((t) =>
            t.loopLagSeconds === undefined ? [] : [t.loopLagSeconds],
          );
          if (lags.length > 0) {
            this.set({ namespace: so.namespace, type: 'scaledobject', resource: so.name }, Math.max(...lags));
          }
        }
      },
    });
    const objectGauge = (name: string, help: string, value: (so: ScaledObjectView) => number | undefined) =>
      new Gauge<(typeof objectLabels)[number]>({
        name: `${PREFIX}${name}`,
        help,
        labelNames: objectLabels,
        registers,
        collect() {
          this.reset();
          for (const so of scaledObjects()) {
            const v = value(so);
            if (v !== undefined) this.set({ namespace: so.namespace, scaledObject: so.name }, v);
          }
        },
      });
    objectGauge(
      'scaled_object_paused',
      'Whether each ScaledObject is paused (1) or not (0): its Paused condition.',
      (so) => (so.conditions.some((c) => c.type === 'Paused' && c.status === 'True') ? 1 : 0),
    );
    objectGauge(
      'scaled_object_fallback_active',
      'Whether some trigger of each running ScaledObject serves its fallback (1) or none does (0).',
      (so) => (so.running === undefined ? undefined : so.running.fallbackActive ? 1 : 0),
    );
    new Gauge<'namespace' | 'scaledObject' | 'type' | 'status'>({
      name: `${PREFIX}scaled_object_condition`,
      help: 'The status conditions of each ScaledObject: 1 for its current status of each condition type (kedacore/keda#3758).',
      labelNames: ['namespace', 'scaledObject', 'type', 'status'],
      registers,
      collect() {
        this.reset();
        for (const so of scaledObjects()) {
          for (const c of so.conditions) {
            this.set({ namespace: so.namespace, scaledObject: so.name, type: c.type, status: c.status }, 1);
          }
        }
      },
    });
    new Gauge<'backend'>({
      name: `${PREFIX}backend_circuit_breaker_state`,
      help: "Each backend's circuit breaker: 0 closed (reads go through), 1 half-open (one probe), 2 open (reads refused). Backends that describe alike show the worst.",
      labelNames: ['backend'],
      registers,
      collect() {
        this.reset();
        const worst = new Map<string, number>();
        for (const b of sources.breakers()) {
          const label = safeBackend(b.describe);
          worst.set(label, Math.max(worst.get(label) ?? 0, BREAKER_VALUE[b.state]));
        }
        for (const [backend, value] of worst) this.set({ backend }, value);
      },
    });
    new Gauge({
      name: `${PREFIX}leader_election_is_leader`,
      help: 'Whether this replica leads (1: it writes HPAs, status, Events and /scale) or follows (0).',
      registers,
      collect() {
        this.set(sources.leading() ? 1 : 0);
      },
    });
    new Gauge<'name'>({
      name: `${PREFIX}workqueue_depth`,
      help: 'ScaledObjects waiting in the work queue for a reconcile.',
      labelNames: ['name'],
      registers,
      collect() {
        this.set({ name: 'scaledobjects' }, sources.queueDepth());
      },
    });
    new Counter<'verb' | 'resource'>({
      name: `${PREFIX}kube_api_requests_total`,
      help: 'Requests sluice made to the Kubernetes API, by verb and group/resource[/subresource] (watches not included).',
      labelNames: ['verb', 'resource'],
      registers,
      collect() {
        this.reset();
        for (const [key, count] of sources.kubeRequests()) {
          const space = key.indexOf(' ');
          this.inc({ verb: key.slice(0, space), resource: key.slice(space + 1) }, count);
        }
      },
    });
    new Gauge<'version' | 'nodeversion'>({
      name: `${PREFIX}build_info`,
      help: "Info metric: sluice's version and the Node.js it runs on.",
      labelNames: ['version', 'nodeversion'],
      registers,
    }).set({ version: options.version ?? 'unknown', nodeversion: process.version }, 1);
    this.#reconcileDuration = new Histogram<'result'>({
      name: `${PREFIX}reconcile_duration_seconds`,
      help: 'How long each reconcile of a ScaledObject took, by result (success or error).',
      labelNames: ['result'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.#apiDuration = new Histogram<'route' | 'code'>({
      name: `${PREFIX}metrics_api_request_duration_seconds`,
      help: 'How long the metrics API (external.metrics.k8s.io) took to answer, by route pattern and HTTP status code.',
      labelNames: ['route', 'code'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
  }

  /** A reconcile of `key` (`namespace/name`) finished. */
  reconciled(key: string, seconds: number, failed: boolean): void {
    this.#reconcileDuration.observe({ result: failed ? 'error' : 'success' }, seconds);
    if (failed) this.#reconcileErrors.set(key, (this.#reconcileErrors.get(key) ?? 0) + 1);
  }

  /** The metrics API answered (app.ts `onResponse`). */
  apiResponse(route: string, statusCode: number, seconds: number): void {
    this.#apiDuration.observe({ route, code: String(statusCode) }, seconds);
  }

  /** The exposition, in Prometheus text format. */
  async metrics(): Promise<string> {
    try {
      return await this.registry.metrics();
    } finally {
      this.#views = undefined;
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The ScaledObjects as this scrape sees them (read once per scrape), pruning what belonged to deleted ones. */
  #scaledObjects(): readonly ScaledObjectView[] {
    // One scrape's collectors run within a moment of each other; a view older than a second is another scrape's.
    if (this.#views !== undefined && this.#now() - this.#views.at < 1000) return this.#views.list;
    const list = [...this.#sources.scaledObjects()];
    this.#views = { at: this.#now(), list };
    const live = new Set(list.map((so) => `${so.namespace}/${so.name}`));
    for (const key of this.#reconcileErrors.keys()) if (!live.has(key)) this.#reconcileErrors.delete(key);
    return list;
  }

  *#triggers(): Generator<{ so: ScaledObjectView; trigger: TriggerView }> {
    for (const so of this.#scaledObjects()) for (const trigger of so.running?.triggers ?? []) yield { so, trigger };
  }
}

function triggerLabelsOf(
  so: ScaledObjectView,
  t: TriggerView,
): Record<'namespace' | 'metric' | 'scaledObject' | 'scaler' | 'triggerIndex' | 'type', string> {
  return {
    namespace: so.namespace,
    metric: t.metricName,
    scaledObject: so.name,
    scaler: scalerLabel(t.type),
    triggerIndex: String(t.index),
    type: 'scaledobject',
  };
}
