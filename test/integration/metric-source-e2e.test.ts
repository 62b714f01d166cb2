// MetricSources end to end, on the real control plane and the real RabbitMQ: the hand-written HPA of the Kubernetes
// HPA walkthrough (External metric queue_messages_ready, selector matchLabels {queue: worker_tasks}, target
// AverageValue 30) scales a Deployment 1 → N from sluice's metric with no ScaledObject, through kube-apiserver's
// aggregator and the real HPA controller; first with `sluice operator` and a MetricSource object, then with
// `sluice serve --config` and the same MetricSource in a file.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CoreV1Api, CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { installCrds } from '../../src/local-dev.ts';
import type { MetricSourceStatus } from '../../src/operator/metric-source.ts';
import { REPO_ROOT, createNamespace, deleteNamespace, kubeConfig, loadTestEnv, waitFor } from '../support/env.ts';
import { openTestQueues, ScalingTestKit, type TestQueues } from '../support/scaling.ts';
import { startSluice, type SluiceProcess } from '../support/sluice.ts';

const GROUP = 'sluice.dev';
const VERSION = 'v1alpha1';
const QUEUE = 'worker_tasks';
const METRIC = 'queue_messages_ready';

/** The MetricSource of the issue, with a short idle time so that a selector's drop can be watched. */
function metricSource(namespace: string, name: string, metricName: string, auth: string): Record<string, unknown> {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'MetricSource',
    metadata: { name, namespace },
    spec: {
      metricName,
      pollingInterval: 2,
      selectorIdleSeconds: 10,
      trigger: {
        type: 'rabbitmq',
        authenticationRef: { name: auth },
        metadata: { queueName: '{{queue}}', mode: 'QueueLength' },
      },
    },
  };
}

/** A Secret with the broker's management URL (credentials included) and the TriggerAuthentication that reads it. */
async function createRabbitAuth(kit: ScalingTestKit, name: string, host: string): Promise<void> {
  await kit.kc.makeApiClient(CoreV1Api).createNamespacedSecret({
    namespace: kit.namespace,
    body: { metadata: { name }, stringData: { host } },
  });
  await kit.createTriggerAuthentication(name, { secretTargetRef: [{ parameter: 'host', name, key: 'host' }] });
}

/** The HPA exactly as a user writes it from the Kubernetes HPA walkthrough, on Deployment `worker`. */
async function createWalkthroughHpa(kit: ScalingTestKit): Promise<void> {
  await kit.autoscaling.createNamespacedHorizontalPodAutoscaler({
    namespace: kit.namespace,
    body: {
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name: 'worker' },
      spec: {
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'worker' },
        minReplicas: 1,
        maxReplicas: 10,
        metrics: [
          {
            type: 'External',
            external: {
              metric: { name: METRIC, selector: { matchLabels: { queue: QUEUE } } },
              target: { type: 'AverageValue', averageValue: '30' },
            },
          },
        ],
      },
    },
  });
}

async function msStatus(kc: KubeConfig, namespace: string, name: string): Promise<MetricSourceStatus> {
  const obj = (await kc.makeApiClient(CustomObjectsApi).getNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace,
    plural: 'metricsources',
    name,
  })) as { status?: MetricSourceStatus };
  return obj.status ?? {};
}

/** 100 messages on worker_tasks: the HPA asks ceil(100 / 30) = 4 replicas. */
async function publish(queues: TestQueues, count: number): Promise<void> {
  for (let i = 0; i < count; i++) queues.channel.sendToQueue(QUEUE, Buffer.from(`task ${i}`));
  await waitFor(async () => (await queues.channel.checkQueue(QUEUE)).messageCount === count, {
    timeoutMs: 10_000,
    message: `${count} messages on ${QUEUE}`,
  });
}

/** The 404s and the error, asked as the HPA controller asks, through kube-apiserver. */
async function expectRefusals(kit: ScalingTestKit, brokenMetric: string): Promise<void> {
  const missing = await kit.externalMetric(METRIC, 'app=worker');
  expect(missing.status).toBe(404);
  expect(missing.body).toMatchObject({ kind: 'Status', code: 404, reason: 'NotFound' });
  expect(String(missing.body['message'])).toContain('label "app", which is no placeholder');
  const none = await kit.externalMetric(METRIC, '');
  expect(none.status).toBe(404);
  expect(String(none.body['message'])).toContain('gives no value for label "queue"');
  const setBased = await kit.externalMetric(METRIC, 'queue in (a,b)');
  expect(setBased.status).toBe(404);
  expect(String(setBased.body['message'])).toContain('label "queue" must be given exactly one value');
  // An unreachable broker is an error (the HPA holds), never a 0.
  const broken = await kit.externalMetric(brokenMetric, `queue=${QUEUE}`);
  expect(broken.status).toBe(500);
  expect(broken.values).toStrictEqual([]);
  expect(String(broken.body['message'])).toContain(`unable to get metric ${brokenMetric}`);
}

describe('MetricSource e2e (sluice operator): a hand-written HPA scales on sluice’s metric, no ScaledObject', () => {
  let kit: ScalingTestKit;
  let sluice: SluiceProcess;
  let queues: TestQueues;

  beforeAll(async () => {
    const kc = kubeConfig();
    sluice = await startSluice({ logName: 'sluice-metric-source-e2e.log' });
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'metric-source-e2e'));
    queues = await openTestQueues([QUEUE]);
    await queues.channel.purgeQueue(QUEUE);
  });

  afterAll(async () => {
    await queues.close();
    // Namespaces go before the metrics server: an unavailable APIService blocks namespace deletion.
    await deleteNamespace(kit.kc, kit.namespace);
    await sluice.stop();
  });

  it('scales 1 → 4 on 100 messages; 404s name the label; a dead broker is an error; selectors come and go in status', async () => {
    const { namespace } = kit;
    await createRabbitAuth(kit, 'rabbit', loadTestEnv().rabbitmq.managementUrl);
    await createRabbitAuth(kit, 'dead-rabbit', 'http://guest:guest@127.0.0.1:1');
    for (const body of [
      metricSource(namespace, 'queue-messages-ready', METRIC, 'rabbit'),
      metricSource(namespace, 'broken', 'broken_queue_depth', 'dead-rabbit'),
    ]) {
      await kit.custom.createNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace,
        plural: 'metricsources',
        body,
      });
    }
    await waitFor(
      async () =>
        (await msStatus(kit.kc, namespace, 'queue-messages-ready')).conditions?.find((c) => c.type === 'Ready')
          ?.reason === 'MetricSourceReady',
      { timeoutMs: 20_000, message: 'MetricSource queue-messages-ready Ready' },
    );

    await kit.createDeployment('worker', 1);
    await createWalkthroughHpa(kit);
    await publish(queues, 100);
    await kit.waitForReplicas('worker', 4, 60_000);
    const served = await kit.externalMetric(METRIC, `queue=${QUEUE}`);
    expect(served.status).toBe(200);
    // The raw queue length: the HPA divides by its target itself.
    expect(served.values).toStrictEqual(['100']);
    expect(served.body['items']).toMatchObject([{ metricName: METRIC, metricLabels: { queue: QUEUE } }]);

    await expectRefusals(kit, 'broken_queue_depth');
    const live = await msStatus(kit.kc, namespace, 'queue-messages-ready');
    expect(live.selectors?.map((s) => s.labelSelector)).toStrictEqual([`queue=${QUEUE}`]);
    expect(live.conditions?.find((c) => c.type === 'Ready')).toMatchObject({ status: 'True' });
    const broken = await waitFor(
      async () => {
        const status = await msStatus(kit.kc, namespace, 'broken');
        return status.lastError === undefined ? undefined : status;
      },
      { timeoutMs: 20_000, message: 'the broken MetricSource to show its last error' },
    );
    expect(broken.selectors).toMatchObject([{ labelSelector: `queue=${QUEUE}`, error: broken.lastError }]);
    expect(broken.lastError).not.toContain('guest');

    // A second MetricSource for the same metric name is refused, naming the first.
    await kit.custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: 'metricsources',
      body: metricSource(namespace, 'twin', METRIC, 'rabbit'),
    });
    const twin = await waitFor(
      async () => (await msStatus(kit.kc, namespace, 'twin')).conditions?.find((c) => c.type === 'Ready'),
      { timeoutMs: 20_000, message: 'MetricSource twin to get a Ready condition' },
    );
    expect(twin).toMatchObject({ status: 'False', reason: 'MetricNameConflict' });
    expect(twin.message).toContain('MetricSource queue-messages-ready');

    // A TriggerAuthentication that does not exist yet: refused naming it, and served once it is created.
    await kit.custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: 'metricsources',
      body: metricSource(namespace, 'late', 'late_queue_depth', 'late-rabbit'),
    });
    const missingAuth = await waitFor(
      async () => (await msStatus(kit.kc, namespace, 'late')).conditions?.find((c) => c.type === 'Ready'),
      { timeoutMs: 20_000, message: 'MetricSource late to get a Ready condition' },
    );
    expect(missingAuth).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
    expect(missingAuth.message).toContain(
      'spec.trigger.authenticationRef: TriggerAuthentication "late-rabbit" not found',
    );
    await createRabbitAuth(kit, 'late-rabbit', loadTestEnv().rabbitmq.managementUrl);
    await waitFor(
      async () =>
        (await msStatus(kit.kc, namespace, 'late')).conditions?.find((c) => c.type === 'Ready')?.status === 'True',
      { timeoutMs: 20_000, message: 'MetricSource late to be Ready once its TriggerAuthentication exists' },
    );

    // No HPA names the selector any more: it is dropped from the status (idle 10 s, checked every 2 s).
    await kit.autoscaling.deleteNamespacedHorizontalPodAutoscaler({ name: 'worker', namespace });
    await waitFor(async () => (await msStatus(kit.kc, namespace, 'queue-messages-ready')).selectors?.length === 0, {
      timeoutMs: 40_000,
      message: 'the unused selector to leave the status',
    });
  });
});

describe('MetricSource e2e (sluice serve --config): the same HPA, served from a file without the operator', () => {
  let kit: ScalingTestKit;
  let sluice: SluiceProcess;
  let queues: TestQueues;
  let dir: string;

  beforeAll(async () => {
    const kc = kubeConfig();
    // The TriggerAuthentication CRD (serve reads authenticationRef from the cluster but installs nothing).
    await installCrds(kc, path.join(REPO_ROOT, 'crds'));
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'metric-source-serve'));
    await createRabbitAuth(kit, 'rabbit', loadTestEnv().rabbitmq.managementUrl);
    await createRabbitAuth(kit, 'dead-rabbit', 'http://guest:guest@127.0.0.1:1');
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-serve-'));
    const file = path.join(dir, 'metrics.yaml');
    await writeFile(
      file,
      [
        metricSource(kit.namespace, 'queue-messages-ready', METRIC, 'rabbit'),
        metricSource(kit.namespace, 'broken', 'broken_queue_depth', 'dead-rabbit'),
      ]
        .map((doc) => stringify(doc))
        .join('---\n'),
    );
    sluice = await startSluice({ logName: 'sluice-serve-e2e.log', serveConfig: file });
    queues = await openTestQueues([QUEUE]);
    await queues.channel.purgeQueue(QUEUE);
  });

  afterAll(async () => {
    await queues.close();
    await deleteNamespace(kit.kc, kit.namespace);
    await sluice.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('scales 1 → 4 on 100 messages, and answers the same 404s and errors', async () => {
    await kit.createDeployment('worker', 1);
    await createWalkthroughHpa(kit);
    await publish(queues, 100);
    await kit.waitForReplicas('worker', 4, 60_000);
    expect((await kit.externalMetric(METRIC, `queue=${QUEUE}`)).values).toStrictEqual(['100']);
    await expectRefusals(kit, 'broken_queue_depth');
  });
});
