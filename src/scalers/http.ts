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
 *   credential. Connection pools are shared per origin and TLS material (`openHttpClient`).
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
 * error, never ignored; redirects are not followed (a redirect is an error naming its target), so credentials never
 * travel to another host; a body over 16 MiB is an error.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { getCACertificates } from 'node:tls';
import { Agent, fetch, type Dispatcher, type Response } from 'undici';
import { BackendError, ScalerError, ValidationError } from '../errors.ts';
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

/** Header names must be HTTP tokens and values must not contain CR, LF or NUL (fetch would throw at sample time). */
export function checkHeaders(headers: Readonly<Record<string, string>>, field: string, secret = false): void {
  for (const [name, value] of Object.entries(headers)) {
    if (!TOKEN.test(name)) throw new ValidationError(field, `"${name}" is not a valid HTTP header name`);
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
export const MAX_BODY_BYTES = 16 * 1024 * 1024;

export interface HttpClientOptions {
  readonly timeoutMs: number;
  readonly unsafeSsl: boolean;
  readonly tls: TlsMaterial;
  /** Sent with every request (custom headers and auth headers). */
  readonly headers: Readonly<Record<string, string>>;
  /** Added to every request URL (auth query parameters). */
  readonly query?: Readonly<Record<string, string>>;
  readonly maxBodyBytes?: number;
}

export interface GetOptions {
  readonly accept: string;
  /**
   * Extracts a short, credential-free explanation from an error response body (e.g. Prometheus' `error` field), for
   * the message of a non-2xx answer.
   */
  readonly errorDetail?: (body: string) => string | undefined;
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

function createAgent(unsafeSsl: boolean, tls: TlsMaterial): Agent {
  const connect: { rejectUnauthorized: boolean; ca?: string[]; cert?: string; key?: string } = {
    rejectUnauthorized: !unsafeSsl,
  };
  // Node's `ca` replaces the trust store: keep the defaults and add the given CA, as Go's AppendCertsFromPEM does.
  if (tls.ca !== undefined) connect.ca = [...getCACertificates('default'), tls.ca];
  if (tls.cert !== undefined) connect.cert = tls.cert;
  if (tls.key !== undefined) connect.key = tls.key;
  return new Agent({ connect });
}

/**
 * A client whose connection pool is leased from `shared` under `agentKey(scope, …)`, so every reader of one origin
 * with the same TLS settings shares one pool. Does not connect until the first request.
 */
export function openHttpClient(shared: SharedResources, scope: string, options: HttpClientOptions): HttpClient {
  const lease = shared.lease(
    agentKey(scope, options.unsafeSsl, options.tls),
    () => createAgent(options.unsafeSsl, options.tls),
    (agent) => agent.close(),
  );
  return clientOver(lease.value, options, () => {
    lease.release();
    return Promise.resolve();
  });
}

/** A client with a connection pool of its own (tests, one-off reads). */
export function createHttpClient(options: HttpClientOptions): HttpClient {
  const agent = createAgent(options.unsafeSsl, options.tls);
  return clientOver(agent, options, () => agent.close());
}

function clientOver(agent: Dispatcher, options: HttpClientOptions, release: () => Promise<void>): HttpClient {
  const maxBody = options.maxBodyBytes ?? MAX_BODY_BYTES;
  let closed: Promise<void> | undefined;

  return {
    async get(url, signal, { accept, errorDetail }) {
      const where = safeUrl(url);
      const target = new URL(url.href);
      for (const [name, value] of Object.entries(options.query ?? {})) target.searchParams.set(name, value);
      const started = performance.now();
      const timeout = AbortSignal.timeout(options.timeoutMs);
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
        throw requestError(where, cause, timeout, signal, options.timeoutMs, started);
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
          const location = response.headers.get('location');
          let to = '';
          if (location !== null) {
            try {
              to = ` to ${safeUrl(new URL(location, url))}`;
            } catch {
              to = '';
            }
          }
          throw new ScalerError(
            `${where} answered HTTP ${status} (a redirect${to}); redirects are not followed: use the final URL`,
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
        throw requestError(where, cause, timeout, signal, options.timeoutMs, started);
      }
      return { status, contentType: response.headers.get('content-type') ?? '', body };
    },
    close() {
      closed ??= release().catch(() => undefined);
      return closed;
    },
  };
}

function requestError(
  where: string,
  cause: unknown,
  timeout: AbortSignal,
  outer: AbortSignal,
  timeoutMs: number,
  started: number,
): BackendError {
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
  return new BackendError(`cannot reach ${where}`, { cause });
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
