// kube-apiserver killed and started again under 50 ScaledObjects, end to end: sluice's informers lose their watches, its
// executors cannot read or write /scale and its status writes fail; when kube-apiserver is back (scripts/env/up.sh
// starts it again, and kube-controller-manager with it), every object converges within 30 s, none was scaled to zero
// by the outage (sluice's log has no "to 0" and every workload still runs), and an object created afterwards gets its
// HPA. The queues keep their messages throughout, so every object stays active: a scale to zero could only come
// from an error read as inactivity.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createNamespace,
  deleteNamespace,
  killApiserver,
  kubeConfig,
  loadTestEnv,
  runEnvUp,
  uniqueName,
  waitFor,
} from '../support/env.ts';
import { ScalingTestKit } from '../support/scaling.ts';
import { startSluice, type SluiceProcess } from '../support/sluice.ts';

const OBJECTS = 50;
const OUTAGE_MS = 10_000;

describe('kube-apiserver outage e2e: 50 ScaledObjects ride out a stop and start of kube-apiserver', () => {
  const env = loadTestEnv();
  let kit: ScalingTestKit | undefined;
  let sluice: SluiceProcess | undefined;
  let connection: amqp.ChannelModel | undefined;
  const queues: string[] = [];
  const names = Array.from({ length: OBJECTS }, (_, i) => `w${i}`);

  beforeAll(async () => {
    sluice = await startSluice({ logName: 'sluice-api-outage-e2e.log' });
    const kc = kubeConfig();
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'api-outage-e2e'));
    connection = await amqp.connect(env.rabbitmq.amqpUrl);
    const channel = await connection.createChannel();
    for (const name of names) {
      const queue = uniqueName(`outage-${name}`);
      queues.push(queue);
      await channel.assertQueue(queue, { durable: false });
      for (let m = 0; m < 3; m++) channel.sendToQueue(queue, Buffer.from('work'));
      await kit.createQueueScaledObject(name, queue);
    }
    await channel.close();
  }, 180_000);

  afterAll(async () => {
    // kube-apiserver must run again whatever happened (other tests share it).
    await runEnvUp();
    if (connection) {
      const channel = await connection.createChannel();
      for (const queue of queues) await channel.deleteQueue(queue).catch(() => undefined);
      await connection.close();
    }
    if (kit) await deleteNamespace(kit.kc, kit.namespace);
    await sluice?.stop();
  }, 300_000);

  const allRunning = async (): Promise<boolean> => {
    if (!kit) return false;
    for (const name of names) if ((await kit.replicas(name)) < 1) return false;
    return true;
  };

  it('converges within 30 s of kube-apiserver being back, scales nothing to zero, and reconciles a new object', async () => {
    if (!kit || !sluice) throw new Error('setup failed');
    await waitFor(allRunning, { timeoutMs: 120_000, intervalMs: 500, message: 'all 50 workloads at ≥ 1 replica' });
    const logStart = readFileSync(sluice.logFile, 'utf8').length;

    // Killed, as a crash or a node loss would (a graceful stop waits for its watches to drain, up to a minute).
    const stopped = performance.now();
    await killApiserver();
    await sleep(Math.max(0, OUTAGE_MS - (performance.now() - stopped)));
    const up = await runEnvUp();
    expect(up.code, up.output).toBe(0);
    const back = performance.now();

    // Every object: its HPA, Ready=True, and its workload running; within 30 s of kube-apiserver answering.
    await waitFor(
      async () => {
        if (!(await allRunning())) return false;
        for (const name of names) {
          const ready = await kit?.condition(name, 'Ready');
          if (ready?.status !== 'True') return false;
        }
        const hpas = await kit?.kubeGet(`/apis/autoscaling/v2/namespaces/${kit.namespace}/horizontalpodautoscalers`);
        return (JSON.parse(hpas?.text ?? '{}') as { items?: unknown[] }).items?.length === OBJECTS;
      },
      { timeoutMs: 30_000, intervalMs: 500, message: 'all 50 objects converged after kube-apiserver came back' },
    );
    console.log(
      `[measure] converged ${((performance.now() - back) / 1000).toFixed(1)} s after kube-apiserver was back`,
    );

    // Nothing was scaled to zero by the outage.
    const log = readFileSync(sluice.logFile, 'utf8').slice(logStart);
    expect(log).not.toMatch(/"msg":"scaled [^"]* to 0"/);
    // sluice saw the outage (its watches broke), so the test did test something.
    expect(log).toMatch(/watch of ScaledObjects ended/);

    // A new object afterwards: its HPA and its workload scaled.
    await kit.createDeployment('late', 0);
    const channel = await connection?.createChannel();
    const queue = uniqueName('outage-late');
    queues.push(queue);
    await channel?.assertQueue(queue, { durable: false });
    channel?.sendToQueue(queue, Buffer.from('work'));
    await channel?.close();
    await kit.createScaledObject('late', {
      scaleTargetRef: { name: 'late' },
      minReplicaCount: 0,
      pollingInterval: 1,
      triggers: [
        {
          type: 'rabbitmq',
          metadata: { host: env.rabbitmq.managementUrl, queueName: queue, mode: 'QueueLength', value: '10' },
        },
      ],
    });
    await kit.waitForHpa('sluice-hpa-late', 30_000);
    await kit.waitForReplicas('late', 1, 30_000);
  }, 300_000);
});
