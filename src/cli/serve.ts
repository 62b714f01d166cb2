/**
 * `sluice serve --config metrics.yaml`: the external-metrics API for the MetricSources of a file, without the
 * operator — no CRD watch, no ScaledObjects, no HPA, status or Event writes, no leader election. The lightest way to
 * give vanilla HPAs queue-depth metrics (docs/metric-sources.md#sluice-serve).
 *
 * What it shares with `sluice operator`: the metrics API (front-proxy client certificates authenticate the aggregator,
 * SubjectAccessReview authorizes each read), the MetricSource rules and registry, the ReaderHub, the outbound guard,
 * and the auth resolver: a trigger's `authenticationRef` is read from the cluster (the TriggerAuthentication and the
 * Secrets or ConfigMaps it names, with the same rules and flags), and read again every five minutes so a rotated
 * Secret is picked up. Every MetricSource of the file must be valid at start, or serve exits naming it.
 */
import { readFile } from 'node:fs/promises';
import { AuthorizationV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import type { ServeConfig } from '../config.ts';
import { ConfigError, describeError } from '../errors.ts';
import { apiClient } from '../kube-client.ts';
import { createServingCert, registerApiService, unregisterApiService } from '../local-dev.ts';
import { createLogger, type Logger } from '../log.ts';
import { MAX_METRIC_NAME_LENGTH, MetricStore } from '../metric-store.ts';
import { createAuthResolver, createKubeAuthPort, type TriggerAuthResolver } from '../operator/auth-resolver.ts';
import { createClusterPort } from '../operator/kube.ts';
import { metricNameOwner, prepareMetricSource } from '../operator/metric-source-controller.ts';
import { MetricSourceRegistry } from '../operator/metric-sources.ts';
import { installOutboundGuard } from '../outbound.ts';
import { ReaderHub } from '../scalers/readers.ts';
import { SharedPool } from '../scalers/shared.ts';
import { buildServer, tlsServerOf } from '../server/app.ts';
import { createSarAuthorizer } from '../server/authorizer.ts';
import { createServerTls, watchServingCertificate } from '../server/certificates.ts';
import { createFrontProxyAuthenticator, frontProxyTlsOptions, loadRequestHeaderConfig } from '../server/front-proxy.ts';
import { createKubeAuthenticationSource, watchRequestHeaderConfig } from '../server/requestheader-watch.ts';

/** How often credentials are resolved again (the operator's resync period). */
const REFRESH_MS = 300_000;

/** The objects of a YAML file of MetricSources (documents separated by `---`; empty ones skipped). */
export function parseMetricSourceFile(file: string, text: string): unknown[] {
  const docs = parseAllDocuments(text);
  const objects: unknown[] = [];
  for (const [i, doc] of docs.entries()) {
    const [error] = doc.errors;
    if (error !== undefined) throw new ConfigError(`${file}: document ${i + 1}: ${error.message}`);
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) objects.push(value);
  }
  if (objects.length === 0) throw new ConfigError(`${file}: no MetricSource in it`);
  return objects;
}

function nameOf(obj: unknown): string {
  const metadata = (obj as { metadata?: { namespace?: unknown; name?: unknown } } | null)?.metadata;
  const text = (value: unknown) => (typeof value === 'string' ? value : '?');
  return `MetricSource ${text(metadata?.namespace)}/${text(metadata?.name)}`;
}

/**
 * Validates and runs every MetricSource of the file in `registry`. Throws ConfigError naming the file, the object and
 * the field for the first one that cannot be served (and for two that serve one metric name in one namespace).
 */
export async function loadMetricSources(
  file: string,
  objects: readonly unknown[],
  deps: { readonly auth: TriggerAuthResolver; readonly registry: MetricSourceRegistry },
): Promise<number> {
  const prepared = [];
  for (const obj of objects) {
    let result;
    try {
      result = await prepareMetricSource(obj, deps);
    } catch (err) {
      throw new ConfigError(`${file}: ${nameOf(obj)}: ${describeError(err)}`, { cause: err });
    }
    if (!result.ok) throw new ConfigError(`${file}: ${nameOf(obj)}: ${result.message}`);
    prepared.push(result);
  }
  const keys = new Set<string>();
  for (const { settings, source } of prepared) {
    if (keys.has(settings.key)) throw new ConfigError(`${file}: ${nameOf(source)} is in the file twice`);
    keys.add(settings.key);
    const sameNamespace = prepared
      .filter((p) => p.settings.namespace === settings.namespace)
      // The file's order stands for creation: the first one serves a metric name.
      .map((p, i) => ({
        name: p.source.metadata.name,
        metricName: p.settings.metricName,
        createdAt: String(i).padStart(8, '0'),
      }));
    const owner = metricNameOwner(sameNamespace, settings.metricName);
    if (owner !== source.metadata.name) {
      throw new ConfigError(
        `${file}: ${nameOf(source)}: metric ${settings.metricName} is already served in namespace ${settings.namespace} by MetricSource ${String(owner)}; give one of them another spec.metricName`,
      );
    }
  }
  for (const { settings } of prepared) deps.registry.ensure(settings);
  return prepared.length;
}

export async function runServe(config: ServeConfig): Promise<void> {
  const log: Logger = createLogger({ level: config.logLevel, component: 'serve' });
  const kc = new KubeConfig();
  if (config.kubeconfig !== undefined) kc.loadFromFile(config.kubeconfig);
  else kc.loadFromDefault();
  let text: string;
  try {
    text = await readFile(config.configFile, 'utf8');
  } catch (cause) {
    throw new ConfigError(`--config: cannot read ${config.configFile}`, { cause });
  }
  const objects = parseMetricSourceFile(config.configFile, text);
  installOutboundGuard(config.outbound, log);

  const store = new MetricStore();
  const shared = new SharedPool({
    onDisposeError: (key, err) => {
      log('warn', 'closing a shared connection failed', { resource: key.split('|')[0], error: describeError(err) });
    },
  });
  const hub = new ReaderHub({ intervalMs: config.readIntervalMs, shared, log });
  const registry = new MetricSourceRegistry({
    hub,
    store,
    cluster: createClusterPort(kc),
    log,
    onChange: () => undefined,
  });
  const auth = createAuthResolver(createKubeAuthPort(kc), {
    clusterObjectNamespace: config.clusterObjectNamespace,
    anyNamespaceClusterTriggerAuthentication: config.clusterTriggerAuthenticationAnyNamespace,
    restrictSecretAccess: config.restrictSecretAccess,
    allowOperatorCloudIdentity: config.allowOperatorCloudIdentity,
  });
  const count = await loadMetricSources(config.configFile, objects, { auth, registry });

  const serving = config.tls ? { ...config.tls, ca: config.tls.cert } : await createServingCert();
  const requestHeader = await loadRequestHeaderConfig(apiClient(kc, CoreV1Api));
  let requestHeaderInForce = requestHeader;
  const app = buildServer({
    store,
    demand: registry,
    authenticate: createFrontProxyAuthenticator(() => requestHeaderInForce),
    authorize: createSarAuthorizer({ api: apiClient(kc, AuthorizationV1Api) }),
    ready: () => true,
    logger: { level: config.logLevel },
    https: frontProxyTlsOptions(requestHeader, serving),
    maxMetricNameLength: MAX_METRIC_NAME_LENGTH,
  });
  const serverTls = createServerTls(tlsServerOf(app), { serving, clientCA: requestHeader.clientCA });
  await app.listen({ host: config.bindAddress, port: config.port });
  const servingWatch = config.tls ? watchServingCertificate({ files: config.tls, tls: serverTls, log }) : undefined;
  const requestHeaderWatch = watchRequestHeaderConfig({
    source: createKubeAuthenticationSource(kc),
    initial: requestHeader,
    log,
    onChange: (next) => {
      serverTls.setClientCA(next.clientCA);
      requestHeaderInForce = next;
    },
  });
  // Credentials are read again now and then: a rotated Secret restarts the selectors that use it.
  const refresh = setInterval(() => {
    loadMetricSources(config.configFile, objects, { auth, registry }).catch((err: unknown) => {
      log('warn', 'resolving the MetricSources again failed; serving with what was resolved before', {
        error: describeError(err),
      });
    });
  }, REFRESH_MS);
  refresh.unref();
  if (config.local) await registerApiService(kc, config.port, serving.ca);
  log('info', 'sluice serve is running', {
    metricsApi: `https://${config.bindAddress}:${config.port}`,
    file: config.configFile,
    metricSources: count,
  });

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log('info', `${signal}: shutting down`);
    void (async () => {
      clearInterval(refresh);
      if (config.local) await unregisterApiService(kc, config.port);
      registry.stopAll();
      await hub.close();
      servingWatch?.close();
      await requestHeaderWatch.stop();
      await app.close();
      process.exit(process.exitCode ?? 0);
    })();
  };
  process.on('SIGTERM', () => {
    shutdown('SIGTERM');
  });
  process.on('SIGINT', () => {
    shutdown('SIGINT');
  });
}
