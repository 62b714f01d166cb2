/**
 * Front-proxy ("requestheader") authentication of kube-apiserver's aggregator
 * (docs/kubernetes-interfaces.md#front-proxy-authentication).
 *
 * The aggregator proxies requests over TLS with its proxy client certificate (`CN=front-proxy-client`, signed by the
 * requestheader client CA) and states the end user in `X-Remote-User`, `X-Remote-Group` (repeated),
 * `X-Remote-Extra-<escaped key>` and `X-Remote-Uid`. Those headers are trusted only when the connection's peer
 * certificate chains to the requestheader CA, carries the clientAuth extended key usage and, when allowed names are
 * configured, has a Subject CN among them. Anything else is unauthenticated: X-Remote-* headers are then ignored.
 */
import { X509Certificate } from 'node:crypto';
import { TLSSocket, type DetailedPeerCertificate } from 'node:tls';

import type { FastifyRequest } from 'fastify';

import { ConfigError } from '../errors.ts';
import { pemCertificates } from './certificates.ts';
import type { Authenticate, UserInfo } from './identity.ts';

/** The requestheader settings kube-apiserver publishes for extension apiservers. */
export interface RequestHeaderConfig {
  /** PEM bundle of the CA(s) that sign front-proxy client certificates. */
  readonly clientCA: string;
  /** Subject CNs allowed to assert identities; empty = any certificate from the CA. */
  readonly allowedNames: readonly string[];
  readonly usernameHeaders: readonly string[];
  readonly groupHeaders: readonly string[];
  readonly extraHeaderPrefixes: readonly string[];
  readonly uidHeaders: readonly string[];
}

/** The part of a ConfigMap this reads (`V1ConfigMap` is assignable to it). */
export interface ConfigMapData {
  readonly data?: Readonly<Record<string, string>>;
}

/**
 * The one method of `CoreV1Api` this needs: pass `kc.makeApiClient(CoreV1Api)` (structurally compatible; checked in
 * the tests), or a stub.
 */
export interface ConfigMapPort {
  readNamespacedConfigMap(args: { name: string; namespace: string }): Promise<ConfigMapData>;
}

export const AUTHENTICATION_CONFIGMAP = { namespace: 'kube-system', name: 'extension-apiserver-authentication' };

/** What generic apiservers assume when a header list is not published at all. */
const DEFAULT_HEADERS = {
  usernameHeaders: ['x-remote-user'],
  groupHeaders: ['x-remote-group'],
  extraHeaderPrefixes: ['x-remote-extra-'],
  uidHeaders: [],
} as const;

const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';
const ANY_EXTENDED_KEY_USAGE_OID = '2.5.29.37.0';
const MAX_CHAIN_LENGTH = 10;

/** Reads a `"[\"X-Remote-User\"]"` value (a JSON array of strings inside a ConfigMap string). */
function stringList(data: Readonly<Record<string, string>>, key: string): string[] | undefined {
  const raw = data[key];
  if (raw === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    throw new ConfigError(`${AUTHENTICATION_CONFIGMAP.name}: ${key} is not a JSON array of strings`, { cause: err });
  }
  if (parsed === null) return [];
  if (!Array.isArray(parsed) || !parsed.every((item): item is string => typeof item === 'string')) {
    throw new ConfigError(`${AUTHENTICATION_CONFIGMAP.name}: ${key} is not a JSON array of strings`);
  }
  return parsed;
}

/**
 * Parses the data of ConfigMap `kube-system/extension-apiserver-authentication`. Header lists that are absent fall
 * back to the generic-apiserver defaults; `requestheader-client-ca-file` is required (without it kube-apiserver has
 * no `--requestheader-client-ca-file` and aggregation cannot authenticate anyone).
 */
export function parseRequestHeaderConfig(data: Readonly<Record<string, string>>): RequestHeaderConfig {
  const clientCA = data['requestheader-client-ca-file'];
  if (clientCA === undefined || clientCA.trim() === '') {
    throw new ConfigError(
      `${AUTHENTICATION_CONFIGMAP.namespace}/${AUTHENTICATION_CONFIGMAP.name} has no requestheader-client-ca-file; ` +
        'kube-apiserver needs --requestheader-client-ca-file for API aggregation',
    );
  }
  parseCertificates(clientCA); // fail early on an unusable bundle
  const lower = (list: readonly string[]): string[] => list.map((h) => h.toLowerCase());
  return {
    clientCA,
    allowedNames: stringList(data, 'requestheader-allowed-names') ?? [],
    usernameHeaders: lower(stringList(data, 'requestheader-username-headers') ?? DEFAULT_HEADERS.usernameHeaders),
    groupHeaders: lower(stringList(data, 'requestheader-group-headers') ?? DEFAULT_HEADERS.groupHeaders),
    extraHeaderPrefixes: lower(
      stringList(data, 'requestheader-extra-headers-prefix') ?? DEFAULT_HEADERS.extraHeaderPrefixes,
    ),
    uidHeaders: lower(stringList(data, 'requestheader-uid-headers') ?? DEFAULT_HEADERS.uidHeaders),
  };
}

/** Reads and parses the requestheader settings from the cluster. Throws ConfigError. */
export async function loadRequestHeaderConfig(api: ConfigMapPort): Promise<RequestHeaderConfig> {
  let configMap: ConfigMapData;
  try {
    configMap = await api.readNamespacedConfigMap({ ...AUTHENTICATION_CONFIGMAP });
  } catch (err) {
    throw new ConfigError(
      `cannot read ConfigMap ${AUTHENTICATION_CONFIGMAP.namespace}/${AUTHENTICATION_CONFIGMAP.name} ` +
        '(the adapter needs the Role extension-apiserver-authentication-reader)',
      { cause: err },
    );
  }
  return parseRequestHeaderConfig(configMap.data ?? {});
}

/** Every certificate of the bundle: during a CA rotation it holds the old and the new CA, and both are trusted. */
function parseCertificates(bundle: string): X509Certificate[] {
  const blocks = pemCertificates(bundle);
  if (blocks.length === 0) throw new ConfigError('requestheader client CA bundle contains no PEM certificate');
  return blocks.map((pem) => {
    try {
      return new X509Certificate(pem);
    } catch (err) {
      throw new ConfigError('requestheader client CA bundle contains an invalid certificate', { cause: err });
    }
  });
}

/**
 * TLS options for the server (pass as `buildServer({ https })`): the serving key pair plus the requestheader CA(s) as
 * the client-certificate trust store, and `requestCert` so the aggregator's proxy certificate is asked for.
 * Clients without a certificate (kubelet probes) can still connect; they are simply unauthenticated.
 *
 * OpenSSL verifies the client certificate against this trust store during the handshake (the authenticator requires
 * that to have passed: `socket.authorized`), and the server names its CAs as the acceptable ones in its
 * CertificateRequest (clients may pick their certificate by that list: Go's crypto/tls does unless
 * `GetClientCertificate` is set; client-go, the aggregator's transport, sends its certificate regardless). A stale
 * trust store therefore fails every request from a front proxy with a new CA, which is why requestheader-watch.ts
 * replaces it with every new bundle (certificates.ts `ServerTls.setClientCA`).
 */
export function frontProxyTlsOptions(
  config: RequestHeaderConfig,
  serving: { readonly key: string | Buffer; readonly cert: string | Buffer },
): { key: string | Buffer; cert: string | Buffer; ca: string[]; requestCert: true } {
  return { key: serving.key, cert: serving.cert, ca: pemCertificates(config.clientCA), requestCert: true };
}

/** The peer's chain as sent (leaf first), without the trust-store completion loop. */
function peerChain(peer: DetailedPeerCertificate): X509Certificate[] {
  const chain: X509Certificate[] = [];
  const seen = new Set<string>();
  let current: DetailedPeerCertificate | undefined = peer;
  while (current?.raw !== undefined && chain.length < MAX_CHAIN_LENGTH) {
    const certificate = new X509Certificate(current.raw);
    if (seen.has(certificate.fingerprint256)) break;
    seen.add(certificate.fingerprint256);
    chain.push(certificate);
    const issuer: DetailedPeerCertificate | undefined = current.issuerCertificate;
    current = issuer === current ? undefined : issuer;
  }
  return chain;
}

/** Extended key usages of a certificate; undefined when it has no EKU extension. */
function extendedKeyUsages(certificate: X509Certificate): readonly string[] | undefined {
  // Node names the extended key usage list `keyUsage`; it is undefined without the extension.
  const usages: readonly string[] | undefined = certificate.keyUsage;
  return usages;
}

/** Whether a certificate may authenticate a client: a clientAuth (or any) extended key usage, or none at all unless `required`. */
export function allowsClientAuth(certificate: X509Certificate, required: boolean): boolean {
  const usages = extendedKeyUsages(certificate);
  if (usages === undefined) return !required;
  return usages.includes(CLIENT_AUTH_OID) || usages.includes(ANY_EXTENDED_KEY_USAGE_OID);
}

function signedBy(child: X509Certificate, issuer: X509Certificate): boolean {
  return child.checkIssued(issuer) && child.verify(issuer.publicKey);
}

function validAt(certificate: X509Certificate, now: Date): boolean {
  return certificate.validFromDate <= now && now <= certificate.validToDate;
}

/**
 * Why the presented chain does not authenticate a front proxy, or undefined when it does: the leaf must have the
 * clientAuth EKU, every link must be validly signed by the next (a CA certificate, whose EKU, if any, must allow
 * clientAuth), and some certificate of the chain must be signed by one of the requestheader CAs. All certificates
 * involved must be within their validity period.
 */
export function frontProxyChainProblem(
  chain: readonly X509Certificate[],
  trustedCAs: readonly X509Certificate[],
  now: Date = new Date(),
): string | undefined {
  const [leaf] = chain;
  if (leaf === undefined) return 'no client certificate';
  if (!allowsClientAuth(leaf, true)) return 'client certificate lacks the clientAuth extended key usage';
  for (const [index, certificate] of chain.entries()) {
    if (!validAt(certificate, now)) return `certificate ${index} of the chain is expired or not yet valid`;
    if (index > 0 && (!certificate.ca || !allowsClientAuth(certificate, false))) {
      return `certificate ${index} of the chain is not a CA for client authentication`;
    }
    const anchor = trustedCAs.find((ca) => signedBy(certificate, ca));
    if (anchor !== undefined) {
      return validAt(anchor, now) ? undefined : 'the requestheader CA certificate is expired or not yet valid';
    }
    const next = chain[index + 1];
    if (next === undefined || !signedBy(certificate, next)) {
      return 'client certificate does not chain to the requestheader client CA';
    }
  }
  return 'client certificate does not chain to the requestheader client CA';
}

/** The Subject CN as Go's crypto/x509 reads it (the last CN attribute). */
function commonName(peer: DetailedPeerCertificate): string | undefined {
  const cn = peer.subject.CN;
  return Array.isArray(cn) ? cn.at(-1) : cn;
}

type Headers = Readonly<Record<string, readonly string[] | undefined>>;

/** First non-empty value among the named headers (first value of each, as Go's `Header.Get`). */
function firstValue(headers: Headers, names: readonly string[]): string | undefined {
  for (const name of names) {
    const value = headers[name]?.[0];
    if (value !== undefined && value.length > 0) return value;
  }
  return undefined;
}

function allValues(headers: Headers, names: readonly string[]): string[] {
  return names.flatMap((name) => (headers[name] ?? []).filter((value) => value.trim().length > 0));
}

function unescapeExtraKey(key: string): string {
  try {
    return decodeURIComponent(key);
  } catch {
    return key; // malformed escapes are kept as sent, like upstream
  }
}

function extras(headers: Headers, prefixes: readonly string[]): Record<string, string[]> {
  // No prototype: an extra named `__proto__` or `constructor` is a key like any other, not an inherited property.
  const result = Object.create(null) as Record<string, string[]>;
  for (const prefix of prefixes) {
    for (const [name, values] of Object.entries(headers)) {
      if (values === undefined || !name.startsWith(prefix) || name.length === prefix.length) continue;
      const key = unescapeExtraKey(name.slice(prefix.length).toLowerCase());
      (result[key] ??= []).push(...values);
    }
  }
  return result;
}

/**
 * The identity asserted by the request headers, per the requestheader rules (no certificate checks here).
 * Undefined when no username header has a value.
 */
export function userFromHeaders(headers: Headers, config: RequestHeaderConfig): UserInfo | undefined {
  const username = firstValue(headers, config.usernameHeaders);
  if (username === undefined) return undefined;
  const uid = firstValue(headers, config.uidHeaders);
  return {
    username,
    ...(uid === undefined ? {} : { uid }),
    groups: allValues(headers, config.groupHeaders),
    extra: extras(headers, config.extraHeaderPrefixes),
  };
}

/**
 * The real Authenticate: requires a TLS connection whose client certificate passes `frontProxyChainProblem` against
 * the requestheader CA(s) (and OpenSSL's own verification, so the server's `ca` must include them; see
 * `frontProxyTlsOptions`), with a Subject CN in the allowed names when any are configured. Only then are the
 * identity headers read, from `headersDistinct` because Node joins repeated headers.
 *
 * `config` may be a function returning the configuration in force: it is asked on every request, so a new
 * requestheader configuration (requestheader-watch.ts) applies to the next request, on existing connections too (a
 * CA removed from the bundle stops authenticating a kept-alive connection that was verified against it).
 */
export function createFrontProxyAuthenticator(
  config: RequestHeaderConfig | (() => RequestHeaderConfig),
  now: () => number = Date.now,
): Authenticate {
  const current = typeof config === 'function' ? config : () => config;
  let compiled: Trust | undefined;
  const trust = (): Trust => {
    const active = current();
    if (compiled?.config !== active) {
      compiled = {
        config: active,
        trustedCAs: parseCertificates(active.clientCA),
        allowedNames: new Set(active.allowedNames),
      };
    }
    return compiled;
  };
  trust(); // an unusable bundle fails here, not on the first request

  // A connection's certificate chain is fixed by its handshake, and the aggregator sends every request over a few
  // kept-alive connections: the chain is parsed and its signatures verified once per connection and trust store,
  // not on every request (that was most of the metrics API's CPU per request). The verdict is kept at most
  // VERDICT_TTL_MS and never past the end of the chain's validity.
  const verdicts = new WeakMap<TLSSocket, ConnectionVerdict>();
  const verdictOf = (socket: TLSSocket, active: Trust): ConnectionVerdict | string => {
    const time = now();
    const cached = verdicts.get(socket);
    if (cached?.trust === active && time < cached.expiresAt) return cached;
    const peer = socket.getPeerCertificate(true);
    if (Object.keys(peer).length === 0) return 'no client certificate';
    const chain = peerChain(peer);
    const problem = frontProxyChainProblem(chain, active.trustedCAs, new Date(time));
    const validTo = Math.min(...[...chain, ...active.trustedCAs].map((c) => c.validToDate.getTime()));
    const verdict = {
      trust: active,
      problem,
      cn: commonName(peer) ?? '',
      expiresAt: Math.min(time + VERDICT_TTL_MS, validTo),
    };
    verdicts.set(socket, verdict);
    return verdict;
  };

  /** The user, or why the request is not authenticated. */
  const identify = (request: FastifyRequest): UserInfo | string => {
    const active = trust();
    const socket = request.raw.socket;
    if (!(socket instanceof TLSSocket)) return 'not a TLS connection';
    if (!socket.authorized) {
      return Object.keys(socket.getPeerCertificate()).length === 0
        ? 'no client certificate'
        : `client certificate rejected: ${String(socket.authorizationError)}`;
    }
    const verdict = verdictOf(socket, active);
    if (typeof verdict === 'string') return verdict;
    if (verdict.problem !== undefined) return verdict.problem;
    const { cn } = verdict;
    if (active.allowedNames.size > 0 && !active.allowedNames.has(cn)) {
      return `x509: subject with cn=${cn} is not in the allowed list`;
    }
    return userFromHeaders(request.raw.headersDistinct, active.config) ?? 'no username header';
  };

  return (request) => {
    const result = identify(request);
    if (typeof result !== 'string') return result;
    request.log.debug({ reason: result }, 'request not authenticated by front proxy');
    return undefined;
  };
}

/** The requestheader configuration in force, with its CAs parsed. */
interface Trust {
  readonly config: RequestHeaderConfig;
  readonly trustedCAs: X509Certificate[];
  readonly allowedNames: Set<string>;
}

/** What a connection's client certificate chain proved, against one trust store. */
interface ConnectionVerdict {
  readonly trust: Trust;
  readonly problem: string | undefined;
  readonly cn: string;
  readonly expiresAt: number;
}

/** How long a connection's verified chain is trusted before it is verified again. */
const VERDICT_TTL_MS = 60_000;
