// prometheus end to end on the real control plane and the real Prometheus: a gauge this test's exporter controls,
// scraped by Prometheus through a file_sd target, drives a ScaledObject with threshold 5 and activationThreshold 10.
// Gauge 8 stays at 0 while the metric is served; 40 → 4 replicas (the real HPA controller); 2 → 0 after the
// cooldown. Then kedacore/keda#3065: the exporter breaks, the series goes stale, the query returns an empty result;
// KEDA (ignoreNullValues true) reads 0 and scales to zero; sluice reports TriggerError and holds the replicas.
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
import { EXPOSITION_TYPE, exposition, startMetricServer, type MetricServer } from '../support/metric-server.ts';
import { ScalingTestKit } from '../support/scaling.ts';
import { startSluice, type SluiceProcess } from '../support/sluice.ts';

describe('prometheus e2e: ScaledObject → HPA → external metrics → scale 0 ↔ N', () => {
  const run = uniqueName('prom-e2e');
  let kit: ScalingTestKit | undefined;
  let sluice: SluiceProcess | undefined;
  let exporter: MetricServer;
  let removeTarget: (() => Promise<void>) | undefined;
  const gauges = { work: 8, held: 30 };
  let heldExporterUp = true;

  beforeAll(async () => {
    exporter = await startMetricServer();
    exporter.respond = (req) => {
      if (!req.url.startsWith('/metrics')) return { status: 404 };
      if (!heldExporterUp) return { status: 503, body: 'exporter broken' };
      return {
        contentType: EXPOSITION_TYPE,
        body: exposition({
          'sluice_e2e_queue_depth{queue="work"}': gauges.work,
          'sluice_e2e_queue_depth{queue="held"}': gauges.held,
        }),
      };
    };
    removeTarget = await addScrapeTarget([`127.0.0.1:${exporter.port}`], { run });
    await waitFor(async () => (await queryPrometheus(`sluice_e2e_queue_depth{run="${run}"}`)).length === 2, {
      timeoutMs: 30_000,
      intervalMs: 250,
      message: 'Prometheus to scrape the test exporter',
    });
    sluice = await startSluice({ logName: 'sluice-prometheus-e2e.log' });
    const kc = kubeConfig();
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'prometheus-e2e'));
  });

  afterAll(async () => {
    // Namespaces go before the metrics server: an unavailable APIService blocks namespace deletion.
    if (kit) await deleteNamespace(kit.kc, kit.namespace);
    await sluice?.stop();
    await removeTarget?.();
    await exporter.close();
  });

  const trigger = (queue: string) => ({
    type: 'prometheus',
    metadata: {
      serverAddress: loadTestEnv().prometheus.url,
      query: `sum(sluice_e2e_queue_depth{run="${run}",queue="${queue}"})`,
      threshold: '5',
      activationThreshold: '10',
    },
  });

  it('gauge 8 (activation 10) stays at 0; 40 → 4; 2 → 0 after the cooldown', async () => {
    if (!kit) throw new Error('setup failed');
    await kit.createDeployment('worker', 0);
    await kit.createScaledObject('worker', {
      scaleTargetRef: { name: 'worker' },
      minReplicaCount: 0,
      maxReplicaCount: 4,
      pollingInterval: 1,
      cooldownPeriod: 1,
      triggers: [trigger('work')],
    });
    const metric = 's0-prometheus';
    const selector = ScalingTestKit.selectorFor('worker');
    const hpa = await kit.waitForHpa('sluice-hpa-worker');
    expect(hpa.spec.metrics?.[0]?.external?.metric.name).toBe(metric);
    expect(hpa.spec.metrics?.[0]?.external?.target).toEqual({ type: 'AverageValue', averageValue: '5' });

    // 8: above the threshold, not above the activation threshold: served, and the worker stays at 0.
    gauges.work = 8;
    await waitFor(async () => (await kit?.externalMetric(metric, selector))?.values[0] === '8', {
      timeoutMs: 20_000,
      message: 'the served metric to read 8',
    });
    expect((await kit.waitForCondition('worker', 'Active', 'ScalerNotActive')).status).toBe('False');
    await kit.expectReplicasStay('worker', 0, 10_000);

    // 40: active; the HPA wants ceil(40 / 5) = 8, capped at 4.
    gauges.work = 40;
    const t0 = performance.now();
    await kit.waitForReplicas('worker', 4, 90_000);
    console.log(`[measure] prometheus gauge 8 → 40: 0 → 4 replicas in ${(performance.now() - t0).toFixed(0)} ms`);
    const scaled = await kit.autoscaling.readNamespacedHorizontalPodAutoscaler({
      name: 'sluice-hpa-worker',
      namespace: kit.namespace,
    });
    expect(scaled.status?.desiredReplicas).toBe(4);
    expect(await kit.waitForCondition('worker', 'Active', 'ScalerActive')).toMatchObject({ status: 'True' });

    // 2: inactive; back to 0 after the 1 s cooldown.
    gauges.work = 2;
    const t1 = performance.now();
    await kit.waitForReplicas('worker', 0, 90_000);
    console.log(`[measure] prometheus gauge 40 → 2: 4 → 0 replicas in ${(performance.now() - t1).toFixed(0)} ms`);
  });

  it('the exporter breaking (empty result) holds the replicas, never scales to zero (keda#3065)', async () => {
    if (!kit) throw new Error('setup failed');
    await kit.createDeployment('held', 2);
    await kit.createScaledObject('held', {
      scaleTargetRef: { name: 'held' },
      minReplicaCount: 0,
      maxReplicaCount: 2,
      pollingInterval: 1,
      cooldownPeriod: 1,
      triggers: [trigger('held')],
    });
    const selector = ScalingTestKit.selectorFor('held');
    await kit.waitForHpa('sluice-hpa-held');
    // 30: active, the HPA keeps the 2 (max).
    await waitFor(async () => (await kit?.externalMetric('s0-prometheus', selector))?.values[0] === '30', {
      timeoutMs: 20_000,
      message: 'the served metric to read 30',
    });
    expect(await kit.waitForCondition('held', 'Active', 'ScalerActive')).toMatchObject({ status: 'True' });

    // The exporter breaks: Prometheus marks the series stale and the query result is empty.
    heldExporterUp = false;
    const ready = await kit.waitForCondition('held', 'Ready', 'TriggerError');
    expect(ready.status).toBe('False');
    expect(ready.message).toContain('empty result');
    const served = await kit.externalMetric('s0-prometheus', selector);
    expect(served.status).toBeGreaterThanOrEqual(500);
    expect(served.values).toEqual([]);
    await kit.expectReplicasStay('held', 2, 8000);
    heldExporterUp = true;
  });
});
