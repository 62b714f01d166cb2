// The assumed-role credential cache (src/scalers/aws-credentials.ts) against a stub STS client: single flight, the
// refresh margin, a caller giving up without cancelling the call for the others, and what a failure leaves behind.
import type { AssumeRoleCommand } from '@aws-sdk/client-sts';
import { describe, expect, it } from 'vitest';
import { BackendError } from '../../../src/errors.ts';
import {
  AssumeRoleError,
  AssumeRoleProvider,
  REFRESH_MARGIN_MS,
  type StsPort,
} from '../../../src/scalers/aws-credentials.ts';

const ROLE = 'arn:aws:iam::123456789012:role/sqs-reader';

/** A stub STS whose AssumeRole calls wait until `release()` (all of them, in order), then answer or fail. */
function gatedSts(options: { fail?: () => Error } = {}) {
  const clock = { now: 1_000_000 };
  const waiting: (() => void)[] = [];
  let issued = 0;
  const inputs: AssumeRoleCommand['input'][] = [];
  const sts = {
    send: async (command: AssumeRoleCommand) => {
      inputs.push(command.input);
      await new Promise<void>((resolve) => waiting.push(resolve));
      if (options.fail) throw options.fail();
      issued++;
      return {
        Credentials: {
          AccessKeyId: `ASIA${issued}`,
          SecretAccessKey: `s${issued}`,
          SessionToken: `t${issued}`,
          Expiration: new Date(clock.now + 3_600_000),
        },
      };
    },
  } as unknown as StsPort;
  const provider = new AssumeRoleProvider({
    sts,
    role: { roleArn: ROLE, externalId: 'ext' },
    sessionName: 'sluice-test',
    stsWhere: 'region us-east-1',
    baseCredentials: undefined,
    now: () => clock.now,
  });
  const release = async () => {
    await new Promise((resolve) => setImmediate(resolve));
    for (const resolve of waiting.splice(0)) resolve();
  };
  return { provider, inputs, clock, release };
}

describe('AssumeRoleProvider', () => {
  it('concurrent askers share one AssumeRole (single flight), and later ones get the cached credentials', async () => {
    const { provider, inputs, release } = gatedSts();
    const asks = [provider.credentials(), provider.credentials(), provider.provider()];
    await release();
    const got = await Promise.all(asks);
    expect(got.map((c) => c.accessKeyId)).toEqual(['ASIA1', 'ASIA1', 'ASIA1']);
    expect(inputs).toEqual([
      { RoleArn: ROLE, RoleSessionName: 'sluice-test', DurationSeconds: 3600, ExternalId: 'ext' },
    ]);
    expect((await provider.credentials()).accessKeyId).toBe('ASIA1');
    expect(provider.calls).toBe(1);
  });

  it(`renews ${REFRESH_MARGIN_MS / 60_000} minutes before the expiration`, async () => {
    const { provider, clock, release } = gatedSts();
    const first = provider.credentials();
    await release();
    expect((await first).expiration.getTime()).toBe(clock.now + 3_600_000);
    clock.now += 3_600_000 - REFRESH_MARGIN_MS - 1;
    expect((await provider.credentials()).accessKeyId).toBe('ASIA1');
    clock.now += 2;
    const renewed = provider.credentials();
    await release();
    expect((await renewed).accessKeyId).toBe('ASIA2');
    expect(provider.calls).toBe(2);
  });

  it('a caller whose signal aborts stops waiting; the call goes on for the others and is cached', async () => {
    const { provider, release } = gatedSts();
    const impatient = new AbortController();
    const gaveUp = provider.credentials(impatient.signal);
    const patient = provider.credentials(AbortSignal.timeout(5000));
    impatient.abort(new DOMException('the read timed out', 'TimeoutError'));
    await expect(gaveUp).rejects.toThrow(`assuming role ${ROLE} at STS region us-east-1 timed out`);
    await expect(gaveUp).rejects.toBeInstanceOf(BackendError);
    await release();
    expect((await patient).accessKeyId).toBe('ASIA1');
    expect((await provider.credentials(AbortSignal.timeout(5000))).accessKeyId).toBe('ASIA1');
    expect(provider.calls).toBe(1);
  });

  it('a failure is not cached: the next ask tries again', async () => {
    let fail = true;
    const { provider, release } = gatedSts({
      fail: () =>
        fail
          ? Object.assign(new Error('denied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } })
          : new Error('unreachable'),
    });
    const first = provider.credentials();
    await release();
    await expect(first).rejects.toBeInstanceOf(AssumeRoleError);
    await expect(first).rejects.toThrow(
      `cannot assume role ${ROLE}: STS at region us-east-1 answered AccessDenied (HTTP 403)`,
    );
    fail = false;
    const second = provider.credentials();
    await release();
    await expect(second).rejects.toThrow(/unreachable/);
    expect(provider.calls).toBe(2);
  });
});
