// sluice restarted under live ScaledObjects, on the real control plane and broker:
// - objects that exist before sluice starts are reconciled at once (a race once left them unreconciled, with no HPA
//   and no log line, until the 5-minute resync: the informer cache was not wired to the reconciler yet);
// - `kill -9` of the operator inside a 40 s cooldown with an empty queue: the restarted operator resumes the cooldown
//   from status.lastActiveTime, holds the replicas until it is over, then scales to 0.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNamespace, deleteNamespace, kubeConfig, loadTestEnv, uniqueName, waitFor } from '../support/env.ts';
import { ScalingTestKit, openTestQueues, type TestQueues } from '../support/scaling.ts';
import { startSluice, type SluiceProcess } from '../support/sluice.ts';

describe('sluice restarted under live ScaledObjects', () => {
  let kit: ScalingTestKit;
  let sluice: SluiceProcess | undefined;
  let broker: TestQueues;
  const queues = { early: uniqueName('rs-early'), cool: uniqueName('rs-cool') };

  beforeAll(async () => {
    const kc = kubeConfig();
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'restart'));
    broker = await openTestQueues(Object.values(queues));
  });

  afterAll(async () => {
    await broker.close();
    sluice ??= await startSluice({ logName: 'sluice-restart-e2e.log' });
    // Namespaces go before the metrics server: an unavailable APIService blocks namespace deletion.
    await deleteNamespace(kit.kc, kit.namespace);
    await sluice.stop();
  });

  const trigger = (queue: string) => ({
    type: 'rabbitmq',
    metadata: {
      host: loadTestEnv().rabbitmq.managementUrl,
      queueName: queue,
      mode: 'QueueLength',
      value: '10',
      activationValue: '2',
    },
  });

  it('reconciles at once a ScaledObject created while sluice was not running', async () => {
    for (let i = 0; i < 5; i++) broker.channel.sendToQueue(queues.early, Buffer.from(`m${i}`));
    await kit.createDeployment('early', 0);
    await kit.createScaledObject('early', {
      scaleTargetRef: { name: 'early' },
      minReplicaCount: 0,
      maxReplicaCount: 4,
      pollingInterval: 1,
      triggers: [trigger(queues.early)],
    });
    sluice = await startSluice({ logName: 'sluice-restart-e2e.log' });
    // The HPA and the activation come from the first reconcile, not from a resync minutes later.
    await kit.waitForHpa('sluice-hpa-early', 15_000);
    await kit.waitForReplicas('early', 1, 15_000);
    expect((await kit.scaledObject('early')).status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
  });

  it('honours a cooldown in progress across kill -9 of the operator', async () => {
    if (sluice === undefined) throw new Error('sluice did not start');
    for (let i = 0; i < 5; i++) broker.channel.sendToQueue(queues.cool, Buffer.from(`m${i}`));
    await kit.createDeployment('cool', 0);
    await kit.createScaledObject('cool', {
      scaleTargetRef: { name: 'cool' },
      minReplicaCount: 0,
      maxReplicaCount: 4,
      pollingInterval: 1,
      cooldownPeriod: 40,
      triggers: [trigger(queues.cool)],
    });
    await kit.waitForReplicas('cool', 1, 20_000);

    // The queue empties: the cooldown starts, and its start (lastActiveTime) reaches the status with the transition.
    await broker.channel.purgeQueue(queues.cool);
    const purgedAt = Date.now();
    await kit.waitForCondition('cool', 'Active', 'ScalerCooldown', 15_000);
    const lastActive = Date.parse((await kit.scaledObject('cool')).status?.lastActiveTime ?? '');
    expect(lastActive).toBeGreaterThanOrEqual(purgedAt - 2000);
    expect(lastActive).toBeLessThanOrEqual(Date.now());

    // Ten seconds into the cooldown, the operator dies without a chance to clean up.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, purgedAt + 10_000 - Date.now())));
    const killed = sluice;
    killed.child.kill('SIGKILL');
    await waitFor(() => killed.child.exitCode !== null || killed.child.signalCode !== null, {
      message: 'sluice to die',
    });
    await killed.stop();
    sluice = await startSluice({ logName: 'sluice-restart-e2e.log' });
    expect(readFileSync(sluice.logFile, 'utf8')).toContain('initial list:');

    // Until the cooldown (40 s from lastActiveTime) is over, the restarted operator keeps the replica.
    const cooldownEnds = lastActive + 40_000;
    while (Date.now() < cooldownEnds - 2000) {
      expect(await kit.replicas('cool')).toBe(1);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    // Then it scales to 0 (within a few seconds: the executor's timer fires when the cooldown ends).
    await kit.waitForReplicas('cool', 0, 15_000);
    console.log(`[measure] scaled to 0 ${((Date.now() - cooldownEnds) / 1000).toFixed(1)} s after the cooldown ended`);
  });
});
