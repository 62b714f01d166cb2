/**
 * The `metrics-api` scaler (KEDA's parameters, docs/keda-compatibility.md#metrics-api): `GET <url>` and read one
 * number from the answer.
 * Metric name `s<index>-metric-api-<valueLocation>` (normalized as KEDA does: `/ . : % ( )` become `-`); target
 * `targetValue`; active when value > `activationTargetValue`.
 *
 * Parameters: `url` (required, http(s); from trigger metadata or the TriggerAuthentication, and from the
 * TriggerAuthentication when it supplies credentials: metadata may then only give a URL at or under it, see metadata.ts
 * pinAddress and docs/security.md#credentials), `valueLocation` (required), `format` (`json` default, or `prometheus`),
 * `targetValue` (required, > 0), `activationTargetValue` (0), `unsafeSsl` (false), `timeout` (whole milliseconds or a
 * Go duration, default 3s), and authentication through `authMode` / `authModes` (`apiKey`, `basic`, `bearer`, `tls`,
 * `custom`; values from a TriggerAuthentication: see http.ts; `tls` needs `ca`, `cert` and `key`, as in KEDA).
 *
 * `valueLocation`:
 * - `format: json`: a GJSON path, the subset sluice implements: keys separated by `.` (`\.` for a literal dot, `\\`
 *   for a backslash), a number indexes an array (`components.0.tasks`) and is a key in an object, and a final `#` is
 *   an array's length (`items.#`). The value must be a JSON number, or a string holding a Kubernetes Quantity
 *   (`"1.5k"`, `"250m"`).
 * - `format: prometheus`: a sample selector such as `http_requests_total{code="200"}` (with `=`, `!=`, `=~`, `!~`),
 *   matched against the Prometheus text exposition the URL serves.
 *
 * Deliberate differences from KEDA (an error is never read as zero):
 * - `format: prometheus`: **a selector that matches more than one series is an error** (KEDA takes the first match,
 *   which depends on the exporter's output order); add labels until one series matches. NaN and ±Inf are errors.
 * - GJSON features beyond the subset above (wildcards `*` `?`, queries `#(…)`, modifiers `@…`, pipes `|`, `..`,
 *   multipaths) are validation errors, never a silent miss.
 * - `format: xml` and `format: yaml` are not supported yet (validation error); `aggregateFromKubeServiceEndpoints:
 *   "true"` is not supported yet (validation error).
 * - `targetValue` must be greater than 0; a non-2xx answer, a body the format cannot read and a location that holds
 *   no number are errors (as in KEDA), as are timeouts and refused connections.
 * - Auth mode `custom` is applied (KEDA parses it for metrics-api but does not send the header); `apiKey` must come
 *   from the TriggerAuthentication (KEDA also reads it from trigger metadata). Plus the HTTP differences in http.ts.
 * - Errors say what is wrong with the answer, never what it holds ("the value at "value" is not a number"): no part
 *   of a body reaches the status (docs/security.md#read-back-and-reach).
 */
import { ScalerError, ValidationError } from '../errors.ts';
import { parseQuantity } from '../quantity.ts';
import { ExpositionError, parseExposition, parseSelector, selectSamples, type Selector } from './exposition.ts';
import { fingerprint } from '../fingerprint.ts';
import { openHttpClient, parseHttpAuth, parseHttpUrl, safeUrl, type HttpAuth } from './http.ts';
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

/** One JSON document or one exporter page (node_exporter's ≈ 150 KiB; past MAX_SAMPLES a page is refused anyway). */
const MAX_BODY_BYTES = 4 * 1024 * 1024;

const params = {
  url: { type: 'string', fromAuth: true },
  valueLocation: { type: 'string' },
  format: { type: 'enum', values: ['json', 'prometheus', 'xml', 'yaml'], default: 'json' },
  targetValue: { type: 'number', min: 0, exclusiveMin: true, target: true },
  activationTargetValue: { type: 'number', default: 0 },
  unsafeSsl: { type: 'boolean', default: false },
  timeout: { type: 'duration', default: 3000, min: 1, max: MAX_TIMEOUT_MS },
  aggregateFromKubeServiceEndpoints: { type: 'boolean', default: false },
  aggregationType: { type: 'enum', values: ['average', 'sum', 'max', 'min'], default: 'average' },
} as const satisfies ParamSpec;

/** A parsed JSON location: keys and indexes, and whether it ends in `#` (an array's length). */
export interface JsonPath {
  readonly segments: readonly string[];
  readonly length: boolean;
}

export type ValueLocation =
  { readonly format: 'json'; readonly path: JsonPath } | { readonly format: 'prometheus'; readonly selector: Selector };

export interface MetricsApiConfig {
  readonly url: URL;
  readonly valueLocation: string;
  readonly location: ValueLocation;
  readonly targetValue: number;
  readonly activationTargetValue: number;
  readonly unsafeSsl: boolean;
  readonly timeoutMs: number;
  readonly auth: HttpAuth;
}

export function parseMetricsApiConfig(trigger: TriggerInput): MetricsApiConfig {
  const sources = triggerSources(trigger);
  const { path } = sources;
  pinAddress(sources, 'url', credentialsFromAuth(sources, HTTP_AUTH_CREDENTIALS), {
    metadata: 'under',
    required: true,
    authRef: `spec.triggers[${trigger.index}].authenticationRef`,
  });
  const p = parseParams(params, sources);
  if (p.format === 'xml' || p.format === 'yaml') {
    throw new ValidationError(`${path}.format`, `"${p.format}" is not supported yet (use json or prometheus)`);
  }
  if (p.aggregateFromKubeServiceEndpoints) {
    throw new ValidationError(
      `${path}.aggregateFromKubeServiceEndpoints`,
      'is not supported yet (use the http-rate scaler for per-endpoint scraping, or point url at one endpoint)',
    );
  }
  const url = parseHttpUrl(p.url, `${path}.url`);
  const field = `${path}.valueLocation`;
  const location: ValueLocation =
    p.format === 'json'
      ? { format: 'json', path: parseJsonPath(p.valueLocation, field) }
      : { format: 'prometheus', selector: parseNamedSelector(p.valueLocation, field) };
  const auth = parseHttpAuth(trigger, {
    scaler: 'metrics-api',
    supported: ['apiKey', 'basic', 'bearer', 'custom', 'tls'],
    tlsRequiresCa: true,
  });
  for (const name of Object.keys(auth.query)) {
    if (url.searchParams.has(name)) {
      throw new ValidationError(`${path}.url`, `already has the query parameter "${name}" the apiKey auth adds`);
    }
  }
  return {
    url,
    valueLocation: p.valueLocation,
    location,
    targetValue: p.targetValue,
    activationTargetValue: p.activationTargetValue,
    unsafeSsl: p.unsafeSsl,
    timeoutMs: p.timeout,
    auth,
  };
}

function parseNamedSelector(text: string, field: string): Selector {
  const selector = parseSelector(text, field);
  if (selector.name === undefined) {
    throw new ValidationError(field, `the sample selector "${selector.text}" must name a metric`);
  }
  return selector;
}

/**
 * Parses sluice's GJSON subset: `a.b.0.c`, `\.` (or any `\x`) for a literal character, a final `#` for an array's
 * length. Throws ValidationError on anything GJSON would give another meaning (`*`, `?`, `|`, a leading `@`, `#`
 * elsewhere) and on empty keys.
 */
export function parseJsonPath(text: string, field: string): JsonPath {
  const unsupported = (what: string): never => {
    throw new ValidationError(
      field,
      `"${text}" uses ${what}, which sluice's GJSON subset does not support (supported: keys and array indexes ` +
        'separated by ".", a final "#" for an array\'s length, and "\\" to escape a character)',
    );
  };
  const segments: string[] = [];
  let length = false;
  let current = '';
  let escaped = false; // whether the current key has an escaped character
  const flush = (): void => {
    if (current === '')
      throw new ValidationError(field, `"${text}" has an empty key (a leading, trailing or double ".")`);
    if (length) unsupported('"#" before the last key (GJSON\'s array mapping)');
    if (current === '#' && !escaped) length = true;
    else segments.push(current);
    current = '';
    escaped = false;
  };
  for (let i = 0; i < text.length; i++) {
    const ch = text.charAt(i);
    if (ch === '\\') {
      if (i + 1 === text.length) throw new ValidationError(field, `"${text}" ends with a lone "\\"`);
      current += text.charAt(i + 1);
      escaped = true;
      i++;
      continue;
    }
    if (ch === '.') {
      flush();
      continue;
    }
    if (ch === '*' || ch === '?') unsupported(`the wildcard "${ch}"`);
    if (ch === '|') unsupported('a pipe "|"');
    if (ch === '@' && current === '') unsupported('a modifier "@…"');
    if (ch === '#' && current !== '') unsupported('"#" inside a key (escape it as "\\#")');
    if (current === '#' && !escaped) unsupported('a query "#(…)" or "#" at the start of a key');
    current += ch;
  }
  flush();
  return { segments, length };
}

/** The number at `path` in a parsed JSON document; throws ScalerError naming what was found instead. */
export function valueAtJsonPath(document: unknown, path: JsonPath, where: string): number {
  let node: unknown = document;
  const walked: string[] = [];
  for (const segment of path.segments) {
    if (Array.isArray(node) && /^\d+$/.test(segment)) {
      node = node[Number(segment)];
    } else if (typeof node === 'object' && node !== null && !Array.isArray(node) && Object.hasOwn(node, segment)) {
      node = (node as Record<string, unknown>)[segment];
    } else {
      node = undefined;
    }
    walked.push(segment);
    if (node === undefined) {
      throw new ScalerError(`${where}: the answer has nothing at "${walked.join('.')}"`);
    }
  }
  if (path.length) {
    if (!Array.isArray(node)) {
      throw new ScalerError(`${where}: "${path.segments.join('.')}" is ${describeJson(node)}, not an array (for "#")`);
    }
    return node.length;
  }
  if (typeof node === 'number') return node;
  if (typeof node === 'string') {
    try {
      return parseQuantity(node);
    } catch {
      // Neither the string nor the parse error (which quotes it) is shown: it is the server's text, and the message
      // reaches the ScaledObject's status (docs/security.md#read-back-and-reach).
      throw new ScalerError(
        `${where}: the value at "${path.segments.join('.')}" is not a number: valueLocation must point to a number or a string holding a Quantity, and this string is neither (its text is not shown)`,
      );
    }
  }
  throw new ScalerError(
    `${where}: valueLocation must point to a number or a string holding a Quantity, got ${describeJson(node)}`,
  );
}

function describeJson(node: unknown): string {
  if (node === null) return 'null';
  if (Array.isArray(node)) return 'an array';
  if (typeof node === 'object') return 'an object';
  if (typeof node === 'boolean') return `the boolean ${node}`;
  return typeof node === 'string' ? 'a string' : typeof node;
}

/** The one sample `selector` matches in exposition text; throws ScalerError for none, several, NaN or ±Inf. */
export function valueFromExposition(text: string, selector: Selector, where: string): number {
  let matches;
  try {
    matches = selectSamples(parseExposition(text, where), selector, { where });
  } catch (cause) {
    if (cause instanceof ExpositionError) {
      // The parser's message holds none of the server's text (exposition.ts): it is quoted whole.
      throw new ScalerError(`${where}: the answer is not Prometheus text exposition (${cause.message})`);
    }
    throw cause;
  }
  if (matches.length === 0) throw new ScalerError(`${where}: no sample matches ${selector.text}`);
  if (matches.length > 1) {
    throw new ScalerError(
      `${where}: ${matches.length} series match ${selector.text}; add label matchers until exactly one matches`,
    );
  }
  const value = (matches[0] as { value: number }).value;
  if (!Number.isFinite(value)) throw new ScalerError(`${where}: ${selector.text} is ${value}, not a finite number`);
  return value;
}

export const createMetricsApiScaler: ScalerFactory = (trigger) => {
  const config = parseMetricsApiConfig(trigger);
  const where = safeUrl(config.url);
  const origin = `${config.url.protocol}//${config.url.host}`;
  const format = config.location.format;
  const accept = format === 'json' ? 'application/json' : 'text/plain;version=0.0.4;q=0.9,*/*;q=0.1';
  const auth = fingerprint(config.auth.headers, config.auth.query, config.auth.tls, config.unsafeSsl);
  const backend = `metrics-api|${origin}|${auth}`;
  // Triggers reading the same URL (with the same credentials) share one read, whatever their valueLocation.
  const source: Source<string> = {
    key: `${backend}|${config.url.pathname}${config.url.search}|${format}|${config.timeoutMs}`,
    backend,
    describe: origin,
    timeoutMs: config.timeoutMs,
    open(shared) {
      const client = openHttpClient(shared, origin, {
        timeoutMs: config.timeoutMs,
        unsafeSsl: config.unsafeSsl,
        tls: config.auth.tls,
        headers: config.auth.headers,
        query: config.auth.query,
        maxBodyBytes: MAX_BODY_BYTES,
      });
      return {
        read: async (signal) => (await client.get(config.url, signal, { accept })).body,
        close: () => client.close(),
      };
    },
  };
  return defineScaler({
    metricName: metricNameFor(trigger.index, `metric-api-${config.valueLocation}`),
    target: config.targetValue,
    metricType: trigger.metricType,
    activation: config.activationTargetValue,
    source,
    evaluate(body) {
      let value: number;
      if (config.location.format === 'json') {
        let document: unknown;
        try {
          document = JSON.parse(body);
        } catch {
          throw new ScalerError(`${where}: the answer is not JSON`);
        }
        value = valueAtJsonPath(document, config.location.path, where);
      } else {
        value = valueFromExposition(body, config.location.selector, where);
      }
      if (!Number.isFinite(value)) throw new ScalerError(`${where}: the value is not a finite number`);
      return { value, active: value > config.activationTargetValue };
    },
  });
};
