// The http-rate scaler against real HTTP exporters this test starts (test/support/counter-server.ts), and its Service
// form against the real kube-apiserver: discovery through real EndpointSlices, and scraping real exporters that run
// in a network namespace this test creates (EndpointSlices may not hold loopback addresses).
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, DiscoveryV1Api, type V1EndpointSlice } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ScalerError, describeError } from '../../src/errors.ts';
import { createClusterPort } from '../../src/operator/kube.ts';
import { GuardedScaler, breakerOptionsFor } from '../../src/scalers/breaker.ts';
import { createHttpRateScaler } from '../../src/scalers/http-rate.ts';
import type { ClusterPort, Sample, Scaler } from '../../src/scalers/scaler.ts';
import {
  startCounterServer,
  remoteCounterControl,
  type CounterControl,
  type CounterMode,
  type CounterServer,
} from '../support/counter-server.ts';
import { REPO_ROOT, createNamespace, deleteNamespace, kubeConfig, waitFor } from '../support/env.ts';
import { createTestHost, type TestHost } from '../support/netns.ts';
import { triggerInput } from '../support/trigger.ts';

const COUNTER = 'http_requests_total{code="2xx"}';

/** Scalers read in the background from their first sample on: every test's scalers are closed after it. */
const open: Scaler[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});
const track = (scaler: Scaler): Scaler => (open.push(scaler), scaler);

function urlScaler(url: string, extra: Record<string, string> = {}): Scaler {
  return track(
    createHttpRateScaler(
      triggerInput({ type: 'http-rate', metadata: { url, counter: COUNTER, targetRate: '10', ...extra } }),
    ),
  );
}

const sample = (scaler: Scaler, timeoutMs = 10_000): Promise<Sample> => scaler.sample(AbortSignal.timeout(timeoutMs));

/** Samples every `everyMs` for `forMs` (errors allowed only before the first value), returning the last sample. */
async function sampleFor(scaler: Scaler, forMs: number, everyMs = 250): Promise<Sample> {
  const until = performance.now() + forMs;
  let last: Sample | undefined;
  while (performance.now() < until || last === undefined) {
    try {
      last = await sample(scaler);
    } catch (err) {
      if (last !== undefined) throw err;
      expect((err as Error).message).toContain('not enough samples yet');
    }
    await sleep(everyMs);
  }
  return last;
}

async function expectError(promise: Promise<Sample>, message: string | RegExp): Promise<ScalerError> {
  const error = await promise.then(
    (value) => {
      throw new Error(`expected an error, got the value ${JSON.stringify(value)}`);
    },
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(ScalerError);
  // What the status and the log show: the message with its causes.
  expect(describeError(error)).toMatch(message);
  return error as ScalerError;
}

describe('http-rate: url form against a real exporter', () => {
  let server: CounterServer;

  beforeAll(async () => {
    server = await startCounterServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it('measures a counter growing at 20/s (two series summed, the 5xx series left out)', async () => {
    await server.control({ rate: 20, mode: 'ok' });
    const scaler = urlScaler(server.url, { window: '5s', activationRate: '5' });
    await expectError(sample(scaler), /not enough samples yet: the 5s window/);
    const last = await sampleFor(scaler, 5000);
    console.log(`[measure] http-rate url form at 20/s: measured ${last.value.toFixed(3)}/s`);
    expect(last.value).toBeGreaterThan(18);
    expect(last.value).toBeLessThan(22);
    expect(last.active).toBe(true);
  });

  it('follows rate changes over its window, down to a real zero (inactive)', async () => {
    await server.control({ rate: 100 });
    const scaler = urlScaler(server.url, { window: '2s', activationRate: '5' });
    const high = await sampleFor(scaler, 3000);
    expect(high.value).toBeGreaterThan(90);
    expect(high.value).toBeLessThan(110);
    await server.control({ rate: 0 });
    const idle = await sampleFor(scaler, 3000);
    expect(idle).toEqual({ value: 0, active: false });
  });

  it('reads an exporter restart (counter reset) as a restart, not as negative traffic', async () => {
    await server.control({ rate: 40 });
    const scaler = urlScaler(server.url, { window: '3s' });
    await sampleFor(scaler, 3500);
    await server.control({ reset: true });
    // The reset lies inside the window for the next 3 s: every value stays close to the true 40/s.
    const until = performance.now() + 3000;
    while (performance.now() < until) {
      const { value } = await sample(scaler);
      expect(value).toBeGreaterThan(30);
      expect(value).toBeLessThan(50);
      await sleep(250);
    }
  });

  const failures: { comment: string; mode: CounterMode; message: RegExp; extra?: Record<string, string> }[] = [
    { comment: 'HTTP 500', mode: 500, message: /answered HTTP 500/ },
    { comment: 'HTTP 503', mode: 503, message: /answered HTTP 503/ },
    {
      comment: 'a redirect (not followed)',
      mode: 302,
      message: /answered HTTP 302 \(a redirect\); redirects are not followed/,
    },
    { comment: 'HTTP 404', mode: 404, message: /answered HTTP 404/ },
    {
      comment: 'authentication failure (401)',
      mode: 401,
      message: /authentication failed: http:\/\/127\.0\.0\.1:\d+\/metrics answered HTTP 401/,
    },
    {
      comment: 'timeout',
      mode: 'hang',
      message: /did not answer within 300 ms \(timeout\)/,
      extra: { timeout: '300ms' },
    },
    { comment: 'malformed body', mode: 'malformed', message: /not Prometheus text exposition: line 1/ },
    { comment: 'empty body', mode: 'empty', message: /sent an empty body/ },
    { comment: 'series missing', mode: 'missing', message: /no series matches http_requests_total\{code="2xx"\}/ },
    { comment: 'NaN counter', mode: 'nan', message: /is NaN; a counter is a finite, non-negative number/ },
    { comment: 'protobuf instead of text', mode: 'protobuf', message: /sent protobuf/ },
  ];
  it.each(failures)('$comment: an error, never a zero; the window recovers after it', async (row) => {
    await server.control({ rate: 20, mode: 'ok' });
    const scaler = urlScaler(server.url, { window: '3s', ...row.extra });
    // A value first, so an error cannot hide behind "not enough samples yet".
    expect((await sampleFor(scaler, 600)).value).toBeGreaterThan(0);
    await server.control({ mode: row.mode });
    const error = await expectError(sample(scaler), row.message);
    expect(error.message).toContain(`http://127.0.0.1:${server.port}/metrics`);
    await expectError(sample(scaler), row.message);
    await server.control({ mode: 'ok' });
    const after = await sample(scaler);
    expect(after.value).toBeGreaterThan(15);
    expect(after.value).toBeLessThan(25);
  });

  it('connection refused: an error, never a zero', async () => {
    const gone = await startCounterServer();
    await gone.control({ rate: 20 });
    const scaler = urlScaler(gone.url, { window: '3s' });
    expect((await sampleFor(scaler, 600)).value).toBeGreaterThan(0);
    await gone.close();
    const error = await expectError(sample(scaler), /cannot reach http:\/\/127\.0\.0\.1:\d+\/metrics/);
    expect(String((error.cause as Error).cause)).toMatch(/ECONNREFUSED/);
  });

  it('gives up when the poller’s time limit runs out before its own timeout', async () => {
    await server.control({ mode: 'hang' });
    const scaler = urlScaler(server.url, { timeout: '10s' });
    await expectError(sample(scaler, 300), /the request to http:\/\/127\.0\.0\.1:\d+\/metrics was aborted/);
    await server.control({ mode: 'ok' });
  });

  it('reads between polls: a pollingInterval longer than the window still gives its rate', async () => {
    await server.control({ rate: 20, mode: 'ok' });
    const scaler = urlScaler(server.url, { window: '2s' });
    try {
      await expectError(sample(scaler), /not enough samples yet/);
      // One poll 3 s later: the window holds the scaler's own reads (every 250 ms), not just this one.
      await sleep(3000);
      const { value } = await sample(scaler);
      expect(value).toBeGreaterThan(18);
      expect(value).toBeLessThan(22);
    } finally {
      await scaler.close();
    }
  });

  it('stops reading at close()', async () => {
    const scaler = urlScaler(server.url, { window: '2s' });
    await sample(scaler).catch(() => undefined);
    await sleep(600);
    await scaler.close();
    const after = server.scrapes();
    await sleep(1000);
    expect(server.scrapes()).toBe(after);
    await expectError(sample(scaler), /closed/);
  });

  it('recovers behind the circuit breaker once the exporter is back (window shorter than the reset timeout)', async () => {
    await server.control({ rate: 20, mode: 'ok' });
    // As the scaling loop runs it: pollingInterval 1 s, so the breaker waits 5 s before a trial call; window 3 s.
    const guarded = new GuardedScaler(urlScaler(server.url, { window: '3s' }), breakerOptionsFor(1));
    const poll = () =>
      guarded.sample().then(
        (s) => s.value,
        (err: unknown) => err as Error,
      );
    try {
      for (let i = 0; i < 3; i++) {
        await poll();
        await sleep(1000);
      }
      await server.control({ mode: 500 });
      await waitFor(async () => (await poll(), guarded.state === 'open'), { timeoutMs: 15_000, intervalMs: 1000 });
      await sleep(6000);
      await server.control({ mode: 'ok' });
      const recovered = await waitFor(
        async () => {
          const value = await poll();
          return typeof value === 'number' ? value : undefined;
        },
        { timeoutMs: 15_000, intervalMs: 1000, message: 'a value after the exporter recovered' },
      );
      expect(recovered).toBeGreaterThan(15);
      expect(recovered).toBeLessThan(25);
      expect(guarded.state).toBe('closed');
    } finally {
      await guarded.close();
    }
  });

  it('leaves the query string (it may hold a token) out of messages', async () => {
    await server.control({ mode: 500 });
    const scaler = urlScaler(`${server.url}?token=s3cret`);
    const error = await expectError(sample(scaler), /answered HTTP 500/);
    expect(error.message).not.toContain('s3cret');
    await server.control({ mode: 'ok' });
  });
});

describe('http-rate: Service form on the real kube-apiserver', () => {
  const kc = kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  const cluster: ClusterPort = createClusterPort(kc);
  let namespace: string;
  let host: TestHost;
  const ports = [19913, 19914];
  let controls: ((change: CounterControl) => Promise<void>)[];

  const slice = (
    name: string,
    service: string,
    port: { name?: string; port: number }[],
    endpoints: { address: string; ready?: boolean }[],
  ): V1EndpointSlice => ({
    metadata: { name, labels: { 'kubernetes.io/service-name': service } },
    addressType: 'IPv4',
    ports: port.map((p) => ({ ...p, protocol: 'TCP' })),
    endpoints: endpoints.map((e) => ({
      addresses: [e.address],
      ...(e.ready === undefined ? {} : { conditions: { ready: e.ready } }),
    })),
  });

  const serviceScaler = (service: string, extra: Record<string, string> = {}): Scaler =>
    track(
      createHttpRateScaler(
        triggerInput({
          type: 'http-rate',
          namespace,
          cluster,
          metadata: { service, port: 'metrics', counter: COUNTER, targetRate: '10', window: '3s', ...extra },
        }),
      ),
    );

  beforeAll(async () => {
    namespace = await createNamespace(kc, 'http-rate');
    host = await createTestHost();
    const script = path.join(REPO_ROOT, 'test/support/counter-server.ts');
    const node = process.execPath;
    controls = [];
    for (const port of ports) {
      await host.spawn(node, [script, host.address, String(port)], /listening/);
      controls.push(remoteCounterControl(`http://${host.address}:${port}`));
    }
  });

  afterAll(async () => {
    await deleteNamespace(kc, namespace);
    await host.close();
  });

  it('finds the ready endpoints of a Service port through its EndpointSlices', async () => {
    await core.createNamespacedService({
      namespace,
      body: {
        metadata: { name: 'discover' },
        spec: {
          ports: [
            { name: 'metrics', port: 80, targetPort: 9913 },
            { name: 'admin', port: 81, targetPort: 8081 },
          ],
        },
      },
    });
    // Documentation addresses (TEST-NET-2): never contacted, discovery only.
    const slices = [
      slice(
        'discover-a',
        'discover',
        [
          { name: 'metrics', port: 9913 },
          { name: 'admin', port: 8081 },
        ],
        [
          { address: '198.51.100.10', ready: true },
          { address: '198.51.100.11', ready: false },
          { address: '198.51.100.12' },
        ],
      ),
      slice('discover-b', 'discover', [{ name: 'metrics', port: 9914 }], [{ address: '198.51.100.13', ready: true }]),
      slice('other-a', 'other', [{ name: 'metrics', port: 9913 }], [{ address: '198.51.100.99', ready: true }]),
      // The same pod's IPv6 slice, as a dual-stack Service has: not the Service's primary family, so not read
      // (or its pods would be counted twice).
      Object.assign(
        slice('discover-v6', 'discover', [{ name: 'metrics', port: 9913 }], [{ address: '2001:db8::10', ready: true }]),
        { addressType: 'IPv6' },
      ),
    ];
    for (const body of slices) await discovery.createNamespacedEndpointSlice({ namespace, body });

    const sorted = (list: { address: string; port: number }[]) => list.map((e) => `${e.address}:${e.port}`).sort();
    const metrics = ['198.51.100.10:9913', '198.51.100.12:9913', '198.51.100.13:9914'];
    expect(sorted(await cluster.readyEndpoints(namespace, 'discover', 'metrics'))).toEqual(metrics);
    expect(sorted(await cluster.readyEndpoints(namespace, 'discover', '80'))).toEqual(metrics);
    expect(sorted(await cluster.readyEndpoints(namespace, 'discover', 'admin'))).toEqual([
      '198.51.100.10:8081',
      '198.51.100.12:8081',
    ]);
    await expect(cluster.readyEndpoints(namespace, 'discover', 'nope')).rejects.toThrow(/has no port "nope"/);
    await expect(cluster.readyEndpoints(namespace, 'missing', 'metrics')).rejects.toThrow(/cannot read Service/);
  });

  it('scrapes every ready endpoint and sums them; one failing endpoint fails the sample; none is unknown', async () => {
    await core.createNamespacedService({
      namespace,
      body: { metadata: { name: 'proxy' }, spec: { ports: [{ name: 'metrics', port: 80, targetPort: 9913 }] } },
    });
    // One endpoint per slice: the port is per slice. Both point at exporters in the test's network namespace.
    for (const [i, port] of ports.entries()) {
      await discovery.createNamespacedEndpointSlice({
        namespace,
        body: slice(`proxy-${i}`, 'proxy', [{ name: 'metrics', port }], [{ address: host.address, ready: true }]),
      });
    }
    await controls[0]?.({ rate: 10, mode: 'ok' });
    await controls[1]?.({ rate: 30, mode: 'ok' });
    const scaler = serviceScaler('proxy');
    const summed = await sampleFor(scaler, 3500, 300);
    console.log(`[measure] http-rate Service form, two endpoints at 10/s + 30/s: ${summed.value.toFixed(3)}/s`);
    expect(summed.value).toBeGreaterThan(36);
    expect(summed.value).toBeLessThan(44);

    // One endpoint answers 500: the whole sample is an error (a partial sum would read 10/s).
    await controls[1]?.({ mode: 500 });
    await expectError(
      sample(scaler),
      new RegExp(`1 of 2 endpoints of Service ${namespace}/proxy port metrics failed .*answered HTTP 500`),
    );
    await controls[1]?.({ mode: 'ok' });

    // A third ready endpoint where nothing listens (unreachable): an error too.
    await discovery.createNamespacedEndpointSlice({
      namespace,
      body: slice('proxy-dead', 'proxy', [{ name: 'metrics', port: 19999 }], [{ address: host.address, ready: true }]),
    });
    const error = await expectError(sample(scaler), /1 of 3 endpoints .* failed .*cannot reach http:\/\//);
    expect(error.message).toContain(`${host.address}:19999`);

    // Not ready: no longer scraped, and the sum is back.
    await discovery.patchNamespacedEndpointSlice({
      namespace,
      name: 'proxy-dead',
      body: [{ op: 'replace', path: '/endpoints/0/conditions', value: { ready: false } }],
    });
    const back = await sample(scaler);
    expect(back.value).toBeGreaterThan(36);
    expect(back.value).toBeLessThan(44);

    // Every endpoint gone (e.g. the proxies scaled to zero): unknown, not zero.
    for (const name of ['proxy-0', 'proxy-1', 'proxy-dead']) {
      await discovery.deleteNamespacedEndpointSlice({ namespace, name });
    }
    await expectError(
      sample(scaler),
      /Service .*\/proxy port metrics has no ready endpoint: the request rate is unknown/,
    );
  });

  it('a missing Service or port is an error', async () => {
    await expectError(sample(serviceScaler('absent')), /cannot read Service .*\/absent/);
    await expectError(sample(serviceScaler('proxy', { port: 'admin' })), /has no port "admin"/);
  });
});
