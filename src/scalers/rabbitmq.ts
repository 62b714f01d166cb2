/**
 * The `rabbitmq` scaler (KEDA's parameters). Over the management HTTP API (`http[s]://`, rabbitmq-management.ts)
 * it reads `messages` (or `messages_ready` with `excludeUnacknowledged`) and the publish / deliver_get rates, for
 * one queue or for every queue matching `queueName` as a regular expression (`useRegex`, with `operation`
 * sum|avg|max and `pageSize`). Over AMQP (`amqp[s]://`, rabbitmq-amqp.ts) it counts ready messages with a passive
 * queue declare. This file parses and checks the metadata and turns a reading into a value and activity per mode:
 *
 * | mode           | value             | active when                              |
 * |----------------|-------------------|------------------------------------------|
 * | QueueLength    | messages          | messages > activationValue               |
 * | MessageRate    | publish rate      | rate > activationValue OR messages > act |
 * | DeliverGetRate | deliver_get rate  | rate > activationValue                   |
 *
 * Credentials: the host URL's userinfo, overridden by `username` + `password` from a TriggerAuthentication (or
 * `usernameFromEnv` / `passwordFromEnv`). TLS (`https`, `amqps`): `tls: enable` with `ca` and/or `cert` + `key`
 * (+ `keyPassword`) from a TriggerAuthentication; `unsafeSsl: true` skips server verification. Over amqps with a
 * client certificate and no credentials at all, sluice authenticates with SASL EXTERNAL (as KEDA). When the
 * TriggerAuthentication supplies any credential (or a `host` with userinfo), it must supply `host` too, and `host` /
 * `hostFromEnv` in trigger metadata are errors (KEDA lets metadata send them elsewhere; docs/security.md#credentials);
 * likewise `oauthTokenURI` with OAuth2 client credentials from it. `vhostName` may still come from metadata.
 *
 * Deliberate differences from KEDA (strict where KEDA is lax):
 * - Every failure is a ScalerError, never 0: a 404 or any non-200 answer, a queue without statistics yet, a missing
 *   rate that the broker cannot vouch for (see rabbitmq-management.ts for when an absent rate is a fact, 0), a regex
 *   matching no queue (KEDA: 0), queues changing while paging.
 * - `useRegex` follows every page (KEDA fails beyond the first, kedacore/keda#7143). `pageSize` is 1..500 (the
 *   management API answers 400 above 500). `operation` avg is the exact mean (KEDA: integer division of counts).
 * - `operation` or `pageSize` without `useRegex: true` is an error (KEDA ignores them).
 * - Modes PublishedToDeliveredRatio and ExpectedQueueConsumptionTime are not supported (an error naming `mode`).
 * - `timeout` (a KEDA duration: whole milliseconds or a Go duration) and amqp is an error on every path (KEDA only
 *   with mode + value); `timeout: 0` is an error (KEDA: the global default).
 * - `username`, `password`, `tls`, `ca`, `cert`, `key`, `keyPassword` in trigger metadata are errors (KEDA ignores
 *   them there). `tls: enable` with an `amqp://` or `http://` host is an error (KEDA silently connects in plain
 *   text); `ca` / `cert` / `key` without `tls: enable` are errors (KEDA ignores them); `keyPassword` needs `key`.
 * - TLS material is parsed when the scaler is built: PEM that does not parse, a key that does not match its
 *   certificate, or a wrong `keyPassword` is a ValidationError (KEDA fails later, while connecting).
 * - `unsafeSsl: true` also applies to an amqps host without `tls: enable` (KEDA ignores it there).
 * - Credentials in the host URL that are not valid percent-encoding are an error.
 * - Azure workload identity (`workloadIdentityResource`) is not supported yet (an error, not ignored).
 *
 * OAuth2 client credentials (management API only, as in KEDA): `oauthTokenURI`, `clientID` and `clientSecret` (a
 * secret: from a TriggerAuthentication only), optional `scopes` (a comma list; `scope` is accepted as an alias) and
 * `endpointParams` (`k1=v1&k2=v2`, URL-encoded, extra form fields for the token endpoint). sluice gets a token with
 * `grant_type=client_credentials` and sends `Authorization: Bearer <token>` to the management API; the token is cached
 * and shared by every reader of the same client until shortly before it expires, and a 401 from the API drops it
 * once (oauth2.ts). Differences from KEDA: OAuth2 with an amqp host, OAuth2 together with `username`/`password` or
 * credentials in the host URL (KEDA: "basic and oauth2 are exclusive"), a partial OAuth2 configuration, and a plain
 * http token URI on a non-loopback host are errors; `ca` (with `tls: enable`) and `unsafeSsl` apply to the token
 * endpoint too, the client certificate does not (it is the broker's credential).
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { getCACertificates, type ConnectionOptions } from 'node:tls';
import { ScalerError, ValidationError } from '../errors.ts';
import { fingerprint } from '../fingerprint.ts';
import { openHttpClient, type HttpClient, type TlsMaterial } from './http.ts';
import {
  MAX_TIMEOUT_MS,
  UNUSED_TARGET,
  credentialsFromAuth,
  parseParams,
  pinAddress,
  triggerSources,
  type ParamSources,
  type ParamSpec,
  type Parsed,
} from './metadata.ts';
import {
  openTokenSource,
  parseEndpointParams,
  parseScopes,
  parseTokenUrl,
  type OAuth2ClientCredentials,
} from './oauth2.ts';
import { AmqpBroker } from './rabbitmq-amqp.ts';
import {
  ManagementClient,
  aggregate,
  type CountField,
  type HttpAnswer,
  type HttpGet,
  type Operation,
  type QueueStats,
  type RateField,
} from './rabbitmq-management.ts';
import {
  defineScaler,
  metricNameFor,
  type Sample,
  type ScalerFactory,
  type SharedResources,
  type Source,
  type TriggerInput,
} from './scaler.ts';

const MODES = ['QueueLength', 'MessageRate', 'DeliverGetRate'] as const;
export type RabbitMqMode = (typeof MODES)[number];

/** Credentials and TLS material come from a TriggerAuthentication (or `<param>FromEnv`), never from metadata. */
const secret = { type: 'string', optional: true, fromAuth: true, fromMetadata: false, secret: true } as const;

const params = {
  host: { type: 'string', fromAuth: true, fromEnv: true, secret: true },
  protocol: { type: 'enum', values: ['auto', 'amqp', 'http'], default: 'auto', fromAuth: true },
  queueName: { type: 'string' },
  mode: { type: 'enum', values: MODES, optional: true },
  value: { type: 'number', optional: true, min: 0, exclusiveMin: true },
  /** Deprecated in KEDA: QueueLength mode with this value. */
  queueLength: { type: 'number', optional: true, min: 0, exclusiveMin: true },
  activationValue: { type: 'number', default: 0 },
  vhostName: { type: 'string', optional: true, fromAuth: true },
  useRegex: { type: 'boolean', default: false },
  operation: { type: 'enum', values: ['sum', 'avg', 'max'], default: 'sum' },
  pageSize: { type: 'number', default: 100, min: 1, integer: true },
  excludeUnacknowledged: { type: 'boolean', default: false },
  timeout: { type: 'duration', optional: true, min: 1, max: MAX_TIMEOUT_MS },
  unsafeSsl: { type: 'boolean', default: false },
  username: { ...secret, fromEnv: true },
  password: { ...secret, fromEnv: true },
  tls: { type: 'enum', values: ['enable', 'disable'], default: 'disable', fromAuth: true, fromMetadata: false },
  ca: secret,
  cert: secret,
  key: secret,
  keyPassword: secret,
  oauthTokenURI: { type: 'string', optional: true, fromAuth: true },
  clientID: { type: 'string', optional: true, fromAuth: true },
  clientSecret: secret,
  scopes: { type: 'string', optional: true, fromAuth: true },
  /** An alias of `scopes`. */
  scope: { type: 'string', optional: true, fromAuth: true },
  /** Extra form fields may carry something sensitive: never quoted. */
  endpointParams: { type: 'string', optional: true, fromAuth: true, secret: true },
} as const satisfies ParamSpec;

/** The OAuth2 parameters, in the order errors name them. */
const OAUTH_PARAMS = ['oauthTokenURI', 'clientID', 'clientSecret', 'scopes', 'scope', 'endpointParams'] as const;

/** KEDA's default target when neither `mode` nor `value` (nor `queueLength`) is given. */
const DEFAULT_QUEUE_LENGTH = 20;
const DEFAULT_TIMEOUT_MS = 3000;
/** The management API answers 400 to a larger page_size. */
const MAX_PAGE_SIZE = 500;
/** A vhost's queue list with the four columns read (≈ 400 bytes a queue: ≈ 20,000 queues), or one page of a regex. */
const MAX_MANAGEMENT_BODY_BYTES = 8 * 1024 * 1024;
/** KEDA's Azure workload identity parameter: rejected rather than ignored (which would mean no auth). */
const UNSUPPORTED_AUTH = ['workloadIdentityResource'] as const;
const RATE_OF: Readonly<Record<RabbitMqMode, RateField | undefined>> = {
  QueueLength: undefined,
  MessageRate: 'publish',
  DeliverGetRate: 'deliver_get',
};

export interface RabbitMqConfig {
  readonly protocol: 'amqp' | 'http';
  /** The host URL without credentials; for http its path is the API's prefix (the vhost segment removed). */
  readonly url: URL;
  readonly vhost: string;
  /** From `username`/`password` or the host URL; never log them. Undefined: none given. */
  readonly credentials: { readonly username: string; readonly password: string } | undefined;
  /** OAuth2 client credentials (management API only; exclusive with `credentials`). Never log the secret. */
  readonly oauth: OAuth2ClientCredentials | undefined;
  readonly queueName: string;
  readonly mode: RabbitMqMode;
  readonly target: number;
  readonly activationValue: number;
  readonly useRegex: boolean;
  readonly operation: Operation;
  readonly pageSize: number;
  readonly excludeUnacknowledged: boolean;
  readonly timeoutMs: number;
  /**
   * TLS material for an https/amqps host (`tls: enable`): extra CA (added to the system's), client certificate and
   * key (decrypted with `keyPassword`; never log it). Undefined for plain schemes; `{}` for TLS without material.
   */
  readonly tls: TlsMaterial | undefined;
  /** Skip server certificate verification. */
  readonly unsafeSsl: boolean;
}

type Params = Parsed<typeof params>;

export function parseRabbitMqConfig(trigger: TriggerInput): RabbitMqConfig {
  const sources = triggerSources(trigger);
  const { path } = sources;
  const authRef = `spec.triggers[${trigger.index}].authenticationRef`;
  pinAddresses(sources, authRef);
  const p = parseParams(params, sources);
  const { mode, target } = modeAndTarget(p, path, trigger.compositeSource === true);
  const { url, scheme, protocol } = hostUrl(p, path);
  checkProtocolSpecific(p, mode, protocol, (name) => (trigger.metadata[name]?.trim() ?? '') !== '', path);
  const credentials = resolveCredentials(p, url, trigger, path, authRef);
  const oauth = resolveOAuth(p, protocol, credentials, trigger, path, authRef);
  const secure = scheme === 'amqps' || scheme === 'https';
  checkTlsParams(p, secure, scheme, authRef);
  const vhost = resolveVhost(p, url, protocol, path);
  return {
    protocol,
    url,
    vhost,
    credentials,
    oauth,
    queueName: p.queueName,
    mode,
    target,
    activationValue: p.activationValue,
    useRegex: p.useRegex,
    operation: p.operation,
    pageSize: p.pageSize,
    excludeUnacknowledged: p.excludeUnacknowledged,
    timeoutMs: p.timeout ?? DEFAULT_TIMEOUT_MS,
    tls: secure ? tlsMaterial(p, authRef) : undefined,
    unsafeSsl: p.unsafeSsl,
  };
}

/** Credentials a TriggerAuthentication may supply (`ca` and `tls` are not: they only verify the broker). */
const CREDENTIALS = ['username', 'password', 'cert', 'key', 'keyPassword', 'clientID', 'clientSecret'] as const;

/**
 * With credentials from the TriggerAuthentication (or a `host` there that carries userinfo), the broker is the
 * TriggerAuthentication's `host`: metadata `host` / `hostFromEnv` are refused (metadata.ts pinAddress), and the OAuth2
 * token endpoint that gets its client secret is its `oauthTokenURI`.
 */
function pinAddresses(sources: ParamSources, authRef: string): void {
  const credentials = credentialsFromAuth(sources, CREDENTIALS);
  const host = URL.parse(sources.authParams['host']?.trim() ?? '');
  if (host !== null && (host.username !== '' || host.password !== '')) credentials.unshift('userinfo in host');
  pinAddress(sources, 'host', credentials, { metadata: 'refused', required: true, authRef });
  const oauth = credentialsFromAuth(sources, ['clientID', 'clientSecret']);
  pinAddress(sources, 'oauthTokenURI', oauth, { metadata: 'refused', required: false, authRef });
}

/** KEDA's rules: `mode` + `value`, or the deprecated `queueLength` alone, or neither (QueueLength, 20). */
function modeAndTarget(p: Params, path: string, compositeSource: boolean): { mode: RabbitMqMode; target: number } {
  if (p.queueLength !== undefined && (p.mode !== undefined || p.value !== undefined)) {
    throw new ValidationError(`${path}.queueLength`, 'is deprecated and cannot be combined with "mode" / "value"');
  }
  // Under scalingModifiers the trigger's own target is not used: `mode` alone is enough.
  if (compositeSource && p.mode !== undefined && p.value === undefined) return { mode: p.mode, target: UNUSED_TARGET };
  if ((p.mode === undefined) !== (p.value === undefined)) {
    throw new ValidationError(
      `${path}.${p.mode === undefined ? 'mode' : 'value'}`,
      '"mode" and "value" must be given together (or neither, for QueueLength with value 20)',
    );
  }
  return { mode: p.mode ?? 'QueueLength', target: p.value ?? p.queueLength ?? DEFAULT_QUEUE_LENGTH };
}

/** The host URL, its scheme, and the protocol it implies (which an explicit `protocol` must match). */
function hostUrl(p: Params, path: string): { url: URL; scheme: string; protocol: 'amqp' | 'http' } {
  let url: URL;
  try {
    url = new URL(p.host);
  } catch (cause) {
    // The host may carry credentials: do not echo it.
    throw new ValidationError(`${path}.host`, 'is not a valid URL (expected amqp[s]://… or http[s]://…)', { cause });
  }
  const scheme = url.protocol.replace(/:$/, '');
  const protocol =
    scheme === 'amqp' || scheme === 'amqps' ? 'amqp' : scheme === 'http' || scheme === 'https' ? 'http' : undefined;
  if (protocol === undefined) {
    throw new ValidationError(
      `${path}.host`,
      `unknown host URL scheme "${scheme}" (expected amqp, amqps, http or https)`,
    );
  }
  if (p.protocol !== 'auto' && p.protocol !== protocol) {
    throw new ValidationError(`${path}.protocol`, `"${p.protocol}" does not match the host URL scheme "${scheme}"`);
  }
  url.hash = '';
  return { url, scheme, protocol };
}

/** Parameters only the management API understands; the regex parameters only with useRegex. */
function checkProtocolSpecific(
  p: Params,
  mode: RabbitMqMode,
  protocol: 'amqp' | 'http',
  given: (name: string) => boolean,
  path: string,
): void {
  if (protocol === 'amqp') {
    const httpOnly: [string, boolean][] = [
      ['mode', mode !== 'QueueLength'],
      ['useRegex', p.useRegex],
      ['excludeUnacknowledged', p.excludeUnacknowledged],
      ['timeout', p.timeout !== undefined],
    ];
    for (const [name, used] of httpOnly) {
      if (used) {
        const what = name === 'mode' ? `mode ${mode}` : `"${name}"`;
        throw new ValidationError(`${path}.${name}`, `${what} needs the management API (an http or https host)`);
      }
    }
  }
  if (!p.useRegex) {
    for (const name of ['operation', 'pageSize']) {
      if (given(name)) throw new ValidationError(`${path}.${name}`, 'only applies with useRegex: "true"');
    }
  }
  if (p.pageSize > MAX_PAGE_SIZE) {
    throw new ValidationError(`${path}.pageSize`, `must be at most ${MAX_PAGE_SIZE} (the management API's limit)`);
  }
}

/** `username` + `password` (both or neither) override the host URL's userinfo, which is removed from `url`. */
function resolveCredentials(
  p: Params,
  url: URL,
  trigger: TriggerInput,
  path: string,
  authRef: string,
): RabbitMqConfig['credentials'] {
  for (const name of UNSUPPORTED_AUTH) {
    if (trigger.authParams[name]?.trim()) {
      throw new ValidationError(authRef, `"${name}" (OAuth2 / Azure workload identity) is not supported by sluice yet`);
    }
  }
  if ((p.username === undefined) !== (p.password === undefined)) {
    const present = p.username === undefined ? 'password' : 'username';
    throw new ValidationError(
      trigger.authParams[present]?.trim() ? authRef : `${path}.${present}FromEnv`,
      '"username" and "password" must be given together',
    );
  }
  let fromUrl: { username: string; password: string } | undefined;
  try {
    fromUrl =
      url.username !== '' || url.password !== ''
        ? { username: decodeURIComponent(url.username), password: decodeURIComponent(url.password) }
        : undefined;
  } catch (cause) {
    throw new ValidationError(`${path}.host`, 'has credentials that are not valid percent-encoding', { cause });
  }
  url.username = '';
  url.password = '';
  return p.username !== undefined && p.password !== undefined
    ? { username: p.username, password: p.password }
    : fromUrl;
}

/**
 * OAuth2 client credentials: all of `oauthTokenURI`, `clientID` and `clientSecret` once any OAuth2 parameter is given;
 * only over the management API; never together with basic credentials.
 */
function resolveOAuth(
  p: Params,
  protocol: 'amqp' | 'http',
  credentials: RabbitMqConfig['credentials'],
  trigger: TriggerInput,
  path: string,
  authRef: string,
): OAuth2ClientCredentials | undefined {
  const fieldOf = (name: string): string => (trigger.metadata[name]?.trim() ? `${path}.${name}` : authRef);
  const given = OAUTH_PARAMS.filter((name) => p[name] !== undefined);
  const first = given[0];
  if (first === undefined) return undefined;
  if (protocol === 'amqp') {
    throw new ValidationError(
      fieldOf(first),
      `"${first}" (OAuth2) needs the management API (an http or https host); over AMQP use username and password`,
    );
  }
  if (credentials !== undefined) {
    const basic = p.username !== undefined ? 'username' : undefined;
    throw new ValidationError(
      basic === undefined ? `${path}.host` : fieldOf(basic),
      `basic and oauth2 are exclusive: ${basic === undefined ? 'the host URL has credentials' : '"username" and "password" are given'} and so is "${first}"; use one or the other`,
    );
  }
  for (const required of ['oauthTokenURI', 'clientID', 'clientSecret'] as const) {
    if (p[required] === undefined) {
      throw new ValidationError(
        required === 'clientSecret' ? authRef : fieldOf(first),
        `OAuth2 needs "${required}" too (given: ${given.map((n) => `"${n}"`).join(', ')})${required === 'clientSecret' ? ' in the TriggerAuthentication' : ''}`,
      );
    }
  }
  if (p.scopes !== undefined && p.scope !== undefined) {
    throw new ValidationError(fieldOf('scope'), '"scope" is an alias of "scopes": give one of them');
  }
  const scopesName = p.scopes !== undefined ? 'scopes' : 'scope';
  const scopesText = p.scopes ?? p.scope;
  return {
    tokenUrl: parseTokenUrl(p.oauthTokenURI ?? '', fieldOf('oauthTokenURI')),
    clientId: p.clientID ?? '',
    clientSecret: p.clientSecret ?? '',
    scopes: scopesText === undefined ? [] : parseScopes(scopesText, fieldOf(scopesName)),
    endpointParams:
      p.endpointParams === undefined ? [] : parseEndpointParams(p.endpointParams, fieldOf('endpointParams')),
  };
}

/** `tls: enable` needs a TLS scheme; TLS material needs `tls: enable`; `cert` and `key` go together. */
function checkTlsParams(p: Params, secure: boolean, scheme: string, authRef: string): void {
  if (p.tls === 'enable' && !secure) {
    throw new ValidationError(authRef, `tls "enable" needs an amqps:// or https:// host, not ${scheme}://`);
  }
  if (p.tls === 'disable') {
    for (const name of ['ca', 'cert', 'key', 'keyPassword'] as const) {
      if (p[name] !== undefined) throw new ValidationError(authRef, `"${name}" is only used with tls "enable"`);
    }
  }
  if ((p.cert === undefined) !== (p.key === undefined)) {
    throw new ValidationError(authRef, '"cert" and "key" must be given together');
  }
  if (p.keyPassword !== undefined && p.key === undefined) {
    throw new ValidationError(authRef, '"keyPassword" is only used with "key"');
  }
}

/**
 * The vhost: `vhostName`, else (amqp) the URL's path, (http) its last path segment, else "/". Rewrites `url`'s path:
 * for amqp to the chosen vhost, for http to what precedes the vhost (a path prefix, e.g. behind a proxy).
 */
function resolveVhost(p: Params, url: URL, protocol: 'amqp' | 'http', path: string): string {
  const segments = url.pathname.split('/').filter((s) => s !== '');
  let fromUrl: string | undefined;
  try {
    if (protocol === 'amqp') fromUrl = url.pathname.length > 1 ? decodeURIComponent(url.pathname.slice(1)) : undefined;
    else fromUrl = segments.length > 0 ? decodeURIComponent(segments.at(-1) ?? '') : undefined;
  } catch (cause) {
    throw new ValidationError(`${path}.host`, 'has a vhost that is not valid percent-encoding', { cause });
  }
  const vhost = p.vhostName ?? fromUrl ?? '/';
  if (protocol === 'http') {
    url.pathname = segments.length > 1 ? `/${segments.slice(0, -1).join('/')}` : '/';
    url.search = '';
  } else {
    // amqplib reads the vhost from the path (percent-decoded) and options such as ?heartbeat= from the query.
    url.pathname = `/${encodeURIComponent(vhost)}`;
  }
  return vhost;
}

/**
 * Parses (validates) the PEM material now, so that a placeholder is a ValidationError and not a runtime failure. An
 * encrypted key is decrypted here (a wrong `keyPassword` is a ValidationError too).
 */
function tlsMaterial(p: Params, field: string): TlsMaterial {
  let material: TlsMaterial = {};
  if (p.ca !== undefined) {
    certificates(p.ca, 'ca', field);
    material = { ca: p.ca };
  }
  if (p.cert !== undefined && p.key !== undefined) {
    const [leaf] = certificates(p.cert, 'cert', field);
    let key: KeyObject;
    try {
      key = createPrivateKey(
        p.keyPassword === undefined
          ? { key: p.key, format: 'pem' }
          : { key: p.key, format: 'pem', passphrase: p.keyPassword },
      );
    } catch {
      // The cause could quote the material: leave it out.
      throw new ValidationError(
        field,
        `"key" is not a PEM private key${p.keyPassword === undefined ? ' (an encrypted key needs "keyPassword")' : ', or "keyPassword" is wrong'}`,
      );
    }
    if (leaf && !leaf.checkPrivateKey(key)) {
      throw new ValidationError(field, '"key" does not belong to the certificate in "cert"');
    }
    const decrypted = p.keyPassword === undefined ? p.key : key.export({ type: 'pkcs8', format: 'pem' });
    material = { ...material, cert: p.cert, key: decrypted };
  }
  return material;
}

function certificates(pem: string, name: string, field: string): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) {
    throw new ValidationError(field, `"${name}" is not a PEM certificate (no BEGIN CERTIFICATE block)`);
  }
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (cause) {
      throw new ValidationError(field, `"${name}": certificate ${i + 1} of ${blocks.length} does not parse`, {
        cause,
      });
    }
  });
}

/** Go's url.QueryEscape (KEDA escapes the queue name with it for the metric name): only `A-Za-z0-9-_.~` stay. */
export function goQueryEscape(text: string): string {
  return encodeURIComponent(text)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+');
}

/** What one read gives: one queue's statistics, the matching queues', or (AMQP) a ready count. */
export type RabbitMqReading =
  | { readonly kind: 'queues'; readonly queues: readonly QueueStats[]; readonly rates: RatesVerdict | undefined }
  | { readonly kind: 'ready'; readonly count: number };

/** Whether the broker collects message rates; asked only when a rate was absent and a mode needs it. */
export interface RatesVerdict {
  readonly collected: boolean;
  readonly why: string;
}

/** The count and the rate one trigger reads from a reading (KEDA's fields; absent rates per the management client). */
export function readingFor(
  config: Pick<RabbitMqConfig, 'mode' | 'excludeUnacknowledged' | 'operation' | 'useRegex' | 'queueName'>,
  reading: RabbitMqReading,
): { count: number; rate: number | undefined } {
  if (reading.kind === 'ready') return { count: reading.count, rate: undefined };
  const field: CountField = config.excludeUnacknowledged ? 'messages_ready' : 'messages';
  const rateField = RATE_OF[config.mode];
  const counts: number[] = [];
  const rates: number[] = [];
  for (const [i, queue] of reading.queues.entries()) {
    // With useRegex the broker chose the queue: its name is not quoted (it may belong to another team sharing the
    // credentials), only its place among the matches, which the pages list sorted by name.
    const where = config.useRegex
      ? `queue ${i + 1} of ${reading.queues.length} matching "${config.queueName}" (by name; names are not shown)`
      : `queue "${queue.name}"`;
    const count = field === 'messages' ? queue.messages : queue.messagesReady;
    if (count === undefined) {
      // Right after a queue is created the API has no statistics yet; or the broker does not collect them.
      throw new ScalerError(`the RabbitMQ management API has no ${field} count for ${where} yet`);
    }
    counts.push(count);
    if (rateField === undefined) continue;
    const fact = rateField === 'publish' ? queue.publish : queue.deliverGet;
    if ('malformed' in fact) {
      throw new ScalerError(`the RabbitMQ management API reports ${fact.malformed} for ${where}`);
    }
    if ('rate' in fact) {
      rates.push(fact.rate);
      continue;
    }
    if (reading.rates?.collected !== true) {
      throw new ScalerError(
        `${where} reports no ${rateField} rate, and the broker does not collect message rates ` +
          `(${reading.rates?.why ?? 'unknown'}): the rate is unknown`,
      );
    }
    rates.push(0);
  }
  return {
    count: aggregate(config.operation, counts),
    rate: rateField === undefined ? undefined : aggregate(config.operation, rates),
  };
}

/** Value and activity for a mode (KEDA's table, at the top of this file). */
export function evaluate(
  mode: RabbitMqMode,
  reading: { readonly count: number; readonly rate: number | undefined },
  activationValue: number,
): Sample {
  if (mode === 'QueueLength') return { value: reading.count, active: reading.count > activationValue };
  const rate = reading.rate;
  if (rate === undefined) throw new ScalerError(`mode ${mode} got no rate from the reader`);
  switch (mode) {
    case 'MessageRate':
      return { value: rate, active: rate > activationValue || reading.count > activationValue };
    case 'DeliverGetRate':
      return { value: rate, active: rate > activationValue };
  }
}

export const createRabbitMqScaler: ScalerFactory = (trigger) => {
  const config = parseRabbitMqConfig(trigger);
  return defineScaler({
    metricName: metricNameFor(trigger.index, `rabbitmq-${goQueryEscape(config.queueName)}`),
    target: config.target,
    metricType: trigger.metricType,
    activation: config.activationValue,
    source: config.protocol === 'http' ? managementSource(config) : amqpSource(config),
    evaluate: (reading) => evaluate(config.mode, readingFor(config, reading), config.activationValue),
  });
};

/**
 * Over the management API: one shared client per API, credentials, TLS and timeout (it batches the queues asked for
 * in one turn into one list request per vhost). A reader asks for the broker's rates mode only when its mode needs a
 * rate that a queue does not report.
 */
function managementSource(config: RabbitMqConfig): Source<RabbitMqReading> {
  const origin = `${config.url.protocol}//${config.url.host}`;
  const api = `${origin}${config.url.pathname.replace(/\/+$/, '')}`;
  const identity = fingerprint(config.credentials ?? null, config.oauth ?? null, config.tls ?? null, config.unsafeSsl);
  const backend = `rabbitmq-http|${api}|${identity}`;
  const needsRates = RATE_OF[config.mode] !== undefined;
  const what = config.useRegex
    ? `re|${config.vhost}|${config.queueName}|${config.pageSize}`
    : `q|${config.vhost}|${config.queueName}`;
  return {
    key: `${backend}|${config.timeoutMs}|${what}|${needsRates ? 'rates' : 'counts'}`,
    backend,
    describe: `RabbitMQ management API ${api}`,
    timeoutMs: config.timeoutMs,
    batched: true,
    open(shared) {
      const lease = shared.lease(
        `rabbitmq-management|${backend}|${config.timeoutMs}`,
        () => managementClient(shared, config, origin),
        (client) => client.close(),
      );
      const { client } = lease.value;
      return {
        timeoutMs: (batch) => (config.useRegex ? config.timeoutMs : client.timeoutFor(config.vhost, batch)),
        async read(signal) {
          const queues = config.useRegex
            ? await client.matching(config.vhost, config.queueName, config.pageSize, signal)
            : [await client.queue(config.vhost, config.queueName, signal)];
          const absent = needsRates && queues.some((q) => 'absent' in q.publish || 'absent' in q.deliverGet);
          return { kind: 'queues', queues, rates: absent ? await client.ratesCollected(signal) : undefined };
        },
        close() {
          lease.release();
          return Promise.resolve();
        },
      };
    },
  };
}

function managementClient(
  shared: SharedResources,
  config: RabbitMqConfig,
  origin: string,
): { client: ManagementClient; close: () => Promise<void> } {
  const http = (headers: Record<string, string>): HttpClient =>
    openHttpClient(shared, origin, {
      timeoutMs: config.timeoutMs,
      unsafeSsl: config.unsafeSsl,
      tls: config.tls ?? {},
      headers,
      maxBodyBytes: MAX_MANAGEMENT_BODY_BYTES,
    });
  const headers: Record<string, string> = {};
  if (config.credentials) {
    const { username, password } = config.credentials;
    headers['authorization'] = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  }
  // The client words each status itself (a 404 means "no such queue", a 400 on a later page "the queues changed"),
  // so the shared client's "answered HTTP <status>" errors become answers again; everything else stays an error.
  const getWith = async (
    client: HttpClient,
    url: URL,
    signal: AbortSignal,
    timeoutMs?: number,
  ): Promise<HttpAnswer> => {
    let errorBody = '';
    try {
      const reply = await client.get(url, signal, {
        accept: 'application/json',
        timeoutMs,
        errorDetail: (body) => {
          errorBody = body;
          return undefined;
        },
      });
      return { status: reply.status, body: reply.body };
    } catch (err) {
      const status = err instanceof ScalerError ? /answered HTTP (\d{3})(?! \(a redirect)/.exec(err.message) : null;
      if (status?.[1] !== undefined) return { status: Number(status[1]), body: errorBody };
      throw err;
    }
  };
  if (config.oauth === undefined) {
    const client = http(headers);
    return {
      client: new ManagementClient({
        base: config.url,
        get: (url, signal, timeoutMs) => getWith(client, url, signal, timeoutMs),
        timeoutMs: config.timeoutMs,
      }),
      close: () => client.close(),
    };
  }

  // OAuth2: the token comes from the source shared by every reader of this client (oauth2.ts). Each token gets an
  // HttpClient of its own (its headers are fixed), over the same pooled connections: a new token opens one before the
  // previous one is closed, so the pool is never released in between and requests in flight finish on theirs.
  const tokens = openTokenSource(shared, config.oauth, {
    unsafeSsl: config.unsafeSsl,
    ca: config.tls?.ca,
  });
  let current: { token: string; client: HttpClient } | undefined;
  const clientFor = (token: string): HttpClient => {
    if (current?.token === token) return current.client;
    const previous = current;
    current = { token, client: http({ authorization: `Bearer ${token}` }) };
    void previous?.client.close();
    return current.client;
  };
  const get: HttpGet = async (url, signal, timeoutMs) => {
    for (let attempt = 1; ; attempt++) {
      const token = await tokens.source.token(signal);
      const answer = await getWith(clientFor(token), url, signal, timeoutMs);
      // The API refused the token (expired early, revoked, or the broker restarted with new keys): drop it once and
      // try again with a new one; a second 401 is the API refusing the credentials.
      if (answer.status !== 401 || attempt === 2 || !tokens.source.invalidate(token)) return answer;
    }
  };
  return {
    client: new ManagementClient({ base: config.url, get, timeoutMs: config.timeoutMs }),
    close: async () => {
      await current?.client.close();
      current = undefined;
      tokens.release();
    },
  };
}

/** Over AMQP: one shared connection per broker, vhost, credentials and TLS settings; a passive declare per read. */
function amqpSource(config: RabbitMqConfig): Source<RabbitMqReading> {
  let tls: ConnectionOptions | undefined;
  if (config.tls) {
    tls = { rejectUnauthorized: !config.unsafeSsl };
    // Node's `ca` replaces the trust store: keep the system's and add the given CA, as KEDA (Go) does.
    if (config.tls.ca !== undefined) tls.ca = [...getCACertificates('default'), config.tls.ca];
    if (config.tls.cert !== undefined) tls.cert = config.tls.cert;
    if (config.tls.key !== undefined) tls.key = config.tls.key;
  }
  // No credentials: SASL EXTERNAL with a client certificate (as KEDA), else amqplib's default guest/guest.
  const auth =
    config.credentials ?? (config.tls?.cert !== undefined ? 'external' : { username: 'guest', password: 'guest' });
  const broker = `${config.url.protocol}//${config.url.host}${config.url.pathname}`;
  const backend = `rabbitmq-amqp|${broker}|${fingerprint(auth, config.tls ?? null, config.unsafeSsl)}`;
  return {
    key: `${backend}|${config.queueName}`,
    backend,
    describe: `RabbitMQ ${broker}`,
    timeoutMs: config.timeoutMs,
    open(shared) {
      const lease = shared.lease(
        `amqp|${backend}`,
        () => new AmqpBroker({ url: config.url, auth, tls, connectTimeoutMs: config.timeoutMs }),
        (connection) => connection.close(),
      );
      return {
        read: async (signal) => ({ kind: 'ready', count: await lease.value.checkQueue(config.queueName, signal) }),
        close() {
          lease.release();
          return Promise.resolve();
        },
      };
    },
  };
}
