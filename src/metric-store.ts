/**
 * The in-memory metric store: pollers write it, the external-metrics API only reads it.
 *
 * A series is one value of one metric in one namespace, with labels. Series written by a ScaledObject's poller carry
 * the label `scaledobject.sluice.dev/name=<so>`, so the selector the generated HPA sends picks exactly its own series.
 * A series whose last read failed keeps no value: `value` is undefined and `error` says why. It is never zero.
 * `timestamp` is when the value was last confirmed by a read (the ReaderHub reads about once a second), so it shows
 * how fresh the value is even while it does not change.
 *
 * Metric names are matched case-insensitively, as KEDA does: kube-controller-manager's external-metrics client
 * requests the name lower-cased (`s0-rabbitmq-Orders` arrives as `s0-rabbitmq-orders`).
 */
/**
 * The longest metric name sluice generates and serves. Kubernetes itself sets no limit on an HPA's metric name (it
 * must be a valid path segment); names derived from long queue names (RabbitMQ allows 255 bytes, percent-encoded up
 * to three times that) fit well within this, and the metrics API's router accepts path segments this long.
 */
export const MAX_METRIC_NAME_LENGTH = 4096;

export interface Series {
  readonly namespace: string;
  readonly metricName: string;
  readonly labels: Readonly<Record<string, string>>;
  /** The last value read, or undefined when the last read failed or none succeeded yet. */
  readonly value: number | undefined;
  /** Why the value is unknown, when it is. Safe to show: no credentials. */
  readonly error: string | undefined;
  /** When the value (or the error) was last observed. */
  readonly timestamp: Date;
  /** Which writer owns the series (`<namespace>/<scaledobject>`); used to drop all of an owner's series at once. */
  readonly owner: string;
}

export class MetricStore {
  // namespace → lower-cased metricName → owner → series
  readonly #byNamespace = new Map<string, Map<string, Map<string, Series>>>();
  // owner → its series' (namespace, lower-cased name), to drop or prune them without scanning every namespace
  readonly #byOwner = new Map<string, Map<string, { namespace: string; key: string }>>();

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
    let owned = this.#byOwner.get(series.owner);
    if (!owned) {
      owned = new Map();
      this.#byOwner.set(series.owner, owned);
    }
    owned.set(`${series.namespace}/${key}`, { namespace: series.namespace, key });
  }

  /** Marks an unchanged series as confirmed at `at` (a read that gave the same value or error again). */
  touch(owner: string, namespace: string, metricName: string, at: Date): void {
    const owners = this.#byNamespace.get(namespace)?.get(metricName.toLowerCase());
    const series = owners?.get(owner);
    if (owners && series) owners.set(owner, { ...series, timestamp: at });
  }

  /** All series of a metric in a namespace (any owner; name matched case-insensitively). The caller filters by label selector. */
  find(namespace: string, metricName: string): readonly Series[] {
    const owners = this.#byNamespace.get(namespace)?.get(metricName.toLowerCase());
    return owners ? [...owners.values()] : [];
  }

  /** The series of one owner (the CLI, tests). */
  ofOwner(owner: string): Series[] {
    const owned = this.#byOwner.get(owner);
    if (!owned) return [];
    return [...owned.values()].flatMap(({ namespace, key }) => {
      const series = this.#byNamespace.get(namespace)?.get(key)?.get(owner);
      return series ? [series] : [];
    });
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
    this.retain(owner, []);
    this.#byOwner.delete(owner);
  }

  /** Removes the series of `owner` whose metric names are not in `metricNames` (compared case-insensitively). */
  retain(owner: string, metricNames: readonly string[]): void {
    const owned = this.#byOwner.get(owner);
    if (!owned) return;
    const keep = new Set(metricNames.map((name) => name.toLowerCase()));
    for (const [id, { namespace, key }] of owned) {
      if (keep.has(key)) continue;
      owned.delete(id);
      const metrics = this.#byNamespace.get(namespace);
      const owners = metrics?.get(key);
      if (!metrics || !owners) continue;
      owners.delete(owner);
      if (owners.size === 0) metrics.delete(key);
      if (metrics.size === 0) this.#byNamespace.delete(namespace);
    }
    if (owned.size === 0) this.#byOwner.delete(owner);
  }
}
