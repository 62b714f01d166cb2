// Throwaway TLS material for tests, made with the openssl CLI in a temporary directory: a CA, a server certificate
// for 127.0.0.1 / localhost signed by it, a client certificate with its key (plain and encrypted), and a second,
// unrelated CA (for "wrong CA" cases). Everything is PEM text.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface TestPki {
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** clientKey encrypted with `clientKeyPassword` (PKCS#8, AES-256). */
  readonly clientKeyEncrypted: string;
  readonly clientKeyPassword: string;
  /** A CA that signed nothing here. */
  readonly otherCaCert: string;
}

export function makeTestPki(): TestPki {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-pki-'));
  const file = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) =>
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    const selfSigned = (name: string, cn: string) =>
      openssl(
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '2',
        '-subj',
        `/CN=${cn}`,
        '-keyout',
        file(`${name}.key`),
        '-out',
        file(`${name}.crt`),
      );
    const signed = (name: string, cn: string, ext: string) => {
      openssl(
        'req',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-subj',
        `/CN=${cn}`,
        '-keyout',
        file(`${name}.key`),
        '-out',
        file(`${name}.csr`),
      );
      writeFileSync(file(`${name}.ext`), ext);
      openssl(
        'x509',
        '-req',
        '-in',
        file(`${name}.csr`),
        '-CA',
        file('ca.crt'),
        '-CAkey',
        file('ca.key'),
        '-CAcreateserial',
        '-days',
        '2',
        '-extfile',
        file(`${name}.ext`),
        '-out',
        file(`${name}.crt`),
      );
    };
    selfSigned('ca', 'sluice-test-ca');
    selfSigned('other-ca', 'sluice-other-ca');
    signed('server', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
    signed('client', 'sluice-test-client', 'extendedKeyUsage=clientAuth\n');
    const clientKeyPassword = 'key-pass-4711';
    openssl(
      'pkcs8',
      '-topk8',
      '-v2',
      'aes-256-cbc',
      '-in',
      file('client.key'),
      '-out',
      file('client-enc.key'),
      '-passout',
      `pass:${clientKeyPassword}`,
    );
    const read = (name: string) => readFileSync(file(name), 'utf8');
    return {
      caCert: read('ca.crt'),
      serverCert: read('server.crt'),
      serverKey: read('server.key'),
      clientCert: read('client.crt'),
      clientKey: read('client.key'),
      clientKeyEncrypted: read('client-enc.key'),
      clientKeyPassword,
      otherCaCert: read('other-ca.crt'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
