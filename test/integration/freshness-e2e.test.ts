// Fresh values at default settings (no pollingInterval, so KEDA's 30 s), end to end on the real control plane and
// broker: values are read about once a second whatever the pollingInterval, and the executor decides as soon as a
// trigger's activity changes, so
// - one message on an idle queue takes the consumer 0 → 1 without waiting for a 30 s poll;
// - 60 messages at 1 replica reach the real HPA controller at its next sync: its first step comes seconds after the
//   publish, not up to 30 s later.
// The times are printed here and measured properly by `npm run bench`.
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { createNamespace, deleteNamespace, kubeConfig, loadTestEnv, uniqueName, waitFor } from '../support/env.ts';
import { ScalingTestKit } from '../support/scaling.ts';
import { startSluice, type SluiceProcess } from '../support/sluice.ts';

/** KEDA's default pollingInterval: anything slower than this means a value waited for a poll. */
const POLL_MS = 30_000;

describe('fresh values at default settings', () => {
  let kit: ScalingTestKit;
  let sluice: SluiceProcess;
  let connection: amqp.ChannelModel;
  let channel: amqp.Channel;
  const queues = { idle: uniqueName('fresh-idle'), burst: uniqueName('fresh-burst') };

  beforeAll(async () => {
    const kc = kubeConfig();
    sluice = await startSluice({ logName: 'sluice-freshness-e2e.log' });
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'freshness'));
    connection = await amqp.connect(loadTestEnv().rabbitmq.amqpUrl);
    channel = await connection.createChannel();
    for (const q of Object.values(queues)) await channel.assertQueue(q, { durable: false });
  });

  afterAll(async () => {
    for (const q of Object.values(queues)) await channel.deleteQueue(q).catch(() => undefined);
    await connection.close().catch(() => undefined);
    // Namespaces go before the metrics server: an unavailable APIService blocks namespace deletion.
    await deleteNamespace(kit.kc, kit.namespace);
    await sluice.stop();
  });

  const trigger = (queue: string) => ({
    type: 'rabbitmq',
    metadata: { host: loadTestEnv().rabbitmq.managementUrl, queueName: queue, mode: 'QueueLength', value: '10' },
  });

  it('one message on an idle queue: 0 → 1 without waiting for a poll', async () => {
    await kit.createDeployment('idle', 0);
    await kit.createScaledObject('idle', { scaleTargetRef: { name: 'idle' }, triggers: [trigger(queues.idle)] });
    await kit.waitForCondition('idle', 'Active', 'ScalerNotActive');
    await kit.expectReplicasStay('idle', 0, 3000);

    channel.sendToQueue(queues.idle, Buffer.from('work'));
    const sent = performance.now();
    await kit.waitForReplicas('idle', 1, POLL_MS / 2);
    console.log(`[measure] default settings: first message → 0 → 1 in ${(performance.now() - sent).toFixed(0)} ms`);
  });

  it('60 messages at 1 replica: the real HPA steps up at its next sync, not after a poll', async () => {
    await kit.createDeployment('burst', 1);
    await kit.createScaledObject('burst', {
      scaleTargetRef: { name: 'burst' },
      minReplicaCount: 1,
      triggers: [trigger(queues.burst)],
    });
    const metric = `s0-rabbitmq-${queues.burst}`;
    const selector = ScalingTestKit.selectorFor('burst');
    await waitFor(async () => (await kit.externalMetric(metric, selector)).values[0] === '0', {
      timeoutMs: 20_000,
      message: 'the empty queue to be served as 0',
    });
    await kit.expectReplicasStay('burst', 1, 2000);

    for (let i = 0; i < 60; i++) channel.sendToQueue(queues.burst, Buffer.from(`m${i}`));
    const sent = performance.now();
    // ceil(60 / 10) = 6; the HPA's first step from 1 is at most 4 (max(2 × 1, 4)).
    await waitFor(async () => (await kit.replicas('burst')) > 1, {
      timeoutMs: POLL_MS / 2,
      intervalMs: 100,
      message: 'the HPA to scale up',
    });
    const firstStep = performance.now() - sent;
    await kit.waitForReplicas('burst', 6, 30_000);
    console.log(
      `[measure] default settings: 60 messages at 1 replica → first HPA step after ${firstStep.toFixed(0)} ms, 6 replicas after ${(performance.now() - sent).toFixed(0)} ms`,
    );
  });
});
