/**
 * Shared HTTP plumbing for the HTTP-based scalers (prometheus, metrics-api): KEDA's authentication parameters
 * (`authModes` / `authMode`, values from the TriggerAuthentication), custom headers, TLS material, and one GET with a
 * timeout whose every failure is a ScalerError.
 *
 * - Build time (`parseHttpAuth`, `parseHttpUrl`, `checkHeaders`, `createHttpClient`): validation only, no network.
 *   PEM material that does not parse (or a client certificate that does not match its key) is a ValidationError.
 * - Read time (`HttpClient.get`): connection errors, timeouts, 5xx, 429 and 401/403 ("authentication failed") throw
 *   BackendError (they count against the backend's circuit breaker); redirects, other statuses outside 2xx and
 *   oversized bodies throw ScalerError. Messages name the URL without userinfo or query string and never contain a
 *   credential, nor anything the server chose: no body, no header value, no redirect target (they reach the
 *   ScaledObject's status, docs/security.md#read-back-and-reach). Connection pools are shared per origin and TLS
 *   material (`openHttpClient`); every connection goes through the address filter (address-filter.ts), whose refusal
 *   is a ScalerError, not counted by the circuit breaker.
 *
 * Authentication (KEDA's `pkg/scalers/authentication`): `authModes` (or `authMode`) from trigger metadata, else from
 * the TriggerAuthentication; a comma list of `apiKey`, `basic`, `bearer`, `custom`, `tls` (each scaler says which it
 * applies); at most one of `basic` / `bearer`. Values come from the TriggerAuthentication only:
 * - `bearer`: `bearerToken` (or `token`) → `Authorization: Bearer <token>`;
 * - `basic`: `username` (required), `password` (optional) → `Authorization: Basic …`;
 * - `apiKey`: `apiKey`; `method` `header` (default) or `query` and `keyParamName` (default header `X-API-KEY`, query
 *   key `api_key`) from trigger metadata or the TriggerAuthentication;
 * - `custom`: `customAuthHeader` + `customAuthValue` → that header;
 * - `tls`: `cert` + `key` (client certificate, PEM); `ca` (PEM) is used whenever given, with or without `tls`, and
 *   is added to the default trust store (as KEDA appends it to the system pool).
 * `unsafeSsl: "true"` disables server certificate verification.
 *
 * Deliberate differences from KEDA: secrets written in trigger metadata (`apiKey`, `bearerToken`, `password`, …) and
 * credentials in the URL are validation errors, not used; an unknown or unsupported auth mode (e.g. `oauth`) is an
 * error, never ignored; redirects are not followed (a redirect is an error saying whether it points to another host,
 * never quoting it), so credentials never travel to another host; a body over the scaler's limit (1–8 MiB) is an error; `customHeaders` and
 * auth header names may not set the headers metadata endpoints require, hop-by-hop headers or `Host`.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { getCACertificates } from 'node:tls';
import { Agent, buildConnector, fetch, type Dispatcher, type Response } from 'undici';
import { BackendError, ScalerError, ValidationError } from '../errors.ts';
import { findAddressRefusal, outboundGuard, type OutboundGuard } from './address-filter.ts';
import { fingerprint } from '../fingerprint.ts';
import type { SharedResources, TriggerInput } from './scaler.ts';

export type AuthMode = 'apiKey' | 'basic' | 'bearer' | 'custom' | 'tls';
const AUTH_MODES: readonly AuthMode[] = ['apiKey', 'basic', 'bearer', 'custom', 'tls'];

export interface TlsMaterial {
  /** Extra trusted CA certificates (PEM). */
  readonly ca?: string;
  /** Client certificate (PEM). */
  readonly cert?: string;
  /** Client private key (PEM). */
  readonly key?: string;
}

export interface HttpAuth {
  readonly modes: readonly AuthMode[];
  /** Headers the auth modes add. Secret values: never log them. */
  readonly headers: Readonly<Record<string, string>>;
  /** Query parameters the auth modes add (`apiKey` with `method: query`). Secret values. */
  readonly query: Readonly<Record<string, string>>;
  readonly tls: TlsMaterial;
}

export interface AuthOptions {
  /** The scaler's trigger type, for messages. */
  readonly scaler: string;
  /** The modes this scaler applies; any other is a ValidationError. */
  readonly supported: readonly AuthMode[];
  /** KEDA's metrics-api requires `ca` with `tls`; its prometheus scaler does not. */
  readonly tlsRequiresCa?: boolean;
}

/** Parameters that hold secrets: only ever read from the TriggerAuthentication. */
const SECRET_PARAMS = ['apiKey', 'bearerToken', 'token', 'password', 'customAuthValue', 'key'] as const;

/** Parses KEDA's authentication parameters of a trigger. Throws ValidationError; never touches the network. */
export function parseHttpAuth(trigger: TriggerInput, options: AuthOptions): HttpAuth {
  const path = `spec.triggers[${trigger.index}].metadata`;
  const authRef = `spec.triggers[${trigger.index}].authenticationRef`;
  for (const name of SECRET_PARAMS) {
    if (trigger.metadata[name]?.trim()) {
      throw new ValidationError(
        `${path}.${name}`,
        'a secret must not be written in trigger metadata: put it in a TriggerAuthentication',
      );
    }
  }
  const fromAuth = (name: string): string | undefined => trigger.authParams[name]?.trim() || undefined;
  const fromEither = (name: string): string | undefined => trigger.metadata[name]?.trim() || fromAuth(name);

  // authModes / authMode: trigger metadata first, then the TriggerAuthentication.
  let modesField = `${path}.authModes`;
  let modesText: string | undefined;
  for (const [source, where] of [
    [trigger.metadata, path],
    [trigger.authParams, authRef],
  ] as const) {
    for (const name of ['authModes', 'authMode']) {
      const value = source[name]?.trim();
      if (modesText === undefined && value) {
        modesText = value;
        modesField = where === path ? `${path}.${name}` : authRef;
      }
    }
  }
  const modes: AuthMode[] = [];
  for (const raw of modesText === undefined ? [] : modesText.split(',')) {
    const mode = raw.trim();
    if (mode === 'oauth') {
      throw new ValidationError(modesField, 'auth mode "oauth" is not supported by sluice yet');
    }
    if (!(AUTH_MODES as readonly string[]).includes(mode)) {
      throw new ValidationError(
        modesField,
        `"${mode}" is not an auth mode (use a comma list of ${options.supported.join(', ')})`,
      );
    }
    const known = mode as AuthMode;
    if (!options.supported.includes(known)) {
      throw new ValidationError(
        modesField,
        `auth mode "${known}" is not supported by the ${options.scaler} scaler (supported: ${options.supported.join(', ')})`,
      );
    }
    if (!modes.includes(known)) modes.push(known);
  }
  if (modes.includes('basic') && modes.includes('bearer')) {
    throw new ValidationError(modesField, 'auth modes "basic" and "bearer" cannot be used together');
  }

  const headers: Record<string, string> = {};
  const query: Record<string, string> = {};
  const missing = (mode: AuthMode, what: string): never => {
    throw new ValidationError(authRef, `auth mode "${mode}" needs ${what} in the TriggerAuthentication`);
  };

  if (modes.includes('bearer')) {
    const token = fromAuth('bearerToken') ?? fromAuth('token') ?? missing('bearer', 'bearerToken (or token)');
    headers['authorization'] = `Bearer ${token}`;
  }
  if (modes.includes('basic')) {
    const username = fromAuth('username') ?? missing('basic', 'username');
    if (username.includes(':')) throw new ValidationError(authRef, 'the basic-auth username must not contain ":"');
    const password = fromAuth('password') ?? '';
    headers['authorization'] = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  }
  if (modes.includes('apiKey')) {
    const apiKey = fromAuth('apiKey') ?? missing('apiKey', 'apiKey');
    const method = fromEither('method') ?? 'header';
    if (method !== 'header' && method !== 'query') {
      throw new ValidationError(
        trigger.metadata['method']?.trim() ? `${path}.method` : authRef,
        `method "${method}" must be header or query`,
      );
    }
    const name = fromEither('keyParamName') ?? (method === 'header' ? 'X-API-KEY' : 'api_key');
    if (method === 'header') headers[name] = apiKey;
    else query[name] = apiKey;
  }
  if (modes.includes('custom')) {
    const header = fromAuth('customAuthHeader') ?? missing('custom', 'customAuthHeader and customAuthValue');
    const value = fromAuth('customAuthValue') ?? missing('custom', 'customAuthHeader and customAuthValue');
    headers[header] = value;
  }
  checkHeaders(headers, authRef, true);

  let tls: TlsMaterial = {};
  const ca = fromAuth('ca');
  if (ca !== undefined) {
    checkCertificates(ca, authRef, 'ca');
    tls = { ca };
  }
  if (modes.includes('tls')) {
    const cert = fromAuth('cert');
    const key = fromAuth('key');
    if (cert === undefined || key === undefined || (options.tlsRequiresCa === true && ca === undefined)) {
      missing('tls', options.tlsRequiresCa === true ? 'ca, cert and key' : 'cert and key (and optionally ca)');
    } else {
      const leaf = checkCertificates(cert, authRef, 'cert');
      const privateKey = checkPrivateKey(key, authRef);
      if (!leaf.checkPrivateKey(privateKey)) {
        throw new ValidationError(authRef, 'the client certificate (cert) does not match its private key (key)');
      }
      tls = { ...tls, cert, key };
    }
  }
  return { modes, headers, query, tls };
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** Every PEM certificate in `pem` parses; returns the first. Messages never quote the material. */
function checkCertificates(pem: string, field: string, name: string): X509Certificate {
  const blocks = pem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) {
    throw new ValidationError(field, `${name} is not a PEM certificate (no "-----BEGIN CERTIFICATE-----" block)`);
  }
  const parsed: X509Certificate[] = [];
  for (const [i, block] of blocks.entries()) {
    try {
      parsed.push(new X509Certificate(block));
    } catch (cause) {
      throw new ValidationError(field, `${name}: PEM certificate ${i + 1} cannot be parsed`, { cause });
    }
  }
  return parsed[0] as X509Certificate;
}

function checkPrivateKey(pem: string, field: string): KeyObject {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new ValidationError(field, 'key is not a PEM private key (no "-----BEGIN … PRIVATE KEY-----" block)');
  }
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    // The cause's message could quote the material: leave it out.
    throw new ValidationError(field, 'key: the PEM private key cannot be parsed (an encrypted key is not supported)');
  }
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Headers a trigger may not set (lower case → why), whether through `customHeaders` or an auth mode's header name
 * (`keyParamName`, `customAuthHeader`):
 * - the headers cloud metadata and managed-identity endpoints require, so that a request cannot pass as one of their
 *   clients (defence in depth behind the address filter, address-filter.ts, and the only defence for such endpoints
 *   on loopback): Google Cloud's `Metadata-Flavor: Google` and legacy `X-Google-Metadata-Request` ("About VM
 *   metadata"), Azure's `Metadata: true` (Instance Metadata Service, Azure Arc) and `X-IDENTITY-HEADER` (App Service
 *   managed identity), AWS IMDSv2's `X-aws-ec2-metadata-token` (and its `-ttl-seconds`), Alibaba Cloud's hardened
 *   mode `X-aliyun-ecs-metadata-token` (and its `-ttl-seconds`);
 * - hop-by-hop and framing headers (RFC 9110 §7.6.1 and §8.6, RFC 9112 §6.1), which the HTTP client owns, and `Host`,
 *   which would send the request to another virtual host than the URL names.
 */
const FORBIDDEN_HEADERS: ReadonlyMap<string, string> = new Map([
  ...[
    'metadata-flavor',
    'x-google-metadata-request',
    'metadata',
    'x-identity-header',
    'x-aws-ec2-metadata-token',
    'x-aws-ec2-metadata-token-ttl-seconds',
    'x-aliyun-ecs-metadata-token',
    'x-aliyun-ecs-metadata-token-ttl-seconds',
  ].map((name) => [name, 'cloud metadata and identity endpoints require it, and sluice never sends it'] as const),
  ...['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'].map(
    (name) => [name, 'it is a hop-by-hop header, which the HTTP client sets'] as const,
  ),
  ['content-length', 'the HTTP client sets it'],
  ['host', "the host is the URL's: put it there"],
  ['proxy-authorization', 'sluice does not use a proxy'],
]);

/**
 * Header names must be HTTP tokens and not one of FORBIDDEN_HEADERS; values must not contain CR, LF or NUL (fetch
 * would throw at sample time).
 */
export function checkHeaders(headers: Readonly<Record<string, string>>, field: string, secret = false): void {
  for (const [name, value] of Object.entries(headers)) {
    if (!TOKEN.test(name)) throw new ValidationError(field, `"${name}" is not a valid HTTP header name`);
    const forbidden = FORBIDDEN_HEADERS.get(name.toLowerCase());
    if (forbidden !== undefined) {
      throw new ValidationError(field, `header "${name}" may not be set: ${forbidden}`);
    }
    if (/[\r\n\0]/.test(value)) {
      throw new ValidationError(
        field,
        secret ? `the value of header "${name}" contains a line break` : `header "${name}" contains a line break`,
      );
    }
  }
}

/** Merges header sets, refusing a header (case-insensitive) that two of them set. */
export function mergeHeaders(
  field: string,
  ...sets: readonly { readonly headers: Readonly<Record<string, string>>; readonly from: string }[]
): Record<string, string> {
  const out: Record<string, string> = {};
  const seen = new Map<string, string>();
  for (const { headers, from } of sets) {
    for (const [name, value] of Object.entries(headers)) {
      const lower = name.toLowerCase();
      const earlier = seen.get(lower);
      if (earlier !== undefined) {
        throw new ValidationError(field, `header "${name}" is set by both ${earlier} and ${from}`);
      }
      seen.set(lower, from);
      out[name] = value;
    }
  }
  return out;
}

/** An http(s) URL without credentials or fragment. Throws ValidationError naming `field`. */
export function parseHttpUrl(raw: string, field: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch (cause) {
    throw new ValidationError(field, 'is not a valid URL (expected http://… or https://…)', { cause });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ValidationError(field, `must be an http or https URL, not ${url.protocol.replace(/:$/, '')}`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new ValidationError(
      field,
      'must not contain credentials: put them in a TriggerAuthentication (authModes: basic)',
    );
  }
  if (url.hash !== '') throw new ValidationError(field, 'must not contain a #fragment');
  return url;
}

/** The URL for messages: scheme, host and path; never userinfo or the query string (which may hold an API key). */
export function safeUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

export const DEFAULT_HTTP_TIMEOUT_MS = 3000;

export interface HttpClientOptions {
  readonly timeoutMs: number;
  readonly unsafeSsl: boolean;
  readonly tls: TlsMaterial;
  /** Sent with every request (custom headers and auth headers). */
  readonly headers: Readonly<Record<string, string>>;
  /** Added to every request URL (auth query parameters). */
  readonly query?: Readonly<Record<string, string>>;
  /**
   * The largest body read (more is an error): each scaler sizes it to what it reads, so that its concurrent reads
   * (at most the hub's read budget) fit in the process's memory.
   */
  readonly maxBodyBytes: number;
  /** Where connections may go (default: the process-wide guard, address-filter.ts). Tests inject their own. */
  readonly guard?: OutboundGuard;
}

export interface GetOptions {
  readonly accept: string;
  /**
   * A short explanation of a non-2xx answer from its body, for the message. It must never return text of the body
   * itself (the message reaches the ScaledObject's status, which anyone who can read the object reads): only words of
   * its own, or values of a closed set it recognizes (e.g. Prometheus' `errorType`).
   */
  readonly errorDetail?: (body: string) => string | undefined;
  /** This request's time limit instead of the client's (a list whose size grows with the backend's). */
  readonly timeoutMs?: number | undefined;
}

export interface HttpReply {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

export interface HttpClient {
  /**
   * One GET. Throws BackendError when the server cannot be reached, times out, answers 5xx or 429, or refuses the
   * credentials (401/403); ScalerError for other answers outside 2xx, redirects and oversized bodies.
   */
  get(url: URL, signal: AbortSignal, options: GetOptions): Promise<HttpReply>;
  /** Releases the connection pool (the shared agent's lease). Idempotent. */
  close(): Promise<void>;
}

/**
 * The shared-resource key of the connection pool for `scope` (an origin, or a name for clients that reach many
 * origins) and TLS settings: one undici Agent per origin and TLS material. Never contains the material itself.
 */
export function agentKey(scope: string, unsafeSsl: boolean, tls: TlsMaterial): string {
  return `agent|${scope}|${fingerprint(unsafeSsl, tls.ca ?? '', tls.cert ?? '', tls.key ?? '')}`;
}

/**
 * An undici Agent for these TLS settings (what agentKey names) whose every connection goes through `guard`
 * (address-filter.ts): a host name through its `lookup`, which checks every address it resolves to, and an IP address
 * checked before any socket is made.
 */
export function createAgent(unsafeSsl: boolean, tls: TlsMaterial, guard: OutboundGuard = outboundGuard()): Agent {
  const options: { rejectUnauthorized: boolean; ca?: string[]; cert?: string; key?: string } = {
    rejectUnauthorized: !unsafeSsl,
  };
  // Node's `ca` replaces the trust store: keep the defaults and add the given CA, as Go's AppendCertsFromPEM does.
  if (tls.ca !== undefined) options.ca = [...getCACertificates('default'), tls.ca];
  if (tls.cert !== undefined) options.cert = tls.cert;
  if (tls.key !== undefined) options.key = tls.key;
  const connector = buildConnector({ ...options, lookup: guard.lookup });
  const connect: buildConnector.connector = (target, callback) => {
    try {
      guard.checkHost(target.hostname);
    } catch (err) {
      callback(err as Error, null);
      return;
    }
    connector(target, callback);
  };
  return new Agent({ connect });
}

/**
 * A client whose connection pool is leased from `shared` under `agentKey(scope, …)`, so every reader of one origin
 * with the same TLS settings shares one pool. Does not connect until the first request.
 */
export function openHttpClient(shared: SharedResources, scope: string, options: HttpClientOptions): HttpClient {
  const lease = shared.lease(
    agentKey(scope, options.unsafeSsl, options.tls),
    () => createAgent(options.unsafeSsl, options.tls, options.guard),
    (agent) => agent.close(),
  );
  return clientOver(lease.value, options, () => {
    lease.release();
    return Promise.resolve();
  });
}

/** A client with a connection pool of its own (tests, one-off reads). */
export function createHttpClient(options: HttpClientOptions): HttpClient {
  const agent = createAgent(options.unsafeSsl, options.tls, options.guard);
  return clientOver(agent, options, () => agent.close());
}

function clientOver(agent: Dispatcher, options: HttpClientOptions, release: () => Promise<void>): HttpClient {
  const maxBody = options.maxBodyBytes;
  let closed: Promise<void> | undefined;

  return {
    async get(url, signal, { accept, errorDetail, timeoutMs = options.timeoutMs }) {
      const where = safeUrl(url);
      const target = new URL(url.href);
      for (const [name, value] of Object.entries(options.query ?? {})) target.searchParams.set(name, value);
      const started = performance.now();
      const timeout = AbortSignal.timeout(timeoutMs);
      const combined = AbortSignal.any([signal, timeout]);
      let response: Response;
      try {
        response = await fetch(target, {
          headers: { ...options.headers, accept },
          redirect: 'manual',
          signal: combined,
          dispatcher: agent,
        });
      } catch (cause) {
        throw requestError(where, cause, timeout, signal, timeoutMs, started);
      }
      const status = response.status;
      if (status < 200 || status > 299) {
        let body = '';
        try {
          body = await readBody(response, Math.min(maxBody, 64 * 1024), where, true);
        } catch {
          // The status is the error; an unreadable error body adds nothing.
        }
        if (status === 401 || status === 403) {
          throw new BackendError(`authentication failed: ${where} answered HTTP ${status}`);
        }
        if (status >= 300 && status < 400) {
          throw new ScalerError(
            `${where} answered HTTP ${status} (a redirect${redirectTarget(response.headers.get('location'), url)}); ` +
              'redirects are not followed: use the final URL',
          );
        }
        const detail = body === '' ? undefined : errorDetail?.(body);
        const message = `${where} answered HTTP ${status}${detail === undefined ? '' : `: ${detail}`}`;
        throw status >= 500 || status === 429 ? new BackendError(message) : new ScalerError(message);
      }
      let body: string;
      try {
        body = await readBody(response, maxBody, where, false);
      } catch (cause) {
        if (cause instanceof ScalerError) throw cause;
        throw requestError(where, cause, timeout, signal, timeoutMs, started);
      }
      return { status, contentType: response.headers.get('content-type') ?? '', body };
    },
    close() {
      closed ??= release().catch(() => undefined);
      return closed;
    },
  };
}

/**
 * Where a redirect points, in words of sluice's own: the Location is chosen by the server (it may carry what the
 * server knows: a token in a path, a name), so it is never quoted, only compared with the URL asked for.
 */
function redirectTarget(location: string | null, from: URL): string {
  if (location === null) return '';
  const to = URL.parse(location, from);
  if (to === null) return ' to an invalid URL';
  if (to.host !== from.host)
    return ` to ${to.protocol === 'https:' || to.protocol === 'http:' ? to.protocol.slice(0, -1) : 'a URL'} on another host`;
  if (to.protocol !== from.protocol) return ` to ${to.protocol.slice(0, -1)} on the same host`;
  return ' to another path on the same host';
}

/**
 * The error for a request that got no answer: a refused address (address-filter.ts) is a ScalerError, which no
 * circuit breaker counts; anything else is the backend failing (BackendError).
 */
function requestError(
  where: string,
  cause: unknown,
  timeout: AbortSignal,
  outer: AbortSignal,
  timeoutMs: number,
  started: number,
): ScalerError {
  const refused = findAddressRefusal(cause);
  if (refused !== undefined) return refused.at(where);
  if (timeout.aborted && !outer.aborted) {
    return new BackendError(`${where} did not answer within ${timeoutMs} ms (timeout)`, { cause });
  }
  // The caller's signal is usually the read's own time limit (the hub's, a standalone reader's), as long as ours and
  // started a moment earlier, so it runs out first: that is this request's timeout too, not a cancellation.
  if (outer.aborted && (outer.reason as { name?: unknown } | undefined)?.name === 'TimeoutError') {
    const waited = performance.now() - started;
    const ms = waited >= 0.9 * timeoutMs ? timeoutMs : Math.round(waited);
    return new BackendError(`${where} did not answer within ${ms} ms (timeout)`, { cause });
  }
  if (outer.aborted) return new BackendError(`the request to ${where} was aborted`, { cause: outer.reason });
  return new BackendError(`cannot reach ${where}`, { cause: connectionCause(cause) });
}

/**
 * The cause of a failed connection, for messages: as Node and undici word it, except a certificate that does not name
 * the host, whose message lists the names the certificate holds (the server's, not sluice's).
 */
function connectionCause(cause: unknown): unknown {
  for (let current = cause, depth = 0; current instanceof Error && depth < 8; current = current.cause, depth++) {
    if ((current as { code?: unknown }).code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
      return Object.assign(
        new Error("the server's certificate does not name the host (ERR_TLS_CERT_ALTNAME_INVALID)"),
        {
          code: 'ERR_TLS_CERT_ALTNAME_INVALID',
        },
      );
    }
  }
  return cause;
}

/** Reads the body as UTF-8 text, at most `max` bytes (more is an error unless `truncate`). */
async function readBody(response: Response, max: number, where: string, truncate: boolean): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? Number.NaN);
  if (!truncate && declared > max) {
    await response.body?.cancel();
    throw new ScalerError(`${where} sent a body of ${declared} bytes (the limit is ${max})`);
  }
  if (response.body === null) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > max) {
      if (truncate) {
        chunks.push(chunk.subarray(0, chunk.byteLength - (size - max)));
        break;
      }
      throw new ScalerError(`${where} sent a body over ${max} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
