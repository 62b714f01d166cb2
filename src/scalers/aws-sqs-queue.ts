/**
 * The `aws-sqs-queue` scaler (KEDA's parameters): the queue's `ApproximateNumberOfMessages`, plus
 * `…NotVisible` (in flight, `scaleOnInFlight`, default true) and `…Delayed` (`scaleOnDelayed`, default false), read
 * with one GetQueueAttributes call and summed. Metric name `s<i>-aws-sqs-<queueName>`, normalized as KEDA does.
 *
 * Credentials: `awsAccessKeyID` (or `awsAccessKeyId`) + `awsSecretAccessKey` (+ optional `awsSessionToken`) from a
 * TriggerAuthentication; KEDA's legacy `awsAccessKeyID` / `awsAccessKeyIDFromEnv` + `awsSecretAccessKeyFromEnv`
 * metadata; else, only with `identityOwner: operator` in the trigger metadata (as KEDA) and an operator started with
 * `--allow-operator-cloud-identity`, the AWS SDK's default credential chain of the sluice process (environment, shared
 * files, web identity / IRSA, container and instance metadata): sluice's own identity. Static keys from the
 * TriggerAuthentication are sent only to its `awsEndpoint` (else AWS's endpoint for the region): `awsEndpoint` in
 * trigger metadata is then an error (docs/security.md#credentials).
 *
 * Assuming a role: `awsRoleArn` (+ optional `awsExternalID`, or KEDA's spelling `awsExternalId`) from the
 * TriggerAuthentication. sluice calls STS AssumeRole (session `sluice-aws-sqs-queue`, one hour) with the base
 * credentials above (static keys if the trigger has them, else, with `identityOwner: operator`, the default chain), at
 * `awsEndpoint` when set (else the region's STS endpoint), and reads SQS with the temporary credentials, renewed 5
 * minutes before they expire (aws-credentials.ts). Triggers on one endpoint share an SQS client only when their base credentials, role and
 * external ID are all equal. An AssumeRole failure is a BackendError naming the role ARN ("cannot assume role …").
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
 * - No credentials and no `identityOwner: operator` is an error, as in KEDA (which also takes pod identity). An access
 *   key without its secret (or the reverse), a session token without both, secrets written inline in trigger
 *   metadata, and `identityOwner: operator` together with static credentials are errors.
 * - `awsRoleArn` is used together with static keys from the TriggerAuthentication: they are the base credentials that
 *   assume the role (KEDA ignores the keys when a role is given and assumes it with the default chain).
 * - `awsRoleArn` must look like an IAM role ARN and `awsExternalID` like an STS external ID; `awsExternalID` without
 *   `awsRoleArn` is an error (KEDA logs that it is ignored); both in trigger metadata are errors (KEDA reads them from
 *   the TriggerAuthentication only, and ignores them in metadata).
 * - TriggerAuthentication pod identity (`podIdentity.provider: aws`) is not supported here; an IRSA web identity
 *   works through the default chain, and a role to assume on top of it through `awsRoleArn`.
 * - Every failure (missing queue, refused credentials, no credentials, timeout, unreachable endpoint, 5xx, a
 *   malformed answer, a missing or non-integer attribute) is a ScalerError, never 0.
 */
import type { QueueAttributeName, SQSClient, SQSClientConfig } from '@aws-sdk/client-sqs';
import { awsSdk, loadAwsSdk, loadedAwsSdk } from './aws-sdk.ts';
import { BackendError, ScalerError, ValidationError } from '../errors.ts';
import { findAddressRefusal, outboundGuard } from './address-filter.ts';
import {
  credentialsFromAuth,
  lookupParam,
  parseParams,
  pinAddress,
  triggerSources,
  type ParamSources,
  type ParamSpec,
} from './metadata.ts';
import { fingerprint } from '../fingerprint.ts';
import {
  AssumeRoleError,
  AssumeRoleProvider,
  EXTERNAL_ID,
  ROLE_ARN,
  stsClientConfig,
  type AssumedRole,
  type AwsCredentials,
  type StsClientFactory,
  type StsPort,
} from './aws-credentials.ts';
import { defineScaler, metricNameFor, type ScalerFactory, type Source, type TriggerInput } from './scaler.ts';

const params = {
  queueURL: { type: 'string', fromEnv: true },
  queueLength: { type: 'number', default: 5, min: 0, exclusiveMin: true },
  activationQueueLength: { type: 'number', default: 0, min: 0 },
  awsRegion: { type: 'string', fromAuth: true },
  awsEndpoint: { type: 'string', optional: true, fromAuth: true },
  scaleOnInFlight: { type: 'boolean', default: true },
  scaleOnDelayed: { type: 'boolean', default: false },
  /** Deprecated in KEDA: `operator` means the operator's own identity (here: the default chain). */
  identityOwner: { type: 'enum', values: ['pod', 'operator'], optional: true },
} as const satisfies ParamSpec;

/** Static keys a TriggerAuthentication may supply (both spellings of the key ID). */
const STATIC_KEYS = ['awsAccessKeyID', 'awsAccessKeyId', 'awsSecretAccessKey', 'awsSessionToken'] as const;

/** SQS has no `timeout` parameter in KEDA; one read is bounded by this. */
const SQS_TIMEOUT_MS = 5000;
const VISIBLE = 'ApproximateNumberOfMessages';
const IN_FLIGHT = 'ApproximateNumberOfMessagesNotVisible';
const DELAYED = 'ApproximateNumberOfMessagesDelayed';

/** SQS queue names: 1 to 80 characters of letters, digits, `_` and `-`; FIFO queues end in `.fifo`. */
const QUEUE_NAME = /^[A-Za-z0-9_-]+(\.fifo)?$/;
const REGION = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

export type { AwsCredentials } from './aws-credentials.ts';

/** The role session name sluice gives STS (stable, no secret). */
export const SQS_ROLE_SESSION_NAME = 'sluice-aws-sqs-queue';

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
  /** A role to assume with `credentials` (or the default chain); SQS is then read as that role. */
  readonly role: AssumedRole | undefined;
}

export function parseAwsSqsQueueConfig(trigger: TriggerInput): AwsSqsQueueConfig {
  const sources = triggerSources(trigger);
  const { path } = sources;
  const authRef = `spec.triggers[${trigger.index}].authenticationRef`;
  // Static keys from the TriggerAuthentication go only to its awsEndpoint (else AWS's own endpoint for the region).
  pinAddress(sources, 'awsEndpoint', credentialsFromAuth(sources, STATIC_KEYS), {
    metadata: 'refused',
    required: false,
    authRef,
  });
  const p = parseParams(params, sources);
  const queueName = queueNameOf(p.queueURL, `${path}.queueURL`);
  if (!REGION.test(p.awsRegion)) {
    throw new ValidationError(`${path}.awsRegion`, `"${p.awsRegion}" is not an AWS region name`);
  }
  let endpoint: string | undefined;
  if (p.awsEndpoint !== undefined) {
    const url = URL.parse(p.awsEndpoint);
    // From the TriggerAuthentication, the error names it (the value is not quoted either way).
    const [field, what] = trigger.metadata['awsEndpoint']?.trim()
      ? [`${path}.awsEndpoint`, '']
      : [authRef, 'awsEndpoint '];
    if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      throw new ValidationError(field, `${what}is not an http(s) URL`);
    }
    if (url.username !== '' || url.password !== '') {
      throw new ValidationError(field, `${what}must not contain credentials (use a TriggerAuthentication)`);
    }
    endpoint = p.awsEndpoint;
  }
  const credentials = parseCredentials(trigger, sources);
  const role = parseRole(trigger, sources);
  if (credentials !== undefined && p.identityOwner === 'operator') {
    throw new ValidationError(
      `${path}.identityOwner`,
      '"operator" uses sluice\'s own AWS identity and cannot be combined with static credentials',
    );
  }
  // sluice's own identity (the SDK's default chain, also as the base of an assumed role) only when the trigger asks
  // for it, as KEDA requires; the operator must allow that too (auth-resolver.ts, --allow-operator-cloud-identity).
  if (credentials === undefined && p.identityOwner !== 'operator') {
    throw new ValidationError(
      authRef,
      `${role === undefined ? 'the trigger has no AWS credentials' : "awsRoleArn without awsAccessKeyID and awsSecretAccessKey would be assumed with sluice's own AWS identity"}: ` +
        'give awsAccessKeyID and awsSecretAccessKey through a TriggerAuthentication, or set identityOwner: ' +
        '"operator" in the trigger metadata to use sluice\'s own AWS identity (the SDK\'s default credential chain), ' +
        'which the operator allows only when started with --allow-operator-cloud-identity',
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
    role,
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

/**
 * `awsRoleArn` and `awsExternalID` (or `awsExternalId`) from the TriggerAuthentication. An ARN and an external ID are
 * not secrets, but an external ID is quoted nowhere all the same.
 */
function parseRole(trigger: TriggerInput, sources: ParamSources): AssumedRole | undefined {
  const authRef = `spec.triggers[${trigger.index}].authenticationRef`;
  const fromAuth = { fromAuth: true, fromMetadata: false } as const;
  const roleArn = lookupParam('awsRoleArn', fromAuth, sources);
  // Read both spellings, so that one in trigger metadata is refused whichever it is.
  const externalIds = ['awsExternalID', 'awsExternalId'].map((name) => lookupParam(name, fromAuth, sources));
  const externalId = externalIds.find((id) => id !== undefined);
  if (externalIds.every((id) => id !== undefined) && externalIds[0] !== externalIds[1]) {
    throw new ValidationError(authRef, 'awsExternalID and awsExternalId are both given, with different values');
  }
  if (roleArn === undefined) {
    if (externalId !== undefined) {
      throw new ValidationError(
        authRef,
        'awsExternalID is given without awsRoleArn (it is only used to assume a role)',
      );
    }
    return undefined;
  }
  if (!ROLE_ARN.test(roleArn)) {
    throw new ValidationError(
      authRef,
      `awsRoleArn "${roleArn}" is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)`,
    );
  }
  if (externalId !== undefined && !EXTERNAL_ID.test(externalId)) {
    throw new ValidationError(
      authRef,
      'awsExternalID must be 2 to 1224 characters of letters, digits and _+=,.@:/- (STS rejects anything else)',
    );
  }
  return { roleArn, externalId };
}

/** What the scaler needs of an SQS client: `send`, and `destroy` to release its sockets. */
export type SqsPort = Pick<SQSClient, 'send'> & Partial<Pick<SQSClient, 'destroy'>>;
export type SqsClientFactory = (config: SQSClientConfig) => SqsPort;

/**
 * The SDK client configuration for a parsed trigger; with a role, `roleCredentials` is the assumed role's provider
 * (which the SDK memoizes, asking again when the credentials are about to expire).
 */
export function sqsClientConfig(
  config: AwsSqsQueueConfig,
  roleCredentials?: AssumeRoleProvider['provider'],
): SQSClientConfig {
  const credentials = roleCredentials ?? (config.credentials === undefined ? undefined : { ...config.credentials });
  return {
    region: config.region,
    useQueueUrlAsEndpoint: false,
    ...(config.endpoint === undefined ? {} : { endpoint: config.endpoint }),
    ...(credentials === undefined ? {} : { credentials }),
  };
}

/** An SQS client and, with a role, the provider of its credentials (and the STS client behind it). */
interface SqsConnection {
  readonly sqs: SqsPort;
  readonly role: { readonly provider: AssumeRoleProvider; readonly sts: StsPort } | undefined;
}

/** An SqsConnection made on first use: the SDK's clients exist only once a read has loaded the SDK. */
class LazyConnection {
  readonly #make: () => SqsConnection;
  #made: SqsConnection | undefined;

  constructor(make: () => SqsConnection) {
    this.#make = make;
  }

  get(): SqsConnection {
    this.#made ??= this.#make();
    return this.#made;
  }

  destroy(): void {
    this.#made?.sqs.destroy?.();
    this.#made?.role?.sts.destroy?.();
  }
}

function connect(
  config: AwsSqsQueueConfig,
  { makeClient, makeSts, now }: { makeClient: SqsClientFactory; makeSts: StsClientFactory; now: () => number },
  stsWhere: string,
): SqsConnection {
  if (config.role === undefined) return { sqs: makeClient(sqsClientConfig(config)), role: undefined };
  const sts = makeSts(
    stsClientConfig({ region: config.region, endpoint: config.endpoint, credentials: config.credentials }),
  );
  const provider = new AssumeRoleProvider({
    sts,
    role: config.role,
    sessionName: SQS_ROLE_SESSION_NAME,
    stsWhere,
    baseCredentials: config.credentials,
    now,
  });
  return { sqs: makeClient(sqsClientConfig(config, provider.provider)), role: { provider, sts } };
}

/** The three counts one read asks for, whatever the trigger's flags, so triggers on one queue share the read. */
const ALL_ATTRIBUTES: readonly QueueAttributeName[] = [VISIBLE, IN_FLIGHT, DELAYED];

/** One read of a queue: its counts by attribute name. */
export type SqsReading = Readonly<Record<string, number>>;

/**
 * The factory over any SQS client (tests pass a stub, and a stub STS client for roles). One client per endpoint (or
 * region), credentials and role is shared by every reader there, created on the first read; at most one
 * GetQueueAttributes per queue is in flight.
 */
export function awsSqsQueueScalerFactory(
  makeClient: SqsClientFactory,
  makeSts: StsClientFactory = (config) =>
    new (awsSdk().sts.STSClient)({ ...config, requestHandler: outboundGuard().nodeAgents() }),
  now: () => number = Date.now,
): ScalerFactory {
  return (trigger) => {
    const config = parseAwsSqsQueueConfig(trigger);
    const metricName = metricNameFor(trigger.index, `aws-sqs-${config.queueName}`);
    const endpoint = config.endpoint === undefined ? `region ${config.region}` : safeEndpoint(config.endpoint);
    const where = `queue "${config.queueName}" at ${endpoint}`;
    // The role and external ID are part of the identity: two roles never share a client (nor a breaker).
    const identity = fingerprint(config.credentials ?? null, config.role ?? null);
    const backend = `aws-sqs|${config.endpoint ?? ''}|${config.region}|${identity}`;
    const source: Source<SqsReading> = {
      key: `${backend}|${config.queueUrl}`,
      backend,
      describe: `SQS ${endpoint}`,
      timeoutMs: SQS_TIMEOUT_MS,
      open(shared) {
        // The lease is taken when the source opens; its clients are made by the first read that uses them, once the
        // read has loaded the SDK (aws-sdk.ts), and destroyed with the lease only if they were made.
        const lease = shared.lease(
          `sqs-client|${backend}`,
          () => new LazyConnection(() => connect(config, { makeClient, makeSts, now }, endpoint)),
          (connection) => {
            connection.destroy();
          },
        );
        return {
          async read(signal) {
            if (signal.aborted) throw sqsError(signal.reason, where, endpoint, signal, config.credentials);
            const { GetQueueAttributesCommand } = (await loadAwsSdk()).sqs;
            const { sqs, role } = lease.value.get();
            // The role's credentials first (cached; an AssumeRole when they are about to expire), bounded by the
            // read's signal, so that a failure to assume the role is reported as such and a slow STS cannot hold
            // the read past its time (the SDK resolves credentials outside its abort signal).
            if (role !== undefined) await role.provider.credentials(signal);
            let attributes: Partial<Record<string, string>> | undefined;
            try {
              const output = await sqs.send(
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
      activation: config.activationQueueLength,
      source,
      evaluate(counts) {
        const value = config.attributes.reduce((sum, name) => sum + (counts[name] ?? 0), 0);
        return { value, active: value > config.activationQueueLength };
      },
    });
  };
}

/**
 * Over the SDK's clients, whose connections (to `awsEndpoint` or the region's endpoint, SQS and STS alike) go through
 * the address filter (address-filter.ts): Node Agents that check every address they connect to. The SDK's default
 * credential chain makes its own requests (the instance metadata service for the node's role): not filtered, as they
 * go where sluice's own identity is, never where a ScaledObject points.
 */
export const createAwsSqsQueueScaler: ScalerFactory = awsSqsQueueScalerFactory(
  (config) => new (awsSdk().sqs.SQSClient)({ ...config, requestHandler: outboundGuard().nodeAgents() }),
);

/** The endpoint for messages: origin and path, never userinfo or query. */
function safeEndpoint(endpoint: string): string {
  const url = URL.parse(endpoint);
  return url === null ? 'the configured endpoint' : `${url.origin}${url.pathname === '/' ? '' : url.pathname}`;
}

/** An error SQS answered (the SDK's service exception); none exists before the SDK is loaded. */
function isServiceException(cause: unknown): boolean {
  const sdk = loadedAwsSdk();
  return sdk !== undefined && cause instanceof sdk.sqs.SQSServiceException;
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

/**
 * Error codes a message may name when the endpoint sent them: the errors of GetQueueAttributes and the common errors
 * of the SQS API Reference ("GetQueueAttributes", "Common Errors"). The endpoint (`awsEndpoint`) may be any server,
 * so a code it sends is its text: any other is named "an error code sluice does not know", and its message is never
 * quoted (docs/security.md#read-back-and-reach).
 */
const KNOWN_ERRORS = new Set([
  ...AUTH_FAILURES,
  'QueueDoesNotExist',
  'AWS.SimpleQueueService.NonExistentQueue',
  'InvalidAddress',
  'InvalidAttributeName',
  'RequestThrottled',
  'ThrottlingException',
  'TooManyRequestsException',
  'UnsupportedOperation',
  'InternalFailure',
  'InternalError',
  'InvalidAction',
  'InvalidParameterCombination',
  'InvalidParameterValue',
  'InvalidQueryParameter',
  'MalformedQueryString',
  'MissingAction',
  'MissingParameter',
  'OptInRequired',
  'ServiceUnavailable',
  'ValidationError',
  'KmsAccessDenied',
  'KmsDisabled',
  'KmsInvalidKeyUsage',
  'KmsInvalidState',
  'KmsNotFound',
  'KmsOptInRequired',
  'KmsThrottled',
]);

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
  // The SDK asked the role's provider again and it failed: already worded, naming the role.
  if (cause instanceof AssumeRoleError) return cause;
  // sluice refused the endpoint's address (address-filter.ts): nothing was asked, and no breaker counts it.
  const refused = findAddressRefusal(cause);
  if (refused !== undefined) return refused.at(`SQS at ${endpoint}`);
  const e = (typeof cause === 'object' && cause !== null ? cause : {}) as SdkErrorShape;
  const rawName = typeof e.name === 'string' ? e.name : 'Error';
  const rawDetail = typeof e.message === 'string' ? e.message : String(cause);
  const status = typeof e.$metadata?.httpStatusCode === 'number' ? e.$metadata.httpStatusCode : undefined;
  const code = typeof e.code === 'string' ? e.code : undefined;

  // The JSON protocol cannot parse an answer in another format (moto and some proxies answer auth errors in XML).
  const unparsed = rawName === 'SyntaxError' || rawDetail.includes('Deserialization error');
  const http = status === undefined ? '' : ` (HTTP ${status})`;
  // What the endpoint answered (an error code and message it chose, or a body the SDK could not parse, which a
  // SyntaxError quotes) is its text: a known code is named, nothing else of it is quoted, not even in the cause.
  const answered = status !== undefined || unparsed || isServiceException(cause);
  const name = !answered || KNOWN_ERRORS.has(rawName) ? rawName : 'an error code sluice does not know';
  const detail = answered ? '' : rawDetail;

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
    const reason = unparsed || !KNOWN_ERRORS.has(rawName) ? `HTTP ${status}` : `${name}${http}`;
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
  } else if (isServiceException(cause)) {
    message = `SQS answered ${name}${http} for ${where}`;
    backend = false;
  } else {
    message = `GetQueueAttributes failed at ${endpoint}: ${name}${detail === '' ? http : `: ${detail}`}`;
  }
  const scrubbed = scrub(message, credentials);
  const causeDetail = scrub(detail, credentials);
  // describeError prints causes: an answer's error is replaced by one naming only what the message may name, and a
  // local error whose message would echo a credential by a scrubbed copy.
  const safeCause = answered
    ? Object.assign(new Error(`${name}${http}`), { name: 'SQSAnswer' })
    : causeDetail === rawDetail
      ? cause
      : Object.assign(new Error(causeDetail), { name });
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
