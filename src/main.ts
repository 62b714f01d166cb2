#!/usr/bin/env node
/**
 * The composition root: reads the configuration, builds every part, and wires them. One process hosts the
 * operator (reconcile + scaling loops) and the external-metrics API; they share nothing but the MetricStore.
 */
import { apiClient } from './kube-client.ts';
import { hostname } from 'node:os';
import path from 'node:path';
import { AuthorizationV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { USAGE, parseConfig, type OperatorConfig } from './config.ts';
import { ConfigError, describeError } from './errors.ts';
import { createServingCert, installCrds, registerApiService, unregisterApiService } from './local-dev.ts';
import { createLogger } from './log.ts';
import { MAX_METRIC_NAME_LENGTH, MetricStore } from './metric-store.ts';
import { createController } from './operator/controller.ts';
import { createAuthResolver, createKubeAuthPort } from './operator/auth-resolver.ts';
import { createEventRecorder, createKubeEventsPort } from './operator/events.ts';
import { createClusterPort, createKubePort } from './operator/kube.ts';
import { createReconciler } from './operator/reconcile.ts';
import { ScalingRegistry } from './operator/scaling-registry.ts';
import { ReaderHub } from './scalers/readers.ts';
import { SharedPool } from './scalers/shared.ts';
import { buildServer } from './server/app.ts';
import { createSarAuthorizer } from './server/authorizer.ts';
import { createFrontProxyAuthenticator, frontProxyTlsOptions, loadRequestHeaderConfig } from './server/front-proxy.ts';
import packageJson from '../package.json' with { type: 'json' };

const CRD_DIR = path.resolve(import.meta.dirname, '../crds');

async function runOperator(config: OperatorConfig): Promise<void> {
  const log = createLogger({ level: config.logLevel, component: 'operator' });
  const kc = new KubeConfig();
  if (config.kubeconfig !== undefined) kc.loadFromFile(config.kubeconfig);
  else kc.loadFromDefault();
  log('info', `sluice ${packageJson.version} starting`, {
    apiserver: kc.getCurrentCluster()?.server,
    local: config.local,
  });

  // Outside a cluster sluice makes its own serving certificate; with --tls-* files and --local the certificate
  // itself must be what the APIService trusts (self-signed).
  const serving = config.tls ? { ...config.tls, ca: config.tls.cert } : await createServingCert();
  if (config.local) await installCrds(kc, CRD_DIR);

  const requestHeader = await loadRequestHeaderConfig(apiClient(kc, CoreV1Api));
  const store = new MetricStore();
  // Created first, started last: the reconciler reads the informers' cache, which exists from here on.
  const controller = createController({ kc, log, concurrency: config.concurrency });

  const app = buildServer({
    store,
    authenticate: createFrontProxyAuthenticator(requestHeader),
    authorize: createSarAuthorizer({ api: apiClient(kc, AuthorizationV1Api) }),
    ready: () => controller.synced(),
    logger: { level: config.logLevel },
    https: frontProxyTlsOptions(requestHeader, serving),
    maxMetricNameLength: MAX_METRIC_NAME_LENGTH,
  });
  await app.listen({ host: config.bindAddress, port: config.port });

  const shared = new SharedPool({
    onDisposeError: (key, err) => {
      log('warn', 'closing a shared connection failed', { resource: key.split('|')[0], error: describeError(err) });
    },
  });
  const hub = new ReaderHub({ intervalMs: config.readIntervalMs, shared, log });
  const events = createEventRecorder({
    port: createKubeEventsPort(kc),
    reportingController: 'sluice.dev/operator',
    reportingInstance: hostname().slice(0, 128),
    log,
  });
  const kube = createKubePort(kc);
  const registry = new ScalingRegistry({
    hub,
    store,
    kube,
    events,
    log,
    onChange: (key) => {
      controller.enqueue(key);
    },
  });
  const reconciler = createReconciler({
    kube,
    auth: createAuthResolver(createKubeAuthPort(kc), { clusterObjectNamespace: config.clusterObjectNamespace }),
    cluster: createClusterPort(kc),
    runtime: registry,
    events,
    cache: controller.scaledObjects,
    log,
  });
  await controller.start((key) => reconciler.reconcile(key));
  // Registered once the informers have listed (and the server listens): the aggregator's first availability check
  // passes at once, and no HPA asks for metrics of objects sluice has not seen yet.
  if (config.local) await registerApiService(kc, config.port, serving.ca);
  log('info', 'sluice is running', {
    metricsApi: `https://${config.bindAddress}:${config.port}`,
    readInterval: `${config.readIntervalMs} ms`,
  });

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log('info', `${signal}: shutting down`);
    const timer = setTimeout(() => {
      log('error', 'shutdown took longer than 20 s; exiting');
      process.exit(1);
    }, 20_000);
    timer.unref();
    void (async () => {
      if (config.local) await unregisterApiService(kc);
      await controller.stop();
      await registry.stopAll();
      await hub.close();
      await events.stop();
      await app.close();
      process.exit(0);
    })();
  };
  process.on('SIGTERM', () => {
    shutdown('SIGTERM');
  });
  process.on('SIGINT', () => {
    shutdown('SIGINT');
  });
}

async function main(): Promise<void> {
  const config = parseConfig(process.argv.slice(2));
  switch (config.command) {
    case 'help':
      process.stdout.write(USAGE);
      return;
    case 'version':
      process.stdout.write(`${packageJson.version}\n`);
      return;
    case 'operator':
      await runOperator(config);
  }
}

main().catch((err: unknown) => {
  const message = err instanceof ConfigError ? err.message : describeError(err);
  process.stderr.write(`sluice: ${message}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
