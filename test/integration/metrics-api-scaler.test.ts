// The metrics-api scaler against real HTTP(S) servers this test starts on 127.0.0.1: JSON and Prometheus text
// formats, each authentication mode, TLS with a CA made by openssl, and every way of not knowing the value
// (timeout, connection refused, 5xx/404, empty or malformed body, a missing value, authentication failure) being an
// error, never 0.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetricsApiScaler } from '../../src/scalers/metrics-api.ts';
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

const SECRET = 'key-8d2e51b0-secret';
const signal = () => AbortSignal.timeout(5000);

const scalers: StandaloneScaler[] = [];
function scaler(metadata: Record<string, string>, authParams: Record<string, string> = {}): StandaloneScaler {
  // The url is also the TriggerAuthentication's when it supplies anything (test/support/pinned-address.ts).
  const s = standalone(
    createMetricsApiScaler(
      triggerInput({ type: 'metrics-api', ...pinnedAddress('url', 'copy', metadata, authParams) }),
    ),
  );
  scalers.push(s);
  return s;
}

const sampleError = (s: StandaloneScaler): Promise<string> => expectSampleError(s, [SECRET]);

let server: MetricServer;
beforeAll(async () => {
  server = await startMetricServer();
});
afterAll(async () => {
  await Promise.all(scalers.map((s) => s.close()));
  await server.close();
});

const json = (value: unknown) => ({ body: JSON.stringify(value), contentType: 'application/json' });

describe('metrics-api: format json', () => {
  const api = (extra: Record<string, string> = {}, authParams: Record<string, string> = {}) =>
    scaler(
      { url: `${server.url}/api/v1/stats`, valueLocation: 'components.0.tasks', targetValue: '5', ...extra },
      authParams,
    );

  it('reads the value and asks for JSON', async () => {
    server.respond = () => json({ components: [{ id: '82328e93e', tasks: 32 }], count: 2.43 });
    expect(await api({ activationTargetValue: '20' }).sample(signal())).toEqual({ value: 32, active: true });
    const request = server.requests.at(-1);
    expect(request?.url).toBe('/api/v1/stats');
    expect(request?.headers['accept']).toBe('application/json');
  });

  it('a value at activationTargetValue is not active (strict >); 0 is a value', async () => {
    server.respond = () => json({ components: [{ tasks: 20 }] });
    expect(await api({ activationTargetValue: '20' }).sample(signal())).toEqual({ value: 20, active: false });
    server.respond = () => json({ components: [{ tasks: 0 }] });
    expect(await api().sample(signal())).toEqual({ value: 0, active: false });
  });

  it('a string value is read as a Quantity', async () => {
    server.respond = () => json({ components: [{ tasks: '1.5k' }] });
    expect((await api().sample(signal())).value).toBe(1500);
  });

  it('"#" counts the elements of an array', async () => {
    server.respond = () => json({ jobs: [{}, {}, {}] });
    expect((await api({ valueLocation: 'jobs.#' }).sample(signal())).value).toBe(3);
  });

  it.each([
    { comment: 'a missing value', body: { components: [] }, error: 'nothing at "components.0"' },
    { comment: 'null', body: { components: [{ tasks: null }] }, error: 'got null' },
    { comment: 'a boolean', body: { components: [{ tasks: true }] }, error: 'boolean true' },
    {
      comment: 'a non-Quantity string (never quoted)',
      body: { components: [{ tasks: 'NaN' }] },
      error: 'the value at "components.0.tasks" is not a number',
    },
    { comment: 'an empty JSON object', body: {}, error: 'nothing at "components"' },
  ])('$comment is an error', async ({ body, error }) => {
    server.respond = () => json(body);
    expect(await sampleError(api())).toContain(error);
  });

  it.each([
    { comment: 'HTML', body: '<html><body>502 Bad Gateway</body></html>' },
    { comment: 'truncated JSON', body: '{"components":[{"tasks":3' },
    { comment: 'an empty body', body: '' },
  ])('a malformed body ($comment) is an error', async ({ body }) => {
    server.respond = () => ({ body, contentType: 'application/json' });
    expect(await sampleError(api())).toBe(`${server.url}/api/v1/stats: the answer is not JSON`);
  });

  it.each([500, 502, 503, 404, 418])('HTTP %i is an error naming the status', async (status) => {
    server.respond = () => ({ status, ...json({ components: [{ tasks: 3 }] }) });
    expect(await sampleError(api())).toBe(`${server.url}/api/v1/stats answered HTTP ${status}`);
  });

  it('a redirect is an error, not followed', async () => {
    server.respond = () => ({ status: 301, body: '' });
    expect(await sampleError(api())).toContain('answered HTTP 301');
  });

  it('a server that does not answer in time is an error after the timeout', async () => {
    server.respond = () => 'hang';
    const t0 = performance.now();
    expect(await sampleError(api({ timeout: '250' }))).toContain('did not answer within 250 ms (timeout)');
    expect(performance.now() - t0).toBeLessThan(1500);
  });

  it('connection refused is an error', async () => {
    const port = await closedPort();
    const s = scaler({ url: `http://127.0.0.1:${port}/m`, valueLocation: 'v', targetValue: '5' });
    expect(await sampleError(s)).toMatch(/cannot reach http:\/\/127\.0\.0\.1:\d+\/m: .*ECONNREFUSED/);
  });
});

describe('metrics-api: format prometheus', () => {
  const api = (valueLocation: string) =>
    scaler({ url: `${server.url}/metrics`, format: 'prometheus', valueLocation, targetValue: '5' });
  const series = {
    'backend_queue_size{queueName="zero"}': 0,
    'backend_queue_size{queueName="one"}': 1,
    'backend_queue_size{queueName="two",instance="random"}': 2,
    'backend_queue_size{queueName="two",instance="zero"}': 20,
    random_metric: 10,
    nan_metric: NaN,
  };

  it('reads the one matching sample and asks for text exposition', async () => {
    server.respond = () => ({ body: exposition(series), contentType: EXPOSITION_TYPE });
    expect((await api('backend_queue_size{queueName="two",instance="zero"}').sample(signal())).value).toBe(20);
    expect((await api('random_metric').sample(signal())).value).toBe(10);
    expect((await api('backend_queue_size{queueName="zero"}').sample(signal())).value).toBe(0);
    expect(server.requests.at(-1)?.headers['accept']).toContain('text/plain');
  });

  it.each([
    {
      comment: 'several matching series (KEDA takes the first)',
      selector: 'backend_queue_size{queueName="two"}',
      error: '2 series match',
    },
    { comment: 'no matching series', selector: 'backend_queue_size{queueName="three"}', error: 'no sample matches' },
    { comment: 'a missing metric', selector: 'requests_total', error: 'no sample matches requests_total' },
    { comment: 'NaN', selector: 'nan_metric', error: 'NaN, not a finite number' },
  ])('$comment is an error', async ({ selector, error }) => {
    server.respond = () => ({ body: exposition(series), contentType: EXPOSITION_TYPE });
    expect(await sampleError(api(selector))).toContain(error);
  });

  it.each([
    { comment: 'JSON', body: '{"random_metric": 10}' },
    { comment: 'a broken line', body: 'random_metric{a="b" 10\n' },
    { comment: 'binary (protobuf)', body: '\u0008\u0012\u0003abc\u0000' },
  ])('a body that is not exposition ($comment) is an error', async ({ body }) => {
    server.respond = () => ({ body });
    expect(await sampleError(api('random_metric'))).toContain('not Prometheus text exposition');
  });

  it('an empty body is an error', async () => {
    server.respond = () => ({ body: '' });
    expect(await sampleError(api('random_metric'))).toContain('no sample matches');
  });

  it('HTTP 503 is an error', async () => {
    server.respond = () => ({ status: 503, body: exposition(series) });
    expect(await sampleError(api('random_metric'))).toContain('answered HTTP 503');
  });
});

describe('metrics-api: authentication', () => {
  const value = json({ value: 7 });
  const api = (metadata: Record<string, string>, authParams: Record<string, string>) =>
    scaler({ url: `${server.url}/m`, valueLocation: 'value', targetValue: '5', ...metadata }, authParams);

  it('apiKey in the default X-API-KEY header', async () => {
    server.respond = (req) => (req.headers['x-api-key'] === SECRET ? value : { status: 401 });
    expect((await api({ authMode: 'apiKey' }, { apiKey: SECRET }).sample(signal())).value).toBe(7);
    expect(await sampleError(api({ authMode: 'apiKey' }, { apiKey: 'wrong' }))).toBe(
      `authentication failed: ${server.url}/m answered HTTP 401`,
    );
  });

  it('apiKey in a custom header', async () => {
    server.respond = (req) => (req.headers['x-custom-key'] === SECRET ? value : { status: 401 });
    const s = api({ authMode: 'apiKey' }, { apiKey: SECRET, keyParamName: 'X-Custom-Key' });
    expect((await s.sample(signal())).value).toBe(7);
  });

  it('apiKey as a query parameter (default api_key), never in messages', async () => {
    server.respond = (req) =>
      new URL(req.url, server.url).searchParams.get('api_key') === SECRET ? value : { status: 403 };
    expect((await api({ authMode: 'apiKey', method: 'query' }, { apiKey: SECRET }).sample(signal())).value).toBe(7);
    server.respond = () => ({ status: 500 });
    expect(await sampleError(api({ authMode: 'apiKey', method: 'query' }, { apiKey: SECRET }))).toBe(
      `${server.url}/m answered HTTP 500`,
    );
  });

  it('apiKey as a query parameter with a custom name', async () => {
    server.respond = (req) =>
      new URL(req.url, server.url).searchParams.get('token') === SECRET ? value : { status: 403 };
    const s = api({ authMode: 'apiKey' }, { apiKey: SECRET, method: 'query', keyParamName: 'token' });
    expect((await s.sample(signal())).value).toBe(7);
  });

  it('basic', async () => {
    const expected = `Basic ${Buffer.from(`user:${SECRET}`).toString('base64')}`;
    server.respond = (req) => (req.headers['authorization'] === expected ? value : { status: 401 });
    expect((await api({ authMode: 'basic' }, { username: 'user', password: SECRET }).sample(signal())).value).toBe(7);
    expect(await sampleError(api({ authMode: 'basic' }, { username: 'user', password: 'x' }))).toContain(
      'authentication failed',
    );
  });

  it('bearer', async () => {
    server.respond = (req) => (req.headers['authorization'] === `Bearer ${SECRET}` ? value : { status: 401 });
    expect((await api({ authMode: 'bearer' }, { token: SECRET }).sample(signal())).value).toBe(7);
    expect(await sampleError(api({ authMode: 'bearer' }, { token: `${SECRET}x` }))).toContain('authentication failed');
    expect(await sampleError(api({}, {}))).toContain('authentication failed');
  });

  it('custom', async () => {
    server.respond = (req) => (req.headers['x-org'] === SECRET ? value : { status: 401 });
    const s = api({ authMode: 'custom' }, { customAuthHeader: 'X-Org', customAuthValue: SECRET });
    expect((await s.sample(signal())).value).toBe(7);
  });
});

describe('metrics-api: TLS (a CA made with openssl)', () => {
  let pki: TestPki;
  let https: MetricServer;
  let mtls: MetricServer;

  beforeAll(async () => {
    pki = makeTestPki();
    https = await startMetricServer({ tls: { cert: pki.serverCert, key: pki.serverKey } });
    mtls = await startMetricServer({
      tls: { cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert, requestCert: true },
    });
    https.respond = () => json({ value: 8 });
    mtls.respond = (req) =>
      req.authorizedClient && req.headers['x-api-key'] === SECRET ? json({ value: 9 }) : { status: 401 };
  });
  afterAll(async () => {
    await https.close();
    await mtls.close();
  });

  it('an untrusted server certificate is an error', async () => {
    const s = scaler({ url: `${https.url}/m`, valueLocation: 'value', targetValue: '5' });
    expect(await sampleError(s)).toMatch(/cannot reach .*: fetch failed: .*(certificate|verify)/);
  });

  it('ca (without the tls mode) trusts it', async () => {
    const s = scaler({ url: `${https.url}/m`, valueLocation: 'value', targetValue: '5' }, { ca: pki.caCert });
    expect((await s.sample(signal())).value).toBe(8);
  });

  it('unsafeSsl skips verification', async () => {
    const s = scaler({ url: `${https.url}/m`, valueLocation: 'value', targetValue: '5', unsafeSsl: 'true' });
    expect((await s.sample(signal())).value).toBe(8);
  });

  it('authMode apiKey,tls: client certificate and key header together', async () => {
    const s = scaler(
      { url: `${mtls.url}/m`, valueLocation: 'value', targetValue: '5', authMode: 'apiKey,tls' },
      { apiKey: SECRET, ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey },
    );
    expect((await s.sample(signal())).value).toBe(9);
  });

  it('without the client certificate the handshake fails: an error', async () => {
    const s = scaler(
      { url: `${mtls.url}/m`, valueLocation: 'value', targetValue: '5', authMode: 'apiKey' },
      { apiKey: SECRET, ca: pki.caCert },
    );
    expect(await sampleError(s)).toContain('cannot reach');
  });
});
