// Helpers for end-to-end scaling tests on the real control plane: a scale target, ScaledObjects, their conditions,
// replica counts, and the external metric as the HPA controller reads it (through kube-apiserver's aggregator).
import { request, type RequestOptions } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AppsV1Api,
  AutoscalingV2Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type CoreV1Event,
  type KubeConfig,
} from '@kubernetes/client-node';
import amqp from 'amqplib';
import { expect } from 'vitest';
import { loadTestEnv, waitFor } from './env.ts';

export const GROUP = 'sluice.dev';
export const VERSION = 'v1alpha1';

export interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

export interface ScaledObjectView {
  metadata?: { generation?: number };
  status?: {
    conditions?: Condition[];
    hpaName?: string;
    externalMetricNames?: string[];
    lastActiveTime?: string;
    originalReplicaCount?: number;
    triggersActivity?: Record<string, { isActive: boolean }>;
    health?: Record<string, { numberOfFailures?: number; status?: string }>;
    pausedReplicaCount?: number;
    compositeScalerName?: string;
    resourceMetricNames?: string[];
  };
}

export interface ExternalMetricReply {
  status: number;
  body: Record<string, unknown>;
  /** `items[].value` when the reply is a list. */
  values: string[];
}

/** Everything an e2e test needs in one namespace. */
export class ScalingTestKit {
  readonly kc: KubeConfig;
  readonly namespace: string;
  readonly apps: AppsV1Api;
  readonly autoscaling: AutoscalingV2Api;
  readonly custom: CustomObjectsApi;
  readonly core: CoreV1Api;

  constructor(kc: KubeConfig, namespace: string) {
    this.kc = kc;
    this.namespace = namespace;
    this.apps = kc.makeApiClient(AppsV1Api);
    this.autoscaling = kc.makeApiClient(AutoscalingV2Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.core = kc.makeApiClient(CoreV1Api);
  }

  /** Merge-patches a ScaledObject's spec or metadata. */
  async patchScaledObject(name: string, patch: Record<string, unknown>): Promise<void> {
    await this.custom.patchNamespacedCustomObject(
      { group: GROUP, version: VERSION, namespace: this.namespace, plural: 'scaledobjects', name, body: patch },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }

  /** The Events about a ScaledObject (what `kubectl describe so <name>` lists), oldest first. */
  async events(scaledObject: string): Promise<CoreV1Event[]> {
    const list = await this.core.listNamespacedEvent({
      namespace: this.namespace,
      fieldSelector: `involvedObject.name=${scaledObject},involvedObject.kind=ScaledObject`,
    });
    return list.items.sort((a, b) => String(a.eventTime ?? '').localeCompare(String(b.eventTime ?? '')));
  }

  /** Waits until an Event with `reason` exists about the ScaledObject, and returns it. */
  async waitForEvent(scaledObject: string, reason: string, timeoutMs = 20_000): Promise<CoreV1Event> {
    return waitFor(async () => (await this.events(scaledObject)).find((e) => e.reason === reason), {
      timeoutMs,
      message: `an Event ${reason} about ScaledObject ${scaledObject}`,
    });
  }

  /** A Deployment whose pods stay Pending (no kubelet): enough for External AverageValue targets. */
  async createDeployment(name: string, replicas: number, env: { name: string; value: string }[] = []): Promise<void> {
    await this.apps.createNamespacedDeployment({
      namespace: this.namespace,
      body: {
        metadata: { name },
        spec: {
          replicas,
          selector: { matchLabels: { app: name } },
          template: {
            metadata: { labels: { app: name } },
            spec: { containers: [{ name: 'worker', image: 'registry.invalid/worker:1', env }] },
          },
        },
      },
    });
  }

  async createScaledObject(name: string, spec: Record<string, unknown>): Promise<void> {
    await this.custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: this.namespace,
      plural: 'scaledobjects',
      body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'ScaledObject', metadata: { name }, spec },
    });
  }

  async createTriggerAuthentication(name: string, spec: Record<string, unknown>): Promise<void> {
    await this.custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: this.namespace,
      plural: 'triggerauthentications',
      body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'TriggerAuthentication', metadata: { name }, spec },
    });
  }

  async deleteScaledObject(name: string): Promise<void> {
    await this.custom.deleteNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: this.namespace,
      plural: 'scaledobjects',
      name,
    });
  }

  async scaledObject(name: string): Promise<ScaledObjectView> {
    return (await this.custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: this.namespace,
      plural: 'scaledobjects',
      name,
    })) as ScaledObjectView;
  }

  async condition(name: string, type: string): Promise<Condition | undefined> {
    return (await this.scaledObject(name)).status?.conditions?.find((c) => c.type === type);
  }

  /** Waits until the ScaledObject's condition `type` has `reason`, and returns it. */
  async waitForCondition(name: string, type: string, reason: string, timeoutMs = 30_000): Promise<Condition> {
    return waitFor(
      async () => {
        const c = await this.condition(name, type);
        return c?.reason === reason ? c : undefined;
      },
      { timeoutMs, message: `${name}: ${type} condition with reason ${reason}` },
    );
  }

  /** `spec.replicas` of a Deployment, through its scale subresource (missing = 0). */
  async replicas(deployment: string): Promise<number> {
    return (
      (await this.apps.readNamespacedDeploymentScale({ name: deployment, namespace: this.namespace })).spec?.replicas ??
      0
    );
  }

  async waitForReplicas(deployment: string, expected: number, timeoutMs = 60_000): Promise<void> {
    await waitFor(async () => (await this.replicas(deployment)) === expected, {
      timeoutMs,
      intervalMs: 250,
      message: `${deployment} to have ${expected} replicas`,
    });
  }

  /** Asserts the replica count stays `expected` for `ms`, checking twice a second. */
  async expectReplicasStay(deployment: string, expected: number, ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      expect(await this.replicas(deployment)).toBe(expected);
      await sleep(500);
    }
  }

  async waitForHpa(name: string, timeoutMs = 20_000) {
    return waitFor(() => this.autoscaling.readNamespacedHorizontalPodAutoscaler({ name, namespace: this.namespace }), {
      timeoutMs,
      message: `HPA ${name}`,
    });
  }

  /**
   * The certificate tests' reader of metrics: a Deployment `consumer` at 1 replica and its ScaledObject scaling it 1–3
   * on `queue`'s length (target 10 a replica, polled every second); resolves once its HPA exists.
   */
  async createMetricsConsumer(queue: string): Promise<void> {
    await this.createDeployment('consumer', 1);
    await this.createScaledObject('consumer', {
      scaleTargetRef: { name: 'consumer' },
      minReplicaCount: 1,
      maxReplicaCount: 3,
      pollingInterval: 1,
      triggers: [
        {
          type: 'rabbitmq',
          metadata: { host: loadTestEnv().rabbitmq.managementUrl, queueName: queue, mode: 'QueueLength', value: '10' },
        },
      ],
    });
    await this.waitForHpa('sluice-hpa-consumer');
  }

  /**
   * A Deployment at 0 replicas and a ScaledObject of the same name scaling it from 0 to 5 on a RabbitMQ queue's length
   * (target 10 a replica), polled every second, with a cooldown of 5 s.
   */
  async createQueueScaledObject(name: string, queue: string): Promise<void> {
    await this.createDeployment(name, 0);
    await this.createScaledObject(name, {
      scaleTargetRef: { name },
      minReplicaCount: 0,
      maxReplicaCount: 5,
      pollingInterval: 1,
      cooldownPeriod: 5,
      triggers: [
        {
          type: 'rabbitmq',
          metadata: { host: loadTestEnv().rabbitmq.managementUrl, queueName: queue, mode: 'QueueLength', value: '10' },
        },
      ],
    });
  }

  /** The HPA sluice made for a ScaledObject (`sluice-hpa-<name>`), or undefined when there is none. */
  async sluiceHpa(scaledObject: string) {
    try {
      return await this.autoscaling.readNamespacedHorizontalPodAutoscaler({
        name: `sluice-hpa-${scaledObject}`,
        namespace: this.namespace,
      });
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  }

  /** Whether the ScaledObject is gone (deleted, and its finalizer removed). */
  async scaledObjectGone(name: string): Promise<boolean> {
    try {
      await this.scaledObject(name);
      return false;
    } catch (err) {
      return (err as { code?: number }).code === 404;
    }
  }

  async waitForHpaGone(name: string, timeoutMs = 60_000): Promise<void> {
    await waitFor(
      async () => {
        try {
          await this.autoscaling.readNamespacedHorizontalPodAutoscaler({ name, namespace: this.namespace });
          return false;
        } catch (err) {
          return (err as { code?: number }).code === 404;
        }
      },
      { timeoutMs, message: `HPA ${name} to be deleted` },
    );
  }

  /** GET an external metric through kube-apiserver and its aggregator, as the HPA controller does. */
  async externalMetric(metric: string, selector: string): Promise<ExternalMetricReply> {
    const { status, text } = await this.kubeGet(
      `/apis/external.metrics.k8s.io/v1beta1/namespaces/${this.namespace}/${metric}?labelSelector=${encodeURIComponent(selector)}`,
    );
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      body = { text };
    }
    const items = Array.isArray(body['items']) ? (body['items'] as { value?: unknown }[]) : [];
    return { status, body, values: items.map((i) => String(i.value)) };
  }

  /** A GET through kube-apiserver (with the test's admin credentials), as text. */
  async kubeGet(path: string): Promise<{ status: number; text: string }> {
    const cluster = this.kc.getCurrentCluster();
    if (!cluster) throw new Error('no cluster in kubeconfig');
    const url = new URL(path, cluster.server);
    const options: RequestOptions = { host: url.hostname, port: url.port, path: `${url.pathname}${url.search}` };
    await this.kc.applyToHTTPSOptions(options);
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(options, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') });
        });
      });
      req.on('error', reject);
      req.end();
    });
    return { status, text };
  }

  /** The selector sluice's HPAs send for a ScaledObject. */
  static selectorFor(scaledObject: string): string {
    return `scaledobject.sluice.dev/name=${scaledObject}`;
  }
}

/** Non-durable queues on the test broker and one AMQP channel to publish on; `close()` deletes them. */
export interface TestQueues {
  readonly channel: amqp.Channel;
  close(): Promise<void>;
}

export async function openTestQueues(names: readonly string[]): Promise<TestQueues> {
  const connection = await amqp.connect(loadTestEnv().rabbitmq.amqpUrl);
  const channel = await connection.createChannel();
  for (const name of names) await channel.assertQueue(name, { durable: false });
  return {
    channel,
    async close() {
      for (const name of names) await channel.deleteQueue(name).catch(() => undefined);
      await connection.close().catch(() => undefined);
    },
  };
}
