// Proves the local test environment is real: a working control plane (kube-apiserver + kube-controller-manager with the
// deployment, replicaset and HPA controllers), RabbitMQ with its management API, moto's SQS, Prometheus scraping a
// target a test adds, and every server bound to loopback only. No mocks.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  CreateQueueCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import {
  AppsV1Api,
  AutoscalingV2Api,
  CoreV1Api,
  type V2HorizontalPodAutoscalerCondition,
} from '@kubernetes/client-node';
import { connect } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addScrapeTarget,
  createNamespace,
  deleteNamespace,
  kubeConfig,
  loadTestEnv,
  queryPrometheus,
  rabbitmqApi,
  uniqueName,
  waitFor,
} from '../support/env.ts';

const env = loadTestEnv();

describe('control plane', () => {
  const kc = kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const autoscaling = kc.makeApiClient(AutoscalingV2Api);
  let namespace = '';
  const app = 'web';

  beforeAll(async () => {
    namespace = await createNamespace(kc, 'env-test');
  });
  afterAll(async () => {
    if (namespace) await deleteNamespace(kc, namespace);
  });

  it('runs a Deployment down to Pending pods through the deployment and replicaset controllers', async () => {
    await apps.createNamespacedDeployment({
      namespace,
      body: {
        metadata: { name: app },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app } },
          template: {
            metadata: { labels: { app } },
            spec: { containers: [{ name: 'pause', image: 'registry.k8s.io/pause:3.10' }] },
          },
        },
      },
    });

    const replicaSet = await waitFor(
      async () =>
        (await apps.listNamespacedReplicaSet({ namespace })).items.find(
          (rs) => rs.metadata?.ownerReferences?.[0]?.name === app,
        ),
      { message: 'a ReplicaSet owned by the Deployment' },
    );
    expect(replicaSet.metadata?.ownerReferences?.[0]?.kind).toBe('Deployment');

    // No kubelet: the pod is created and stays Pending, unscheduled.
    const pods = await waitFor(
      async () => {
        const list = await core.listNamespacedPod({ namespace, labelSelector: `app=${app}` });
        return list.items.length === 1 ? list.items : undefined;
      },
      { message: 'the ReplicaSet to create one pod' },
    );
    expect(pods[0]?.status?.phase).toBe('Pending');
    expect(pods[0]?.spec?.nodeName).toBeUndefined();
    expect(pods[0]?.metadata?.ownerReferences?.[0]?.name).toBe(replicaSet.metadata?.name);

    // Pending pods count in status.replicas, which is what the scale subresource (and so the HPA) reads.
    const scale = await waitFor(
      async () => {
        const s = await apps.readNamespacedDeploymentScale({ name: app, namespace });
        return s.status?.replicas === 1 ? s : undefined;
      },
      { message: 'the Deployment scale to report 1 replica' },
    );
    expect(scale.status?.selector).toBe(`app=${app}`);
  });

  it('runs the HPA controller on an autoscaling/v2 HPA with an External metric', async () => {
    await autoscaling.createNamespacedHorizontalPodAutoscaler({
      namespace,
      body: {
        metadata: { name: app },
        spec: {
          scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: app },
          minReplicas: 1,
          maxReplicas: 3,
          metrics: [
            {
              type: 'External',
              external: {
                metric: { name: 's0-env-test', selector: { matchLabels: { 'scaledobject.keda.sh/name': app } } },
                target: { type: 'AverageValue', averageValue: '5' },
              },
            },
          ],
        },
      },
    });

    // Nothing serves external.metrics.k8s.io here, so the controller can read the scale but not the metric.
    const conditions = await waitFor(
      async () => {
        const hpa = await autoscaling.readNamespacedHorizontalPodAutoscaler({ name: app, namespace });
        const found = hpa.status?.conditions ?? [];
        return found.some((c) => c.type === 'ScalingActive') ? found : undefined;
      },
      { timeoutMs: 30_000, message: 'the HPA controller to write conditions' },
    );
    const byType = (type: string): V2HorizontalPodAutoscalerCondition | undefined =>
      conditions.find((c) => c.type === type);
    expect(byType('AbleToScale')).toMatchObject({ status: 'True', reason: 'SucceededGetScale' });
    expect(byType('ScalingActive')).toMatchObject({ status: 'False', reason: 'FailedGetExternalMetric' });
    expect(byType('ScalingActive')?.message).toContain('s0-env-test');
  });
});

describe('RabbitMQ', () => {
  it('counts published messages over AMQP and in the management API', async () => {
    const queue = uniqueName('env-test');
    const connection = await connect(env.rabbitmq.amqpUrl);
    try {
      const channel = await connection.createConfirmChannel();
      // Exclusive: RabbitMQ deletes it with the connection even if an assertion below fails first.
      await channel.assertQueue(queue, { durable: false, exclusive: true });
      for (let i = 0; i < 3; i++) channel.sendToQueue(queue, Buffer.from(`message ${i}`));
      await channel.waitForConfirms();
      expect((await channel.checkQueue(queue)).messageCount).toBe(3);

      // Statistics lag (~1 s with the environment's settings), and fields are missing, not 0, before the first sample.
      const stats = await waitFor(
        async () => {
          const response = await rabbitmqApi(`/api/queues/%2F/${queue}`);
          const body = (await response.json()) as { messages?: number; messages_ready?: number };
          return body.messages === 3 ? body : undefined;
        },
        { timeoutMs: 10_000, message: 'the management API to count 3 messages' },
      );
      expect(stats.messages_ready).toBe(3);

      await channel.deleteQueue(queue);
      expect((await rabbitmqApi(`/api/queues/%2F/${queue}`)).status).toBe(404);
    } finally {
      await connection.close();
    }
  });
});

describe('SQS (moto)', () => {
  const sqs = new SQSClient({
    endpoint: env.sqs.endpoint,
    region: env.sqs.region,
    credentials: { accessKeyId: env.sqs.accessKeyId, secretAccessKey: env.sqs.secretAccessKey },
  });
  afterAll(() => {
    sqs.destroy();
  });

  it('reports visible, in-flight and delayed message counts', async () => {
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: uniqueName('env-test') }));
    if (!QueueUrl) throw new Error('CreateQueue returned no QueueUrl');
    const counts = async () => {
      const { Attributes = {} } = await sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl,
          AttributeNames: [
            'ApproximateNumberOfMessages',
            'ApproximateNumberOfMessagesNotVisible',
            'ApproximateNumberOfMessagesDelayed',
          ],
        }),
      );
      return [
        Attributes.ApproximateNumberOfMessages,
        Attributes.ApproximateNumberOfMessagesNotVisible,
        Attributes.ApproximateNumberOfMessagesDelayed,
      ].map(Number);
    };
    try {
      for (let i = 0; i < 5; i++) await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: `message ${i}` }));
      const { Messages = [] } = await sqs.send(
        new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 2, VisibilityTimeout: 60 }),
      );
      expect(Messages).toHaveLength(2);
      expect(await counts()).toEqual([3, 2, 0]);

      await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'later', DelaySeconds: 60 }));
      expect(await counts()).toEqual([3, 2, 1]);
    } finally {
      await sqs.send(new DeleteQueueCommand({ QueueUrl }));
    }
  });
});

describe('Prometheus', () => {
  it('scrapes a target added through the file_sd directory', async () => {
    let scrapes = 0;
    const server = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      scrapes++;
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(`# TYPE sluice_env_test_scrapes_total counter\nsluice_env_test_scrapes_total ${scrapes}\n`);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const target = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const testId = uniqueName('env-test');
    const removeTarget = await addScrapeTarget([target], { test_id: testId });
    try {
      const samples = await waitFor(
        async () => {
          const result = await queryPrometheus(`sluice_env_test_scrapes_total{test_id="${testId}"}`);
          return result.length > 0 ? result : undefined;
        },
        { timeoutMs: 20_000, intervalMs: 500, message: 'a sample scraped from the test target' },
      );
      expect(samples[0]?.metric).toMatchObject({ job: 'sluice-test', instance: target, test_id: testId });
      expect(Number(samples[0]?.value[1])).toBeGreaterThanOrEqual(1);
      expect(scrapes).toBeGreaterThanOrEqual(1);
    } finally {
      await removeTarget();
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('network exposure', () => {
  /** PIDs and their descendants (e.g. beam.smp under RabbitMQ's wrapper script). */
  function withDescendants(roots: number[]): Set<number> {
    const children = new Map<number, number[]>();
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      } catch {
        continue; // exited meanwhile
      }
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    }
    const all = new Set<number>();
    const visit = (pid: number) => {
      if (all.has(pid)) return;
      all.add(pid);
      for (const child of children.get(pid) ?? []) visit(child);
    };
    roots.forEach(visit);
    return all;
  }

  it('binds every listening socket of every component to loopback only', () => {
    const ours = withDescendants(Object.values(env.pids));
    // `ss -Hltnp` lines: State Recv-Q Send-Q Local:Port Peer:Port users:(("name",pid=N,fd=M),...)
    const sockets = execFileSync('ss', ['-Hltnp'], { encoding: 'utf8' })
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => {
        const local = line.trim().split(/\s+/)[3] ?? '';
        const colon = local.lastIndexOf(':');
        return {
          line,
          host: local
            .slice(0, colon)
            .replace(/^\[|\]$/g, '')
            .replace(/%.*$/, ''),
          port: Number(local.slice(colon + 1)),
          pids: [...line.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])),
        };
      })
      .filter((socket) => socket.pids.some((pid) => ours.has(pid)));

    expect(sockets.filter((s) => s.host !== '127.0.0.1' && s.host !== '::1').map((s) => s.line)).toEqual([]);
    // The check above is only meaningful if it saw the components: each of their ports must be among the sockets.
    const { sluice: _reserved, ...serverPorts } = env.ports;
    const seen = new Set(sockets.map((s) => s.port));
    expect(Object.entries(serverPorts).filter(([, port]) => !seen.has(port))).toEqual([]);
  });
});
