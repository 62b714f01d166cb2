// Proxy mode end to end (docs/deploy.md#proxy-mode): a real prometheus-adapter (built from its Go module, on
// 127.0.0.1, reading the environment's Prometheus with one externalRules entry) stays behind `sluice operator
// --proxy-to`, which holds the cluster's one external-metrics APIService. Through kube-apiserver: discovery lists both
// adapters' metrics; the adapter's metric reads the value Prometheus has; sluice's own ScaledObject metric (a
// RabbitMQ queue's length) is sluice's;
// a real HPA on the adapter's metric scales (ScalingActive=True). Then the adapter stops: sluice's metric still
// answers, the adapter's gets a 503 Status naming it, and the HPA says so.
import type { V2HorizontalPodAutoscaler, V2HorizontalPodAutoscalerCondition } from '@kubernetes/client-node';
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
import {
  buildPrometheusAdapter,
  externalRule,
  makeProxyPki,
  proxyFlags,
  startPrometheusAdapter,
  type AdapterProcess,
  type ProxyPki,
} from '../support/prometheus-adapter.ts';
import { ScalingTestKit, openTestQueues, type TestQueues } from '../support/scaling.ts';
import { scrapeOwnMetrics, startSluice, type SluiceProcess } from '../support/sluice.ts';

/** The adapter's port: the environment's base + 25 (scripts/env/lib.sh). */
const adapterPortOf = (env: { readonly ports: { readonly etcdClient: number } }) => env.ports.etcdClient + 25;
const UPSTREAM_METRIC = 'proxy_e2e_upstream_depth';
const DISCOVERY = '/apis/external.metrics.k8s.io/v1beta1';
/** The Deployment the hand-written HPA on the adapter's metric scales. */
const UPSTREAM_WORKER = 'orders-worker';
/** sluice's own metric: ScalingTestKit.createMetricsConsumer's ScaledObject `consumer` on a queue. */
const ownMetric = (queue: string) => `s0-rabbitmq-${queue}`;
const OWN_SELECTOR = ScalingTestKit.selectorFor('consumer');

describe('proxy mode e2e: prometheus-adapter behind sluice, both through kube-apiserver', () => {
  let binary: string;
  let pki: ProxyPki | undefined;
  let exporter: MetricServer | undefined;
  let removeTarget: (() => Promise<void>) | undefined;
  let adapter: AdapterProcess | undefined;
  let sluice: SluiceProcess | undefined;
  let kit: ScalingTestKit | undefined;
  let broker: TestQueues | undefined;
  const queue = uniqueName('proxy-e2e');

  beforeAll(async () => {
    // A fresh machine (CI) builds the adapter first: minutes, with progress lines.
    binary = await buildPrometheusAdapter();
    const env = loadTestEnv();
    const kc = kubeConfig();
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'proxy-e2e'));
    const namespace = kit.namespace;

    // The adapter's metric: a gauge of 35 scraped by Prometheus. The target's `namespace` label is what
    // prometheus-adapter matches a request's namespace against.
    exporter = await startMetricServer();
    exporter.respond = (req) =>
      req.url.startsWith('/metrics')
        ? { contentType: EXPOSITION_TYPE, body: exposition({ [`${UPSTREAM_METRIC}{queue="orders"}`]: 35 }) }
        : { status: 404 };
    removeTarget = await addScrapeTarget([`127.0.0.1:${exporter.port}`], { namespace });
    await waitFor(async () => (await queryPrometheus(`${UPSTREAM_METRIC}{namespace="${namespace}"}`)).length === 1, {
      timeoutMs: 30_000,
      intervalMs: 250,
      message: 'Prometheus to scrape the test exporter',
    });

    pki = await makeProxyPki();
    adapter = await startPrometheusAdapter({
      binary,
      pki,
      port: adapterPortOf(env),
      logName: 'prometheus-adapter-proxy-e2e.log',
      config: externalRule(UPSTREAM_METRIC),
    });
    sluice = await startSluice({
      logName: 'sluice-proxy-e2e.log',
      extraArgs: [...proxyFlags(adapter, pki), '--proxy-timeout=2s'],
    });
  }, 1_200_000);

  afterAll(async () => {
    // Namespaces go before the metrics server: an unavailable APIService blocks namespace deletion.
    if (kit) await deleteNamespace(kit.kc, kit.namespace);
    await sluice?.stop();
    await broker?.close();
    await adapter?.stop();
    await removeTarget?.();
    await exporter?.close();
    await pki?.cleanup();
  });

  const setup = (): ScalingTestKit => {
    if (kit === undefined) throw new Error('setup failed');
    return kit;
  };

  it("discovery through kube-apiserver lists sluice's placeholder and the adapter's metric", async () => {
    const k = setup();
    const names = await waitFor(
      async () => {
        const { status, text } = await k.kubeGet(DISCOVERY);
        const list = JSON.parse(text) as { resources?: { name: string }[] };
        const found = (list.resources ?? []).map((r) => r.name);
        return status === 200 && found.includes(UPSTREAM_METRIC) ? found : false;
      },
      { timeoutMs: 30_000, intervalMs: 500, message: "discovery to list the adapter's metric" },
    );
    expect(names[0]).toBe('externalmetrics');
    expect(names.filter((name) => name === UPSTREAM_METRIC)).toHaveLength(1);
  });

  it("the adapter's metric through kube-apiserver is the adapter's value, which is Prometheus'", async () => {
    const k = setup();
    const reply = await waitFor(
      async () => {
        const answer = await k.externalMetric(UPSTREAM_METRIC, 'queue=orders');
        if (answer.status !== 200) throw new Error(`HTTP ${String(answer.status)}: ${JSON.stringify(answer.body)}`);
        return answer;
      },
      { timeoutMs: 30_000, intervalMs: 500, message: "the adapter's metric through sluice" },
    );
    const [sample] = await queryPrometheus(`sum(${UPSTREAM_METRIC}{namespace="${k.namespace}",queue="orders"})`);
    expect(sample?.value[1]).toBe('35');
    expect(reply.values).toEqual(['35']);
    expect(reply.body).toMatchObject({
      kind: 'ExternalMetricValueList',
      items: [{ metricName: UPSTREAM_METRIC, metricLabels: { queue: 'orders' }, value: '35' }],
    });
    // A name neither adapter has: the adapter's own 404, passed on.
    const missing = await k.externalMetric('proxy_e2e_nobody_has_it', 'queue=orders');
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ kind: 'Status', reason: 'NotFound', code: 404 });
  });

  it("sluice's own ScaledObject metric is sluice's", async () => {
    const k = setup();
    broker = await openTestQueues([queue]);
    for (let i = 0; i < 7; i++) broker.channel.sendToQueue(queue, Buffer.from(`m${String(i)}`));
    await k.createMetricsConsumer(queue);
    await waitFor(async () => (await k.externalMetric(ownMetric(queue), OWN_SELECTOR)).values[0] === '7', {
      timeoutMs: 30_000,
      message: "sluice's own metric to read 7",
    });
  });

  it("a real HPA on the adapter's metric is ScalingActive and scales to ceil(35 / 10) = 4", async () => {
    const k = setup();
    await k.createDeployment(UPSTREAM_WORKER, 1);
    await k.autoscaling.createNamespacedHorizontalPodAutoscaler({
      namespace: k.namespace,
      body: upstreamHpa(UPSTREAM_WORKER),
    });
    const active = await scalingActive(k, (hpa, condition) =>
      condition?.status === 'True' && hpa.status?.desiredReplicas === 4 ? condition : false,
    );
    expect(active.reason).toBe('ValidMetricFound');
    await k.waitForReplicas(UPSTREAM_WORKER, 4, 60_000);
  });

  it("with the adapter stopped: sluice's metric answers, the adapter's is a 503 naming it, the HPA says so", async () => {
    const k = setup();
    if (adapter === undefined || sluice === undefined) throw new Error('setup failed');
    const breaker = breakerGauge(adapter.url);
    expect(breaker.exec(await scrapeOwnMetrics(sluice.metricsPort))?.[1]).toBe('0');
    await adapter.stop();
    const url = adapter.url.replace(/[.]/g, '\\.');

    const own = await k.externalMetric(ownMetric(queue), OWN_SELECTOR);
    expect(own.status).toBe(200);
    expect(own.values).toEqual(['7']);

    const gone = await k.externalMetric(UPSTREAM_METRIC, 'queue=orders');
    expect(gone.status).toBe(503);
    expect(gone.body).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'ServiceUnavailable', code: 503 });
    expect(gone.body['message']).toMatch(
      new RegExp(`^the upstream external-metrics adapter at ${url} (cannot be reached|is not answering)`),
    );

    // Discovery still answers, with sluice's part: the APIService stays Available.
    const discovery = await k.kubeGet(DISCOVERY);
    expect(discovery.status).toBe(200);
    expect((JSON.parse(discovery.text) as { resources: { name: string }[] }).resources.map((r) => r.name)).toEqual([
      'externalmetrics',
    ]);

    const failing = await scalingActive(k, (_hpa, condition) => (condition?.status === 'False' ? condition : false));
    expect(failing.reason).toBe('FailedGetExternalMetric');
    expect(failing.message).toMatch(new RegExp(`the upstream external-metrics adapter at ${url}`));
    // And it holds its replicas: an unknown metric never scales in.
    await k.expectReplicasStay(UPSTREAM_WORKER, 4, 3_000);
    // Once most recent requests failed, the circuit opens (sluice's /metrics shows it): nothing more is sent to the
    // adapter until a probe every 5 s, and the HPA's requests are answered at once.
    const metricsPort = sluice.metricsPort;
    await waitFor(async () => breaker.exec(await scrapeOwnMetrics(metricsPort))?.[1] === '2', {
      timeoutMs: 60_000,
      intervalMs: 500,
      message: "the upstream adapter's circuit to open",
    });
  });
});

/** The line of sluice's /metrics with the upstream adapter's circuit breaker state (0 closed, 1 half-open, 2 open). */
function breakerGauge(url: string): RegExp {
  const backend = `upstream adapter ${url}`.replace(/[.]/g, '\\.');
  return new RegExp(`\\nsluice_backend_circuit_breaker_state\\{backend="${backend}"\\} (\\d)`);
}

/** Waits until `accept` takes the HPA UPSTREAM_WORKER and its ScalingActive condition (within 60 s). */
function scalingActive<T>(
  k: ScalingTestKit,
  accept: (hpa: V2HorizontalPodAutoscaler, condition: V2HorizontalPodAutoscalerCondition | undefined) => T | false,
): Promise<Exclude<T, false | null | undefined>> {
  return waitFor(
    async () => {
      const hpa = await k.autoscaling.readNamespacedHorizontalPodAutoscaler({
        name: UPSTREAM_WORKER,
        namespace: k.namespace,
      });
      return accept(
        hpa,
        hpa.status?.conditions?.find((c) => c.type === 'ScalingActive'),
      );
    },
    { timeoutMs: 60_000, intervalMs: 500, message: `the ScalingActive condition of HPA ${UPSTREAM_WORKER}` },
  );
}

/** The hand-written HPA a prometheus-adapter user has: External metric, selector, AverageValue target. */
function upstreamHpa(deployment: string): V2HorizontalPodAutoscaler {
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: { name: deployment },
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment },
      minReplicas: 1,
      maxReplicas: 10,
      metrics: [
        {
          type: 'External',
          external: {
            metric: { name: UPSTREAM_METRIC, selector: { matchLabels: { queue: 'orders' } } },
            target: { type: 'AverageValue', averageValue: '10' },
          },
        },
      ],
    },
  };
}
