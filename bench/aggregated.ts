/**
 * The external-metrics API as the HPA controller reaches it: through kube-apiserver's aggregator, beside the floor.
 *
 *   node bench/aggregated.ts [--seconds 10] [--clients 1,16] [--rounds 2] [--json bench/results/aggregated.json]
 *
 * On the real test environment, with `sluice operator --local` serving one ScaledObject's metric (a RabbitMQ queue
 * holding 7 messages): for each client count, `--rounds` times, alternating,
 * - floor: GET of one ConfigMap through the same kube-apiserver (authentication, authorization, a read: what any
 *   request through kube-apiserver pays, and the most an aggregated API can hope for);
 * - metric: GET of the metric, the request the HPA controller makes (the aggregator authenticates, authorizes and
 *   proxies it to sluice, which answers from memory).
 * Each client sends its requests one after another over one kept-alive connection for `--seconds`. The table prints
 * req/s, p50 and p99 of both, the metric's req/s as a share of the floor's, and its p50 above the floor's.
 *
 * The client is the environment's admin (system:masters): kube-apiserver authorizes it without a webhook and sluice
 * without a SubjectAccessReview. The HPA controller's identity pays one review per metric every 5 s in the background
 * (src/server/authorizer.ts), none on the request path. Numbers, not pass/fail: a busy machine makes them slower.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api } from '@kubernetes/client-node';
import amqp from 'amqplib';
import { Agent, request } from 'undici';
import { createNamespace, deleteNamespace, kubeConfig, loadTestEnv, uniqueName } from '../test/support/env.ts';
import { ScalingTestKit } from '../test/support/scaling.ts';
import { startSluice } from '../test/support/sluice.ts';
import { cpuSeconds, ensureEnvironment, loadOptions, percentile, runClients, writeResults } from './environment.ts';

const { seconds, clientCounts, rounds, json } = loadOptions({
  seconds: 10,
  clients: '1,16',
  rounds: 2,
  name: 'aggregated',
});

ensureEnvironment();
const env = loadTestEnv();
const kc = kubeConfig();

interface Run {
  readonly requests: number;
  readonly failures: number;
  readonly reqPerS: number;
  readonly p50: number;
  readonly p99: number;
  /** CPU ms per request of kube-apiserver and of sluice over the run. */
  readonly apiserverCpuMs: number;
  readonly sluiceCpuMs: number;
}

/** `clients` loops, each GETting `url` one request after another on its own connection, for `seconds`. */
async function load(url: string, clients: number): Promise<Run> {
  const agent = new Agent({
    connections: clients,
    pipelining: 1,
    connect: {
      ca: readFileSync(env.pki.caCert),
      cert: readFileSync(env.pki.adminCert),
      key: readFileSync(env.pki.adminKey),
    },
  });
  const get = async (): Promise<number> => {
    const { statusCode, body } = await request(url, { dispatcher: agent, headers: { accept: 'application/json' } });
    await body.arrayBuffer();
    return statusCode;
  };
  let cpuBefore: readonly [number, number] = [0, 0];
  const {
    latencies,
    failures,
    elapsedSeconds: elapsed,
  } = await runClients(clients, seconds, get, () => {
    cpuBefore = [cpuSeconds(apiserverPid), cpuSeconds(sluicePid)];
  });
  const perRequest = (before: number, pid: number) => ((cpuSeconds(pid) - before) * 1000) / latencies.length;
  const apiserverCpuMs = perRequest(cpuBefore[0], apiserverPid);
  const sluiceCpuMs = perRequest(cpuBefore[1], sluicePid);
  await agent.close();
  const sorted = Float64Array.from(latencies).sort();
  return {
    requests: latencies.length,
    failures,
    reqPerS: latencies.length / elapsed,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    apiserverCpuMs,
    sluiceCpuMs,
  };
}

/** Pools the rounds of one case: total requests over total time, latency percentiles of the medians' runs. */
function pooled(runs: readonly Run[]): Run {
  const mid = [...runs].sort((a, b) => a.reqPerS - b.reqPerS)[Math.floor(runs.length / 2)] ?? runs[0];
  if (mid === undefined) throw new Error('no runs');
  return { ...mid, failures: runs.reduce((sum, r) => sum + r.failures, 0) };
}

const sluice = await startSluice({ logName: 'sluice-bench-aggregated.log' });
const sluicePid = sluice.child.pid ?? 0;
const apiserverPid = Number(readFileSync(path.join(env.stateDir, 'run', 'kube-apiserver.pid'), 'utf8'));
const namespace = await createNamespace(kc, 'bench-aggregated');
const kit = new ScalingTestKit(kc, namespace);
const connection = await amqp.connect(env.rabbitmq.amqpUrl);
const channel = await connection.createChannel();
const queue = uniqueName('bench-agg');
const rows: { clients: number; floor: Run; metric: Run }[] = [];
try {
  await channel.assertQueue(queue, { durable: false });
  for (let i = 0; i < 7; i++) channel.sendToQueue(queue, Buffer.from(`m${i}`));
  await kc.makeApiClient(CoreV1Api).createNamespacedConfigMap({
    namespace,
    body: { metadata: { name: 'floor' }, data: { value: '7' } },
  });
  await kit.createDeployment('agg', 1);
  await kit.createScaledObject('agg', {
    scaleTargetRef: { name: 'agg' },
    minReplicaCount: 1,
    triggers: [
      {
        type: 'rabbitmq',
        metadata: { host: env.rabbitmq.managementUrl, queueName: queue, mode: 'QueueLength', value: '5' },
      },
    ],
  });
  const floorUrl = `${env.apiserver}/api/v1/namespaces/${namespace}/configmaps/floor`;
  const metricUrl =
    `${env.apiserver}/apis/external.metrics.k8s.io/v1beta1/namespaces/${namespace}/s0-rabbitmq-${queue}` +
    `?labelSelector=${encodeURIComponent('scaledobject.sluice.dev/name=agg')}`;
  // Served through the aggregator before measuring (the APIService is Available and the queue has been read).
  for (let waited = 0; ; waited += 500) {
    const probe = await load(metricUrl, 1).catch(() => undefined);
    if (probe !== undefined && probe.failures === 0) break;
    if (waited > 60_000) throw new Error(`the metric is not served through kube-apiserver: GET ${metricUrl}`);
    await sleep(500);
  }
  for (const clients of clientCounts) {
    const floor: Run[] = [];
    const metric: Run[] = [];
    for (let round = 0; round < rounds; round++) {
      console.log(
        `bench: ${clients} client(s), round ${round + 1} of ${rounds}: floor, then metric (${seconds} s each)`,
      );
      floor.push(await load(floorUrl, clients));
      metric.push(await load(metricUrl, clients));
    }
    rows.push({ clients, floor: pooled(floor), metric: pooled(metric) });
  }
} finally {
  await channel.deleteQueue(queue).catch(() => undefined);
  await connection.close();
  await deleteNamespace(kc, namespace, 120_000);
  await sluice.stop();
}

console.log(
  `\nexternal-metrics GET through kube-apiserver beside the floor (a core-API GET), median of ${rounds} rounds\n`,
);
console.log(
  'clients | floor req/s | metric req/s | % of floor | floor p50 ms | metric p50 ms | +p50 ms | floor p99 | metric p99 | CPU ms per request: apiserver (floor, metric), sluice | failures',
);
for (const { clients, floor, metric } of rows) {
  console.log(
    [
      String(clients).padStart(7),
      floor.reqPerS.toFixed(0).padStart(11),
      metric.reqPerS.toFixed(0).padStart(12),
      `${((100 * metric.reqPerS) / floor.reqPerS).toFixed(0)} %`.padStart(10),
      floor.p50.toFixed(2).padStart(12),
      metric.p50.toFixed(2).padStart(13),
      (metric.p50 - floor.p50).toFixed(2).padStart(7),
      floor.p99.toFixed(2).padStart(9),
      metric.p99.toFixed(2).padStart(10),
      `${floor.apiserverCpuMs.toFixed(2)}, ${metric.apiserverCpuMs.toFixed(2)}, ${metric.sluiceCpuMs.toFixed(2)}`.padStart(
        54,
      ),
      String(floor.failures + metric.failures).padStart(8),
    ].join(' | '),
  );
}
writeResults(json, { seconds, rounds, rows });
