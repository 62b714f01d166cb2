// Proxy mode (src/server/proxy.ts): the pure parts as tables, then sluice's metrics API forwarding to a real adapter
// server on 127.0.0.1 — a second sluice metrics server (buildServer with front-proxy authentication over TLS, as
// `sluice operator` runs it) — and to a test server for the upstream answers a real adapter does not give on demand
// (hanging, a non-Kubernetes body, an unusable discovery).
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { ConfigError } from '../../../src/errors.ts';
import { createLogger } from '../../../src/log.ts';
import { MetricStore } from '../../../src/metric-store.ts';
import type { MetricDemand } from '../../../src/metric-demand.ts';
import { buildServer, tlsServerOf } from '../../../src/server/app.ts';
import { storeOwns } from '../../../src/server/external-metrics.ts';
import {
  createFrontProxyAuthenticator,
  frontProxyTlsOptions,
  parseRequestHeaderConfig,
} from '../../../src/server/front-proxy.ts';
import type { UserInfo } from '../../../src/server/identity.ts';
import {
  checkProxyMaterial,
  circuitOpenReply,
  createUpstream,
  escapeExtraKey,
  mergeResources,
  metricPath,
  replyFor,
  resourcesOf,
  unavailableError,
  upstreamHeaders,
  watchClientCertificate,
  type ApiResource,
  type IdentityHeaderNames,
  type Upstream,
  type UpstreamAnswer,
} from '../../../src/server/proxy.ts';
import { closedPort, startMetricServer, type MetricServer } from '../../support/metric-server.ts';
import { series } from './support.ts';
import { CA_EXTENSIONS, CLIENT_EXTENSIONS, makePki, SERVER_EXTENSIONS, type KeyPair } from './tls-support.ts';

const NAMES: IdentityHeaderNames = {
  usernameHeaders: ['X-Remote-User'],
  groupHeaders: ['X-Remote-Group'],
  extraHeaderPrefixes: ['X-Remote-Extra-'],
  uidHeaders: [],
};
const HPA: UserInfo = {
  username: 'system:serviceaccount:kube-system:horizontal-pod-autoscaler',
  uid: 'a1b2',
  groups: ['system:serviceaccounts', 'system:authenticated'],
  extra: { 'authentication.kubernetes.io/credential-id': ['JTI=1'], scopes: ['a', 'b'] },
};
const BASE = '/apis/external.metrics.k8s.io/v1beta1';
const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
const STATUS_404 = json({
  kind: 'Status',
  apiVersion: 'v1',
  metadata: {},
  status: 'Failure',
  message: 'the server could not find the metric x',
  reason: 'NotFound',
  code: 404,
});
const LIST = json({
  kind: 'ExternalMetricValueList',
  apiVersion: 'external.metrics.k8s.io/v1beta1',
  metadata: {},
  items: [],
});
const WHERE = 'at https://adapter.monitoring.svc';

function answer(code: number, body: Buffer | string, contentType = 'application/json'): UpstreamAnswer {
  return { code, contentType, body: Buffer.isBuffer(body) ? body : Buffer.from(body), tooLarge: false };
}

function messageOf(body: Buffer): string {
  return (JSON.parse(body.toString('utf8')) as { message: string }).message;
}

describe('what is sent to the upstream', () => {
  it.each([
    ['plain', 'plain'],
    ['authentication.kubernetes.io/credential-id', 'authentication.kubernetes.io%2Fcredential-id'],
    ['100%', '100%25'],
    ['a b', 'a%20b'],
    ['ü', '%C3%BC'],
  ])('escapes the extra key %s as client-go does: %s', (key, escaped) => {
    expect(escapeExtraKey(key)).toBe(escaped);
  });

  it('states the authenticated user under the cluster header names, and nothing else', () => {
    expect(upstreamHeaders(HPA, NAMES, '4b2c6f0e-0d46-4e11-9b2f-5e8c8f0a1a11')).toEqual({
      accept: 'application/json',
      'user-agent': 'sluice-proxy',
      'x-remote-user': HPA.username,
      'x-remote-group': ['system:serviceaccounts', 'system:authenticated'],
      'x-remote-extra-authentication.kubernetes.io%2Fcredential-id': ['JTI=1'],
      'x-remote-extra-scopes': ['a', 'b'],
      'audit-id': '4b2c6f0e-0d46-4e11-9b2f-5e8c8f0a1a11',
    });
  });

  it.each<[string, UserInfo, IdentityHeaderNames, string | undefined, Record<string, unknown>]>([
    [
      'a uid header configured: the uid',
      { username: 'u', uid: '42', groups: [], extra: {} },
      { ...NAMES, uidHeaders: ['X-Remote-Uid'] },
      undefined,
      { 'x-remote-user': 'u', 'x-remote-uid': '42' },
    ],
    [
      'no groups, no extras: no such headers',
      { username: 'system:kube-aggregator', groups: [], extra: {} },
      NAMES,
      undefined,
      { 'x-remote-user': 'system:kube-aggregator' },
    ],
    [
      'other header names: those',
      { username: 'u', groups: ['g'], extra: { k: ['v'] } },
      { usernameHeaders: ['X-User'], groupHeaders: ['X-Group'], extraHeaderPrefixes: ['X-Extra-'], uidHeaders: [] },
      undefined,
      { 'x-user': 'u', 'x-group': ['g'], 'x-extra-k': ['v'] },
    ],
    [
      'no names published: the generic apiserver defaults',
      { username: 'u', groups: ['g'], extra: {} },
      { usernameHeaders: [], groupHeaders: [], extraHeaderPrefixes: [], uidHeaders: [] },
      undefined,
      { 'x-remote-user': 'u', 'x-remote-group': ['g'] },
    ],
    [
      'an Audit-Id that is not an id: left out',
      { username: 'u', groups: [], extra: {} },
      NAMES,
      'x\r\nx-remote-user: admin',
      { 'x-remote-user': 'u' },
    ],
  ])('%s', (_case, user, names, auditId, identity) => {
    expect(upstreamHeaders(user, names, auditId)).toEqual({
      accept: 'application/json',
      'user-agent': 'sluice-proxy',
      ...identity,
    });
  });

  it.each([
    [{ namespace: 'shop', metric: 'queue_depth', labelSelector: '' }, `${BASE}/namespaces/shop/queue_depth`],
    [
      { namespace: 'shop', metric: 's0-rabbitmq-orders', labelSelector: 'queue in (a, b),team=x' },
      `${BASE}/namespaces/shop/s0-rabbitmq-orders?labelSelector=queue+in+%28a%2C+b%29%2Cteam%3Dx`,
    ],
    [{ namespace: 'shop', metric: 'a/b?c', labelSelector: '' }, `${BASE}/namespaces/shop/a%2Fb%3Fc`],
  ])('asks %j at %s', (request, path) => {
    expect(metricPath(request)).toBe(path);
  });
});

describe('what is sent back', () => {
  it.each<[string, UpstreamAnswer, number, 'passed on' | RegExp]>([
    ['a metric list', answer(200, LIST), 200, 'passed on'],
    ['its 404 Status', answer(404, STATUS_404), 404, 'passed on'],
    ['its 500 Status', answer(500, json({ kind: 'Status', code: 500 })), 500, 'passed on'],
    ['its 403 Status', answer(403, json({ kind: 'Status', code: 403 })), 403, 'passed on'],
    ['JSON with a charset', answer(200, LIST, 'application/json; charset=utf-8'), 200, 'passed on'],
    [
      'a 401: sluice refused',
      answer(401, json({ kind: 'Status', code: 401 })),
      502,
      /did not accept sluice's client certificate \(HTTP 401\): --proxy-client-cert-file must be signed by/,
    ],
    [
      'HTML',
      answer(200, '<html>secret-page</html>', 'text/html'),
      502,
      /answered HTTP 200 with something that is not a JSON ExternalMetricValueList/,
    ],
    ['another kind', answer(200, json({ kind: 'APIResourceList' })), 502, /not a JSON ExternalMetricValueList/],
    [
      'an error without a Status',
      answer(503, 'secret-page', 'text/plain'),
      502,
      /answered HTTP 503 with something that is not a JSON Status/,
    ],
    ['JSON that does not parse', answer(200, '{"kind":'), 502, /not a JSON ExternalMetricValueList/],
    [
      'too much',
      { code: 200, contentType: 'application/json', body: Buffer.from('{'), tooLarge: true },
      502,
      /answered more than 4194304 bytes/,
    ],
  ])('%s', (_case, given, code, expected) => {
    const reply = replyFor(given, 'ExternalMetricValueList', WHERE);
    expect(reply.code).toBe(code);
    if (expected === 'passed on') {
      expect(reply.body).toBe(given.body);
      return;
    }
    const message = messageOf(reply.body);
    expect(message).toMatch(expected);
    expect(message).toContain(`the upstream external-metrics adapter ${WHERE}`);
    expect(message).not.toContain('secret-page');
    expect(JSON.parse(reply.body.toString('utf8'))).toMatchObject({ kind: 'Status', status: 'Failure', code: 502 });
  });

  it.each([
    [
      'a refused connection',
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
      false,
      /^cannot be reached$/,
      /adapter runs/,
    ],
    ['a timeout', new Error('aborted'), true, /^did not answer within 300 ms$/, /raise --proxy-timeout/],
    [
      'an untrusted certificate',
      Object.assign(new Error('self-signed certificate'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }),
      false,
      /not trusted/,
      /--proxy-ca-file/,
    ],
    [
      'a certificate for another name',
      new Error('x', { cause: Object.assign(new Error('y'), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }) }),
      false,
      /not trusted/,
      /name the host/,
    ],
  ])('%s is a 503 saying what to check', (_case, err, timedOut, message, hint) => {
    const error = unavailableError(err, timedOut, 300);
    expect(error.message).toMatch(message);
    expect(error.hint).toMatch(hint);
    // A timeout's cause is only the abort: not worth a word in the Status.
    expect(error.cause).toBe(timedOut ? undefined : err);
  });

  it('an open circuit is a 503 naming the last failure', () => {
    const reply = circuitOpenReply(WHERE, 'cannot be reached: connect ECONNREFUSED 127.0.0.1:1', 5_000);
    expect(reply.code).toBe(503);
    expect(JSON.parse(reply.body.toString('utf8'))).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message:
        `the upstream external-metrics adapter ${WHERE} is not answering (cannot be reached: connect ECONNREFUSED ` +
        '127.0.0.1:1); sluice asks it again every 5 s and answers this meanwhile: check that the adapter runs and ' +
        'that sluice can reach it (--proxy-to)',
      reason: 'ServiceUnavailable',
      code: 503,
    });
  });

  it("merges discovery: sluice's resources first, the upstream's after, each name once", () => {
    const resource = (name: string, kind = 'ExternalMetricValueList'): ApiResource => ({ name, kind });
    expect(
      mergeResources([resource('externalmetrics')], [resource('externalmetrics', 'Other'), resource('queue_depth')]),
    ).toEqual([resource('externalmetrics'), resource('queue_depth')]);
    expect(
      resourcesOf(json({ kind: 'APIResourceList', resources: [{ name: 'a' }, { nome: 'b' }, 'c', { name: 3 }] })),
    ).toEqual([{ name: 'a' }]);
    expect(resourcesOf(json({ kind: 'APIResourceList', resources: null }))).toEqual([]);
  });
});

// --- against servers -------------------------------------------------------------------------------------------------

const pki = makePki();
const servingCA = pki.issue('serving-ca', '/CN=serving-ca', CA_EXTENSIONS);
const serving = pki.issue('serving', '/CN=adapter', SERVER_EXTENSIONS, 'serving-ca');
const frontProxyCA = pki.issue('front-proxy-ca', '/CN=front-proxy-ca', CA_EXTENSIONS);
const proxyClient = pki.issue('proxy-client', '/CN=front-proxy-client', CLIENT_EXTENSIONS, 'front-proxy-ca');
const otherCA = pki.issue('other-ca', '/CN=other-ca', CA_EXTENSIONS);
const otherClient = pki.issue('other-client', '/CN=front-proxy-client', CLIENT_EXTENSIONS, 'other-ca');
const serverOnly = pki.issue('server-only', '/CN=front-proxy-client', SERVER_EXTENSIONS, 'front-proxy-ca');
afterAll(() => {
  pki.cleanup();
});

describe('checkProxyMaterial', () => {
  it('accepts a client certificate with its key and a CA bundle', () => {
    expect(() => {
      checkProxyMaterial({ ca: servingCA.cert, clientCert: proxyClient.cert, clientKey: proxyClient.key });
    }).not.toThrow();
  });

  it.each<[string, { ca: string | undefined; clientCert: string; clientKey: string }, RegExp]>([
    [
      'a key of another certificate',
      { ca: undefined, clientCert: proxyClient.cert, clientKey: otherClient.key },
      /--proxy-client-cert-file and --proxy-client-key-file: the private key does not belong/,
    ],
    [
      'a serving certificate',
      { ca: undefined, clientCert: serverOnly.cert, clientKey: serverOnly.key },
      /no clientAuth extended key usage/,
    ],
    [
      'a CA file without a certificate',
      { ca: 'not pem', clientCert: proxyClient.cert, clientKey: proxyClient.key },
      /--proxy-ca-file holds no PEM certificate/,
    ],
  ])('refuses %s, naming the flag', (_case, material, message) => {
    expect(() => {
      checkProxyMaterial(material);
    }).toThrow(message);
    expect(() => {
      checkProxyMaterial(material);
    }).toThrow(ConfigError);
  });

  it('refuses a certificate that is not valid now', () => {
    expect(() => {
      checkProxyMaterial(
        { ca: undefined, clientCert: proxyClient.cert, clientKey: proxyClient.key },
        new Date(Date.now() + 10 * 24 * 3_600_000),
      );
    }).toThrow(/--proxy-client-cert-file and --proxy-client-key-file: the certificate is valid from .* not now/);
  });
});

interface Adapter {
  readonly app: FastifyInstance;
  readonly url: URL;
  readonly store: MetricStore;
  /** Every user its authorizer was asked about. */
  readonly users: UserInfo[];
  /** TLS connections it accepted. */
  connections(): number;
}

/** A second sluice metrics server, wired as `sluice operator` wires it: the upstream adapter behind the proxy. */
function startAdapter(): Promise<Adapter> {
  return startAdapterOn(0);
}

async function startAdapterOn(port: number): Promise<Adapter> {
  const requestHeader = parseRequestHeaderConfig({
    'requestheader-client-ca-file': frontProxyCA.cert,
    'requestheader-allowed-names': '["front-proxy-client"]',
  });
  const store = new MetricStore();
  const users: UserInfo[] = [];
  const app = buildServer({
    store,
    authenticate: createFrontProxyAuthenticator(requestHeader),
    authorize: (user) => {
      users.push(user);
      return Promise.resolve({ allowed: true, reason: '' });
    },
    ready: () => true,
    https: frontProxyTlsOptions(requestHeader, serving),
  });
  let connections = 0;
  tlsServerOf(app).on('secureConnection', () => {
    connections++;
  });
  await app.listen({ host: '127.0.0.1', port });
  const address = app.server.address() as AddressInfo;
  return {
    app,
    url: new URL(`https://127.0.0.1:${String(address.port)}`),
    store,
    users,
    connections: () => connections,
  };
}

const quiet = createLogger({ level: 'error', write: () => undefined });

function upstreamAt(
  url: URL,
  overrides: { client?: KeyPair; ca?: string | undefined; timeoutMs?: number } = {},
): Upstream {
  const client = overrides.client ?? proxyClient;
  return createUpstream({
    url,
    ca: 'ca' in overrides ? overrides.ca : servingCA.cert,
    clientCert: client.cert,
    clientKey: client.key,
    timeoutMs: overrides.timeoutMs ?? 2_000,
    resetTimeoutMs: 60_000,
    headerNames: () => NAMES,
    log: quiet,
  });
}

/** sluice's metrics API in proxy mode (requests injected as an authenticated HPA). */
function proxyServer(upstream: Upstream, store = new MetricStore()) {
  const app = buildServer({
    store,
    authenticate: () => HPA,
    authorize: () => Promise.resolve({ allowed: true, reason: '' }),
    ready: () => true,
    upstream,
    owns: storeOwns(store),
  });
  const get = async (url: string, headers: Record<string, string> = {}) => {
    const response = await app.inject({ method: 'GET', url, headers: { accept: 'application/json', ...headers } });
    return {
      status: response.statusCode,
      type: response.headers['content-type'],
      raw: response.body,
      body: response.json<Record<string, unknown>>(),
    };
  };
  return { app, store, get };
}

describe('forwarding to a real adapter server', () => {
  let adapter: Adapter;
  let upstream: Upstream;
  let proxy: ReturnType<typeof proxyServer>;

  beforeAll(async () => {
    adapter = await startAdapter();
    adapter.store.set(series({ namespace: 'shop', metricName: 'queue_depth', value: 42, labels: { queue: 'orders' } }));
    adapter.store.set(series({ namespace: 'shop', metricName: 's0-both', value: 1 }));
    upstream = upstreamAt(adapter.url);
    proxy = proxyServer(upstream);
    proxy.store.set(series({ namespace: 'shop', metricName: 's0-both', value: 2 }));
    proxy.store.set(series({ namespace: 'shop', metricName: 's0-own', value: 3 }));
  });

  afterAll(async () => {
    await proxy.app.close();
    await upstream.close();
    await adapter.app.close();
  });

  it("answers the upstream's metric with the upstream's list, as the caller, over kept-alive connections", async () => {
    const before = adapter.connections();
    for (let i = 0; i < 10; i++) {
      const response = await proxy.get(`${BASE}/namespaces/shop/queue_depth?labelSelector=queue%3Dorders`, {
        // Forged identity headers from the caller: never forwarded (sluice states the user it authenticated).
        'x-remote-user': 'system:admin',
        'x-remote-group': 'system:masters',
        'audit-id': `audit-${i}`,
      });
      expect(response.status).toBe(200);
      expect(response.type).toBe('application/json');
      expect(response.body).toMatchObject({
        kind: 'ExternalMetricValueList',
        items: [{ metricName: 'queue_depth', metricLabels: { queue: 'orders' }, value: '42' }],
      });
    }
    expect(adapter.users.at(-1)).toEqual({ ...HPA, uid: undefined, extra: HPA.extra });
    expect(adapter.users.every((user) => user.username === HPA.username)).toBe(true);
    expect(adapter.users.some((user) => user.groups.includes('system:masters'))).toBe(false);
    // Ten requests, at most two TLS connections (undici's pool may open a second one for the request that follows the
    // first before the first connection is marked idle; from then on they are reused). Without keep-alive: ten.
    expect(adapter.connections() - before).toBeLessThanOrEqual(2);
  });

  it('answers its own metric itself, also where the upstream has the same name', async () => {
    const asked = adapter.users.length;
    expect((await proxy.get(`${BASE}/namespaces/shop/s0-own`)).body).toMatchObject({ items: [{ value: '3' }] });
    expect((await proxy.get(`${BASE}/namespaces/shop/s0-both`)).body).toMatchObject({ items: [{ value: '2' }] });
    expect(adapter.users.length).toBe(asked);
  });

  it("a MetricSource's name is sluice's before its first series exists: never forwarded", async () => {
    const demand: MetricDemand = {
      owns: (_namespace, metric) => metric === 'queue_messages_ready',
      request: (_namespace, metric) =>
        metric === 'queue_messages_ready'
          ? { kind: 'refused', code: 404, message: 'the selector has no label "queue"' }
          : { kind: 'unowned' },
    };
    const store = new MetricStore();
    const app = buildServer({
      store,
      demand,
      authenticate: () => HPA,
      authorize: () => Promise.resolve({ allowed: true, reason: '' }),
      ready: () => true,
      upstream,
      owns: (namespace, metric) => storeOwns(store)(namespace, metric) || demand.owns(namespace, metric),
    });
    try {
      const asked = adapter.users.length;
      const response = await app.inject({ method: 'GET', url: `${BASE}/namespaces/shop/queue_messages_ready` });
      expect(response.statusCode).toBe(404);
      expect(response.json<{ message: string }>().message).toBe('the selector has no label "queue"');
      expect(adapter.users.length).toBe(asked);
      // Any other name still goes to the adapter.
      const other = await app.inject({
        method: 'GET',
        url: `${BASE}/namespaces/shop/queue_depth?labelSelector=queue%3Dorders`,
      });
      expect(other.statusCode).toBe(200);
      expect(adapter.users.length).toBe(asked + 1);
    } finally {
      await app.close();
    }
  });

  it("passes on the upstream's 404 for a name neither knows, byte for byte", async () => {
    const response = await proxy.get(`${BASE}/namespaces/shop/nobody_has_it?labelSelector=a%3Db`);
    expect(response.status).toBe(404);
    expect(response.body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'the server could not find the metric nobody_has_it for a=b in namespace shop',
      reason: 'NotFound',
      code: 404,
    });
  });

  it('refuses a malformed selector itself, forwarding nothing', async () => {
    const asked = adapter.users.length;
    const response = await proxy.get(`${BASE}/namespaces/shop/queue_depth?labelSelector=a%3D%3D%3D`);
    expect(response.status).toBe(400);
    expect(adapter.users.length).toBe(asked);
  });

  it('lists the placeholder once in discovery (both list it)', async () => {
    const response = await proxy.get(BASE);
    expect(response.body['resources']).toEqual([
      { name: 'externalmetrics', singularName: '', namespaced: true, kind: 'ExternalMetricValueList', verbs: ['get'] },
    ]);
  });

  it("gets a 502 from an adapter that does not trust sluice's client certificate", async () => {
    const stranger = upstreamAt(adapter.url, { client: otherClient });
    const { app, get } = proxyServer(stranger);
    try {
      const response = await get(`${BASE}/namespaces/shop/queue_depth`);
      expect(response.status).toBe(502);
      expect(response.body['message']).toMatch(/did not accept sluice's client certificate \(HTTP 401\)/);
    } finally {
      await app.close();
      await stranger.close();
    }
  });

  it('gets a 503 naming --proxy-ca-file from an adapter whose serving certificate it cannot verify', async () => {
    const untrusting = upstreamAt(adapter.url, { ca: otherCA.cert });
    const { app, get } = proxyServer(untrusting);
    try {
      const response = await get(`${BASE}/namespaces/shop/queue_depth`);
      expect(response.status).toBe(503);
      expect(response.body).toMatchObject({ reason: 'ServiceUnavailable', code: 503 });
      expect(response.body['message']).toMatch(
        new RegExp(
          `^the upstream external-metrics adapter at ${adapter.url.origin} cannot be reached: its serving certificate is not trusted.*--proxy-ca-file`,
        ),
      );
    } finally {
      await app.close();
      await untrusting.close();
    }
  });
});

describe('an upstream that fails', () => {
  let server: MetricServer | undefined;
  let upstream: Upstream | undefined;
  let app: FastifyInstance | undefined;

  afterEach(async () => {
    await app?.close();
    await upstream?.close();
    await server?.close();
    server = upstream = app = undefined;
  });

  it('down: a 503 naming it, then at once while the circuit is open; sluice still answers its own metrics and discovery', async () => {
    const port = await closedPort();
    upstream = upstreamAt(new URL(`https://127.0.0.1:${port}`));
    const proxy = proxyServer(upstream);
    app = proxy.app;
    proxy.store.set(series({ namespace: 'shop', metricName: 's0-own', value: 3 }));

    const first = await proxy.get(`${BASE}/namespaces/shop/queue_depth`);
    expect(first.status).toBe(503);
    expect(first.body['message']).toBe(
      `the upstream external-metrics adapter at https://127.0.0.1:${port} cannot be reached: connect ECONNREFUSED ` +
        `127.0.0.1:${port}; check that the adapter runs and that sluice can reach it (--proxy-to)`,
    );
    expect(upstream.state).toBe('open');
    const second = await proxy.get(`${BASE}/namespaces/shop/queue_depth`);
    expect(second.status).toBe(503);
    expect(second.body['message']).toMatch(/is not answering \(cannot be reached: connect ECONNREFUSED/);

    expect((await proxy.get(`${BASE}/namespaces/shop/s0-own`)).body).toMatchObject({ items: [{ value: '3' }] });
    const discovery = await proxy.get(BASE);
    expect(discovery.status).toBe(200);
    expect(discovery.body['resources']).toEqual([expect.objectContaining({ name: 'externalmetrics' })]);
  });

  it('hanging: a 503 after the timeout, and discovery answers without it', async () => {
    server = await startMetricServer({ tls: serving });
    server.respond = () => 'hang';
    upstream = upstreamAt(new URL(server.url), { timeoutMs: 300 });
    const proxy = proxyServer(upstream);
    app = proxy.app;

    const discovery = await proxy.get(BASE);
    expect(discovery.status).toBe(200);
    expect(discovery.body['resources']).toEqual([expect.objectContaining({ name: 'externalmetrics' })]);
    const response = await proxy.get(`${BASE}/namespaces/shop/queue_depth`);
    expect(response.status).toBe(503);
    expect(response.body['message']).toMatch(/is not answering \(did not answer within 300 ms\)/);
  });

  it('an unusable answer: a 502 that quotes nothing of it; discovery merges only a real APIResourceList', async () => {
    server = await startMetricServer({ tls: serving });
    server.respond = (request) =>
      request.url === BASE
        ? {
            status: 200,
            contentType: 'application/json',
            body: JSON.stringify({ kind: 'APIResourceList', resources: [{ name: 'queue_depth' }] }),
          }
        : { status: 200, contentType: 'text/html', body: '<html>token=hunter2</html>' };
    upstream = upstreamAt(new URL(server.url));
    const proxy = proxyServer(upstream);
    app = proxy.app;

    const response = await proxy.get(`${BASE}/namespaces/shop/queue_depth`);
    expect(response.status).toBe(502);
    expect(response.raw).not.toContain('hunter2');
    const discovery = await proxy.get(BASE);
    expect(discovery.body['resources']).toEqual([
      expect.objectContaining({ name: 'externalmetrics' }),
      { name: 'queue_depth' },
    ]);
    // What the test server saw: sluice's own headers only.
    expect(server.requests[0]?.headers).toMatchObject({ 'x-remote-user': HPA.username, accept: 'application/json' });
  });
});

describe('an upstream that comes back, and one that offers HTTP/2', () => {
  it('after the circuit opened, the first request past the reset time probes it and forwarding resumes', async () => {
    const adapter = await startAdapter();
    adapter.store.set(series({ namespace: 'shop', metricName: 'queue_depth', value: 42 }));
    const { port } = adapter.app.server.address() as AddressInfo;
    const upstream = createUpstream({
      url: adapter.url,
      ca: servingCA.cert,
      clientCert: proxyClient.cert,
      clientKey: proxyClient.key,
      timeoutMs: 1_000,
      resetTimeoutMs: 300,
      headerNames: () => NAMES,
      log: quiet,
    });
    const proxy = proxyServer(upstream);
    let again: FastifyInstance | undefined;
    try {
      expect((await proxy.get(`${BASE}/namespaces/shop/queue_depth`)).status).toBe(200);
      await adapter.app.close();
      // The circuit opens once more than half of the recent requests failed (one success is in the window).
      for (let i = 0; i < 3 && upstream.state === 'closed'; i++) {
        expect((await proxy.get(`${BASE}/namespaces/shop/queue_depth`)).status).toBe(503);
      }
      expect(upstream.state).toBe('open');

      // The same adapter on the same port again.
      const restarted = await startAdapterOn(port);
      again = restarted.app;
      restarted.store.set(series({ namespace: 'shop', metricName: 'queue_depth', value: 43 }));
      await new Promise((resolve) => setTimeout(resolve, 400));
      const back = await proxy.get(`${BASE}/namespaces/shop/queue_depth`);
      expect(back.status).toBe(200);
      expect(back.body).toMatchObject({ items: [{ value: '43' }] });
      expect(upstream.state).toBe('closed');
    } finally {
      await proxy.app.close();
      await upstream.close();
      await again?.close();
    }
  });

  it('speaks HTTP/1.1 to a server that offers HTTP/2 too, so each group stays one header value', async () => {
    // Go adapters offer h2 by ALPN; over HTTP/2 undici would join the groups into one value ("a, b").
    const seen: string[][] = [];
    const versions: string[] = [];
    const server: Http2SecureServer = createSecureServer(
      { cert: serving.cert, key: serving.key, allowHTTP1: true },
      (request, response) => {
        seen.push(request.rawHeaders);
        versions.push(request.httpVersion);
        response.setHeader('content-type', 'application/json');
        response.end(JSON.stringify({ kind: 'ExternalMetricValueList', metadata: {}, items: [] }));
      },
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const upstream = upstreamAt(new URL(`https://127.0.0.1:${String(port)}`));
    const proxy = proxyServer(upstream);
    try {
      expect((await proxy.get(`${BASE}/namespaces/shop/queue_depth`)).status).toBe(200);
      expect(versions).toEqual(['1.1']);
      const raw = seen[0] ?? [];
      const groups = raw.filter((_, i) => i % 2 === 1 && raw[i - 1]?.toLowerCase() === 'x-remote-group');
      expect(groups).toEqual(['system:serviceaccounts', 'system:authenticated']);
    } finally {
      await proxy.app.close();
      await upstream.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('a renewed client certificate', () => {
  it('is used from the next request on once its files change; one that cannot be used is refused and the old kept', async () => {
    const adapter = await startAdapter();
    adapter.store.set(series({ namespace: 'shop', metricName: 'queue_depth', value: 42 }));
    const dir = mkdtempSync(path.join(tmpdir(), 'sluice-proxy-client-'));
    const certFile = path.join(dir, 'tls.crt');
    const keyFile = path.join(dir, 'tls.key');
    // Start with a certificate the adapter does not trust (as an expired one would be refused).
    writeFileSync(certFile, otherClient.cert);
    writeFileSync(keyFile, otherClient.key);
    const upstream = upstreamAt(adapter.url, { client: otherClient });
    const records: string[] = [];
    const watch = watchClientCertificate(upstream, {
      files: { certFile, keyFile },
      log: (level, message) => records.push(`${level} ${message}`),
      pollMs: 60_000,
    });
    const proxy = proxyServer(upstream);
    try {
      expect((await proxy.get(`${BASE}/namespaces/shop/queue_depth`)).status).toBe(502);
      writeFileSync(certFile, serverOnly.cert);
      writeFileSync(keyFile, serverOnly.key);
      expect(await watch.reload()).toBe('rejected');
      expect(upstream.clientPair.cert).toBe(otherClient.cert);
      writeFileSync(certFile, proxyClient.cert);
      writeFileSync(keyFile, proxyClient.key);
      expect(await watch.reload()).toBe('reloaded');
      const response = await proxy.get(`${BASE}/namespaces/shop/queue_depth`);
      expect(response.status).toBe(200);
      expect(response.body).toMatchObject({ items: [{ value: '42' }] });
      expect(records).toEqual([
        expect.stringMatching(/^error new proxy client certificate rejected; keeping the current one$/),
        'info proxy client certificate reloaded',
      ]);
    } finally {
      watch.close();
      await proxy.app.close();
      await upstream.close();
      await adapter.app.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
