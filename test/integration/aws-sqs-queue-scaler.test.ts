// The aws-sqs-queue scaler against the environment's moto server (a real SQS API): visible, in-flight and delayed
// counts, and every way of not knowing the count is an error, never 0: a missing queue, connection refused, a
// timeout, a malformed answer, 5xx, and refused credentials (against a second moto of our own with IAM
// authentication switched on, so the shared one keeps accepting anything).
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createServer as createHttpServer, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, connect, type Socket } from 'node:net';
import { homedir } from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import {
  CreateQueueCommand,
  DeleteQueueCommand,
  ReceiveMessageCommand,
  SQSClient,
  SendMessageCommand,
} from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendError, ScalerError, describeError } from '../../src/errors.ts';
import { createAwsSqsQueueScaler } from '../../src/scalers/aws-sqs-queue.ts';
import { loadTestEnv, uniqueName, waitFor } from '../support/env.ts';
import { standalone, triggerInput, type StandaloneScaler } from '../support/trigger.ts';
import { pinnedAddress } from '../support/pinned-address.ts';

const signal = () => AbortSignal.timeout(5000);

function motoAuth(): Record<string, string> {
  const { accessKeyId, secretAccessKey } = loadTestEnv().sqs;
  return { awsAccessKeyID: accessKeyId, awsSecretAccessKey: secretAccessKey };
}

function scaler(metadata: Record<string, string>, authParams: Record<string, string> = motoAuth()): StandaloneScaler {
  const { endpoint, region } = loadTestEnv().sqs;
  return standalone(
    createAwsSqsQueueScaler(
      triggerInput({
        type: 'aws-sqs-queue',
        // The endpoint is the TriggerAuthentication's when it supplies the keys (test/support/pinned-address.ts);
        // without keys, sluice's own identity (identityOwner: operator).
        ...pinnedAddress(
          'awsEndpoint',
          'move',
          {
            awsEndpoint: endpoint,
            awsRegion: region,
            ...(Object.keys(authParams).length === 0 ? { identityOwner: 'operator' } : {}),
            ...metadata,
          },
          authParams,
        ),
      }),
    ),
  );
}

async function sampleError(s: StandaloneScaler, sig: AbortSignal = signal()): Promise<ScalerError> {
  try {
    const sample = await s.sample(sig);
    throw new Error(`expected an error, got the value ${sample.value}`);
  } catch (err) {
    expect(err).toBeInstanceOf(ScalerError);
    return err as ScalerError;
  }
}

describe('aws-sqs-queue scaler against moto', () => {
  let sqs: SQSClient;
  let queueUrl: string;
  let queue: string;
  const scalers: StandaloneScaler[] = [];
  const track = (s: StandaloneScaler) => (scalers.push(s), s);

  beforeAll(async () => {
    const env = loadTestEnv().sqs;
    sqs = new SQSClient({
      endpoint: env.endpoint,
      region: env.region,
      credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey },
    });
    queue = uniqueName('scaler');
    queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: queue }))).QueueUrl ?? '';
    // 5 visible; receive 2 without deleting them: 3 visible + 2 in flight.
    for (let i = 0; i < 5; i++) await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: `m${i}` }));
    const received = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 2, VisibilityTimeout: 600 }),
    );
    expect(received.Messages).toHaveLength(2);
  });

  afterAll(async () => {
    await Promise.all(scalers.map((s) => s.close()));
    await sqs.send(new DeleteQueueCommand({ QueueUrl: queueUrl })).catch(() => undefined);
    sqs.destroy();
  });

  it('counts visible + in-flight messages by default, visible only with scaleOnInFlight false', async () => {
    expect(await track(scaler({ queueURL: queueUrl })).sample(signal())).toEqual({ value: 5, active: true });
    expect(await track(scaler({ queueURL: queueUrl, scaleOnInFlight: 'false' })).sample(signal())).toEqual({
      value: 3,
      active: true,
    });
  });

  it('activation is strict and counts in-flight messages (KEDA semantics)', async () => {
    const at = (activationQueueLength: string) => track(scaler({ queueURL: queueUrl, activationQueueLength }));
    expect(await at('5').sample(signal())).toEqual({ value: 5, active: false });
    expect(await at('4').sample(signal())).toEqual({ value: 5, active: true });
  });

  it('accepts the bare queue name', async () => {
    expect((await track(scaler({ queueURL: queue })).sample(signal())).value).toBe(5);
  });

  it('counts a delayed message only with scaleOnDelayed', async () => {
    const delayed = uniqueName('delayed');
    const url = (await sqs.send(new CreateQueueCommand({ QueueName: delayed }))).QueueUrl ?? '';
    try {
      await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'now' }));
      await sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'later', DelaySeconds: 600 }));
      const cases = [
        { metadata: {}, value: 1 },
        { metadata: { scaleOnDelayed: 'true' }, value: 2 },
        { metadata: { scaleOnDelayed: 'true', scaleOnInFlight: 'false' }, value: 2 },
      ];
      for (const c of cases) {
        expect((await track(scaler({ queueURL: url, ...c.metadata })).sample(signal())).value).toBe(c.value);
      }
    } finally {
      await sqs.send(new DeleteQueueCommand({ QueueUrl: url }));
    }
  });

  it('follows the queue: a new message is counted on the next sample with the same client', async () => {
    const s = track(scaler({ queueURL: queueUrl, scaleOnInFlight: 'false' }));
    const before = (await s.sample(signal())).value;
    await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: 'one more' }));
    await waitFor(async () => (await s.sample(signal())).value === before + 1, { message: 'the new message' });
    await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 1, VisibilityTimeout: 600 }));
  });

  it("uses the SDK's default credential chain when the trigger has no credentials", async () => {
    const env = loadTestEnv().sqs;
    const keys = [
      'AWS_EC2_METADATA_DISABLED',
      'AWS_SHARED_CREDENTIALS_FILE',
      'AWS_CONFIG_FILE',
      'AWS_ACCESS_KEY_ID',
      'AWS_SECRET_ACCESS_KEY',
      'AWS_SESSION_TOKEN',
      'AWS_PROFILE',
    ];
    const saved = new Map(keys.map((k) => [k, process.env[k]]));
    try {
      for (const k of keys) Reflect.deleteProperty(process.env, k);
      // Never the instance metadata service (no network but loopback here), nor the user's files.
      process.env['AWS_EC2_METADATA_DISABLED'] = 'true';
      process.env['AWS_SHARED_CREDENTIALS_FILE'] = '/nonexistent/credentials';
      process.env['AWS_CONFIG_FILE'] = '/nonexistent/config';
      // Nothing anywhere: an error, not 0.
      const none = await sampleError(track(scaler({ queueURL: queueUrl }, {})));
      expect(none.message).toMatch(/no AWS credentials/);
      expect(none).toBeInstanceOf(BackendError);
      // From the process environment.
      process.env['AWS_ACCESS_KEY_ID'] = env.accessKeyId;
      process.env['AWS_SECRET_ACCESS_KEY'] = env.secretAccessKey;
      expect((await track(scaler({ queueURL: queueUrl }, {})).sample(signal())).value).toBeGreaterThanOrEqual(5);
    } finally {
      for (const [k, v] of saved) {
        if (v === undefined) Reflect.deleteProperty(process.env, k);
        else process.env[k] = v;
      }
    }
  });

  it('a missing queue is an error', async () => {
    const err = await sampleError(track(scaler({ queueURL: 'does-not-exist' })));
    expect(err.message).toMatch(/queue "does-not-exist" at http:\/\/127\.0\.0\.1:\d+ does not exist/);
    expect(err).not.toBeInstanceOf(BackendError); // SQS answered: its circuit breaker must not count this
  });

  it('connection refused is an error', async () => {
    const err = await sampleError(track(scaler({ queueURL: queue, awsEndpoint: 'http://127.0.0.1:1' })));
    // A failure of the endpoint names the endpoint only (every reader of it reports the same).
    expect(err.message).toBe('cannot reach SQS at http://127.0.0.1:1: ECONNREFUSED');
    expect(err).toBeInstanceOf(BackendError);
  });

  describe('a TCP server that accepts and never answers', () => {
    let server: ReturnType<typeof createTcpServer>;
    const sockets: Socket[] = [];
    beforeAll(async () => {
      server = createTcpServer((socket) => sockets.push(socket));
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
    });
    afterAll(async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    });

    it('a timeout is an error, bounded by the signal', async () => {
      const { port } = server.address() as { port: number };
      const s = track(scaler({ queueURL: queue, awsEndpoint: `http://127.0.0.1:${port}` }));
      const started = Date.now();
      const err = await sampleError(s, AbortSignal.timeout(500));
      const elapsed = Date.now() - started;
      console.log(`[measure] sample against a silent endpoint gave up after ${elapsed} ms (signal: 500 ms)`);
      expect(err.message).toMatch(/timed out/);
      expect(err).toBeInstanceOf(BackendError);
      expect(elapsed).toBeLessThan(2500);
      expect(sockets.length).toBeGreaterThan(0);
    });
  });

  describe('an HTTP server that is not SQS', () => {
    let server: Server;
    let endpoint: string;
    let requests = 0;
    let reply: (res: ServerResponse) => void = () => undefined;

    beforeAll(async () => {
      server = createHttpServer((req, res) => {
        requests++;
        req.resume();
        reply(res);
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    });
    afterAll(async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    });

    const json = 'application/x-amz-json-1.0';
    const cases = [
      {
        comment: 'a malformed body (200)',
        status: 200,
        type: 'text/html',
        body: '<html>hi',
        expected: /malformed/,
        backend: false,
      },
      {
        comment: 'an empty result (200, {})',
        status: 200,
        type: json,
        body: '{}',
        expected: /did not return/,
        backend: false,
      },
      {
        comment: 'a non-integer count',
        status: 200,
        type: json,
        body: '{"Attributes":{"ApproximateNumberOfMessages":"many","ApproximateNumberOfMessagesNotVisible":"0"}}',
        expected: /non-integer ApproximateNumberOfMessages/,
        backend: false,
      },
      {
        comment: 'HTTP 500 with a body that is not JSON',
        status: 500,
        type: 'text/plain',
        body: 'oops',
        expected: /HTTP 500/,
        backend: true,
      },
      {
        comment: 'HTTP 503 ServiceUnavailable',
        status: 503,
        type: json,
        body: '{"__type":"ServiceUnavailable","message":"down"}',
        expected: /answered HTTP 503 \(ServiceUnavailable\)/,
        backend: true,
      },
      {
        comment: 'HTTP 404',
        status: 404,
        type: 'text/html',
        body: '<h1>Not Found</h1>',
        expected: /HTTP 404/,
        backend: false,
      },
    ];
    it.each(cases)('$comment is an error, not 0', async ({ status, type, body, expected, backend }) => {
      reply = (res) => res.writeHead(status, { 'content-type': type }).end(body);
      requests = 0;
      const err = await sampleError(track(scaler({ queueURL: queue, awsEndpoint: endpoint })));
      expect(err.message).toMatch(expected);
      // Only the endpoint failing counts against its circuit breaker; an answer without a count does not.
      expect(err instanceof BackendError).toBe(backend);
      expect(requests).toBeGreaterThan(0); // the error came from this server
    });
  });
});

/** The moto_server of the environment's cached venv (scripts/env/lib.sh: $SLUICE_CACHE/moto-<version>). */
function motoServerBinary(): string {
  const cache = process.env['SLUICE_CACHE'] ?? path.join(homedir(), '.cache', 'sluice');
  const venv = readdirSync(cache)
    .filter((d) => d.startsWith('moto-'))
    .sort()
    .at(-1);
  if (venv === undefined) throw new Error(`no moto venv in ${cache}: run npm run env:up`);
  return path.join(cache, venv, 'bin', 'moto_server');
}

async function freePort(): Promise<number> {
  const probe = createTcpServer();
  probe.listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as { port: number };
  probe.close();
  await once(probe, 'close');
  return port;
}

/** Unauthenticated actions the authenticating moto allows: the IAM calls of its beforeAll, exactly. */
const BOOTSTRAP_ACTIONS = 9;
/** moto's default account. */
const MOTO_ACCOUNT = '123456789012';
const EXTERNAL_ID = 'sluice-external-id-1';

/** An IAM Query API call during moto's unauthenticated start (the credential scope routes it to IAM). */
async function iamBootstrap(endpoint: string, params: Record<string, string>): Promise<string> {
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization:
        'AWS4-HMAC-SHA256 Credential=bootstrap/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0',
    },
    body: new URLSearchParams({ Version: '2010-05-08', ...params }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`IAM ${params['Action']} answered ${response.status}: ${text.slice(0, 200)}`);
  return text;
}

describe('aws-sqs-queue scaler against a moto that checks credentials', () => {
  let moto: ChildProcess;
  let endpoint: string;
  let output = '';
  let accessKeyId: string;
  let secretAccessKey: string;
  let assumer: Record<string, string> = {};
  const queue = uniqueName('authq');
  const scalers: StandaloneScaler[] = [];
  const track = (s: StandaloneScaler) => (scalers.push(s), s);
  const authScaler = (authParams: Record<string, string>) =>
    track(
      standalone(
        createAwsSqsQueueScaler(
          triggerInput({
            type: 'aws-sqs-queue',
            metadata: { queueURL: queue, awsRegion: 'us-east-1' },
            authParams: { awsEndpoint: endpoint, ...authParams },
          }),
        ),
      ),
    );

  beforeAll(async () => {
    const port = await freePort();
    endpoint = `http://127.0.0.1:${port}`;
    // The first 9 actions are free (the IAM bootstrap below); every later one must carry valid, permitted credentials.
    moto = spawn(motoServerBinary(), ['-H', '127.0.0.1', '-p', String(port)], {
      env: { ...process.env, INITIAL_NO_AUTH_ACTION_COUNT: String(BOOTSTRAP_ACTIONS) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    moto.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    moto.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    // Readiness by TCP connect only: an HTTP probe would use up one of the unauthenticated actions.
    await waitFor(
      () =>
        new Promise<boolean>((resolve) => {
          const socket = connect(port, '127.0.0.1');
          socket.on('connect', () => {
            socket.destroy();
            resolve(true);
          });
          socket.on('error', () => {
            resolve(false);
          });
        }),
      { timeoutMs: 30_000, intervalMs: 100, message: `moto with IAM authentication on port ${port}` },
    ).catch((err: unknown) => {
      throw new Error(`${describeError(err)}; moto output: ${output}`);
    });
    await iamBootstrap(endpoint, { Action: 'CreateUser', UserName: 'sluice' });
    const key = await iamBootstrap(endpoint, { Action: 'CreateAccessKey', UserName: 'sluice' });
    await iamBootstrap(endpoint, {
      Action: 'PutUserPolicy',
      UserName: 'sluice',
      PolicyName: 'sqs',
      PolicyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: 'sqs:*', Resource: '*' }],
      }),
    });
    accessKeyId = /<AccessKeyId>([^<]+)</.exec(key)?.[1] ?? '';
    secretAccessKey = /<SecretAccessKey>([^<]+)</.exec(key)?.[1] ?? '';
    expect(accessKeyId).not.toBe('');
    // For awsRoleArn: a user that may only assume roles (it cannot read SQS itself), a role it may assume that may
    // read SQS (with an external ID required by its trust policy), and one it may assume that may not.
    await iamBootstrap(endpoint, { Action: 'CreateUser', UserName: 'assumer' });
    const assumerKey = await iamBootstrap(endpoint, { Action: 'CreateAccessKey', UserName: 'assumer' });
    await iamBootstrap(endpoint, {
      Action: 'PutUserPolicy',
      UserName: 'assumer',
      PolicyName: 'assume',
      PolicyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: 'sts:AssumeRole', Resource: '*' }],
      }),
    });
    const trust = (condition?: Record<string, unknown>) =>
      JSON.stringify({
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Principal: { AWS: `arn:aws:iam::${MOTO_ACCOUNT}:user/assumer` },
            Action: 'sts:AssumeRole',
            ...(condition === undefined ? {} : { Condition: condition }),
          },
        ],
      });
    await iamBootstrap(endpoint, {
      Action: 'CreateRole',
      RoleName: 'sqs-reader',
      AssumeRolePolicyDocument: trust({ StringEquals: { 'sts:ExternalId': EXTERNAL_ID } }),
    });
    await iamBootstrap(endpoint, {
      Action: 'PutRolePolicy',
      RoleName: 'sqs-reader',
      PolicyName: 'read-queues',
      PolicyDocument: JSON.stringify({
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: 'sqs:GetQueueAttributes', Resource: '*' }],
      }),
    });
    await iamBootstrap(endpoint, { Action: 'CreateRole', RoleName: 'no-sqs', AssumeRolePolicyDocument: trust() });
    assumer = {
      awsAccessKeyID: /<AccessKeyId>([^<]+)</.exec(assumerKey)?.[1] ?? '',
      awsSecretAccessKey: /<SecretAccessKey>([^<]+)</.exec(assumerKey)?.[1] ?? '',
    };
    expect(assumer['awsAccessKeyID']).toMatch(/^AKIA/);
    const admin = new SQSClient({ endpoint, region: 'us-east-1', credentials: { accessKeyId, secretAccessKey } });
    const url = (await admin.send(new CreateQueueCommand({ QueueName: queue }))).QueueUrl ?? '';
    await admin.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'x' }));
    admin.destroy();
  });

  afterAll(async () => {
    await Promise.all(scalers.map((s) => s.close()));
    if (moto.exitCode === null && moto.signalCode === null) {
      const exited = once(moto, 'exit');
      moto.kill('SIGTERM');
      await exited;
    }
  });

  it('reads the queue with the right credentials (the control)', async () => {
    expect(
      await authScaler({ awsAccessKeyID: accessKeyId, awsSecretAccessKey: secretAccessKey }).sample(signal()),
    ).toEqual({ value: 1, active: true });
  });

  it('a wrong secret is a ScalerError that names the failure and never the secret', async () => {
    const wrong = 'wrong-Secret-0123456789abcdefghijklmnopqrs';
    const err = await sampleError(authScaler({ awsAccessKeyID: accessKeyId, awsSecretAccessKey: wrong }));
    expect(err.message).toMatch(/^SQS at http:\/\/127\.0\.0\.1:\d+ refused the credentials \(HTTP 403\)$/);
    expect(err).toBeInstanceOf(BackendError);
    const everything = `${describeError(err)} ${String(err.stack)}`;
    expect(everything).not.toContain(wrong);
    expect(everything).not.toContain(secretAccessKey);
  });

  it('an unknown access key is a ScalerError too', async () => {
    const err = await sampleError(
      authScaler({ awsAccessKeyID: 'AKIAUNKNOWNKEY000000', awsSecretAccessKey: 'unknown-secret-value-1234' }),
    );
    expect(err.message).toMatch(/SQS at .* refused the credentials \(HTTP 403\)/);
    expect(err).toBeInstanceOf(BackendError);
    expect(describeError(err)).not.toContain('unknown-secret-value-1234');
  });

  describe('awsRoleArn: SQS is read as the assumed role', () => {
    const roleArn = (name: string) => `arn:aws:iam::${MOTO_ACCOUNT}:role/${name}`;

    it('the control: the base user itself may not read SQS', async () => {
      const err = await sampleError(authScaler(assumer));
      expect(err.message).toMatch(/^SQS at http:\/\/127\.0\.0\.1:\d+ refused the credentials \(HTTP 403\)$/);
    });

    it('assumes the role with the base keys (and the external ID) and reads the queue with its credentials', async () => {
      const s = authScaler({ ...assumer, awsRoleArn: roleArn('sqs-reader'), awsExternalID: EXTERNAL_ID });
      // Only the role may read SQS (the control above): a value proves the request was signed with the role's
      // temporary credentials, which moto checks against the session it issued and the role's policy.
      expect(await s.sample(signal())).toEqual({ value: 1, active: true });
      expect(await s.sample(signal())).toEqual({ value: 1, active: true });
      // moto's record of the sessions it issued: one, named by sluice, with the external ID.
      const data = (await (await fetch(`${endpoint}/moto-api/data.json`)).json()) as {
        sts?: { AssumedRole?: { role_arn: string; session_name: string; external_id: string | null }[] };
      };
      const sessions = (data.sts?.AssumedRole ?? []).filter((r) => r.role_arn === roleArn('sqs-reader'));
      expect(sessions).toEqual([
        expect.objectContaining({ session_name: 'sluice-aws-sqs-queue', external_id: EXTERNAL_ID }),
      ]);
    });

    it("a role without SQS permissions is refused by SQS: the role's policy applies, not the user's", async () => {
      const err = await sampleError(authScaler({ ...assumer, awsRoleArn: roleArn('no-sqs') }));
      expect(err.message).toMatch(/^SQS at http:\/\/127\.0\.0\.1:\d+ refused the credentials \(HTTP 403\)$/);
    });

    it('a wrong external ID: AssumeRole is refused, a BackendError naming the role, never a key', async () => {
      const err = await sampleError(
        authScaler({ ...assumer, awsRoleArn: roleArn('sqs-reader'), awsExternalID: 'not-the-external-id' }),
      );
      expect(err).toBeInstanceOf(BackendError);
      expect(err.message).toMatch(
        /^cannot assume role arn:aws:iam::123456789012:role\/sqs-reader: STS at http:\/\/127\.0\.0\.1:\d+ answered AccessDenied \(HTTP 403\)/,
      );
      const everything = `${describeError(err)} ${String(err.stack)}`;
      expect(everything).not.toContain(assumer['awsSecretAccessKey']);
      expect(everything).not.toContain(assumer['awsAccessKeyID']);
    });

    it('base keys STS does not know: AssumeRole is refused, naming the role', async () => {
      const err = await sampleError(
        authScaler({
          awsAccessKeyID: 'AKIAUNKNOWNKEY000000',
          awsSecretAccessKey: 'unknown-secret-value-1234',
          awsRoleArn: roleArn('sqs-reader'),
          awsExternalID: EXTERNAL_ID,
        }),
      );
      expect(err).toBeInstanceOf(BackendError);
      expect(err.message).toMatch(
        /^cannot assume role arn:aws:iam::123456789012:role\/sqs-reader: STS at .* \(HTTP 403\)/,
      );
      expect(describeError(err)).not.toContain('unknown-secret-value-1234');
      expect(describeError(err)).not.toContain('AKIAUNKNOWNKEY000000');
    });
  });
});
