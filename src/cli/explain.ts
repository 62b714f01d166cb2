/**
 * `sluice explain NAME -n NAMESPACE [-o json]`: reads what the cluster shows about one ScaledObject — the object and
 * its status, its HPA, the target's replicas, the values the metrics API serves for it right now (through
 * kube-apiserver, as the HPA controller reads them), and its Events — and prints explain-report.ts's report.
 * Needs only read access: get on the ScaledObject, its HPA and its target, list on Events, and the external metrics.
 */
import { request } from 'node:https';
import {
  ApiException,
  AutoscalingV2Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  KubernetesObjectApi,
  type V2HorizontalPodAutoscaler,
} from '@kubernetes/client-node';
import { apiErrorMessage } from '../kube-client.ts';
import { hpaNameFor, SCALED_OBJECT_LABEL } from '../operator/scaled-object.ts';
import { parseQuantity } from '../quantity.ts';
import { explain, renderExplain, type HpaView, type MetricReading, type ScaleEvent } from './explain-report.ts';

export interface ExplainOptions {
  readonly name: string;
  readonly namespace: string | undefined;
  readonly output: 'text' | 'json';
  readonly kubeconfig: string | undefined;
}

/** Exit code: 0 when explained, 1 when the object does not exist (the message says so on stderr). */
export async function runExplain(options: ExplainOptions): Promise<number> {
  const kc = new KubeConfig();
  if (options.kubeconfig !== undefined) kc.loadFromFile(options.kubeconfig);
  else kc.loadFromDefault();
  const namespace = options.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
  const custom = kc.makeApiClient(CustomObjectsApi);

  let object: Record<string, unknown>;
  try {
    object = (await custom.getNamespacedCustomObject({
      group: 'sluice.dev',
      version: 'v1alpha1',
      namespace,
      plural: 'scaledobjects',
      name: options.name,
    })) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof ApiException && err.code === 404) {
      process.stderr.write(`sluice explain: ScaledObject ${namespace}/${options.name} not found\n`);
      return 1;
    }
    throw err;
  }

  const spec = (object['spec'] ?? {}) as {
    scaleTargetRef?: { apiVersion?: string; kind?: string; name?: string };
    advanced?: { horizontalPodAutoscalerConfig?: { name?: string } };
  };
  const status = (object['status'] ?? {}) as { externalMetricNames?: string[]; hpaName?: string };
  const hpaName =
    status.hpaName ??
    hpaNameFor({
      metadata: { name: options.name },
      spec: spec as Parameters<typeof hpaNameFor>[0]['spec'],
    });

  const [hpa, target, readings, events] = await Promise.all([
    readHpa(kc, namespace, hpaName),
    readTargetReplicas(kc, namespace, spec.scaleTargetRef),
    readMetrics(kc, namespace, options.name, status.externalMetricNames ?? []),
    readEvents(kc, namespace, options.name),
  ]);
  const report = explain({
    object,
    hpa,
    targetReplicas: target.replicas,
    targetError: target.error,
    readings,
    events,
    now: new Date(),
  });
  process.stdout.write(options.output === 'json' ? `${JSON.stringify(report, null, 2)}\n` : renderExplain(report));
  return 0;
}

async function readHpa(kc: KubeConfig, namespace: string, name: string): Promise<HpaView | undefined> {
  let hpa: V2HorizontalPodAutoscaler;
  try {
    hpa = await kc.makeApiClient(AutoscalingV2Api).readNamespacedHorizontalPodAutoscaler({ name, namespace });
  } catch (err) {
    if (err instanceof ApiException && err.code === 404) return undefined;
    throw err;
  }
  return {
    name,
    minReplicas: hpa.spec.minReplicas,
    maxReplicas: hpa.spec.maxReplicas,
    metrics: (hpa.spec.metrics ?? []).flatMap((m) => {
      const external = m.external;
      if (m.type !== 'External' || external === undefined) return [];
      const t = external.target;
      const raw = t.type === 'AverageValue' ? t.averageValue : t.value;
      if (raw === undefined || (t.type !== 'AverageValue' && t.type !== 'Value')) return [];
      return [{ name: external.metric.name, type: t.type, target: parseQuantity(raw) }];
    }),
    currentReplicas: hpa.status?.currentReplicas,
    desiredReplicas: hpa.status?.desiredReplicas,
    lastScaleTime: hpa.status?.lastScaleTime?.toISOString(),
    conditions: (hpa.status?.conditions ?? []).map((c) => ({
      type: c.type,
      status: c.status,
      ...(c.reason !== undefined ? { reason: c.reason } : {}),
      ...(c.message !== undefined ? { message: c.message } : {}),
    })),
  };
}

async function readTargetReplicas(
  kc: KubeConfig,
  namespace: string,
  ref: { apiVersion?: string; kind?: string; name?: string } | undefined,
): Promise<{ replicas: number | undefined; error: string | undefined }> {
  if (ref?.name === undefined) return { replicas: undefined, error: 'spec.scaleTargetRef.name is not set' };
  try {
    const object = (await KubernetesObjectApi.makeApiClient(kc).read({
      apiVersion: ref.apiVersion ?? 'apps/v1',
      kind: ref.kind ?? 'Deployment',
      metadata: { name: ref.name, namespace },
    })) as { spec?: { replicas?: number } };
    return { replicas: object.spec?.replicas ?? 1, error: undefined };
  } catch (err) {
    return { replicas: undefined, error: apiErrorMessage(err) };
  }
}

/** What the metrics API puts before a series' error (src/server/external-metrics.ts); explain shows what follows. */
const LAST_POLL_FAILED = 'the last poll failed: ';

/** What the metrics API answers for each metric, with the selector sluice's HPA sends, through kube-apiserver. */
async function readMetrics(
  kc: KubeConfig,
  namespace: string,
  name: string,
  metricNames: readonly string[],
): Promise<Map<string, MetricReading>> {
  const selector = encodeURIComponent(`${SCALED_OBJECT_LABEL}=${name}`);
  const entries = await Promise.all(
    metricNames.map(async (metric): Promise<[string, MetricReading]> => {
      const path = `/apis/external.metrics.k8s.io/v1beta1/namespaces/${encodeURIComponent(namespace)}/${encodeURIComponent(metric.toLowerCase())}?labelSelector=${selector}`;
      try {
        const { status, body } = await kubeGet(kc, path);
        const parsed = JSON.parse(body) as {
          items?: { value?: string; timestamp?: string }[];
          message?: string;
        };
        const items = parsed.items ?? [];
        if (status === 200 && items.length > 0) {
          const value = items.reduce((sum, item) => sum + parseQuantity(item.value ?? '0'), 0);
          return [metric, { value, timestamp: items[0]?.timestamp }];
        }
        const message = parsed.message ?? `HTTP ${String(status)}`;
        const cut = message.indexOf(LAST_POLL_FAILED);
        return [metric, { error: cut === -1 ? message : message.slice(cut + LAST_POLL_FAILED.length), status }];
      } catch (err) {
        return [metric, { error: apiErrorMessage(err), status: 0 }];
      }
    }),
  );
  return new Map(entries);
}

async function readEvents(kc: KubeConfig, namespace: string, name: string): Promise<ScaleEvent[]> {
  try {
    const list = await kc.makeApiClient(CoreV1Api).listNamespacedEvent({
      namespace,
      fieldSelector: `involvedObject.name=${name},involvedObject.kind=ScaledObject`,
    });
    return list.items.map((e) => ({
      reason: e.reason ?? '',
      message: e.message ?? '',
      at: isoTime(e.series?.lastObservedTime ?? e.eventTime ?? e.lastTimestamp ?? e.firstTimestamp),
    }));
  } catch (err) {
    // Events are a hint: without list access to them explain still answers.
    if (err instanceof ApiException && err.code === 403) return [];
    throw err;
  }
}

/** A time as the API shows it (seconds, `Z`), whether client-node made it a Date or left it a string. */
function isoTime(value: Date | string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

async function kubeGet(kc: KubeConfig, path: string): Promise<{ status: number; body: string }> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('no cluster in the kubeconfig');
  const url = new URL(path, cluster.server);
  const options = { host: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, timeout: 10_000 };
  await kc.applyToHTTPSOptions(options);
  return new Promise((resolve, reject) => {
    const req = request(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url.pathname}: no answer in 10 s`)));
    req.on('error', reject);
    req.end();
  });
}
