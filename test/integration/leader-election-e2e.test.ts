// Two replicas of sluice against the real control plane and broker: one leads (the Lease), both poll and serve the
// metrics API. The APIService points at the follower, so every HPA metric fetch goes to a replica that did not lead
// and must still answer correctly; `kill -9` of the leader → the follower takes the Lease within 17 s and reconciles
// a new object (HPA made, 0 → N), and no HPA metric fetch fails during the failover (no FailedGetExternalMetric on
// the HPA, none of our own GETs through the aggregator fails), nothing scaled to zero.
import { CoreV1Api } from '@kubernetes/client-node';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNamespace, deleteNamespace, kubeConfig, loadTestEnv, uniqueName, waitFor } from '../support/env.ts';
import { ScalingTestKit, openTestQueues, type TestQueues } from '../support/scaling.ts';
import { leaseHolder, startSluice, type SluiceProcess } from '../support/sluice.ts';

describe('two replicas: leader election on the Lease sluice-operator', () => {
  let kit: ScalingTestKit;
  let leader: SluiceProcess | undefined;
  let follower: SluiceProcess | undefined;
  let broker: TestQueues;
  const queues = { first: uniqueName('le-first'), second: uniqueName('le-second') };

  beforeAll(async () => {
    const kc = kubeConfig();
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'leader'));
    broker = await openTestQueues(Object.values(queues));
  });

  afterAll(async () => {
    await broker.close();
    // Namespaces go before the metrics server: an unavailable APIService blocks namespace deletion.
    await deleteNamespace(kit.kc, kit.namespace);
    await follower?.stop();
    await leader?.stop();
  });

  const trigger = (queue: string) => ({
    type: 'rabbitmq',
    metadata: { host: loadTestEnv().rabbitmq.managementUrl, queueName: queue, mode: 'QueueLength', value: '10' },
  });

  it('fails over on kill -9 of the leader within 17 s, with no failed metric fetch and nothing scaled to zero', async () => {
    leader = await startSluice({ logName: 'sluice-leader-a.log' });
    expect(await leaseHolder()).toBe(leader.identity);
    // The second replica registers the APIService to itself: from here on every fetch reaches the follower.
    follower = await startSluice({
      logName: 'sluice-leader-b.log',
      secondary: { port: loadTestEnv().sluice.port + 14 },
    });
    expect(await leaseHolder()).toBe(leader.identity);

    // 35 messages, target 10 per replica → the leader scales 0 → 1 and its HPA to 4.
    for (let i = 0; i < 35; i++) broker.channel.sendToQueue(queues.first, Buffer.from(`m${i}`));
    await kit.createDeployment('first', 0);
    await kit.createScaledObject('first', {
      scaleTargetRef: { name: 'first' },
      minReplicaCount: 0,
      maxReplicaCount: 10,
      pollingInterval: 1,
      triggers: [trigger(queues.first)],
    });
    await kit.waitForReplicas('first', 4, 30_000);
    // The follower serves the metric (the APIService points at it) with the right value.
    const metric = `s0-rabbitmq-${queues.first}`;
    const selector = ScalingTestKit.selectorFor('first');
    expect(await kit.externalMetric(metric, selector)).toMatchObject({ status: 200, values: ['35'] });

    // Our own fetches through the aggregator, and the replica count, every 250 ms until the failover is over.
    const failures: string[] = [];
    const replicaCounts = new Set<number>();
    const watch = { on: true };
    const watcher = (async () => {
      while (watch.on) {
        const reply = await kit.externalMetric(metric, selector).catch((err: unknown) => ({
          status: 0,
          values: [String(err)],
        }));
        if (reply.status !== 200 || reply.values[0] !== '35') failures.push(`${reply.status} ${reply.values.join()}`);
        replicaCounts.add(await kit.replicas('first'));
        await sleep(250);
      }
    })();

    const killedAt = Date.now();
    leader.child.kill('SIGKILL');
    const holder = await waitFor(
      async () => {
        const now = await leaseHolder();
        return now === follower?.identity ? now : undefined;
      },
      { timeoutMs: 25_000, intervalMs: 100, message: 'the follower to hold the Lease' },
    );
    const failoverMs = Date.now() - killedAt;
    console.log(`leader election e2e: the follower held the Lease ${failoverMs} ms after kill -9 of the leader`);
    expect(holder).toBe(follower.identity);
    expect(failoverMs).toBeLessThanOrEqual(17_000);

    // The new leader reconciles a new object: HPA made, 0 → 1 (activation) → 2 (the HPA).
    for (let i = 0; i < 15; i++) broker.channel.sendToQueue(queues.second, Buffer.from(`m${i}`));
    await kit.createDeployment('second', 0);
    await kit.createScaledObject('second', {
      scaleTargetRef: { name: 'second' },
      minReplicaCount: 0,
      maxReplicaCount: 10,
      pollingInterval: 1,
      triggers: [trigger(queues.second)],
    });
    await kit.waitForHpa('sluice-hpa-second', 15_000);
    await kit.waitForReplicas('second', 2, 30_000);
    await kit.waitForCondition('second', 'Ready', 'ScaledObjectReady', 15_000);
    watch.on = false;
    await watcher;

    expect(failures).toStrictEqual([]);
    expect([...replicaCounts]).toStrictEqual([4]);
    // The HPA controller fetched the metric every second throughout: not one failure reached its events.
    const events = await kit.kc.makeApiClient(CoreV1Api).listNamespacedEvent({ namespace: kit.namespace });
    const failed = events.items.filter((e) => e.reason === 'FailedGetExternalMetric');
    expect(failed.map((e) => `${e.involvedObject.name}: ${e.message ?? ''}`)).toStrictEqual([]);
    const hpa = await kit.waitForHpa('sluice-hpa-first');
    expect(hpa.status?.conditions?.find((c) => c.type === 'ScalingActive')?.status).toBe('True');
    expect((await kit.scaledObject('first')).status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
  });
});
