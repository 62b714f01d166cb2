// Runs `sluice operator --local` as a child process against the test environment, as a user would, and waits until
// kube-apiserver reports the external-metrics APIService Available. Used by the e2e tests and `npm run demo`.
import { spawn, type ChildProcess } from 'node:child_process';
import { hostname } from 'node:os';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { once } from 'node:events';
import path from 'node:path';
import { ApiregistrationV1Api, CoordinationV1Api } from '@kubernetes/client-node';
import { REPO_ROOT, kubeConfig, loadTestEnv, waitFor } from './env.ts';

export interface SluiceProcess {
  readonly child: ChildProcess;
  readonly port: number;
  /** Where its own /metrics listens (http://127.0.0.1:<metricsPort>/metrics); undefined when turned off. */
  readonly metricsPort: number | undefined;
  readonly logFile: string;
  /** Its identity in the leader-election Lease (src/main.ts: host and port with --local). */
  readonly identity: string;
  stop(): Promise<void>;
}

/** The leader-election Lease of `sluice operator` (src/main.ts). */
export const LEASE = { namespace: 'sluice-system', name: 'sluice-operator' };

/** Who holds the Lease now ('' once released, undefined before any replica made it). */
export async function leaseHolder(): Promise<string | undefined> {
  try {
    const lease = await kubeConfig().makeApiClient(CoordinationV1Api).readNamespacedLease(LEASE);
    return lease.spec?.holderIdentity ?? '';
  } catch {
    return undefined;
  }
}

/**
 * Only one metrics server can own the cluster's external-metrics APIService, so only one `sluice operator --local`
 * runs against the environment at a time. The lock is a directory holding the owner's PID; a dead owner's lock is
 * taken over.
 */
async function acquireLock(dir: string, timeoutMs: number): Promise<() => Promise<void>> {
  const pidFile = path.join(dir, 'pid');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await mkdir(dir);
      await writeFile(pidFile, String(process.pid));
      return () => rm(dir, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number(await readFile(pidFile, 'utf8').catch(() => ''));
    let alive = false;
    if (Number.isInteger(owner) && owner > 0) {
      try {
        process.kill(owner, 0);
        alive = true;
      } catch {
        alive = false;
      }
    }
    if (!alive && owner > 0) {
      await rm(dir, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`another sluice test run (pid ${owner}) holds ${dir}`);
    await sleep(500);
  }
}

export interface StartOptions {
  readonly logName?: string;
  readonly extraArgs?: string[];
  /**
   * A second replica next to the one holding the lock (leader-election tests): it listens on `port`, registers the
   * APIService to itself, and does not wait to lead. Default: the only sluice, on the environment's port, leading.
   */
  readonly secondary?: { readonly port: number };
  /**
   * The port of its own /metrics (`--metrics-port`), 0 for none. Default: the environment's reserved port base+15
   * (scripts/env/lib.sh) for the only sluice, none for a secondary — never sluice's default 8080, which another
   * checkout's run or a developer's own service may hold.
   */
  readonly metricsPort?: number;
  /** The kubeconfig sluice uses (e.g. one whose server is a proxy in front of kube-apiserver). Default: the env's. */
  readonly kubeconfig?: string;
  /** `sluice serve --config <file>` instead of `sluice operator` (no Lease, no /metrics of its own). */
  readonly serveConfig?: string;
  /**
   * What Node runs: default `src/main.ts` (type-stripped on load). The benches run the built `dist/main.js`, as the
   * image does: Node's type stripping alone adds about 30 MiB of RSS to the process.
   */
  readonly entry?: string;
  /** Node's own flags before the entry (the benches pass the deployment's NODE_OPTIONS). */
  readonly nodeOptions?: readonly string[];
}

/** The environment's port reserved for the /metrics of the `sluice operator --local` under test (lib.sh: base+15). */
export function metricsPortOf(env: { readonly ports: { readonly etcdClient: number } }): number {
  return env.ports.etcdClient + 15;
}

export async function startSluice(options: StartOptions = {}): Promise<SluiceProcess> {
  const env = loadTestEnv();
  const port = options.secondary?.port ?? env.sluice.port;
  const identity = `${hostname()}_${port}`;
  const serving = options.serveConfig !== undefined;
  const metricsPort = serving ? 0 : (options.metricsPort ?? (options.secondary === undefined ? metricsPortOf(env) : 0));
  const release =
    options.secondary === undefined
      ? await acquireLock(path.join(env.stateDir, 'run', 'sluice.lock'), 600_000)
      : () => Promise.resolve();
  const logFile = path.join(env.logsDir, options.logName ?? 'sluice.log');
  const log = createWriteStream(logFile, { flags: 'a' });
  await once(log, 'open');
  const child = spawn(
    process.execPath,
    [
      ...(options.nodeOptions ?? []),
      options.entry ?? path.join(REPO_ROOT, 'src/main.ts'),
      ...(serving ? ['serve', '--config', options.serveConfig ?? ''] : ['operator']),
      '--local',
      '--port',
      String(port),
      ...(serving ? [] : ['--metrics-port', String(metricsPort)]),
      ...(options.extraArgs ?? []),
    ],
    { env: { ...process.env, KUBECONFIG: options.kubeconfig ?? env.kubeconfig }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  let exited: number | null | undefined;
  const exit = once(child, 'exit').then(([code]) => {
    exited = code as number | null;
  });

  const registration = kubeConfig().makeApiClient(ApiregistrationV1Api);
  const available = waitFor(
    async () => {
      const svc = await registration.readAPIService({ name: 'v1beta1.external.metrics.k8s.io' });
      if (svc.spec?.service?.port !== port) return false;
      if (svc.status?.conditions?.some((c) => c.type === 'Available' && c.status === 'True') !== true) return false;
      // The only replica leads before objects are made (the one before it released the Lease, or had its name).
      const elects = !(options.extraArgs ?? []).includes('--leader-elect=false');
      return serving || options.secondary !== undefined || !elects || (await leaseHolder()) === identity;
    },
    {
      timeoutMs: 60_000,
      intervalMs: 250,
      message: `the external-metrics APIService to become Available at port ${port} and sluice to lead (log: ${logFile})`,
    },
  );
  const crashed = exit.then(() => {
    throw new Error(`sluice exited with code ${String(exited)} before it was ready; see ${logFile}`);
  });
  crashed.catch(() => undefined); // observed through the race below; later exits are expected
  try {
    await Promise.race([available, crashed]);
  } catch (err) {
    child.kill('SIGKILL');
    await release();
    throw err;
  }

  return {
    child,
    port,
    metricsPort: metricsPort === 0 ? undefined : metricsPort,
    logFile,
    identity,
    async stop() {
      if (exited === undefined) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exit;
        clearTimeout(timer);
      }
      log.end();
      await release();
    },
  };
}

/** The text of sluice's own /metrics (`metricsPort`). */
export async function scrapeOwnMetrics(metricsPort: number | undefined): Promise<string> {
  if (metricsPort === undefined) throw new Error('this sluice serves no /metrics');
  const response = await fetch(`http://127.0.0.1:${String(metricsPort)}/metrics`);
  if (response.status !== 200) throw new Error(`/metrics answered ${String(response.status)}`);
  return response.text();
}

/** `sluice_kube_api_requests_total{verb, resource}` in an exposition of sluice's /metrics (0 when absent). */
export function kubeRequestCount(exposition: string, verb: string, resource: string): number {
  const match = new RegExp(`\\nsluice_kube_api_requests_total\\{verb="${verb}",resource="${resource}"\\} (\\d+)`).exec(
    exposition,
  );
  return Number(match?.[1] ?? 0);
}
