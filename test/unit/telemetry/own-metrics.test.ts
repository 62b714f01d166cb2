// sluice's own /metrics, driven through the real parts it reads: a ReaderHub with in-memory sources, the
// ScalingRegistry (pollers, executors) writing a MetricStore, and a ScaledObject cache. Checks KEDA's names and
// labels under the sluice_ prefix, what only sluice has (breakers, fallback, conditions, leadership, queue depth,
// reconcile and API latency, runtime defaults), that a deleted ScaledObject's series go away, and that no credential
// reaches a label.
import type { KubernetesObject } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import type { Logger } from '../../../src/log.ts';
import { MetricStore } from '../../../src/metric-store.ts';
import type { ObjectReference } from '../../../src/operator/events.ts';
import { ScalingRegistry, type RuntimeSpec } from '../../../src/operator/scaling-registry.ts';
import { ReaderHub } from '../../../src/scalers/readers.ts';
import { createScaler } from '../../../src/scalers/registry.ts';
import type { Scaler } from '../../../src/scalers/scaler.ts';
import { SharedPool } from '../../../src/scalers/shared.ts';
import { startMetricsServer } from '../../../src/telemetry/metrics-server.ts';
import { OwnMetrics, safeBackend, scalerLabel } from '../../../src/telemetry/own-metrics.ts';
import { ownMetricsSources } from '../../../src/telemetry/sources.ts';
import { FakeSource, fakeScaler } from '../../support/fake-source.ts';
import { MemoryKube, executorSettings, recordingEvents } from '../../support/operator.ts';
import { triggerInput } from '../../support/trigger.ts';

const T0 = new Date('2026-06-01T12:00:00Z');
const log: Logger = () => undefined;

function ref(name: string): ObjectReference {
  return { apiVersion: 'sluice.dev/v1alpha1', kind: 'ScaledObject', namespace: 'shop', name, uid: `uid-${name}` };
}

function spec(name: string, triggers: { scaler: Scaler; index: number; type: string }[]): RuntimeSpec {
  return {
    key: `shop/${name}`,
    poller: {
      ref: ref(name),
      triggers: triggers.map((t) => t.scaler),
      identities: triggers.map(({ index, type }) => ({ index, type })),
      pollingIntervalS: 30,
      fallback: undefined,
    },
    executor: executorSettings(ref(name), T0),
    pollerHash: `p-${name}`,
    executorHash: `e-${name}`,
    lastActiveTime: undefined,
  };
}

function scaledObject(name: string, conditions: { type: string; status: string; reason?: string }[]) {
  return {
    apiVersion: 'sluice.dev/v1alpha1',
    kind: 'ScaledObject',
    metadata: { namespace: 'shop', name, uid: `uid-${name}` },
    status: { conditions: conditions.map((c) => ({ message: 'a message is never a label', ...c })) },
  } as KubernetesObject;
}

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** The samples of a Prometheus text exposition (enough of the format for prom-client's output). */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const m of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[m[1] ?? ''] = (m[2] ?? '').replace(/\\(.)/g, (_all, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: match[1] ?? '', labels, value: Number(match[3]) });
  }
  return samples;
}

const named = (samples: Sample[], name: string) => samples.filter((s) => s.name === name);

let pool: SharedPool;
let hub: ReaderHub;
let store: MetricStore;
let registry: ScalingRegistry;
let cache: KubernetesObject[];
let leading: boolean;
let depth: number;
const requests = new Map([
  ['get apps/deployments/scale', 3],
  ['patch sluice.dev/scaledobjects/status', 2],
]);
let own: OwnMetrics;

beforeEach(() => {
  vi.useFakeTimers({ now: T0, toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  vi.spyOn(Math, 'random').mockReturnValue(0.5);
  pool = new SharedPool();
  hub = new ReaderHub({ intervalMs: 1000, shared: pool });
  store = new MetricStore();
  registry = new ScalingRegistry({
    hub,
    store,
    kube: new MemoryKube(),
    events: recordingEvents(),
    log,
    onChange: () => undefined,
  });
  cache = [];
  leading = true;
  depth = 0;
  own = new OwnMetrics({
    sources: ownMetricsSources({
      scaledObjects: { list: () => cache },
      runtime: registry,
      hub,
      leading: () => leading,
      queueDepth: () => depth,
      kubeRequests: () => requests,
    }),
  });
});
afterEach(async () => {
  await registry.stopAll();
  await hub.close();
  vi.restoreAllMocks();
  vi.useRealTimers();
});

const scrape = async () => parse(await own.metrics());

describe('the exposition', () => {
  test("KEDA's scaler metrics with KEDA's labels, from the pollers' state", async () => {
    const orders = new FakeSource('rabbit|orders', 'rabbit').value(7);
    const errors = new FakeSource('prom|errors', 'prom').value(0);
    await registry.ensure(
      spec('orders', [
        { scaler: fakeScaler(orders, { index: 0, name: 'rabbitmq-orders' }), index: 0, type: 'rabbitmq' },
        { scaler: fakeScaler(errors, { index: 2, name: 'prometheus' }), index: 2, type: 'prometheus' },
      ]),
    );
    cache = [
      scaledObject('orders', [
        { type: 'Ready', status: 'True', reason: 'ScaledObjectReady' },
        { type: 'Active', status: 'True' },
        { type: 'Fallback', status: 'False' },
        { type: 'Paused', status: 'False' },
      ]),
    ];
    await vi.advanceTimersByTimeAsync(1500);
    expect(store.ofOwner('shop/orders').map((s) => s.value)).toStrictEqual([7, 0]);

    const samples = await scrape();
    const labels = (metric: string, scaler: string, triggerIndex: string) => ({
      namespace: 'shop',
      metric,
      scaledObject: 'orders',
      scaler,
      triggerIndex,
      type: 'scaledobject',
    });
    expect(named(samples, 'sluice_scaler_metrics_value')).toStrictEqual([
      { name: 'sluice_scaler_metrics_value', labels: labels('s0-rabbitmq-orders', 'rabbitMQScaler', '0'), value: 7 },
      { name: 'sluice_scaler_metrics_value', labels: labels('s2-prometheus', 'prometheusScaler', '2'), value: 0 },
    ]);
    expect(named(samples, 'sluice_scaler_active').map((s) => [s.labels['metric'], s.value])).toStrictEqual([
      ['s0-rabbitmq-orders', 1],
      ['s2-prometheus', 0],
    ]);
    expect(named(samples, 'sluice_scaler_errors_total').map((s) => s.value)).toStrictEqual([0, 0]);
    const latency = named(samples, 'sluice_scaler_metrics_latency_seconds');
    expect(latency.map((s) => s.labels)).toStrictEqual([
      labels('s0-rabbitmq-orders', 'rabbitMQScaler', '0'),
      labels('s2-prometheus', 'prometheusScaler', '2'),
    ]);
    expect(latency.every((s) => s.value >= 0 && s.value < 1)).toBe(true);
    expect(named(samples, 'sluice_internal_scale_loop_latency_seconds')).toStrictEqual([
      {
        name: 'sluice_internal_scale_loop_latency_seconds',
        labels: { namespace: 'shop', type: 'scaledobject', resource: 'orders' },
        value: expect.any(Number) as number,
      },
    ]);
    expect(named(samples, 'sluice_scaled_object_errors_total')).toStrictEqual([
      { name: 'sluice_scaled_object_errors_total', labels: { namespace: 'shop', scaledObject: 'orders' }, value: 0 },
    ]);
    expect(named(samples, 'sluice_scaled_object_condition')).toStrictEqual(
      [
        ['Ready', 'True'],
        ['Active', 'True'],
        ['Fallback', 'False'],
        ['Paused', 'False'],
      ].map(([type, status]) => ({
        name: 'sluice_scaled_object_condition',
        labels: { namespace: 'shop', scaledObject: 'orders', type: type ?? '', status: status ?? '' },
        value: 1,
      })),
    );
    expect(named(samples, 'sluice_scaled_object_paused').map((s) => s.value)).toStrictEqual([0]);
    expect(named(samples, 'sluice_scaled_object_fallback_active').map((s) => s.value)).toStrictEqual([0]);
    expect(named(samples, 'sluice_backend_circuit_breaker_state')).toStrictEqual([
      { name: 'sluice_backend_circuit_breaker_state', labels: { backend: 'fake://rabbit' }, value: 0 },
      { name: 'sluice_backend_circuit_breaker_state', labels: { backend: 'fake://prom' }, value: 0 },
    ]);
  });

  test('a failing trigger: no value (never 0), its errors counted, the breaker open', async () => {
    const orders = new FakeSource('rabbit|orders', 'rabbit').set({ kind: 'backend-error', message: 'refused' });
    await registry.ensure(
      spec('orders', [
        { scaler: fakeScaler(orders, { index: 0, name: 'rabbitmq-orders' }), index: 0, type: 'rabbitmq' },
      ]),
    );
    cache = [scaledObject('orders', [{ type: 'Ready', status: 'False', reason: 'TriggerError' }])];
    await vi.advanceTimersByTimeAsync(3500);
    own.reconciled('shop/orders', 0.02, true);

    const samples = await scrape();
    expect(named(samples, 'sluice_scaler_metrics_value')).toStrictEqual([]);
    expect(named(samples, 'sluice_scaler_active').map((s) => s.value)).toStrictEqual([0]);
    const readErrors = named(samples, 'sluice_scaler_errors_total')[0]?.value ?? 0;
    expect(readErrors).toBeGreaterThanOrEqual(3);
    expect(named(samples, 'sluice_scaled_object_errors_total').map((s) => s.value)).toStrictEqual([readErrors + 1]);
    expect(named(samples, 'sluice_backend_circuit_breaker_state').map((s) => s.value)).toStrictEqual([2]);
    expect(
      named(samples, 'sluice_scaled_object_condition').map((s) => [s.labels['type'], s.labels['status']]),
    ).toStrictEqual([['Ready', 'False']]);
  });

  test('leadership, queue depth, reconcile and metrics-API latency, and the runtime defaults', async () => {
    depth = 3;
    leading = false;
    own.reconciled('shop/orders', 0.02, false);
    own.apiResponse('/apis/external.metrics.k8s.io/v1beta1/namespaces/:namespace/:metric', 200, 0.004);
    own.apiResponse('/apis/external.metrics.k8s.io/v1beta1/namespaces/:namespace/:metric', 404, 0.001);
    vi.useRealTimers(); // the event-loop lag collector waits for setImmediate
    const samples = await scrape();
    expect(named(samples, 'sluice_leader_election_is_leader').map((s) => s.value)).toStrictEqual([0]);
    expect(named(samples, 'sluice_workqueue_depth')).toStrictEqual([
      { name: 'sluice_workqueue_depth', labels: { name: 'scaledobjects' }, value: 3 },
    ]);
    expect(named(samples, 'sluice_reconcile_duration_seconds_count')).toStrictEqual([
      { name: 'sluice_reconcile_duration_seconds_count', labels: { result: 'success' }, value: 1 },
    ]);
    expect(
      named(samples, 'sluice_metrics_api_request_duration_seconds_count').map((s) => [s.labels['code'], s.value]),
    ).toStrictEqual([
      ['200', 1],
      ['404', 1],
    ]);
    for (const name of [
      'sluice_nodejs_eventloop_lag_seconds',
      'sluice_nodejs_heap_size_used_bytes',
      'sluice_process_resident_memory_bytes',
    ]) {
      expect(named(samples, name).length, name).toBeGreaterThan(0);
    }
    expect(named(samples, 'sluice_build_info').map((s) => s.labels)).toStrictEqual([
      { version: 'unknown', nodeversion: process.version },
    ]);
    leading = true;
    expect(named(await scrape(), 'sluice_leader_election_is_leader').map((s) => s.value)).toStrictEqual([1]);
  });

  test("a deleted ScaledObject's series go away", async () => {
    const a = new FakeSource('rabbit|a', 'rabbit').value(4);
    const b = new FakeSource('rabbit|b', 'rabbit').set({ kind: 'scaler-error', message: 'no such queue' });
    await registry.ensure(
      spec('a', [{ scaler: fakeScaler(a, { index: 0, name: 'rabbitmq-a' }), index: 0, type: 'rabbitmq' }]),
    );
    await registry.ensure(
      spec('b', [{ scaler: fakeScaler(b, { index: 0, name: 'rabbitmq-b' }), index: 0, type: 'rabbitmq' }]),
    );
    cache = [
      scaledObject('a', [{ type: 'Ready', status: 'True' }]),
      scaledObject('b', [{ type: 'Ready', status: 'False' }]),
    ];
    await vi.advanceTimersByTimeAsync(1500);
    own.reconciled('shop/b', 0.01, true);
    const mentions = (samples: Sample[], name: string) =>
      samples.filter((s) => s.labels['scaledObject'] === name || s.labels['resource'] === name);
    const before = await scrape();
    expect(mentions(before, 'b').length).toBeGreaterThan(5);

    // The informer forgets it; reconcile stops its poller and drops its store series.
    cache = cache.filter((so) => so.metadata?.name !== 'b');
    await registry.remove('shop/b');
    const after = await scrape();
    expect(mentions(after, 'b')).toStrictEqual([]);
    expect(mentions(after, 'a').length).toBe(mentions(before, 'a').length);
    expect(named(after, 'sluice_backend_circuit_breaker_state').map((s) => s.labels['backend'])).toStrictEqual([
      'fake://rabbit',
    ]);

    // Created again under the same name: its error count starts from nothing.
    cache.push(scaledObject('b', [{ type: 'Ready', status: 'True' }]));
    expect(
      named(await scrape(), 'sluice_scaled_object_errors_total').find((s) => s.labels['scaledObject'] === 'b')?.value,
    ).toBe(0);
  });
});

describe('no credential in a label', () => {
  const SECRETS = ['s3cr3t', 'admin:', 't0k3n', 'hunter2', 'sekret-value'];

  class LeakySource extends FakeSource {
    override readonly describe = 'RabbitMQ amqp://admin:s3cr3t@rabbit:5672/prod?auth_mechanism=PLAIN&token=t0k3n#frag';
  }

  test('safeBackend drops userinfo, query, fragment and key=value words', () => {
    expect(safeBackend('RabbitMQ amqp://admin:s3cr3t@rabbit:5672/prod?token=t0k3n#x')).toBe(
      'RabbitMQ amqp://rabbit:5672/prod',
    );
    expect(safeBackend('Prometheus https://prom:9090')).toBe('Prometheus https://prom:9090');
    expect(safeBackend('SQS https://sqs.us-east-1.amazonaws.com/?X-Amz-Credential=AKIA')).toBe(
      'SQS https://sqs.us-east-1.amazonaws.com/',
    );
    expect(safeBackend('Service shop/exporter port 8080 user:hunter2@host password=hunter2')).toBe(
      'Service shop/exporter port 8080 host',
    );
    expect(safeBackend('odd http://[::1 x')).toBe('odd <unparsable URL> x');
  });

  test('the whole exposition holds no credential, URL userinfo, query string or Secret value', async () => {
    const leaky = new LeakySource('rabbit|leaky', 'rabbit|fingerprint-of-admin:s3cr3t').set({
      kind: 'backend-error',
      message: 'amqp://admin:s3cr3t@rabbit refused',
    });
    // A real scaler whose TriggerAuthentication gives a host with credentials and a password (a Secret's values).
    const real = createScaler(
      triggerInput({
        type: 'rabbitmq',
        namespace: 'shop',
        index: 1,
        metadata: { queueName: 'orders', protocol: 'http' },
        authParams: {
          host: 'http://admin:s3cr3t@127.0.0.1:1/prod?token=t0k3n',
          username: 'hunter2',
          password: 'sekret-value',
        },
      }),
    );
    await registry.ensure(
      spec('orders', [
        { scaler: fakeScaler(leaky, { index: 0, name: 'rabbitmq-leaky' }), index: 0, type: 'rabbitmq' },
        { scaler: real, index: 1, type: 'rabbitmq' },
      ]),
    );
    cache = [
      scaledObject('orders', [{ type: 'Ready', status: 'False', reason: 'TriggerError: amqp://admin:s3cr3t@x' }]),
    ];
    await vi.advanceTimersByTimeAsync(2500);
    vi.useRealTimers();
    // The real reader fails to connect (nothing listens on port 1) and its breaker opens.
    await vi.waitFor(() => {
      expect(hub.breakers().some((b) => b.state !== 'closed' && b.describe.includes('127.0.0.1'))).toBe(true);
    });
    const text = await own.metrics();
    const samples = parse(text);
    expect(named(samples, 'sluice_backend_circuit_breaker_state').length).toBe(2);
    for (const { name, labels } of samples) {
      for (const [label, value] of Object.entries(labels)) {
        const where = `${name}{${label}="${value}"}`;
        for (const secret of SECRETS) expect(value, where).not.toContain(secret);
        expect(value, where).not.toMatch(/\/\/[^/\s]*@/); // URL userinfo
        expect(value, where).not.toMatch(/\?|#/); // query string, fragment
      }
    }
    for (const secret of SECRETS) expect(text).not.toContain(secret);
  });
});

describe('the /metrics server', () => {
  test('serves GET /metrics in the text format, 404 elsewhere', async () => {
    vi.useRealTimers();
    const server = await startMetricsServer({ exposition: own, host: '127.0.0.1', port: 0 });
    try {
      const base = `http://127.0.0.1:${server.port}`;
      const ok = await fetch(`${base}/metrics`);
      expect(ok.status).toBe(200);
      expect(ok.headers.get('content-type')).toContain('text/plain; version=0.0.4');
      expect(await ok.text()).toContain('# TYPE sluice_scaler_metrics_value gauge');
      expect((await fetch(`${base}/`)).status).toBe(404);
      expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);
    } finally {
      await server.close();
    }
  });
});

test('scaler labels are KEDA type names', () => {
  expect(['rabbitmq', 'aws-sqs-queue', 'prometheus', 'metrics-api', 'http-rate', ''].map(scalerLabel)).toStrictEqual([
    'rabbitMQScaler',
    'awsSqsQueueScaler',
    'prometheusScaler',
    'metricsAPIScaler',
    'httpRateScaler',
    'unknown',
  ]);
});

describe('sluice_kube_api_requests_total', () => {
  test('counts what kube-client counted, by verb and resource', async () => {
    const text = await own.metrics();
    expect(text).toContain('sluice_kube_api_requests_total{verb="get",resource="apps/deployments/scale"} 3');
    expect(text).toContain('sluice_kube_api_requests_total{verb="patch",resource="sluice.dev/scaledobjects/status"} 2');
  });
});
