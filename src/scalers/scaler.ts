/**
 * The scaler interface: one file per scaler under src/scalers, each exporting a factory registered in registry.ts.
 *
 * A scaler is split in two, so that what many triggers read is read once (docs/scaling-core.md):
 * - a **Source**: *what* is read (a queue, a query, a URL) and from which backend. Its `key` says which triggers share
 *   a reader: every trigger of every ScaledObject whose source has the same key is served by one reader in the
 *   ReaderHub (readers.ts), which reads it about once a second, through one circuit breaker per backend.
 * - an **evaluate** function: how one trigger turns a reading of its source into its value and activity (its own
 *   mode, field, activation threshold). Pure.
 *
 * Building a scaler validates and parses its metadata (throwing ValidationError naming the parameter) but never
 * touches the network; connecting and reading are runtime and go through the poller's error path.
 */
import { ScalerError, describeError } from '../errors.ts';

export type MetricType = 'AverageValue' | 'Value';

export interface Sample {
  /** The raw value (e.g. queue length); what the external-metrics API serves. */
  readonly value: number;
  /** Whether this trigger alone asks for at least one replica (KEDA's activation: value > activation, strict). */
  readonly active: boolean;
}

/** One read of a source: the value read, or why there is none. `at` is when the read finished (ms since the epoch). */
export type Reading<R> =
  | { readonly ok: true; readonly value: R; readonly at: number }
  | { readonly ok: false; readonly error: ScalerError; readonly at: number };

/** An open reader of one source. */
export interface Reader<R> {
  /**
   * Reads once. Throws BackendError when the backend failed (counted by its breaker), ScalerError when it answered
   * without a usable value; never returns a zero for "unknown". Must honour `signal`.
   */
  read(signal: AbortSignal): Promise<R>;
  /**
   * The longest this read may take when it is one of `batch` reads of a batched backend's turn, if that is not the
   * source's `timeoutMs` (one list answers them all, and a long list takes longer than one queue).
   */
  timeoutMs?(batch: number): number;
  /** Releases what `open` leased. Idempotent. */
  close(): Promise<void>;
}

/** Resources shared between readers by key (one AMQP connection per broker and credentials, one HTTP agent per origin). */
export interface SharedResources {
  /**
   * The resource under `key`, created by the first lease and disposed when the last lease is released. Keys name
   * their kind (`amqp|…`, `agent|…`) and never contain a secret (use fingerprint()).
   */
  lease<T>(key: string, create: () => T, dispose: (value: T) => Promise<void> | void): Lease<T>;
}

export interface Lease<T> {
  readonly value: T;
  /** Idempotent. */
  release(): void;
}

export interface Source<R> {
  /** What is read, including its backend: sources with equal keys share one reader. Never contains a secret. */
  readonly key: string;
  /**
   * The backend (scheme, host, port, vhost or path prefix, a fingerprint of credentials and TLS): one circuit breaker
   * per backend, and the readers of one backend read together. Never contains a secret.
   */
  readonly backend: string;
  /** For messages and logs: the backend without credentials (`amqp://rabbit:5672/`, `https://prom:9090`). */
  readonly describe: string;
  /** The longest one read may take (the trigger's `timeout`, or the scaler's default). */
  readonly timeoutMs: number;
  /**
   * The backend answers the reads of one turn with one request (the RabbitMQ management API lists a vhost's queues):
   * the hub's read budget counts such a turn as one read, so it never splits the batch into several requests.
   */
  readonly batched?: boolean;
  /**
   * Opens the reader; no I/O until its first read. `workArrived` is the push path: a reader whose backend can say
   * "work arrived" calls it, and the hub reads the source at once instead of at its next turn.
   */
  open(shared: SharedResources, workArrived: () => void): Reader<R>;
}

/** What a trigger saw on its source's latest read. */
export type TriggerResult =
  | { readonly ok: true; readonly sample: Sample; readonly at: number }
  | { readonly ok: false; readonly error: string; readonly at: number };

export interface Subscription {
  /** Stops listening; the last subscriber of a source closes its reader. Idempotent. */
  close(): void;
}

/** The ReaderHub as a scaler sees it. */
export interface SourceHub {
  /**
   * Delivers every completed read of `source` to `listener` (the latest one at once, if there is one). `changed` is
   * false when the reading equals the previous one (the listener may then only note that it is fresh).
   */
  subscribe<R>(
    source: Source<R>,
    listener: (reading: Reading<R>, changed: boolean) => void,
    /** Whose read it is: reads are shared out fairly between namespaces when the hub's read budget is full. */
    namespace?: string,
  ): Subscription;
}

export interface Scaler {
  /** The external metric name, `s<index>-<scaler-specific>` as KEDA names it. */
  readonly metricName: string;
  /** The HPA target for this metric (per replica for AverageValue). */
  readonly target: number;
  readonly metricType: MetricType;
  /**
   * The activation threshold: the trigger is active when its value exceeds it (KEDA's rule; rabbitmq's MessageRate
   * mode also counts the queue's messages). `sluice simulate` decides activity from a trace's values with it; `sluice explain` shows it (status.triggersThresholds).
   */
  readonly activation: number;
  /** The key of the source this trigger reads (triggers with equal keys share one reader). */
  readonly sourceKey: string;
  /** The longest one read of its source may take (the trigger's `timeout`, or the scaler's default). */
  readonly timeoutMs: number;
  /** Subscribes this trigger to its source: `listener` gets this trigger's result of every read. */
  watch(
    hub: SourceHub,
    listener: (result: TriggerResult, changed: boolean) => void,
    /** The ScaledObject's namespace (the hub's fair share). */
    namespace?: string,
  ): Subscription;
  /**
   * A private reader of this trigger's source, outside the hub (tests, and commands that read on their own): each
   * sample() reads once and evaluates. Readers that keep state between reads (http-rate's window) keep it here too.
   */
  open(shared: SharedResources): TriggerReader;
}

export interface TriggerReader {
  /** Reads once (bounded by the source's timeout) and evaluates. Throws ScalerError; never returns 0 for unknown. */
  sample(signal: AbortSignal): Promise<Sample>;
  close(): Promise<void>;
}

export interface ScalerParts<R> {
  readonly metricName: string;
  readonly target: number;
  readonly metricType: MetricType;
  /** The activation threshold `evaluate` compares the value with (Scaler.activation). */
  readonly activation: number;
  readonly source: Source<R>;
  /** This trigger's value and activity from one reading. Pure; throws ScalerError for a reading it cannot use. */
  readonly evaluate: (reading: R) => Sample;
}

/** A Scaler from its source and its evaluation (the reading's type stays inside). */
export function defineScaler<R>(parts: ScalerParts<R>): Scaler {
  const { source, evaluate } = parts;
  const result = (reading: Reading<R>): TriggerResult => {
    if (!reading.ok) return { ok: false, error: describeError(reading.error), at: reading.at };
    try {
      return { ok: true, sample: evaluate(reading.value), at: reading.at };
    } catch (err) {
      return { ok: false, error: describeError(asScalerError(err)), at: reading.at };
    }
  };
  return {
    metricName: parts.metricName,
    target: parts.target,
    metricType: parts.metricType,
    activation: parts.activation,
    sourceKey: source.key,
    timeoutMs: source.timeoutMs,
    watch(hub, listener, namespace) {
      // An unchanged reading (the hub compared it with the last) gives the last result again, at the new time:
      // `evaluate` is pure, and at rest nearly every reading of every source is unchanged, once a second.
      let last: TriggerResult | undefined;
      return hub.subscribe(
        source,
        (reading, changed) => {
          last = !changed && last !== undefined ? { ...last, at: reading.at } : result(reading);
          listener(last, changed);
        },
        namespace,
      );
    },
    open(shared) {
      const reader = source.open(shared, () => undefined);
      return {
        async sample(signal) {
          try {
            return evaluate(await reader.read(AbortSignal.any([signal, AbortSignal.timeout(source.timeoutMs)])));
          } catch (err) {
            throw asScalerError(err);
          }
        },
        close: () => reader.close(),
      };
    },
  };
}

/** Any failure as a ScalerError (what a reader or evaluate threw that is not one already). */
export function asScalerError(err: unknown): ScalerError {
  return err instanceof ScalerError ? err : new ScalerError(describeError(err), { cause: err });
}

/** What scalers may ask of the cluster (implemented over the Kubernetes API by the operator). */
export interface ClusterPort {
  /**
   * The ready endpoints of a Service's port (by port name or number), from its EndpointSlices. Throws when the
   * Service has no such port; returns [] when it has no ready endpoint.
   */
  readyEndpoints(namespace: string, service: string, port: string): Promise<{ address: string; port: number }[]>;
}

export interface TriggerInput {
  /** The ScaledObject's namespace. */
  readonly namespace: string;
  /** Position in spec.triggers; the `s<index>-` prefix of the metric name. */
  readonly index: number;
  readonly type: string;
  readonly name: string | undefined;
  readonly metadata: Readonly<Record<string, string>>;
  readonly metricType: MetricType;
  /** Parameters resolved from a TriggerAuthentication (secret values; never log them). */
  readonly authParams: Readonly<Record<string, string>>;
  /**
   * The environment of the scale target's container (`envSourceContainerName` or the first), resolved: what
   * `<param>FromEnv` metadata names. May hold secret values; never log them.
   */
  readonly resolvedEnv: Readonly<Record<string, string>>;
  readonly cluster: ClusterPort;
  /**
   * The trigger feeds a scalingModifiers formula (KEDA's composite metric): its own target (`threshold`,
   * `targetValue`, `value`, …) may be omitted.
   */
  readonly compositeSource?: boolean;
}

export type ScalerFactory = (trigger: TriggerInput) => Scaler;

/** KEDA's NormalizeString: `/ . : % ( )` become `-`; case is kept. */
export function normalizeMetricName(name: string): string {
  return name.replace(/[/.:%()]/g, '-');
}

/** `s<index>-<normalized name>`, KEDA's GenerateMetricNameWithIndex. */
export function metricNameFor(index: number, name: string): string {
  return `s${index}-${normalizeMetricName(name)}`;
}
