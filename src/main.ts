#!/usr/bin/env node
/**
 * The composition root: reads the configuration, builds every part, and wires them. One process hosts the
 * operator (reconcile + scaling loops) and the external-metrics API; they share nothing but the MetricStore.
 */
import { apiClient, kubeRequests } from './kube-client.ts';
import { hostname } from 'node:os';
import path from 'node:path';
import { AuthorizationV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { runServe } from './cli/serve.ts';
import { USAGE, parseConfig, type OperatorConfig } from './config.ts';
import { ConfigError, describeError } from './errors.ts';
import {
  APISERVICE_NAME,
  createServingCert,
  ensureNamespace,
  installCrds,
  registerApiService,
  unregisterApiService,
} from './local-dev.ts';
import { createLogger } from './log.ts';
import type { CliIo } from './cli/documents.ts';
import { runSimulate } from './cli/simulate.ts';
import { runValidate } from './cli/validate.ts';
import { text as readAll } from 'node:stream/consumers';
import { NO_DEMAND, type MetricDemand } from './metric-demand.ts';
import { MAX_METRIC_NAME_LENGTH, MetricStore } from './metric-store.ts';
import { createController } from './operator/controller.ts';
import { createWorkloadCache } from './operator/workloads.ts';
import { createAuthResolver, createKubeAuthPort } from './operator/auth-resolver.ts';
import { sharedReads } from './operator/auth-cache.ts';
import { createEventRecorder, createKubeEventsPort } from './operator/events.ts';
import { createCertificateManager, type CertificateManager } from './operator/certificate-manager.ts';
import {
  createCaBundlePort,
  createCertificateSecretPort,
  createClusterPort,
  createKubePort,
  createLeasePort,
} from './operator/kube.ts';
import { createLeaderElector, type LeaderElector } from './operator/leader.ts';
import { createReconciler } from './operator/reconcile.ts';
import { createMetricSourceController } from './operator/metric-source-controller.ts';
import { MetricSourceRegistry } from './operator/metric-sources.ts';
import { ScalingRegistry } from './operator/scaling-registry.ts';
import { installOutboundGuard } from './outbound.ts';
import { ReaderHub } from './scalers/readers.ts';
import { SharedPool } from './scalers/shared.ts';
import { buildServer, tlsServerOf } from './server/app.ts';
import { createSarAuthorizer } from './server/authorizer.ts';
import { createServerTls, watchServingCertificate } from './server/certificates.ts';
import { storeOwns } from './server/external-metrics.ts';
import { createFrontProxyAuthenticator, frontProxyTlsOptions, loadRequestHeaderConfig } from './server/front-proxy.ts';
import { createUpstream, watchClientCertificate } from './server/proxy.ts';
import { createKubeAuthenticationSource, watchRequestHeaderConfig } from './server/requestheader-watch.ts';
import { startMetricsServer, type MetricsServer } from './telemetry/metrics-server.ts';
import { watchStalls } from './telemetry/stall-watch.ts';
import { OwnMetrics } from './telemetry/own-metrics.ts';
import { ownMetricsSources } from './telemetry/sources.ts';
import { servingNames } from './pki.ts';
import { runExplain } from './cli/explain.ts';
import packageJson from '../package.json' with { type: 'json' };

const CRD_DIR = path.resolve(import.meta.dirname, '../crds');
/** The Lease the replicas elect a leader on (KEDA's is `operator.keda.sh`). */
const LEASE_NAME = 'sluice-operator';

async function runOperator(config: OperatorConfig): Promise<void> {
  const log = createLogger({ level: config.logLevel, component: 'operator' });
  const kc = new KubeConfig();
  if (config.kubeconfig !== undefined) kc.loadFromFile(config.kubeconfig);
  else kc.loadFromDefault();
  log('info', `sluice ${packageJson.version} starting`, {
    apiserver: kc.getCurrentCluster()?.server,
    local: config.local,
  });

  // The serving certificate, in one of three ways (config.ts --certificates): self-managed in a Secret (made here if
  // missing, renewed by the leader); from files (with --local the certificate file itself is what the APIService
  // trusts: self-signed, or the leaf followed by its CA); or, outside a cluster without either, a throwaway pair.
  let certificates: CertificateManager | undefined;
  let serving: { readonly cert: string; readonly key: string; readonly ca: string };
  if (config.selfManaged !== undefined) {
    const managed = config.selfManaged;
    if (config.local) await ensureNamespace(kc, managed.secret.namespace);
    // Every replica re-reads the Secret a twentieth of a serving lifetime apart (1 s to 30 s); the previous CA is
    // trusted three such periods after the first serving certificate of its successor is written.
    const resyncMs = Math.min(30_000, Math.max(1_000, Math.floor(managed.servingLifetimeMs / 20)));
    certificates = createCertificateManager({
      secret: createCertificateSecretPort(kc, managed.secret.namespace, managed.secret.name),
      caBundle: createCaBundlePort(kc, APISERVICE_NAME),
      log,
      names: servingNames({
        service: managed.service.name,
        namespace: managed.service.namespace,
        clusterDomain: managed.clusterDomain,
        local: config.local,
      }),
      caLifetimeMs: managed.caLifetimeMs,
      servingLifetimeMs: managed.servingLifetimeMs,
      resyncMs,
      propagationMs: 3 * resyncMs,
      leading: () => registry.leading,
    });
    const initial = await certificates.initial();
    serving = { ...initial.serving, ca: initial.caBundle };
  } else {
    serving = config.tls ? { ...config.tls, ca: config.tls.cert } : await createServingCert();
  }
  if (config.local) await installCrds(kc, CRD_DIR);

  // Before any trigger connects: where triggers may make sluice connect (docs/security.md#read-back-and-reach).
  installOutboundGuard(config.outbound, log);

  const requestHeader = await loadRequestHeaderConfig(apiClient(kc, CoreV1Api));
  const store = new MetricStore();
  // Created first, started last: the reconciler reads the informers' cache, which exists from here on.
  const controller = createController({
    kc,
    log,
    concurrency: config.concurrency,
    // Its TriggerAuthentication informers serve the MetricSources too (created below, started after them).
    onAuthenticationChange: (kind, obj) => {
      metricSourceController.authenticationChanged(kind, obj);
    },
  });
  // sluice's own /metrics: read from the cache, the registry and the hub when scraped (they exist before it listens).
  const ownMetrics =
    config.metricsPort === undefined
      ? undefined
      : new OwnMetrics({
          version: packageJson.version,
          sources: ownMetricsSources({
            scaledObjects: controller.scaledObjects,
            runtime: { snapshot: (key) => registry.snapshot(key) },
            hub: {
              timing: (key) => hub.timing(key),
              // Proxy mode's upstream adapter has a breaker of its own, shown beside the backends'.
              breakers: () => [
                ...hub.breakers(),
                ...(upstream === undefined ? [] : [{ describe: upstream.describe, state: upstream.state }]),
              ],
            },
            leading: () => registry.leading,
            queueDepth: () => controller.queueLength(),
            kubeRequests,
          }),
        });

  let demand: MetricDemand = NO_DEMAND;
  const ownedByStore = storeOwns(store);
  // The requestheader configuration in force: replaced when kube-apiserver publishes a new one (the watch below).
  let requestHeaderInForce = requestHeader;
  // Proxy mode: the metrics sluice does not own go to another adapter, stating the caller in the identity headers the
  // cluster's requestheader configuration names (the upstream reads the same ConfigMap).
  const upstream =
    config.proxy === undefined
      ? undefined
      : createUpstream({ ...config.proxy, headerNames: () => requestHeaderInForce, log });
  const app = buildServer({
    store,
    // Until the MetricSources run (below), no name is theirs.
    demand: { owns: (...args) => demand.owns(...args), request: (...args) => demand.request(...args) },
    // What sluice answers itself rather than forwarding in proxy mode: the names it has series of in the namespace,
    // and every name a MetricSource declares (its series appear only with the first request naming a selector).
    owns: (namespace, metric) => ownedByStore(namespace, metric) || demand.owns(namespace, metric),
    ...(upstream === undefined ? {} : { upstream }),
    authenticate: createFrontProxyAuthenticator(() => requestHeaderInForce),
    authorize: createSarAuthorizer({ api: apiClient(kc, AuthorizationV1Api) }),
    ready: () => controller.synced(),
    logger: { level: config.logLevel },
    https: frontProxyTlsOptions(requestHeader, serving),
    maxMetricNameLength: MAX_METRIC_NAME_LENGTH,
    ...(ownMetrics === undefined
      ? {}
      : {
          onResponse: (route: string, code: number, seconds: number) => {
            ownMetrics.apiResponse(route, code, seconds);
          },
        }),
  });
  // Certificates reload without a restart (docs/security.md#certificates): the serving pair from its files, the
  // client-certificate trust store and the authenticator from the ConfigMap.
  const serverTls = createServerTls(tlsServerOf(app), { serving, clientCA: requestHeader.clientCA });
  await app.listen({ host: config.bindAddress, port: config.port });
  const servingWatch = config.tls ? watchServingCertificate({ files: config.tls, tls: serverTls, log }) : undefined;
  // Proxy mode's client certificate, renewed in its files (a Secret volume) like the serving pair.
  const proxyClientWatch =
    upstream === undefined || config.proxy === undefined
      ? undefined
      : watchClientCertificate(upstream, {
          files: { certFile: config.proxy.clientCertFile, keyFile: config.proxy.clientKeyFile },
          log,
        });
  // Self-managed: whatever pair the Secret holds goes into the server (a pair it refuses is logged, the old one kept).
  certificates?.start((pair) => {
    log('info', 'serving certificate replaced from the Secret', { ...serverTls.swapServingPair(pair) });
  });
  const requestHeaderWatch = watchRequestHeaderConfig({
    source: createKubeAuthenticationSource(kc),
    initial: requestHeader,
    log,
    onChange: (next) => {
      serverTls.setClientCA(next.clientCA);
      requestHeaderInForce = next;
    },
  });

  const shared = new SharedPool({
    onDisposeError: (key, err) => {
      log('warn', 'closing a shared connection failed', { resource: key.split('|')[0], error: describeError(err) });
    },
  });
  const hub = new ReaderHub({ intervalMs: config.readIntervalMs, shared, log });
  const recorder = createEventRecorder({
    port: createKubeEventsPort(kc),
    reportingController: 'sluice.dev/operator',
    reportingInstance: hostname().slice(0, 128),
    log,
  });
  // Only the leader writes Events (a follower's pollers see the same errors: one Event, not one per replica).
  const events = {
    emit: (...args: Parameters<typeof recorder.emit>) => {
      if (registry.leading) recorder.emit(...args);
    },
  };
  // Replicas of Deployments and StatefulSets from watch caches: no API call per scaling-loop tick.
  const workloads = createWorkloadCache(kc, log);
  const kube = createKubePort(kc, workloads);
  const registry = new ScalingRegistry({
    hub,
    store,
    kube,
    events,
    log,
    onChange: (key) => {
      controller.enqueue(key);
    },
    // With leader election every replica starts as a follower: pollers and the metrics API, no writes.
    leading: config.leaderElection === undefined,
  });
  // MetricSources: any HPA's external metric, read for the selectors HPAs name (src/metric-demand.ts).
  const metricSources = new MetricSourceRegistry({
    hub,
    store,
    cluster: createClusterPort(kc),
    log,
    onChange: (key) => {
      metricSourceController.enqueue(key);
    },
  });
  // A resync's reads of one Secret are shared for 10 s (src/operator/auth-cache.ts).
  const authResolver = createAuthResolver(sharedReads(createKubeAuthPort(kc), { ttlMs: 10_000 }), {
    clusterObjectNamespace: config.clusterObjectNamespace,
    anyNamespaceClusterTriggerAuthentication: config.clusterTriggerAuthenticationAnyNamespace,
    restrictSecretAccess: config.restrictSecretAccess,
    allowOperatorCloudIdentity: config.allowOperatorCloudIdentity,
  });
  demand = metricSources;
  const metricSourceController = createMetricSourceController({
    kc,
    log,
    registry: metricSources,
    auth: authResolver,
    patchStatus: (ref, status, resourceVersion) => kube.patchStatus(ref, status, resourceVersion),
    leading: () => registry.leading,
  });
  const reconciler = createReconciler({
    kube,
    auth: authResolver,
    cluster: createClusterPort(kc),
    runtime: registry,
    events,
    cache: controller.scaledObjects,
    hpas: controller.hpas,
    targeting: (namespace, workload) => controller.targeting(namespace, workload),
    log,
    leading: () => registry.leading,
  });
  // Before the informers list: /metrics shows the start (queue depth, reconciles) as it happens.
  let metricsServer: MetricsServer | undefined;
  if (ownMetrics !== undefined && config.metricsPort !== undefined) {
    metricsServer = await startMetricsServer({
      exposition: ownMetrics,
      host: config.bindAddress,
      port: config.metricsPort,
      onError: (message) => {
        log('warn', message);
      },
    });
  }
  // The Lease's namespace exists before anyone campaigns (in a cluster, deploy/ makes it).
  if (config.local && config.leaderElection !== undefined) await ensureNamespace(kc, config.leaderElection.namespace);
  await workloads.start();
  await controller.start(async (key) => {
    const started = performance.now();
    let failed = true;
    try {
      const result = await reconciler.reconcile(key);
      failed = false;
      return result;
    } finally {
      ownMetrics?.reconciled(key, (performance.now() - started) / 1000, failed);
    }
  });
  await metricSourceController.start();
  let elector: LeaderElector | undefined;
  if (config.leaderElection !== undefined) {
    elector = createLeaderElector({
      port: createLeasePort(kc, config.leaderElection.namespace, LEASE_NAME),
      log,
      // The pod's name in a cluster; with --local, host and port (two local replicas differ by port). A replica
      // restarted under the same name takes its own Lease back at once instead of waiting for it to expire.
      identity: config.local ? `${hostname()}_${config.port}` : hostname(),
      onStartedLeading: () => {
        registry.lead();
        // A new leader renews what is due at once rather than at the next re-read.
        void certificates?.resync();
        // Everything a follower left unwritten (HPAs, status, finalizers) is written now.
        controller.enqueueAll();
        metricSourceController.enqueueAll();
      },
      onStoppedLeading: () => {
        void registry.follow();
      },
    });
    elector.start();
  }
  // Registered once the informers have listed (and the server listens): the aggregator's first availability check
  // passes at once, and no HPA asks for metrics of objects sluice has not seen yet.
  if (config.local) await registerApiService(kc, config.port, certificates?.trustedBundle() ?? serving.ca);
  // The permissive credential settings are worth a line in every log (docs/security.md#credentials).
  if (config.clusterTriggerAuthenticationAnyNamespace) {
    log('warn', 'ClusterTriggerAuthentications that name no allowed namespace may be used from every namespace');
  }
  if (config.allowOperatorCloudIdentity) {
    log('warn', "triggers with identityOwner: operator may use sluice's own cloud identity");
  }
  const stopStallWatch = watchStalls(log);
  log('info', 'sluice is running', {
    metricsApi: `https://${config.bindAddress}:${config.port}`,
    ...(config.proxy === undefined ? {} : { proxyTo: config.proxy.url.origin }),
    ownMetrics: metricsServer === undefined ? 'off' : `http://${config.bindAddress}:${metricsServer.port}/metrics`,
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
    stopStallWatch();
    void (async () => {
      if (config.local) await unregisterApiService(kc, config.port);
      // Nothing written once the Lease is released: executors stop first, then a follower may take over at once.
      await registry.follow();
      await elector?.stop();
      await controller.stop();
      await metricSourceController.stop();
      await workloads.stop();
      await registry.stopAll();
      await hub.close();
      await recorder.stop();
      servingWatch?.close();
      proxyClientWatch?.close();
      await certificates?.stop();
      await requestHeaderWatch.stop();
      await app.close();
      await upstream?.close();
      await metricsServer?.close();
      process.exit(process.exitCode ?? 0);
    })();
  };
  process.on('SIGTERM', () => {
    shutdown('SIGTERM');
  });
  process.on('SIGINT', () => {
    shutdown('SIGINT');
  });
  // A promise nobody awaited failed: a bug in sluice, logged with its stack; the process and its state carry on.
  process.on('unhandledRejection', (reason) => {
    log('error', 'unhandled promise rejection (a bug in sluice; please report it)', {
      error: describeError(reason),
      stack: reason instanceof Error ? reason.stack : undefined,
    });
  });
  // An exception escaped every handler: the state may be inconsistent, so stop (the Deployment restarts sluice) —
  // but say why first, and stop cleanly (the APIService of --local is removed, connections are closed).
  process.on('uncaughtException', (err) => {
    log('error', 'uncaught exception (a bug in sluice; please report it): stopping', {
      error: describeError(err),
      stack: err.stack,
    });
    process.exitCode = 1;
    shutdown('uncaughtException');
  });
}

/** The terminal of the offline subcommands. */
function processIo(): CliIo {
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    stdin: () => readAll(process.stdin),
  };
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
    case 'explain':
      process.exitCode = await runExplain(config);
      return;
    case 'validate':
      process.exitCode = await runValidate(config.args, processIo());
      return;
    case 'simulate':
      process.exitCode = await runSimulate(config.args, processIo());
      return;
    case 'operator':
      await runOperator(config);
      return;
    case 'serve':
      await runServe(config);
  }
}

main().catch((err: unknown) => {
  const message = err instanceof ConfigError ? err.message : describeError(err);
  process.stderr.write(`sluice: ${message}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
});
