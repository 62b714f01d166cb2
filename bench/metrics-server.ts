/**
 * How fast the external-metrics API serves from memory, and what a series costs in heap.
 *
 *   node --expose-gc bench/metrics-server.ts [--requests 20000] [--concurrency 32] [--sizes 10,1000,10000]
 *
 * For each size N: a MetricStore holding one series for each of N ScaledObjects (spread over up to 100 namespaces,
 * as the scaling loops write them), the real fastify server from buildServer() on plain HTTP at 127.0.0.1:<random>,
 * and GETs of `/apis/external.metrics.k8s.io/v1beta1/namespaces/<ns>/<metric>?labelSelector=<the HPA's selector>`,
 * `--concurrency` at a time over keep-alive connections, in a pseudo-random but fixed order.
 *
 * What is and is not measured: the serving path (routing, schema validation, label selector parsing and matching,
 * the store lookup, Quantity formatting, JSON). Authentication and authorization are stubs (a system:masters user,
 * always allowed): in a cluster each request also pays for TLS on kube-apiserver's kept-alive connection, the
 * front-proxy certificate check and, once per user and metric every 10 s, a SubjectAccessReview (src/server/
 * authorizer.ts caches decisions). The load generator runs in a worker thread (its own event loop and heap), so it
 * competes with the server for CPU, not for the event loop; the "server loop busy" column says how close the server
 * came to saturation. On a 2-core machine shared with other work the numbers are a floor.
 *
 * Bounded: a fixed number of requests per size (after a warm-up of 1 000), and at most 60 s per size; loopback only.
 */
import { Agent, get } from 'node:http';
import { availableParallelism, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

import { MetricStore } from '../src/metric-store.ts';
import { SCALED_OBJECT_LABEL } from '../src/operator/scaled-object.ts';
import { buildServer } from '../src/server/app.ts';
import type { UserInfo } from '../src/server/identity.ts';

const WARMUP_REQUESTS = 1_000;
const TIME_LIMIT_MS = 60_000;
const NAMESPACES = 100;
const METRICS_PATH = '/apis/external.metrics.k8s.io/v1beta1/namespaces';

interface LoadJob {
  readonly baseUrl: string;
  readonly size: number;
  readonly requests: number;
  readonly concurrency: number;
}

interface LoadResult {
  /** Latency of every measured request, ms. */
  readonly latencies: Float64Array;
  readonly elapsedMs: number;
  readonly completed: number;
  /** Non-200 answers and network errors, by status ("network" for errors). */
  readonly failures: Record<string, number>;
  readonly timedOut: boolean;
}

/** The i-th ScaledObject: its namespace, name, and trigger metric name (as the rabbitmq scaler names it). */
function scaledObject(i: number): { namespace: string; name: string; metric: string } {
  return { namespace: `bench-${i % NAMESPACES}`, name: `so-${i}`, metric: `s0-rabbitmq-queue-${i}` };
}

function requestPath(i: number): string {
  const so = scaledObject(i);
  const selector = encodeURIComponent(`${SCALED_OBJECT_LABEL}=${so.name}`);
  return `${METRICS_PATH}/${so.namespace}/${so.metric}?labelSelector=${selector}`;
}

function fill(store: MetricStore, size: number): void {
  const timestamp = new Date();
  for (let i = 0; i < size; i++) {
    const so = scaledObject(i);
    store.set({
      namespace: so.namespace,
      metricName: so.metric,
      labels: { [SCALED_OBJECT_LABEL]: so.name },
      value: (i % 997) + 0.25,
      error: undefined,
      timestamp,
      owner: `${so.namespace}/${so.name}`,
    });
  }
}

// --- the load generator (worker thread) ----------------------------------------------------------------------------

/** GET over a keep-alive agent; resolves with the status once the whole body has been read. */
function fetchStatus(url: string, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    get(url, { agent }, (response) => {
      response.on('data', () => undefined);
      response.on('end', () => {
        resolve(response.statusCode ?? 0);
      });
      response.on('error', reject);
    }).on('error', reject);
  });
}

async function runLoad(job: LoadJob): Promise<LoadResult> {
  // node:http with a keep-alive agent, one socket per lane: lighter per request than fetch (undici's WHATWG
  // streams), so more of the shared CPU goes to the server under test.
  const agent = new Agent({ keepAlive: true, maxSockets: job.concurrency });
  // A fixed pseudo-random sequence of ScaledObjects (LCG), the same for every run.
  let seed = 42;
  const nextIndex = (): number => {
    seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
    return seed % job.size;
  };
  const failures: Record<string, number> = {};
  const latencies = new Float64Array(job.requests);
  let timedOut = false;

  const phase = async (count: number, record: boolean, deadline: number): Promise<number> => {
    let issued = 0;
    let completed = 0;
    const lane = async (): Promise<void> => {
      while (issued < count) {
        if (performance.now() > deadline) {
          timedOut = true;
          return;
        }
        issued += 1;
        const url = job.baseUrl + requestPath(nextIndex());
        const start = performance.now();
        let status: string;
        try {
          status = String(await fetchStatus(url, agent));
        } catch {
          status = 'network';
        }
        const elapsed = performance.now() - start;
        if (record) {
          latencies[completed] = elapsed;
          if (status !== '200') failures[status] = (failures[status] ?? 0) + 1;
        }
        completed += 1;
      }
    };
    await Promise.all(Array.from({ length: job.concurrency }, lane));
    return completed;
  };

  await phase(WARMUP_REQUESTS, false, performance.now() + TIME_LIMIT_MS);
  const start = performance.now();
  const completed = await phase(job.requests, true, start + TIME_LIMIT_MS);
  const elapsedMs = performance.now() - start;
  agent.destroy();
  return { latencies: latencies.slice(0, completed), elapsedMs, completed, failures, timedOut };
}

if (!isMainThread) {
  const port = parentPort;
  if (port === null) throw new Error('worker without a parent port');
  const result = await runLoad(workerData as LoadJob);
  port.postMessage(result, [result.latencies.buffer as ArrayBuffer]);
}

// --- the server side (main thread) ---------------------------------------------------------------------------------

function load(job: LoadJob): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: job });
    worker.once('message', (result: LoadResult) => {
      resolve(result);
    });
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`load worker exited with code ${code}`));
    });
  });
}

function heapUsed(): number {
  globalThis.gc?.();
  globalThis.gc?.();
  return process.memoryUsage().heapUsed;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)] ?? Number.NaN;
}

const BENCH_USER: UserInfo = { username: 'bench', groups: ['system:masters'], extra: {} };

interface Row {
  size: number;
  result: LoadResult;
  heapPerThousand: number;
  /** Share of the measured time the server's event loop was busy (1 = saturated: the server is the bottleneck). */
  serverBusy: number;
}

async function benchSize(size: number, requests: number, concurrency: number): Promise<Row> {
  const before = heapUsed();
  const store = new MetricStore();
  fill(store, size);
  const heapPerThousand = ((heapUsed() - before) / size) * 1_000;

  const app = buildServer({
    store,
    authenticate: () => BENCH_USER,
    authorize: () => Promise.resolve({ allowed: true, reason: '' }),
    ready: () => true,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  try {
    const address = app.server.address();
    if (address === null || typeof address === 'string') throw new Error('server has no TCP address');
    const baseUrl = `http://127.0.0.1:${address.port}`;

    // One checked answer before the load: the bench must measure real 200s with the right body.
    const probe = await fetch(baseUrl + requestPath(size - 1));
    const body = (await probe.json()) as { items?: { metricName?: string }[] };
    if (probe.status !== 200 || body.items?.[0]?.metricName !== scaledObject(size - 1).metric) {
      throw new Error(`unexpected answer from the metrics API: ${probe.status} ${JSON.stringify(body)}`);
    }

    const busyBefore = performance.eventLoopUtilization();
    const result = await load({ baseUrl, size, requests, concurrency });
    const serverBusy = performance.eventLoopUtilization(busyBefore).utilization;
    return { size, result, heapPerThousand, serverBusy };
  } finally {
    await app.close();
  }
}

function formatRow(cells: readonly string[], widths: readonly number[]): string {
  return cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join('  ');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      requests: { type: 'string', default: '20000' },
      concurrency: { type: 'string', default: '32' },
      sizes: { type: 'string', default: '10,1000,10000' },
    },
  });
  const requests = Number(values.requests);
  const concurrency = Number(values.concurrency);
  const sizes = values.sizes.split(',').map(Number);
  if (![requests, concurrency, ...sizes].every((n) => Number.isInteger(n) && n > 0) || requests > 1_000_000) {
    throw new Error('--requests (≤ 1 000 000), --concurrency and --sizes take positive whole numbers');
  }

  const gcNote = globalThis.gc === undefined ? ' (no --expose-gc: heap figures include garbage)' : '';
  console.log(
    `sluice external-metrics API, served from memory: Node ${process.version}, ${availableParallelism()} CPUs, ` +
      `load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
  );
  console.log(
    `${requests} GETs per size after ${WARMUP_REQUESTS} warm-up, ${concurrency} concurrent keep-alive connections, ` +
      `plain HTTP on 127.0.0.1, auth stubs; load generator in a worker thread${gcNote}\n`,
  );

  const header = [
    'series',
    'requests',
    'errors',
    'req/s',
    'p50 ms',
    'p99 ms',
    'max ms',
    'server loop busy',
    'heap KiB / 1000 series',
  ];
  const widths = header.map((h) => Math.max(h.length, 8));
  console.log(formatRow(header, widths));
  console.log(
    formatRow(
      header.map((_h, i) => '-'.repeat(widths[i] ?? 0)),
      widths,
    ),
  );

  let failed = false;
  for (const size of sizes) {
    const { result, heapPerThousand, serverBusy } = await benchSize(size, requests, concurrency);
    const sorted = result.latencies.slice().sort();
    const errors = Object.values(result.failures).reduce((a, b) => a + b, 0);
    if (errors > 0 || result.timedOut) failed = true;
    console.log(
      formatRow(
        [
          size.toLocaleString('en-US'),
          String(result.completed),
          String(errors),
          Math.round(result.completed / (result.elapsedMs / 1_000)).toLocaleString('en-US'),
          percentile(sorted, 50).toFixed(2),
          percentile(sorted, 99).toFixed(2),
          (sorted.at(-1) ?? Number.NaN).toFixed(2),
          `${Math.round(serverBusy * 100)} %`,
          // Ten series are below the heap's noise (a few hundred KiB either way).
          size < 1_000 ? '(noise)' : (heapPerThousand / 1024).toFixed(0),
        ],
        widths,
      ),
    );
    if (errors > 0) console.log(`  failures by status: ${JSON.stringify(result.failures)}`);
    if (result.timedOut) console.log(`  stopped after ${TIME_LIMIT_MS / 1_000} s`);
  }
  if (failed) process.exitCode = 1;
}

if (isMainThread) await main();
