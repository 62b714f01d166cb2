import { Agent } from 'node:https';
import type { AddressInfo } from 'node:net';

import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

import { createLogger } from '../../../src/log.ts';
import { MetricStore } from '../../../src/metric-store.ts';
import { buildServer, tlsServerOf } from '../../../src/server/app.ts';
import { createServerTls } from '../../../src/server/certificates.ts';
import {
  createFrontProxyAuthenticator,
  frontProxyTlsOptions,
  parseRequestHeaderConfig,
  type RequestHeaderConfig,
} from '../../../src/server/front-proxy.ts';
import {
  sameRequestHeaderConfig,
  watchRequestHeaderConfig,
  type AuthenticationConfigMapSource,
  type ConfigMapObject,
  type RequestHeaderWatch,
  type WatchEvent,
} from '../../../src/server/requestheader-watch.ts';
import { series } from './support.ts';
import {
  CA_EXTENSIONS,
  CLIENT_EXTENSIONS,
  get,
  makePki,
  SERVER_EXTENSIONS,
  type KeyPair,
  type Pki,
} from './tls-support.ts';

let pki: Pki;
let oldCA: KeyPair;
let newCA: KeyPair;
let oldClient: KeyPair;
let newClient: KeyPair;
let servingCA: KeyPair;
let serving: KeyPair;

beforeAll(() => {
  pki = makePki();
  oldCA = pki.issue('old-ca', '/CN=front-proxy-ca-old', CA_EXTENSIONS);
  newCA = pki.issue('new-ca', '/CN=front-proxy-ca-new', CA_EXTENSIONS);
  oldClient = pki.issue('old-client', '/CN=front-proxy-client', CLIENT_EXTENSIONS, 'old-ca');
  newClient = pki.issue('new-client', '/CN=front-proxy-client', CLIENT_EXTENSIONS, 'new-ca');
  servingCA = pki.issue('serving-ca', '/CN=serving-ca', CA_EXTENSIONS);
  serving = pki.issue('serving', '/CN=serving', SERVER_EXTENSIONS, 'serving-ca');
}, 60_000);

afterAll(() => {
  pki.cleanup();
});

/** The ConfigMap kube-apiserver writes, with `clientCA` as its requestheader bundle. */
function configMap(clientCA: string, resourceVersion: string, extra: Record<string, string> = {}): ConfigMapObject {
  return {
    metadata: { name: 'extension-apiserver-authentication', resourceVersion },
    data: {
      'client-ca-file': servingCA.cert,
      'requestheader-client-ca-file': clientCA,
      'requestheader-allowed-names': '["front-proxy-client"]',
      'requestheader-username-headers': '["X-Remote-User"]',
      'requestheader-group-headers': '["X-Remote-Group"]',
      'requestheader-extra-headers-prefix': '["X-Remote-Extra-"]',
      ...extra,
    },
  };
}

const configOf = (object: ConfigMapObject): RequestHeaderConfig => parseRequestHeaderConfig(object.data ?? {});

interface FakeWatch {
  readonly resourceVersion: string;
  emit(type: string, object: unknown): void;
  /** Ends the watch: cleanly, or with an error. */
  end(error?: Error): void;
}

/** A scripted API server: `listed` is what the next list returns (or throws); each watch is kept for the test. */
class FakeSource implements AuthenticationConfigMapSource {
  listed: { configMap: ConfigMapObject | undefined; resourceVersion: string } | Error;
  lists = 0;
  readonly watches: FakeWatch[] = [];

  constructor(initial: ConfigMapObject) {
    this.listed = { configMap: initial, resourceVersion: initial.metadata?.resourceVersion ?? '1' };
  }

  list() {
    this.lists++;
    return this.listed instanceof Error ? Promise.reject(this.listed) : Promise.resolve(this.listed);
  }

  watch(resourceVersion: string, onEvent: (event: WatchEvent) => void, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      signal.addEventListener('abort', () => {
        resolve();
      });
      this.watches.push({
        resourceVersion,
        emit: (type, object) => {
          onEvent({ type, object });
        },
        end: (error) => {
          if (error === undefined) resolve();
          else reject(error);
        },
      });
    });
  }

  /** The watch in progress, once there are `count`. */
  async watchNumber(count: number): Promise<FakeWatch> {
    await vi.waitFor(() => {
      expect(this.watches).toHaveLength(count);
    });
    return this.watches[count - 1] as FakeWatch;
  }
}

describe('watchRequestHeaderConfig: ConfigMap → requestheader configuration', () => {
  let watch: RequestHeaderWatch | undefined;
  let lines: string[];
  const log = createLogger({ level: 'debug', write: (line) => lines.push(line) });
  const messages = () => lines.map((line) => (JSON.parse(line) as { msg: string }).msg);

  afterEach(async () => {
    await watch?.stop();
    watch = undefined;
  });

  const begin = (source: FakeSource, initial: RequestHeaderConfig, onChange = vi.fn()) => {
    lines = [];
    watch = watchRequestHeaderConfig({ source, initial, onChange, log, retry: { initialMs: 1, maxMs: 5 } });
    return onChange;
  };

  it('rebuilds the configuration from a changed ConfigMap, trusting every CA of the bundle', async () => {
    const start = configMap(oldCA.cert, '10');
    const source = new FakeSource(start);
    const onChange = begin(source, configOf(start));
    const first = await source.watchNumber(1);
    expect(first.resourceVersion).toBe('10');
    expect(onChange).not.toHaveBeenCalled(); // the list matched the configuration in force

    // kube-apiserver's rotation: the bundle now holds the old and the new CA, and one more allowed name.
    first.emit(
      'MODIFIED',
      configMap(`${oldCA.cert}${newCA.cert}`, '11', {
        'requestheader-allowed-names': '["front-proxy-client","aggregator"]',
      }),
    );
    expect(onChange).toHaveBeenCalledTimes(1);
    const next = onChange.mock.calls[0]?.[0] as RequestHeaderConfig;
    expect(next.clientCA).toBe(`${oldCA.cert}${newCA.cert}`);
    expect(next.allowedNames).toEqual(['front-proxy-client', 'aggregator']);
    expect(watch?.current).toBe(next);
    const reloaded = lines.map((line) => JSON.parse(line) as Record<string, unknown>).at(-1);
    expect(reloaded).toMatchObject({
      level: 'info',
      msg: 'requestheader configuration reloaded from kube-system/extension-apiserver-authentication',
      allowedNames: ['front-proxy-client', 'aggregator'],
      clientCAs: [{ subject: 'CN=front-proxy-ca-old' }, { subject: 'CN=front-proxy-ca-new' }],
    });

    // The same content again (a resync, a bookmark, the CAs in another order): nothing to do.
    first.emit('BOOKMARK', { metadata: { resourceVersion: '12' } });
    first.emit(
      'MODIFIED',
      configMap(`${newCA.cert}${oldCA.cert}`, '13', {
        'requestheader-allowed-names': '["front-proxy-client","aggregator"]',
      }),
    );
    expect(onChange).toHaveBeenCalledTimes(1);

    // The server ends the watch after its timeout: resumed from the last resourceVersion, no relist.
    first.end();
    expect((await source.watchNumber(2)).resourceVersion).toBe('13');
    expect(source.lists).toBe(1);
  });

  it('keeps the configuration in force when the new one is unusable or the ConfigMap is deleted', async () => {
    const start = configMap(oldCA.cert, '1');
    const source = new FakeSource(start);
    const onChange = begin(source, configOf(start));
    const w = await source.watchNumber(1);
    const broken = configMap('', '2');
    w.emit('MODIFIED', broken);
    w.emit('MODIFIED', { ...broken, metadata: { resourceVersion: '3' } });
    w.emit('MODIFIED', configMap('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', '4'));
    w.emit('DELETED', configMap(oldCA.cert, '5'));
    expect(onChange).not.toHaveBeenCalled();
    expect(watch?.current.clientCA).toBe(oldCA.cert);
    const unusable = messages().filter((m) => m.includes('is unusable; keeping the one in force'));
    expect(unusable).toHaveLength(2); // the same broken content is reported once
    expect(messages()).toContain(
      'ConfigMap kube-system/extension-apiserver-authentication was deleted; keeping the requestheader configuration in force',
    );
  });

  it('keeps the configuration in force when applying the new one fails', async () => {
    const start = configMap(oldCA.cert, '1');
    const source = new FakeSource(start);
    const onChange = begin(
      source,
      configOf(start),
      vi.fn(() => {
        throw new Error('OpenSSL said no');
      }),
    );
    (await source.watchNumber(1)).emit('MODIFIED', configMap(newCA.cert, '2'));
    expect(onChange).toHaveBeenCalledTimes(1);
    expect(watch?.current.clientCA).toBe(oldCA.cert);
    expect(lines.at(-1)).toContain('OpenSSL said no');
  });

  it('restarts after errors with backoff and relists, picking up what changed meanwhile', async () => {
    const start = configMap(oldCA.cert, '1');
    const source = new FakeSource(start);
    const onChange = begin(source, configOf(start));
    const w = await source.watchNumber(1);
    // The API server goes away: the watch fails, and so do the next lists.
    source.listed = new Error('connect ECONNREFUSED 127.0.0.1:6443');
    w.end(new Error('socket hang up'));
    await vi.waitFor(() => {
      expect(source.lists).toBeGreaterThanOrEqual(4);
    });
    // It comes back with a rotated CA.
    source.listed = { configMap: configMap(newCA.cert, '40'), resourceVersion: '40' };
    const after = await source.watchNumber(2);
    expect(after.resourceVersion).toBe('40');
    expect(onChange).toHaveBeenCalledTimes(1);
    expect((onChange.mock.calls[0]?.[0] as RequestHeaderConfig).clientCA).toBe(newCA.cert);
    // Logged at failures 1, 2, 4, 8, ...: not once per retry.
    const retries = messages().filter((m) => m.startsWith('watching ConfigMap'));
    expect(retries.length).toBeGreaterThan(0);
    expect(retries.length).toBeLessThan(source.lists);
  });

  it('relists when the resourceVersion is too old (410 Gone), and when a watch ends at once', async () => {
    const start = configMap(oldCA.cert, '1');
    const source = new FakeSource(start);
    begin(source, configOf(start));
    (await source.watchNumber(1)).emit('ERROR', { kind: 'Status', code: 410, reason: 'Expired' });
    (await source.watchNumber(1)).end();
    await source.watchNumber(2);
    expect(source.lists).toBe(2);
    (await source.watchNumber(2)).end(); // no event, right away: treated as a failure, then a relist
    await source.watchNumber(3);
    expect(source.lists).toBe(3);
  });

  it('stops while a watch is open', async () => {
    const start = configMap(oldCA.cert, '1');
    const source = new FakeSource(start);
    begin(source, configOf(start));
    await source.watchNumber(1);
    await watch?.stop();
    watch = undefined;
    expect(source.watches).toHaveLength(1);
  });

  it('compares configurations by CA set, names and headers', () => {
    const a = configOf(configMap(`${oldCA.cert}${newCA.cert}`, '1'));
    expect(sameRequestHeaderConfig(a, configOf(configMap(`${newCA.cert}${oldCA.cert}`, '2')))).toBe(true);
    expect(sameRequestHeaderConfig(a, configOf(configMap(newCA.cert, '2')))).toBe(false);
    expect(
      sameRequestHeaderConfig(
        a,
        configOf(configMap(`${oldCA.cert}${newCA.cert}`, '2', { 'requestheader-uid-headers': '["X-Remote-Uid"]' })),
      ),
    ).toBe(false);
  });
});

const METRIC_PATH = '/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/s0-m';
const HEADERS = { 'X-Remote-User': 'system:admin', 'X-Remote-Group': 'system:masters' };

describe('a front-proxy CA rotation over real TLS, wired as main.ts wires it', () => {
  let app: FastifyInstance;
  let port: number;
  let source: FakeSource;
  let watch: RequestHeaderWatch;
  let inForce: RequestHeaderConfig;

  beforeAll(async () => {
    const start = configMap(oldCA.cert, '1');
    const initial = configOf(start);
    source = new FakeSource(start);
    inForce = initial;
    const store = new MetricStore();
    store.set(series({ namespace: 'shop', metricName: 's0-m', value: 7 }));
    app = buildServer({
      store,
      authenticate: createFrontProxyAuthenticator(() => inForce),
      authorize: () => Promise.resolve({ allowed: true, reason: '' }),
      ready: () => true,
      https: frontProxyTlsOptions(initial, serving),
    });
    const tls = createServerTls(tlsServerOf(app), { serving, clientCA: initial.clientCA });
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as AddressInfo).port;
    watch = watchRequestHeaderConfig({
      source,
      initial,
      log: () => undefined,
      onChange: (next) => {
        tls.setClientCA(next.clientCA);
        inForce = next;
      },
    });
    await source.watchNumber(1);
  });

  afterAll(async () => {
    await watch.stop();
    await app.close();
  });

  const status = async (client: KeyPair, agent?: Agent) =>
    (await get(port, METRIC_PATH, { ca: servingCA.cert, client, headers: HEADERS, ...(agent ? { agent } : {}) }))
      .status;
  const idleSockets = (agent: Agent) => Object.values(agent.freeSockets).flat().length;

  it('old CA → old + new (both accepted) → new only (the old refused)', async () => {
    expect(await status(oldClient)).toBe(200);
    const refused = await get(port, METRIC_PATH, { ca: servingCA.cert, client: newClient, headers: HEADERS });
    expect(refused.status).toBe(401);
    // Closed after a 401: a client that kept it would never authenticate on it, whatever the new trust store says.
    expect(refused.connection).toBe('close');

    const w = await source.watchNumber(1);
    w.emit('MODIFIED', configMap(`${oldCA.cert}${newCA.cert}`, '2'));
    expect(await status(oldClient)).toBe(200);
    expect(await status(newClient)).toBe(200);

    // An idle kept-alive connection, verified against the old trust store, is closed when the trust store changes…
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      expect(await status(oldClient, agent)).toBe(200);
      expect(idleSockets(agent)).toBe(1);
      w.emit('MODIFIED', configMap(newCA.cert, '3'));
      await vi.waitFor(() => {
        expect(idleSockets(agent)).toBe(0);
      });
      // …so the client's next request makes a new handshake against the new one.
      expect(await status(oldClient, agent)).toBe(401);
      expect(await status(newClient, agent)).toBe(200);
    } finally {
      agent.destroy();
    }
    expect(await status(oldClient)).toBe(401);
    expect(await status(newClient)).toBe(200);
  });

  it('a connection that stays open across a change is checked against the configuration in force', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      expect(await status(newClient, agent)).toBe(200);
      // Busy during the change (so not closed as idle): simulated by changing only what the authenticator reads.
      inForce = configOf(configMap(oldCA.cert, '9'));
      expect(idleSockets(agent)).toBe(1);
      expect(await status(newClient, agent)).toBe(401);
    } finally {
      agent.destroy();
    }
  });
});
