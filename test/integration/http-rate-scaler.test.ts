// The http-rate scaler against real HTTP exporters this test starts (test/support/counter-server.ts), and its Service
// form against the real kube-apiserver: discovery through real EndpointSlices, and scraping real exporters that run
// in a network namespace this test creates (EndpointSlices may not hold loopback addresses). Each sample() of a
// standalone scaler is one read (one scrape of every endpoint); what reads on its own, about once a second, is the
// ReaderHub, which the tests about reading between polls, closing and the circuit breaker use.
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, DiscoveryV1Api, type V1EndpointSlice } from '@kubernetes/client-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BackendError, ScalerError, describeError } from '../../src/errors.ts';
import { createClusterPort } from '../../src/operator/kube.ts';
import { createHttpRateScaler } from '../../src/scalers/http-rate.ts';
import { ReaderHub } from '../../src/scalers/readers.ts';
import type { ClusterPort, Sample, Scaler, TriggerResult } from '../../src/scalers/scaler.ts';
import { SharedPool } from '../../src/scalers/shared.ts';
import {
  startCounterServer,
  remoteCounterControl,
  type CounterControl,
  type CounterMode,
  type CounterServer,
} from '../support/counter-server.ts';
import { REPO_ROOT, createNamespace, deleteNamespace, kubeConfig, waitFor } from '../support/env.ts';
import { createTestHost, type TestHost } from '../support/netns.ts';
import { standalone, triggerInput, type StandaloneScaler } from '../support/trigger.ts';

const COUNTER = 'http_requests_total{code="2xx"}';

/** Readers keep their window (and a lease of a connection pool) between samples: every test's are closed after it. */
const open: StandaloneScaler[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});
const track = (scaler: StandaloneScaler): StandaloneScaler => (open.push(scaler), scaler);

function urlTrigger(url: string, extra: Record<string, string> = {}): Scaler {
  return createHttpRateScaler(
    triggerInput({ type: 'http-rate', metadata: { url, counter: COUNTER, targetRate: '10', ...extra } }),
  );
}

function urlScaler(url: string, extra: Record<string, string> = {}): StandaloneScaler {
  return track(standalone(urlTrigger(url, extra)));
}

const sample = (scaler: StandaloneScaler, timeoutMs = 10_000): Promise<Sample> =>
  scaler.sample(AbortSignal.timeout(timeoutMs));

/** Samples every `everyMs` for `forMs` (errors allowed only before the first value), returning the last sample. */
async function sampleFor(scaler: StandaloneScaler, forMs: number, everyMs = 250): Promise<Sample> {
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

  // `backend`: a failure of the exporter itself (counted by its circuit breaker), or an answer without a rate.
  const failures: {
    comment: string;
    mode: CounterMode;
    message: RegExp;
    backend: boolean;
    extra?: Record<string, string>;
  }[] = [
    { comment: 'HTTP 500', mode: 500, message: /answered HTTP 500/, backend: true },
    { comment: 'HTTP 503', mode: 503, message: /answered HTTP 503/, backend: true },
    {
      comment: 'a redirect (not followed)',
      mode: 302,
      message: /answered HTTP 302 \(a redirect\); redirects are not followed/,
      backend: false,
    },
    { comment: 'HTTP 404', mode: 404, message: /answered HTTP 404/, backend: false },
    {
      comment: 'authentication failure (401)',
      mode: 401,
      message: /authentication failed: http:\/\/127\.0\.0\.1:\d+\/metrics answered HTTP 401/,
      backend: true,
    },
    {
      comment: 'timeout',
      mode: 'hang',
      message: /did not answer within 300 ms \(timeout\)/,
      backend: true,
      extra: { timeout: '300ms' },
    },
    {
      comment: 'malformed body',
      mode: 'malformed',
      // sluice's words only: what was expected where, nothing of the line.
      message: /not Prometheus text exposition \(line 1: expected "," at column 32\)$/,
      backend: false,
    },
    { comment: 'empty body', mode: 'empty', message: /sent an empty body/, backend: false },
    {
      comment: 'series missing',
      mode: 'missing',
      message: /no series matches http_requests_total\{code="2xx"\}/,
      backend: false,
    },
    {
      comment: 'NaN counter',
      mode: 'nan',
      message: /a series matching http_requests_total\{code="2xx"\} at .* is not a finite, non-negative number/,
      backend: false,
    },
    { comment: 'protobuf instead of text', mode: 'protobuf', message: /sent protobuf/, backend: false },
  ];
  it.each(failures)('$comment: an error, never a zero; the window recovers after it', async (row) => {
    await server.control({ rate: 20, mode: 'ok' });
    const scaler = urlScaler(server.url, { window: '3s', ...row.extra });
    // A value first, so an error cannot hide behind "not enough samples yet".
    expect((await sampleFor(scaler, 600)).value).toBeGreaterThan(0);
    await server.control({ mode: row.mode });
    const error = await expectError(sample(scaler), row.message);
    expect(error.message).toContain(`http://127.0.0.1:${server.port}/metrics`);
    expect(error instanceof BackendError).toBe(row.backend);
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
    expect(error).toBeInstanceOf(BackendError);
    expect(String((error.cause as Error).cause)).toMatch(/ECONNREFUSED/);
  });

  it('gives up when the caller’s time limit runs out before its own timeout, naming the time it waited', async () => {
    await server.control({ mode: 'hang' });
    const scaler = urlScaler(server.url, { timeout: '10s' });
    const started = performance.now();
    const error = await expectError(
      sample(scaler, 300),
      /http:\/\/127\.0\.0\.1:\d+\/metrics did not answer within \d+ ms \(timeout\)/,
    );
    // The time the request itself waited: the caller's 300 ms signal started a moment before the request did (the
    // address check, the connection), so the figure may be a few ms under 300 (CI saw 299), never the 10 s timeout.
    const waited = Number(/within (\d+) ms/.exec(error.message)?.[1]);
    expect(waited).toBeGreaterThanOrEqual(250);
    expect(waited).toBeLessThan(1000);
    expect(performance.now() - started).toBeLessThan(2000);
    await server.control({ mode: 'ok' });
  });

  /** `trigger` watched through `hub` (as the operator's pollers do); `latest()` is its result of the latest read. */
  function watch(hub: ReaderHub, trigger: Scaler) {
    let latest: TriggerResult | undefined;
    const subscription = trigger.watch(hub, (result) => {
      latest = result;
    });
    return { latest: () => latest, subscription };
  }
  const valueOf = (result: TriggerResult | undefined): number | undefined =>
    result?.ok ? result.sample.value : undefined;

  it('reads between polls: the hub fills the window whatever the pollingInterval, so one late poll has the rate', async () => {
    await server.control({ rate: 20, mode: 'ok' });
    const hub = new ReaderHub();
    const trigger = urlTrigger(server.url, { window: '2s' });
    const watched = watch(hub, trigger);
    try {
      // Nobody samples: the hub reads the source about once a second on its own, and the window spans 2 s once it
      // holds three reads.
      await waitFor(() => hub.readsOf(trigger.sourceKey) >= 4 && watched.latest()?.ok, {
        timeoutMs: 10_000,
        message: 'the hub to have read the exporter four times',
      });
      const value = valueOf(watched.latest());
      expect(value).toBeGreaterThan(18);
      expect(value).toBeLessThan(22);
    } finally {
      await hub.close();
    }
  });

  it('stops reading when the last trigger watching the source closes', async () => {
    await server.control({ rate: 20, mode: 'ok' });
    const pool = new SharedPool();
    const hub = new ReaderHub({ shared: pool });
    const trigger = urlTrigger(server.url, { window: '2s' });
    // Two triggers on one source share one reader: closing one keeps it reading.
    const first = watch(hub, trigger);
    const second = watch(hub, urlTrigger(server.url, { window: '2s', targetRate: '99' }));
    try {
      const before = server.scrapes();
      await waitFor(() => server.scrapes() >= before + 2, { timeoutMs: 5000, message: 'two reads by the hub' });
      first.subscription.close();
      const still = server.scrapes();
      await waitFor(() => server.scrapes() > still, { timeoutMs: 5000, message: 'a read after one of two closed' });
      expect(hub.stats().sources).toBe(1);
      second.subscription.close();
      // The reader closes and releases its connection pool...
      await waitFor(() => hub.stats().sources === 0 && pool.held().size === 0, {
        timeoutMs: 5000,
        message: 'the reader and its pool to be released',
      });
      // ...and nothing reads the exporter any more (an absence: it takes a wait longer than the interval to show).
      const after = server.scrapes();
      await sleep(2500);
      expect(server.scrapes()).toBe(after);
    } finally {
      await hub.close();
    }
  });

  it('recovers behind the circuit breaker once the exporter is back, after an outage longer than the window', async () => {
    await server.control({ rate: 20, mode: 'ok' });
    const hub = new ReaderHub();
    const trigger = urlTrigger(server.url, { window: '3s' });
    const watched = watch(hub, trigger);
    const breaker = () => hub.stats().breakers[`http://127.0.0.1:${server.port}/metrics`];
    try {
      await waitFor(() => watched.latest()?.ok, { timeoutMs: 10_000, message: 'a first rate' });
      await server.control({ mode: 500 });
      await waitFor(() => breaker() === 'open' || breaker() === 'halfOpen', {
        timeoutMs: 15_000,
        message: 'the circuit to open',
      });
      expect(watched.latest()?.ok).toBe(false);
      // Longer than the window: when the exporter is back, nothing of before the outage is left in it.
      const outage = server.scrapes();
      await waitFor(() => server.scrapes() >= outage + 4, { timeoutMs: 15_000, message: 'probes during the outage' });
      await server.control({ mode: 'ok' });
      const recovered = await waitFor(() => valueOf(watched.latest()), {
        timeoutMs: 15_000,
        message: 'a rate after the exporter recovered',
      });
      expect(recovered).toBeGreaterThan(15);
      expect(recovered).toBeLessThan(25);
      expect(breaker()).toBe('closed');
    } finally {
      await hub.close();
    }
  });

  it('an open breaker stops the background reads: five readers of one failing exporter cost one probe per interval', async () => {
    await server.control({ rate: 20, mode: 'ok' });
    const hub = new ReaderHub();
    // Five sources (five windows), one backend: the exporter's URL.
    const triggers = [1, 2, 3, 4, 5].map((i) => urlTrigger(server.url, { window: `${i + 1}s` }));
    const watched = triggers.map((trigger) => watch(hub, trigger));
    const breaker = () => hub.stats().breakers[`http://127.0.0.1:${server.port}/metrics`];
    try {
      await waitFor(() => watched.every((w) => w.latest()?.ok), { timeoutMs: 10_000, message: 'five rates' });
      const healthy = server.scrapes();
      await sleep(3000);
      // Closed: every reader reads once per interval (≈ 15 in 3 s).
      expect(server.scrapes() - healthy).toBeGreaterThanOrEqual(10);
      await server.control({ mode: 500 });
      await waitFor(() => breaker() === 'open', { timeoutMs: 15_000, message: 'the circuit to open' });
      const opened = server.scrapes();
      await sleep(5000);
      const whileOpen = server.scrapes() - opened;
      // Open: one probe per interval at most (≈ 5 in 5 s, against ≈ 25 without the breaker), and never none.
      expect(whileOpen).toBeGreaterThanOrEqual(2);
      expect(whileOpen).toBeLessThanOrEqual(7);
      expect(watched.every((w) => w.latest()?.ok === false)).toBe(true);
    } finally {
      for (const w of watched) w.subscription.close();
      await hub.close();
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

  const serviceScaler = (service: string, extra: Record<string, string> = {}): StandaloneScaler =>
    track(
      standalone(
        createHttpRateScaler(
          triggerInput({
            type: 'http-rate',
            namespace,
            cluster,
            metadata: { service, port: 'metrics', counter: COUNTER, targetRate: '10', window: '3s', ...extra },
          }),
        ),
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
