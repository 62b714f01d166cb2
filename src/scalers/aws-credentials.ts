/**
 * Assuming an IAM role for a scaler (KEDA's `awsRoleArn` / `awsExternalID`, kedacore/keda pkg/scalers/aws): STS
 * AssumeRole with the base credentials (the trigger's static keys, else the SDK's default chain), and the temporary
 * credentials it returns, cached until REFRESH_MARGIN_MS before they expire.
 *
 * - One AssumeRole at a time: concurrent askers share the call in flight (single flight), and a caller that gives up
 *   (its signal aborts) stops waiting without cancelling it for the others; the call itself is bounded by
 *   STS_TIMEOUT_MS.
 * - The provider doubles as the SDK client's `credentials`: the SDK memoizes it and asks again when the expiration is
 *   less than 5 minutes away, which is when this cache lets go of them too.
 * - Every failure is an AssumeRoleError (a BackendError: the scaler's backend cannot be read with these credentials)
 *   naming the role ARN, never a key: refused (AccessDenied, a wrong external ID, unknown base keys), no base
 *   credentials at all, STS unreachable or timing out, an answer without credentials.
 *
 * The role session name is `sluice-<scaler>` (e.g. `sluice-aws-sqs-queue`): stable, so a trust policy may test
 * `sts:RoleSessionName`, and it shows in CloudTrail as `assumed-role/<role>/sluice-aws-sqs-queue`. (KEDA's Go SDK
 * names sessions `aws-go-sdk-<nanoseconds>`.)
 */
import type { STSClient, STSClientConfig } from '@aws-sdk/client-sts';
import { loadAwsSdk } from './aws-sdk.ts';
import { BackendError } from '../errors.ts';
import { abortable } from './abortable.ts';
import { findAddressRefusal } from './address-filter.ts';

/** An IAM role ARN: `arn:<partition>:iam::<12-digit account>:role/<optional/path/>name`. */
export const ROLE_ARN = /^arn:aws(?:-[a-z]+)*:iam::\d{12}:role\/(?:[\w+=,.@-]+\/)*[\w+=,.@-]{1,64}$/;
/** STS's ExternalId: 2 to 1224 characters of `\w+=,.@:/-`. */
export const EXTERNAL_ID = /^[\w+=,.@:/-]{2,1224}$/;

/** What is asked for: one hour, which every role allows (MaxSessionDuration is at least 1 h; role chaining at most). */
export const ROLE_SESSION_SECONDS = 3600;
/**
 * Temporary credentials are renewed this long before they expire (the AWS SDK's own margin; credentials that live
 * less than twice as long are renewed halfway).
 */
export const REFRESH_MARGIN_MS = 5 * 60_000;
/** Bounds one AssumeRole call. */
export const STS_TIMEOUT_MS = 10_000;

export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

/** Temporary credentials, with their expiration (which the SDK reads to know when to ask again). */
export interface TemporaryCredentials extends AwsCredentials {
  readonly sessionToken: string;
  readonly expiration: Date;
}

export interface AssumedRole {
  readonly roleArn: string;
  /** STS's ExternalId (what the role's trust policy may require); undefined when not given. */
  readonly externalId: string | undefined;
}

/** What the provider needs of an STS client: `send`, and `destroy` to release its sockets. */
export type StsPort = Pick<STSClient, 'send'> & Partial<Pick<STSClient, 'destroy'>>;
export type StsClientFactory = (config: STSClientConfig) => StsPort;

/** The STS client configuration: the scaler's region and endpoint (moto and VPC endpoints serve STS too). */
export function stsClientConfig(options: {
  readonly region: string;
  readonly endpoint: string | undefined;
  readonly credentials: AwsCredentials | undefined;
}): STSClientConfig {
  return {
    region: options.region,
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    ...(options.credentials === undefined ? {} : { credentials: { ...options.credentials } }),
  };
}

/**
 * Error codes of AssumeRole and the common errors of the AWS STS API Reference ("AssumeRole", "Common Errors"): the
 * codes a message may name.
 */
const KNOWN_STS_ERRORS = new Set([
  'AccessDenied',
  'AccessDeniedException',
  'ExpiredToken',
  'ExpiredTokenException',
  'IncompleteSignature',
  'InternalFailure',
  'InvalidAction',
  'InvalidClientTokenId',
  'InvalidParameterCombination',
  'InvalidParameterValue',
  'MalformedPolicyDocument',
  'MissingAuthenticationToken',
  'NotAuthorized',
  'PackedPolicyTooLarge',
  'RegionDisabledException',
  'RequestExpired',
  'ServiceUnavailable',
  'SignatureDoesNotMatch',
  'ThrottlingException',
  'ValidationError',
]);

/** A failure to get credentials for the role. Its message names the role ARN and never a credential. */
export class AssumeRoleError extends BackendError {}

export interface AssumeRoleProviderOptions {
  readonly sts: StsPort;
  readonly role: AssumedRole;
  readonly sessionName: string;
  /** For messages: where STS is (`http://127.0.0.1:4566`, `region eu-west-1`). */
  readonly stsWhere: string;
  /** The base credentials, scrubbed from every message (undefined: the default chain). */
  readonly baseCredentials: AwsCredentials | undefined;
  readonly now?: () => number;
}

/** Temporary credentials for a role, cached and renewed; see the top of this file. */
export class AssumeRoleProvider {
  readonly #options: AssumeRoleProviderOptions;
  readonly #now: () => number;
  #cached: { readonly credentials: TemporaryCredentials; readonly refreshAt: number } | undefined;
  #pending: Promise<TemporaryCredentials> | undefined;
  /** AssumeRole calls made (tests). */
  calls = 0;

  constructor(options: AssumeRoleProviderOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /**
   * The role's credentials: cached ones while they are good for more than REFRESH_MARGIN_MS, else from one
   * AssumeRole shared by every concurrent caller. `signal` bounds this caller's wait only.
   */
  credentials(signal?: AbortSignal): Promise<TemporaryCredentials> {
    const cached = this.#cached;
    if (cached !== undefined && this.#now() < cached.refreshAt) return Promise.resolve(cached.credentials);
    if (this.#pending === undefined) {
      const pending = this.#assume().finally(() => {
        this.#pending = undefined;
      });
      // Every asker may have given up waiting: the outcome is then only cached, never an unhandled rejection.
      pending.catch(() => undefined);
      this.#pending = pending;
    }
    if (signal === undefined) return this.#pending;
    const { roleArn } = this.#options.role;
    return abortable(this.#pending, signal, () => {
      const reason: unknown = signal.reason;
      const timedOut = !(reason instanceof Error) || reason.name === 'TimeoutError';
      return new AssumeRoleError(
        `assuming role ${roleArn} at STS ${this.#options.stsWhere} ${timedOut ? 'timed out' : 'was cancelled'}`,
        { cause: reason },
      );
    });
  }

  /** The SDK's credential provider over this cache. */
  readonly provider = (): Promise<TemporaryCredentials> => this.credentials();

  async #assume(): Promise<TemporaryCredentials> {
    const { sts, role, sessionName } = this.#options;
    this.calls++;
    const started = this.#now();
    const timeout = AbortSignal.timeout(STS_TIMEOUT_MS);
    let output;
    try {
      const { AssumeRoleCommand } = (await loadAwsSdk()).sts;
      output = await sts.send(
        new AssumeRoleCommand({
          RoleArn: role.roleArn,
          RoleSessionName: sessionName,
          DurationSeconds: ROLE_SESSION_SECONDS,
          ...(role.externalId === undefined ? {} : { ExternalId: role.externalId }),
        }),
        { abortSignal: timeout },
      );
    } catch (cause) {
      // sluice refused STS's address (address-filter.ts): its own error, which no circuit breaker counts.
      const refused = findAddressRefusal(cause);
      if (refused !== undefined) throw refused.at(`STS at ${this.#options.stsWhere}`);
      throw this.#error(cause, timeout);
    }
    const c = output.Credentials;
    const expiration = c?.Expiration instanceof Date ? c.Expiration : undefined;
    if (
      c?.AccessKeyId === undefined ||
      c.SecretAccessKey === undefined ||
      c.SessionToken === undefined ||
      expiration === undefined ||
      Number.isNaN(expiration.getTime())
    ) {
      throw new AssumeRoleError(
        `cannot assume role ${role.roleArn}: STS at ${this.#options.stsWhere} answered without complete credentials`,
      );
    }
    const credentials: TemporaryCredentials = {
      accessKeyId: c.AccessKeyId,
      secretAccessKey: c.SecretAccessKey,
      sessionToken: c.SessionToken,
      expiration,
    };
    // Renewed REFRESH_MARGIN_MS before they expire, or halfway through a shorter life (never asked for here).
    const lifetime = expiration.getTime() - started;
    this.#cached = { credentials, refreshAt: expiration.getTime() - Math.min(REFRESH_MARGIN_MS, lifetime / 2) };
    return credentials;
  }

  #error(cause: unknown, timeout: AbortSignal): AssumeRoleError {
    const { role, stsWhere } = this.#options;
    const e = (typeof cause === 'object' && cause !== null ? cause : {}) as {
      name?: unknown;
      message?: unknown;
      code?: unknown;
      $metadata?: { httpStatusCode?: unknown };
    };
    const rawName = typeof e.name === 'string' ? e.name : 'Error';
    const status = typeof e.$metadata?.httpStatusCode === 'number' ? e.$metadata.httpStatusCode : undefined;
    // An answer's error code and message are the endpoint's text (`awsEndpoint` may be any server): a known code is
    // named, the message is never quoted (docs/security.md#read-back-and-reach).
    const answered = status !== undefined;
    const name = !answered || KNOWN_STS_ERRORS.has(rawName) ? rawName : 'an error code sluice does not know';
    const detail = answered ? '' : this.#scrub(typeof e.message === 'string' ? e.message : String(cause));
    const code = typeof e.code === 'string' ? e.code : undefined;
    const prefix = `cannot assume role ${role.roleArn}`;
    let message: string;
    if (timeout.aborted || name === 'AbortError') {
      message = `${prefix}: STS at ${stsWhere} did not answer within ${STS_TIMEOUT_MS} ms`;
    } else if (name === 'CredentialsProviderError') {
      message = `${prefix}: no AWS credentials to call STS with (the trigger has none and the default credential chain found none)`;
    } else if (code !== undefined && /^E[A-Z_]+$/.test(code) && status === undefined) {
      message = `${prefix}: cannot reach STS at ${stsWhere}: ${code}`;
    } else if (status !== undefined) {
      const unparsed = rawName === 'SyntaxError';
      message = `${prefix}: STS at ${stsWhere} answered ${unparsed || !KNOWN_STS_ERRORS.has(rawName) ? `HTTP ${status}` : `${name} (HTTP ${status})`}`;
    } else {
      message = `${prefix} at STS ${stsWhere}: ${name}: ${detail}`;
    }
    const safeCause = answered
      ? Object.assign(new Error(`${name} (HTTP ${String(status)})`), { name: 'STSAnswer' })
      : detail === e.message
        ? cause
        : Object.assign(new Error(detail), { name });
    return new AssumeRoleError(message, { cause: safeCause });
  }

  #scrub(text: string): string {
    const base = this.#options.baseCredentials;
    if (base === undefined) return text;
    let out = text;
    for (const secret of [base.secretAccessKey, base.sessionToken, base.accessKeyId]) {
      if (secret !== undefined && secret.length >= 4) out = out.split(secret).join('***');
    }
    return out;
  }
}
