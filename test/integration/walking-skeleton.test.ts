// The walking skeleton end to end, on the real control plane and the real RabbitMQ: a ScaledObject scales a
// consumer 0 → N → 0 through the generated HPA, driven by the real HPA controller, with sluice's metrics served
// through kube-apiserver's aggregator.
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNamespace, deleteNamespace, kubeConfig, loadTestEnv, uniqueName, waitFor } from '../support/env.ts';
import { ScalingTestKit } from '../support/scaling.ts';
import { startSluice, type SluiceProcess } from '../support/sluice.ts';

describe('walking skeleton: ScaledObject → HPA → external metrics → scale 0 ↔ N', () => {
  let kit: ScalingTestKit;
  let sluice: SluiceProcess;
  let connection: amqp.ChannelModel;
  let channel: amqp.Channel;

  beforeAll(async () => {
    const kc = kubeConfig();
    sluice = await startSluice({ logName: 'sluice-walking-skeleton.log' });
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'skeleton'));
    connection = await amqp.connect(loadTestEnv().rabbitmq.amqpUrl);
    channel = await connection.createChannel();
  });

  afterAll(async () => {
    await channel.close().catch(() => undefined);
    await connection.close().catch(() => undefined);
    // Namespaces go before the metrics server: an unavailable APIService blocks namespace deletion.
    await deleteNamespace(kit.kc, kit.namespace);
    await sluice.stop();
  });

  it('scales a RabbitMQ consumer 0 → 4 → 0 and garbage-collects the HPA with its ScaledObject', async () => {
    // Capitals on purpose: the HPA controller asks for the metric name in lower case.
    const queue = `Tasks-${uniqueName('q')}`;
    await channel.assertQueue(queue, { durable: false });
    await kit.createDeployment('consumer', 0);
    await kit.createScaledObject('consumer', {
      scaleTargetRef: { name: 'consumer' },
      minReplicaCount: 0,
      maxReplicaCount: 4,
      pollingInterval: 1,
      cooldownPeriod: 5,
      triggers: [
        {
          type: 'rabbitmq',
          metadata: {
            host: loadTestEnv().rabbitmq.managementUrl,
            queueName: queue,
            mode: 'QueueLength',
            value: '10',
            activationValue: '5',
          },
        },
      ],
    });
    const metric = `s0-rabbitmq-${queue}`;
    const selector = ScalingTestKit.selectorFor('consumer');

    // The HPA exists, owned by the ScaledObject, with sluice's metric and selector.
    const hpa = await kit.waitForHpa('sluice-hpa-consumer');
    expect(hpa.spec.minReplicas).toBe(1);
    expect(hpa.spec.maxReplicas).toBe(4);
    expect(hpa.metadata?.ownerReferences?.[0]).toMatchObject({
      kind: 'ScaledObject',
      name: 'consumer',
      controller: true,
    });
    expect(hpa.spec.metrics?.[0]?.external?.metric).toEqual({
      name: metric,
      selector: { matchLabels: { 'scaledobject.sluice.dev/name': 'consumer' } },
    });
    expect(hpa.spec.metrics?.[0]?.external?.target).toEqual({ type: 'AverageValue', averageValue: '10' });

    // 3 messages: below the activation value 5, so the consumer stays at zero for 15 s, while the metric is served.
    for (let i = 0; i < 3; i++) channel.sendToQueue(queue, Buffer.from(`m${i}`));
    await waitFor(async () => (await kit.externalMetric(metric, selector)).values[0] === '3', {
      timeoutMs: 20_000,
      message: 'the served metric to read 3',
    });
    await kit.waitForCondition('consumer', 'Active', 'ScalerNotActive');
    await kit.expectReplicasStay('consumer', 0, 15_000);

    // 40 more: active, and the real HPA controller takes it to ceil(43 / 10) = 5, capped at max 4.
    let sixthAt = 0;
    for (let i = 3; i < 43; i++) {
      channel.sendToQueue(queue, Buffer.from(`m${i}`));
      if (i === 5) sixthAt = performance.now();
      if (i < 8) await sleep(20);
    }
    await waitFor(async () => (await kit.replicas('consumer')) >= 1, {
      timeoutMs: 30_000,
      intervalMs: 50,
      message: 'activation 0 → 1',
    });
    console.log(
      `[measure] 6th message → scale-subresource write 0→1 observed after ${(performance.now() - sixthAt).toFixed(0)} ms`,
    );

    await kit.waitForReplicas('consumer', 4);
    // The served value may trail the queue by one poll: wait for it rather than read it once.
    await waitFor(async () => (await kit.externalMetric(metric, selector)).values[0] === '43', {
      timeoutMs: 10_000,
      message: 'the served metric to read 43',
    });
    const served = await kit.externalMetric(metric, selector);
    expect(served.status).toBe(200);
    expect(served.body).toMatchObject({
      kind: 'ExternalMetricValueList',
      apiVersion: 'external.metrics.k8s.io/v1beta1',
    });
    expect((served.body['items'] as { metricName: string; value: string }[])[0]).toMatchObject({
      metricName: metric,
      value: '43',
    });
    // Discovery through kube-apiserver lists no metric of any namespace (as KEDA ≥ 2.11): neither the metric name
    // nor the queue name it holds, only the placeholder resource.
    const discovery = await kit.kubeGet('/apis/external.metrics.k8s.io/v1beta1');
    expect(discovery.status).toBe(200);
    expect(discovery.text).not.toContain(queue);
    const resources = (JSON.parse(discovery.text) as { resources: { name: string }[] }).resources;
    expect(resources.map((r) => r.name)).toStrictEqual(['externalmetrics']);
    expect(await kit.waitForCondition('consumer', 'Active', 'ScalerActive')).toMatchObject({ status: 'True' });
    expect(await kit.waitForCondition('consumer', 'Ready', 'ScaledObjectReady')).toMatchObject({ status: 'True' });

    // Purge: the HPA goes down to 1 (its minimum) and sluice takes it to 0 after the 5 s cooldown.
    await channel.purgeQueue(queue);
    await kit.waitForReplicas('consumer', 0, 90_000);

    // Deleting the ScaledObject garbage-collects its HPA, and its metric leaves the API.
    await kit.deleteScaledObject('consumer');
    await kit.waitForHpaGone('sluice-hpa-consumer');
    await waitFor(async () => (await kit.externalMetric(metric, selector)).status === 404, {
      timeoutMs: 10_000,
      message: 'the metric to disappear',
    });
  });

  it('gives an invalid ScaledObject Ready=False naming the field, and no HPA', async () => {
    await kit.createDeployment('invalid-target', 0);
    await kit.createScaledObject('invalid', {
      scaleTargetRef: { name: 'invalid-target' },
      triggers: [{ type: 'rabbitmq', metadata: { host: 'amqp://guest:guest@127.0.0.1:1/' } }],
    });
    const ready = await kit.waitForCondition('invalid', 'Ready', 'ScaledObjectCheckFailed');
    expect(ready.status).toBe('False');
    expect(ready.message).toContain('spec.triggers[0].metadata.queueName');
    expect(ready.message).not.toContain('guest:guest');
    await expect(
      kit.autoscaling.readNamespacedHorizontalPodAutoscaler({ name: 'sluice-hpa-invalid', namespace: kit.namespace }),
    ).rejects.toMatchObject({ code: 404 });
  });

  it('still gives a valid ScaledObject whose broker is down its HPA, and never scales it in on the error', async () => {
    await kit.createDeployment('orphan', 2);
    await kit.createScaledObject('broker-down', {
      scaleTargetRef: { name: 'orphan' },
      pollingInterval: 1,
      cooldownPeriod: 1,
      triggers: [
        // Nothing listens on port 1: every poll fails with a connection error.
        {
          type: 'rabbitmq',
          metadata: { host: 'http://guest:guest@127.0.0.1:1/', queueName: 'q', mode: 'QueueLength', value: '5' },
        },
      ],
    });
    await kit.waitForHpa('sluice-hpa-broker-down');
    const ready = await kit.waitForCondition('broker-down', 'Ready', 'TriggerError');
    expect(ready.status).toBe('False');
    // KEDA's reason and message, followed by what actually failed (without the credentials of the host URL).
    expect(ready.message).toMatch(/^Triggers defined in ScaledObject are not working correctly: s0-rabbitmq-q: /);
    expect(ready.message).toContain('127.0.0.1:1');
    expect(ready.message).not.toContain('guest:guest');
    // The metric is an error, not a zero…
    const m = await kit.externalMetric('s0-rabbitmq-q', ScalingTestKit.selectorFor('broker-down'));
    expect(m.status).toBeGreaterThanOrEqual(500);
    expect(m.values).toEqual([]);
    // …and with the 1 s cooldown long past, the replicas are held.
    await kit.expectReplicasStay('orphan', 2, 5000);
  });

  it('refuses a metrics client that presents no front-proxy certificate', async () => {
    const env = loadTestEnv();
    const get = (cert?: { cert: Buffer; key: Buffer }) =>
      new Promise<number>((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port: sluice.port,
            path: `/apis/external.metrics.k8s.io/v1beta1/namespaces/${kit.namespace}/s0-rabbitmq-q`,
            headers: { 'X-Remote-User': 'system:admin', 'X-Remote-Group': 'system:masters' },
            rejectUnauthorized: false,
            ...cert,
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end();
      });
    // No client certificate at all, while the headers claim system:masters.
    expect(await get()).toBe(401);
    // A certificate kube-apiserver trusts for clients (cluster CA), but not the front proxy's.
    expect(await get({ cert: readFileSync(env.pki.adminCert), key: readFileSync(env.pki.adminKey) })).toBe(401);
    // The front-proxy client certificate itself is accepted (and then authorized as system:masters).
    expect(
      await get({ cert: readFileSync(env.pki.frontProxyClientCert), key: readFileSync(env.pki.frontProxyClientKey) }),
    ).not.toBe(401);
  });
});
