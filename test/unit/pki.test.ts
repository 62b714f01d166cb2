// Proves pki.ts with node:crypto as the judge (not the library that made the certificates): the serving certificate
// verifies against its CA, names exactly the Service's hosts (and localhost/127.0.0.1 only with --local), matches its
// key, is a serverAuth leaf, lives as long as asked (clipped to its CA), and a CA key that does not parse is a
// CertificateGenerationError that quotes nothing of it. Also checkServingPair (server/certificates.ts) accepts the
// pair and OpenSSL completes a TLS handshake verifying it against the CA.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:tls';
import { describe, expect, test } from 'vitest';
import {
  backdateMs,
  CertificateGenerationError,
  createCertificateAuthority,
  issueServingCertificate,
  servingNames,
  subjectAltNames,
} from '../../src/pki.ts';
import { checkServingPair } from '../../src/server/certificates.ts';

const YEAR = 365 * 24 * 3_600_000;
const NOW = new Date('2026-12-07T12:00:00Z');
const names = (local: boolean) =>
  servingNames({ service: 'sluice-metrics', namespace: 'sluice-system', clusterDomain: 'cluster.local', local });

describe('servingNames', () => {
  test('the <service>.<namespace>.svc name first, the cluster domain, and loopback only with --local', () => {
    expect(names(false)).toEqual([
      'sluice-metrics.sluice-system.svc',
      'sluice-metrics.sluice-system.svc.cluster.local',
    ]);
    expect(servingNames({ service: 's', namespace: 'n', clusterDomain: 'corp.example', local: true })).toEqual([
      's.n.svc',
      's.n.svc.corp.example',
      'localhost',
      '127.0.0.1',
    ]);
  });
});

describe('a CA and a serving certificate', async () => {
  const ca = await createCertificateAuthority({ commonName: 'sluice-ca', lifetimeMs: 10 * YEAR, now: NOW });
  const serving = await issueServingCertificate({ ca, names: names(true), lifetimeMs: YEAR, now: NOW });
  const caCert = new X509Certificate(ca.cert);
  const leaf = new X509Certificate(serving.cert);

  test('the CA is a self-signed ECDSA P-256 CA that signs with SHA-256', () => {
    expect(caCert.ca).toBe(true);
    expect(caCert.verify(caCert.publicKey)).toBe(true);
    expect(caCert.subject).toBe('CN=sluice-ca');
    expect(caCert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(caCert.checkPrivateKey(createPrivateKey(ca.key))).toBe(true);
    expect(caCert.toLegacyObject().asn1Curve).toBe('prime256v1');
  });

  test('the serving certificate chains to the CA, names the Service, and its key matches', () => {
    expect(leaf.ca).toBe(false);
    expect(leaf.checkIssued(caCert)).toBe(true);
    expect(leaf.verify(caCert.publicKey)).toBe(true);
    expect(leaf.checkPrivateKey(createPrivateKey(serving.key))).toBe(true);
    expect(leaf.checkHost('sluice-metrics.sluice-system.svc')).toBe('sluice-metrics.sluice-system.svc');
    expect(leaf.checkHost('sluice-metrics.sluice-system.svc.cluster.local')).toBeDefined();
    expect(leaf.checkHost('localhost')).toBe('localhost');
    expect(leaf.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(leaf.checkHost('sluice-metrics.other.svc')).toBeUndefined();
    expect(subjectAltNames(leaf)).toEqual(names(true));
    expect(leaf.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']); // serverAuth
    expect(leaf.serialNumber).not.toBe(caCert.serialNumber);
  });

  test('validity: from shortly before now (clock skew) to now + the lifetime', () => {
    expect(leaf.validFromDate.getTime()).toBe(NOW.getTime() - backdateMs(YEAR));
    expect(leaf.validToDate.getTime()).toBe(NOW.getTime() + YEAR);
    expect(caCert.validToDate.getTime()).toBe(NOW.getTime() + 10 * YEAR);
    expect(backdateMs(YEAR)).toBe(300_000);
    expect(backdateMs(20_000)).toBe(2_000);
  });

  test('a serving certificate never outlives its CA', async () => {
    const shortCa = await createCertificateAuthority({ commonName: 'short', lifetimeMs: 60_000, now: NOW });
    const clipped = new X509Certificate(
      (await issueServingCertificate({ ca: shortCa, names: names(false), lifetimeMs: YEAR, now: NOW })).cert,
    );
    expect(clipped.validToDate).toEqual(new X509Certificate(shortCa.cert).validToDate);
  });

  test('without --local no loopback names', async () => {
    const cluster = new X509Certificate(
      (await issueServingCertificate({ ca, names: names(false), lifetimeMs: YEAR, now: NOW })).cert,
    );
    expect(cluster.checkHost('localhost')).toBeUndefined();
    expect(cluster.checkIP('127.0.0.1')).toBeUndefined();
  });

  test('server/certificates.ts accepts the pair, and a TLS client verifying against the CA connects', async () => {
    const current = await issueServingCertificate({ ca, names: names(true), lifetimeMs: YEAR });
    expect(checkServingPair(current).subject).toBe('CN=sluice-metrics.sluice-system.svc');
    const server = createServer({ cert: current.cert, key: current.key }, (_req, res) => res.end('ok'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const socket = connect({
        host: '127.0.0.1',
        port: (server.address() as AddressInfo).port,
        servername: 'sluice-metrics.sluice-system.svc',
        ca: ca.cert,
      });
      await once(socket, 'secureConnect');
      expect(socket.authorized).toBe(true);
      socket.destroy();
    } finally {
      server.close();
    }
  });

  test('a CA key that cannot be used is a typed error that quotes no key material', async () => {
    const broken = { cert: ca.cert, key: '-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END PRIVATE KEY-----\n' };
    const error = await issueServingCertificate({ ca: broken, names: names(false), lifetimeMs: YEAR }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CertificateGenerationError);
    expect((error as Error).message).toBe('the CA certificate or key cannot be used to sign');
    expect((error as Error).cause).toBeDefined();
    expect(JSON.stringify(error) + String(error)).not.toContain('c2VjcmV0');
  });
});
