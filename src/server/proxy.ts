/**
 * Proxy mode (`sluice operator --proxy-to <url>`): the external metrics sluice does not own are forwarded to another
 * external-metrics adapter (an existing prometheus-adapter or KEDA), so installing sluice does not take the cluster's
 * one `v1beta1.external.metrics.k8s.io` APIService away from it (kedacore/keda#470). What the user runs and why:
 * docs/deploy.md#proxy-mode; the rules below: docs/kubernetes-interfaces.md#proxy-mode.
 *
 * - **Who the upstream sees.** sluice has authenticated the caller (kube-apiserver's front proxy, front-proxy.ts) and
 *   authorized it (SubjectAccessReview) before anything is forwarded. It then speaks to the upstream as the
 *   aggregator speaks to sluice: over TLS with a client certificate the upstream's requestheader CA trusts, stating the
 *   caller in the identity headers (kubernetes/client-go `transport/round_trippers.go` `SetAuthProxyHeaders`). Every
 *   header sent is built here from the authenticated `UserInfo`; none of the incoming request's headers is copied, so
 *   nothing a caller sent can reach the upstream as an identity.
 * - **What comes back.** An answer the upstream gave as a Kubernetes object (its ExternalMetricValueList or its own
 *   `metav1.Status`, e.g. the 404 for a name neither adapter knows) is passed on byte for byte. Anything else is
 *   sluice's own Status naming the upstream and what to check: 503 when it cannot be reached, times out or its circuit
 *   is open, 502 when it answered something that is not such an object (or refused sluice's certificate). The
 *   upstream's body is never quoted into a message or a log line.
 * - **A dead upstream costs little.** Every request is bounded by `timeoutMs`; connections are kept alive and reused
 *   (one undici Agent); one circuit breaker (the scalers' `BackendBreaker`) opens once more than half of the requests
 *   in its window (10 × `resetTimeoutMs`) failed, forwards nothing for `resetTimeoutMs`, then lets one request probe. sluice's own metrics never touch the upstream, and discovery
 *   waits at most `DISCOVERY_WAIT_MS` for it before answering sluice's part alone.
 */
import { X509Certificate } from 'node:crypto';

import { Agent } from 'undici';

import { BackendError, ConfigError, SluiceError, describeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { pemCertificates, summarize, type CertificatePair, type CertificateSummary } from '../pki.ts';
import { BackendBreaker, type BreakerState } from '../scalers/breaker.ts';
import { EXTERNAL_METRICS_GROUP, EXTERNAL_METRICS_VERSION } from './authorizer.ts';
import {
  CertificateError,
  checkServingPair,
  watchServingCertificate,
  type ServingWatch,
  type WatchServingOptions,
} from './certificates.ts';
import { allowsClientAuth, type RequestHeaderConfig } from './front-proxy.ts';
import type { UserInfo } from './identity.ts';
import { failureStatus, type Status } from './status.ts';

/** The identity header names of the cluster's requestheader configuration: the upstream reads the same ConfigMap. */
export type IdentityHeaderNames = Pick<
  RequestHeaderConfig,
  'usernameHeaders' | 'groupHeaders' | 'extraHeaderPrefixes' | 'uidHeaders'
>;

export interface UpstreamOptions {
  /** The upstream adapter's base URL: `https://host[:port]`, no path (config.ts checks it). */
  readonly url: URL;
  /** PEM bundle that signs the upstream's serving certificate; undefined: Node's default CAs. */
  readonly ca: string | undefined;
  /** sluice's client certificate and key (PEM) for the upstream: trusted by its requestheader client CA. */
  readonly clientCert: string;
  readonly clientKey: string;
  /** The longest a forwarded request may take, connection included. */
  readonly timeoutMs: number;
  /** Once the circuit opened, how long nothing is forwarded before one request probes the upstream. Default 5 s. */
  readonly resetTimeoutMs?: number;
  /** The header names in force (requestheader-watch.ts replaces the configuration). */
  readonly headerNames: () => IdentityHeaderNames;
  readonly log: Logger;
}

/** What to send back: a status code and a JSON body, sent as it is with `Content-Type: application/json`. */
export interface UpstreamReply {
  readonly code: number;
  readonly body: Buffer;
}

export interface MetricRequest {
  readonly namespace: string;
  readonly metric: string;
  /** The label selector as the caller sent it (already parsed once by sluice: it is well-formed); '' for none. */
  readonly labelSelector: string;
  readonly user: UserInfo;
  /** The caller's `Audit-Id`, forwarded for correlation when well-formed. */
  readonly auditId: string | undefined;
}

/** One entry of an `APIResourceList` (kept as the upstream wrote it; only `name` is read). */
export type ApiResource = Readonly<Record<string, unknown>> & { readonly name: string };

/** The upstream adapter as the metrics routes see it (external-metrics.ts). */
export interface Upstream {
  /** Forwards a read of a metric sluice does not own; never rejects (a failure is a Status reply). */
  metric(request: MetricRequest): Promise<UpstreamReply>;
  /** The upstream's discovery resources; [] when it cannot answer within DISCOVERY_WAIT_MS (sluice's part stands). */
  resources(user: UserInfo, auditId: string | undefined): Promise<readonly ApiResource[]>;
  readonly state: BreakerState;
  /** `upstream adapter <origin>`: its circuit breaker's name on sluice's /metrics. */
  readonly describe: string;
  /** The client certificate and key in use. */
  readonly clientPair: CertificatePair;
  /**
   * Uses a new client certificate and key from the next request on (a renewed certificate: main.ts watches the files);
   * requests in flight finish on the old connections. Throws CertificateError for a pair that cannot be used, keeping
   * the current one. Returns the new certificate's summary.
   */
  swapClientPair(pair: CertificatePair): CertificateSummary;
  close(): Promise<void>;
}

/** Discovery waits at most this long (or the request timeout, if shorter) before answering without the upstream. */
export const DISCOVERY_WAIT_MS = 2_000;
/** The largest upstream body accepted; a bigger one is a 502. */
export const MAX_UPSTREAM_BODY = 4 * 1024 * 1024;
const VERSION_PATH = `/apis/${EXTERNAL_METRICS_GROUP}/${EXTERNAL_METRICS_VERSION}`;
const DEFAULT_HEADER_NAMES: IdentityHeaderNames = {
  usernameHeaders: ['x-remote-user'],
  groupHeaders: ['x-remote-group'],
  extraHeaderPrefixes: ['x-remote-extra-'],
  uidHeaders: [],
};
/** What the apiserver itself accepts as an Audit-Id is looser; this is enough for a UUID and keeps logs clean. */
const AUDIT_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The upstream could not be asked: unreachable, TLS refused, or no answer in time. Counts against the breaker. */
export class UpstreamUnavailableError extends SluiceError {
  override name = 'UpstreamUnavailableError';
  /** What to check, for the Status message. */
  readonly hint: string;

  constructor(message: string, hint: string, options?: ErrorOptions) {
    super('UPSTREAM_UNAVAILABLE', message, options);
    this.hint = hint;
  }
}

// --- pure parts (table-tested in test/unit/server/proxy.test.ts) -----------------------------------------------

/** Whether a byte may stand in a header name as it is (RFC 7230 token), as client-go's `legalHeaderByte`. */
function legalHeaderByte(byte: number): boolean {
  if ((byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)) return true;
  return "!#$&'*+-.^_`|~".includes(String.fromCharCode(byte));
}

/** An extra's key in a header name: client-go's `headerKeyEscape` (bytes outside the token set and `%` as `%XX`). */
export function escapeExtraKey(key: string): string {
  let out = '';
  for (const byte of Buffer.from(key, 'utf8')) {
    out += legalHeaderByte(byte) ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * Every header sent to the upstream, built from the authenticated user alone: the identity headers under the
 * cluster's first configured name of each kind, plus Accept, User-Agent and a well-formed Audit-Id.
 */
export function upstreamHeaders(
  user: UserInfo,
  names: IdentityHeaderNames,
  auditId: string | undefined,
): Record<string, string | string[]> {
  const first = (list: readonly string[], fallback: readonly string[]): string | undefined =>
    (list.length > 0 ? list : fallback)[0]?.toLowerCase();
  const headers: Record<string, string | string[]> = {
    accept: 'application/json',
    'user-agent': 'sluice-proxy',
  };
  const userHeader = first(names.usernameHeaders, DEFAULT_HEADER_NAMES.usernameHeaders);
  if (userHeader !== undefined) headers[userHeader] = user.username;
  const groupHeader = first(names.groupHeaders, DEFAULT_HEADER_NAMES.groupHeaders);
  if (groupHeader !== undefined && user.groups.length > 0) headers[groupHeader] = [...user.groups];
  const uidHeader = names.uidHeaders[0]?.toLowerCase();
  if (uidHeader !== undefined && user.uid !== undefined && user.uid !== '') headers[uidHeader] = user.uid;
  const extraPrefix = first(names.extraHeaderPrefixes, DEFAULT_HEADER_NAMES.extraHeaderPrefixes);
  if (extraPrefix !== undefined) {
    for (const [key, values] of Object.entries(user.extra)) {
      if (values.length > 0) headers[`${extraPrefix}${escapeExtraKey(key)}`] = [...values];
    }
  }
  if (auditId !== undefined && AUDIT_ID.test(auditId)) headers['audit-id'] = auditId;
  return headers;
}

/** The path of a metric read on the upstream: the external-metrics path, the selector as Go's `url.Values` encodes. */
export function metricPath(request: Pick<MetricRequest, 'namespace' | 'metric' | 'labelSelector'>): string {
  const path = `${VERSION_PATH}/namespaces/${encodeURIComponent(request.namespace)}/${encodeURIComponent(request.metric)}`;
  if (request.labelSelector === '') return path;
  return `${path}?${new URLSearchParams({ labelSelector: request.labelSelector }).toString()}`;
}

function statusReply(status: Status): UpstreamReply {
  return { code: status.code, body: Buffer.from(JSON.stringify(status)) };
}

/** The answer an upstream gave, as received (`contentType` as sent, `body` at most MAX_UPSTREAM_BODY bytes). */
export interface UpstreamAnswer {
  readonly code: number;
  readonly contentType: string | undefined;
  readonly body: Buffer;
  /** The upstream sent more than MAX_UPSTREAM_BODY bytes (the body is cut). */
  readonly tooLarge: boolean;
}

function jsonKind(answer: UpstreamAnswer): string | undefined {
  if (!/^application\/json\s*(;|$)/i.test(answer.contentType ?? '')) return undefined;
  try {
    const parsed: unknown = JSON.parse(answer.body.toString('utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
    const kind = (parsed as { kind?: unknown }).kind;
    return typeof kind === 'string' ? kind : undefined;
  } catch {
    return undefined;
  }
}

/**
 * What sluice sends back for an upstream's answer to a request that expects `kind`: the upstream's own object when it
 * is one (a 2xx `kind`, or a `Status` of any code), else a 502 Status naming the upstream and what to check. Never
 * quotes the body.
 */
export function replyFor(answer: UpstreamAnswer, kind: string, where: string): UpstreamReply {
  const bad = (message: string): UpstreamReply =>
    statusReply(failureStatus(502, `the upstream external-metrics adapter ${where} ${message}`));
  if (answer.tooLarge) {
    return bad(
      `answered more than ${MAX_UPSTREAM_BODY} bytes; check that --proxy-to points at an external-metrics adapter`,
    );
  }
  // A 401 is the upstream refusing sluice itself, not the caller: passed on, it would read as kube-apiserver's fault.
  if (answer.code === 401) {
    return bad(
      "did not accept sluice's client certificate (HTTP 401): --proxy-client-cert-file must be signed by the " +
        "adapter's requestheader client CA (the cluster's front-proxy CA) and its CN be one of the adapter's " +
        'requestheader-allowed-names (see docs/deploy.md#proxy-mode)',
    );
  }
  const found = jsonKind(answer);
  const ok = answer.code >= 200 && answer.code < 300;
  if ((ok && found === kind) || (!ok && found === 'Status')) return { code: answer.code, body: answer.body };
  return bad(
    `answered HTTP ${answer.code} with something that is not a JSON ${ok ? kind : 'Status'}; check that --proxy-to ` +
      'points at an external-metrics adapter',
  );
}

/** A 503 Status for an upstream that could not be asked. */
export function unavailableReply(where: string, error: UpstreamUnavailableError): UpstreamReply {
  return statusReply(
    failureStatus(503, `the upstream external-metrics adapter ${where} ${describeError(error)}; ${error.hint}`),
  );
}

/** A 503 Status while the circuit is open: no request is sent until the next probe. */
export function circuitOpenReply(where: string, lastError: string | undefined, resetTimeoutMs: number): UpstreamReply {
  return statusReply(
    failureStatus(
      503,
      `the upstream external-metrics adapter ${where} is not answering (${lastError ?? 'it failed'}); sluice asks it ` +
        `again every ${resetTimeoutMs / 1000} s and answers this meanwhile: check that the adapter runs and that ` +
        'sluice can reach it (--proxy-to)',
    ),
  );
}

/** sluice's resources first, then the upstream's whose names sluice does not list (names compared as written). */
export function mergeResources(own: readonly ApiResource[], upstream: readonly ApiResource[]): ApiResource[] {
  const names = new Set(own.map((resource) => resource.name));
  const merged = [...own];
  for (const resource of upstream) {
    if (names.has(resource.name)) continue;
    names.add(resource.name);
    merged.push(resource);
  }
  return merged;
}

/** The resources of an upstream's APIResourceList body (entries without a string `name` are dropped). */
export function resourcesOf(body: Buffer): ApiResource[] {
  const parsed = JSON.parse(body.toString('utf8')) as { resources?: unknown };
  if (!Array.isArray(parsed.resources)) return [];
  return parsed.resources.filter(
    (entry): entry is ApiResource =>
      typeof entry === 'object' && entry !== null && typeof (entry as { name?: unknown }).name === 'string',
  );
}

const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

function errorCodes(err: unknown): string[] {
  const codes: string[] = [];
  for (let current = err, depth = 0; current instanceof Error && depth < 8; current = current.cause, depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') codes.push(code);
  }
  return codes;
}

/** Why a request to the upstream failed, with what to check. */
export function unavailableError(err: unknown, timedOut: boolean, timeoutMs: number): UpstreamUnavailableError {
  if (timedOut) {
    return new UpstreamUnavailableError(
      `did not answer within ${timeoutMs} ms`,
      'check the adapter and what it reads (for prometheus-adapter, Prometheus), or raise --proxy-timeout',
    );
  }
  const codes = errorCodes(err);
  if (codes.some((code) => TLS_CODES.has(code))) {
    return new UpstreamUnavailableError(
      'cannot be reached: its serving certificate is not trusted',
      "--proxy-ca-file must hold the CA of the adapter's serving certificate (the caBundle of the APIService it had), " +
        'and the certificate must name the host of --proxy-to',
      { cause: err },
    );
  }
  return new UpstreamUnavailableError(
    'cannot be reached',
    'check that the adapter runs and that sluice can reach it (--proxy-to)',
    { cause: err },
  );
}

/**
 * Fails early (ConfigError, naming the flag) on TLS material the upstream would refuse: a client certificate and key
 * that do not parse or match, a certificate that is expired or not for client authentication, a CA file without a
 * certificate. Never shows the material.
 */
export function checkProxyMaterial(
  material: Pick<UpstreamOptions, 'ca' | 'clientCert' | 'clientKey'>,
  now: Date = new Date(),
): void {
  try {
    checkClientPair({ cert: material.clientCert, key: material.clientKey }, now);
  } catch (err) {
    if (!(err instanceof CertificateError)) throw err;
    throw new ConfigError(`--proxy-client-cert-file and --proxy-client-key-file: ${err.message}`, { cause: err });
  }
  if (material.ca !== undefined && pemCertificates(material.ca).length === 0) {
    throw new ConfigError('--proxy-ca-file holds no PEM certificate');
  }
}

/**
 * A client certificate and key the upstream would accept: they parse and match, the certificate allows client
 * authentication and is valid now. Throws CertificateError (never showing the material); returns its summary.
 */
export function checkClientPair(pair: CertificatePair, now: Date = new Date()): CertificateSummary {
  checkServingPair(pair);
  const [leafPem = ''] = pemCertificates(pair.cert);
  const leaf = new X509Certificate(leafPem);
  if (!allowsClientAuth(leaf, false)) {
    throw new CertificateError('the certificate has no clientAuth extended key usage, so the adapter would refuse it');
  }
  if (now < leaf.validFromDate || now > leaf.validToDate) {
    throw new CertificateError(
      `the certificate is valid from ${leaf.validFromDate.toISOString()} to ${leaf.validToDate.toISOString()}, not now`,
    );
  }
  return summarize(leaf);
}

/**
 * Reloads the upstream's client certificate when its files change (a renewed Secret), as the serving pair is reloaded
 * (certificates.ts `watchServingCertificate`): a pair that cannot be used is logged and the current one kept.
 */
export function watchClientCertificate(
  upstream: Pick<Upstream, 'clientPair' | 'swapClientPair'>,
  options: Omit<WatchServingOptions, 'tls' | 'what'>,
): ServingWatch {
  return watchServingCertificate({
    ...options,
    tls: {
      get serving() {
        return upstream.clientPair;
      },
      swapServingPair: (pair) => upstream.swapClientPair(pair),
    },
    what: 'proxy client certificate',
  });
}

// --- the client ----------------------------------------------------------------------------------------------------

/** The upstream client. Throws ConfigError for unusable TLS material (checkProxyMaterial). */
export function createUpstream(options: UpstreamOptions): Upstream {
  checkProxyMaterial(options);
  const { url, timeoutMs, log } = options;
  const resetTimeoutMs = options.resetTimeoutMs ?? 5_000;
  const where = `at ${url.origin}`;
  let clientPair: CertificatePair = { cert: options.clientCert, key: options.clientKey };
  const newAgent = (pair: CertificatePair) =>
    new Agent({
      connect: {
        ...(options.ca === undefined ? {} : { ca: options.ca }),
        cert: pair.cert,
        key: pair.key,
        rejectUnauthorized: true,
      },
      // HTTP/1.1 only. undici speaks HTTP/2 where the server offers it (Go adapters do), and over HTTP/2 it joins a
      // repeated header's values into one (`X-Remote-Group: system:masters, system:authenticated`), which the upstream
      // reads as one group named by the whole string: the caller would lose every group.
      allowH2: false,
      // Keep-alive: the HPA controller asks every sync period; a TLS handshake each time would cost more than the hop.
      keepAliveTimeout: 30_000,
      connections: 16,
    });
  let agent = newAgent(clientPair);
  let down = false;
  const breaker = new BackendBreaker({ resetTimeoutMs, windowMs: 10 * resetTimeoutMs }, (state, lastError) => {
    if (state === 'open' && !down) {
      down = true;
      log(
        'warn',
        `upstream adapter ${url.origin} failed; forwarding to it is paused, one request probes it every ${resetTimeoutMs / 1000} s`,
        {
          error: lastError,
        },
      );
    } else if (state === 'closed' && down) {
      down = false;
      log('info', `upstream adapter ${url.origin} answers again`);
    }
  });

  /** One GET; resolves with any HTTP answer, rejects with UpstreamUnavailableError when there is none. */
  const get = async (path: string, headers: Record<string, string | string[]>, limitMs: number) => {
    const signal = AbortSignal.timeout(limitMs);
    try {
      const response = await agent.request({
        origin: url.origin,
        path,
        method: 'GET',
        headers,
        signal,
        headersTimeout: limitMs,
        bodyTimeout: limitMs,
      });
      const chunks: Buffer[] = [];
      let size = 0;
      let tooLarge = false;
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        size += chunk.byteLength;
        if (size > MAX_UPSTREAM_BODY) {
          tooLarge = true;
          response.body.destroy();
          break;
        }
        chunks.push(chunk);
      }
      const type = response.headers['content-type'];
      return {
        code: response.statusCode,
        contentType: Array.isArray(type) ? type[0] : type,
        body: Buffer.concat(chunks),
        tooLarge,
      } satisfies UpstreamAnswer;
    } catch (err) {
      const timedOut = signal.aborted || errorCodes(err).some((code) => code.includes('TIMEOUT'));
      throw unavailableError(err, timedOut, limitMs);
    }
  };

  /** `get` through the breaker; a failure or an open circuit becomes a 503 reply. */
  const ask = async (
    path: string,
    headers: Record<string, string | string[]>,
    kind: string,
    limitMs: number,
  ): Promise<{ reply: UpstreamReply; answered: boolean }> => {
    try {
      const answer = await breaker.run(() => get(path, headers, limitMs));
      return { reply: replyFor(answer, kind, where), answered: true };
    } catch (err) {
      if (err instanceof UpstreamUnavailableError) {
        // Every failed attempt (the breaker logs when it opens and closes; while open, nothing is attempted).
        log('warn', `a request to upstream adapter ${url.origin} failed`, { error: describeError(err), path });
        return { reply: unavailableReply(where, err), answered: false };
      }
      if (err instanceof BackendError) {
        return { reply: circuitOpenReply(where, breaker.lastError, resetTimeoutMs), answered: false };
      }
      throw err;
    }
  };

  return {
    async metric(request) {
      const headers = upstreamHeaders(request.user, options.headerNames(), request.auditId);
      const { reply, answered } = await ask(metricPath(request), headers, 'ExternalMetricValueList', timeoutMs);
      if (answered && reply.code === 502)
        log('warn', 'upstream adapter gave an unusable answer', { upstream: url.origin });
      log('debug', 'forwarded a metric read to the upstream adapter', {
        namespace: request.namespace,
        metric: request.metric,
        code: reply.code,
      });
      return reply;
    },

    async resources(user, auditId) {
      const headers = upstreamHeaders(user, options.headerNames(), auditId);
      const { reply } = await ask(VERSION_PATH, headers, 'APIResourceList', Math.min(timeoutMs, DISCOVERY_WAIT_MS));
      if (reply.code >= 200 && reply.code < 300) return resourcesOf(reply.body);
      log('debug', "discovery answered without the upstream adapter's resources", {
        upstream: url.origin,
        code: reply.code,
      });
      return [];
    },

    get state() {
      return breaker.state;
    },

    describe: `upstream adapter ${url.origin}`,

    get clientPair() {
      return clientPair;
    },

    swapClientPair(pair) {
      const summary = checkClientPair(pair);
      const old = agent;
      clientPair = pair;
      agent = newAgent(pair);
      // Requests in flight finish on the old connections; then they close.
      old.close().catch(() => undefined);
      return summary;
    },

    async close() {
      breaker.shutdown();
      await agent.close();
    },
  };
}
