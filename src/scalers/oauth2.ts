/**
 * OAuth2 client credentials (RFC 6749 §4.4) for scalers whose backend takes a bearer token (the RabbitMQ management
 * API): a token from `POST <token URI>` with `grant_type=client_credentials`, cached and shared.
 *
 * - **Client authentication**: HTTP Basic first (RFC 6749 §2.3.1: client ID and secret each form-urlencoded, then
 *   `id:secret` in base64); if the endpoint answers 400 or 401, once more with `client_id` / `client_secret` in the
 *   form body. Whichever worked is remembered for the token source's life. This is what Go's
 *   golang.org/x/oauth2/clientcredentials does by default (AuthStyleAutoDetect, which KEDA uses), except that Go
 *   retries after any failure and sluice only after the two statuses that mean "not accepted as sent".
 * - `scope` is the scopes joined by spaces; extra form fields (`endpointParams`) are sent as given.
 * - **Cache**: a token is used until `min(60 s, 10 % of its lifetime)` before `expires_in` runs out (counted from when
 *   the request was sent); without `expires_in`, for 5 minutes. One request at a time: concurrent askers share the
 *   one in flight (single flight); an asker whose signal aborts stops waiting without cancelling it for the others.
 *   A token the backend refuses (401) is dropped once, so the next asker fetches a new one; drops are limited to one
 *   per 10 s, so a backend that refuses every token does not turn each read into a token request.
 * - **Sharing**: one token source per token URI, client credentials, scopes, extra fields and TLS settings, leased
 *   from SharedResources (`oauth2-token|<fingerprint>`), so every reader with the same client shares its token.
 * - **Transport**: the connection pool of the shared HTTP kit (http.ts `agentKey`: one undici Agent per origin and TLS
 *   material, every connection through the address filter, address-filter.ts, whose refusal is an
 *   AddressRefusedError, not a TokenEndpointError), a timeout (TOKEN_TIMEOUT_MS), no redirects, a 64 KiB answer limit. The token URI must be https, except
 *   on a loopback host (127.0.0.0/8, ::1, localhost: tests, sidecars), since the client secret travels with it.
 * - **Errors**: every failure is a TokenEndpointError (a BackendError: the backend cannot be read without a token)
 *   naming the token URI without its query string, with the status and, when the endpoint sent one, the registered
 *   OAuth2 error code (`invalid_client`, …); never the answer's body, the secret or a token.
 */
import { Agent, fetch, type Response } from 'undici';
import { BackendError, ValidationError } from '../errors.ts';
import { fingerprint } from '../fingerprint.ts';
import { abortable } from './abortable.ts';
import { findAddressRefusal } from './address-filter.ts';
import { agentKey, createAgent, parseHttpUrl, safeUrl } from './http.ts';
import type { SharedResources } from './scaler.ts';

export interface OAuth2ClientCredentials {
  /** The token endpoint (https, or http on a loopback host). */
  readonly tokenUrl: URL;
  readonly clientId: string;
  /** Never log it. */
  readonly clientSecret: string;
  readonly scopes: readonly string[];
  /** Extra form fields sent to the token endpoint (e.g. `audience`), in order. */
  readonly endpointParams: readonly (readonly [string, string])[];
}

/** TLS settings for the token endpoint: an extra trusted CA (added to the system's), and skipping verification. */
export interface TokenEndpointTls {
  readonly unsafeSsl: boolean;
  readonly ca?: string | undefined;
}

/** Bounds one token request. */
export const TOKEN_TIMEOUT_MS = 10_000;
/** How long a token without `expires_in` is used. */
export const DEFAULT_TOKEN_TTL_MS = 5 * 60_000;
/** A token is renewed this long before it expires, at most (and at most 10 % of its lifetime). */
export const MAX_EARLY_REFRESH_MS = 60_000;
/** At most one "the backend refused this token" drop per this interval. */
export const MIN_DROP_INTERVAL_MS = 10_000;
const MAX_TOKEN_ANSWER_BYTES = 64 * 1024;
/** The error codes of RFC 6749 §5.2 (quoted in messages; anything else the endpoint sends is not). */
const OAUTH_ERRORS = new Set([
  'invalid_request',
  'invalid_client',
  'invalid_grant',
  'unauthorized_client',
  'unsupported_grant_type',
  'invalid_scope',
]);
/** Form fields sluice sets itself: `endpointParams` may not set them. */
const RESERVED_FIELDS = new Set(['grant_type', 'scope', 'client_id', 'client_secret']);

/** A failure to get a token. Its message names the token URI without query string, and no secret. */
export class TokenEndpointError extends BackendError {}

// ---------------------------------------------------------------------------------------------------------------
// Parsing (build time: ValidationError naming the field, never quoting a secret)

/** The token URI: http(s) without credentials or fragment; https unless the host is loopback. */
export function parseTokenUrl(raw: string, field: string): URL {
  const url = parseHttpUrl(raw, field);
  if (url.protocol === 'http:' && !isLoopback(url.hostname)) {
    throw new ValidationError(
      field,
      `the OAuth2 token endpoint must be https (the client secret is sent to it); plain http is only accepted on a loopback host, not ${url.hostname}`,
    );
  }
  return url;
}

function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** A scope token (RFC 6749 §3.3): printable ASCII but space, `"` and `\`. */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

/** `a,b , c` → [a, b, c]: a comma list, each trimmed, empty entries ignored; each must be a scope token. */
export function parseScopes(raw: string, field: string): string[] {
  const scopes = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const scope of scopes) {
    if (!SCOPE_TOKEN.test(scope)) {
      throw new ValidationError(
        field,
        `scope "${scope}" contains a space, a quote or a backslash (scopes are a comma-separated list)`,
      );
    }
  }
  return scopes;
}

/**
 * `k1=v1&k2=v2`, URL-encoded (a leading `?` is allowed), as extra form fields. An empty key, a field sluice sets
 * itself, or text that is not valid percent-encoding is an error; values are never quoted (they may be secret).
 */
export function parseEndpointParams(raw: string, field: string): [string, string][] {
  const text = raw.startsWith('?') ? raw.slice(1) : raw;
  const out: [string, string][] = [];
  for (const [i, pair] of text.split('&').entries()) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    let key: string;
    let value: string;
    try {
      key = decodeURIComponent((eq < 0 ? pair : pair.slice(0, eq)).replaceAll('+', ' '));
      value = eq < 0 ? '' : decodeURIComponent(pair.slice(eq + 1).replaceAll('+', ' '));
    } catch {
      throw new ValidationError(field, `pair ${i + 1} is not valid percent-encoding (expected k1=v1&k2=v2)`);
    }
    if (key === '') throw new ValidationError(field, `pair ${i + 1} has no key (expected k1=v1&k2=v2)`);
    if (RESERVED_FIELDS.has(key)) {
      throw new ValidationError(field, `"${key}" is set by sluice and cannot be given in endpointParams`);
    }
    out.push([key, value]);
  }
  return out;
}

/** What two configurations must share to share a token source (a fingerprint: never the secret itself). */
export function tokenSourceKey(credentials: OAuth2ClientCredentials, tls: TokenEndpointTls): string {
  return `oauth2-token|${fingerprint(
    credentials.tokenUrl.href,
    credentials.clientId,
    credentials.clientSecret,
    credentials.scopes,
    credentials.endpointParams,
    tls.unsafeSsl,
    tls.ca ?? '',
  )}`;
}

// ---------------------------------------------------------------------------------------------------------------
// The token source

export interface TokenReply {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}
/** One POST of a form; throws (a TokenEndpointError) only when there is no answer at all. */
export type TokenPost = (
  url: URL,
  headers: Readonly<Record<string, string>>,
  body: string,
  signal: AbortSignal,
) => Promise<TokenReply>;

export interface TokenSourceOptions {
  readonly credentials: OAuth2ClientCredentials;
  readonly post: TokenPost;
  readonly now?: () => number;
}

type AuthStyle = 'header' | 'params';

interface CachedToken {
  readonly token: string;
  /** When the token is renewed (ms since the epoch). */
  readonly refreshAt: number;
}

export class TokenSource {
  readonly #credentials: OAuth2ClientCredentials;
  readonly #post: TokenPost;
  readonly #now: () => number;
  readonly #where: string;
  #style: AuthStyle | undefined;
  #cached: CachedToken | undefined;
  #pending: Promise<CachedToken> | undefined;
  #lastDrop = Number.NEGATIVE_INFINITY;
  /** Token requests sent (tests). */
  requests = 0;

  constructor(options: TokenSourceOptions) {
    this.#credentials = options.credentials;
    this.#post = options.post;
    this.#now = options.now ?? Date.now;
    this.#where = `the OAuth2 token endpoint ${safeUrl(options.credentials.tokenUrl)}`;
  }

  /** The client authentication that worked (tests). */
  get authStyle(): AuthStyle | undefined {
    return this.#style;
  }

  /** A valid access token: the cached one, or one fetched for every concurrent asker. `signal` bounds this wait. */
  token(signal: AbortSignal): Promise<string> {
    const cached = this.#cached;
    if (cached !== undefined && this.#now() < cached.refreshAt) return Promise.resolve(cached.token);
    if (this.#pending === undefined) {
      const pending = this.#fetch().finally(() => {
        this.#pending = undefined;
      });
      // Every asker may have given up: the outcome is then only cached (or dropped), never unhandled.
      pending.catch(() => undefined);
      this.#pending = pending;
    }
    return abortable(
      this.#pending.then((t) => t.token),
      signal,
      () => {
        const reason: unknown = signal.reason;
        const timedOut = !(reason instanceof Error) || reason.name === 'TimeoutError';
        return new TokenEndpointError(
          `waiting for a token from ${this.#where} ${timedOut ? 'timed out' : 'was cancelled'}`,
          { cause: reason },
        );
      },
    );
  }

  /**
   * The backend refused `token` (401): drop it, so that the next asker fetches a new one. Returns whether it was
   * dropped (false: another token is cached already, or a token was dropped less than MIN_DROP_INTERVAL_MS ago).
   */
  invalidate(token: string): boolean {
    const cached = this.#cached;
    // Another token is cached or on its way already: the asker may retry with it.
    if (cached?.token !== token) return cached !== undefined || this.#pending !== undefined;
    if (this.#now() - this.#lastDrop < MIN_DROP_INTERVAL_MS) return false;
    this.#lastDrop = this.#now();
    this.#cached = undefined;
    return true;
  }

  async #fetch(): Promise<CachedToken> {
    const started = this.#now();
    const styles: AuthStyle[] = this.#style === undefined ? ['header', 'params'] : [this.#style];
    let reply: TokenReply | undefined;
    for (const style of styles) {
      this.requests++;
      const { headers, body } = this.#request(style);
      reply = await this.#post(this.#credentials.tokenUrl, headers, body, AbortSignal.timeout(TOKEN_TIMEOUT_MS));
      if (reply.status === 200) {
        const cached = this.#decode(reply, started);
        this.#style = style;
        this.#cached = cached;
        return cached;
      }
      if (reply.status !== 400 && reply.status !== 401) break;
    }
    const status = reply?.status ?? 0;
    const code = oauthErrorCode(reply);
    const redirect = status >= 300 && status < 400 ? ' (a redirect; redirects are not followed)' : '';
    throw new TokenEndpointError(
      `${this.#where} answered ${status}${code === undefined ? '' : ` (${code})`}${redirect}`,
    );
  }

  #request(style: AuthStyle): { headers: Record<string, string>; body: string } {
    const { clientId, clientSecret, scopes, endpointParams } = this.#credentials;
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    if (scopes.length > 0) form.set('scope', scopes.join(' '));
    for (const [k, v] of endpointParams) form.append(k, v);
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    };
    if (style === 'header') {
      const basic = `${formEncode(clientId)}:${formEncode(clientSecret)}`;
      headers['authorization'] = `Basic ${Buffer.from(basic).toString('base64')}`;
    } else {
      form.set('client_id', clientId);
      form.set('client_secret', clientSecret);
    }
    return { headers, body: form.toString() };
  }

  #decode(reply: TokenReply, started: number): CachedToken {
    const fields = tokenFields(reply);
    const token = fields?.['access_token'];
    if (typeof token !== 'string' || !/^[\x21-\x7E]+$/.test(token)) {
      throw new TokenEndpointError(`${this.#where} answered 200 without a usable access_token`);
    }
    const type = fields?.['token_type'];
    if (type !== undefined && (typeof type !== 'string' || type.toLowerCase() !== 'bearer')) {
      // The type is not quoted: it is the endpoint's text (RFC 6749 §7.1 types are named by sluice only).
      throw new TokenEndpointError(`${this.#where} issued a token whose token_type is not "Bearer"`);
    }
    // A number of seconds (some endpoints send it as a string); anything else counts as absent.
    const raw = fields?.['expires_in'];
    const expiresIn = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : 0;
    const lifetimeMs = Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn * 1000 : undefined;
    const refreshAt =
      lifetimeMs === undefined
        ? started + DEFAULT_TOKEN_TTL_MS
        : started + lifetimeMs - Math.min(MAX_EARLY_REFRESH_MS, lifetimeMs / 10);
    return { token, refreshAt };
  }
}

/** application/x-www-form-urlencoded, as RFC 6749 §2.3.1 asks for the client ID and secret in the Basic header. */
function formEncode(text: string): string {
  return new URLSearchParams({ v: text }).toString().slice(2);
}

/** The fields of a token answer: JSON, or a form (some endpoints answer `application/x-www-form-urlencoded`). */
function tokenFields(reply: TokenReply): Record<string, unknown> | undefined {
  const type = reply.contentType.toLowerCase();
  if (type.includes('application/x-www-form-urlencoded') || type.includes('text/plain')) {
    return Object.fromEntries(new URLSearchParams(reply.body));
  }
  try {
    const parsed = JSON.parse(reply.body) as unknown;
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** The RFC 6749 error code of an error answer, when it is one of the registered ones. */
function oauthErrorCode(reply: TokenReply | undefined): string | undefined {
  if (reply === undefined) return undefined;
  const code = tokenFields(reply)?.['error'];
  return typeof code === 'string' && OAUTH_ERRORS.has(code) ? code : undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Transport and sharing

export interface TokenSourceLease {
  readonly source: TokenSource;
  /** Releases the lease (idempotent). */
  release(): void;
}

/**
 * The token source for `credentials`, leased from `shared` (every reader with the same client shares one), over a
 * connection pool leased under http.ts's agentKey for the token endpoint's origin and TLS settings.
 */
export function openTokenSource(
  shared: SharedResources,
  credentials: OAuth2ClientCredentials,
  tls: TokenEndpointTls,
): TokenSourceLease {
  const lease = shared.lease(
    tokenSourceKey(credentials, tls),
    () => {
      const agent = shared.lease(
        agentKey(credentials.tokenUrl.origin, tls.unsafeSsl, tls.ca === undefined ? {} : { ca: tls.ca }),
        () => createAgent(tls.unsafeSsl, tls.ca === undefined ? {} : { ca: tls.ca }),
        (a) => a.close(),
      );
      const where = `the OAuth2 token endpoint ${safeUrl(credentials.tokenUrl)}`;
      return { source: new TokenSource({ credentials, post: postOver(agent.value, where) }), agent };
    },
    (value) => {
      value.agent.release();
    },
  );
  return {
    source: lease.value.source,
    release: () => {
      lease.release();
    },
  };
}

function postOver(agent: Agent, where: string): TokenPost {
  return async (url, headers, body, signal) => {
    let response: Response;
    try {
      response = await fetch(url, { method: 'POST', headers, body, redirect: 'manual', signal, dispatcher: agent });
    } catch (cause) {
      // sluice refused the endpoint's address (address-filter.ts): not the endpoint failing, so not a BackendError.
      const refused = findAddressRefusal(cause);
      if (refused !== undefined) throw refused.at(where);
      if (signal.aborted) {
        throw new TokenEndpointError(`${where} did not answer within ${TOKEN_TIMEOUT_MS} ms (timeout)`, { cause });
      }
      throw new TokenEndpointError(`cannot reach ${where}`, { cause });
    }
    let text: string;
    try {
      text = await readLimited(response, MAX_TOKEN_ANSWER_BYTES);
    } catch (cause) {
      if (cause instanceof TokenEndpointError) throw cause;
      throw new TokenEndpointError(`${where} broke off its answer`, { cause });
    }
    return { status: response.status, contentType: response.headers.get('content-type') ?? '', body: text };
  };
}

async function readLimited(response: Response, max: number): Promise<string> {
  if (response.body === null) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    // Leaving the loop cancels the stream.
    if (size > max) throw new TokenEndpointError(`the OAuth2 token endpoint sent an answer over ${max} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
