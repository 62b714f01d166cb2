// Self-managed certificates end to end (docs/deploy.md#certificates): sluice started with --certificates=self-managed,
// a 15-second serving certificate and a 60-second CA, makes its Secret, registers the CA as the APIService's caBundle,
// and serves an external metric to a real HPA through kube-apiserver's aggregator while it renews the serving
// certificate every ~10 s and rotates the CA once (the old CA kept in the caBundle until the new serving certificate
// is served, then dropped).
//
// Measured every ~0.5 s for 80 s: the serial and issuer of the certificate sluice presents on a new TLS connection;
// a metric GET through the aggregator (as the HPA controller sends it); the APIService's Available condition and the
// number of CAs in its caBundle; the HPA's ScalingActive condition. Asserted: at least two serving rotations and one
// CA rotation were served; every fetch answered 200 with the value; Available and ScalingActive stayed True; the
// caBundle held two CAs at some point and one at the end; no FailedGetExternalMetric event on the HPA.
import { X509Certificate } from 'node:crypto';
import { connect } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiregistrationV1Api, AutoscalingV2Api, CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNamespace, deleteNamespace, kubeConfig, uniqueName, waitFor } from '../support/env.ts';
import { openTestQueues, ScalingTestKit, type TestQueues } from '../support/scaling.ts';
import { startSluice, type SluiceProcess } from '../support/sluice.ts';

const APISERVICE = 'v1beta1.external.metrics.k8s.io';
const SECRET = { namespace: 'sluice-system', name: 'sluice-certificates' };
const WINDOW_MS = 80_000;

interface Sample {
  readonly at: number;
  readonly serial: string;
  readonly issuer: string;
  readonly metric: string;
  readonly available: boolean;
  readonly cas: number;
  readonly scalingActive: string;
}

/** The certificate sluice presents on a new connection (127.0.0.1; trust is the aggregator's business here). */
function served(port: number): Promise<{ serial: string; issuer: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const peer = socket.getPeerCertificate();
      socket.destroy();
      resolve({ serial: peer.serialNumber, issuer: String(peer.issuer.CN) });
    });
    socket.on('error', reject);
  });
}

describe('self-managed certificates: rotation while the HPA reads metrics through the aggregator', () => {
  const kc = kubeConfig();
  const core = kc.makeApiClient(CoreV1Api);
  const registration = kc.makeApiClient(ApiregistrationV1Api);
  const autoscaling = kc.makeApiClient(AutoscalingV2Api);
  const queue = uniqueName('self-managed');
  let sluice: SluiceProcess | undefined;
  let kit: ScalingTestKit | undefined;
  let queues: TestQueues | undefined;
  let metric = '';
  const selector = ScalingTestKit.selectorFor('consumer');

  beforeAll(async () => {
    // A Secret left by an earlier run would only be renewed; start from none, so creation is part of the test.
    await core.deleteNamespacedSecret(SECRET).catch(() => undefined);
    const started = performance.now();
    sluice = await startSluice({
      logName: 'sluice-self-managed-certs-e2e.log',
      extraArgs: ['--certificates=self-managed', '--serving-certificate-lifetime=15s', '--ca-certificate-lifetime=60s'],
    });
    console.log(
      `[measure] sluice Available with a new self-managed Secret in ${Math.round(performance.now() - started)} ms`,
    );
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'self-managed-certs'));
    queues = await openTestQueues([queue]);
    for (let i = 0; i < 5; i++) queues.channel.sendToQueue(queue, Buffer.from(`m${String(i)}`));
    await kit.createMetricsConsumer(queue);
    metric = `s0-rabbitmq-${queue}`;
    await waitFor(async () => (await kit?.externalMetric(metric, selector))?.values[0] === '5', {
      timeoutMs: 30_000,
      message: 'the metric to read 5 through the aggregator',
    });
    await waitFor(
      async () => {
        const hpa = await autoscaling.readNamespacedHorizontalPodAutoscaler({
          name: 'sluice-hpa-consumer',
          namespace: kit?.namespace ?? '',
        });
        return hpa.status?.conditions?.find((c) => c.type === 'ScalingActive')?.status === 'True';
      },
      { timeoutMs: 30_000, message: 'the HPA condition ScalingActive=True' },
    );
  }, 600_000);

  afterAll(async () => {
    await queues?.close();
    if (kit !== undefined) await deleteNamespace(kc, kit.namespace);
    await sluice?.stop();
    await core.deleteNamespacedSecret(SECRET).catch(() => undefined);
  }, 300_000);

  it('renews the serving certificate and rotates the CA with no failed fetch; ScalingActive stays True', async () => {
    const port = sluice?.port ?? 0;
    const namespace = kit?.namespace ?? '';
    const samples: Sample[] = [];
    const start = Date.now();
    // Events carry whole seconds: from the second the window started (the HPA's first sync, before sluice had read
    // the queue, may say "could not find the metric"; that is not what this test is about).
    const windowStart = Math.floor(start / 1000) * 1000;
    while (Date.now() - start < WINDOW_MS) {
      const [cert, reply, apiService, hpa] = await Promise.all([
        served(port),
        kit?.externalMetric(metric, selector),
        registration.readAPIService({ name: APISERVICE }),
        autoscaling.readNamespacedHorizontalPodAutoscaler({ name: 'sluice-hpa-consumer', namespace }),
      ]);
      const bundle = Buffer.from(apiService.spec?.caBundle ?? '', 'base64').toString('utf8');
      samples.push({
        at: Date.now() - start,
        ...cert,
        metric: `${String(reply?.status)} ${reply?.values.join(',') ?? ''}`,
        available: apiService.status?.conditions?.some((c) => c.type === 'Available' && c.status === 'True') === true,
        cas: bundle.split('-----BEGIN CERTIFICATE-----').length - 1,
        scalingActive: hpa.status?.conditions?.find((c) => c.type === 'ScalingActive')?.status ?? '<none>',
      });
      await sleep(500);
    }
    const serials = [...new Set(samples.map((s) => s.serial))];
    const issuers = [...new Set(samples.map((s) => s.issuer))];
    const firstOf = (key: 'serial' | 'issuer') => (value: string) => samples.find((s) => s[key] === value)?.at;
    console.log(
      `[measure] ${String(samples.length)} samples over ${String(WINDOW_MS)} ms; serials served ${String(serials.length)} (first seen at ${serials.map(firstOf('serial')).join(', ')} ms); CAs ${String(issuers.length)} (first seen at ${issuers.map(firstOf('issuer')).join(', ')} ms); caBundle sizes ${[...new Set(samples.map((s) => s.cas))].join(',')}`,
    );
    expect(serials.length).toBeGreaterThanOrEqual(3); // at least two rotations
    expect(issuers.length).toBeGreaterThanOrEqual(2); // at least one CA rotation
    expect(samples.filter((s) => s.metric !== '200 5')).toEqual([]);
    expect(samples.filter((s) => !s.available)).toEqual([]);
    expect(samples.filter((s) => s.scalingActive !== 'True')).toEqual([]);
    expect(samples.some((s) => s.cas === 2)).toBe(true);

    const events = await core.listNamespacedEvent({ namespace });
    expect(
      events.items
        .filter((e) => e.reason === 'FailedGetExternalMetric' || e.reason === 'FailedComputeMetricsReplicas')
        .filter((e) => (e.lastTimestamp?.getTime() ?? Date.now()) >= windowStart),
    ).toEqual([]);

    // The Secret holds one CA at rest, and what sluice serves chains to what the APIService trusts.
    await waitFor(async () => (await registration.readAPIService({ name: APISERVICE })).spec?.caBundle !== undefined, {
      timeoutMs: 5_000,
      message: 'a caBundle',
    });
    const secret = await core.readNamespacedSecret(SECRET);
    const data = secret.data ?? {};
    expect(Object.keys(data).sort()).toEqual(expect.arrayContaining(['ca.crt', 'ca.key', 'tls.crt', 'tls.key']));
    const ca = new X509Certificate(Buffer.from(data['ca.crt'] ?? '', 'base64'));
    const leaf = new X509Certificate(Buffer.from(data['tls.crt'] ?? '', 'base64'));
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(leaf.checkHost('sluice-metrics.sluice-system.svc')).toBeDefined();
  }, 180_000);
});
