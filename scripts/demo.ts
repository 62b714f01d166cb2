// `npm run demo`: sluice scaling a RabbitMQ consumer 0 → N → 0 on a real control plane, explained as it happens.
//
// Brings the test environment up (reusing what runs and the build cache), starts `sluice operator --local`, applies
// examples/worker-tasks.yaml (pointed at the environment's broker), publishes a burst of messages, then drains the
// queue at a steady rate, printing one line a second: queue depth, the metric the HPA reads, the HPA's desired
// replicas, the Deployment's replicas, and sluice's decision with its reason. Then it tears down what it started.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import amqp from 'amqplib';
import {
  KubernetesObjectApi,
  PatchStrategy,
  loadAllYaml,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import {
  REPO_ROOT,
  createNamespace,
  deleteNamespace,
  kubeConfig,
  loadTestEnv,
  rabbitmqApi,
} from '../test/support/env.ts';
import { ScalingTestKit, type ScaledObjectView } from '../test/support/scaling.ts';
import { startSluice } from '../test/support/sluice.ts';

const BURST = 150;
const DRAIN_PER_SECOND = 12;
const QUEUE = 'worker_tasks';
/** Read from examples/worker-tasks.yaml when it is applied, so the explanations follow the example. */
const example = { target: 0, cooldownS: 0 };

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);

function envIsUp(): boolean {
  return spawnSync('bash', [path.join(REPO_ROOT, 'scripts/env/status.sh')], { stdio: 'ignore' }).status === 0;
}

async function applyExample(kc: KubeConfig, namespace: string, managementUrl: string): Promise<void> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const text = readFileSync(path.join(REPO_ROOT, 'examples/worker-tasks.yaml'), 'utf8');
  for (const doc of loadAllYaml(text) as KubernetesObject[]) {
    doc.metadata ??= {};
    doc.metadata.namespace = namespace;
    if (doc.kind === 'ScaledObject') {
      const spec = (doc as { spec: { cooldownPeriod: number; triggers: { metadata: Record<string, string> }[] } }).spec;
      for (const trigger of spec.triggers) trigger.metadata['host'] = managementUrl;
      example.target = Number(spec.triggers[0]?.metadata['value']);
      example.cooldownS = spec.cooldownPeriod;
    }
    await api.patch(doc, undefined, undefined, 'sluice-demo', true, PatchStrategy.ServerSideApply);
  }
}

interface Row {
  depth: number | undefined;
  served: string;
  desired: string;
  replicas: number | undefined;
  why: string;
}

/** One observation: the queue, the metric as the HPA reads it (through the aggregator), the HPA, the target. */
async function observe(kit: ScalingTestKit): Promise<Row> {
  const [queue, replicas, hpa, so, served] = await Promise.allSettled([
    rabbitmqApi(`/api/queues/%2F/${QUEUE}?columns=messages`).then((r) => r.json() as Promise<{ messages?: number }>),
    kit.replicas('worker'),
    kit.autoscaling.readNamespacedHorizontalPodAutoscaler({ name: 'sluice-hpa-worker', namespace: kit.namespace }),
    kit.scaledObject('worker'),
    kit.externalMetric(`s0-rabbitmq-${QUEUE}`, ScalingTestKit.selectorFor('worker')),
  ]);
  const value = served.status === 'fulfilled' ? served.value.values[0] : undefined;
  const status = so.status === 'fulfilled' ? so.value.status : undefined;
  const row: Row = {
    depth: queue.status === 'fulfilled' ? queue.value.messages : undefined,
    served: value ?? '–',
    desired: hpa.status === 'fulfilled' ? String(hpa.value.status?.desiredReplicas ?? '–') : '–',
    replicas: replicas.status === 'fulfilled' ? replicas.value : undefined,
    why: '',
  };
  row.why = explain(row, status);
  return row;
}

/** Why sluice and the HPA do what they do, in words, from the ScaledObject's status and the numbers above. */
function explain(row: Row, status: ScaledObjectView['status']): string {
  const conditions = status?.conditions ?? [];
  const ready = conditions.find((c) => c.type === 'Ready');
  const active = conditions.find((c) => c.type === 'Active');
  if (ready?.status === 'False') return `not ready: ${ready.reason ?? ''}: ${ready.message ?? ''}`;
  const served = Number(row.served);
  switch (active?.reason) {
    case 'ScalerActive': {
      const wanted = Number.isFinite(served) ? Math.ceil(served / example.target) : undefined;
      return row.replicas === 0
        ? `${row.served} > activation 0: waking the consumer (0 → 1)`
        : `active; the HPA wants ceil(${row.served} / ${example.target}) = ${wanted ?? '?'} replicas`;
    }
    case 'ScalerCooldown': {
      const since = status?.lastActiveTime ? (Date.now() - Date.parse(status.lastActiveTime)) / 1000 : 0;
      return `queue idle; scaling to 0 in ~${Math.max(0, Math.round(example.cooldownS - since))} s (cooldown ${example.cooldownS} s)`;
    }
    case 'ScalerNotActive':
      return row.replicas === 0 ? 'queue idle (0 ≤ activation 0): stays at 0' : 'idle';
    default:
      return 'waiting for the first poll';
  }
}

function bar(replicas: number | undefined): string {
  return replicas === undefined ? '?' : '█'.repeat(replicas).padEnd(10, '·');
}

async function main(): Promise<void> {
  const startedEnv = !envIsUp();
  if (startedEnv) {
    console.log(
      bold('Bringing up the test environment (first run builds Kubernetes from source: about 10–12 min on 2 cores)…'),
    );
    const up = spawnSync('bash', [path.join(REPO_ROOT, 'scripts/env/up.sh')], { stdio: 'inherit' });
    if (up.status !== 0) throw new Error('npm run env:up failed; see the output above');
  }
  const env = loadTestEnv();
  const kc = kubeConfig();

  console.log(bold('Starting `sluice operator --local`…'));
  const sluice = await startSluice({ logName: 'sluice-demo.log' });
  const namespace = await createNamespace(kc, 'sluice-demo');
  const connection = await amqp.connect(env.rabbitmq.amqpUrl);
  const channel = await connection.createChannel();
  await channel.assertQueue(QUEUE, { durable: false });
  await channel.purgeQueue(QUEUE);

  try {
    await applyExample(kc, namespace, env.rabbitmq.managementUrl);
    console.log(
      `Applied examples/worker-tasks.yaml in namespace ${namespace}: target 30 messages per replica, cooldown 20 s.`,
    );
    console.log(`sluice log: ${sluice.logFile}\n`);
    const header = `${'time'.padStart(5)}  ${'queue'.padStart(5)}  ${'served'.padStart(6)}  HPA  replicas    why`;
    console.log(bold(header));
    const kit = new ScalingTestKit(kc, namespace);

    const t0 = Date.now();
    let phase: 'idle' | 'burst' | 'drain' | 'cooldown' = 'idle';
    let drained = 0;
    let maxReplicas = 0;
    for (let second = 0; second < 180; second++) {
      if (phase === 'idle' && second === 3) {
        for (let i = 0; i < BURST; i++) channel.sendToQueue(QUEUE, Buffer.from(`task ${i}`));
        console.log(`      ── published ${BURST} messages ──`);
        phase = 'burst';
      }
      const row = await observe(kit);
      maxReplicas = Math.max(maxReplicas, row.replicas ?? 0);
      if (phase === 'burst' && maxReplicas >= Math.ceil(BURST / example.target) && second > 15) {
        console.log(`      ── consumers drain ${DRAIN_PER_SECOND} messages/s ──`);
        phase = 'drain';
      }
      if (phase === 'drain') {
        for (let i = 0; i < DRAIN_PER_SECOND; i++) {
          const msg = await channel.get(QUEUE, { noAck: true });
          if (msg === false) {
            phase = 'cooldown';
            console.log(`      ── queue empty after ${drained} messages; waiting for the cooldown ──`);
            break;
          }
          drained++;
        }
      }
      const elapsed = `${Math.round((Date.now() - t0) / 1000)}s`;
      console.log(
        `${elapsed.padStart(5)}  ${String(row.depth ?? '?').padStart(5)}  ${row.served.padStart(6)}  ${row.desired.padStart(3)}  ${String(row.replicas ?? '?').padStart(2)} ${bar(row.replicas)}  ${row.why}`,
      );
      if (phase === 'cooldown' && row.replicas === 0) {
        console.log(bold(`\nScaled 0 → ${maxReplicas} → 0 in ${Math.round((Date.now() - t0) / 1000)} s.`));
        break;
      }
      await sleep(1000);
    }
  } finally {
    console.log('Cleaning up…');
    await channel.deleteQueue(QUEUE).catch(() => undefined);
    await connection.close().catch(() => undefined);
    await deleteNamespace(kc, namespace).catch((err: unknown) => {
      console.error(err);
    });
    await sluice.stop();
    if (startedEnv) spawnSync('bash', [path.join(REPO_ROOT, 'scripts/env/down.sh')], { stdio: 'inherit' });
  }
}

main().catch((err: unknown) => {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
