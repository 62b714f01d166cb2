// sluice's own /metrics end to end: `sluice operator --local` with --metrics-port (test/support/sluice.ts picks the
// environment's reserved port base+15), scraped by the test environment's Prometheus. A RabbitMQ ScaledObject's queue
// depth comes back from PromQL as sluice_scaler_metrics_value with KEDA's labels; the only replica leads; the
// ScaledObject's conditions are series; the management API's credentials appear nowhere in the exposition; and the
// object's series are gone once it is deleted.
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addScrapeTarget,
  createNamespace,
  deleteNamespace,
  kubeConfig,
  loadTestEnv,
  queryPrometheus,
  uniqueName,
  waitFor,
} from '../support/env.ts';
import { ScalingTestKit } from '../support/scaling.ts';
import { startSluice, type SluiceProcess } from '../support/sluice.ts';

/** Messages published: the queue depth PromQL must return. */
const N = 17;

describe("own metrics e2e: sluice's /metrics scraped by Prometheus", () => {
  const run = uniqueName('own-metrics');
  let kit: ScalingTestKit | undefined;
  let sluice: SluiceProcess | undefined;
  let connection: amqp.ChannelModel | undefined;
  let channel: amqp.Channel | undefined;
  let removeTarget: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    sluice = await startSluice({ logName: 'sluice-own-metrics-e2e.log' });
    const kc = kubeConfig();
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'own-metrics'));
    connection = await amqp.connect(loadTestEnv().rabbitmq.amqpUrl);
    channel = await connection.createChannel();
  });

  afterAll(async () => {
    await removeTarget?.();
    await channel?.close().catch(() => undefined);
    await connection?.close().catch(() => undefined);
    // Namespaces go before the metrics server: an unavailable APIService blocks namespace deletion.
    if (kit) await deleteNamespace(kit.kc, kit.namespace);
    await sluice?.stop();
  });

  const scrape = async (): Promise<string> => {
    const response = await fetch(`http://127.0.0.1:${String(sluice?.metricsPort)}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/plain');
    return response.text();
  };

  it('PromQL reads the queue depth from sluice_scaler_metrics_value, and the leader gauge is 1', async () => {
    if (!kit || !channel || !sluice) throw new Error('beforeAll failed');
    expect(sluice.metricsPort).toBe(loadTestEnv().ports.etcdClient + 15);
    const queue = `own-metrics-${uniqueName('q')}`;
    await channel.assertQueue(queue, { durable: false });
    for (let i = 0; i < N; i++) channel.sendToQueue(queue, Buffer.from(`m${i}`));
    await kit.createDeployment('worker', 0);
    await kit.createScaledObject('worker', {
      scaleTargetRef: { name: 'worker' },
      minReplicaCount: 0,
      maxReplicaCount: 3,
      pollingInterval: 1,
      triggers: [
        {
          type: 'rabbitmq',
          // http://guest:guest@…: credentials in the URL, which must never reach a label.
          metadata: { host: loadTestEnv().rabbitmq.managementUrl, queueName: queue, mode: 'QueueLength', value: '10' },
        },
      ],
    });
    await kit.waitForCondition('worker', 'Ready', 'ScaledObjectReady');

    removeTarget = await addScrapeTarget([`127.0.0.1:${String(sluice.metricsPort)}`], { run });
    const value = `sluice_scaler_metrics_value{run="${run}",namespace="${kit.namespace}",scaledObject="worker"}`;
    await waitFor(async () => (await queryPrometheus(value))[0]?.value[1] === String(N), {
      timeoutMs: 60_000,
      intervalMs: 500,
      message: `Prometheus to return ${N} for ${value}`,
    });
    const [sample] = await queryPrometheus(value);
    expect(sample?.metric).toMatchObject({
      __name__: 'sluice_scaler_metrics_value',
      namespace: kit.namespace,
      scaledObject: 'worker',
      metric: `s0-rabbitmq-${queue}`,
      scaler: 'rabbitMQScaler',
      triggerIndex: '0',
      type: 'scaledobject',
    });

    const leader = await queryPrometheus(`sluice_leader_election_is_leader{run="${run}"}`);
    expect(leader.map((s) => s.value[1])).toStrictEqual(['1']);
    const active = await queryPrometheus(`sluice_scaler_active{run="${run}",scaledObject="worker"}`);
    expect(active.map((s) => s.value[1])).toStrictEqual(['1']);
    const ready = `sluice_scaled_object_condition{run="${run}",namespace="${kit.namespace}",scaledObject="worker",type="Ready"}`;
    await waitFor(async () => (await queryPrometheus(ready))[0]?.metric['status'] === 'True', {
      timeoutMs: 10_000,
      message: `${ready} to say status="True"`,
    });
    const up = await queryPrometheus(`up{run="${run}"}`);
    expect(up.map((s) => s.value[1])).toStrictEqual(['1']);

    // Straight from the endpoint: the runtime defaults are there, and no credential is.
    const text = await scrape();
    for (const name of ['sluice_nodejs_eventloop_lag_seconds', 'sluice_nodejs_heap_size_used_bytes']) {
      expect(text).toContain(`\n${name} `);
    }
    expect(text).toMatch(
      /\nsluice_backend_circuit_breaker_state\{backend="RabbitMQ management API http:\/\/127\.0\.0\.1:\d+[^"?@]*"\} 0\n/,
    );
    expect(text).not.toContain('guest:guest');
    expect(text).not.toMatch(/\/\/[^/\s"]*@/);

    // At rest (pollingInterval 1: the executor ticks every second), nothing per tick reaches the API server: replicas
    // come from the Deployment watch cache, the HPA is not applied again, the status is not written again.
    const requests = (exposition: string, verb: string, resource: string): number =>
      Number(
        new RegExp(`\\nsluice_kube_api_requests_total\\{verb="${verb}",resource="${resource}"\\} (\\d+)`).exec(
          exposition,
        )?.[1] ?? 0,
      );
    const hotPath = [
      ['get', 'apps/deployments/scale'],
      ['patch', 'autoscaling/horizontalpodautoscalers'],
      ['patch', 'sluice.dev/scaledobjects/status'],
    ] as const;
    await new Promise((resolve) => setTimeout(resolve, 5000));
    const before = await scrape();
    await new Promise((resolve) => setTimeout(resolve, 5000));
    const after = await scrape();
    expect(requests(after, 'update', 'coordination.k8s.io/leases')).toBeGreaterThan(
      requests(before, 'update', 'coordination.k8s.io/leases'),
    );
    for (const [verb, resource] of hotPath) {
      expect(requests(after, verb, resource) - requests(before, verb, resource), `${verb} ${resource}`).toBe(0);
    }
  });

  it("a deleted ScaledObject's series go away", async () => {
    if (!kit) throw new Error('beforeAll failed');
    expect(await scrape()).toContain(`scaledObject="worker"`);
    await kit.deleteScaledObject('worker');
    await waitFor(async () => !(await scrape()).includes(`namespace="${kit?.namespace ?? ''}"`), {
      timeoutMs: 20_000,
      intervalMs: 250,
      message: "the deleted ScaledObject's series to leave /metrics",
    });
  });
});
