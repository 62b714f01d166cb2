// Proves certificate-manager.ts against an in-memory Secret and APIService that behave like the API server's
// (resourceVersion checks, 409s): two replicas starting at once end up with one CA; the caBundle trusts the new CA
// before the Secret holding a certificate from it is written (checked at the moment of the write); a follower never
// writes; a CA rotation keeps the old CA trusted until it is dropped; and keys never reach the log.
import { X509Certificate } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import {
  createCertificateManager,
  SECRET_KEYS,
  type CaBundlePort,
  type CertificateSecretPort,
  type StoredSecret,
} from '../../../src/operator/certificate-manager.ts';
import type { Logger } from '../../../src/log.ts';

const NAMES = ['sluice-metrics.sluice-system.svc', 'sluice-metrics.sluice-system.svc.cluster.local'];

function fakeCluster() {
  let stored: StoredSecret | undefined;
  let version = 0;
  let bundle = '';
  const writes: { trustedAtWrite: string[]; secret: StoredSecret }[] = [];
  const fingerprints = (pem: string) =>
    (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(
      (b) => new X509Certificate(b).fingerprint256,
    );
  const secret: CertificateSecretPort = {
    read: () => Promise.resolve(stored),
    create: (s) => {
      if (stored !== undefined) return Promise.resolve('exists');
      stored = { ...s, resourceVersion: String(++version) };
      writes.push({ trustedAtWrite: fingerprints(bundle), secret: stored });
      return Promise.resolve('created');
    },
    update: (s) => {
      if (stored?.resourceVersion !== s.resourceVersion) return Promise.resolve('conflict');
      stored = { ...s, resourceVersion: String(++version) };
      writes.push({ trustedAtWrite: fingerprints(bundle), secret: stored });
      return Promise.resolve('updated');
    },
  };
  const caBundle: CaBundlePort = {
    read: () => Promise.resolve(bundle),
    write: (b) => {
      bundle = b;
      return Promise.resolve();
    },
  };
  return { secret, caBundle, writes, bundle: () => fingerprints(bundle), stored: () => stored };
}

function logger() {
  const lines: string[] = [];
  const log: Logger = (level, msg, fields) => {
    lines.push(JSON.stringify({ level, msg, ...fields }));
  };
  return { log, lines };
}

const fingerprintOf = (pem: string | undefined) => new X509Certificate(pem ?? '').fingerprint256;

describe('certificate manager', () => {
  test('two replicas starting together: one creates, the other uses its CA', async () => {
    const cluster = fakeCluster();
    const options = (leading: boolean) => ({
      ...cluster,
      log: logger().log,
      names: NAMES,
      caLifetimeMs: 3_600_000,
      servingLifetimeMs: 600_000,
      resyncMs: 1_000,
      propagationMs: 3_000,
      leading: () => leading,
    });
    const [a, b] = await Promise.all([
      createCertificateManager(options(false)).initial(),
      createCertificateManager(options(false)).initial(),
    ]);
    expect(a.serving.cert).toBe(b.serving.cert);
    expect(cluster.writes).toHaveLength(1);
    expect(a.caBundle).toBe(cluster.stored()?.data[SECRET_KEYS.caCert]);
    expect(cluster.bundle()).toEqual([fingerprintOf(cluster.stored()?.data[SECRET_KEYS.caCert])]);
  });

  test('renewal and CA rotation: the new CA is trusted before the Secret names it; the old one until dropped', async () => {
    const cluster = fakeCluster();
    const { log, lines } = logger();
    let now = Date.parse('2026-12-07T12:00:00Z');
    let leading = false;
    const served: string[] = [];
    const manager = createCertificateManager({
      ...cluster,
      log,
      names: NAMES,
      caLifetimeMs: 300_000,
      servingLifetimeMs: 60_000,
      resyncMs: 1_000,
      propagationMs: 3_000,
      leading: () => leading,
      now: () => new Date(now),
    });
    const first = await manager.initial();
    manager.start((pair) => served.push(pair.cert));
    await manager.stop(); // no timers in this test: resync() by hand

    // A follower past the renewal time writes nothing.
    now += 50_000;
    await manager.resync();
    expect(cluster.writes).toHaveLength(1);

    leading = true;
    await manager.resync();
    expect(cluster.writes).toHaveLength(2);
    expect(served).toHaveLength(1);
    expect(served[0]).not.toBe(first.serving.cert);

    // Past 2/3 of the CA's life: rotation.
    const oldCa = fingerprintOf(cluster.stored()?.data[SECRET_KEYS.caCert]);
    now += 160_000;
    await manager.resync();
    const rotated = cluster.writes.at(-1);
    const newCa = fingerprintOf(rotated?.secret.data[SECRET_KEYS.caCert]);
    expect(newCa).not.toBe(oldCa);
    expect(fingerprintOf(rotated?.secret.data[SECRET_KEYS.previousCa])).toBe(oldCa);
    // At the moment of the write, the APIService already trusted the new CA and still the old one.
    expect(rotated?.trustedAtWrite).toEqual(expect.arrayContaining([newCa, oldCa]));
    expect(cluster.bundle().sort()).toEqual([newCa, oldCa].sort());
    const leaf = new X509Certificate(served.at(-1) ?? '');
    expect(leaf.verify(new X509Certificate(rotated?.secret.data[SECRET_KEYS.caCert] ?? '').publicKey)).toBe(true);

    // Within the overlap nothing changes; after it the old CA leaves the Secret, then the bundle.
    now += 2_000;
    await manager.resync();
    expect(cluster.bundle()).toHaveLength(2);
    now += 2_000;
    await manager.resync();
    expect(cluster.stored()?.data[SECRET_KEYS.previousCa]).toBeUndefined();
    expect(cluster.writes.at(-1)?.trustedAtWrite.sort()).toEqual([newCa, oldCa].sort());
    expect(cluster.bundle()).toEqual([newCa]);

    // Keys never reach the log.
    const keys = cluster.writes.flatMap((w) => [w.secret.data[SECRET_KEYS.key], w.secret.data[SECRET_KEYS.caKey]]);
    const body = (pem: string | undefined) => (pem ?? '').split('\n')[1] ?? '<none>';
    for (const key of keys) expect(lines.join('\n')).not.toContain(body(key));
    expect(lines.some((l) => l.includes('rotate-ca'))).toBe(true);
  });

  test('a leader whose update loses the race (409) takes the Secret written meanwhile', async () => {
    const cluster = fakeCluster();
    let now = Date.parse('2026-12-07T12:00:00Z');
    const make = () =>
      createCertificateManager({
        ...cluster,
        log: logger().log,
        names: NAMES,
        caLifetimeMs: 300_000,
        servingLifetimeMs: 60_000,
        resyncMs: 1_000,
        propagationMs: 3_000,
        leading: () => true,
        now: () => new Date(now),
      });
    const a = make();
    await a.initial();
    now += 50_000;
    // b reads, then a writes, then b writes with the stale resourceVersion.
    const realRead = cluster.secret.read.bind(cluster.secret);
    let first = true;
    cluster.secret.read = async () => {
      const snapshot = await realRead();
      if (first) {
        first = false;
        await a.resync();
      }
      return snapshot;
    };
    const b = make();
    const served: string[] = [];
    b.start((pair) => served.push(pair.cert));
    await b.stop();
    await b.resync();
    expect(cluster.writes).toHaveLength(2); // the create and a's renewal; b's update lost
    expect(served).toEqual([cluster.stored()?.data[SECRET_KEYS.cert]]);
  });
});
