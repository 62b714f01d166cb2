// metrics-api end to end on the real control plane, KEDA's e2e flow (tests/scalers/metrics_api): targetValue 5,
// activationTargetValue 20, valueLocation `value`, min 0 / max 2, cooldown 1. Value 10 stays at 0 while the metric
// is served; 50 → 2 replicas through the real HPA controller; 4 → 0 after the cooldown. And a failing API holds the
// replicas (Ready=False TriggerError, the metric answers an error).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNamespace, deleteNamespace, kubeConfig, waitFor } from '../support/env.ts';
import { startMetricServer, type MetricServer } from '../support/metric-server.ts';
import { ScalingTestKit } from '../support/scaling.ts';
import { startSluice, type SluiceProcess } from '../support/sluice.ts';

describe('metrics-api e2e: ScaledObject → HPA → external metrics → scale 0 ↔ N', () => {
  let kit: ScalingTestKit | undefined;
  let sluice: SluiceProcess | undefined;
  let api: MetricServer;
  let value = 10;

  beforeAll(async () => {
    api = await startMetricServer();
    api.respond = () => ({ body: JSON.stringify({ value }), contentType: 'application/json' });
    sluice = await startSluice({ logName: 'sluice-metrics-api-e2e.log' });
    const kc = kubeConfig();
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'metrics-api-e2e'));
  });

  afterAll(async () => {
    // Namespaces go before the metrics server: an unavailable APIService blocks namespace deletion.
    if (kit) await deleteNamespace(kit.kc, kit.namespace);
    await sluice?.stop();
    await api.close();
  });

  it('value 10 (activation 20) stays at 0; 50 → 2; 4 → 0 after the cooldown', async () => {
    if (!kit) throw new Error('setup failed');
    await kit.createDeployment('consumer', 0);
    await kit.createScaledObject('consumer', {
      scaleTargetRef: { name: 'consumer' },
      minReplicaCount: 0,
      maxReplicaCount: 2,
      pollingInterval: 1,
      cooldownPeriod: 1,
      triggers: [
        {
          type: 'metrics-api',
          metadata: {
            url: `${api.url}/api/value`,
            valueLocation: 'value',
            targetValue: '5',
            activationTargetValue: '20',
          },
        },
      ],
    });
    const metric = 's0-metric-api-value';
    const selector = ScalingTestKit.selectorFor('consumer');
    const hpa = await kit.waitForHpa('sluice-hpa-consumer');
    expect(hpa.spec.metrics?.[0]?.external?.metric.name).toBe(metric);
    expect(hpa.spec.metrics?.[0]?.external?.target).toEqual({ type: 'AverageValue', averageValue: '5' });

    // 10: above the target but not above the activation value: served, and the consumer stays at 0.
    value = 10;
    await waitFor(async () => (await kit?.externalMetric(metric, selector))?.values[0] === '10', {
      timeoutMs: 20_000,
      message: 'the served metric to read 10',
    });
    expect((await kit.waitForCondition('consumer', 'Active', 'ScalerNotActive')).status).toBe('False');
    await kit.expectReplicasStay('consumer', 0, 10_000);

    // 50: active; the HPA wants ceil(50 / 5) = 10, capped at 2.
    value = 50;
    const t0 = performance.now();
    await kit.waitForReplicas('consumer', 2, 90_000);
    console.log(`[measure] metrics-api value 10 → 50: 0 → 2 replicas in ${(performance.now() - t0).toFixed(0)} ms`);
    expect(await kit.waitForCondition('consumer', 'Active', 'ScalerActive')).toMatchObject({ status: 'True' });
    // The 2 is the HPA controller's decision (sluice only activates 0 → 1).
    const scaled = await kit.autoscaling.readNamespacedHorizontalPodAutoscaler({
      name: 'sluice-hpa-consumer',
      namespace: kit.namespace,
    });
    expect(scaled.status?.desiredReplicas).toBe(2);

    // 4: inactive; back to 0 after the 1 s cooldown.
    value = 4;
    const t1 = performance.now();
    await kit.waitForReplicas('consumer', 0, 90_000);
    console.log(`[measure] metrics-api value 50 → 4: 2 → 0 replicas in ${(performance.now() - t1).toFixed(0)} ms`);
  });

  it('a failing API holds the replicas: Ready=False TriggerError, the metric is an error', async () => {
    if (!kit) throw new Error('setup failed');
    await kit.createDeployment('held', 2);
    // The API answers 500 from the start for this object's path.
    const failingUrl = `${api.url}/api/failing`;
    const previous = api.respond;
    api.respond = (req) => (req.url === '/api/failing' ? { status: 500, body: 'boom' } : previous(req));
    await kit.createScaledObject('held', {
      scaleTargetRef: { name: 'held' },
      minReplicaCount: 0,
      maxReplicaCount: 4,
      pollingInterval: 1,
      cooldownPeriod: 1,
      triggers: [{ type: 'metrics-api', metadata: { url: failingUrl, valueLocation: 'value', targetValue: '5' } }],
    });
    await kit.waitForHpa('sluice-hpa-held');
    const ready = await kit.waitForCondition('held', 'Ready', 'TriggerError');
    expect(ready.status).toBe('False');
    expect(ready.message).toContain('answered HTTP 500');
    const served = await kit.externalMetric('s0-metric-api-value', ScalingTestKit.selectorFor('held'));
    expect(served.status).toBeGreaterThanOrEqual(500);
    expect(served.values).toEqual([]);
    // With the 1 s cooldown long past, the replicas are held, never scaled in on the error.
    await kit.expectReplicasStay('held', 2, 8000);
  });
});
