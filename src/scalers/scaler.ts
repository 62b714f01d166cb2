/**
 * The scaler interface: one file per scaler under src/scalers, each exporting a factory registered in registry.ts.
 * Building a scaler validates and parses its metadata (throwing ValidationError naming the parameter) but never
 * touches the network; connecting and sampling are runtime and go through the poller's error path.
 */
export type MetricType = 'AverageValue' | 'Value';

export interface Sample {
  /** The raw value (e.g. queue length); what the external-metrics API serves. */
  readonly value: number;
  /** Whether this trigger alone asks for at least one replica (KEDA's activation: value > activation, strict). */
  readonly active: boolean;
}

export interface Scaler {
  /** The external metric name, `s<index>-<scaler-specific>` as KEDA names it. */
  readonly metricName: string;
  /** The HPA target for this metric (per replica for AverageValue). */
  readonly target: number;
  readonly metricType: MetricType;
  /** Reads the backend once. Throws ScalerError on any failure; never returns 0 for "unknown". */
  sample(signal: AbortSignal): Promise<Sample>;
  /** Releases connections. Idempotent. */
  close(): Promise<void>;
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
  /** Identifies the owner, e.g. for connection names: `<namespace>/<scaledobject>`. */
  readonly owner: string;
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
