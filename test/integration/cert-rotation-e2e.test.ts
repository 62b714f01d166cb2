// Certificate rotation without a restart (docs/security.md#certificates), end to end: while a real HPA reads an
// external metric from sluice through kube-apiserver's aggregator (and the test reads it the same way every 200 ms),
//
// (a) sluice's serving certificate is renewed on disk, laid out as a Kubernetes Secret volume (a `..data` symlink
//     swap); then a key that does not match is written (sluice keeps the old pair), then a good pair again;
// (b) the front-proxy CA is rotated on the environment's real kube-apiserver: restarted (scripts/env/up.sh, through
//     the front-proxy override of scripts/env/lib.sh) with --requestheader-client-ca-file = old + new CA and a new
//     --proxy-client-cert-file; then the CA file is cut to the new CA alone (kube-apiserver reloads it without a
//     restart) and, as an administrator would, the old CA is removed from the ConfigMap (kube-apiserver never removes
//     one itself). The original configuration is restored at the end, failure or not.
//
// Measured: metric fetches that fail once each rotation is complete (must be none), and the HPA's ScalingActive
// condition. Fetches during the kube-apiserver restart itself are counted and reported, not asserted.
import { execFileSync } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ApiException,
  ApiregistrationV1Api,
  AutoscalingV2Api,
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1ConfigMap,
} from '@kubernetes/client-node';
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createNamespace,
  deleteNamespace,
  kubeConfig,
  loadTestEnv,
  runEnvUp,
  uniqueName,
  waitFor,
} from '../support/env.ts';
import { ScalingTestKit } from '../support/scaling.ts';
import { startSluice, type SluiceProcess } from '../support/sluice.ts';

const APISERVICE = 'v1beta1.external.metrics.k8s.io';
const AUTH_CONFIGMAP = { namespace: 'kube-system', name: 'extension-apiserver-authentication' };
const REQUESTHEADER_CA = 'requestheader-client-ca-file';
/** How long fetches are watched once a rotation is complete. */
const WINDOW_MS = 10_000;

// --- throwaway PKI (openssl CLI) ------------------------------------------------------------------------------------

interface KeyPair {
  cert: string;
  key: string;
}

function makeIssuer(dir: string) {
  const openssl = (...args: string[]) =>
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const read = (name: string): KeyPair => ({
    cert: readFileSync(path.join(dir, `${name}.crt`), 'utf8'),
    key: readFileSync(path.join(dir, `${name}.key`), 'utf8'),
  });
  return {
    ca(name: string, cn: string): KeyPair {
      openssl(
        'req',
        '-x509',
        ...ec,
        '-days',
        '2',
        '-subj',
        `/CN=${cn}`,
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.crt`,
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
      );
      return read(name);
    },
    leaf(name: string, ca: string, cn: string, extensions: string): KeyPair {
      openssl('req', ...ec, '-subj', `/CN=${cn}`, '-keyout', `${name}.key`, '-out', `${name}.csr`);
      writeFileSync(path.join(dir, `${name}.ext`), extensions);
      openssl(
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        `${ca}.crt`,
        '-CAkey',
        `${ca}.key`,
        '-set_serial',
        `0x1${randomBytes(10).toString('hex')}`, // unique: the test tells certificates apart by serial
        '-days',
        '2',
        '-sha256',
        '-extfile',
        `${name}.ext`,
        '-out',
        `${name}.crt`,
      );
      return read(name);
    },
    /** A CA's key is only needed to sign: removed as soon as the certificates exist. */
    forget(name: string): void {
      rmSync(path.join(dir, `${name}.key`), { force: true });
    },
  };
}

const SERVING_EXTENSIONS =
  'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' +
  // kube-aggregator verifies <service>.<namespace>.svc; --local's ExternalName Service points it at localhost.
  'subjectAltName=DNS:sluice-metrics.sluice-system.svc,DNS:localhost,IP:127.0.0.1\n';
const CLIENT_EXTENSIONS =
  'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n';

const serialOf = (pem: string): string => new X509Certificate(pem).serialNumber;
const fingerprintOf = (pem: string): string => new X509Certificate(pem).fingerprint256;
const fingerprints = (bundle: string): string[] =>
  (bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(fingerprintOf);

/**
 * The serving certificate files, laid out as kubelet lays out a Secret volume (kubernetes/kubernetes
 * pkg/volume/util/atomic_writer.go): `tls.crt -> ..data/tls.crt`, `..data -> ..<version>`; an update writes a new
 * version directory and renames a new `..data` symlink over the old one.
 */
class SecretVolume {
  private version = 0;
  readonly dir: string;

  constructor(dir: string, pair: KeyPair) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
    this.write(pair);
    symlinkSync('..data/tls.crt', this.certFile);
    symlinkSync('..data/tls.key', this.keyFile);
  }

  get certFile(): string {
    return path.join(this.dir, 'tls.crt');
  }

  get keyFile(): string {
    return path.join(this.dir, 'tls.key');
  }

  write(pair: KeyPair): void {
    const previous = this.version === 0 ? undefined : `..v${this.version}`;
    const name = `..v${++this.version}`;
    mkdirSync(path.join(this.dir, name));
    writeFileSync(path.join(this.dir, name, 'tls.crt'), pair.cert);
    writeFileSync(path.join(this.dir, name, 'tls.key'), pair.key, { mode: 0o600 });
    symlinkSync(name, path.join(this.dir, '..data_tmp'));
    renameSync(path.join(this.dir, '..data_tmp'), path.join(this.dir, '..data'));
    if (previous !== undefined) rmSync(path.join(this.dir, previous), { recursive: true });
  }
}

// --- observers ------------------------------------------------------------------------------------------------------

interface Fetch {
  at: number;
  ok: boolean;
  detail: string;
}

/** GETs the metric through kube-apiserver and its aggregator every 200 ms, as the HPA controller does. */
class MetricProbe {
  readonly fetches: Fetch[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(kc: KubeConfig, namespace: string, metric: string, selector: string) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('no cluster in kubeconfig');
    const url = new URL(
      `/apis/external.metrics.k8s.io/v1beta1/namespaces/${namespace}/${metric}?labelSelector=${encodeURIComponent(selector)}`,
      cluster.server,
    );
    const once = async (): Promise<Fetch> => {
      const options: RequestOptions = {
        host: url.hostname,
        port: url.port,
        path: `${url.pathname}${url.search}`,
        timeout: 2000,
      };
      await kc.applyToHTTPSOptions(options);
      return new Promise((resolve) => {
        const at = Date.now();
        const req = request(options, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let value: unknown;
            try {
              value = (JSON.parse(text) as { items?: { value?: unknown }[] }).items?.[0]?.value;
            } catch {
              value = undefined;
            }
            const ok = res.statusCode === 200 && typeof value === 'string';
            resolve({ at, ok, detail: ok ? String(value) : `${res.statusCode ?? 0} ${text.slice(0, 200)}` });
          });
        });
        req.on('timeout', () => req.destroy(new Error('timed out after 2 s')));
        req.on('error', (err) => {
          resolve({ at, ok: false, detail: err.message });
        });
        req.end();
      });
    };
    this.loop = (async () => {
      while (this.running) {
        const started = Date.now();
        this.fetches.push(await once());
        await sleep(Math.max(0, 200 - (Date.now() - started)));
      }
    })();
  }

  between(from: number, to = Infinity): Fetch[] {
    return this.fetches.filter((f) => f.at >= from && f.at < to);
  }

  failures(from: number, to = Infinity): Fetch[] {
    return this.between(from, to).filter((f) => !f.ok);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

interface Sample {
  at: number;
  /** True/False/Unknown, or `unreachable` while kube-apiserver is down. */
  status: string;
  reason: string;
}

/** Reads the HPA's ScalingActive condition twice a second. */
class HpaWatcher {
  readonly samples: Sample[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  constructor(kc: KubeConfig, namespace: string, name: string) {
    const api = kc.makeApiClient(AutoscalingV2Api);
    this.loop = (async () => {
      while (this.running) {
        const at = Date.now();
        try {
          const hpa = await api.readNamespacedHorizontalPodAutoscaler({ name, namespace });
          const c = hpa.status?.conditions?.find((x) => x.type === 'ScalingActive');
          this.samples.push({ at, status: c?.status ?? 'Unknown', reason: c?.reason ?? '' });
        } catch {
          this.samples.push({ at, status: 'unreachable', reason: '' });
        }
        await sleep(500);
      }
    })();
  }

  /** Samples from `from` on, while kube-apiserver answered. */
  answered(from: number, to = Infinity): Sample[] {
    return this.samples.filter((s) => s.at >= from && s.at < to && s.status !== 'unreachable');
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

/** sluice's JSON log lines written since the test started. */
function sluiceLog(file: string, offset: number): Record<string, unknown>[] {
  return readFileSync(file, 'utf8')
    .slice(offset)
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** The serial number of the certificate sluice presents on a new connection (127.0.0.1 only). */
function servedSerial(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.destroy();
      resolve(serial);
    });
    socket.on('error', reject);
  });
}

/** A metric GET straight to sluice with a client certificate, as the aggregator would send it. */
function directStatus(port: number, path_: string, client: KeyPair, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: path_,
        ca,
        cert: client.cert,
        key: client.key,
        agent: false,
        servername: 'localhost',
        headers: { 'X-Remote-User': 'system:admin', 'X-Remote-Group': 'system:masters' },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Writes a file so that a reader (kube-apiserver's file watch) never sees half of it. */
function writeAtomically(file: string, content: string, mode = 0o644): void {
  writeFileSync(`${file}.tmp`, content, { mode });
  renameSync(`${file}.tmp`, file);
}

// --------------------------------------------------------------------------------------------------------------------

describe('certificate rotation while the HPA reads metrics through the aggregator', () => {
  const env = loadTestEnv();
  const kc = kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const registration = kc.makeApiClient(ApiregistrationV1Api);
  const work = mkdtempSync(path.join(tmpdir(), 'sluice-cert-rotation-'));
  const issuer = makeIssuer(work);
  const override = path.join(env.stateDir, 'front-proxy-override');
  const queue = uniqueName('rotation');
  const logName = 'sluice-cert-rotation-e2e.log';

  let servingCA: KeyPair;
  let volume: SecretVolume;
  let sluice: SluiceProcess | undefined;
  let kit: ScalingTestKit | undefined;
  let connection: amqp.ChannelModel | undefined;
  let probe: MetricProbe | undefined;
  let hpa: HpaWatcher | undefined;
  let logOffset = 0;
  let metricPath = '';
  /** The ConfigMap's data before the test touched kube-apiserver; restored at the end. */
  let originalData: Record<string, string> | undefined;
  let overrideWritten = false;

  const log = () => sluiceLog(path.join(env.logsDir, logName), logOffset);
  /** The command line up.sh recorded for the running kube-apiserver (scripts/env/lib.sh `spec`). */
  const apiserverFlags = () => readFileSync(path.join(env.stateDir, 'run', 'kube-apiserver.spec'), 'utf8');
  const setCaBundle = async (bundle: string) => {
    await registration.patchAPIService(
      { name: APISERVICE, body: { spec: { caBundle: Buffer.from(bundle).toString('base64') } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  };
  const available = async () =>
    (await registration.readAPIService({ name: APISERVICE })).status?.conditions?.some(
      (c) => c.type === 'Available' && c.status === 'True',
    ) === true;
  const readAuthConfigMap = () => core.readNamespacedConfigMap(AUTH_CONFIGMAP);
  /** Replaces the ConfigMap's data (retrying when kube-apiserver wrote it in between). */
  const writeAuthConfigMap = async (data: Record<string, string>) => {
    await waitFor(
      async () => {
        const current: V1ConfigMap = await readAuthConfigMap();
        try {
          await core.replaceNamespacedConfigMap({
            ...AUTH_CONFIGMAP,
            body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: current.metadata ?? {}, data },
          });
          return true;
        } catch (err) {
          if (err instanceof ApiException && err.code === 409) return false;
          throw err;
        }
      },
      { timeoutMs: 20_000, message: `ConfigMap ${AUTH_CONFIGMAP.name} to be replaced` },
    );
  };
  /** Waits until ScalingActive is True, then asserts it stays True for the rest of the window. */
  const expectScalingActiveFrom = async (from: number, until: number) => {
    const firstTrue = await waitFor(() => hpa?.answered(from).find((s) => s.status === 'True'), {
      timeoutMs: 30_000,
      message: 'the HPA condition ScalingActive=True',
    });
    await sleep(Math.max(0, until - Date.now()));
    const after = hpa?.answered(firstTrue.at, until) ?? [];
    expect(after.length).toBeGreaterThan(0);
    expect(after.filter((s) => s.status !== 'True')).toEqual([]);
    return firstTrue.at - from;
  };

  beforeAll(async () => {
    servingCA = issuer.ca('serving-ca', 'sluice-rotation-serving-ca');
    const first = issuer.leaf('serving-1', 'serving-ca', 'sluice-metrics.sluice-system.svc', SERVING_EXTENSIONS);
    volume = new SecretVolume(path.join(work, 'tls'), first);

    const logFile = path.join(env.logsDir, logName);
    try {
      logOffset = statSync(logFile).size;
    } catch {
      logOffset = 0;
    }
    // The lock may be held by another test run for a while (only one sluice owns the APIService at a time).
    sluice = await startSluice({
      logName,
      extraArgs: ['--tls-cert-file', volume.certFile, '--tls-private-key-file', volume.keyFile],
    });
    // With --local and --tls-* files, sluice registered its certificate file as the caBundle. The aggregator must
    // trust the CA instead, so that renewed certificates are trusted too (as cert-manager's CA injector does).
    await setCaBundle(servingCA.cert);

    kit = new ScalingTestKit(kc, await createNamespace(kc, 'cert-rotation'));
    connection = await amqp.connect(env.rabbitmq.amqpUrl);
    const channel = await connection.createChannel();
    await channel.assertQueue(queue, { durable: false });
    for (let i = 0; i < 5; i++) channel.sendToQueue(queue, Buffer.from(`m${i}`));
    await channel.close();

    await kit.createMetricsConsumer(queue);
    const metric = `s0-rabbitmq-${queue}`;
    const selector = ScalingTestKit.selectorFor('consumer');
    metricPath = `/apis/external.metrics.k8s.io/v1beta1/namespaces/${kit.namespace}/${metric}?labelSelector=${encodeURIComponent(selector)}`;
    await waitFor(async () => (await kit?.externalMetric(metric, selector))?.values[0] === '5', {
      timeoutMs: 30_000,
      message: 'the metric to read 5 through the aggregator',
    });
    probe = new MetricProbe(kc, kit.namespace, metric, selector);
    hpa = new HpaWatcher(kc, kit.namespace, 'sluice-hpa-consumer');
    await waitFor(() => hpa?.samples.at(-1)?.status === 'True', {
      timeoutMs: 30_000,
      message: 'the HPA condition ScalingActive=True before any rotation',
    });
  }, 720_000);

  afterAll(async () => {
    const problems: unknown[] = [];
    const attempt = async (what: string, step: () => Promise<unknown>) => {
      try {
        await step();
      } catch (err) {
        problems.push(new Error(`cleanup: ${what}`, { cause: err }));
      }
    };
    await attempt('stop the probes', async () => {
      await probe?.stop();
      await hpa?.stop();
    });
    // The environment first: kube-apiserver back on its own front-proxy files, the ConfigMap as it was.
    if (overrideWritten) {
      await attempt('restore kube-apiserver', async () => {
        rmSync(override, { recursive: true, force: true });
        const up = await runEnvUp();
        if (up.code !== 0) throw new Error(`scripts/env/up.sh failed (${String(up.code)}):\n${up.output}`);
        if (apiserverFlags().includes(override)) throw new Error('kube-apiserver still runs with the override');
        console.log(`[measure] restore: up.sh replaced kube-apiserver with its own files in ${up.ms} ms`);
      });
    }
    if (originalData !== undefined) {
      const data = originalData;
      await attempt('restore the ConfigMap', async () => {
        // kube-apiserver re-adds its CA when the ConfigMap lacks it; it never adds one it does not trust (any more).
        await writeAuthConfigMap(data);
        await waitFor(async () => (await readAuthConfigMap()).data?.[REQUESTHEADER_CA] === data[REQUESTHEADER_CA], {
          timeoutMs: 20_000,
          message: 'the original requestheader CA in the ConfigMap',
        });
      });
    }
    await attempt('close the broker connection', async () => {
      if (connection === undefined) return;
      const channel = await connection.createChannel();
      await channel.deleteQueue(queue);
      await connection.close();
    });
    // Namespaces go before the metrics server: an unavailable APIService blocks namespace deletion.
    if (kit !== undefined) {
      const namespace = kit.namespace;
      await attempt('delete the namespace', async () => {
        await waitFor(available, { timeoutMs: 60_000, message: 'the APIService to be Available again' });
        await deleteNamespace(kc, namespace);
      });
    }
    await attempt('stop sluice', async () => {
      await sluice?.stop();
    });
    rmSync(work, { recursive: true, force: true });
    if (problems.length > 0) throw new AggregateError(problems, 'cleanup failed');
  }, 600_000);

  it('(a) renews the serving certificate on disk: no failed fetch, ScalingActive stays True', async () => {
    const second = issuer.leaf('serving-2', 'serving-ca', 'sluice-metrics.sluice-system.svc', SERVING_EXTENSIONS);
    const third = issuer.leaf('serving-3', 'serving-ca', 'sluice-metrics.sluice-system.svc', SERVING_EXTENSIONS);
    const port = loadTestEnv().sluice.port;
    const start = Date.now();
    await sleep(2000);

    volume.write(second);
    const rotated = Date.now();
    await waitFor(async () => (await servedSerial(port)) === serialOf(second.cert), {
      timeoutMs: 10_000,
      intervalMs: 50,
      message: 'sluice to serve the renewed certificate',
    });
    const complete = Date.now();
    console.log(`[measure] (a) renewed serving certificate served ${complete - rotated} ms after the ..data swap`);
    expect(log().find((l) => l['msg'] === 'serving certificate reloaded')).toMatchObject({
      serialNumber: serialOf(second.cert),
      notAfter: new X509Certificate(second.cert).validToDate.toISOString(),
    });
    // New aggregator connections (a changed caBundle makes it build a new transport) get the new certificate.
    await setCaBundle(`${servingCA.cert}${readFileSync(env.pki.caCert, 'utf8')}`);
    await sleep(WINDOW_MS / 2);

    // A pair that does not match: logged, the renewed certificate stays.
    volume.write({ cert: third.cert, key: second.key });
    await waitFor(() => log().some((l) => l['msg'] === 'new serving certificate rejected; keeping the current one'), {
      timeoutMs: 10_000,
      message: 'sluice to reject the mismatched pair',
    });
    expect(await servedSerial(port)).toBe(serialOf(second.cert));
    await sleep(2000);

    // And the next good pair is taken.
    volume.write(third);
    await waitFor(async () => (await servedSerial(port)) === serialOf(third.cert), {
      timeoutMs: 10_000,
      intervalMs: 50,
      message: 'sluice to serve the third certificate',
    });
    await setCaBundle(servingCA.cert);
    const end = Date.now() + WINDOW_MS / 2;
    await expectScalingActiveFrom(start, end);

    const fetched = probe?.between(start) ?? [];
    const failed = probe?.failures(start) ?? [];
    console.log(`[measure] (a) ${fetched.length} fetches over ${Date.now() - start} ms, ${failed.length} failed`);
    expect(fetched.length).toBeGreaterThan(50);
    expect(failed).toEqual([]);
    // No key material in sluice's log.
    expect(readFileSync(path.join(env.logsDir, logName), 'utf8').slice(logOffset)).not.toContain('PRIVATE KEY');
  }, 180_000);

  it('(b) rotates the front-proxy CA on kube-apiserver: no failed fetch once each step is complete', async () => {
    const originalCA = readFileSync(env.pki.frontProxyCaCert, 'utf8');
    const original = await readAuthConfigMap();
    originalData = { ...(original.data ?? {}) };
    expect(fingerprints(originalData[REQUESTHEADER_CA] ?? '')).toContain(fingerprintOf(originalCA));

    const newCA = issuer.ca('front-proxy-ca-new', 'sluice-rotated-front-proxy-ca');
    const newClient = issuer.leaf(
      'front-proxy-client-new',
      'front-proxy-ca-new',
      'front-proxy-client',
      CLIENT_EXTENSIONS,
    );
    issuer.forget('front-proxy-ca-new');
    const newFingerprint = fingerprintOf(newCA.cert);
    const oldClient = {
      cert: readFileSync(env.pki.frontProxyClientCert, 'utf8'),
      key: readFileSync(env.pki.frontProxyClientKey, 'utf8'),
    };

    // Step 1: kube-apiserver restarted trusting old + new, presenting the new client certificate.
    mkdirSync(override, { recursive: true });
    writeAtomically(path.join(override, 'requestheader-client-ca.crt'), `${originalCA}${newCA.cert}`);
    writeAtomically(path.join(override, 'proxy-client.crt'), newClient.cert);
    writeAtomically(path.join(override, 'proxy-client.key'), newClient.key, 0o600);
    writeAtomically(path.join(override, 'owner'), String(process.pid));
    overrideWritten = true;
    const restart = Date.now();
    const up = await runEnvUp();
    expect(up.code, up.output).toBe(0);
    // Replaced by this up.sh (or, racing it, by another test run's: both read the same override).
    expect(apiserverFlags()).toContain(`--requestheader-client-ca-file=${override}/`);
    // Complete: kube-apiserver ready with the new files (up.sh waited for /readyz) and the ConfigMap updated.
    await waitFor(
      async () => fingerprints((await readAuthConfigMap()).data?.[REQUESTHEADER_CA] ?? '').includes(newFingerprint),
      {
        timeoutMs: 60_000,
        message: 'kube-apiserver to publish the new front-proxy CA',
      },
    );
    const complete1 = Date.now();
    const published = fingerprints((await readAuthConfigMap()).data?.[REQUESTHEADER_CA] ?? '');
    expect(published).toEqual(expect.arrayContaining([fingerprintOf(originalCA), newFingerprint]));
    const reload1 = await waitFor(
      () =>
        log().find(
          (l) =>
            typeof l['msg'] === 'string' &&
            l['msg'].startsWith('requestheader configuration reloaded') &&
            JSON.stringify(l['clientCAs']).includes(newFingerprint),
        ),
      { timeoutMs: 30_000, message: 'sluice to reload the requestheader configuration' },
    );
    const end1 = complete1 + WINDOW_MS;
    const activeAfter1 = await expectScalingActiveFrom(complete1, end1);
    const during1 = probe?.failures(restart, complete1) ?? [];
    const after1 = probe?.failures(complete1, end1) ?? [];
    expect(probe?.between(complete1, end1).length).toBeGreaterThan(25);
    console.log(
      `[measure] (b1) up.sh took ${up.ms} ms; rotation complete ${complete1 - restart} ms after it began; ` +
        `sluice reloaded at ${Date.parse(String(reload1['time'])) - complete1} ms from complete; ` +
        `${during1.length} fetches failed during the restart (${[...new Set(during1.map((f) => f.detail.slice(0, 60)))].join(' | ')}); ` +
        `${probe?.between(complete1, end1).length ?? 0} fetches in the ${WINDOW_MS} ms after, ${after1.length} failed; ` +
        `ScalingActive True again ${activeAfter1} ms after complete`,
    );
    expect(after1).toEqual([]);

    // Step 2: the CA file cut to the new CA (kube-apiserver reloads it itself), the old CA removed from the ConfigMap.
    const apiserverLog = path.join(env.logsDir, 'kube-apiserver.log');
    const reloadsBefore = (
      readFileSync(apiserverLog, 'utf8').match(/Loaded a new CA Bundle and Verifier.*request-header/g) ?? []
    ).length;
    writeAtomically(path.join(override, 'requestheader-client-ca.crt'), newCA.cert);
    await waitFor(
      () =>
        (readFileSync(apiserverLog, 'utf8').match(/Loaded a new CA Bundle and Verifier.*request-header/g) ?? [])
          .length > reloadsBefore,
      { timeoutMs: 90_000, message: 'kube-apiserver to reload --requestheader-client-ca-file' },
    );
    const current = (await readAuthConfigMap()).data ?? {};
    // kube-apiserver keeps every CA it ever published until it expires: the administrator removes the old one.
    expect(fingerprints(current[REQUESTHEADER_CA] ?? '')).toContain(fingerprintOf(originalCA));
    await writeAuthConfigMap({ ...current, [REQUESTHEADER_CA]: newCA.cert });
    const complete2 = Date.now();
    await waitFor(
      () =>
        log().some(
          (l) =>
            typeof l['msg'] === 'string' &&
            l['msg'].startsWith('requestheader configuration reloaded') &&
            Array.isArray(l['clientCAs']) &&
            l['clientCAs'].length === 1 &&
            JSON.stringify(l['clientCAs']).includes(newFingerprint),
        ),
      { timeoutMs: 30_000, message: 'sluice to trust the new CA alone' },
    );
    // Straight to sluice: the old front-proxy certificate is refused now, the new one accepted.
    const port = loadTestEnv().sluice.port;
    expect(await directStatus(port, metricPath, oldClient, servingCA.cert)).toBe(401);
    expect(await directStatus(port, metricPath, newClient, servingCA.cert)).toBe(200);
    const end2 = complete2 + WINDOW_MS;
    await expectScalingActiveFrom(complete2, end2);
    const after2 = probe?.failures(complete2, end2) ?? [];
    expect(probe?.between(complete2, end2).length).toBeGreaterThan(25);
    console.log(
      `[measure] (b2) ${probe?.between(complete2, end2).length ?? 0} fetches in the ${WINDOW_MS} ms after the old CA ` +
        `was dropped, ${after2.length} failed; still served through the aggregator with the new client certificate`,
    );
    expect(after2).toEqual([]);
    // The whole of step 2 happened without a restart: nothing failed from the end of step 1 on.
    expect(probe?.failures(complete1) ?? []).toEqual([]);
  }, 400_000);
});
