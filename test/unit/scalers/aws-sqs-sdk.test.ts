/**
 * The registry's SQS scaler with the SDK's own clients (no stubs), in a file of its own: the SDK is loaded by the first
 * read (src/scalers/aws-sdk.ts), and each test file gets fresh modules, so these reads are the process's first. A
 * client made before the SDK has loaded (as when the lease was taken at open) fails here, and nowhere else without a
 * server.
 */
import { describe, expect, it } from 'vitest';
import { BackendError, describeError } from '../../../src/errors.ts';
import { loadedAwsSdk } from '../../../src/scalers/aws-sdk.ts';
import { createScaler } from '../../../src/scalers/registry.ts';
import { standalone, triggerInput, type StandaloneScaler } from '../../support/trigger.ts';

describe("the registry's SQS scaler: the SDK's own clients, made once the first read has loaded the SDK", () => {
  // Nothing listens on 127.0.0.1:1: each read goes as far as a refused connection, through the real SDK clients.
  const endpoint = 'http://127.0.0.1:1';
  const real = (auth: Record<string, string> = {}): StandaloneScaler =>
    standalone(
      createScaler(
        triggerInput({
          type: 'aws-sqs-queue',
          metadata: { queueURL: `${endpoint}/000000000000/orders`, awsRegion: 'us-east-1' },
          authParams: {
            awsAccessKeyID: 'AKIDEXAMPLE',
            awsSecretAccessKey: 'secret-example',
            awsEndpoint: endpoint,
            ...auth,
          },
        }),
      ),
    );

  it('reads SQS: a refused connection is a BackendError naming the endpoint', async () => {
    expect(loadedAwsSdk()).toBeUndefined();
    const error: unknown = await real({})
      .sample(AbortSignal.timeout(5000))
      .catch((err: unknown) => err);
    expect(error).toBeInstanceOf(BackendError);
    expect(describeError(error)).toMatch(/^cannot reach SQS at http:\/\/127\.0\.0\.1:1: ECONNREFUSED/);
  });

  it('assumes a role through STS first: a refused connection names the role', async () => {
    const scaler = real({ awsRoleArn: 'arn:aws:iam::000000000000:role/reader' });
    const error: unknown = await scaler.sample(AbortSignal.timeout(5000)).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(BackendError);
    expect(describeError(error)).toMatch(/arn:aws:iam::000000000000:role\/reader/);
    expect(describeError(error)).not.toMatch(/loadAwsSdk/);
  });
});
