// The prometheus scaler against the REAL Prometheus of the test environment, scraping an exporter this test runs
// (a gauge it sets and two counters growing at 10/s and 20/s), found through a file_sd target; and against local
// HTTP(S) servers for what Prometheus itself cannot be made to do (5xx, malformed JSON, several series in a
// hand-made answer, authentication, TLS). Every way of not knowing the value is an error, never 0.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeError } from '../../src/errors.ts';
import { createPrometheusScaler } from '../../src/scalers/prometheus.ts';
import { addScrapeTarget, loadTestEnv, queryPrometheus, uniqueName, waitFor } from '../support/env.ts';
import {
  EXPOSITION_TYPE,
  closedPort,
  exposition,
  startMetricServer,
  type MetricServer,
} from '../support/metric-server.ts';
import { makeTestPki, type TestPki } from '../support/pki.ts';
import { expectSampleError, standalone, triggerInput, type StandaloneScaler } from '../support/trigger.ts';
import { pinnedAddress } from '../support/pinned-address.ts';

const SECRET = 'tok-3f9a7c1e-secret';
const signal = () => AbortSignal.timeout(5000);

const scalers: StandaloneScaler[] = [];
function scaler(metadata: Record<string, string>, authParams: Record<string, string> = {}): StandaloneScaler {
  // The serverAddress is also the TriggerAuthentication's when it supplies anything (test/support/pinned-address.ts).
  const s = standalone(
    createPrometheusScaler(
      triggerInput({ type: 'prometheus', ...pinnedAddress('serverAddress', 'copy', metadata, authParams) }),
    ),
  );
  scalers.push(s);
  return s;
}

const sampleError = (s: StandaloneScaler): Promise<string> => expectSampleError(s, [SECRET]);

afterAll(async () => {
  await Promise.all(scalers.map((s) => s.close()));
});

describe('prometheus scaler against the real Prometheus', () => {
  const run = uniqueName('prom-it');
  let exporter: MetricServer;
  let removeTarget: () => Promise<void>;
  let gauge = 7;
  let exporterUp = true;
  const startedAt = performance.now();
  const prometheus = () => loadTestEnv().prometheus.url;

  beforeAll(async () => {
    exporter = await startMetricServer();
    exporter.respond = (req) => {
      if (!req.url.startsWith('/metrics')) return { status: 404 };
      if (!exporterUp) return { status: 500, body: 'exporter broken' };
      const seconds = (performance.now() - startedAt) / 1000;
      return {
        contentType: EXPOSITION_TYPE,
        body: exposition({
          'sluice_it_queue_depth{queue="orders"}': gauge,
          'sluice_it_requests_total{route="/a"}': Math.floor(10 * seconds),
          'sluice_it_requests_total{route="/b"}': Math.floor(20 * seconds),
        }),
      };
    };
    removeTarget = await addScrapeTarget([`127.0.0.1:${exporter.port}`], { run });
    const t0 = performance.now();
    await waitFor(async () => (await queryPrometheus(`sluice_it_queue_depth{run="${run}"}`)).length === 1, {
      timeoutMs: 30_000,
      intervalMs: 250,
      message: 'Prometheus to scrape the test exporter',
    });
    console.log(`[measure] first scrape of a new file_sd target after ${(performance.now() - t0).toFixed(0)} ms`);
  });

  afterAll(async () => {
    await removeTarget();
    await exporter.close();
  });

  it('reads a gauge, and follows it when it changes', async () => {
    const s = scaler({
      serverAddress: prometheus(),
      query: `sluice_it_queue_depth{run="${run}"}`,
      threshold: '5',
      activationThreshold: '7',
    });
    gauge = 7;
    await waitFor(async () => (await s.sample(signal())).value === 7, { timeoutMs: 10_000, message: 'gauge 7' });
    // Equal to activationThreshold: not active (strict >).
    expect(await s.sample(signal())).toEqual({ value: 7, active: false });
    gauge = 12.5;
    const t0 = performance.now();
    await waitFor(async () => (await s.sample(signal())).value === 12.5, {
      timeoutMs: 10_000,
      intervalMs: 100,
      message: 'gauge 12.5',
    });
    console.log(`[measure] gauge change visible through the scaler after ${(performance.now() - t0).toFixed(0)} ms`);
    expect((await s.sample(signal())).active).toBe(true);
  });

  it('reads a rate over a short window', async () => {
    const s = scaler({
      serverAddress: prometheus(),
      query: `sum(rate(sluice_it_requests_total{run="${run}"}[5s]))`,
      threshold: '10',
    });
    // rate() extrapolates over the first samples of a new series: wait for a full window of scrapes.
    const sample = await waitFor(
      async () => {
        const got = await s.sample(signal());
        return got.value > 24 && got.value < 36 ? got : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 500, message: 'the rate to settle near 30/s (10/s + 20/s)' },
    );
    expect(sample.active).toBe(true);
  });

  it('sends namespace, queryParameters and customHeaders (Prometheus ignores what it does not know)', async () => {
    const s = scaler({
      serverAddress: `${prometheus()}/`,
      query: `sluice_it_queue_depth{run="${run}"}`,
      threshold: '5',
      namespace: 'team-a',
      queryParameters: 'dedup=true,partial_response=false',
      customHeaders: 'X-Scope-OrgID=tenant-1',
    });
    expect((await s.sample(signal())).value).toBe(gauge);
  });

  it('an empty result is an error by default (KEDA reads it as 0)…', async () => {
    const message = await sampleError(
      scaler({
        serverAddress: prometheus(),
        query: `sluice_it_queue_depth{run="${run}",queue="nope"}`,
        threshold: '5',
      }),
    );
    expect(message).toContain('empty result');
    expect(message).toContain('ignoreNullValues');
  });

  it('…and 0 with ignoreNullValues: "true"', async () => {
    const s = scaler({
      serverAddress: prometheus(),
      query: `sluice_it_queue_depth{run="${run}",queue="nope"}`,
      threshold: '5',
      ignoreNullValues: 'true',
    });
    expect(await s.sample(signal())).toEqual({ value: 0, active: false });
  });

  it('more than one series is an error, even with ignoreNullValues', async () => {
    const message = await sampleError(
      scaler({
        serverAddress: prometheus(),
        query: `sluice_it_requests_total{run="${run}"}`,
        threshold: '5',
        ignoreNullValues: 'true',
      }),
    );
    expect(message).toContain('returned 2 series');
  });

  it('NaN and +Inf are errors by default, 0 with ignoreNullValues', async () => {
    const nan = `sluice_it_queue_depth{run="${run}"} * 0 / 0`;
    const inf = `sluice_it_queue_depth{run="${run}"} / 0`;
    gauge = 3;
    expect(await sampleError(scaler({ serverAddress: prometheus(), query: nan, threshold: '5' }))).toContain(
      'returned NaN',
    );
    expect(await sampleError(scaler({ serverAddress: prometheus(), query: inf, threshold: '5' }))).toContain(
      'returned +Inf',
    );
    const ignoring = scaler({ serverAddress: prometheus(), query: inf, threshold: '5', ignoreNullValues: 'true' });
    expect((await ignoring.sample(signal())).value).toBe(0);
  });

  it('a scalar result is read', async () => {
    const s = scaler({ serverAddress: prometheus(), query: 'scalar(vector(4.5))', threshold: '5' });
    expect((await s.sample(signal())).value).toBe(4.5);
  });

  it("an invalid query is an error named by Prometheus' errorType, never quoting its error text", async () => {
    const message = await sampleError(scaler({ serverAddress: prometheus(), query: 'sum(rate(x[5', threshold: '5' }));
    expect(message).toMatch(/answered HTTP 400: bad_data \(the query or its parameters are invalid/);
    expect(message).not.toMatch(/parse error/);
  });

  it('a range query result (matrix) is an error', async () => {
    const message = await sampleError(
      scaler({ serverAddress: prometheus(), query: `sluice_it_queue_depth{run="${run}"}[5s]`, threshold: '5' }),
    );
    expect(message).toContain('"matrix"');
  });

  it('a wrong path prefix (404) is an error', async () => {
    const message = await sampleError(
      scaler({ serverAddress: `${prometheus()}/not-prometheus`, query: 'vector(1)', threshold: '5' }),
    );
    expect(message).toContain('answered HTTP 404');
  });

  it('the exporter failing: the series goes stale and the default read is an error, never 0 (keda#3065)', async () => {
    const s = scaler({ serverAddress: prometheus(), query: `sluice_it_queue_depth{run="${run}"}`, threshold: '5' });
    gauge = 9;
    await waitFor(async () => (await s.sample(signal())).value === 9, { timeoutMs: 10_000, message: 'gauge 9' });
    exporterUp = false;
    const t0 = performance.now();
    const message = await waitFor(
      async () => {
        try {
          await s.sample(signal());
          return undefined;
        } catch (err) {
          return describeError(err);
        }
      },
      { timeoutMs: 15_000, intervalMs: 100, message: 'the stale series to turn into an error' },
    );
    console.log(`[measure] exporter failing → scaler error after ${(performance.now() - t0).toFixed(0)} ms`);
    expect(message).toContain('empty result');
    exporterUp = true;
    await waitFor(async () => (await s.sample(signal())).value === 9, { timeoutMs: 15_000, message: 'recovery' });
  });
});

describe('prometheus scaler: failure modes from a local server', () => {
  let server: MetricServer;
  const one = (value: string) =>
    JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [{ metric: {}, value: [1, value] }] } });

  beforeAll(async () => {
    server = await startMetricServer();
  });
  afterAll(() => server.close());

  const prom = (extra: Record<string, string> = {}, authParams: Record<string, string> = {}) =>
    scaler({ serverAddress: server.url, query: 'q', threshold: '5', ...extra }, authParams);

  it('sanity: a valid answer is read', async () => {
    server.respond = () => ({ body: one('3'), contentType: 'application/json' });
    expect(await prom().sample(signal())).toEqual({ value: 3, active: true });
  });

  it.each([500, 502, 503, 404])('HTTP %i is an error naming the status', async (status) => {
    server.respond = () => ({ status, body: '<html>upstream error</html>' });
    expect(await sampleError(prom())).toBe(`${server.url}/api/v1/query answered HTTP ${status}`);
  });

  it.each([
    { comment: 'not JSON', body: '<html>hello</html>', error: 'not JSON' },
    { comment: 'truncated JSON', body: one('3').slice(0, 30), error: 'not JSON' },
    { comment: 'empty body', body: '', error: 'not JSON' },
    { comment: 'KEDA reads {} as 0', body: '{}', error: 'malformed' },
    // Prometheus' error text is never quoted; an error without a known errorType is named so.
    {
      comment: 'status error in a 200',
      body: '{"status":"error","error":"boom"}',
      error: 'an error of an unknown type',
    },
    { comment: 'value not a number', body: one('many'), error: 'is not a number' },
  ])('a malformed body is an error, even with ignoreNullValues ($comment)', async ({ body, error }) => {
    server.respond = () => ({ body, contentType: 'application/json' });
    expect(await sampleError(prom({ ignoreNullValues: 'true' }))).toContain(error);
  });

  it('several series in the answer are an error', async () => {
    server.respond = () => ({
      body: JSON.stringify({
        status: 'success',
        data: {
          resultType: 'vector',
          result: [
            { metric: { pod: 'a' }, value: [1, '1'] },
            { metric: { pod: 'b' }, value: [1, '2'] },
            { metric: { pod: 'c' }, value: [1, '3'] },
          ],
        },
      }),
    });
    expect(await sampleError(prom())).toContain('returned 3 series');
  });

  it('NaN in the answer is an error', async () => {
    server.respond = () => ({ body: one('NaN') });
    expect(await sampleError(prom())).toContain('returned NaN');
  });

  it('a server that does not answer in time is an error after the timeout', async () => {
    server.respond = () => 'hang';
    const t0 = performance.now();
    expect(await sampleError(prom({ timeout: '300ms' }))).toContain('did not answer within 300 ms (timeout)');
    const took = performance.now() - t0;
    console.log(`[measure] timeout 300 ms → error after ${took.toFixed(0)} ms`);
    expect(took).toBeLessThan(1500);
  });

  it('connection refused is an error', async () => {
    const port = await closedPort();
    const s = scaler({ serverAddress: `http://127.0.0.1:${port}`, query: 'q', threshold: '5' });
    expect(await sampleError(s)).toMatch(/cannot reach .*ECONNREFUSED/);
  });

  it('bearer: the right token is read, a wrong one is "authentication failed" without the token', async () => {
    server.respond = (req) =>
      req.headers['authorization'] === `Bearer ${SECRET}` ? { body: one('11') } : { status: 401, body: 'no' };
    expect((await prom({ authModes: 'bearer' }, { bearerToken: SECRET }).sample(signal())).value).toBe(11);
    const message = await sampleError(prom({ authModes: 'bearer' }, { bearerToken: `${SECRET}-wrong` }));
    expect(message).toBe(`authentication failed: ${server.url}/api/v1/query answered HTTP 401`);
    expect(message).not.toContain('wrong');
    // No auth at all: the server refuses, and that is an error too.
    expect(await sampleError(prom())).toContain('authentication failed');
  });

  it('basic: username and password are sent; 403 is "authentication failed"', async () => {
    const expected = `Basic ${Buffer.from(`user:${SECRET}`).toString('base64')}`;
    server.respond = (req) => (req.headers['authorization'] === expected ? { body: one('12') } : { status: 403 });
    expect((await prom({ authModes: 'basic' }, { username: 'user', password: SECRET }).sample(signal())).value).toBe(
      12,
    );
    expect(await sampleError(prom({ authModes: 'basic' }, { username: 'user', password: 'nope' }))).toContain(
      'authentication failed',
    );
  });

  it('custom: the header is sent', async () => {
    server.respond = (req) => (req.headers['x-org-token'] === SECRET ? { body: one('13') } : { status: 401 });
    const s = prom({ authModes: 'custom' }, { customAuthHeader: 'X-Org-Token', customAuthValue: SECRET });
    expect((await s.sample(signal())).value).toBe(13);
  });
});

describe('prometheus scaler over TLS (a self-signed CA made with openssl)', () => {
  let pki: TestPki;
  let https: MetricServer;
  let mtls: MetricServer;
  const body = JSON.stringify({ status: 'success', data: { resultType: 'scalar', result: [1, '21'] } });

  beforeAll(async () => {
    pki = makeTestPki();
    https = await startMetricServer({ tls: { cert: pki.serverCert, key: pki.serverKey } });
    mtls = await startMetricServer({
      tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert, requestCert: true },
    });
    https.respond = () => ({ body });
    mtls.respond = (req) => (req.authorizedClient ? { body } : { status: 401 });
  });
  afterAll(async () => {
    await https.close();
    await mtls.close();
  });

  it('without the CA the server certificate is refused (an error)', async () => {
    const message = await sampleError(scaler({ serverAddress: https.url, query: 'q', threshold: '5' }));
    expect(message).toMatch(/cannot reach .*: fetch failed: .*(certificate|verify)/);
  });

  it('with the CA from the TriggerAuthentication it is trusted', async () => {
    const s = scaler({ serverAddress: https.url, query: 'q', threshold: '5' }, { ca: pki.caCert });
    expect((await s.sample(signal())).value).toBe(21);
  });

  it('a different CA is refused', async () => {
    const s = scaler({ serverAddress: https.url, query: 'q', threshold: '5' }, { ca: pki.otherCaCert });
    expect(await sampleError(s)).toContain('cannot reach');
  });

  it('unsafeSsl skips verification', async () => {
    const s = scaler({ serverAddress: https.url, query: 'q', threshold: '5', unsafeSsl: 'true' });
    expect((await s.sample(signal())).value).toBe(21);
  });

  it('authModes tls presents the client certificate', async () => {
    const s = scaler(
      { serverAddress: mtls.url, query: 'q', threshold: '5', authModes: 'tls' },
      { ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey },
    );
    expect((await s.sample(signal())).value).toBe(21);
  });

  it('without the client certificate the TLS handshake fails: an error', async () => {
    const s = scaler({ serverAddress: mtls.url, query: 'q', threshold: '5' }, { ca: pki.caCert });
    expect(await sampleError(s)).toContain('cannot reach');
  });
});
