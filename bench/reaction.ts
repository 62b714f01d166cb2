/**
 * How fast sluice reacts, on the real test environment (control plane, HPA controller with a 1 s sync, RabbitMQ):
 *
 *   node bench/reaction.ts [--trials 3] [--only activation|burst] [--json bench/results/reaction.json]
 *
 * - activation: the first message on an idle queue → the consumer's scale goes 0 → 1; at default settings
 *   (pollingInterval unset, i.e. 30 s) and with pollingInterval 1; over the management API and over AMQP.
 * - burst: 50 messages on a queue whose consumer runs 1 replica (target 5 per replica) → the real HPA's first step
 *   and 10 replicas, at default settings.
 * Each case runs `--trials` times on fresh queues and Deployments; the table shows the median and the range.
 *
 * Brings the environment up when it is not (scripts/env/up.sh), starts `sluice operator --local` (the same way the e2e
 * tests do) and cleans up its namespace. Numbers, not pass/fail: a busy machine makes them slower.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { AppsV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import amqp from 'amqplib';
import {
  REPO_ROOT,
  createNamespace,
  deleteNamespace,
  kubeConfig,
  loadTestEnv,
  uniqueName,
} from '../test/support/env.ts';
import { startSluice } from '../test/support/sluice.ts';
import { ensureEnvironment } from './environment.ts';

const { values } = parseArgs({
  options: {
    trials: { type: 'string', default: '3' },
    only: { type: 'string' },
    json: { type: 'string', default: path.join(REPO_ROOT, 'bench', 'results', 'reaction.json') },
  },
});
const trials = Number(values.trials);

ensureEnvironment();

const env = loadTestEnv();
const kc = kubeConfig();
const apps = kc.makeApiClient(AppsV1Api);
const custom = kc.makeApiClient(CustomObjectsApi);

async function replicas(namespace: string, name: string): Promise<number> {
  return (await apps.readNamespacedDeploymentScale({ name, namespace })).spec?.replicas ?? 0;
}

/** Polls every 20 ms; resolves with the ms from `since` until `probe` holds, or rejects after `timeoutMs`. */
async function timeUntil(since: number, probe: () => Promise<boolean>, timeoutMs = 60_000): Promise<number> {
  for (;;) {
    if (await probe()) return performance.now() - since;
    if (performance.now() - since > timeoutMs) throw new Error(`not within ${timeoutMs} ms`);
    await sleep(20);
  }
}

async function deployment(namespace: string, name: string, count: number): Promise<void> {
  await apps.createNamespacedDeployment({
    namespace,
    body: {
      metadata: { name },
      spec: {
        replicas: count,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: { containers: [{ name: 'worker', image: 'registry.invalid/worker:1' }] },
        },
      },
    },
  });
}

async function scaledObject(namespace: string, name: string, spec: Record<string, unknown>): Promise<void> {
  await custom.createNamespacedCustomObject({
    group: 'sluice.dev',
    version: 'v1alpha1',
    namespace,
    plural: 'scaledobjects',
    body: { apiVersion: 'sluice.dev/v1alpha1', kind: 'ScaledObject', metadata: { name }, spec },
  });
}

async function activeCondition(namespace: string, name: string): Promise<string | undefined> {
  const so = (await custom.getNamespacedCustomObject({
    group: 'sluice.dev',
    version: 'v1alpha1',
    namespace,
    plural: 'scaledobjects',
    name,
  })) as { status?: { conditions?: { type: string; reason?: string }[] } };
  return so.status?.conditions?.find((c) => c.type === 'Active')?.reason;
}

interface Row {
  readonly case: string;
  readonly samples: number[];
}

function summary(samples: readonly number[]): { median: number; min: number; max: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    median: sorted[Math.floor(sorted.length / 2)] ?? Number.NaN,
    min: sorted[0] ?? NaN,
    max: sorted.at(-1) ?? NaN,
  };
}

const rows: Row[] = [];
const sluice = await startSluice({ logName: 'sluice-bench-reaction.log' });
const namespace = await createNamespace(kc, 'bench-reaction');
const connection = await amqp.connect(env.rabbitmq.amqpUrl);
const channel = await connection.createChannel();
const queues: string[] = [];

try {
  if (values.only === undefined || values.only === 'activation') {
    for (const [label, protocol, pollingInterval] of [
      ['activation 0 → 1, default settings, management API', 'http', undefined],
      ['activation 0 → 1, default settings, AMQP', 'amqp', undefined],
      ['activation 0 → 1, pollingInterval 1, management API', 'http', 1],
    ] as const) {
      const samples: number[] = [];
      for (let t = 0; t < trials; t++) {
        const name = uniqueName('act');
        const queue = uniqueName('bench-act');
        queues.push(queue);
        await channel.assertQueue(queue, { durable: false });
        await deployment(namespace, name, 0);
        await scaledObject(namespace, name, {
          scaleTargetRef: { name },
          ...(pollingInterval === undefined ? {} : { pollingInterval }),
          triggers: [
            {
              type: 'rabbitmq',
              metadata: {
                host: protocol === 'http' ? env.rabbitmq.managementUrl : env.rabbitmq.amqpUrl,
                queueName: queue,
                mode: 'QueueLength',
                value: '10',
              },
            },
          ],
        });
        await timeUntil(performance.now(), async () => (await activeCondition(namespace, name)) === 'ScalerNotActive');
        // A random phase against the read interval, as real traffic has.
        await sleep(Math.random() * 1000);
        channel.sendToQueue(queue, Buffer.from('work'));
        samples.push(await timeUntil(performance.now(), async () => (await replicas(namespace, name)) >= 1));
      }
      rows.push({ case: label, samples });
    }
  }
  if (values.only === undefined || values.only === 'burst') {
    const first: number[] = [];
    const ten: number[] = [];
    for (let t = 0; t < trials; t++) {
      const name = uniqueName('burst');
      const queue = uniqueName('bench-burst');
      queues.push(queue);
      await channel.assertQueue(queue, { durable: false });
      await deployment(namespace, name, 1);
      await scaledObject(namespace, name, {
        scaleTargetRef: { name },
        minReplicaCount: 1,
        maxReplicaCount: 10,
        triggers: [
          {
            type: 'rabbitmq',
            metadata: { host: env.rabbitmq.managementUrl, queueName: queue, mode: 'QueueLength', value: '5' },
          },
        ],
      });
      await timeUntil(performance.now(), async () => (await activeCondition(namespace, name)) === 'ScalerNotActive');
      await sleep(2000 + Math.random() * 1000);
      for (let i = 0; i < 50; i++) channel.sendToQueue(queue, Buffer.from(`m${i}`));
      const sent = performance.now();
      first.push(await timeUntil(sent, async () => (await replicas(namespace, name)) > 1));
      ten.push(await timeUntil(sent, async () => (await replicas(namespace, name)) === 10));
    }
    rows.push({ case: 'burst: 50 messages at 1 replica → first HPA step, default settings', samples: first });
    rows.push({ case: 'burst: 50 messages at 1 replica → 10 replicas, default settings', samples: ten });
  }
} finally {
  for (const queue of queues) await channel.deleteQueue(queue).catch(() => undefined);
  await connection.close();
  await deleteNamespace(kc, namespace, 120_000);
  await sluice.stop();
}

const width = Math.max(...rows.map((r) => r.case.length));
console.log(`\nsluice reaction (${trials} trials each; median [min – max], ms)\n`);
for (const row of rows) {
  const s = summary(row.samples);
  console.log(
    `${row.case.padEnd(width)}  ${s.median.toFixed(0).padStart(6)}  [${s.min.toFixed(0)} – ${s.max.toFixed(0)}]`,
  );
}
mkdirSync(path.dirname(values.json), { recursive: true });
writeFileSync(
  values.json,
  `${JSON.stringify({ date: new Date().toISOString(), trials, rows: rows.map((r) => ({ ...r, ...summary(r.samples) })) }, null, 2)}\n`,
);
console.log(`\nwritten to ${values.json}`);
