// The aws-sqs-queue scaler end to end on the real control plane and the environment's moto SQS: activation not
// reached → stays at 0; above target → N replicas through the real HPA controller; purged → 0 after the cooldown;
// and an SQS endpoint that stops answering holds the replicas (the queue is empty by then: an error is not a zero).
// sluice has no credentials in the trigger here, so it uses the SDK's default chain: the environment variables
// this file gives the `sluice operator --local` process.
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import {
  CreateQueueCommand,
  DeleteQueueCommand,
  PurgeQueueCommand,
  SQSClient,
  SendMessageCommand,
} from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNamespace, deleteNamespace, kubeConfig, loadTestEnv, uniqueName, waitFor } from '../support/env.ts';
import { ScalingTestKit } from '../support/scaling.ts';
import { startSluice, type SluiceProcess } from '../support/sluice.ts';

/** A TCP relay to moto that the test can cut (every connection dropped, the port closed) and restore on the same port. */
class CuttableRelay {
  #server: Server | undefined;
  readonly #sockets = new Set<Socket>();
  port = 0;
  readonly #target: { host: string; port: number };

  constructor(target: URL) {
    this.#target = { host: target.hostname, port: Number(target.port) };
  }

  async open(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(this.#target.port, this.#target.host);
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream).pipe(client);
    });
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.port = (server.address() as { port: number }).port;
    this.#server = server;
  }

  async cut(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    server.close();
    for (const s of this.#sockets) s.destroy();
    await once(server, 'close');
  }
}

describe('aws-sqs-queue on the control plane: 0 → N → 0, and a failing endpoint holds the replicas', () => {
  let kit: ScalingTestKit;
  let sluice: SluiceProcess;
  let sqs: SQSClient;
  const queues: string[] = [];
  const relay = new CuttableRelay(new URL(loadTestEnv().sqs.endpoint));

  async function createQueue(prefix: string): Promise<string> {
    const url = (await sqs.send(new CreateQueueCommand({ QueueName: uniqueName(prefix) }))).QueueUrl ?? '';
    queues.push(url);
    return url;
  }
  async function send(queueUrl: string, count: number): Promise<void> {
    for (let i = 0; i < count; i++)
      await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: `m${i}` }));
  }

  beforeAll(async () => {
    const env = loadTestEnv().sqs;
    // The default credential chain of the sluice process: environment variables; never instance metadata.
    process.env['AWS_ACCESS_KEY_ID'] = env.accessKeyId;
    process.env['AWS_SECRET_ACCESS_KEY'] = env.secretAccessKey;
    process.env['AWS_EC2_METADATA_DISABLED'] = 'true';
    sqs = new SQSClient({
      endpoint: env.endpoint,
      region: env.region,
      credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey },
    });
    await relay.open();
    const kc = kubeConfig();
    // The triggers below use sluice's own AWS identity (identityOwner: operator), which the operator must allow.
    sluice = await startSluice({
      logName: 'sluice-aws-sqs-queue-e2e.log',
      extraArgs: ['--allow-operator-cloud-identity'],
    });
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'sqs-e2e'));
  });

  afterAll(async () => {
    // Namespaces go before the metrics server: an unavailable APIService blocks namespace deletion.
    await deleteNamespace(kit.kc, kit.namespace);
    await sluice.stop();
    await relay.cut();
    for (const url of queues) await sqs.send(new DeleteQueueCommand({ QueueUrl: url })).catch(() => undefined);
    sqs.destroy();
  });

  it('stays at 0 below activation, scales to 4 above the target, and back to 0 after a purge', async () => {
    const env = loadTestEnv().sqs;
    const queueUrl = await createQueue('orders');
    const queueName = queueUrl.split('/').at(-1) ?? '';
    await kit.createDeployment('worker', 0);
    await kit.createScaledObject('orders', {
      scaleTargetRef: { name: 'worker' },
      minReplicaCount: 0,
      maxReplicaCount: 4,
      pollingInterval: 1,
      cooldownPeriod: 5,
      triggers: [
        {
          type: 'aws-sqs-queue',
          metadata: {
            queueURL: queueUrl,
            awsRegion: env.region,
            identityOwner: 'operator',
            awsEndpoint: env.endpoint,
            queueLength: '5',
            activationQueueLength: '3',
          },
        },
      ],
    });
    const metric = `s0-aws-sqs-${queueName}`;
    const selector = ScalingTestKit.selectorFor('orders');

    const hpa = await kit.waitForHpa('sluice-hpa-orders');
    expect(hpa.spec.metrics?.[0]?.external?.metric.name).toBe(metric);
    expect(hpa.spec.metrics?.[0]?.external?.target).toEqual({ type: 'AverageValue', averageValue: '5' });

    // 2 messages: not above the activation length 3, so the worker stays at 0 while the metric is served.
    await send(queueUrl, 2);
    await waitFor(async () => (await kit.externalMetric(metric, selector)).values[0] === '2', {
      timeoutMs: 20_000,
      message: 'the served metric to read 2',
    });
    await kit.waitForCondition('orders', 'Active', 'ScalerNotActive');
    await kit.expectReplicasStay('worker', 0, 10_000);
    expect((await kit.externalMetric(metric, selector)).values).toEqual(['2']);

    // 20 more: 22 messages, ceil(22 / 5) = 5 replicas wanted, capped at maxReplicaCount 4.
    const sentAt = performance.now();
    await send(queueUrl, 20);
    await waitFor(async () => (await kit.replicas('worker')) >= 1, {
      timeoutMs: 30_000,
      intervalMs: 50,
      message: 'activation 0 → 1',
    });
    const activatedMs = performance.now() - sentAt;
    await kit.waitForReplicas('worker', 4);
    console.log(
      `[measure] 20 messages sent → 0→1 after ${activatedMs.toFixed(0)} ms, 4 replicas after ${(performance.now() - sentAt).toFixed(0)} ms`,
    );
    // The served value may lag the queue by one polling interval.
    await waitFor(async () => (await kit.externalMetric(metric, selector)).values[0] === '22', {
      message: 'the served metric to read 22',
    });
    expect(await kit.waitForCondition('orders', 'Active', 'ScalerActive')).toMatchObject({ status: 'True' });
    expect(await kit.waitForCondition('orders', 'Ready', 'ScaledObjectReady')).toMatchObject({ status: 'True' });

    // Purge: 0 messages; the HPA goes to its minimum 1 and sluice to 0 after the 5 s cooldown.
    const purgedAt = performance.now();
    await sqs.send(new PurgeQueueCommand({ QueueUrl: queueUrl }));
    await kit.waitForReplicas('worker', 0, 90_000);
    console.log(`[measure] purge → 0 replicas after ${(performance.now() - purgedAt).toFixed(0)} ms (cooldown 5 s)`);
  });

  it('holds the replicas while the SQS endpoint fails, though the queue is empty by then; scales in once it answers', async () => {
    const env = loadTestEnv().sqs;
    const queueUrl = await createQueue('held');
    const queueName = queueUrl.split('/').at(-1) ?? '';
    await send(queueUrl, 7); // ceil(7 / 5) = 2 replicas
    await kit.createDeployment('held', 2);
    await kit.createScaledObject('held', {
      scaleTargetRef: { name: 'held' },
      minReplicaCount: 0,
      maxReplicaCount: 4,
      pollingInterval: 1,
      cooldownPeriod: 1,
      triggers: [
        {
          type: 'aws-sqs-queue',
          metadata: {
            queueURL: queueUrl,
            awsRegion: env.region,
            identityOwner: 'operator',
            awsEndpoint: `http://127.0.0.1:${relay.port}`,
            queueLength: '5',
          },
        },
      ],
    });
    const metric = `s0-aws-sqs-${queueName}`;
    const selector = ScalingTestKit.selectorFor('held');
    await kit.waitForHpa('sluice-hpa-held');
    await waitFor(async () => (await kit.externalMetric(metric, selector)).values[0] === '7', {
      timeoutMs: 20_000,
      message: 'the served metric to read 7 through the relay',
    });
    expect(await kit.replicas('held')).toBe(2);

    // The endpoint goes away, then the queue empties: a poll that got through now would read 0 and scale to 0.
    await relay.cut();
    await sqs.send(new PurgeQueueCommand({ QueueUrl: queueUrl }));
    const ready = await kit.waitForCondition('held', 'Ready', 'TriggerError');
    expect(ready.status).toBe('False');
    // The condition names the failing metric and the failure (the endpoint, never the queue: every reader of that
    // endpoint reports the same backend error); so does sluice's log.
    expect(ready.message).toContain(`${metric}: cannot reach SQS at http://127.0.0.1:${relay.port}`);
    expect(await readFile(sluice.logFile, 'utf8')).toContain(`cannot reach SQS at http://127.0.0.1:${relay.port}`);
    const m = await kit.externalMetric(metric, selector);
    expect(m.status).toBeGreaterThanOrEqual(500);
    expect(m.values).toEqual([]);
    // With the 1 s cooldown long past, the replicas are held.
    await kit.expectReplicasStay('held', 2, 8000);

    // The control: the same endpoint answers again, reads 0, and the target goes to 0.
    await relay.open();
    await kit.waitForReplicas('held', 0, 60_000);
  });
});
