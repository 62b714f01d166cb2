// The rabbitmq scaler's useRegex mode end to end, on the real control plane and the real RabbitMQ: a ScaledObject
// whose trigger sums two queues matching a regular expression scales a consumer 0 → N → 0 through the generated HPA
// and the real HPA controller. (The broker-down → held case is covered for this scaler by walking-skeleton.test.ts.)
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { goQueryEscape } from '../../src/scalers/rabbitmq.ts';
import { metricNameFor } from '../../src/scalers/scaler.ts';
import { createNamespace, deleteNamespace, kubeConfig, loadTestEnv, uniqueName, waitFor } from '../support/env.ts';
import { ScalingTestKit } from '../support/scaling.ts';
import { startSluice, type SluiceProcess } from '../support/sluice.ts';

describe('rabbitmq e2e: useRegex sum over two queues scales 0 → N → 0', () => {
  let kit: ScalingTestKit;
  let sluice: SluiceProcess;
  let connection: amqp.ChannelModel;
  let channel: amqp.Channel;
  const prefix = uniqueName('e2e-rx');
  const [queueA, queueB] = [`${prefix}-a`, `${prefix}-b`];

  beforeAll(async () => {
    const kc = kubeConfig();
    sluice = await startSluice({ logName: 'sluice-rabbitmq-e2e.log' });
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'rabbitmq-e2e'));
    connection = await amqp.connect(loadTestEnv().rabbitmq.amqpUrl);
    channel = await connection.createChannel();
    for (const q of [queueA, queueB]) await channel.assertQueue(q, { durable: false });
  });

  afterAll(async () => {
    for (const q of [queueA, queueB]) await channel.deleteQueue(q).catch(() => undefined);
    await connection.close().catch(() => undefined);
    // Namespaces go before the metrics server: an unavailable APIService blocks namespace deletion.
    await deleteNamespace(kit.kc, kit.namespace);
    await sluice.stop();
  });

  it('stays at 0 below activation, scales to the sum / target, and back to 0 after the cooldown', async () => {
    // No character that Go's QueryEscape turns into upper-case hex (`^` would be `%5E`): the HPA controller asks
    // for external metrics by their lower-cased name, and sluice's metrics server matches names case-sensitively.
    const queueName = `${prefix}-.`;
    const metric = metricNameFor(0, `rabbitmq-${goQueryEscape(queueName)}`);
    const selector = ScalingTestKit.selectorFor('regex');
    await kit.createDeployment('consumer', 0);
    await kit.createScaledObject('regex', {
      scaleTargetRef: { name: 'consumer' },
      minReplicaCount: 0,
      maxReplicaCount: 4,
      pollingInterval: 1,
      cooldownPeriod: 3,
      triggers: [
        {
          type: 'rabbitmq',
          metadata: {
            host: loadTestEnv().rabbitmq.managementUrl,
            queueName,
            useRegex: 'true',
            operation: 'sum',
            mode: 'QueueLength',
            value: '10',
            activationValue: '5',
          },
        },
      ],
    });
    const hpa = await kit.waitForHpa('sluice-hpa-regex');
    expect(hpa.spec.metrics?.[0]?.external?.metric.name).toBe(metric);

    // 2 + 2 = 4 ≤ activation 5: the metric is served as 4 and the consumer stays at zero.
    for (const q of [queueA, queueB]) for (let i = 0; i < 2; i++) channel.sendToQueue(q, Buffer.from(`m${i}`));
    await waitFor(async () => (await kit.externalMetric(metric, selector)).values[0] === '4', {
      timeoutMs: 20_000,
      message: 'the served metric to read 4 (2 + 2)',
    });
    // (The first polls may have found no statistics yet for the new queues: unknown, until a poll succeeds.)
    expect((await kit.waitForCondition('regex', 'Active', 'ScalerNotActive')).status).toBe('False');
    await kit.expectReplicasStay('consumer', 0, 10_000);

    // 4 + 20 + 11 = 35: active, and the HPA asks for ceil(35 / 10) = 4 replicas.
    for (let i = 0; i < 20; i++) channel.sendToQueue(queueA, Buffer.from(`a${i}`));
    for (let i = 0; i < 11; i++) channel.sendToQueue(queueB, Buffer.from(`b${i}`));
    await kit.waitForReplicas('consumer', 4, 90_000);
    expect((await kit.externalMetric(metric, selector)).values[0]).toBe('35');
    expect(await kit.waitForCondition('regex', 'Active', 'ScalerActive')).toMatchObject({ status: 'True' });

    // Both queues drained: the HPA goes to its minimum of 1 and sluice takes it to 0 after the cooldown.
    for (const q of [queueA, queueB]) await channel.purgeQueue(q);
    await kit.waitForReplicas('consumer', 0, 90_000);
    expect((await kit.externalMetric(metric, selector)).values[0]).toBe('0');
  });
});
