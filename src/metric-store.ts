/**
 * The in-memory metric store: pollers write it, the external-metrics API only reads it.
 *
 * A series is one value of one metric in one namespace, with labels. Series written by a ScaledObject's poller carry
 * the label `scaledobject.sluice.dev/name=<so>`, so the selector the generated HPA sends picks exactly its own series.
 * A series whose last poll failed keeps no value: `value` is undefined and `error` says why. It is never zero.
 *
 * Metric names are matched case-insensitively, as KEDA does: kube-controller-manager's external-metrics client
 * requests the name lower-cased (`s0-rabbitmq-Orders` arrives as `s0-rabbitmq-orders`).
 */
export interface Series {
  readonly namespace: string;
  readonly metricName: string;
  readonly labels: Readonly<Record<string, string>>;
  /** The last value read, or undefined when the last poll failed or none succeeded yet. */
  readonly value: number | undefined;
  /** Why the value is unknown, when it is. Safe to show: no credentials. */
  readonly error: string | undefined;
  /** When the value (or the error) was observed. */
  readonly timestamp: Date;
  /** Which writer owns the series (`<namespace>/<scaledobject>`); used to drop all of an owner's series at once. */
  readonly owner: string;
}

export class MetricStore {
  // namespace → lower-cased metricName → owner → series
  readonly #byNamespace = new Map<string, Map<string, Map<string, Series>>>();

  /** Writes (replaces) the series of `owner` for this namespace and metric name. */
  set(series: Series): void {
    let metrics = this.#byNamespace.get(series.namespace);
    if (!metrics) {
      metrics = new Map();
      this.#byNamespace.set(series.namespace, metrics);
    }
    const key = series.metricName.toLowerCase();
    let owners = metrics.get(key);
    if (!owners) {
      owners = new Map();
      metrics.set(key, owners);
    }
    owners.set(series.owner, series);
  }

  /** All series of a metric in a namespace (any owner; name matched case-insensitively). The caller filters by label selector. */
  find(namespace: string, metricName: string): readonly Series[] {
    const owners = this.#byNamespace.get(namespace)?.get(metricName.toLowerCase());
    return owners ? [...owners.values()] : [];
  }

  /** Every metric name that has at least one series in the namespace (or in all namespaces). */
  metricNames(namespace?: string): string[] {
    const names = new Set<string>();
    for (const [ns, metrics] of this.#byNamespace) {
      if (namespace !== undefined && ns !== namespace) continue;
      for (const owners of metrics.values()) for (const series of owners.values()) names.add(series.metricName);
    }
    return [...names].sort();
  }

  /** Removes every series written by `owner`. */
  deleteOwner(owner: string): void {
    for (const [ns, metrics] of this.#byNamespace) {
      for (const [name, owners] of metrics) {
        owners.delete(owner);
        if (owners.size === 0) metrics.delete(name);
      }
      if (metrics.size === 0) this.#byNamespace.delete(ns);
    }
  }
}
