import { X509Certificate } from 'node:crypto';
import { Agent, request as httpsRequest } from 'node:https';
import { TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';

import type { CoreV1Api } from '@kubernetes/client-node';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, expectTypeOf, it, vi } from 'vitest';

import { ConfigError } from '../../../src/errors.ts';
import { MetricStore } from '../../../src/metric-store.ts';
import { buildServer } from '../../../src/server/app.ts';
import {
  AUTHENTICATION_CONFIGMAP,
  createFrontProxyAuthenticator,
  frontProxyChainProblem,
  frontProxyTlsOptions,
  loadRequestHeaderConfig,
  parseRequestHeaderConfig,
  userFromHeaders,
  type ConfigMapData,
  type ConfigMapPort,
  type RequestHeaderConfig,
} from '../../../src/server/front-proxy.ts';
import type { Authorize, UserInfo } from '../../../src/server/identity.ts';
import { series } from './support.ts';
import { CA_EXTENSIONS, CLIENT_EXTENSIONS, makePki, type KeyPair, type Pki } from './tls-support.ts';

// ---------------------------------------------------------------------------------------------------------------
// Test PKI, generated with the openssl CLI: a front-proxy CA (and an intermediate under it), an unrelated CA, and a
// serving CA for the server's own certificate.
// ---------------------------------------------------------------------------------------------------------------

let pki: Pki;
const issue = (name: string, subject: string, extensions: readonly string[], issuer?: string): KeyPair =>
  pki.issue(name, subject, extensions, issuer);

let frontProxyCA: KeyPair;
let frontProxyClient: KeyPair;
let otherCA: KeyPair;
let otherClient: KeyPair;
let intruder: KeyPair;
let serverAuthOnly: KeyPair;
let intermediateCA: KeyPair;
let chainedClient: KeyPair;
let leafSignedByLeaf: KeyPair;
let servingCA: KeyPair;
let serving: KeyPair;

function configFor(overrides: Record<string, string> = {}): RequestHeaderConfig {
  return parseRequestHeaderConfig({
    'requestheader-client-ca-file': frontProxyCA.cert,
    'requestheader-allowed-names': '["front-proxy-client"]',
    'requestheader-username-headers': '["X-Remote-User"]',
    'requestheader-group-headers': '["X-Remote-Group"]',
    'requestheader-extra-headers-prefix': '["X-Remote-Extra-"]',
    'requestheader-uid-headers': '["X-Remote-Uid"]',
    ...overrides,
  });
}

beforeAll(() => {
  pki = makePki();
  frontProxyCA = issue('front-proxy-ca', '/CN=front-proxy-ca', CA_EXTENSIONS);
  frontProxyClient = issue('front-proxy-client', '/CN=front-proxy-client', CLIENT_EXTENSIONS, 'front-proxy-ca');
  otherCA = issue('other-ca', '/CN=other-ca', CA_EXTENSIONS);
  otherClient = issue('other-client', '/CN=front-proxy-client', CLIENT_EXTENSIONS, 'other-ca');
  intruder = issue('intruder', '/CN=intruder', CLIENT_EXTENSIONS, 'front-proxy-ca');
  serverAuthOnly = issue(
    'server-auth-only',
    '/CN=front-proxy-client',
    ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=serverAuth'],
    'front-proxy-ca',
  );
  intermediateCA = issue('intermediate-ca', '/CN=front-proxy-intermediate', CA_EXTENSIONS, 'front-proxy-ca');
  chainedClient = issue('chained-client', '/CN=front-proxy-client', CLIENT_EXTENSIONS, 'intermediate-ca');
  // openssl signs with any key; a client certificate must not act as a CA.
  leafSignedByLeaf = issue('leaf-signed-by-leaf', '/CN=front-proxy-client', CLIENT_EXTENSIONS, 'front-proxy-client');
  servingCA = issue('serving-ca', '/CN=serving-ca', CA_EXTENSIONS);
  serving = issue(
    'serving',
    '/CN=metrics-adapter',
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      'extendedKeyUsage=serverAuth',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    'serving-ca',
  );
}, 60_000);

afterAll(() => {
  pki.cleanup();
});

// ---------------------------------------------------------------------------------------------------------------
// A real HTTPS server.
// ---------------------------------------------------------------------------------------------------------------

interface Running {
  readonly app: FastifyInstance;
  readonly port: number;
  readonly seen: UserInfo[];
}

async function start(
  config: RequestHeaderConfig,
  extraTrusted: string[] = [],
  now: () => number = Date.now,
): Promise<Running> {
  const store = new MetricStore();
  store.set(series({ namespace: 'shop', metricName: 's0-m', value: 7 }));
  const seen: UserInfo[] = [];
  const authorize: Authorize = (user) => {
    seen.push(user);
    return Promise.resolve({ allowed: true, reason: '' });
  };
  const tls = frontProxyTlsOptions(config, serving);
  const app = buildServer({
    store,
    authenticate: createFrontProxyAuthenticator(config, now),
    authorize,
    ready: () => true,
    logger: false,
    https: { ...tls, ca: [...tls.ca, ...extraTrusted] },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address() as AddressInfo;
  return { app, port: address.port, seen };
}

interface Reply {
  readonly status: number;
  readonly body: string;
}

function call(
  port: number,
  path: string,
  options: { client?: KeyPair; chain?: string[]; headers?: Record<string, string | string[]>; agent?: Agent } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'GET',
        ca: servingCA.cert,
        agent: options.agent ?? false, // one connection per call unless asked: the client certificate is per connection
        ...(options.client === undefined
          ? {}
          : { cert: [options.client.cert, ...(options.chain ?? [])].join(''), key: options.client.key }),
        headers: options.headers ?? {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const METRIC_PATH = '/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/s0-m';
const IDENTITY_HEADERS = {
  'X-Remote-User': 'system:admin',
  'X-Remote-Group': ['system:masters', 'system:authenticated'],
  'X-Remote-Uid': 'uid-42',
  'X-Remote-Extra-Authentication.kubernetes.io%2fcredential-id': 'X509SHA256=abc',
  'X-Remote-Extra-Scopes': ['read', 'write'],
};

describe('front-proxy authentication over real TLS', () => {
  let strict: Running;
  let lenient: Running;

  beforeAll(async () => {
    strict = await start(configFor());
    // No allowed names, and the unrelated CA is also in the TLS trust store (as a client-ca-file would be).
    lenient = await start(configFor({ 'requestheader-allowed-names': '[]' }), [otherCA.cert]);
  });

  afterAll(async () => {
    await strict.app.close();
    await lenient.app.close();
  });

  it('serves a request with the front-proxy certificate, trusting every identity header', async () => {
    strict.seen.length = 0;
    const reply = await call(strict.port, METRIC_PATH, { client: frontProxyClient, headers: IDENTITY_HEADERS });
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.body)).toMatchObject({ kind: 'ExternalMetricValueList', items: [{ value: '7' }] });
    expect(strict.seen).toEqual([
      {
        username: 'system:admin',
        uid: 'uid-42',
        groups: ['system:masters', 'system:authenticated'],
        extra: {
          'authentication.kubernetes.io/credential-id': ['X509SHA256=abc'],
          scopes: ['read', 'write'],
        },
      },
    ]);
  });

  it('sees every repeated X-Remote-Group header, not one comma-joined value', async () => {
    strict.seen.length = 0;
    const groups = ['system:authenticated', 'team-a', 'team, b'];
    const reply = await call(strict.port, METRIC_PATH, {
      client: frontProxyClient,
      headers: { 'X-Remote-User': 'alice', 'X-Remote-Group': groups },
    });
    expect(reply.status).toBe(200);
    expect(strict.seen[0]?.groups).toEqual(groups);
  });

  it('without a client certificate: 401 on metric and discovery paths, X-Remote-* ignored', async () => {
    strict.seen.length = 0;
    for (const path of [METRIC_PATH, '/apis/external.metrics.k8s.io/v1beta1', '/apis']) {
      const reply = await call(strict.port, path, { headers: IDENTITY_HEADERS });
      expect(reply.status, path).toBe(401);
      expect(JSON.parse(reply.body)).toMatchObject({ kind: 'Status', reason: 'Unauthorized', code: 401 });
    }
    expect(strict.seen).toEqual([]);
  });

  it('health endpoints answer without a client certificate (kubelet probes)', async () => {
    for (const path of ['/healthz', '/readyz', '/livez']) {
      const reply = await call(strict.port, path);
      expect(reply.status, path).toBe(200);
    }
  });

  it('a certificate from another CA is not a front proxy: 401', async () => {
    const reply = await call(strict.port, METRIC_PATH, { client: otherClient, headers: IDENTITY_HEADERS });
    expect(reply.status).toBe(401);
  });

  it('a certificate from another CA is rejected even when TLS trusts that CA', async () => {
    lenient.seen.length = 0;
    const reply = await call(lenient.port, METRIC_PATH, { client: otherClient, headers: IDENTITY_HEADERS });
    expect(reply.status).toBe(401);
    expect(lenient.seen).toEqual([]);
  });

  it('a CN outside the allowed names: 401', async () => {
    const reply = await call(strict.port, METRIC_PATH, { client: intruder, headers: IDENTITY_HEADERS });
    expect(reply.status).toBe(401);
  });

  it('any CN from the front-proxy CA is accepted when no names are configured', async () => {
    const reply = await call(lenient.port, METRIC_PATH, { client: intruder, headers: IDENTITY_HEADERS });
    expect(reply.status).toBe(200);
  });

  it('a front-proxy CA certificate without the clientAuth usage: 401', async () => {
    const reply = await call(strict.port, METRIC_PATH, { client: serverAuthOnly, headers: IDENTITY_HEADERS });
    expect(reply.status).toBe(401);
  });

  it('accepts a client certificate chaining through an intermediate sent by the client', async () => {
    const reply = await call(strict.port, METRIC_PATH, {
      client: chainedClient,
      chain: [intermediateCA.cert],
      headers: IDENTITY_HEADERS,
    });
    expect(reply.status).toBe(200);
  });

  it('a certificate issued by a front-proxy client certificate (not a CA): 401', async () => {
    const reply = await call(lenient.port, METRIC_PATH, {
      client: leafSignedByLeaf,
      chain: [frontProxyClient.cert],
      headers: IDENTITY_HEADERS,
    });
    expect(reply.status).toBe(401);
  });

  it("verifies a connection's chain once: its later requests reuse the verdict until it is 60 s old", async () => {
    let time = Date.now();
    const running = await start(configFor(), [], () => time);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const peerCertificate = vi.spyOn(TLSSocket.prototype, 'getPeerCertificate');
    /** Chains the server read (client sockets read the server's too, and have no `server`). */
    const serverReads = () =>
      peerCertificate.mock.contexts.filter((socket) => (socket as { server?: unknown }).server !== undefined).length;
    const ok = async () =>
      (await call(running.port, METRIC_PATH, { client: frontProxyClient, headers: IDENTITY_HEADERS, agent })).status;
    try {
      for (let i = 0; i < 3; i++) expect(await ok()).toBe(200);
      expect(serverReads()).toBe(1);
      time += 59_000;
      expect(await ok()).toBe(200);
      expect(serverReads()).toBe(1);
      time += 1_000;
      expect(await ok()).toBe(200);
      expect(serverReads()).toBe(2);
      expect(running.seen).toHaveLength(5);
    } finally {
      peerCertificate.mockRestore();
      agent.destroy();
      await running.app.close();
    }
  });

  it('a valid certificate without a username header is unauthenticated', async () => {
    const reply = await call(strict.port, METRIC_PATH, {
      client: frontProxyClient,
      headers: { 'X-Remote-Group': 'system:masters' },
    });
    expect(reply.status).toBe(401);
  });
});

describe('frontProxyChainProblem', () => {
  const x509 = (pem: string) => new X509Certificate(pem);

  it('accepts a chain through an intermediate CA', () => {
    const chain = [x509(chainedClient.cert), x509(intermediateCA.cert)];
    expect(frontProxyChainProblem(chain, [x509(frontProxyCA.cert)])).toBeUndefined();
  });

  it('accepts a leaf signed by the CA', () => {
    expect(frontProxyChainProblem([x509(frontProxyClient.cert)], [x509(frontProxyCA.cert)])).toBeUndefined();
  });

  it('rejects an empty chain', () => {
    expect(frontProxyChainProblem([], [x509(frontProxyCA.cert)])).toBe('no client certificate');
  });

  it('rejects a chain anchored elsewhere', () => {
    expect(frontProxyChainProblem([x509(otherClient.cert)], [x509(frontProxyCA.cert)])).toMatch(/does not chain/);
  });

  it('rejects an intermediate chain without the intermediate', () => {
    expect(frontProxyChainProblem([x509(chainedClient.cert)], [x509(frontProxyCA.cert)])).toMatch(/does not chain/);
  });

  it('rejects a chain through a leaf certificate (not a CA, no keyCertSign)', () => {
    const chain = [x509(leafSignedByLeaf.cert), x509(frontProxyClient.cert)];
    expect(frontProxyChainProblem(chain, [x509(frontProxyCA.cert)])).toMatch(/does not chain|not a CA/);
  });

  it('rejects certificates outside their validity period', () => {
    const chain = [x509(frontProxyClient.cert)];
    const cas = [x509(frontProxyCA.cert)];
    const day = 24 * 3600 * 1000;
    expect(frontProxyChainProblem(chain, cas, new Date(Date.now() + 3 * day))).toMatch(/expired or not yet valid/);
    expect(frontProxyChainProblem(chain, cas, new Date(Date.now() - day))).toMatch(/expired or not yet valid/);
  });

  it('rejects a leaf without the clientAuth usage', () => {
    expect(frontProxyChainProblem([x509(serverAuthOnly.cert)], [x509(frontProxyCA.cert)])).toMatch(/clientAuth/);
  });
});

describe('userFromHeaders', () => {
  const config = (): RequestHeaderConfig => configFor();

  it('takes the first non-empty username header and drops empty groups', () => {
    const user = userFromHeaders(
      {
        'x-remote-user': ['bob', 'ignored'],
        'x-remote-group': ['', 'dev', '  '],
      },
      { ...config(), usernameHeaders: ['x-first', 'x-remote-user'] },
    );
    expect(user).toEqual({ username: 'bob', groups: ['dev'], extra: {} });
  });

  it('keeps a malformed extra key escape as sent', () => {
    const user = userFromHeaders({ 'x-remote-user': ['bob'], 'x-remote-extra-bad%zzkey': ['v'] }, config());
    expect(user?.extra).toEqual({ 'bad%zzkey': ['v'] });
  });

  it('is undefined without a username', () => {
    expect(userFromHeaders({ 'x-remote-user': [''] }, config())).toBeUndefined();
  });

  it('takes extras named __proto__ and constructor as keys like any other (no prototype is touched)', () => {
    const user = userFromHeaders(
      {
        'x-remote-user': ['bob'],
        'x-remote-extra-__proto__': ['a'],
        'x-remote-extra-constructor': ['b'],
        'x-remote-extra-tostring': ['c'],
      },
      config(),
    );
    expect(Object.entries(user?.extra ?? {})).toEqual([
      ['__proto__', ['a']],
      ['constructor', ['b']],
      ['tostring', ['c']],
    ]);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });
});

describe('parseRequestHeaderConfig / loadRequestHeaderConfig', () => {
  function port(result: ConfigMapData | Error) {
    return {
      readNamespacedConfigMap: vi.fn(() =>
        result instanceof Error ? Promise.reject(result) : Promise.resolve(result),
      ),
    } satisfies ConfigMapPort;
  }

  it('the real CoreV1Api fits the port', () => {
    expectTypeOf<CoreV1Api>().toExtend<ConfigMapPort>();
  });

  it('reads the JSON-array-in-a-string keys and lowercases header names', async () => {
    const api = port({
      data: {
        'client-ca-file': otherCA.cert,
        'requestheader-client-ca-file': frontProxyCA.cert,
        'requestheader-allowed-names': '["front-proxy-client","aggregator"]',
        'requestheader-username-headers': '["X-Remote-User"]',
        'requestheader-group-headers': '["X-Remote-Group"]',
        'requestheader-extra-headers-prefix': '["X-Remote-Extra-"]',
        'requestheader-uid-headers': '["X-Remote-Uid"]',
      },
    });
    await expect(loadRequestHeaderConfig(api)).resolves.toEqual({
      clientCA: frontProxyCA.cert,
      allowedNames: ['front-proxy-client', 'aggregator'],
      usernameHeaders: ['x-remote-user'],
      groupHeaders: ['x-remote-group'],
      extraHeaderPrefixes: ['x-remote-extra-'],
      uidHeaders: ['x-remote-uid'],
    });
    expect(api.readNamespacedConfigMap).toHaveBeenCalledWith({
      namespace: 'kube-system',
      name: 'extension-apiserver-authentication',
    });
    expect(AUTHENTICATION_CONFIGMAP).toEqual({ namespace: 'kube-system', name: 'extension-apiserver-authentication' });
  });

  it('falls back to the generic defaults for absent header keys', () => {
    expect(parseRequestHeaderConfig({ 'requestheader-client-ca-file': frontProxyCA.cert })).toEqual({
      clientCA: frontProxyCA.cert,
      allowedNames: [],
      usernameHeaders: ['x-remote-user'],
      groupHeaders: ['x-remote-group'],
      extraHeaderPrefixes: ['x-remote-extra-'],
      uidHeaders: [],
    });
  });

  // `withCA`: add a valid requestheader CA so the row tests only its own defect (the CA exists only after beforeAll).
  const bad: { comment: string; withCA: boolean; data: Record<string, string>; message: RegExp }[] = [
    { comment: 'no requestheader CA', withCA: false, data: {}, message: /no requestheader-client-ca-file/ },
    {
      comment: 'CA without a certificate',
      withCA: false,
      data: { 'requestheader-client-ca-file': 'not a pem' },
      message: /no PEM certificate/,
    },
    {
      comment: 'CA with a broken certificate',
      withCA: false,
      data: { 'requestheader-client-ca-file': '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----' },
      message: /invalid certificate/,
    },
    {
      comment: 'header list that is not JSON',
      withCA: true,
      data: { 'requestheader-username-headers': 'X-Remote-User' },
      message: /requestheader-username-headers is not a JSON array of strings/,
    },
    {
      comment: 'header list of numbers',
      withCA: true,
      data: { 'requestheader-group-headers': '[1]' },
      message: /requestheader-group-headers is not a JSON array of strings/,
    },
  ];
  it.each(bad)('rejects $comment with a ConfigError saying why', ({ withCA, data, message }) => {
    const input = withCA ? { 'requestheader-client-ca-file': frontProxyCA.cert, ...data } : data;
    expect(() => parseRequestHeaderConfig(input)).toThrow(ConfigError);
    expect(() => parseRequestHeaderConfig(input)).toThrow(message);
  });

  it('a failed read is a ConfigError naming the ConfigMap, with the cause', async () => {
    const failure = new Error('HTTP-Code: 403');
    const result = loadRequestHeaderConfig(port(failure));
    await expect(result).rejects.toBeInstanceOf(ConfigError);
    await expect(result).rejects.toMatchObject({
      message: /kube-system\/extension-apiserver-authentication/,
      cause: failure,
    });
  });

  it('a ConfigMap without data is missing the CA', async () => {
    await expect(loadRequestHeaderConfig(port({}))).rejects.toThrow(/no requestheader-client-ca-file/);
  });

  it('frontProxyTlsOptions asks for client certificates trusted by the requestheader CA', () => {
    const config = configFor();
    expect(frontProxyTlsOptions(config, { key: 'k', cert: 'c' })).toEqual({
      key: 'k',
      cert: 'c',
      ca: [frontProxyCA.cert],
      requestCert: true,
    });
  });
});
