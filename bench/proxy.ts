/**
 * What proxy mode's hop costs a request (docs/deploy.md#proxy-mode).
 *
 *   node bench/proxy.ts [--seconds 5] [--clients 1,8] [--rounds 2] [--json bench/results/proxy.json]
 *
 * On the real test environment: a real prometheus-adapter (test/support/prometheus-adapter.ts) serving one external
 * metric from Prometheus, and `sluice operator --local --proxy-to <it>` serving a ScaledObject's metric (a RabbitMQ
 * queue holding 7 messages) and forwarding the adapter's. For each client count, `--rounds` times, alternating:
 * - adapter: GET of the adapter's metric straight at the adapter, as kube-apiserver's aggregator would send it (the
 *   front-proxy client certificate, X-Remote-User/X-Remote-Group), HTTP/1.1 like sluice's hop;
 * - via sluice: the same GET at sluice, which authenticates it, authorizes it and forwards it to the adapter;
 * - through kube-apiserver: the adapter's metric as the HPA controller asks for it (aggregator → sluice → adapter),
 *   and sluice's own metric the same way (aggregator → sluice).
 * The hop's cost per request is "via sluice" minus "adapter" (p50), and sluice's CPU per forwarded request. The client
 * is the environment's admin (system:masters): no SubjectAccessReview on sluice's side, one on the adapter's (it has
 * no such shortcut) as without sluice. Numbers, not pass/fail: a busy machine makes them slower.
 */
import { readFileSync } from 'node:fs';
import { ApiregistrationV1Api } from '@kubernetes/client-node';
import { Agent, request } from 'undici';

import {
  addScrapeTarget,
  createNamespace,
  deleteNamespace,
  kubeConfig,
  loadTestEnv,
  uniqueName,
  waitFor,
} from '../test/support/env.ts';
import { EXPOSITION_TYPE, exposition, startMetricServer } from '../test/support/metric-server.ts';
import {
  buildPrometheusAdapter,
  externalRule,
  makeProxyPki,
  proxyFlags,
  startPrometheusAdapter,
} from '../test/support/prometheus-adapter.ts';
import { ScalingTestKit, openTestQueues } from '../test/support/scaling.ts';
import { startSluice } from '../test/support/sluice.ts';
import { cpuSeconds, ensureEnvironment, loadOptions, percentile, runClients, writeResults } from './environment.ts';

const { seconds, clientCounts, rounds, json } = loadOptions({ seconds: 5, clients: '1,8', rounds: 2, name: 'proxy' });

ensureEnvironment();
const env = loadTestEnv();
const kc = kubeConfig();
const METRIC = 'bench_proxy_depth';

interface Target {
  readonly url: string;
  readonly tls: { ca: string; cert: string; key: string };
  readonly headers: Record<string, string | string[]>;
}

interface Run {
  readonly requests: number;
  readonly failures: number;
  /** Answers other than 200, by code. */
  readonly codes: Readonly<Record<string, number>>;
  readonly reqPerS: number;
  readonly p50: number;
  readonly p99: number;
  readonly sluiceCpuMs: number;
}

/** `clients` loops, each GETting the target one request after another on its own kept-alive connection. */
async function load(target: Target, clients: number, sluicePid: number): Promise<Run> {
  const agent = new Agent({ connections: clients, pipelining: 1, allowH2: false, connect: target.tls });
  const get = async (): Promise<number> => {
    const { statusCode, body } = await request(target.url, { dispatcher: agent, headers: target.headers });
    await body.arrayBuffer();
    return statusCode;
  };
  let cpuBefore = 0;
  const {
    latencies,
    failures,
    codes,
    elapsedSeconds: elapsed,
  } = await runClients(clients, seconds, get, () => {
    cpuBefore = cpuSeconds(sluicePid);
  });
  const sluiceCpuMs = ((cpuSeconds(sluicePid) - cpuBefore) * 1000) / latencies.length;
  await agent.close();
  const sorted = Float64Array.from(latencies).sort();
  return {
    requests: latencies.length,
    failures,
    codes,
    reqPerS: latencies.length / elapsed,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    sluiceCpuMs,
  };
}

function median(runs: readonly Run[]): Run {
  const mid = [...runs].sort((a, b) => a.p50 - b.p50)[Math.floor(runs.length / 2)] ?? runs[0];
  if (mid === undefined) throw new Error('no runs');
  return { ...mid, failures: runs.reduce((sum, r) => sum + r.failures, 0) };
}

const binary = await buildPrometheusAdapter();
const namespace = await createNamespace(kc, 'bench-proxy');
const kit = new ScalingTestKit(kc, namespace);
const exporter = await startMetricServer();
exporter.respond = () => ({ contentType: EXPOSITION_TYPE, body: exposition({ [`${METRIC}{queue="orders"}`]: 35 }) });
const removeTarget = await addScrapeTarget([`127.0.0.1:${exporter.port}`], { namespace });
const pki = await makeProxyPki();
const adapter = await startPrometheusAdapter({
  binary,
  pki,
  port: env.ports.etcdClient + 25,
  logName: 'prometheus-adapter-bench.log',
  config: externalRule(METRIC),
});
const sluice = await startSluice({
  logName: 'sluice-bench-proxy.log',
  extraArgs: proxyFlags(adapter, pki),
});
const sluicePid = sluice.child.pid ?? 0;
const queue = uniqueName('bench-proxy');
const broker = await openTestQueues([queue]);
const rows: { clients: number; cases: Record<string, Run> }[] = [];
try {
  for (let i = 0; i < 7; i++) broker.channel.sendToQueue(queue, Buffer.from(`m${String(i)}`));
  await kit.createMetricsConsumer(queue);
  const metricPath = `/apis/external.metrics.k8s.io/v1beta1/namespaces/${namespace}/${METRIC}?labelSelector=queue%3Dorders`;
  const ownPath =
    `/apis/external.metrics.k8s.io/v1beta1/namespaces/${namespace}/s0-rabbitmq-${queue}` +
    `?labelSelector=${encodeURIComponent(ScalingTestKit.selectorFor('consumer'))}`;
  // As the aggregator sends a request: its proxy client certificate and the caller in the identity headers.
  const asAggregator = {
    cert: readFileSync(env.pki.frontProxyClientCert, 'utf8'),
    key: readFileSync(env.pki.frontProxyClientKey, 'utf8'),
  };
  const identity = { accept: 'application/json', 'x-remote-user': 'admin', 'x-remote-group': ['system:masters'] };
  const admin = {
    ca: readFileSync(env.pki.caCert, 'utf8'),
    cert: readFileSync(env.pki.adminCert, 'utf8'),
    key: readFileSync(env.pki.adminKey, 'utf8'),
  };
  const targets: Record<string, Target> = {
    adapter: {
      url: `${adapter.url}${metricPath}`,
      tls: { ca: pki.adapterCa.cert, ...asAggregator },
      headers: identity,
    },
    'via sluice': {
      url: `https://127.0.0.1:${String(sluice.port)}${metricPath}`,
      // sluice --local serves a throwaway certificate: the bench trusts what kube-apiserver trusts for it.
      tls: { ca: await apiServiceCa(), ...asAggregator },
      headers: identity,
    },
    'kube-apiserver → sluice → adapter': {
      url: `${env.apiserver}${metricPath}`,
      tls: admin,
      headers: { accept: 'application/json' },
    },
    'kube-apiserver → sluice (own)': {
      url: `${env.apiserver}${ownPath}`,
      tls: admin,
      headers: { accept: 'application/json' },
    },
  };
  for (const [name, target] of Object.entries(targets)) {
    await waitFor(async () => (await load(target, 1, sluicePid)).failures === 0, {
      timeoutMs: 60_000,
      intervalMs: 500,
      message: `${name} to answer 200`,
    });
  }
  for (const clients of clientCounts) {
    const runs: Record<string, Run[]> = {};
    for (let round = 0; round < rounds; round++) {
      console.log(`bench: ${clients} client(s), round ${round + 1} of ${rounds} (${seconds} s per case)`);
      for (const [name, target] of Object.entries(targets))
        (runs[name] ??= []).push(await load(target, clients, sluicePid));
    }
    rows.push({ clients, cases: Object.fromEntries(Object.entries(runs).map(([name, r]) => [name, median(r)])) });
  }
} finally {
  await deleteNamespace(kc, namespace, 120_000);
  await sluice.stop();
  await broker.close();
  await adapter.stop();
  await removeTarget();
  await exporter.close();
  await pki.cleanup();
}

/** The CA bundle kube-apiserver trusts for sluice's APIService (sluice --local made it). */
async function apiServiceCa(): Promise<string> {
  const service = await kc
    .makeApiClient(ApiregistrationV1Api)
    .readAPIService({ name: 'v1beta1.external.metrics.k8s.io' });
  return Buffer.from(service.spec?.caBundle ?? '', 'base64').toString('utf8');
}

console.log(
  `\nproxy mode: the adapter's metric straight, via sluice, and through kube-apiserver; median of ${rounds} rounds\n`,
);
console.log('clients | case                              |  req/s | p50 ms | p99 ms | sluice CPU ms/req | failures');
for (const { clients, cases } of rows) {
  for (const [name, run] of Object.entries(cases)) {
    console.log(
      [
        String(clients).padStart(7),
        name.padEnd(33),
        run.reqPerS.toFixed(0).padStart(6),
        run.p50.toFixed(2).padStart(6),
        run.p99.toFixed(2).padStart(6),
        run.sluiceCpuMs.toFixed(2).padStart(17),
        `${String(run.failures).padStart(8)}${run.failures > 0 ? ` ${JSON.stringify(run.codes)}` : ''}`,
      ].join(' | '),
    );
  }
  const direct = cases['adapter'];
  const hop = cases['via sluice'];
  if (direct && hop) {
    console.log(
      `        the hop: +${(hop.p50 - direct.p50).toFixed(2)} ms p50, +${(hop.p99 - direct.p99).toFixed(2)} ms p99`,
    );
  }
}
writeResults(json, { seconds, rounds, rows });
