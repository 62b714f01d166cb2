// The local test environment started by scripts/env/up.sh (`npm run env:up`), as described by .sluice-env/env.json,
// plus small helpers for integration tests: polling, unique names, Kubernetes namespaces, the RabbitMQ management API
// and Prometheus scrape targets and queries.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiException, CoreV1Api, KubeConfig } from '@kubernetes/client-node';

export const REPO_ROOT = path.resolve(import.meta.dirname, '../..');
export const ENV_FILE = path.join(REPO_ROOT, '.sluice-env', 'env.json');

export interface TestEnv {
  /** Short hash of the checkout path; every process of the environment has SLUICE_ENV_ID=<id> in its environment. */
  id: string;
  stateDir: string;
  /** One log file per component: etcd.log, kube-apiserver.log, rabbitmq.log, ... */
  logsDir: string;
  /** Admin kubeconfig (CN=admin, O=system:masters), credentials embedded. */
  kubeconfig: string;
  /** kube-apiserver URL, e.g. https://127.0.0.1:20002 */
  apiserver: string;
  pki: {
    /** Cluster CA: signs the apiserver serving cert and client certs; tests may sign serving certs with it. */
    caCert: string;
    caKey: string;
    adminCert: string;
    adminKey: string;
    /** kube-apiserver's --requestheader-client-ca-file: an aggregated server trusts X-Remote-* only under it. */
    frontProxyCaCert: string;
    /** What kube-apiserver presents to aggregated servers (CN=front-proxy-client); lets a test act as the aggregator. */
    frontProxyClientCert: string;
    frontProxyClientKey: string;
  };
  rabbitmq: {
    /** amqp://guest:guest@127.0.0.1:<port> */
    amqpUrl: string;
    /** http://guest:guest@127.0.0.1:<port>; fetch() refuses URLs with credentials: use rabbitmqApi(). */
    managementUrl: string;
  };
  sqs: {
    /** moto server; always pass it as the SDK's endpoint. */
    endpoint: string;
    region: string;
    accessKeyId: string;
    secretAccessKey: string;
  };
  prometheus: {
    url: string;
    /** file_sd directory: see addScrapeTarget(). */
    targetsDir: string;
  };
  /** The metrics API port of the `sluice operator --local` under test (test/support/sluice.ts startSluice). */
  sluice: { port: number };
  ports: Record<
    | 'etcdClient'
    | 'etcdPeer'
    | 'kubeApiserver'
    | 'kubeControllerManager'
    | 'amqp'
    | 'rabbitmqManagement'
    | 'erlangDistribution'
    | 'epmd'
    | 'moto'
    | 'prometheus'
    | 'sluice',
    number
  >;
  /** Recorded server processes (rabbitmq is the wrapper script, rabbitmq-beam its Erlang VM). */
  pids: Record<
    | 'etcd'
    | 'kube-apiserver'
    | 'kube-controller-manager'
    | 'rabbitmq'
    | 'rabbitmq-beam'
    | 'epmd'
    | 'moto'
    | 'prometheus',
    number
  >;
}

let cached: TestEnv | undefined;

/** Reads .sluice-env/env.json (once per process). Throws with a hint when the environment is not up. */
export function loadTestEnv(): TestEnv {
  if (cached) return cached;
  let text: string;
  try {
    text = readFileSync(ENV_FILE, 'utf8');
  } catch {
    throw new Error(`The test environment is not up (${ENV_FILE} is missing): run \`npm run env:up\``);
  }
  const env = JSON.parse(text) as Partial<TestEnv>;
  if (typeof env.kubeconfig !== 'string' || env.pids === undefined || env.ports === undefined) {
    throw new Error(`${ENV_FILE} is incomplete: run \`npm run env:up\` again`);
  }
  cached = env as TestEnv;
  return cached;
}

/** A KubeConfig for the environment's admin user. */
export function kubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(loadTestEnv().kubeconfig);
  return kc;
}

export interface WaitOptions {
  /** Default 10 000. */
  timeoutMs?: number;
  /** Default 200. */
  intervalMs?: number;
  /** What was awaited, for the timeout error. */
  message?: string;
}

/**
 * Polls `probe` until it returns something other than undefined, null or false, and returns that. A probe that throws
 * (e.g. a failing `expect`) counts as "not yet"; on timeout the last error or value is part of the thrown error.
 */
export async function waitFor<T>(
  probe: () => T | Promise<T>,
  { timeoutMs = 10_000, intervalMs = 200, message = 'condition' }: WaitOptions = {},
): Promise<Exclude<T, undefined | null | false>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== null && value !== false)
        return value as Exclude<T, undefined | null | false>;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() >= deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${message}; last: ${detail}`, { cause: last });
    }
    await sleep(intervalMs);
  }
}

/** `<prefix>-<time><random>`, lower case, a valid DNS-1123 label (Kubernetes names, queue names, label values). */
export function uniqueName(prefix: string): string {
  const suffix = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const head = prefix
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .slice(0, 62 - suffix.length);
  return `${head}-${suffix}`;
}

/** Creates a namespace with a unique name and returns the name. */
export async function createNamespace(kc: KubeConfig, prefix: string): Promise<string> {
  const name = uniqueName(prefix);
  await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name } } });
  return name;
}

/**
 * Deletes a namespace and waits until the namespace controller has removed it (and so everything in it). A namespace
 * that does not exist is fine.
 */
export async function deleteNamespace(kc: KubeConfig, name: string, timeoutMs = 60_000): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  const isNotFound = (error: unknown) => error instanceof ApiException && error.code === 404;
  try {
    await core.deleteNamespace({ name });
  } catch (error) {
    if (isNotFound(error)) return;
    throw error;
  }
  await waitFor(
    async () => {
      try {
        await core.readNamespace({ name });
        return false;
      } catch (error) {
        if (isNotFound(error)) return true;
        throw error;
      }
    },
    { timeoutMs, intervalMs: 250, message: `namespace ${name} to be deleted` },
  );
}

/**
 * A request to the RabbitMQ management HTTP API, e.g. `rabbitmqApi('/api/queues/%2F/q')`, with the credentials of
 * env.rabbitmq.managementUrl sent as a Basic Authorization header.
 */
export async function rabbitmqApi(apiPath: string, init: RequestInit = {}): Promise<Response> {
  const url = new URL(loadTestEnv().rabbitmq.managementUrl);
  const auth = Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString(
    'base64',
  );
  url.username = '';
  url.password = '';
  const headers = new Headers(init.headers);
  headers.set('authorization', `Basic ${auth}`);
  return fetch(new URL(apiPath, url), { ...init, headers });
}

/**
 * Makes Prometheus scrape `targets` (host:port, path /metrics; a `__metrics_path__` label overrides the path) with
 * extra target `labels`, by writing a file_sd file into env.prometheus.targetsDir. The first scrape comes ~5 to 10 s
 * later (Prometheus applies target changes on a 5 s tick). Returns a function that removes the target again.
 */
export async function addScrapeTarget(
  targets: string[],
  labels: Record<string, string> = {},
): Promise<() => Promise<void>> {
  const dir = loadTestEnv().prometheus.targetsDir;
  const file = path.join(dir, `${uniqueName('target')}.json`);
  // Written under a name the *.json glob does not match, then renamed: Prometheus never sees half a file.
  await writeFile(`${file}.tmp`, JSON.stringify([{ targets, labels }]));
  await rename(`${file}.tmp`, file);
  return () => rm(file, { force: true });
}

export interface PromSample {
  metric: Record<string, string>;
  /** [unix seconds, value as a string] */
  value: [number, string];
}

/** Runs an instant PromQL query and returns its vector (throws on a query error or a non-vector result). */
export async function queryPrometheus(query: string): Promise<PromSample[]> {
  const url = new URL('/api/v1/query', loadTestEnv().prometheus.url);
  url.searchParams.set('query', query);
  const response = await fetch(url);
  const body = (await response.json()) as {
    status: string;
    error?: string;
    data?: { resultType: string; result: PromSample[] };
  };
  if (body.status !== 'success' || body.data?.resultType !== 'vector') {
    throw new Error(`Prometheus query ${query} failed: ${body.error ?? JSON.stringify(body)}`);
  }
  return body.data.result;
}

/**
 * Runs scripts/env/up.sh, which starts what is not running (after a test stopped kube-apiserver, or to replace it with
 * other flags). env.json stays meanwhile (`SLUICE_ENV_KEEP_ENV_JSON`), so a test run starting now does not take the
 * environment for one it brought up.
 */
export function runEnvUp(): Promise<{ code: number | null; output: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [path.join(REPO_ROOT, 'scripts/env/up.sh')], {
      cwd: REPO_ROOT,
      env: { ...process.env, SLUICE_ENV_KEEP_ENV_JSON: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 240_000,
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      resolve({ code, output, ms: Date.now() - started });
    });
  });
}

/** Whether `pid` runs (a zombie does not: nothing reaps it where the process that started it is gone). */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Kills kube-apiserver with SIGKILL, as a crash would, and waits until it is gone (`runEnvUp()` starts it again). */
export async function killApiserver(): Promise<void> {
  const env = loadTestEnv();
  const pid = Number(readFileSync(path.join(env.stateDir, 'run', 'kube-apiserver.pid'), 'utf8').trim());
  process.kill(pid, 'SIGKILL');
  await waitFor(() => !processAlive(pid), { timeoutMs: 30_000, message: 'kube-apiserver to stop' });
}
