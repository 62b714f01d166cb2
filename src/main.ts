#!/usr/bin/env node
/**
 * The composition root: reads the configuration, builds every part, and wires them. One process hosts the
 * operator (reconcile + scaling loops) and the external-metrics API; they share nothing but the MetricStore.
 */
import path from 'node:path';
import { AuthorizationV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { USAGE, parseConfig, type OperatorConfig } from './config.ts';
import { ConfigError, describeError } from './errors.ts';
import { createServingCert, installCrds, registerApiService, unregisterApiService } from './local-dev.ts';
import { createLogger } from './log.ts';
import { MetricStore } from './metric-store.ts';
import { startController, type Controller } from './operator/controller.ts';
import { createAuthResolver, createKubeAuthPort } from './operator/auth-resolver.ts';
import { createClusterPort, createKubePort } from './operator/kube.ts';
import { createReconciler } from './operator/reconcile.ts';
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

  const requestHeader = await loadRequestHeaderConfig(kc.makeApiClient(CoreV1Api));
  const store = new MetricStore();
  // The controller is created last (its informers need the reconciler); until then these read as empty.
  const late: { controller?: Controller } = {};

  const app = buildServer({
    store,
    authenticate: createFrontProxyAuthenticator(requestHeader),
    authorize: createSarAuthorizer({ api: kc.makeApiClient(AuthorizationV1Api) }),
    ready: () => late.controller?.synced() ?? false,
    logger: { level: config.logLevel },
    https: frontProxyTlsOptions(requestHeader, serving),
  });
  // Listen before registering the APIService: the aggregator's first availability check then passes at once.
  await app.listen({ host: config.bindAddress, port: config.port });
  if (config.local) await registerApiService(kc, config.port, serving.ca);

  const reconciler = createReconciler({
    kube: createKubePort(kc),
    auth: createAuthResolver(createKubeAuthPort(kc), { clusterObjectNamespace: config.clusterObjectNamespace }),
    cluster: createClusterPort(kc),
    store,
    cache: {
      get: (name, namespace) => late.controller?.scaledObjects.get(name, namespace),
      list: (namespace) => late.controller?.scaledObjects.list(namespace) ?? [],
    },
    log,
    enqueue: (key) => late.controller?.enqueue(key),
  });
  const controller = await startController({
    kc,
    reconcile: (key) => reconciler.reconcile(key),
    log,
    concurrency: config.concurrency,
  });
  late.controller = controller;
  log('info', 'sluice is running', { metricsApi: `https://${config.bindAddress}:${config.port}` });

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
      await reconciler.stopAll();
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
