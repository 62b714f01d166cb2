/**
 * Certificates made in process, without openssl (the image has none): a small CA and the metrics API's serving
 * certificate it signs, ECDSA P-256 with SHA-256, built with @peculiar/x509 over Node's WebCrypto. The one way sluice
 * makes certificates: `--local`'s throwaway pair (local-dev.ts) and the self-managed Secret
 * (operator/certificate-manager.ts) both come from here.
 *
 * What kube-aggregator needs of the serving certificate (docs/kubernetes-interfaces.md#aggregation): it
 * dials the Service with TLS server name `<service>.<namespace>.svc` and verifies against the APIService's
 * `caBundle`; Go accepts only SAN names (no CN fallback) and no SHA-1. KEDA's operator makes the same pair itself
 * (kedacore/keda `pkg/certificates/`, through open-policy-agent/cert-controller).
 *
 * Keys leave this module as PKCS#8 PEM and are never logged; `summarize` (server/certificates.ts) gives what a log
 * may say about a certificate.
 */
import { webcrypto, X509Certificate as NodeX509 } from 'node:crypto';
import { isIP } from 'node:net';
import type * as X509 from '@peculiar/x509';

import { SluiceError } from './errors.ts';

/**
 * @peculiar/x509, loaded when a certificate is first made rather than at start: about 3 MiB of heap and 2.7 MiB of RSS
 * on top of what sluice loads anyway, which a process whose certificate comes from files, or from a Secret still valid,
 * does without. It resolves its algorithm providers through tsyringe, which needs the Reflect metadata API loaded
 * first (its README: `import "reflect-metadata"`).
 */
let x509Loading: Promise<typeof X509> | undefined;
function loadX509(): Promise<typeof X509> {
  x509Loading ??= import('reflect-metadata').then(() => import('@peculiar/x509'));
  return x509Loading;
}

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** A certificate and its private key, both PEM. */
export interface CertificatePair {
  readonly cert: string;
  readonly key: string;
}

/** A certificate could not be made or its issuer could not be used. Names the step, never key material. */
export class CertificateGenerationError extends SluiceError {
  override name = 'CertificateGenerationError';

  constructor(message: string, options?: ErrorOptions) {
    super('CERTIFICATE_GENERATION', message, options);
  }
}

export interface Validity {
  /** Start of validity (default: now). */
  readonly now?: Date;
  readonly lifetimeMs: number;
}

/**
 * How far notBefore is set back from `now`: the nodes of kube-apiserver and of sluice need not agree on the time to the
 * second. Five minutes, but at most a tenth of the lifetime (so a test's 20-second certificate is not mostly in the
 * past). open-policy-agent/cert-controller, which KEDA uses, sets notBefore an hour back.
 */
export function backdateMs(lifetimeMs: number): number {
  return Math.min(5 * 60_000, Math.floor(lifetimeMs / 10));
}

function window(validity: Validity): { notBefore: Date; notAfter: Date } {
  const now = validity.now ?? new Date();
  // X.509 times have whole seconds: round, so what is asked is what the certificate says.
  const second = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);
  return {
    notBefore: second(now.getTime() - backdateMs(validity.lifetimeMs)),
    notAfter: second(now.getTime() + validity.lifetimeMs),
  };
}

async function newKeys(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
}

async function keyPem(x509: typeof X509, key: CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return `${x509.PemConverter.encode(der, 'PRIVATE KEY')}\n`;
}

const certPem = (certificate: X509.X509Certificate): string => `${certificate.toString('pem')}\n`;

/** A random positive serial number of 16 bytes (RFC 5280 §4.1.2.2 allows up to 20). */
function serialNumber(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x40; // positive, and no leading zero byte to strip
  return Buffer.from(bytes).toString('hex');
}

/** A self-signed CA that may sign end-entity certificates only (pathLength 0). */
export async function createCertificateAuthority(options: Validity & { readonly commonName: string }) {
  try {
    const x509 = await loadX509();
    const keys = await newKeys();
    const { notBefore, notAfter } = window(options);
    const certificate = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serialNumber(),
      name: [{ CN: [options.commonName] }],
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    return { cert: certPem(certificate), key: await keyPem(x509, keys.privateKey) } satisfies CertificatePair;
  } catch (cause) {
    throw new CertificateGenerationError('cannot create a CA certificate', { cause });
  }
}

export interface ServingRequest extends Validity {
  /** The CA that signs (its certificate and key, PEM). */
  readonly ca: CertificatePair;
  /** DNS names and IP addresses for the SAN extension; the first DNS name is also the subject's CN. */
  readonly names: readonly string[];
}

/**
 * A serving certificate (serverAuth, digitalSignature) for `names`, signed by `ca`. Its notAfter never passes the CA's:
 * a certificate outliving its issuer would not verify at the end anyway.
 */
export async function issueServingCertificate(request: ServingRequest): Promise<CertificatePair> {
  const x509 = await loadX509().catch((cause: unknown) => {
    throw new CertificateGenerationError('cannot load the certificate library', { cause });
  });
  let caCertificate: X509.X509Certificate;
  let caKey: CryptoKey;
  try {
    caCertificate = new x509.X509Certificate(request.ca.cert);
    caKey = await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(request.ca.key), ALGORITHM, false, [
      'sign',
    ]);
  } catch (cause) {
    throw new CertificateGenerationError('the CA certificate or key cannot be used to sign', { cause });
  }
  const dns = request.names.filter((n) => isIP(n) === 0);
  const ips = request.names.filter((n) => isIP(n) !== 0);
  const [commonName] = dns;
  if (commonName === undefined) throw new CertificateGenerationError('a serving certificate needs a DNS name');
  try {
    const keys = await newKeys();
    const { notBefore, notAfter } = window(request);
    const certificate = await x509.X509CertificateGenerator.create({
      serialNumber: serialNumber(),
      subject: [{ CN: [commonName] }],
      issuer: caCertificate.subject,
      notBefore,
      notAfter: notAfter > caCertificate.notAfter ? caCertificate.notAfter : notAfter,
      publicKey: keys.publicKey,
      signingKey: caKey,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([
          ...dns.map((value) => ({ type: 'dns' as const, value })),
          ...ips.map((value) => ({ type: 'ip' as const, value })),
        ]),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(caCertificate, false),
      ],
    });
    return { cert: certPem(certificate), key: await keyPem(x509, keys.privateKey) };
  } catch (cause) {
    throw new CertificateGenerationError('cannot create a serving certificate', { cause });
  }
}

export interface ServiceIdentity {
  readonly service: string;
  readonly namespace: string;
  /** The cluster's DNS domain (kubelet `--cluster-domain`, usually `cluster.local`). */
  readonly clusterDomain: string;
  /** Outside a cluster the aggregator dials `localhost` (local-dev.ts): add `localhost` and `127.0.0.1`. */
  readonly local: boolean;
}

/** The names the serving certificate must carry; the first is the one kube-aggregator verifies. */
export function servingNames(id: ServiceIdentity): string[] {
  const svc = `${id.service}.${id.namespace}.svc`;
  return [svc, `${svc}.${id.clusterDomain}`, ...(id.local ? ['localhost', '127.0.0.1'] : [])];
}

/** The DNS names and IP addresses of a certificate's SAN extension, as Node reports them. */
export function subjectAltNames(certificate: NodeX509): string[] {
  return (certificate.subjectAltName ?? '')
    .split(', ')
    .filter((entry) => entry !== '')
    .map((entry) => entry.replace(/^(DNS|IP Address):/, ''));
}

/** What the logs say about a certificate: public facts only. */
export interface CertificateSummary {
  readonly subject: string;
  readonly serialNumber: string;
  readonly notBefore: string;
  readonly notAfter: string;
  readonly sha256: string;
}

export function summarize(certificate: NodeX509): CertificateSummary {
  return {
    subject: certificate.subject.replaceAll('\n', ', '),
    serialNumber: certificate.serialNumber,
    notBefore: certificate.validFromDate.toISOString(),
    notAfter: certificate.validToDate.toISOString(),
    sha256: certificate.fingerprint256,
  };
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The PEM certificate blocks of a bundle, in order (anything between them is dropped). */
export function pemCertificates(bundle: string): string[] {
  return (bundle.match(PEM_CERTIFICATE) ?? []).map((block) => `${block}\n`);
}
