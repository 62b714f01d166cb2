/**
 * What sluice costs as the number of ScaledObjects grows, on the real test environment (control plane, RabbitMQ):
 *
 *   node bench/scale.ts [--scale 0,1,100,1000] [--only reconcile|footprint] [--window 60] [--max-rss 6144]
 *                       [--source] [--node-options "--flag ..."] [--json bench/results/scale.json]
 *
 * sluice runs as deploy/deployment.yaml runs it: the built `dist/main.js` (built first, as the image builds it) with
 * the deployment's NODE_OPTIONS. `--source` runs `src/main.ts` instead (Node's type stripping adds about 30 MiB of
 * RSS); `--node-options` adds Node flags after the deployment's (to try a V8 setting).
 *
 * For each N of --scale, against a fresh `sluice operator --local` (so each row starts from an empty process):
 * - reconcile: N queues, N Deployments at 0 replicas, then N ScaledObjects (RabbitMQ management API, pollingInterval
 *   unset = 30 s, created 32 at a time); the time from the first create until N HPAs exist, and until all N are
 *   Ready=True.
 * - footprint: once sluice is at rest (at least 15 s, then until it has written nothing but its Lease for 10 s: Events
 *   of a mass create go out at their budget), over --window seconds: sluice's CPU (mCPU, from /proc), its RSS at the end, and
 *   the writes at rest seen by kube-apiserver (its own apiserver_request_total: ScaledObject status, HPA specs,
 *   /scale patches), which should be 0, and the requests RabbitMQ's management API logged (per second, and per idle
 *   queue per second). With `--scale 10000` this is the memory at 10,000 objects.
 *
 * `--profile DIR`: sluice runs with `--cpu-prof` (written to DIR when it stops) and writes a heap snapshot to DIR at
 * the end of each footprint window (`--heapsnapshot-signal`), for what dominated each number.
 *
 * Memory is watched throughout: a line every 30 s and whenever sluice's RSS grew by a quarter (RSS, V8 heap, external
 * memory, its work queue, whether it leads, its busiest Kubernetes API requests per second since the last line), and
 * past `--max-rss` MiB (default 6144) sluice is killed (after a heap snapshot with --profile) instead of the machine.
 *
 * Numbers, not pass/fail: a busy machine makes them slower. Brings the environment up when it is not.
 */
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { AppsV1Api, AutoscalingV2Api, CustomObjectsApi } from '@kubernetes/client-node';
import amqp from 'amqplib';
import { REPO_ROOT, createNamespace, deleteNamespace, kubeConfig, loadTestEnv } from '../test/support/env.ts';
import { ScalingTestKit } from '../test/support/scaling.ts';
import { startSluice } from '../test/support/sluice.ts';
import { cpuSeconds, deployedProcess, ensureEnvironment } from './environment.ts';

const { values } = parseArgs({
  options: {
    scale: { type: 'string', default: '0,1,100,1000' },
    only: { type: 'string' },
    window: { type: 'string', default: '60' },
    json: { type: 'string', default: path.join(REPO_ROOT, 'bench', 'results', 'scale.json') },
    profile: { type: 'string' },
    'max-rss': { type: 'string', default: '6144' },
    source: { type: 'boolean', default: false },
    'node-options': { type: 'string', default: '' },
  },
});
const scales = values.scale.split(',').map(Number);
const windowS = Number(values.window);
const maxRssMiB = Number(values['max-rss']);
const wants = (part: string): boolean => values.only === undefined || values.only === part;

ensureEnvironment();
const deployed = values.source ? undefined : deployedProcess();
const extraNodeOptions = values['node-options'].split(/\s+/).filter((flag) => flag !== '');
const launch = {
  entry: deployed?.entry,
  nodeOptions: [...(deployed?.nodeOptions ?? []), ...extraNodeOptions],
};
console.log(
  `sluice runs as: node ${[...launch.nodeOptions, deployed === undefined ? 'src/main.ts' : 'dist/main.js'].join(' ')}`,
);

const env = loadTestEnv();
const kc = kubeConfig();
const apps = kc.makeApiClient(AppsV1Api);
const autoscaling = kc.makeApiClient(AutoscalingV2Api);
const custom = kc.makeApiClient(CustomObjectsApi);

/** Runs `work` for 0..n-1 with at most `width` in flight; prints progress every 10 %. */
async function inBatches(what: string, n: number, width: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  let done = 0;
  const step = Math.max(1, Math.floor(n / 10));
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      await work(i);
      if (++done % step === 0 && n >= 100) process.stdout.write(`  ${what}: ${done}/${n}\r`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, n) }, worker));
  if (n >= 100) process.stdout.write('\n');
}

/** utime + stime of `pid`, in seconds. */
function rssMiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return Number(line?.split(/\s+/)[1] ?? NaN) / 1024;
}

/** Writes kube-apiserver counted that only sluice makes, by kind (its own apiserver_request_total). */
async function writesSeen(kit: ScalingTestKit): Promise<Record<string, number>> {
  const { text } = await kit.kubeGet('/metrics');
  const counts: Record<string, number> = {};
  const add = (kind: string, value: number): void => {
    counts[kind] = (counts[kind] ?? 0) + value;
  };
  for (const line of text.split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const label = (name: string): string => new RegExp(`${name}="([^"]*)"`).exec(line)?.[1] ?? '';
    const verb = label('verb');
    if (!['PATCH', 'APPLY', 'PUT', 'POST', 'DELETE'].includes(verb)) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    const [group, resource, subresource] = [label('group'), label('resource'), label('subresource')];
    if (group === 'sluice.dev' && resource === 'scaledobjects') add('ScaledObject status', value);
    // The HPA controller writes only the status subresource.
    if (resource === 'horizontalpodautoscalers' && subresource === '') add('HPA spec', value);
    // The HPA controller updates /scale (PUT); sluice patches it.
    if (subresource === 'scale' && verb === 'PATCH') add('/scale patch', value);
    if (resource === 'events' && group === 'events.k8s.io') add('events', value);
  }
  return counts;
}

/** sluice's own writes to the API server so far (the Lease's renewals aside). */
function writesOf(own: OwnMetrics): number {
  let n = 0;
  for (const [kind, count] of Object.entries(own.byResource)) {
    const [verb = '', resource = ''] = kind.split(' ');
    if (verb !== 'get' && verb !== 'list' && !resource.startsWith('coordination.k8s.io/')) n += count;
  }
  return n;
}

/**
 * Waits until sluice is at rest: at least 15 s, then until it has written nothing (but its Lease) for 10 s, at most
 * 5 minutes. What a mass create leaves behind (Events going out at their budget, status refreshes) is not "at rest".
 * Returns the seconds waited.
 */
async function settle(own: () => Promise<OwnMetrics>): Promise<number> {
  const started = performance.now();
  await sleep(15_000);
  let last = writesOf(await own());
  let quietSince = performance.now();
  while (performance.now() - quietSince < 10_000 && performance.now() - started < 300_000) {
    await sleep(1000);
    const now = writesOf(await own());
    if (now !== last) {
      last = now;
      quietSince = performance.now();
    }
  }
  return (performance.now() - started) / 1000;
}

interface OwnMetrics {
  heapMiB: number;
  /** Memory outside the V8 heap that V8 knows of (Buffers, ArrayBuffers). */
  externalMiB: number;
  requests: Record<string, number>;
  /** Requests by `verb resource`. */
  byResource: Record<string, number>;
  workqueue: number;
  leader: number;
}

/** From sluice's own /metrics: heap in use, external memory and its Kubernetes API requests so far, by verb. */
async function ownMetrics(port: number | undefined): Promise<OwnMetrics> {
  if (port === undefined) {
    return { heapMiB: NaN, externalMiB: NaN, requests: {}, byResource: {}, workqueue: NaN, leader: NaN };
  }
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let heapMiB = NaN;
  let externalMiB = NaN;
  let workqueue = NaN;
  let leader = NaN;
  const requests: Record<string, number> = {};
  const byResource: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.startsWith('sluice_nodejs_heap_size_used_bytes ')) heapMiB = value / 1048576;
    if (line.startsWith('sluice_nodejs_external_memory_bytes ')) externalMiB = value / 1048576;
    if (line.startsWith('sluice_workqueue_depth{')) workqueue = value;
    if (line.startsWith('sluice_leader_election_is_leader ')) leader = value;
    if (line.startsWith('sluice_kube_api_requests_total{')) {
      const verb = /verb="([^"]*)"/.exec(line)?.[1] ?? '';
      requests[verb] = (requests[verb] ?? 0) + value;
      byResource[`${verb} ${/resource="([^"]*)"/.exec(line)?.[1] ?? ''}`] = value;
    }
  }
  return { heapMiB, externalMiB, requests, byResource, workqueue, leader };
}

/**
 * Watches sluice's memory while a row runs: prints RSS, heap and external memory whenever RSS has grown by a quarter
 * since the last line (so a climb shows where it starts), and past `--max-rss` MiB writes a heap snapshot (with
 * `--profile`) and kills sluice rather than the machine. Returns a function that stops watching.
 */
function watchMemory(pid: number, port: number | undefined, startedAt: number): () => void {
  let shown = 0;
  let shownAt = 0;
  let killed = false;
  let last: { at: number; byResource: Record<string, number> } | undefined;
  const timer = setInterval(() => {
    void (async () => {
      let rss: number;
      try {
        rss = rssMiB(pid);
      } catch {
        return; // gone
      }
      const now = performance.now();
      if (rss < shown * 1.25 && rss < maxRssMiB && now - shownAt < 30_000) return;
      shown = rss;
      shownAt = now;
      const own = await ownMetrics(port).catch(() => undefined);
      const at = ((now - startedAt) / 1000).toFixed(0);
      // The three busiest kinds of Kubernetes API request since the last line, per second.
      const busiest =
        own === undefined || last === undefined
          ? ''
          : Object.entries(own.byResource)
              .map(
                ([kind, count]) =>
                  [kind, (count - (last?.byResource[kind] ?? 0)) / ((now - (last?.at ?? now)) / 1000)] as const,
              )
              .filter(([, rate]) => rate > 0)
              .sort((a, b) => b[1] - a[1])
              .slice(0, 3)
              .map(([kind, rate]) => `${kind} ${rate.toFixed(1)}/s`)
              .join(', ');
      if (own !== undefined) last = { at: now, byResource: own.byResource };
      console.log(
        `  [${at} s] RSS ${rss.toFixed(0)} MiB, heap ${own?.heapMiB.toFixed(0) ?? '?'} MiB, external ${own?.externalMiB.toFixed(0) ?? '?'} MiB, work queue ${own?.workqueue ?? '?'}, leader ${own?.leader ?? '?'}${busiest === '' ? '' : `; API: ${busiest}`}`,
      );
      if (rss >= maxRssMiB && !killed) {
        killed = true;
        console.log(
          `  RSS past --max-rss ${maxRssMiB} MiB: ${values.profile === undefined ? '' : 'heap snapshot, then '}kill`,
        );
        if (values.profile !== undefined) {
          process.kill(pid, 'SIGUSR2');
          await sleep(60_000);
        }
        process.kill(pid, 'SIGKILL');
      }
    })();
  }, 5000);
  return () => {
    clearInterval(timer);
  };
}

interface Result {
  objects: number;
  hpasMs?: number;
  readyMs?: number;
  /** How many were Ready when the 10-minute cap passed, if not all. */
  readyAtCap?: number;
  /** Seconds from Ready to the start of the footprint window (until sluice wrote nothing for 10 s). */
  settleS?: number;
  cpuMilli?: number;
  rssMiB?: number;
  heapMiB?: number;
  writesAtRest?: Record<string, number>;
  /** sluice's own Kubernetes API requests per second at rest, by verb. */
  apiPerSecondAtRest?: Record<string, number>;
  /** Requests to RabbitMQ's management API per second at rest (its access log), and per idle queue. */
  backendPerSecond?: number;
  backendPerQueuePerSecond?: number;
}

/**
 * Where RabbitMQ's management API access log stands (`management.http_log_dir`, one file per hour): the bytes of
 * each file. `requestsSince` counts the requests logged after such a mark.
 */
function accessLogMark(): Map<string, number> {
  const dir = path.join(env.logsDir, 'rabbitmq-http');
  return new Map(readdirSync(dir).map((file) => [file, statSync(path.join(dir, file)).size]));
}

function requestsSince(mark: ReadonlyMap<string, number>): number {
  const dir = path.join(env.logsDir, 'rabbitmq-http');
  let requests = 0;
  for (const file of readdirSync(dir)) {
    const text = readFileSync(path.join(dir, file))
      .subarray(mark.get(file) ?? 0)
      .toString('utf8');
    for (const line of text.split('\n')) if (line.includes('"GET /api/')) requests++;
  }
  return requests;
}

const results: Result[] = [];
const connection = await amqp.connect(env.rabbitmq.amqpUrl);
const channel = await connection.createChannel();

for (const n of scales) {
  console.log(`\n${n} ScaledObjects`);
  if (values.profile !== undefined) {
    mkdirSync(values.profile, { recursive: true });
    // The child inherits the environment at spawn.
    process.env['NODE_OPTIONS'] =
      `--cpu-prof --cpu-prof-dir=${values.profile} --heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${values.profile}`;
  }
  const sluice = await startSluice({
    logName: `sluice-bench-scale-${n}.log`,
    ...(launch.entry === undefined ? {} : { entry: launch.entry }),
    nodeOptions: launch.nodeOptions,
  });
  delete process.env['NODE_OPTIONS'];
  const pid = sluice.child.pid ?? 0;
  const stopWatching = watchMemory(pid, sluice.metricsPort, performance.now());
  const namespace = await createNamespace(kc, `bench-scale-${n}`);
  const kit = new ScalingTestKit(kc, namespace);
  const queue = (i: number): string => `${namespace}-q${i}`;
  const result: Result = { objects: n };
  try {
    await inBatches('queues', n, 64, async (i) => {
      await channel.assertQueue(queue(i), { durable: false });
    });
    await inBatches('Deployments', n, 32, async (i) => {
      await apps.createNamespacedDeployment({
        namespace,
        body: {
          metadata: { name: `w${i}` },
          spec: {
            replicas: 0,
            selector: { matchLabels: { app: `w${i}` } },
            template: {
              metadata: { labels: { app: `w${i}` } },
              spec: { containers: [{ name: 'worker', image: 'registry.invalid/worker:1' }] },
            },
          },
        },
      });
    });
    const started = performance.now();
    await inBatches('ScaledObjects', n, 32, async (i) => {
      await custom.createNamespacedCustomObject({
        group: 'sluice.dev',
        version: 'v1alpha1',
        plural: 'scaledobjects',
        namespace,
        body: {
          apiVersion: 'sluice.dev/v1alpha1',
          kind: 'ScaledObject',
          metadata: { name: `w${i}` },
          spec: {
            scaleTargetRef: { name: `w${i}` },
            minReplicaCount: 0,
            triggers: [
              {
                type: 'rabbitmq',
                metadata: { host: env.rabbitmq.managementUrl, queueName: queue(i), mode: 'QueueLength', value: '10' },
              },
            ],
          },
        },
      });
    });
    if (n > 0 && wants('reconcile')) {
      for (;;) {
        const hpas = (await autoscaling.listNamespacedHorizontalPodAutoscaler({ namespace })).items.length;
        if (hpas >= n) break;
        if (performance.now() - started > 600_000) throw new Error(`only ${hpas} of ${n} HPAs after 10 minutes`);
        await sleep(250);
      }
      result.hpasMs = performance.now() - started;
      console.log(`  ${n} HPAs in ${(result.hpasMs / 1000).toFixed(1)} s`);
      for (;;) {
        const list = (await custom.listNamespacedCustomObject({
          group: 'sluice.dev',
          version: 'v1alpha1',
          plural: 'scaledobjects',
          namespace,
        })) as { items: { status?: { conditions?: { type: string; status: string }[] } }[] };
        const ready = list.items.filter((so) =>
          so.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        ).length;
        if (ready >= n) {
          result.readyMs = performance.now() - started;
          console.log(`  all Ready in ${(result.readyMs / 1000).toFixed(1)} s`);
          break;
        }
        // The footprint is still measured: memory at 10,000 objects does not wait for every status.
        if (performance.now() - started > 600_000) {
          result.readyAtCap = ready;
          console.log(`  only ${ready} of ${n} Ready after 10 minutes; measuring the footprint anyway`);
          break;
        }
        await sleep(250);
      }
    }
    if (wants('footprint')) {
      const own = (): ReturnType<typeof ownMetrics> => ownMetrics(sluice.metricsPort);
      result.settleS = await settle(own);
      const before = { cpu: cpuSeconds(pid), at: performance.now(), writes: await writesSeen(kit), own: await own() };
      const logMark = accessLogMark();
      await sleep(windowS * 1000);
      result.backendPerSecond = requestsSince(logMark) / windowS;
      result.backendPerQueuePerSecond = n > 0 ? result.backendPerSecond / n : 0;
      const after = { cpu: cpuSeconds(pid), at: performance.now(), writes: await writesSeen(kit), own: await own() };
      result.heapMiB = after.own.heapMiB;
      result.apiPerSecondAtRest = Object.fromEntries(
        Object.entries(after.own.requests).map(([verb, value]) => [
          verb,
          Number(((value - (before.own.requests[verb] ?? 0)) / windowS).toFixed(2)),
        ]),
      );
      result.cpuMilli = ((after.cpu - before.cpu) / ((after.at - before.at) / 1000)) * 1000;
      result.rssMiB = rssMiB(pid);
      if (values.profile !== undefined) {
        process.kill(pid, 'SIGUSR2');
        await sleep(Math.max(5000, n * 20));
      }
      result.writesAtRest = Object.fromEntries(
        Object.entries(after.writes).map(([kind, value]) => [kind, value - (before.writes[kind] ?? 0)]),
      );
      console.log(
        `  at rest (after ${result.settleS.toFixed(0)} s of settling) over ${windowS} s: ${result.cpuMilli.toFixed(0)} mCPU, RSS ${result.rssMiB.toFixed(0)} MiB, heap ${result.heapMiB.toFixed(0)} MiB, writes ${JSON.stringify(result.writesAtRest)}, sluice's API requests/s ${JSON.stringify(result.apiPerSecondAtRest)}, RabbitMQ management requests/s ${result.backendPerSecond.toFixed(2)} (${result.backendPerQueuePerSecond.toExponential(1)} per queue)`,
      );
    }
  } finally {
    stopWatching();
    await sluice.stop();
    await inBatches('cleanup', n, 64, async (i) => {
      await channel.deleteQueue(queue(i)).catch(() => undefined);
    });
    await deleteNamespace(kc, namespace, 600_000).catch((err: unknown) => {
      console.log(`  (namespace ${namespace} not deleted yet: ${String(err)})`);
    });
  }
  results.push(result);
}
await connection.close();

const cell = (v: number | undefined, digits = 1): string => (v === undefined ? '—' : v.toFixed(digits));
console.log('\nsluice at scale (one run; pollingInterval 30, idle queues)\n');
console.log(
  'objects | → HPAs (s) | → Ready (s) | CPU at rest (mCPU) | RSS (MiB) | heap (MiB) | writes at rest | backend req/s per queue',
);
console.log(
  '--------|-----------|-------------|--------------------|-----------|------------|----------------|------------------------',
);
for (const r of results) {
  const writes = r.writesAtRest === undefined ? '—' : String(Object.values(r.writesAtRest).reduce((a, b) => a + b, 0));
  console.log(
    `${String(r.objects).padStart(7)} | ${cell(r.hpasMs && r.hpasMs / 1000).padStart(9)} | ${cell(r.readyMs && r.readyMs / 1000).padStart(11)} | ${cell(r.cpuMilli, 0).padStart(18)} | ${cell(r.rssMiB, 0).padStart(9)} | ${cell(r.heapMiB, 0).padStart(10)} | ${writes.padStart(14)} | ${r.backendPerQueuePerSecond === undefined ? '—' : r.backendPerQueuePerSecond.toPrecision(2)}`,
  );
}
mkdirSync(path.dirname(values.json), { recursive: true });
writeFileSync(values.json, `${JSON.stringify({ at: new Date().toISOString(), process: launch, results }, null, 2)}\n`);
console.log(`\nJSON: ${path.relative(REPO_ROOT, values.json)}`);
