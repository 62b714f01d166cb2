// The http-rate scaler end to end on the real control plane: `sluice operator --local` scrapes a counter exporter this
// test runs (url form) and the real HPA controller scales a Deployment on the served request rate.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseQuantity } from '../../src/quantity.ts';
import { startCounterServer, type CounterServer } from '../support/counter-server.ts';
import { createNamespace, deleteNamespace, kubeConfig, waitFor } from '../support/env.ts';
import { ScalingTestKit } from '../support/scaling.ts';
import { startSluice, type SluiceProcess } from '../support/sluice.ts';

const METRIC = 's0-http-rate-http_requests_total';

function trigger(url: string) {
  return {
    type: 'http-rate',
    metadata: {
      url,
      counter: 'http_requests_total{code="2xx"}',
      window: '5s',
      targetRate: '10',
      activationRate: '5',
    },
  };
}

describe('http-rate e2e: request rate → HPA → replicas', () => {
  let kit: ScalingTestKit;
  let sluice: SluiceProcess;
  let server: CounterServer;

  /** The served value of the metric, through kube-apiserver's aggregator. */
  const served = async (scaledObject: string): Promise<number | undefined> => {
    const reply = await kit.externalMetric(METRIC, ScalingTestKit.selectorFor(scaledObject));
    const value = reply.values[0];
    return reply.status === 200 && value !== undefined ? parseQuantity(value) : undefined;
  };
  const servedWithin = (scaledObject: string, low: number, high: number, message: string) =>
    waitFor(
      async () => {
        const value = await served(scaledObject);
        return value !== undefined && value >= low && value <= high ? value : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 250, message },
    );

  beforeAll(async () => {
    const kc = kubeConfig();
    sluice = await startSluice({ logName: 'sluice-http-rate-e2e.log' });
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'http-rate-e2e'));
    server = await startCounterServer();
  });

  afterAll(async () => {
    // Namespaces go before the metrics server: an unavailable APIService blocks namespace deletion.
    await deleteNamespace(kit.kc, kit.namespace);
    await sluice.stop();
    await server.close();
  });

  it('stays at 0 below the activation rate, scales to 4 at 35 requests/s, and back to 0 when idle', async () => {
    await server.control({ rate: 0, mode: 'ok' });
    await kit.createDeployment('web', 0);
    await kit.createScaledObject('web', {
      scaleTargetRef: { name: 'web' },
      minReplicaCount: 0,
      maxReplicaCount: 4,
      pollingInterval: 1,
      cooldownPeriod: 5,
      triggers: [trigger(server.url)],
    });
    const hpa = await kit.waitForHpa('sluice-hpa-web');
    expect(hpa.spec.metrics?.[0]?.external?.metric.name).toBe(METRIC);
    expect(hpa.spec.metrics?.[0]?.external?.target).toEqual({ type: 'AverageValue', averageValue: '10' });

    // No traffic: a measured zero is served (not an error, not missing).
    await servedWithin('web', 0, 0, 'the served rate to read 0');
    // 3 requests/s: below the activation rate 5, so the Deployment stays at 0 while the rate is served.
    await server.control({ rate: 3 });
    const low = await servedWithin('web', 2.7, 3.3, 'the served rate to read ~3/s');
    console.log(`[measure] http-rate e2e: served ${low}/s at a true 3/s`);
    await kit.waitForCondition('web', 'Active', 'ScalerNotActive');
    await kit.expectReplicasStay('web', 0, 10_000);
    expect(await served('web')).toBeGreaterThan(2.3);

    // 35 requests/s: active, and the HPA takes it to ceil(35 / 10) = 4.
    await server.control({ rate: 35 });
    const start = performance.now();
    await waitFor(async () => (await kit.replicas('web')) >= 1, {
      timeoutMs: 30_000,
      intervalMs: 100,
      message: 'activation 0 → 1',
    });
    console.log(`[measure] http-rate e2e: 3/s → 35/s, 0 → 1 after ${(performance.now() - start).toFixed(0)} ms`);
    await kit.waitForReplicas('web', 4, 90_000);
    console.log(`[measure] http-rate e2e: 0 → 4 after ${(performance.now() - start).toFixed(0)} ms`);
    const high = await servedWithin('web', 33, 37, 'the served rate to read ~35/s');
    console.log(`[measure] http-rate e2e: served ${high}/s at a true 35/s`);
    expect(await kit.waitForCondition('web', 'Active', 'ScalerActive')).toMatchObject({ status: 'True' });

    // Idle: once the 5 s window holds only idle reads the rate is 0, and after the 5 s cooldown sluice takes it to 0.
    await server.control({ rate: 0 });
    const idleAt = performance.now();
    await kit.waitForReplicas('web', 0, 90_000);
    console.log(`[measure] http-rate e2e: 35/s → 0/s, 4 → 0 after ${(performance.now() - idleAt).toFixed(0)} ms`);
    expect(await served('web')).toBe(0);
  });

  it('holds the replicas when the exporter stops: Ready=False TriggerError, the metric is an error', async () => {
    const exporter = await startCounterServer();
    try {
      await exporter.control({ rate: 15 });
      await kit.createDeployment('held', 2);
      await kit.createScaledObject('held', {
        scaleTargetRef: { name: 'held' },
        minReplicaCount: 0,
        maxReplicaCount: 4,
        pollingInterval: 1,
        cooldownPeriod: 1,
        triggers: [trigger(exporter.url)],
      });
      await kit.waitForHpa('sluice-hpa-held');
      await servedWithin('held', 13.5, 16.5, 'the served rate to read ~15/s');
      await kit.waitForReplicas('held', 2);
    } finally {
      await exporter.close();
    }
    const ready = await kit.waitForCondition('held', 'Ready', 'TriggerError');
    expect(ready.status).toBe('False');
    const reply = await kit.externalMetric(METRIC, ScalingTestKit.selectorFor('held'));
    expect(reply.status).toBeGreaterThanOrEqual(500);
    expect(reply.values).toEqual([]);
    // The poll's error, with its cause, reaches the HPA controller's reply.
    expect(String(reply.body['message'])).toMatch(
      /the last poll failed: .*cannot reach http:\/\/127\.0\.0\.1:\d+\/metrics/,
    );
    // With the 1 s cooldown long past, an error read as zero would have scaled to 0: the replicas are held.
    await kit.expectReplicasStay('held', 2, 8000);
  });
});
