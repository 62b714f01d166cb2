// Fallback and "errors never scale in" end to end, with a real broker process stopped under three ScaledObjects and
// started again (a RabbitMQ node of this test's own, test/support/broker.ts; the shared broker stays up):
// - A, at 2 replicas with fallback 5 (threshold 3, polling 1 s, management API): the real HPA takes the Deployment to
//   5 within 6 s of the stop (first failed read ≤ 1 s, fallback 3 × 1 s later, one HPA sync), Fallback=True, the ScaledObjectFallbackActivated Event exists; when the broker answers
//   again the served metric is the real one again at once (the first good read ends the fallback);
// - B, at 3 without fallback (min 0, over AMQP): held at 3 through the outage, Ready=False TriggerError;
// - C, at 0 with fallback 2: activated straight to 2 by the executor.
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNamespace, deleteNamespace, kubeConfig, uniqueName, waitFor } from '../support/env.ts';
import { spareBroker, type SpareBroker } from '../support/broker.ts';
import { ScalingTestKit } from '../support/scaling.ts';
import { startSluice, type SluiceProcess } from '../support/sluice.ts';

describe('fallback: a broker process stopped and started under live ScaledObjects', () => {
  let kit: ScalingTestKit;
  let sluice: SluiceProcess;
  let broker: SpareBroker;
  const queues = { a: uniqueName('fb-a'), b: uniqueName('fb-b'), c: uniqueName('fb-c') };

  beforeAll(async () => {
    broker = spareBroker();
    await broker.start();
    // Durable queues and persistent, confirmed messages: they are still there after the broker's process is killed.
    const connection = await amqp.connect(broker.amqpUrl);
    const channel = await connection.createConfirmChannel();
    for (const queue of Object.values(queues)) await channel.assertQueue(queue, { durable: true });
    for (let i = 0; i < 20; i++) channel.sendToQueue(queues.a, Buffer.from(`m${i}`), { persistent: true });
    for (let i = 0; i < 30; i++) channel.sendToQueue(queues.b, Buffer.from(`m${i}`), { persistent: true });
    await channel.waitForConfirms();
    await connection.close();
    sluice = await startSluice({ logName: 'sluice-fallback-e2e.log' });
    const kc = kubeConfig();
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'fallback'));
  });

  afterAll(async () => {
    // Namespaces go before the metrics server: an unavailable APIService blocks namespace deletion.
    await deleteNamespace(kit.kc, kit.namespace);
    await sluice.stop();
    await broker.stop({ kill: true });
  });

  const rabbit = (host: string, queue: string) => ({
    type: 'rabbitmq',
    metadata: { host, queueName: queue, mode: 'QueueLength', value: '10' },
  });

  it('A falls back to 5, B holds 3 with Ready=False, C activates to 2; the broker back ends the fallback', async () => {
    const fallback = (replicas: number) => ({ failureThreshold: 3, replicas });
    const common = { minReplicaCount: 0, maxReplicaCount: 10, pollingInterval: 1, cooldownPeriod: 5 };
    await kit.createDeployment('a', 2);
    await kit.createDeployment('b', 3);
    await kit.createDeployment('c', 0);
    await kit.createScaledObject('a', {
      ...common,
      scaleTargetRef: { name: 'a' },
      fallback: fallback(5),
      // One HPA step from 2 to 5 (the HPA's default limit, max(2 × current, 4), would take two syncs): the test is
      // about when the fallback value is served, not about the HPA's rate limits.
      advanced: {
        horizontalPodAutoscalerConfig: {
          behavior: {
            scaleUp: { stabilizationWindowSeconds: 0, policies: [{ type: 'Pods', value: 10, periodSeconds: 1 }] },
          },
        },
      },
      triggers: [rabbit(broker.managementUrl, queues.a)],
    });
    await kit.createScaledObject('b', {
      ...common,
      scaleTargetRef: { name: 'b' },
      triggers: [rabbit(broker.amqpUrl, queues.b)],
    });
    await kit.createScaledObject('c', {
      ...common,
      scaleTargetRef: { name: 'c' },
      fallback: fallback(2),
      triggers: [rabbit(broker.managementUrl, queues.c)],
    });
    const metricA = `s0-rabbitmq-${queues.a}`;
    const selectorA = ScalingTestKit.selectorFor('a');
    // Before the outage: A reads 20 (the HPA keeps ceil(20/10) = 2), B 30 (3), C is idle at 0.
    await waitFor(async () => (await kit.externalMetric(metricA, selectorA)).values[0] === '20', {
      timeoutMs: 30_000,
      message: 'A to serve 20',
    });
    await kit.waitForCondition('b', 'Active', 'ScalerActive');
    await kit.waitForCondition('c', 'Active', 'ScalerNotActive');
    await kit.waitForReplicas('a', 2);
    await kit.waitForReplicas('b', 3);
    expect(await kit.replicas('c')).toBe(0);

    // The broker's process dies.
    await broker.stop({ kill: true });
    const stoppedAt = performance.now();

    await kit.waitForReplicas('a', 5, 6000);
    console.log(
      `[measure] broker stopped → A at its fallback of 5 replicas in ${(performance.now() - stoppedAt).toFixed(0)} ms`,
    );
    expect(await kit.condition('a', 'Fallback')).toMatchObject({ status: 'True', reason: 'FallbackExists' });
    // The HPA was driven by the fallback value: target 10 × 5 replicas.
    expect((await kit.externalMetric(metricA, selectorA)).values).toEqual(['50']);
    const activated = await kit.waitForEvent('a', 'ScaledObjectFallbackActivated');
    expect(activated.type).toBe('Warning');
    const health = (await kit.scaledObject('a')).status?.health?.[metricA];
    expect(health).toMatchObject({ status: 'Failing' });
    expect(health?.numberOfFailures).toBeGreaterThan(3);

    await kit.waitForReplicas('c', 2, 10_000);
    const ready = await kit.waitForCondition('b', 'Ready', 'TriggerError');
    expect(ready.status).toBe('False');
    expect(ready.message).toContain(`s0-rabbitmq-${queues.b}`);
    // Errors never scale in: B keeps its 3 through the outage (cooldown 5 s, min 0).
    await kit.expectReplicasStay('b', 3, 8000);
    expect(await kit.replicas('a')).toBe(5);

    // The broker comes back: the first good read ends the fallback, and the HPA is metric-driven again. "Answering"
    // is the broker answering what sluice asks: queue A's message count (a restarted node has no statistics for a
    // queue for a moment, which sluice reads as an error, not as a value).
    await broker.start();
    const answeredAt = await waitFor(
      async () => {
        const response = await fetch(`${broker.managementUrl.replace('guest:guest@', '')}/api/queues/%2F/${queues.a}`, {
          headers: { authorization: `Basic ${Buffer.from('guest:guest').toString('base64')}` },
        });
        const body = response.ok ? ((await response.json()) as { messages?: number }) : {};
        return body.messages === 20 ? performance.now() : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 50, message: "the restarted broker to report queue A's messages" },
    );
    await waitFor(async () => (await kit.externalMetric(metricA, selectorA)).values[0] === '20', {
      timeoutMs: 10_000,
      intervalMs: 50,
      message: 'A to serve its real value again',
    });
    const recoveredMs = performance.now() - answeredAt;
    console.log(`[measure] broker answering → A metric-driven again in ${recoveredMs.toFixed(0)} ms`);
    // The open circuit probes once per read interval (1 s): the first probe after the broker answers ends it.
    expect(recoveredMs).toBeLessThan(1500);
    expect((await kit.waitForCondition('a', 'Fallback', 'NoFallbackFound')).status).toBe('False');
    await kit.waitForEvent('a', 'ScaledObjectFallbackDeactivated');
    expect((await kit.waitForCondition('b', 'Ready', 'ScaledObjectReady')).status).toBe('True');
    // 20 messages, target 10: the HPA brings A back to 2 (downscale stabilization is 5 s on this ground).
    await kit.waitForReplicas('a', 2, 30_000);
  });
});
