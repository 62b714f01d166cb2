/**
 * The `aws-sqs-queue` scaler (KEDA's parameters): the queue's `ApproximateNumberOfMessages`, plus
 * `…NotVisible` (in flight, `scaleOnInFlight`, default true) and `…Delayed` (`scaleOnDelayed`, default false), read
 * with one GetQueueAttributes call and summed. Metric name `s<i>-aws-sqs-<queueName>`, normalized as KEDA does.
 *
 * Credentials: `awsAccessKeyID` (or `awsAccessKeyId`) + `awsSecretAccessKey` (+ optional `awsSessionToken`) from a
 * TriggerAuthentication; KEDA's legacy `awsAccessKeyID` / `awsAccessKeyIDFromEnv` + `awsSecretAccessKeyFromEnv`
 * metadata; else the AWS SDK's default credential chain of the sluice process (environment, shared files, web
 * identity / IRSA, container and instance metadata).
 *
 * Deliberate differences from KEDA (strict where KEDA is lax):
 * - `queueLength` is any number > 0 (KEDA: integers only, and it accepts 0, which gives the HPA a zero target);
 *   `activationQueueLength` is any number ≥ 0. Fractions are meaningful: `queueLength: "0.5"` asks for two replicas
 *   per message. Every integer KEDA accepts means the same here.
 * - `queueURL` must be an http(s) URL whose path is exactly `/<account>/<name>` (both non-empty, no credentials) or
 *   a bare queue name as SQS allows them (1–80 of `A-Z a-z 0-9 _ -`, optionally ending in `.fifo`); KEDA takes any
 *   string that does not parse as a URL as a queue name.
 * - `queueURLFromEnv` naming a variable the container lacks is an error naming that field (KEDA: "missing queueURL").
 * - `awsRegion` must look like a region (a DNS label); `awsEndpoint` must be an http(s) URL without credentials.
 * - Requests go to `awsEndpoint` when set, else to the region's endpoint; never to the queue URL's host (the JS SDK's
 *   `useQueueUrlAsEndpoint` is off, which is what KEDA's Go SDK does).
 * - No credentials at all means the SDK's default chain (KEDA: an error unless `identityOwner: operator` or pod
 *   identity). An access key without its secret (or the reverse), a session token without both, secrets written
 *   inline in trigger metadata, and `identityOwner: operator` together with static credentials are errors.
 * - `awsRoleArn` / `awsExternalID` (assume role) and TriggerAuthentication pod identity are not supported yet and
 *   are rejected rather than ignored; an IRSA web identity works through the default chain.
 * - Every failure (missing queue, refused credentials, no credentials, timeout, unreachable endpoint, 5xx, a
 *   malformed answer, a missing or non-integer attribute) is a ScalerError, never 0.
 */
import {
  GetQueueAttributesCommand,
  SQSClient,
  SQSServiceException,
  type QueueAttributeName,
  type SQSClientConfig,
} from '@aws-sdk/client-sqs';
import { BackendError, ScalerError, ValidationError } from '../errors.ts';
import { lookupParam, parseParams, triggerSources, type ParamSources, type ParamSpec } from './metadata.ts';
import { fingerprint } from '../fingerprint.ts';
import { defineScaler, metricNameFor, type ScalerFactory, type Source, type TriggerInput } from './scaler.ts';

const params = {
  queueURL: { type: 'string', fromEnv: true },
  queueLength: { type: 'number', default: 5, min: 0, exclusiveMin: true },
  activationQueueLength: { type: 'number', default: 0, min: 0 },
  awsRegion: { type: 'string', fromAuth: true },
  awsEndpoint: { type: 'string', optional: true },
  scaleOnInFlight: { type: 'boolean', default: true },
  scaleOnDelayed: { type: 'boolean', default: false },
  /** Deprecated in KEDA: `operator` means the operator's own identity (here: the default chain). */
  identityOwner: { type: 'enum', values: ['pod', 'operator'], optional: true },
} as const satisfies ParamSpec;

/** SQS has no `timeout` parameter in KEDA; one read is bounded by this. */
const SQS_TIMEOUT_MS = 5000;
const VISIBLE = 'ApproximateNumberOfMessages';
const IN_FLIGHT = 'ApproximateNumberOfMessagesNotVisible';
const DELAYED = 'ApproximateNumberOfMessagesDelayed';

/** SQS queue names: 1 to 80 characters of letters, digits, `_` and `-`; FIFO queues end in `.fifo`. */
const QUEUE_NAME = /^[A-Za-z0-9_-]+(\.fifo)?$/;
const REGION = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

export interface AwsSqsQueueConfig {
  /** Sent as `QueueUrl` as written (a URL or a bare queue name). */
  readonly queueUrl: string;
  readonly queueName: string;
  readonly target: number;
  readonly activationQueueLength: number;
  readonly region: string;
  readonly endpoint: string | undefined;
  readonly attributes: readonly QueueAttributeName[];
  /** Static credentials; undefined means the SDK's default chain. Never log them. */
  readonly credentials: AwsCredentials | undefined;
}

export function parseAwsSqsQueueConfig(trigger: TriggerInput): AwsSqsQueueConfig {
  const sources = triggerSources(trigger);
  const { path } = sources;
  const p = parseParams(params, sources);
  const queueName = queueNameOf(p.queueURL, `${path}.queueURL`);
  if (!REGION.test(p.awsRegion)) {
    throw new ValidationError(`${path}.awsRegion`, `"${p.awsRegion}" is not an AWS region name`);
  }
  let endpoint: string | undefined;
  if (p.awsEndpoint !== undefined) {
    const url = URL.parse(p.awsEndpoint);
    if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      throw new ValidationError(`${path}.awsEndpoint`, 'is not an http(s) URL');
    }
    if (url.username !== '' || url.password !== '') {
      throw new ValidationError(`${path}.awsEndpoint`, 'must not contain credentials (use a TriggerAuthentication)');
    }
    endpoint = p.awsEndpoint;
  }
  const credentials = parseCredentials(trigger, sources);
  if (credentials !== undefined && p.identityOwner === 'operator') {
    throw new ValidationError(
      `${path}.identityOwner`,
      '"operator" uses sluice\'s own AWS identity and cannot be combined with static credentials',
    );
  }
  const attributes: QueueAttributeName[] = [VISIBLE];
  if (p.scaleOnInFlight) attributes.push(IN_FLIGHT);
  if (p.scaleOnDelayed) attributes.push(DELAYED);
  return {
    queueUrl: p.queueURL,
    queueName,
    target: p.queueLength,
    activationQueueLength: p.activationQueueLength,
    region: p.awsRegion,
    endpoint,
    attributes,
    credentials,
  };
}

/** The queue name from a queue URL (`http(s)://host/<account>/<name>`) or a bare queue name. */
function queueNameOf(raw: string, field: string): string {
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:/.test(raw) && !raw.includes('/')) {
    if (QUEUE_NAME.test(raw) && raw.length <= 80) return raw;
    throw new ValidationError(
      field,
      `"${raw}" is neither an http(s) queue URL nor a queue name (1 to 80 letters, digits, "_" or "-", optionally ending in ".fifo")`,
    );
  }
  const url = URL.parse(raw);
  if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new ValidationError(field, 'is neither an http(s) queue URL nor a queue name');
  }
  if (url.username !== '' || url.password !== '') {
    throw new ValidationError(field, 'must not contain credentials');
  }
  const parts = url.pathname.split('/');
  const account = parts[1] ?? '';
  let name = parts[2] ?? '';
  try {
    name = decodeURIComponent(name);
  } catch {
    name = '';
  }
  if (parts.length !== 3 || account === '' || !QUEUE_NAME.test(name) || name.length > 80) {
    throw new ValidationError(
      field,
      `cannot get the queue name from "${url.href}": the path must be exactly /<account>/<queue name>`,
    );
  }
  return name;
}

/** Static credentials from the TriggerAuthentication (or KEDA's legacy metadata/env), or undefined. */
function parseCredentials(trigger: TriggerInput, sources: ParamSources): AwsCredentials | undefined {
  const path = sources.path;
  const authRef = `spec.triggers[${trigger.index}].authenticationRef`;
  for (const inline of ['awsSecretAccessKey', 'awsSessionToken']) {
    if (trigger.metadata[inline]?.trim()) {
      throw new ValidationError(
        `${path}.${inline}`,
        'a secret must not be written in trigger metadata: put it in a TriggerAuthentication (or use awsSecretAccessKeyFromEnv)',
      );
    }
  }
  for (const unsupported of ['awsRoleArn', 'awsExternalID']) {
    if (trigger.authParams[unsupported]?.trim() || trigger.metadata[unsupported]?.trim()) {
      throw new ValidationError(
        trigger.authParams[unsupported]?.trim() ? authRef : `${path}.${unsupported}`,
        `${unsupported} (assuming a role) is not supported; use static credentials or the default credential chain (e.g. IRSA)`,
      );
    }
  }
  const authOnly: ParamSources = { ...sources, metadata: {} };
  // KEDA's order: the TriggerAuthentication first, then the legacy metadata / environment variable.
  const accessKeyId =
    lookupParam('awsAccessKeyID', { fromAuth: true }, authOnly) ??
    lookupParam('awsAccessKeyId', { fromAuth: true }, authOnly) ??
    lookupParam('awsAccessKeyID', { fromEnv: true }, sources);
  const secretAccessKey =
    lookupParam('awsSecretAccessKey', { fromAuth: true }, authOnly) ??
    lookupParam('awsSecretAccessKey', { fromEnv: true }, sources);
  const sessionToken = lookupParam('awsSessionToken', { fromAuth: true }, authOnly);

  if (accessKeyId === undefined && secretAccessKey === undefined) {
    if (sessionToken !== undefined) {
      throw new ValidationError(authRef, 'awsSessionToken is given without awsAccessKeyID and awsSecretAccessKey');
    }
    return undefined;
  }
  if (accessKeyId === undefined) {
    throw new ValidationError(
      authRef,
      'awsSecretAccessKey is given without awsAccessKeyID (set both, or neither to use the default credential chain)',
    );
  }
  if (secretAccessKey === undefined) {
    const fromAuth = trigger.authParams['awsAccessKeyID']?.trim() || trigger.authParams['awsAccessKeyId']?.trim();
    throw new ValidationError(
      fromAuth ? authRef : `${path}.awsSecretAccessKeyFromEnv`,
      'awsAccessKeyID is given without awsSecretAccessKey (set both, or neither to use the default credential chain)',
    );
  }
  return sessionToken === undefined ? { accessKeyId, secretAccessKey } : { accessKeyId, secretAccessKey, sessionToken };
}

/** What the scaler needs of an SQS client: `send`, and `destroy` to release its sockets. */
export type SqsPort = Pick<SQSClient, 'send'> & Partial<Pick<SQSClient, 'destroy'>>;
export type SqsClientFactory = (config: SQSClientConfig) => SqsPort;

/** The SDK client configuration for a parsed trigger. */
export function sqsClientConfig(config: AwsSqsQueueConfig): SQSClientConfig {
  return {
    region: config.region,
    useQueueUrlAsEndpoint: false,
    ...(config.endpoint === undefined ? {} : { endpoint: config.endpoint }),
    ...(config.credentials === undefined ? {} : { credentials: { ...config.credentials } }),
  };
}

/** The three counts one read asks for, whatever the trigger's flags, so triggers on one queue share the read. */
const ALL_ATTRIBUTES: readonly QueueAttributeName[] = [VISIBLE, IN_FLIGHT, DELAYED];

/** One read of a queue: its counts by attribute name. */
export type SqsReading = Readonly<Record<string, number>>;

/**
 * The factory over any SQS client (tests pass a stub). One client per endpoint (or region) and credentials is shared
 * by every reader there, created on the first read; at most one GetQueueAttributes per queue is in flight.
 */
export function awsSqsQueueScalerFactory(makeClient: SqsClientFactory): ScalerFactory {
  return (trigger) => {
    const config = parseAwsSqsQueueConfig(trigger);
    const metricName = metricNameFor(trigger.index, `aws-sqs-${config.queueName}`);
    const endpoint = config.endpoint === undefined ? `region ${config.region}` : safeEndpoint(config.endpoint);
    const where = `queue "${config.queueName}" at ${endpoint}`;
    const backend = `aws-sqs|${config.endpoint ?? ''}|${config.region}|${fingerprint(config.credentials ?? null)}`;
    const source: Source<SqsReading> = {
      key: `${backend}|${config.queueUrl}`,
      backend,
      describe: `SQS ${endpoint}`,
      timeoutMs: SQS_TIMEOUT_MS,
      open(shared) {
        const lease = shared.lease(
          `sqs-client|${backend}`,
          () => makeClient(sqsClientConfig(config)),
          (client) => client.destroy?.(),
        );
        return {
          async read(signal) {
            if (signal.aborted) throw sqsError(signal.reason, where, endpoint, signal, config.credentials);
            let attributes: Partial<Record<string, string>> | undefined;
            try {
              const output = await lease.value.send(
                new GetQueueAttributesCommand({ QueueUrl: config.queueUrl, AttributeNames: [...ALL_ATTRIBUTES] }),
                { abortSignal: signal },
              );
              attributes = output.Attributes;
            } catch (cause) {
              throw sqsError(cause, where, endpoint, signal, config.credentials);
            }
            const counts: Record<string, number> = {};
            for (const name of ALL_ATTRIBUTES) {
              const raw = attributes?.[name];
              if (raw === undefined) throw new ScalerError(`SQS did not return ${name} for ${where}`);
              if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
                throw new ScalerError(`SQS returned a non-integer ${name} for ${where}`);
              }
              counts[name] = Number(raw);
            }
            return counts;
          },
          close() {
            lease.release();
            return Promise.resolve();
          },
        };
      },
    };
    return defineScaler({
      metricName,
      target: config.target,
      metricType: trigger.metricType,
      source,
      evaluate(counts) {
        const value = config.attributes.reduce((sum, name) => sum + (counts[name] ?? 0), 0);
        return { value, active: value > config.activationQueueLength };
      },
    });
  };
}

export const createAwsSqsQueueScaler: ScalerFactory = awsSqsQueueScalerFactory((config) => new SQSClient(config));

/** The endpoint for messages: origin and path, never userinfo or query. */
function safeEndpoint(endpoint: string): string {
  const url = URL.parse(endpoint);
  return url === null ? 'the configured endpoint' : `${url.origin}${url.pathname === '/' ? '' : url.pathname}`;
}

/** Error names of the SQS / AWS authentication and authorization failures. */
const AUTH_FAILURES = new Set([
  'AccessDenied',
  'AccessDeniedException',
  'ExpiredToken',
  'ExpiredTokenException',
  'IncompleteSignature',
  'InvalidAccessKeyId',
  'InvalidClientTokenId',
  'InvalidSecurity',
  'MissingAuthenticationToken',
  'NotAuthorized',
  'RequestExpired',
  'SignatureDoesNotMatch',
  'UnrecognizedClientException',
]);

/** The AWS SDK's throttling error names (RequestThrottled, ThrottlingException, TooManyRequestsException, …). */
const THROTTLING = /Throttl|TooManyRequests|SlowDown/;

interface SdkErrorShape {
  name?: unknown;
  message?: unknown;
  code?: unknown;
  $metadata?: { httpStatusCode?: unknown };
}

/** One ScalerError for any failure of GetQueueAttributes, naming the queue and never a credential. */
function sqsError(
  cause: unknown,
  where: string,
  endpoint: string,
  signal: AbortSignal,
  credentials: AwsCredentials | undefined,
): ScalerError {
  const e = (typeof cause === 'object' && cause !== null ? cause : {}) as SdkErrorShape;
  const name = typeof e.name === 'string' ? e.name : 'Error';
  const detail = typeof e.message === 'string' ? e.message : String(cause);
  const status = typeof e.$metadata?.httpStatusCode === 'number' ? e.$metadata.httpStatusCode : undefined;
  const code = typeof e.code === 'string' ? e.code : undefined;

  // The JSON protocol cannot parse an answer in another format (moto and some proxies answer auth errors in XML).
  const unparsed = name === 'SyntaxError' || detail.includes('Deserialization error');
  const http = status === undefined ? '' : ` (HTTP ${status})`;

  let message: string;
  // Everything but "no such queue", a malformed answer and an unclassified service error is the endpoint failing.
  let backend = true;
  if (signal.aborted || name === 'AbortError') {
    const timedOut = !(signal.reason instanceof Error) || signal.reason.name === 'TimeoutError';
    message = `a read from SQS at ${endpoint} ${timedOut ? 'timed out' : 'was cancelled'}`;
  } else if (name === 'QueueDoesNotExist' || name === 'AWS.SimpleQueueService.NonExistentQueue') {
    message = `${where} does not exist`;
    backend = false;
  } else if (name === 'CredentialsProviderError') {
    message = `no AWS credentials for SQS at ${endpoint}: the trigger has none and the default credential chain found none (${detail})`;
  } else if (AUTH_FAILURES.has(name) || status === 401 || status === 403) {
    // An answer the SDK could not parse (moto answers auth failures in XML) leaves only the status.
    const reason = unparsed ? `HTTP ${status}` : `${name}${http}: ${detail}`;
    message = `SQS at ${endpoint} refused the credentials (${reason})`;
  } else if (status !== undefined && status >= 500) {
    message = `SQS at ${endpoint} answered HTTP ${status}${unparsed ? '' : ` (${name})`}`;
  } else if (status === 429 || THROTTLING.test(name)) {
    // SQS throttles with HTTP 400 and a throttling error name: the endpoint shedding load, as an HTTP 429 is.
    message = `SQS at ${endpoint} answered HTTP ${status}${unparsed ? '' : ` (${name})`}`;
  } else if (unparsed) {
    message = `the SQS endpoint sent a malformed answer${http} for ${where}`;
    backend = false;
  } else if (code !== undefined && /^E[A-Z_]+$/.test(code)) {
    message = `cannot reach SQS at ${endpoint}: ${code}`;
  } else if (cause instanceof SQSServiceException) {
    message = `SQS answered ${name}${http} for ${where}: ${detail}`;
    backend = false;
  } else {
    message = `GetQueueAttributes failed at ${endpoint}: ${name}: ${detail}`;
  }
  const scrubbed = scrub(message, credentials);
  const causeDetail = scrub(detail, credentials);
  // A cause whose message would echo a credential is replaced by a scrubbed copy (describeError prints causes).
  const safeCause = causeDetail === detail ? cause : Object.assign(new Error(causeDetail), { name });
  return backend ? new BackendError(scrubbed, { cause: safeCause }) : new ScalerError(scrubbed, { cause: safeCause });
}

function scrub(text: string, credentials: AwsCredentials | undefined): string {
  if (credentials === undefined) return text;
  let out = text;
  for (const secret of [credentials.secretAccessKey, credentials.sessionToken, credentials.accessKeyId]) {
    if (secret !== undefined && secret.length >= 4) out = out.split(secret).join('***');
  }
  return out;
}
