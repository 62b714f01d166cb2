/**
 * The `prometheus` scaler (KEDA's parameters, docs/keda-compatibility.md#prometheus): one instant PromQL query,
 * `GET <serverAddress>/api/v1/query?query=…&time=<now>[&namespace=…][&<queryParameters>]`, whose single result is
 * the metric value. Metric name `s<index>-prometheus`; target `threshold`; active when value > `activationThreshold`.
 *
 * Parameters: `serverAddress` (required, http(s) URL; a path prefix is kept, e.g. `http://host/prometheus`; from trigger
 * metadata or the TriggerAuthentication, and from the TriggerAuthentication when it supplies credentials: metadata may
 * then only narrow it, see metadata.ts pinAddress and docs/security.md#credentials), `query`
 * (required), `threshold` (required, > 0), `activationThreshold` (0), `namespace` (Thanos tenancy, sent as
 * `&namespace=`), `customHeaders` and `queryParameters` (`k1=v1,k2=v2`), `ignoreNullValues` (**false**), `unsafeSsl`
 * (false), `timeout` (whole milliseconds or a Go duration, default 3s), and authentication through `authModes`
 * (`bearer`, `basic`, `tls`, `custom`; values from a TriggerAuthentication: see http.ts).
 *
 * Deliberate differences from KEDA (an error is never read as zero; kedacore/keda#3065):
 * - `ignoreNullValues` defaults to **false** (KEDA: true). An empty result, a NaN or ±Inf value, or an empty value
 *   is then an error, so a broken exporter, a renamed metric or a typo in the query holds the replicas instead of
 *   scaling to zero. With `ignoreNullValues: "true"` those read as 0, as in KEDA.
 * - The JSON is validated strictly whatever `ignoreNullValues` says: `status` must be `success`, `resultType`
 *   `vector` or `scalar`, and the value a `[time, "number"]` pair. A body that is not a Prometheus query response
 *   (KEDA reads `{}` as an empty result, hence 0) and a result of more than one series are always errors.
 * - `threshold` must be greater than 0. `queryParameters` must not set `query` or `time` (or `namespace` when the
 *   `namespace` parameter is given); `customHeaders` must not set a header the auth modes set.
 * - Not supported, and rejected rather than ignored: `awsRegion` (SigV4 for Amazon Managed Prometheus),
 *   `identityOwner`, auth modes `oauth` and `apiKey`; Azure/GCP managed-Prometheus pod identities.
 * - An error answer is named by its `errorType` (`bad_data`, `execution`, …) only: Prometheus' `error` text, like
 *   every other part of a body, never reaches the status (docs/security.md#read-back-and-reach).
 * - Plus the HTTP differences listed in http.ts (no secrets in metadata, no redirects, no credentials in the URL).
 */
import { ScalerError, ValidationError } from '../errors.ts';
import { parseSampleValue } from './exposition.ts';
import { fingerprint } from '../fingerprint.ts';
import { openHttpClient, mergeHeaders, parseHttpAuth, parseHttpUrl, checkHeaders, type HttpAuth } from './http.ts';
import {
  HTTP_AUTH_CREDENTIALS,
  MAX_TIMEOUT_MS,
  credentialsFromAuth,
  parseParams,
  pinAddress,
  triggerSources,
  type ParamSpec,
} from './metadata.ts';
import { defineScaler, metricNameFor, type ScalerFactory, type Source, type TriggerInput } from './scaler.ts';

/**
 * A query answer: sluice reads one element of it (KEDA takes the first of a vector); 1 MiB holds ≈ 5,000 series, far
 * past a query meant for scaling.
 */
const MAX_BODY_BYTES = 1024 * 1024;

const params = {
  serverAddress: { type: 'string', fromAuth: true },
  query: { type: 'string' },
  threshold: { type: 'number', min: 0, exclusiveMin: true, target: true },
  activationThreshold: { type: 'number', default: 0 },
  namespace: { type: 'string', optional: true },
  customHeaders: { type: 'map', optional: true },
  queryParameters: { type: 'map', optional: true },
  ignoreNullValues: { type: 'boolean', default: false },
  unsafeSsl: { type: 'boolean', default: false },
  timeout: { type: 'duration', default: 3000, min: 1, max: MAX_TIMEOUT_MS },
} as const satisfies ParamSpec;

const UNSUPPORTED: Readonly<Record<string, string>> = {
  awsRegion: 'AWS SigV4 signing (Amazon Managed Prometheus) is not supported by sluice yet',
  identityOwner: 'pod identities are not supported by the sluice prometheus scaler yet',
};

export interface PrometheusConfig {
  /** `<serverAddress>/api/v1/query` with the fixed query parameters (all but `time`). */
  readonly endpoint: URL;
  readonly query: string;
  readonly threshold: number;
  readonly activationThreshold: number;
  readonly ignoreNullValues: boolean;
  readonly unsafeSsl: boolean;
  readonly timeoutMs: number;
  /** Custom headers merged with the auth headers. Secret values. */
  readonly headers: Readonly<Record<string, string>>;
  readonly auth: HttpAuth;
}

export function parsePrometheusConfig(trigger: TriggerInput): PrometheusConfig {
  const sources = triggerSources(trigger);
  const { path } = sources;
  for (const [name, why] of Object.entries(UNSUPPORTED)) {
    if (trigger.metadata[name]?.trim()) throw new ValidationError(`${path}.${name}`, why);
  }
  pinAddress(sources, 'serverAddress', credentialsFromAuth(sources, HTTP_AUTH_CREDENTIALS), {
    metadata: 'under',
    required: true,
    authRef: `spec.triggers[${trigger.index}].authenticationRef`,
  });
  const p = parseParams(params, sources);
  const server = parseHttpUrl(p.serverAddress, `${path}.serverAddress`);
  if (server.search !== '') {
    throw new ValidationError(`${path}.serverAddress`, 'must not contain a query string (use queryParameters)');
  }
  // KEDA appends `/api/v1/query` to the address as written: keep any path prefix (e.g. behind a proxy).
  const endpoint = new URL(`${server.pathname.replace(/\/+$/, '')}/api/v1/query`, server);
  endpoint.searchParams.set('query', p.query);
  if (p.namespace !== undefined) endpoint.searchParams.set('namespace', p.namespace);
  for (const [name, value] of Object.entries(p.queryParameters ?? {})) {
    if (name === 'query' || name === 'time' || (name === 'namespace' && p.namespace !== undefined)) {
      throw new ValidationError(
        `${path}.queryParameters`,
        `must not set "${name}" (${name === 'namespace' ? 'the namespace parameter sets it' : 'the scaler sets it'})`,
      );
    }
    endpoint.searchParams.append(name, value);
  }
  const custom = p.customHeaders ?? {};
  checkHeaders(custom, `${path}.customHeaders`);
  const auth = parseHttpAuth(trigger, { scaler: 'prometheus', supported: ['basic', 'bearer', 'custom', 'tls'] });
  const headers = mergeHeaders(
    `${path}.customHeaders`,
    { headers: auth.headers, from: 'authModes' },
    { headers: custom, from: 'customHeaders' },
  );
  return {
    endpoint,
    query: p.query,
    threshold: p.threshold,
    activationThreshold: p.activationThreshold,
    ignoreNullValues: p.ignoreNullValues,
    unsafeSsl: p.unsafeSsl,
    timeoutMs: p.timeout,
    headers,
    auth,
  };
}

/**
 * What one read of a query gives: a sample's text (possibly NaN or ±Inf) or an empty result. Errors (malformed
 * bodies, more than one series, Prometheus' own errors) are thrown by the reader.
 */
export type PrometheusReading = { readonly kind: 'sample'; readonly text: string } | { readonly kind: 'empty' };

export const createPrometheusScaler: ScalerFactory = (trigger) => {
  const config = parsePrometheusConfig(trigger);
  const server = new URL(config.endpoint.href);
  const prefix = server.pathname.replace(/\/api\/v1\/query$/, '');
  const origin = `${server.protocol}//${server.host}`;
  // One breaker per Prometheus (and credentials): every query of one server reads through it.
  const backend = `prometheus|${origin}${prefix}|${fingerprint(config.headers, config.auth.tls, config.unsafeSsl)}`;
  const source: Source<PrometheusReading> = {
    key: `${backend}|${config.endpoint.search}|${config.timeoutMs}`,
    backend,
    describe: `Prometheus ${origin}${prefix}`,
    timeoutMs: config.timeoutMs,
    open(shared) {
      const client = openHttpClient(shared, origin, {
        timeoutMs: config.timeoutMs,
        unsafeSsl: config.unsafeSsl,
        tls: config.auth.tls,
        headers: config.headers,
        maxBodyBytes: MAX_BODY_BYTES,
      });
      return {
        async read(signal) {
          const url = new URL(config.endpoint.href);
          url.searchParams.set('time', new Date().toISOString());
          const reply = await client.get(url, signal, {
            accept: 'application/json',
            errorDetail: prometheusErrorDetail,
          });
          return readPrometheusResult(reply.body, config.query);
        },
        close: () => client.close(),
      };
    },
  };
  return defineScaler({
    metricName: metricNameFor(trigger.index, 'prometheus'),
    target: config.threshold,
    metricType: trigger.metricType,
    activation: config.activationThreshold,
    source,
    evaluate(reading) {
      const value = prometheusValue(reading, config.ignoreNullValues, config.query);
      return { value, active: value > config.activationThreshold };
    },
  });
};

/**
 * Prometheus' `errorType` values (prometheus/prometheus web/api/v1/api.go, `errorType` constants), each with what it
 * means in sluice's words.
 */
const PROMETHEUS_ERROR_TYPES: ReadonlyMap<string, string> = new Map([
  ['bad_data', 'the query or its parameters are invalid, e.g. a PromQL syntax error'],
  ['execution', 'the query failed while it ran'],
  ['timeout', 'the query timed out in Prometheus'],
  ['canceled', 'Prometheus cancelled the query'],
  ['internal', 'Prometheus failed internally'],
  ['unavailable', 'Prometheus is unavailable'],
  ['not_found', 'Prometheus found no such resource'],
  ['not_acceptable', 'Prometheus cannot answer in the format asked for'],
]);

/**
 * What an error answer (`{"status":"error","errorType":…,"error":…}`) says, named by its `errorType` alone. The
 * `error` text is never quoted: it is the server's, and the message reaches the ScaledObject's status (anyone who can
 * read the object could read what the server holds, docs/security.md#read-back-and-reach). Run the query in
 * Prometheus itself to see its error text.
 */
function prometheusErrorDetail(body: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(body);
    const type = isRecord(parsed) ? parsed['errorType'] : undefined;
    const meaning = typeof type === 'string' ? PROMETHEUS_ERROR_TYPES.get(type) : undefined;
    if (meaning !== undefined) return `${String(type)} (${meaning}; Prometheus' own error text is not shown)`;
    if (isRecord(parsed) && parsed['status'] === 'error') return 'an error of an unknown type';
  } catch {
    // Not Prometheus JSON (e.g. a proxy's HTML page): the status alone says it.
  }
  return undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What a JSON value is, for a message (never the value itself, unless one of `known`). */
function kindOf(value: unknown, known: readonly string[] = []): string {
  if (typeof value === 'string' && known.includes(value)) return `"${value}"`;
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return 'a string';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

function shorten(text: string, max = 200): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/**
 * The value of a Prometheus instant-query response body. Throws ScalerError for anything but exactly one finite
 * sample; with `ignoreNullValues` an empty result, an empty value and NaN/±Inf read as 0 (KEDA's behaviour).
 */
export function parsePrometheusResponse(body: string, ignoreNullValues: boolean, query: string): number {
  return prometheusValue(readPrometheusResult(body, query), ignoreNullValues, query);
}

/** A trigger's value from one reading: empty and NaN/±Inf are errors unless `ignoreNullValues` (then 0). */
export function prometheusValue(reading: PrometheusReading, ignoreNullValues: boolean, query: string): number {
  const what = `the query ${JSON.stringify(shorten(query, 120))}`;
  if (reading.kind === 'empty') {
    if (ignoreNullValues) return 0;
    throw new ScalerError(
      `Prometheus returned an empty result for ${what} (set ignoreNullValues: "true" to read an empty result as 0)`,
    );
  }
  const value = parseSampleValue(reading.text);
  if (value === undefined) {
    throw new ScalerError(
      `Prometheus answered ${what} with a malformed body: the value at data.result[0].value[1] is not a number`,
    );
  }
  if (!Number.isFinite(value)) {
    if (ignoreNullValues) return 0;
    const named = Number.isNaN(value) ? 'NaN' : value > 0 ? '+Inf' : '-Inf';
    throw new ScalerError(
      `Prometheus returned ${named} for ${what} (set ignoreNullValues: "true" to read NaN and ±Inf as 0)`,
    );
  }
  return value;
}

/**
 * One instant-query response body as a reading: one sample (its text) or an empty result (no series, or an empty
 * value). Throws ScalerError for a malformed body, Prometheus' own error, or more than one series.
 */
export function readPrometheusResult(body: string, query: string): PrometheusReading {
  const what = `the query ${JSON.stringify(shorten(query, 120))}`;
  const malformed = (why: string): never => {
    throw new ScalerError(`Prometheus answered ${what} with a malformed body: ${why}`);
  };
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return malformed('it is not JSON');
  }
  if (!isRecord(parsed)) return malformed('not a JSON object');
  if (parsed['status'] !== 'success') {
    if (parsed['status'] === 'error') {
      throw new ScalerError(`Prometheus failed ${what}: ${prometheusErrorDetail(body) ?? 'status "error"'}`);
    }
    return malformed(`"status" is ${kindOf(parsed['status'])}, not "success"`);
  }
  const data = parsed['data'];
  if (!isRecord(data)) return malformed('"data" is missing');
  const resultType = data['resultType'];
  const result = data['result'];
  let pair: unknown;
  if (resultType === 'scalar') {
    pair = result;
  } else if (resultType === 'vector') {
    if (!Array.isArray(result)) return malformed('"data.result" is not an array');
    if (result.length === 0) return { kind: 'empty' };
    if (result.length > 1) {
      throw new ScalerError(
        `Prometheus returned ${result.length} series for ${what}; the query must return exactly one (aggregate it, e.g. with sum())`,
      );
    }
    const element: unknown = result[0];
    if (!isRecord(element)) return malformed('the result element is not an object');
    pair = element['value'];
  } else {
    return malformed(
      `"resultType" is ${kindOf(resultType, ['matrix', 'string'])}; the query must give a vector or a scalar`,
    );
  }
  if (!Array.isArray(pair)) return malformed('the value is not a [time, "value"] pair');
  if (pair.length === 0) return { kind: 'empty' };
  const [time, text] = pair as unknown[];
  if (pair.length !== 2 || typeof time !== 'number' || typeof text !== 'string') {
    return malformed('the value is not a [time, "value"] pair');
  }
  return { kind: 'sample', text };
}
