// A real prometheus-adapter (sigs.k8s.io/prometheus-adapter, built from its Go module by
// scripts/env/build-prometheus-adapter.sh) on 127.0.0.1, reading the test environment's Prometheus with one
// `externalRules` entry: the second external-metrics adapter behind sluice's proxy mode (test/integration/proxy-e2e,
// bench/proxy.ts). It authenticates callers as any aggregated API server does: the front-proxy client certificate
// and identity headers, with the requestheader settings it reads from the cluster (kube-system/
// extension-apiserver-authentication), and authorizes them with SubjectAccessReviews.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { once } from 'node:events';

import { REPO_ROOT, loadTestEnv, waitFor } from './env.ts';
import {
  CA_EXTENSIONS,
  CLIENT_EXTENSIONS,
  makePki,
  SERVER_EXTENSIONS,
  type KeyPair,
} from '../unit/server/tls-support.ts';

/** Builds the adapter (or finds it in the cache) and returns its path; a cold build takes minutes and shows progress. */
export async function buildPrometheusAdapter(): Promise<string> {
  const child = spawn('bash', [path.join(REPO_ROOT, 'scripts/env/build-prometheus-adapter.sh')], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const [code] = (await once(child, 'close')) as [number | null];
  if (code !== 0) throw new Error(`scripts/env/build-prometheus-adapter.sh failed (exit ${String(code)})`);
  return out.trim();
}

/** The TLS material around the adapter and sluice's proxy mode, as files (sluice and the adapter read files). */
export interface ProxyPki {
  readonly dir: string;
  /** The CA of the adapter's serving certificate: sluice's --proxy-ca-file. */
  readonly adapterCaFile: string;
  readonly adapterCertFile: string;
  readonly adapterKeyFile: string;
  /** sluice's client certificate, issued from the cluster's front-proxy CA (CN front-proxy-client). */
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  readonly client: KeyPair;
  readonly adapterCa: KeyPair;
  cleanup(): Promise<void>;
}

/**
 * Issues the adapter a serving certificate (127.0.0.1, from a CA of its own) and sluice a client certificate from
 * the environment's front-proxy CA, as docs/deploy.md#proxy-mode tells a user to (openssl, CN front-proxy-client,
 * clientAuth).
 */
export async function makeProxyPki(): Promise<ProxyPki> {
  const env = loadTestEnv();
  const pki = makePki();
  const adapterCa = pki.issue('adapter-ca', '/CN=prometheus-adapter-ca', CA_EXTENSIONS);
  const serving = pki.issue('adapter', '/CN=prometheus-adapter', SERVER_EXTENSIONS, 'adapter-ca');
  const frontProxyCa = env.pki.frontProxyCaCert.replace(/\.crt$/, '');
  const client = pki.issue('sluice-proxy-client', '/CN=front-proxy-client', CLIENT_EXTENSIONS, frontProxyCa);
  const dir = await mkdtemp(path.join(tmpdir(), 'sluice-proxy-'));
  const write = async (name: string, text: string) => {
    const file = path.join(dir, name);
    await writeFile(file, text, { mode: 0o600 });
    return file;
  };
  const files = {
    adapterCaFile: await write('adapter-ca.crt', adapterCa.cert),
    adapterCertFile: await write('adapter.crt', serving.cert),
    adapterKeyFile: await write('adapter.key', serving.key),
    clientCertFile: await write('client.crt', client.cert),
    clientKeyFile: await write('client.key', client.key),
  };
  pki.cleanup();
  return {
    dir,
    ...files,
    client,
    adapterCa,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

export interface AdapterProcess {
  readonly url: string;
  readonly port: number;
  readonly logFile: string;
  readonly child: ChildProcess;
  /** SIGTERM, then waits for it to exit (SIGKILL after 10 s). */
  stop(): Promise<void>;
}

export interface StartAdapterOptions {
  readonly binary: string;
  readonly pki: ProxyPki;
  readonly port: number;
  /** prometheus-adapter's configuration (YAML: `externalRules` etc.). */
  readonly config: string;
  readonly logName: string;
}

/** Starts the adapter and waits until it answers `/healthz`. */
export async function startPrometheusAdapter(options: StartAdapterOptions): Promise<AdapterProcess> {
  const env = loadTestEnv();
  const configFile = path.join(options.pki.dir, 'adapter-config.yaml');
  await writeFile(configFile, options.config);
  const logFile = path.join(env.logsDir, options.logName);
  const log = createWriteStream(logFile, { flags: 'a' });
  await once(log, 'open');
  const child = spawn(
    options.binary,
    [
      `--secure-port=${String(options.port)}`,
      '--bind-address=127.0.0.1',
      `--tls-cert-file=${options.pki.adapterCertFile}`,
      `--tls-private-key-file=${options.pki.adapterKeyFile}`,
      `--lister-kubeconfig=${env.kubeconfig}`,
      `--authentication-kubeconfig=${env.kubeconfig}`,
      `--authorization-kubeconfig=${env.kubeconfig}`,
      `--prometheus-url=${env.prometheus.url}`,
      `--config=${configFile}`,
      // Series appear within a second (the default re-lists every 10 minutes)...
      '--metrics-relist-interval=1s',
      // ...and stay listed while they had a sample in the last minute. The default max age is the relist interval:
      // with 1 s, a series whose last scrape (every 1 s) came a moment over a second ago drops out of a relist, and
      // the adapter answers 404 for it until the next one (bench/proxy.ts saw hundreds under load).
      '--metrics-max-age=60s',
      '--v=2',
    ],
    // The environment's marker: scripts/env/down.sh stops a leftover of a killed test run.
    { env: { ...process.env, SLUICE_ENV_ID: env.id }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  let exited = false;
  const exit = once(child, 'exit').then(() => {
    exited = true;
  });
  const url = `https://127.0.0.1:${String(options.port)}`;
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(timer);
    }
    log.end();
  };
  try {
    await waitFor(
      async () => {
        if (exited) throw new Error(`prometheus-adapter exited; see ${logFile}`);
        return (await healthz(url, options.pki.adapterCa.cert)) === 200;
      },
      { timeoutMs: 60_000, intervalMs: 250, message: `prometheus-adapter to answer /healthz (log: ${logFile})` },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, port: options.port, logFile, child, stop };
}

function healthz(url: string, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/healthz`, { ca, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * prometheus-adapter's configuration for one external metric: the gauge `metric`, in the namespace its series' own
 * `namespace` label names (the scrape target's label), summed by `queue` (so `queue=…` selects one).
 */
export function externalRule(metric: string): string {
  return [
    'externalRules:',
    `  - seriesQuery: '{__name__="${metric}",namespace!=""}'`,
    '    resources: { overrides: { namespace: { resource: namespace } } }',
    '    metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (queue)',
    '',
  ].join('\n');
}

/** The flags of `sluice operator` that put this adapter behind it (proxy mode). */
export function proxyFlags(adapter: Pick<AdapterProcess, 'url'>, pki: ProxyPki): string[] {
  return [
    `--proxy-to=${adapter.url}`,
    `--proxy-ca-file=${pki.adapterCaFile}`,
    `--proxy-client-cert-file=${pki.clientCertFile}`,
    `--proxy-client-key-file=${pki.clientKeyFile}`,
  ];
}
