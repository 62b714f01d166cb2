/**
 * The `http-rate` scaler (sluice's own; KEDA has no such scaler, the model is the HTTP add-on's request rate,
 * docs/keda-compatibility.md#http-rate): the per-second rate of a request counter read in Prometheus text
 * exposition, over a sliding window.
 *
 * Where the counter is read:
 * - `url`: one exporter, e.g. `http://ingress-nginx-metrics.ingress:10254/metrics`.
 * - `service` + `port` (+ `path`, default `/metrics`): every ready endpoint of that Service (in the ScaledObject's
 *   namespace), found through its EndpointSlices and scraped as `http://<address>:<port><path>`; the series of all
 *   endpoints are summed. The scraped Service must be the **proxy or ingress that sees the traffic** (e.g. the
 *   nginx VTS exporter beside the proxies), never the scaled workload itself: at zero replicas the workload has no
 *   endpoint to scrape, and a rate nobody can read would never activate it. A Service with no ready endpoint is an
 *   error (the rate is unknown), not zero.
 *
 * Parameters: `url` | `service` + `port` [+ `path`] (exactly one form), `counter` (a sample selector such as
 * `nginx_vts_server_requests_total{code="2xx"}`; every matching series is summed; it must name the metric),
 * `window` (duration, default 60s, at least 1s), `targetRate` (required, > 0), `activationRate` (default 0),
 * `timeout` (per scrape, duration, default 3s). Durations are Go durations (`30s`) or whole milliseconds, as in KEDA.
 * Metric name: `s<index>-http-rate-<counter metric name>` (normalized as KEDA does: `/ . : % ( )` become `-`).
 *
 * The rate: every read records each matching series (endpoint + metric + labels) with the time it was read. Per series the increases between consecutive samples are added up, a drop counting as a counter reset
 * whose post-reset value is the increase (as Prometheus' `rate()`). The value is the sum of all series' increases
 * inside the window divided by the time the window's samples span. A series that appears contributes from its second
 * sample on (its first value is a baseline, never an increase); one that disappears keeps the increase it showed
 * until its samples leave the window. So endpoint churn gives neither negative values nor spikes, and a counter
 * whose traffic moves from one endpoint to another keeps its total. Until some series has two samples in the window
 * the value is unknown (an error), not zero.
 *
 * When it reads: the ReaderHub reads the source about once a second while any trigger watches it (readers.ts), so
 * the window fills at that cadence whatever the pollingInterval, and keeps filling while the backend's circuit breaker
 * probes: a recovered exporter has a rate as soon as two reads succeed.
 * Errors, never zeros: timeout, connection refused, any answer outside 2xx (redirects are not followed: the shared
 * client of http.ts), an empty, oversized or malformed body, protobuf instead of text, a counter value that is
 * negative/NaN/infinite, no series matching the selector (on any endpoint), no ready endpoint, too few samples. With the Service form **one failing endpoint fails the sample**: a partial sum
 * would under-count and could scale in (KEDA's metrics-api `aggregateFromKubeServiceEndpoints` ignores failed
 * endpoints unless all fail). A failed poll records nothing: a window never mixes partial scrapes.
 *
 * Bounded memory: at most MAX_POINTS_PER_SERIES samples per series (older ones are thinned, which keeps the rate
 * exact because the reset-adjusted totals are cumulative), series unseen for a window are dropped, at most
 * MAX_SERIES series in the window and MAX_BODY_BYTES per response (more is an error).
 *
 * Deliberate choices: the selector must select counters (a gauge's decreases would read as resets); `url` must not
 * carry credentials (no authentication is supported yet) and the Service form speaks plain HTTP; an endpoint address
 * the address filter refuses (address-filter.ts: link-local, cloud metadata, --deny-cidrs) fails the read before any
 * scrape; messages name the selector, never a series' labels or value (the exporter's text); a Service in
 * another namespace cannot be named (the operator's access must not let a ScaledObject read other namespaces).
 * Labels the selector does not fix keep series apart, so the sum is over all matching series. Known limit: the
 * cluster port lists the endpoints of every address family, so the pods of a dual-stack Service would be read twice.
 */
import { BackendError, ScalerError, ValidationError, describeError } from '../errors.ts';
import { abortable } from './abortable.ts';
import { AddressRefusedError, outboundGuard } from './address-filter.ts';
import { ExpositionError, parseExposition, parseSelector, selectSamples, type Selector } from './exposition.ts';
import { openHttpClient, parseHttpUrl, safeUrl, type HttpClient } from './http.ts';
import { MAX_TIMEOUT_MS, formatDurationMs, parseParams, triggerSources, type ParamSpec } from './metadata.ts';
import {
  defineScaler,
  metricNameFor,
  type ClusterPort,
  type ScalerFactory,
  type Source,
  type TriggerInput,
} from './scaler.ts';

const params = {
  url: { type: 'string', optional: true },
  service: { type: 'string', optional: true },
  port: { type: 'string', optional: true },
  path: { type: 'string', optional: true },
  counter: { type: 'string' },
  window: { type: 'duration', default: 60_000, min: 1000, max: 3_600_000 },
  targetRate: { type: 'number', min: 0, exclusiveMin: true, target: true },
  activationRate: { type: 'number', default: 0, min: 0 },
  timeout: { type: 'duration', default: 3000, min: 1, max: MAX_TIMEOUT_MS },
} as const satisfies ParamSpec;

export const DEFAULT_PATH = '/metrics';
export const MAX_POINTS_PER_SERIES = 256;
export const MAX_SERIES = 2000;
/**
 * Per scraped page: an application's or a proxy's own metrics (ingress-nginx's ≈ 100 KiB per 100 Ingresses; what
 * parses beyond MAX_SAMPLES is refused anyway).
 */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;
/** Endpoints scraped at once (KEDA's metrics-api scrapes 5 at a time). */
const SCRAPE_CONCURRENCY = 8;
const ACCEPT = 'text/plain;version=0.0.4;q=1.0,application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1';

export type HttpRateSource =
  | { readonly kind: 'url'; readonly url: URL }
  | { readonly kind: 'service'; readonly service: string; readonly port: string; readonly path: string };

export interface HttpRateConfig {
  readonly source: HttpRateSource;
  readonly selector: Selector;
  /** The counter's metric name (the selector's). */
  readonly counterName: string;
  readonly windowMs: number;
  readonly targetRate: number;
  readonly activationRate: number;
  readonly timeoutMs: number;
}

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

export function parseHttpRateConfig(trigger: TriggerInput): HttpRateConfig {
  const sources = triggerSources(trigger);
  const { path } = sources;
  const p = parseParams(params, sources);

  let source: HttpRateSource;
  if (p.url !== undefined && p.service !== undefined) {
    throw new ValidationError(`${path}.service`, 'give either "url" or "service" (with "port"), not both');
  } else if (p.url !== undefined) {
    for (const name of ['port', 'path'] as const) {
      if (p[name] !== undefined) {
        throw new ValidationError(`${path}.${name}`, `is only used with "service"; with "url" put it in the URL`);
      }
    }
    source = { kind: 'url', url: parseHttpUrl(p.url, `${path}.url`) };
  } else if (p.service !== undefined) {
    if (p.service.length > 63 || !DNS1035_LABEL.test(p.service)) {
      throw new ValidationError(
        `${path}.service`,
        `"${p.service}" is not a Service name (a DNS-1035 label; the Service must be in the ScaledObject's namespace)`,
      );
    }
    if (p.port === undefined) {
      throw new ValidationError(`${path}.port`, 'missing required parameter "port" (the Service port, name or number)');
    }
    const port = p.port;
    const numeric = /^\d+$/.test(port);
    if (numeric ? Number(port) < 1 || Number(port) > 65535 : port.length > 63 || !DNS1123_LABEL.test(port)) {
      throw new ValidationError(`${path}.port`, `"${port}" is neither a port number (1-65535) nor a port name`);
    }
    const metricsPath = p.path ?? DEFAULT_PATH;
    if (!metricsPath.startsWith('/') || /[\s#]/.test(metricsPath)) {
      throw new ValidationError(`${path}.path`, `"${metricsPath}" must start with "/" and contain no spaces or "#"`);
    }
    source = { kind: 'service', service: p.service, port, path: metricsPath };
  } else {
    throw new ValidationError(`${path}.url`, 'missing: give "url", or "service" and "port"');
  }

  const selector = parseSelector(p.counter, `${path}.counter`);
  if (selector.name === undefined) {
    throw new ValidationError(`${path}.counter`, `"${selector.text}" must name the counter metric`);
  }
  return {
    source,
    selector,
    counterName: selector.name,
    windowMs: p.window,
    targetRate: p.targetRate,
    activationRate: p.activationRate,
    timeoutMs: p.timeout,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The sliding window.

interface Point {
  /** When the value was read (ms, monotonic). */
  readonly t: number;
  /** The series' reset-adjusted increase since it was first seen: only differences between points matter. */
  readonly total: number;
}

interface Series {
  points: Point[];
  lastRaw: number;
  total: number;
}

/**
 * Per-series samples of monotonic counters over a sliding window; the rate of their sum. Pure (times are passed in).
 * Exported for tests.
 */
export class RateWindow {
  readonly windowMs: number;
  readonly #maxPoints: number;
  readonly #series = new Map<string, Series>();

  constructor(windowMs: number, maxPointsPerSeries = MAX_POINTS_PER_SERIES) {
    if (maxPointsPerSeries < 3) throw new RangeError('maxPointsPerSeries must be at least 3');
    this.windowMs = windowMs;
    this.#maxPoints = maxPointsPerSeries;
  }

  /** Series currently held. */
  get size(): number {
    return this.#series.size;
  }

  has(key: string): boolean {
    return this.#series.has(key);
  }

  /** Samples currently held for `key` (for tests and messages). */
  pointsOf(key: string): number {
    return this.#series.get(key)?.points.length ?? 0;
  }

  /** Records one read of a series' counter `value` (finite, ≥ 0) at time `t`. Older-than-last reads are ignored. */
  record(key: string, t: number, value: number): void {
    const series = this.#series.get(key);
    if (!series) {
      this.#series.set(key, { points: [{ t, total: 0 }], lastRaw: value, total: 0 });
      return;
    }
    const last = series.points.at(-1);
    if (last !== undefined && t <= last.t) return;
    // A drop means the counter restarted from zero: everything it counted since is new (Prometheus' rule).
    series.total += value >= series.lastRaw ? value - series.lastRaw : value;
    series.lastRaw = value;
    series.points.push({ t, total: series.total });
    if (series.points.length > this.#maxPoints) {
      // Thin to every other point (keeping the first and last): the totals are cumulative, so the rate over what is
      // kept stays exact; only the window's start edge gets coarser.
      const n = series.points.length;
      series.points = series.points.filter((_, i) => i === 0 || i === n - 1 || i % 2 === 0);
    }
  }

  /** Drops samples older than the window ending at `now`, and series left without any. */
  evict(now: number): void {
    const cutoff = now - this.windowMs;
    for (const [key, series] of this.#series) {
      const firstKept = series.points.findIndex((p) => p.t >= cutoff);
      if (firstKept === -1) this.#series.delete(key);
      else if (firstKept > 0) series.points = series.points.slice(firstKept);
    }
  }

  /**
   * The per-second rate of the sum of all series over the window ending at `now` (evicting first), or undefined
   * while no series has two samples in it.
   */
  rate(now: number): number | undefined {
    this.evict(now);
    let increase = 0;
    let from = Infinity;
    let to = -Infinity;
    let pairs = false;
    for (const { points } of this.#series.values()) {
      const first = points[0];
      const last = points.at(-1);
      if (first === undefined || last === undefined) continue;
      from = Math.min(from, first.t);
      to = Math.max(to, last.t);
      if (points.length >= 2) {
        pairs = true;
        increase += last.total - first.total;
      }
    }
    if (!pairs || to <= from) return undefined;
    return increase / ((to - from) / 1000);
  }

  clear(): void {
    this.#series.clear();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Scraping.

interface Target {
  /** Identifies the endpoint in series keys. */
  readonly key: string;
  readonly url: URL;
  /** For messages (no credentials, no query). */
  readonly where: string;
}

interface Scraped {
  readonly target: Target;
  readonly t: number;
  /** Series key (target + metric + labels) → counter value. */
  readonly values: ReadonlyMap<string, number>;
}

export const createHttpRateScaler: ScalerFactory = (trigger) => {
  const config = parseHttpRateConfig(trigger);
  const metricName = metricNameFor(trigger.index, `http-rate-${config.counterName}`);
  const source = config.source;
  const what =
    source.kind === 'url' ? safeUrl(source.url) : `Service ${trigger.namespace}/${source.service} port ${source.port}`;
  const scope =
    source.kind === 'url'
      ? `${source.url.protocol}//${source.url.host}`
      : `service:${trigger.namespace}/${source.service}/${source.port}`;
  const backend = `http-rate|${scope}`;
  const rateSource: Source<number> = {
    // The window is part of what is read: two triggers with different windows keep two windows.
    key: `${backend}|${source.kind === 'url' ? source.url.href : source.path}|${config.selector.text}|${config.windowMs}|${config.timeoutMs}`,
    backend,
    describe: what,
    timeoutMs: config.timeoutMs,
    open(shared) {
      const window = new RateWindow(config.windowMs);
      // No credentials and no TLS settings yet; redirects are errors (the shared client's rule).
      const client = openHttpClient(shared, scope, {
        timeoutMs: config.timeoutMs,
        unsafeSsl: false,
        tls: {},
        headers: { 'user-agent': 'sluice-http-rate' },
        maxBodyBytes: MAX_BODY_BYTES,
      });
      return {
        /** Reads every target once and commits all series to the window (or nothing), then gives the rate. */
        async read(signal) {
          const targets = await resolveTargets(config, trigger.namespace, trigger.cluster, signal);
          const scraped = await scrapeAll(targets, client, config, signal, what);
          signal.throwIfAborted();
          const now = performance.now();
          window.evict(now);
          const fresh = scraped.reduce((n, s) => n + [...s.values.keys()].filter((k) => !window.has(k)).length, 0);
          if (window.size + fresh > MAX_SERIES) {
            throw new ScalerError(
              `${config.selector.text} at ${what} gives ${window.size + fresh} series in the window, more than ${MAX_SERIES}: ` +
                'narrow the selector',
            );
          }
          for (const s of scraped) for (const [key, value] of s.values) window.record(key, s.t, value);
          const rate = window.rate(now);
          if (rate === undefined) {
            throw new ScalerError(
              `not enough samples yet: the ${formatDurationMs(config.windowMs)} window holds no two reads of the same ` +
                `series of ${config.selector.text} at ${what}`,
            );
          }
          return rate;
        },
        close() {
          window.clear();
          return client.close();
        },
      };
    },
  };
  return defineScaler({
    metricName,
    target: config.targetRate,
    metricType: trigger.metricType,
    activation: config.activationRate,
    source: rateSource,
    evaluate: (rate) => ({ value: rate, active: rate > config.activationRate }),
  });
};

async function resolveTargets(
  config: HttpRateConfig,
  namespace: string,
  cluster: ClusterPort,
  signal: AbortSignal,
): Promise<Target[]> {
  const source = config.source;
  if (source.kind === 'url') return [{ key: 'url', url: source.url, where: safeUrl(source.url) }];
  const what = `Service ${namespace}/${source.service} port ${source.port}`;
  let endpoints: { address: string; port: number }[];
  try {
    endpoints = await abortable(
      cluster.readyEndpoints(namespace, source.service, source.port),
      signal,
      () => new ScalerError("the sample's time limit ran out", { cause: signal.reason }),
    );
  } catch (cause) {
    if (cause instanceof ScalerError) throw cause;
    throw new ScalerError(`cannot find the endpoints of ${what}`, { cause });
  }
  if (endpoints.length === 0) {
    throw new ScalerError(
      `${what} has no ready endpoint: the request rate is unknown (scrape the proxy or ingress that sees the ` +
        'traffic, not the scaled workload)',
    );
  }
  const guard = outboundGuard();
  return endpoints.map(({ address, port }) => {
    const host = address.includes(':') ? `[${address}]` : address;
    const url = new URL(`http://${host}:${port}${source.path}`);
    const where = `endpoint ${host}:${port} of ${what}`;
    // An EndpointSlice may name any address (whoever can write one in the namespace chooses it): checked here, before
    // any scrape, as the HTTP client checks it again when it connects (address-filter.ts).
    try {
      guard.checkAddress(address, address);
    } catch (err) {
      if (err instanceof AddressRefusedError) throw err.at(where);
      throw err;
    }
    return { key: `${host}:${port}`, url, where };
  });
}

async function scrapeAll(
  targets: Target[],
  client: HttpClient,
  config: HttpRateConfig,
  signal: AbortSignal,
  what: string,
) {
  const results: PromiseSettledResult<Scraped>[] = new Array<PromiseSettledResult<Scraped>>(targets.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < targets.length; i = next++) {
      const target = targets[i];
      if (target === undefined) continue;
      try {
        results[i] = { status: 'fulfilled', value: await scrape(target, client, config, signal) };
      } catch (reason) {
        results[i] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(SCRAPE_CONCURRENCY, targets.length) }, worker));
  const failed = results.filter((r) => r.status === 'rejected');
  const first: unknown = failed[0]?.reason;
  if (failed.length > 0) {
    if (targets.length === 1) throw first;
    const Failure = first instanceof BackendError ? BackendError : ScalerError;
    throw new Failure(
      `${failed.length} of ${targets.length} endpoints of ${what} failed (a partial sum would under-count): ` +
        describeError(first),
      { cause: first },
    );
  }
  return results.map((r) => (r as PromiseFulfilledResult<Scraped>).value);
}

async function scrape(
  target: Target,
  client: HttpClient,
  config: HttpRateConfig,
  signal: AbortSignal,
): Promise<Scraped> {
  const { where } = target;
  const reply = await client.get(target.url, signal, { accept: ACCEPT });
  if (/protobuf/i.test(reply.contentType)) {
    throw new ScalerError(`${where} sent protobuf (its Content-Type says so); http-rate reads the text format`);
  }
  const text = reply.body;
  const t = performance.now();
  if (text.trim() === '') throw new ScalerError(`${where} sent an empty body`);
  let samples;
  try {
    samples = parseExposition(text, where);
  } catch (cause) {
    if (!(cause instanceof ExpositionError)) throw cause;
    // The parser's message holds none of the server's text (exposition.ts): it is quoted whole.
    throw new ScalerError(`${where} sent a body that is not Prometheus text exposition (${cause.message})`);
  }
  const selected = selectSamples(samples, config.selector, { where });
  if (selected.length === 0) {
    throw new ScalerError(`no series matches ${config.selector.text} at ${where}`);
  }
  const values = new Map<string, number>();
  // Messages name the selector, never a series: label values and sample values are the server's text.
  for (const sample of selected) {
    const labels = Object.keys(sample.labels)
      .sort()
      .map((k) => `${k}=${JSON.stringify(sample.labels[k])}`)
      .join(',');
    const series = `${sample.name}{${labels}}`;
    if (!Number.isFinite(sample.value) || sample.value < 0) {
      throw new ScalerError(
        `a series matching ${config.selector.text} at ${where} is not a finite, non-negative number; a counter is`,
      );
    }
    const key = `${target.key} ${series}`;
    if (values.has(key)) throw new ScalerError(`a series matching ${config.selector.text} appears twice at ${where}`);
    values.set(key, sample.value);
  }
  return { target, t, values };
}
