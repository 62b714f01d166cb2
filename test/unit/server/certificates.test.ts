import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

import { createLogger, type Logger } from '../../../src/log.ts';
import { MetricStore } from '../../../src/metric-store.ts';
import { buildServer, tlsServerOf } from '../../../src/server/app.ts';
import {
  CertificateError,
  checkServingPair,
  createServerTls,
  pemCertificates,
  watchServingCertificate,
  type ServerTls,
  type ServingWatch,
} from '../../../src/server/certificates.ts';
import {
  createFrontProxyAuthenticator,
  frontProxyTlsOptions,
  parseRequestHeaderConfig,
} from '../../../src/server/front-proxy.ts';
import { series } from './support.ts';
import {
  CA_EXTENSIONS,
  CLIENT_EXTENSIONS,
  get,
  makePki,
  SERVER_EXTENSIONS,
  servedSerial,
  type KeyPair,
  type Pki,
} from './tls-support.ts';

let pki: Pki;
let servingCA: KeyPair;
let first: KeyPair;
let second: KeyPair;
let third: KeyPair;
let frontProxyCA: KeyPair;
let frontProxyClient: KeyPair;

const serial = (pair: KeyPair): string => checkServingPair(pair).serialNumber;

beforeAll(() => {
  pki = makePki();
  servingCA = pki.issue('serving-ca', '/CN=serving-ca', CA_EXTENSIONS);
  first = pki.issue('first', '/CN=first', SERVER_EXTENSIONS, 'serving-ca');
  second = pki.issue('second', '/CN=second', SERVER_EXTENSIONS, 'serving-ca');
  third = pki.issue('third', '/CN=third', SERVER_EXTENSIONS, 'serving-ca');
  frontProxyCA = pki.issue('front-proxy-ca', '/CN=front-proxy-ca', CA_EXTENSIONS);
  frontProxyClient = pki.issue('front-proxy-client', '/CN=front-proxy-client', CLIENT_EXTENSIONS, 'front-proxy-ca');
}, 60_000);

afterAll(() => {
  pki.cleanup();
});

/** Fails the test if any key material reached the log. */
function expectNoKeyMaterial(lines: readonly string[]): void {
  const text = lines.join('\n');
  expect(text).not.toContain('PRIVATE KEY');
  for (const pair of [first, second, third]) {
    const body = pair.key.split('\n').filter((line) => line !== '' && !line.startsWith('-----'));
    for (const line of body) expect(text).not.toContain(line);
  }
}

describe('checkServingPair', () => {
  it('summarizes a usable pair: subject, serial, validity, fingerprint', () => {
    const summary = checkServingPair(first);
    expect(summary.subject).toBe('CN=first');
    expect(summary.serialNumber).toMatch(/^[0-9A-F]+$/);
    expect(new Date(summary.notAfter).getTime()).toBeGreaterThan(Date.now());
    expect(summary.sha256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });

  it('refuses a key that belongs to another certificate, without quoting the key', () => {
    const check = () => checkServingPair({ cert: second.cert, key: first.key });
    expect(check).toThrow(CertificateError);
    expect(check).toThrow(/does not belong to the certificate/);
    try {
      check();
    } catch (err) {
      expectNoKeyMaterial([String(err), JSON.stringify(err)]);
    }
  });

  it('refuses what does not parse', () => {
    expect(() => checkServingPair({ cert: 'not a certificate', key: first.key })).toThrow(/no PEM certificate/);
    expect(() => checkServingPair({ cert: first.cert, key: 'not a key' })).toThrow(/private key does not parse/);
    const truncated = first.cert.replace(/\n[A-Za-z0-9+/=]{20,}\n/, '\nAAAA\n');
    expect(() => checkServingPair({ cert: truncated, key: first.key })).toThrow(CertificateError);
  });

  it('splits a PEM bundle into its certificates', () => {
    expect(pemCertificates(`junk\n${servingCA.cert}${frontProxyCA.cert}`)).toEqual([servingCA.cert, frontProxyCA.cert]);
    expect(pemCertificates('')).toEqual([]);
  });
});

const METRIC_PATH = '/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/s0-m';
const HEADERS = { 'X-Remote-User': 'system:admin', 'X-Remote-Group': 'system:masters' };

interface Running {
  readonly app: FastifyInstance;
  readonly port: number;
  readonly tls: ServerTls;
}

/** A real HTTPS server wired like main.ts: front-proxy authentication and a ServerTls over its TLS server. */
async function start(serving: KeyPair): Promise<Running> {
  const requestHeader = parseRequestHeaderConfig({
    'requestheader-client-ca-file': frontProxyCA.cert,
    'requestheader-allowed-names': '["front-proxy-client"]',
  });
  const store = new MetricStore();
  store.set(series({ namespace: 'shop', metricName: 's0-m', value: 7 }));
  const app = buildServer({
    store,
    authenticate: createFrontProxyAuthenticator(requestHeader),
    authorize: () => Promise.resolve({ allowed: true, reason: '' }),
    ready: () => true,
    https: frontProxyTlsOptions(requestHeader, serving),
  });
  const tls = createServerTls(tlsServerOf(app), { serving, clientCA: requestHeader.clientCA });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, port: (app.server.address() as AddressInfo).port, tls };
}

describe('ServerTls: swapping the serving pair of a running server', () => {
  let server: Running;

  beforeAll(async () => {
    server = await start(first);
  });

  afterAll(async () => {
    await server.app.close();
  });

  it('serves a new pair from the next connection on, keeping the client CA', async () => {
    expect(await servedSerial(server.port)).toBe(serial(first));
    const summary = server.tls.swapServingPair(second);
    expect(summary.serialNumber).toBe(serial(second));
    expect(server.tls.certificate).toEqual(summary);
    expect(await servedSerial(server.port)).toBe(serial(second));
    // The front proxy still authenticates: the requestheader CA stayed in the new context.
    const reply = await get(server.port, METRIC_PATH, {
      ca: servingCA.cert,
      client: frontProxyClient,
      headers: HEADERS,
    });
    expect(reply.status).toBe(200);
  });

  it('keeps the pair in use when the new one does not match or parse', async () => {
    const before = await servedSerial(server.port);
    expect(() => server.tls.swapServingPair({ cert: third.cert, key: first.key })).toThrow(CertificateError);
    expect(() => server.tls.swapServingPair({ cert: '', key: '' })).toThrow(CertificateError);
    expect(await servedSerial(server.port)).toBe(before);
    expect(server.tls.serving.cert).not.toBe(third.cert);
    const reply = await get(server.port, METRIC_PATH, {
      ca: servingCA.cert,
      client: frontProxyClient,
      headers: HEADERS,
    });
    expect(reply.status).toBe(200);
  });

  it('refuses an initial pair that does not match', () => {
    expect(() =>
      createServerTls({ setSecureContext: vi.fn() }, { serving: { cert: first.cert, key: second.key }, clientCA: '' }),
    ).toThrow(CertificateError);
  });
});

/**
 * A directory laid out like a Kubernetes Secret volume (kubernetes/kubernetes pkg/volume/util/atomic_writer.go):
 * `tls.crt -> ..data/tls.crt`, `..data -> ..<version>`; an update writes a new version directory and renames a new
 * `..data` symlink over the old one.
 */
class SecretVolume {
  readonly dir = mkdtempSync(join(tmpdir(), 'sluice-secret-volume-'));
  private version = 0;

  constructor(pair: KeyPair) {
    this.write(pair);
    symlinkSync('..data/tls.crt', join(this.dir, 'tls.crt'));
    symlinkSync('..data/tls.key', join(this.dir, 'tls.key'));
  }

  get certFile(): string {
    return join(this.dir, 'tls.crt');
  }

  get keyFile(): string {
    return join(this.dir, 'tls.key');
  }

  write(pair: KeyPair): void {
    const previous = this.version === 0 ? undefined : `..v${this.version}`;
    this.version++;
    const name = `..v${this.version}`;
    mkdirSync(join(this.dir, name));
    writeFileSync(join(this.dir, name, 'tls.crt'), pair.cert);
    writeFileSync(join(this.dir, name, 'tls.key'), pair.key, { mode: 0o600 });
    symlinkSync(name, join(this.dir, '..data_tmp'));
    renameSync(join(this.dir, '..data_tmp'), join(this.dir, '..data'));
    if (previous !== undefined) rmSync(join(this.dir, previous), { recursive: true });
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

describe('watchServingCertificate', () => {
  let server: Running;
  let volume: SecretVolume;
  let watcher: ServingWatch | undefined;
  let lines: string[];
  let log: Logger;

  beforeAll(async () => {
    server = await start(first);
  });

  afterAll(async () => {
    await server.app.close();
  });

  afterEach(() => {
    watcher?.close();
    volume.remove();
  });

  const records = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>);

  const setup = (pair: KeyPair, debounceMs = 50) => {
    server.tls.swapServingPair(pair);
    volume = new SecretVolume(pair);
    lines = [];
    log = createLogger({ level: 'debug', write: (line) => lines.push(line) });
    watcher = watchServingCertificate({
      files: { certFile: volume.certFile, keyFile: volume.keyFile },
      tls: server.tls,
      log,
      debounceMs,
    });
  };

  it('swaps in the new pair when the Secret volume is updated, and logs its serial and expiry', async () => {
    setup(first);
    volume.write(second);
    await vi.waitFor(async () => {
      expect(await servedSerial(server.port)).toBe(serial(second));
    });
    const reloaded = records().find((r) => r['msg'] === 'serving certificate reloaded');
    expect(reloaded).toMatchObject({
      level: 'info',
      serialNumber: serial(second),
      notAfter: checkServingPair(second).notAfter,
      subject: 'CN=second',
    });
    expectNoKeyMaterial(lines);
    expect(await watcher?.reload()).toBe('unchanged');
  });

  it('keeps the current pair when the new files do not match, logs it once, and takes the next good pair', async () => {
    setup(second, 60_000); // no automatic reloads: each step calls reload()
    volume.write({ cert: third.cert, key: second.key });
    expect(await watcher?.reload()).toBe('rejected');
    expect(await watcher?.reload()).toBe('rejected');
    expect(await servedSerial(server.port)).toBe(serial(second));
    const rejected = records().filter((r) => r['msg'] === 'new serving certificate rejected; keeping the current one');
    expect(rejected).toHaveLength(1);
    expect(rejected[0]).toMatchObject({ level: 'error', error: expect.stringMatching(/does not belong/) as unknown });
    expectNoKeyMaterial(lines);

    volume.write(third);
    expect(await watcher?.reload()).toBe('reloaded');
    expect(await servedSerial(server.port)).toBe(serial(third));
  });

  it('keeps the current pair when the files cannot be read', async () => {
    setup(first, 60_000);
    rmSync(join(volume.dir, '..data'));
    expect(await watcher?.reload()).toBe('unreadable');
    expect(await servedSerial(server.port)).toBe(serial(first));
    expect(records().some((r) => r['level'] === 'warn')).toBe(true);
  });
});
