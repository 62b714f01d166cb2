import {
  GetQueueAttributesCommand,
  QueueDoesNotExist,
  SQSServiceException,
  type SQSClientConfig,
} from '@aws-sdk/client-sqs';
import { AssumeRoleCommand, STSServiceException, type STSClientConfig } from '@aws-sdk/client-sts';
import { describe, expect, it } from 'vitest';
import { BackendError, ScalerError, ValidationError, describeError } from '../../../src/errors.ts';
import {
  awsSqsQueueScalerFactory,
  createAwsSqsQueueScaler,
  parseAwsSqsQueueConfig,
  type SqsPort,
} from '../../../src/scalers/aws-sqs-queue.ts';
import type { StsPort } from '../../../src/scalers/aws-credentials.ts';
import { createScaler } from '../../../src/scalers/registry.ts';
import { SharedPool } from '../../../src/scalers/shared.ts';
import type { TriggerInput } from '../../../src/scalers/scaler.ts';
import { standalone, triggerInput, type StandaloneScaler } from '../../support/trigger.ts';

const properUrl = 'https://sqs.eu-west-1.amazonaws.com/account_id/DeleteArtifactQ';
const SECRET = 'S3CRET-value-never-shown';
const TOKEN = 'T0KEN-value-never-shown';
const ROLE = 'arn:aws:iam::123456789012:role/sqs-reader';
const EXTERNAL = 'ext-id-never-quoted';
const staticAuth = { awsAccessKeyId: 'AKIDEXAMPLE', awsSecretAccessKey: SECRET };

function trigger(
  metadata: Record<string, string>,
  authParams: Record<string, string> = staticAuth,
  extra: Partial<TriggerInput> = {},
): TriggerInput {
  return triggerInput({ type: 'aws-sqs-queue', metadata, authParams, ...extra });
}

const base = { queueURL: properUrl, awsRegion: 'eu-west-1' };

describe('aws-sqs-queue metadata', () => {
  const accepted: {
    comment: string;
    metadata: Record<string, string>;
    authParams?: Record<string, string>;
    resolvedEnv?: Record<string, string>;
    expect: Record<string, unknown>;
  }[] = [
    {
      comment: 'properly formed queue and region (KEDA row), static credentials from the TriggerAuthentication',
      metadata: { ...base, queueLength: '1' },
      expect: {
        queueUrl: properUrl,
        queueName: 'DeleteArtifactQ',
        target: 1,
        region: 'eu-west-1',
        credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: SECRET },
      },
    },
    {
      comment: 'defaults: queueLength 5, activation 0, in-flight counted, delayed not, no endpoint',
      metadata: base,
      expect: {
        target: 5,
        activationQueueLength: 0,
        endpoint: undefined,
        attributes: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
      },
    },
    {
      comment: 'a bare queue name (KEDA row "my-queue")',
      metadata: { ...base, queueURL: 'my-queue' },
      expect: { queueUrl: 'my-queue', queueName: 'my-queue' },
    },
    {
      comment: 'a bare FIFO queue name',
      metadata: { ...base, queueURL: 'orders_v2.fifo' },
      expect: { queueName: 'orders_v2.fifo' },
    },
    {
      comment: 'a FIFO queue URL on an emulator, http',
      metadata: { ...base, queueURL: 'http://127.0.0.1:4566/000000000000/jobs.fifo' },
      expect: { queueName: 'jobs.fifo' },
    },
    {
      comment: 'custom endpoint (emulators, VPC endpoints) from the TriggerAuthentication that has the keys',
      metadata: base,
      authParams: { ...staticAuth, awsEndpoint: 'http://localhost:4566' },
      expect: { endpoint: 'http://localhost:4566' },
    },
    {
      comment: "custom endpoint in metadata with sluice's own identity (identityOwner operator)",
      metadata: { ...base, awsEndpoint: 'http://localhost:4566', identityOwner: 'operator' },
      authParams: {},
      expect: { endpoint: 'http://localhost:4566', credentials: undefined },
    },
    {
      comment:
        "custom endpoint in metadata with KEDA's legacy keys from the container environment (not a TriggerAuthentication's)",
      metadata: {
        ...base,
        awsEndpoint: 'http://localhost:4566',
        awsAccessKeyIDFromEnv: 'AWS_KEY',
        awsSecretAccessKeyFromEnv: 'AWS_SECRET',
      },
      authParams: {},
      resolvedEnv: { AWS_KEY: 'AKIDENV', AWS_SECRET: SECRET },
      expect: { endpoint: 'http://localhost:4566', credentials: { accessKeyId: 'AKIDENV', secretAccessKey: SECRET } },
    },
    {
      comment: 'scaleOnInFlight false: visible messages only (KEDA row)',
      metadata: { ...base, scaleOnInFlight: 'false' },
      expect: { attributes: ['ApproximateNumberOfMessages'] },
    },
    {
      comment: 'scaleOnInFlight true (KEDA row) and scaleOnDelayed true: all three',
      metadata: { ...base, scaleOnInFlight: 'true', scaleOnDelayed: 'true' },
      expect: {
        attributes: [
          'ApproximateNumberOfMessages',
          'ApproximateNumberOfMessagesNotVisible',
          'ApproximateNumberOfMessagesDelayed',
        ],
      },
    },
    {
      comment: 'scaleOnDelayed without in-flight',
      metadata: { ...base, scaleOnInFlight: '0', scaleOnDelayed: '1' },
      expect: { attributes: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesDelayed'] },
    },
    {
      comment: 'integer activationQueueLength (KEDA row)',
      metadata: { ...base, queueLength: '1', activationQueueLength: '1' },
      expect: { target: 1, activationQueueLength: 1 },
    },
    {
      comment: 'fractional queueLength (a deliberate extension: KEDA takes integers only)',
      metadata: { ...base, queueLength: '0.5', activationQueueLength: '2.5' },
      expect: { target: 0.5, activationQueueLength: 2.5 },
    },
    {
      comment: 'temporary credentials from the TriggerAuthentication (KEDA row)',
      metadata: base,
      authParams: { ...staticAuth, awsSessionToken: TOKEN },
      expect: { credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: SECRET, sessionToken: TOKEN } },
    },
    {
      comment: 'the awsAccessKeyID spelling',
      metadata: base,
      authParams: { awsAccessKeyID: 'AKIDUPPER', awsSecretAccessKey: SECRET },
      expect: { credentials: { accessKeyId: 'AKIDUPPER', secretAccessKey: SECRET } },
    },
    {
      comment:
        'no credentials and identityOwner operator (KEDA: required for the operator identity): the SDK default chain',
      metadata: { ...base, identityOwner: 'operator' },
      authParams: {},
      expect: { credentials: undefined },
    },
    {
      comment: 'identityOwner operator with empty credentials (KEDA row): the default chain',
      metadata: { ...base, identityOwner: 'operator' },
      authParams: { awsAccessKeyId: '', awsSecretAccessKey: '' },
      expect: { credentials: undefined },
    },
    {
      comment: 'awsRegion from the TriggerAuthentication',
      metadata: { queueURL: properUrl },
      authParams: { ...staticAuth, awsRegion: 'us-west-2' },
      expect: { region: 'us-west-2' },
    },
    {
      comment: 'queueURLFromEnv resolves from the scale target container (KEDA row)',
      metadata: { queueURLFromEnv: 'QUEUE_URL', awsRegion: 'eu-west-1' },
      resolvedEnv: { QUEUE_URL: properUrl },
      expect: { queueUrl: properUrl, queueName: 'DeleteArtifactQ' },
    },
    {
      comment: 'queueURL in metadata wins over queueURLFromEnv',
      metadata: { ...base, queueURLFromEnv: 'QUEUE_URL' },
      resolvedEnv: { QUEUE_URL: 'http://h/1/other' },
      expect: { queueName: 'DeleteArtifactQ' },
    },
    {
      comment: "KEDA's legacy credentials from the container environment",
      metadata: { ...base, awsAccessKeyIDFromEnv: 'AWS_KEY', awsSecretAccessKeyFromEnv: 'AWS_SECRET' },
      authParams: {},
      resolvedEnv: { AWS_KEY: 'AKIDENV', AWS_SECRET: SECRET },
      expect: { credentials: { accessKeyId: 'AKIDENV', secretAccessKey: SECRET } },
    },
    {
      comment: 'a role to assume with static keys (KEDA row "with AWS Role from TriggerAuthentication")',
      metadata: base,
      authParams: { ...staticAuth, awsRoleArn: ROLE },
      expect: {
        credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: SECRET },
        role: { roleArn: ROLE, externalId: undefined },
      },
    },
    {
      comment: 'a role with an external ID',
      metadata: { ...base, identityOwner: 'operator' },
      authParams: { awsRoleArn: ROLE, awsExternalID: EXTERNAL },
      expect: { credentials: undefined, role: { roleArn: ROLE, externalId: EXTERNAL } },
    },
    {
      comment: "KEDA's spelling awsExternalId",
      metadata: { ...base, identityOwner: 'operator' },
      authParams: { awsRoleArn: ROLE, awsExternalId: EXTERNAL },
      expect: { role: { roleArn: ROLE, externalId: EXTERNAL } },
    },
    {
      comment: 'both spellings of the external ID with the same value',
      metadata: { ...base, identityOwner: 'operator' },
      authParams: { awsRoleArn: ROLE, awsExternalID: EXTERNAL, awsExternalId: EXTERNAL },
      expect: { role: { roleArn: ROLE, externalId: EXTERNAL } },
    },
    {
      comment: 'a role with a path, in another partition, assumed with the default chain (identityOwner operator)',
      metadata: { ...base, identityOwner: 'operator' },
      authParams: { awsRoleArn: 'arn:aws-us-gov:iam::210987654321:role/team/queues/sqs-reader@x' },
      expect: {
        credentials: undefined,
        role: { roleArn: 'arn:aws-us-gov:iam::210987654321:role/team/queues/sqs-reader@x', externalId: undefined },
      },
    },
    {
      comment: "identityOwner operator with a role: assumed with sluice's own identity",
      metadata: { ...base, identityOwner: 'operator' },
      authParams: { awsRoleArn: ROLE },
      expect: { credentials: undefined, role: { roleArn: ROLE, externalId: undefined } },
    },
    {
      comment: 'no role: none',
      metadata: base,
      expect: { role: undefined },
    },
    {
      comment: 'values are trimmed; empty counts as absent',
      metadata: { queueURL: ` ${properUrl} `, awsRegion: ' eu-west-1 ', queueLength: '', scaleOnDelayed: ' ' },
      expect: { queueUrl: properUrl, target: 5, region: 'eu-west-1' },
    },
  ];
  it.each(accepted)('accepts: $comment', ({ metadata, authParams, resolvedEnv, expect: expected }) => {
    const input = trigger(metadata, authParams, resolvedEnv ? { resolvedEnv } : {});
    expect(parseAwsSqsQueueConfig(input)).toMatchObject(expected);
  });

  const p = 'spec.triggers[0].metadata';
  const ref = 'spec.triggers[0].authenticationRef';
  const rejected: {
    comment: string;
    metadata: Record<string, string>;
    authParams?: Record<string, string>;
    resolvedEnv?: Record<string, string>;
    field: string;
    message: RegExp;
  }[] = [
    { comment: 'metadata empty (KEDA row)', metadata: {}, field: `${p}.queueURL`, message: /missing required/ },
    {
      comment: 'improperly formed queue, missing queueName (KEDA row)',
      metadata: { ...base, queueURL: 'https://sqs.eu-west-1.amazonaws.com/account_id' },
      field: `${p}.queueURL`,
      message: /cannot get the queue name/,
    },
    {
      comment: 'improperly formed queue, missing path (KEDA row)',
      metadata: { ...base, queueURL: 'https://sqs.eu-west-1.amazonaws.com' },
      field: `${p}.queueURL`,
      message: /cannot get the queue name/,
    },
    {
      comment: 'a trailing slash makes a third path segment',
      metadata: { ...base, queueURL: `${properUrl}/` },
      field: `${p}.queueURL`,
      message: /exactly \/<account>\/<queue name>/,
    },
    {
      comment: 'an empty account',
      metadata: { ...base, queueURL: 'https://sqs.eu-west-1.amazonaws.com//q' },
      field: `${p}.queueURL`,
      message: /cannot get the queue name/,
    },
    {
      comment: 'a scheme other than http(s)',
      metadata: { ...base, queueURL: 'ftp://sqs.eu-west-1.amazonaws.com/1/q' },
      field: `${p}.queueURL`,
      message: /neither an http\(s\) queue URL nor a queue name/,
    },
    {
      comment: 'a relative path',
      metadata: { ...base, queueURL: '/account/q' },
      field: `${p}.queueURL`,
      message: /neither/,
    },
    {
      comment: 'credentials in the queue URL (never echoed)',
      metadata: { ...base, queueURL: `https://user:${SECRET}@sqs.eu-west-1.amazonaws.com/1/q` },
      field: `${p}.queueURL`,
      message: /must not contain credentials/,
    },
    {
      comment: 'a queue name with characters SQS does not allow',
      metadata: { ...base, queueURL: 'my queue!' },
      field: `${p}.queueURL`,
      message: /neither an http\(s\) queue URL nor a queue name/,
    },
    {
      comment: 'a queue name longer than 80 characters',
      metadata: { ...base, queueURL: 'q'.repeat(81) },
      field: `${p}.queueURL`,
      message: /1 to 80/,
    },
    {
      comment: 'properly formed queue, empty region (KEDA row)',
      metadata: { ...base, queueLength: '1', awsRegion: '' },
      field: `${p}.awsRegion`,
      message: /missing required/,
    },
    {
      comment: 'a region that is not a DNS label',
      metadata: { ...base, awsRegion: 'eu west 1' },
      field: `${p}.awsRegion`,
      message: /not an AWS region/,
    },
    {
      comment: 'invalid queueLength (KEDA row; old KEDA fell back to 5)',
      metadata: { ...base, queueLength: 'a' },
      field: `${p}.queueLength`,
      message: /not a number/,
    },
    {
      comment: 'queueLength 0 (an HPA target of 0)',
      metadata: { ...base, queueLength: '0' },
      field: `${p}.queueLength`,
      message: /greater than 0/,
    },
    {
      comment: 'negative queueLength',
      metadata: { ...base, queueLength: '-3' },
      field: `${p}.queueLength`,
      message: /greater than 0/,
    },
    {
      comment: 'invalid activationQueueLength (KEDA row)',
      metadata: { ...base, activationQueueLength: 'a' },
      field: `${p}.activationQueueLength`,
      message: /not a number/,
    },
    {
      comment: 'negative activationQueueLength',
      metadata: { ...base, activationQueueLength: '-1' },
      field: `${p}.activationQueueLength`,
      message: /at least 0/,
    },
    {
      comment: 'scaleOnInFlight not a boolean',
      metadata: { ...base, scaleOnInFlight: 'yes' },
      field: `${p}.scaleOnInFlight`,
      message: /not a boolean/,
    },
    {
      comment: 'scaleOnDelayed not a boolean',
      metadata: { ...base, scaleOnDelayed: 'sometimes' },
      field: `${p}.scaleOnDelayed`,
      message: /not a boolean/,
    },
    {
      comment: 'awsEndpoint not a URL',
      metadata: { ...base, awsEndpoint: 'localhost:4566', identityOwner: 'operator' },
      authParams: {},
      field: `${p}.awsEndpoint`,
      message: /not an http\(s\) URL/,
    },
    {
      comment: 'awsEndpoint with credentials (never echoed)',
      metadata: { ...base, awsEndpoint: `http://k:${SECRET}@localhost:4566`, identityOwner: 'operator' },
      authParams: {},
      field: `${p}.awsEndpoint`,
      message: /must not contain credentials/,
    },
    {
      comment: "the TriggerAuthentication's awsEndpoint not a URL (never echoed)",
      metadata: base,
      authParams: { ...staticAuth, awsEndpoint: 'localhost:4566' },
      field: ref,
      message: /awsEndpoint is not an http\(s\) URL/,
    },
    {
      comment:
        "awsEndpoint in metadata with the TriggerAuthentication's keys (sluice: the keys go to its endpoint only)",
      metadata: { ...base, awsEndpoint: 'http://attacker.example:4566' },
      field: `${p}.awsEndpoint`,
      message:
        /must not be set in trigger metadata: the TriggerAuthentication supplies credentials \(awsAccessKeyId, awsSecretAccessKey\).*only to the awsEndpoint it gives too/,
    },
    {
      comment: 'awsEndpoint in metadata with a session token from the TriggerAuthentication, whatever the TA says',
      metadata: { ...base, awsEndpoint: 'http://127.0.0.1:4566' },
      authParams: { ...staticAuth, awsSessionToken: TOKEN, awsEndpoint: 'http://127.0.0.1:4566' },
      field: `${p}.awsEndpoint`,
      message: /awsSessionToken/,
    },
    {
      comment: 'no credentials and no identityOwner operator (KEDA: an error too)',
      metadata: base,
      authParams: {},
      field: ref,
      message:
        /the trigger has no AWS credentials: give awsAccessKeyID and awsSecretAccessKey through a TriggerAuthentication, or set identityOwner: "operator".*--allow-operator-cloud-identity/,
    },
    {
      comment: 'identityOwner pod without credentials (pod identity is not supported): no default chain',
      metadata: { ...base, identityOwner: 'pod' },
      authParams: {},
      field: ref,
      message: /no AWS credentials/,
    },
    {
      comment:
        "a role without base keys and without identityOwner operator: it would be assumed with sluice's identity",
      metadata: base,
      authParams: { awsRoleArn: ROLE },
      field: ref,
      message:
        /awsRoleArn without awsAccessKeyID and awsSecretAccessKey would be assumed with sluice's own AWS identity.*--allow-operator-cloud-identity/,
    },
    {
      comment: 'static credentials, missing Access Key Id (KEDA row)',
      metadata: base,
      authParams: { awsAccessKeyId: '', awsSecretAccessKey: SECRET },
      field: ref,
      message: /awsSecretAccessKey is given without awsAccessKeyID/,
    },
    {
      comment: 'static credentials, missing Secret Access Key (KEDA row)',
      metadata: base,
      authParams: { awsAccessKeyId: 'AKIDEXAMPLE', awsSecretAccessKey: '' },
      field: ref,
      message: /awsAccessKeyID is given without awsSecretAccessKey/,
    },
    {
      comment: 'temporary credentials, missing Access Key Id (KEDA row)',
      metadata: base,
      authParams: { awsAccessKeyId: '', awsSecretAccessKey: SECRET, awsSessionToken: TOKEN },
      field: ref,
      message: /without awsAccessKeyID/,
    },
    {
      comment: 'temporary credentials, missing Secret Access Key (KEDA row)',
      metadata: base,
      authParams: { awsAccessKeyId: 'AKIDEXAMPLE', awsSecretAccessKey: '', awsSessionToken: TOKEN },
      field: ref,
      message: /without awsSecretAccessKey/,
    },
    {
      comment: 'a session token alone',
      metadata: base,
      authParams: { awsSessionToken: TOKEN },
      field: ref,
      message: /awsSessionToken is given without/,
    },
    {
      comment: 'legacy awsAccessKeyIDFromEnv without awsSecretAccessKeyFromEnv',
      metadata: { ...base, awsAccessKeyIDFromEnv: 'AWS_KEY' },
      authParams: {},
      resolvedEnv: { AWS_KEY: 'AKIDENV' },
      field: `${p}.awsSecretAccessKeyFromEnv`,
      message: /without awsSecretAccessKey/,
    },
    {
      comment: 'awsSecretAccessKeyFromEnv naming a variable the container lacks',
      metadata: { ...base, awsAccessKeyIDFromEnv: 'AWS_KEY', awsSecretAccessKeyFromEnv: 'NOPE' },
      authParams: {},
      resolvedEnv: { AWS_KEY: 'AKIDENV' },
      field: `${p}.awsSecretAccessKeyFromEnv`,
      message: /no environment variable "NOPE"/,
    },
    {
      comment: 'a secret written inline in metadata',
      metadata: { ...base, awsAccessKeyID: 'AKIDEXAMPLE', awsSecretAccessKey: SECRET },
      authParams: {},
      field: `${p}.awsSecretAccessKey`,
      message: /must not be written in trigger metadata/,
    },
    {
      comment: 'awsRoleArn that is not an ARN',
      metadata: base,
      authParams: { ...staticAuth, awsRoleArn: 'sqs-reader' },
      field: ref,
      message: /awsRoleArn "sqs-reader" is not an IAM role ARN/,
    },
    {
      comment: 'awsRoleArn naming a user, not a role',
      metadata: base,
      authParams: { awsRoleArn: 'arn:aws:iam::123456789012:user/sqs' },
      field: ref,
      message: /is not an IAM role ARN/,
    },
    {
      comment: 'awsRoleArn with an 11-digit account',
      metadata: base,
      authParams: { awsRoleArn: 'arn:aws:iam::12345678901:role/sqs' },
      field: ref,
      message: /is not an IAM role ARN/,
    },
    {
      comment: 'awsRoleArn without a role name',
      metadata: base,
      authParams: { awsRoleArn: 'arn:aws:iam::123456789012:role/' },
      field: ref,
      message: /is not an IAM role ARN/,
    },
    {
      comment: 'an STS ARN (an assumed-role session) is not a role ARN',
      metadata: base,
      authParams: { awsRoleArn: 'arn:aws:sts::123456789012:assumed-role/sqs/session' },
      field: ref,
      message: /is not an IAM role ARN/,
    },
    {
      comment: 'awsExternalID without awsRoleArn (KEDA logs and ignores it)',
      metadata: base,
      authParams: { ...staticAuth, awsExternalID: EXTERNAL },
      field: ref,
      message: /awsExternalID is given without awsRoleArn/,
    },
    {
      comment: 'awsExternalId (KEDA spelling) without awsRoleArn',
      metadata: base,
      authParams: { awsExternalId: EXTERNAL },
      field: ref,
      message: /awsExternalID is given without awsRoleArn/,
    },
    {
      comment: 'an external ID STS would reject (a space), never quoted',
      metadata: base,
      authParams: { awsRoleArn: ROLE, awsExternalID: `${EXTERNAL} x` },
      field: ref,
      message: /awsExternalID must be 2 to 1224 characters/,
    },
    {
      comment: 'both spellings of the external ID, different',
      metadata: base,
      authParams: { awsRoleArn: ROLE, awsExternalID: EXTERNAL, awsExternalId: 'other-id' },
      field: ref,
      message: /both given, with different values/,
    },
    {
      comment: 'awsRoleArn in trigger metadata (KEDA reads it from the TriggerAuthentication only)',
      metadata: { ...base, awsRoleArn: ROLE },
      field: `${p}.awsRoleArn`,
      message: /must come from a TriggerAuthentication/,
    },
    {
      comment: 'awsExternalID in trigger metadata',
      metadata: { ...base, awsExternalID: EXTERNAL },
      authParams: { awsRoleArn: ROLE },
      field: `${p}.awsExternalID`,
      message: /must come from a TriggerAuthentication/,
    },
    {
      comment: 'identityOwner operator together with static credentials',
      metadata: { ...base, identityOwner: 'operator' },
      field: `${p}.identityOwner`,
      message: /cannot be combined/,
    },
    {
      comment: 'an unknown identityOwner',
      metadata: { ...base, identityOwner: 'workload' },
      field: `${p}.identityOwner`,
      message: /must be one of pod, operator/,
    },
    {
      comment: 'queueURLFromEnv naming a variable the container lacks (KEDA row "missing both")',
      metadata: { queueURLFromEnv: 'QUEUE_URL', awsRegion: 'eu-west-1' },
      field: `${p}.queueURLFromEnv`,
      message: /no environment variable "QUEUE_URL"/,
    },
    {
      comment: 'queueURLFromEnv naming an empty variable (KEDA row "empty env")',
      metadata: { queueURLFromEnv: 'QUEUE_URL', awsRegion: 'eu-west-1' },
      resolvedEnv: { QUEUE_URL: '' },
      field: `${p}.queueURLFromEnv`,
      message: /or it is empty/,
    },
  ];
  it.each(rejected)('rejects: $comment', ({ metadata, authParams, resolvedEnv, field, message }) => {
    let caught: unknown;
    try {
      parseAwsSqsQueueConfig(trigger(metadata, authParams, resolvedEnv ? { resolvedEnv } : {}));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    const err = caught as ValidationError;
    expect(err.field).toBe(field);
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain(SECRET);
    expect(err.message).not.toContain(TOKEN);
    expect(err.message).not.toContain(EXTERNAL);
  });

  it('uses the trigger index in error paths', () => {
    expect(() => parseAwsSqsQueueConfig(trigger({ awsRegion: 'x' }, {}, { index: 3 }))).toThrow(
      expect.objectContaining({ field: 'spec.triggers[3].metadata.queueURL' }),
    );
  });

  it('names the metric as KEDA does: s<index>-aws-sqs-<queue name>, normalized', () => {
    const cases = [
      { index: 0, queueURL: properUrl, expected: 's0-aws-sqs-DeleteArtifactQ' },
      { index: 1, queueURL: properUrl, expected: 's1-aws-sqs-DeleteArtifactQ' },
      { index: 0, queueURL: 'my-queue', expected: 's0-aws-sqs-my-queue' },
      { index: 2, queueURL: 'https://sqs.us-east-1.amazonaws.com/1/jobs.fifo', expected: 's2-aws-sqs-jobs-fifo' },
    ];
    for (const c of cases) {
      const scaler = createAwsSqsQueueScaler(
        trigger({ ...base, queueURL: c.queueURL }, staticAuth, { index: c.index }),
      );
      expect(scaler.metricName).toBe(c.expected);
    }
  });

  it('is registered as aws-sqs-queue', () => {
    const scaler = createScaler(trigger(base));
    expect(scaler.metricName).toBe('s0-aws-sqs-DeleteArtifactQ');
    expect(scaler.target).toBe(5);
  });
});

/** A stub SQS client: records what it was built with and asked, answers with `reply`. */
function stubClient(reply: (input: GetQueueAttributesCommand['input'], signal: AbortSignal | undefined) => unknown) {
  const state = {
    configs: [] as SQSClientConfig[],
    inputs: [] as GetQueueAttributesCommand['input'][],
    destroyed: 0,
  };
  const build = awsSqsQueueScalerFactory((config) => {
    state.configs.push(config);
    const port = {
      send: async (command: GetQueueAttributesCommand, options?: { abortSignal?: AbortSignal }) => {
        state.inputs.push(command.input);
        await Promise.resolve();
        const answer = reply(command.input, options?.abortSignal);
        if (answer instanceof Error) throw answer;
        return answer;
      },
      destroy: () => {
        state.destroyed++;
      },
    };
    return port as unknown as SqsPort;
  });
  /** A scaler with a private reader (and SharedPool) of its own. */
  const factory = (input: TriggerInput): StandaloneScaler => standalone(build(input));
  return { factory, state };
}

const attrs = {
  ApproximateNumberOfMessages: '200',
  ApproximateNumberOfMessagesNotVisible: '100',
  ApproximateNumberOfMessagesDelayed: '50',
};
const signal = () => AbortSignal.timeout(5000);

async function sampleError(promise: Promise<unknown>): Promise<ScalerError> {
  try {
    const value = await promise;
    throw new Error(`expected an error, got ${JSON.stringify(value)}`);
  } catch (err) {
    expect(err).toBeInstanceOf(ScalerError);
    return err as ScalerError;
  }
}

describe('aws-sqs-queue sample() against a stub client', () => {
  it('creates the client lazily, once, with the endpoint, region and credentials, and destroys it on close', async () => {
    const { factory, state } = stubClient(() => ({ Attributes: attrs }));
    const scaler = factory(
      trigger(base, { ...staticAuth, awsSessionToken: TOKEN, awsEndpoint: 'http://127.0.0.1:4566' }),
    );
    expect(state.configs).toHaveLength(0); // building never connects
    await scaler.sample(signal());
    await scaler.sample(signal());
    expect(state.configs).toEqual([
      {
        region: 'eu-west-1',
        endpoint: 'http://127.0.0.1:4566',
        useQueueUrlAsEndpoint: false,
        credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: SECRET, sessionToken: TOKEN },
      },
    ]);
    // Every read asks for all three counts whatever the trigger's flags (so triggers on one queue share one read);
    // the trigger sums the ones it counts.
    expect(state.inputs[0]).toEqual({
      QueueUrl: properUrl,
      AttributeNames: [
        'ApproximateNumberOfMessages',
        'ApproximateNumberOfMessagesNotVisible',
        'ApproximateNumberOfMessagesDelayed',
      ],
    });
    await scaler.close();
    await scaler.close();
    expect(state.destroyed).toBe(1);
  });

  it('leaves credentials to the default chain when the trigger has none and says identityOwner: operator', async () => {
    const { factory, state } = stubClient(() => ({ Attributes: attrs }));
    await factory(trigger({ ...base, identityOwner: 'operator' }, {})).sample(signal());
    expect(state.configs[0]).toEqual({ region: 'eu-west-1', useQueueUrlAsEndpoint: false });
  });

  it('closing a scaler that never sampled creates nothing', async () => {
    const { factory, state } = stubClient(() => ({ Attributes: attrs }));
    await factory(trigger(base)).close();
    expect(state.configs).toHaveLength(0);
  });

  const sums = [
    { comment: 'visible + in flight (default)', metadata: {}, value: 300 },
    { comment: 'visible only', metadata: { scaleOnInFlight: 'false' }, value: 200 },
    { comment: 'visible + in flight + delayed', metadata: { scaleOnDelayed: 'true' }, value: 350 },
    { comment: 'visible + delayed', metadata: { scaleOnInFlight: 'false', scaleOnDelayed: 'true' }, value: 250 },
  ];
  it.each(sums)('sums the chosen attributes: $comment', async ({ metadata, value }) => {
    const { factory } = stubClient(() => ({ Attributes: attrs }));
    expect(await factory(trigger({ ...base, ...metadata })).sample(signal())).toEqual({ value, active: true });
  });

  it('triggers on one queue with different flags read the same source (one read serves them all)', () => {
    const { factory } = stubClient(() => ({ Attributes: attrs }));
    const keys = sums.map(({ metadata }) => factory(trigger({ ...base, ...metadata })).sourceKey);
    expect(new Set(keys).size).toBe(1);
    // Another queue, or other credentials, is another source.
    expect(factory(trigger({ ...base, queueURL: 'other-queue' })).sourceKey).not.toBe(keys[0]);
    expect(factory(trigger(base, { ...staticAuth, awsSecretAccessKey: 'another' })).sourceKey).not.toBe(keys[0]);
  });

  it('is active only above activationQueueLength (strict)', async () => {
    const { factory } = stubClient(() => ({ Attributes: attrs }));
    expect(await factory(trigger({ ...base, activationQueueLength: '300' })).sample(signal())).toEqual({
      value: 300,
      active: false,
    });
    expect(await factory(trigger({ ...base, activationQueueLength: '299' })).sample(signal())).toEqual({
      value: 300,
      active: true,
    });
    const empty = stubClient(() => ({
      Attributes: {
        ApproximateNumberOfMessages: '0',
        ApproximateNumberOfMessagesNotVisible: '0',
        ApproximateNumberOfMessagesDelayed: '0',
      },
    }));
    expect(await empty.factory(trigger(base)).sample(signal())).toEqual({ value: 0, active: false });
  });

  const bad = [
    {
      comment: 'non-integer data (KEDA row)',
      attributes: { ApproximateNumberOfMessages: 'NotInt', ApproximateNumberOfMessagesNotVisible: 'NotInt' },
      expected: /non-integer ApproximateNumberOfMessages/,
    },
    {
      comment: 'a missing attribute',
      attributes: { ApproximateNumberOfMessages: '3' },
      expected: /did not return ApproximateNumberOfMessagesNotVisible/,
    },
    { comment: 'no attributes at all', attributes: undefined, expected: /did not return ApproximateNumberOfMessages/ },
    {
      comment: 'a negative count',
      attributes: { ApproximateNumberOfMessages: '-1', ApproximateNumberOfMessagesNotVisible: '0' },
      expected: /non-integer/,
    },
    {
      comment: 'a fraction',
      attributes: { ApproximateNumberOfMessages: '1.5', ApproximateNumberOfMessagesNotVisible: '0' },
      expected: /non-integer/,
    },
    {
      comment: 'an empty string',
      attributes: { ApproximateNumberOfMessages: '', ApproximateNumberOfMessagesNotVisible: '0' },
      expected: /non-integer/,
    },
  ];
  it.each(bad)('$comment is an error, not 0', async ({ attributes, expected }) => {
    const { factory } = stubClient(() => ({ Attributes: attributes }));
    const err = await sampleError(factory(trigger(base)).sample(signal()));
    expect(err.message).toMatch(expected);
    // SQS answered: not a backend failure (its circuit breaker must not count it).
    expect(err).not.toBeInstanceOf(BackendError);
  });

  it('never quotes the value SQS sent into the message', async () => {
    const { factory } = stubClient(() => ({
      Attributes: { ...attrs, ApproximateNumberOfMessagesNotVisible: 'NotInt-<answer from the backend>' },
    }));
    const err = await sampleError(factory(trigger(base)).sample(signal()));
    expect(err.message).toMatch(/non-integer ApproximateNumberOfMessagesNotVisible/);
    expect(describeError(err)).not.toContain('NotInt');
  });

  const failures = [
    {
      comment: 'QueueDoesNotExist',
      error: () => new QueueDoesNotExist({ message: 'The specified queue does not exist.', $metadata: {} }),
      expected: /queue "DeleteArtifactQ" at region eu-west-1 does not exist/,
      backend: false,
    },
    {
      comment: 'SignatureDoesNotMatch (a wrong secret)',
      error: () =>
        new SQSServiceException({
          name: 'SignatureDoesNotMatch',
          $fault: 'client',
          $metadata: { httpStatusCode: 403 },
          // A server that echoes what it was sent must not get a credential into the message.
          message: `signature mismatch for ${SECRET} / ${TOKEN}`,
        }),
      expected: /refused the credentials .*SignatureDoesNotMatch/,
      backend: true,
    },
    {
      comment: 'an unknown error with HTTP 403',
      error: () =>
        new SQSServiceException({
          name: 'Forbidden',
          $fault: 'client',
          $metadata: { httpStatusCode: 403 },
          message: '',
        }),
      expected: /refused the credentials/,
      backend: true,
    },
    {
      comment: 'no credentials from the default chain',
      error: () =>
        Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' }),
      expected: /no AWS credentials/,
      backend: true,
    },
    {
      comment: 'HTTP 503',
      error: () =>
        new SQSServiceException({
          name: 'ServiceUnavailable',
          $fault: 'server',
          $metadata: { httpStatusCode: 503 },
          message: 'down',
        }),
      expected: /^SQS at region eu-west-1 answered HTTP 503 \(ServiceUnavailable\)$/,
      backend: true,
    },
    {
      comment: 'a malformed body',
      error: () =>
        Object.assign(new SyntaxError("Unexpected token 'g'\n  Deserialization error: …"), {
          $metadata: { httpStatusCode: 200 },
        }),
      expected: /malformed answer \(HTTP 200\)/,
      backend: false,
    },
    {
      comment: 'HTTP 403 with an answer the SDK cannot parse (moto answers auth failures in XML)',
      error: () =>
        Object.assign(new SyntaxError("Unexpected token '<'\n  Deserialization error: …"), {
          $metadata: { httpStatusCode: 403 },
        }),
      expected: /^SQS at region eu-west-1 refused the credentials \(HTTP 403\)$/,
      backend: true,
    },
    {
      comment: 'HTTP 500 with an answer the SDK cannot parse',
      error: () =>
        Object.assign(new SyntaxError("Unexpected token 'o'\n  Deserialization error: …"), {
          $metadata: { httpStatusCode: 500 },
        }),
      expected: /^SQS at region eu-west-1 answered HTTP 500$/,
      backend: true,
    },
    {
      comment: 'connection refused',
      error: () =>
        Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED', $metadata: {} }),
      expected: /^cannot reach SQS at region eu-west-1: ECONNREFUSED$/,
      backend: true,
    },
    {
      comment: 'throttling (the endpoint shedding load, as an HTTP 429)',
      error: () =>
        new SQSServiceException({
          name: 'RequestThrottled',
          $fault: 'client',
          $metadata: { httpStatusCode: 400 },
          message: 'slow down',
        }),
      expected: /^SQS at region eu-west-1 answered HTTP 400 \(RequestThrottled\)$/,
      backend: true,
    },
    {
      comment: 'any other SQS error',
      error: () =>
        new SQSServiceException({
          name: 'InvalidAttributeName',
          $fault: 'client',
          $metadata: { httpStatusCode: 400 },
          message: 'unknown attribute',
        }),
      // The code is one SQS has: named. Its message is the endpoint's text: never quoted.
      expected: /^SQS answered InvalidAttributeName \(HTTP 400\) for queue "DeleteArtifactQ" at region eu-west-1$/,
      backend: false,
    },
  ];
  // A BackendError (counted by the endpoint's circuit breaker) when the endpoint fails: it names the endpoint only, so
  // every reader of that endpoint reports the same failure. A ScalerError for an answer about the queue, naming it.
  it.each(failures)('$comment is a ScalerError that names the queue or endpoint, and no credential', async (c) => {
    const { error, expected, backend } = c;
    const { factory } = stubClient(() => error());
    const err = await sampleError(factory(trigger(base, { ...staticAuth, awsSessionToken: TOKEN })).sample(signal()));
    expect(err.message).toMatch(expected);
    const everything = describeError(err);
    expect(everything).not.toContain(SECRET);
    expect(everything).not.toContain(TOKEN);
    expect(err.cause).toBeDefined();
    expect(err instanceof BackendError).toBe(backend);
  });

  // awsEndpoint may point at any server: what it answers (a code, a message, a body the SDK cannot parse) is its text.
  it.each([
    {
      comment: 'an error code SQS does not have',
      error: () =>
        new SQSServiceException({
          name: 'AKIAIOSFODNN7EXAMPLE',
          $fault: 'client',
          $metadata: { httpStatusCode: 400 },
          message: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
        }),
      expected: /^SQS answered an error code sluice does not know \(HTTP 400\) for queue "DeleteArtifactQ"/,
    },
    {
      comment: 'a known code with a message',
      error: () =>
        new SQSServiceException({
          name: 'AccessDenied',
          $fault: 'client',
          $metadata: { httpStatusCode: 403 },
          message: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY AKIAIOSFODNN7EXAMPLE',
        }),
      expected: /^SQS at region eu-west-1 refused the credentials \(AccessDenied \(HTTP 403\)\)$/,
    },
    {
      comment: 'a body the SDK cannot parse (the SyntaxError quotes its start)',
      error: () =>
        Object.assign(new SyntaxError('Unexpected token \'A\', "AKIAIOSFODNN7EXAMPLE" is not valid JSON'), {
          $metadata: { httpStatusCode: 200 },
        }),
      expected: /^the SQS endpoint sent a malformed answer \(HTTP 200\)/,
    },
  ])('$comment: quotes nothing the endpoint sent, not even in the cause', async ({ error, expected }) => {
    const { factory } = stubClient(() => error());
    const err = await sampleError(factory(trigger(base)).sample(signal()));
    expect(err.message).toMatch(expected);
    expect(describeError(err)).not.toMatch(/AKIA|wJalr/);
  });

  it('an aborted signal is a timeout error', async () => {
    const { factory } = stubClient((_input, abortSignal) => {
      expect(abortSignal).toBeDefined();
      return Object.assign(new Error('Request aborted'), { name: 'AbortError' });
    });
    const timedOut = AbortSignal.timeout(1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    // The signal is already aborted: sample() refuses before sending, with a ScalerError too.
    const refused = await sampleError(factory(trigger(base)).sample(timedOut));
    expect(refused.message).toMatch(/timed out/);
    expect(refused).toBeInstanceOf(BackendError);
    const live = new AbortController();
    const pending = factory(trigger(base)).sample(live.signal);
    live.abort(new DOMException('the poll timed out', 'TimeoutError'));
    const aborted = await sampleError(pending);
    expect(aborted.message).toBe('a read from SQS at region eu-west-1 timed out');
    expect(aborted).toBeInstanceOf(BackendError);
  });
});

/**
 * Stub SQS and STS clients for a role: STS answers AssumeRole with numbered temporary credentials (ASIA1, ASIA2, …)
 * valid for `validForMs`, or fails with `stsError`; SQS resolves its `credentials` as the SDK does before signing and
 * records the access key it would have signed with.
 */
function roleStub(options: { validForMs?: number; stsError?: () => unknown; stsHangs?: boolean } = {}) {
  const clock = { now: Date.now() };
  const state = {
    sqsConfigs: [] as SQSClientConfig[],
    stsConfigs: [] as STSClientConfig[],
    assumed: [] as AssumeRoleCommand['input'][],
    signedWith: [] as string[],
    sqsDestroyed: 0,
    stsDestroyed: 0,
  };
  let issued = 0;
  const build = awsSqsQueueScalerFactory(
    (config) => {
      state.sqsConfigs.push(config);
      const port = {
        send: async () => {
          const provider = config.credentials;
          const credentials = typeof provider === 'function' ? await provider() : provider;
          state.signedWith.push(credentials?.accessKeyId ?? 'none');
          return { Attributes: attrs };
        },
        destroy: () => {
          state.sqsDestroyed++;
        },
      };
      return port;
    },
    (config) => {
      state.stsConfigs.push(config);
      const port = {
        send: async (command: AssumeRoleCommand, sendOptions?: { abortSignal?: AbortSignal }) => {
          state.assumed.push(command.input);
          await Promise.resolve();
          if (options.stsHangs === true) {
            await new Promise((_resolve, reject) => {
              sendOptions?.abortSignal?.addEventListener('abort', () => {
                reject(Object.assign(new Error('Request aborted'), { name: 'AbortError' }));
              });
            });
          }
          if (options.stsError) throw options.stsError();
          issued++;
          return {
            Credentials: {
              AccessKeyId: `ASIA${issued}`,
              SecretAccessKey: `temporary-secret-${issued}`,
              SessionToken: `temporary-token-${issued}`,
              Expiration: new Date(clock.now + (options.validForMs ?? 3_600_000)),
            },
          };
        },
        destroy: () => {
          state.stsDestroyed++;
        },
      };
      return port as unknown as StsPort;
    },
    () => clock.now,
  );
  const factory = (input: TriggerInput): StandaloneScaler => standalone(build(input));
  return { factory, build, state, clock };
}

describe('aws-sqs-queue with a role to assume, against stub SQS and STS clients', () => {
  const roleAuth = { ...staticAuth, awsRoleArn: ROLE, awsExternalID: EXTERNAL };

  it('assumes the role once with the base keys and reads SQS with the temporary credentials', async () => {
    const { factory, state } = roleStub();
    const scaler = factory(trigger(base, { ...roleAuth, awsEndpoint: 'http://127.0.0.1:4566' }));
    expect(state.stsConfigs).toHaveLength(0); // building never connects
    expect(await scaler.sample(signal())).toEqual({ value: 300, active: true });
    expect(await scaler.sample(signal())).toEqual({ value: 300, active: true });
    // STS at the trigger's endpoint and region, called with the static keys of the TriggerAuthentication.
    expect(state.stsConfigs).toEqual([
      {
        region: 'eu-west-1',
        endpoint: 'http://127.0.0.1:4566',
        credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: SECRET },
      },
    ]);
    expect(state.assumed).toEqual([
      { RoleArn: ROLE, RoleSessionName: 'sluice-aws-sqs-queue', DurationSeconds: 3600, ExternalId: EXTERNAL },
    ]);
    // SQS is signed with the role's credentials, never the base keys; one AssumeRole served both reads.
    expect(state.signedWith).toEqual(['ASIA1', 'ASIA1']);
    expect(state.sqsConfigs[0]?.credentials).toBeTypeOf('function');
    await scaler.close();
    expect(state.sqsDestroyed).toBe(1);
    expect(state.stsDestroyed).toBe(1);
  });

  it('without base keys, STS gets no credentials (the SDK default chain) and no ExternalId when none is given', async () => {
    const { factory, state } = roleStub();
    await factory(trigger({ ...base, identityOwner: 'operator' }, { awsRoleArn: ROLE })).sample(signal());
    expect(state.stsConfigs).toEqual([{ region: 'eu-west-1' }]);
    expect(state.assumed).toEqual([{ RoleArn: ROLE, RoleSessionName: 'sluice-aws-sqs-queue', DurationSeconds: 3600 }]);
  });

  it('renews the temporary credentials 5 minutes before they expire, not before', async () => {
    const { factory, state, clock } = roleStub({ validForMs: 3_600_000 });
    const scaler = factory(trigger(base, roleAuth));
    await scaler.sample(signal());
    clock.now += 54 * 60_000; // 6 minutes left: still good
    await scaler.sample(signal());
    expect(state.assumed).toHaveLength(1);
    clock.now += 2 * 60_000; // 4 minutes left: renewed, once, and SQS is signed with the new ones
    await scaler.sample(signal());
    await scaler.sample(signal());
    expect(state.assumed).toHaveLength(2);
    expect(state.signedWith).toEqual(['ASIA1', 'ASIA1', 'ASIA2', 'ASIA2']);
  });

  it('credentials that live less than 10 minutes are renewed halfway through', async () => {
    const { factory, state, clock } = roleStub({ validForMs: 6 * 60_000 });
    const scaler = factory(trigger(base, roleAuth));
    await scaler.sample(signal());
    clock.now += 2 * 60_000;
    await scaler.sample(signal());
    expect(state.assumed).toHaveLength(1);
    clock.now += 60_001;
    await scaler.sample(signal());
    expect(state.signedWith).toEqual(['ASIA1', 'ASIA1', 'ASIA2']);
  });

  it('readers of one role share one client and one AssumeRole; other roles or external IDs do not', async () => {
    const { build, state } = roleStub();
    const shared = new SharedPool();
    const one = standalone(build(trigger(base, roleAuth)), shared);
    const two = standalone(build(trigger({ ...base, queueURL: 'other-queue' }, roleAuth)), shared);
    await Promise.all([one.sample(signal()), two.sample(signal())]);
    expect(state.sqsConfigs).toHaveLength(1);
    expect(state.assumed).toHaveLength(1);
    await Promise.all([one.close(), two.close()]);

    const key = (authParams: Record<string, string>) => build(trigger(base, authParams)).sourceKey;
    const keys = [
      key(roleAuth),
      key({ ...roleAuth, awsRoleArn: 'arn:aws:iam::123456789012:role/other' }),
      key({ ...roleAuth, awsExternalID: 'another-external-id' }),
      key({ ...staticAuth, awsRoleArn: ROLE }),
      key(staticAuth),
    ];
    expect(new Set(keys).size).toBe(keys.length);
    expect(key(roleAuth)).toBe(keys[0]);
    for (const k of keys) {
      expect(k).not.toContain(EXTERNAL);
      expect(k).not.toContain(SECRET);
    }
  });

  const failures = [
    {
      comment: 'AssumeRole refused (AccessDenied), with a message that echoes the base keys',
      error: () =>
        new STSServiceException({
          name: 'AccessDenied',
          $fault: 'client',
          $metadata: { httpStatusCode: 403 },
          message: `User AKIDEXAMPLE (${SECRET}) is not authorized to perform: sts:AssumeRole`,
        }),
      expected:
        /^cannot assume role arn:aws:iam::123456789012:role\/sqs-reader: STS at region eu-west-1 answered AccessDenied \(HTTP 403\)$/,
    },
    {
      comment: 'unknown base keys (InvalidClientTokenId)',
      error: () =>
        new STSServiceException({
          name: 'InvalidClientTokenId',
          $fault: 'client',
          $metadata: { httpStatusCode: 403 },
          message: 'The security token included in the request is invalid.',
        }),
      expected: /^cannot assume role .*sqs-reader: STS at region eu-west-1 answered InvalidClientTokenId \(HTTP 403\)/,
    },
    {
      comment: 'no base credentials anywhere',
      error: () =>
        Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' }),
      expected: /^cannot assume role .*sqs-reader: no AWS credentials to call STS with/,
    },
    {
      comment: 'STS unreachable',
      error: () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
      expected: /^cannot assume role .*sqs-reader: cannot reach STS at region eu-west-1: ECONNREFUSED$/,
    },
    {
      comment: 'STS down (HTTP 503)',
      error: () =>
        new STSServiceException({
          name: 'ServiceUnavailable',
          $fault: 'server',
          $metadata: { httpStatusCode: 503 },
          message: '',
        }),
      expected: /^cannot assume role .*sqs-reader: STS at region eu-west-1 answered ServiceUnavailable \(HTTP 503\)$/,
    },
  ];
  it.each(failures)('$comment is a BackendError naming the role, never a key', async ({ error, expected }) => {
    const { factory, state } = roleStub({ stsError: error });
    const err = await sampleError(factory(trigger(base, roleAuth)).sample(signal()));
    expect(err).toBeInstanceOf(BackendError); // the role's backend cannot be read: its breaker counts it
    expect(err.message).toMatch(expected);
    expect(err.message).toMatch(/assume role arn:aws:iam::123456789012:role\/sqs-reader/);
    const everything = `${describeError(err)} ${String(err.stack)}`;
    expect(everything).not.toContain(SECRET);
    expect(everything).not.toContain('AKIDEXAMPLE');
    expect(state.signedWith).toEqual([]); // SQS was never asked
  });

  it('a slow STS is bounded by the read signal, and the failure names the role', async () => {
    const { factory } = roleStub({ stsHangs: true });
    const started = Date.now();
    const err = await sampleError(factory(trigger(base, roleAuth)).sample(AbortSignal.timeout(100)));
    expect(Date.now() - started).toBeLessThan(2000);
    expect(err).toBeInstanceOf(BackendError);
    expect(err.message).toBe(`assuming role ${ROLE} at STS region eu-west-1 timed out`);
  });
});
