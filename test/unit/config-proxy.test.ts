// The proxy-mode flags of `sluice operator` (docs/deploy.md#proxy-mode): off without --proxy-to; with it, an https
// origin, a client certificate and key, an optional CA file and a bounded timeout. The TLS material itself is checked
// by src/server/proxy.ts checkProxyMaterial (test/unit/server/proxy.test.ts).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, describe, expect, test } from 'vitest';

import { parseConfig, USAGE, type OperatorConfig } from '../../src/config.ts';
import { ConfigError } from '../../src/errors.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'sluice-proxy-flags-'));
const file = (name: string, text: string): string => {
  const at = path.join(dir, name);
  writeFileSync(at, text);
  return at;
};
const cert = file('client.crt', 'CERT');
const key = file('client.key', 'KEY');
const ca = file('ca.crt', 'CA');
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const operator = (...flags: string[]) => parseConfig(['operator', '--local', ...flags]) as OperatorConfig;
const client = ['--proxy-client-cert-file', cert, '--proxy-client-key-file', key];

describe('proxy flags', () => {
  test('off by default', () => {
    expect(operator().proxy).toBeUndefined();
  });

  test('--proxy-to with a client certificate: the origin, the files read, 5 s by default; all in the usage text', () => {
    expect(operator('--proxy-to', 'https://prometheus-adapter.monitoring.svc:443', ...client).proxy).toEqual({
      url: new URL('https://prometheus-adapter.monitoring.svc'),
      ca: undefined,
      clientCert: 'CERT',
      clientKey: 'KEY',
      clientCertFile: cert,
      clientKeyFile: key,
      timeoutMs: 5_000,
    });
    expect(
      operator('--proxy-to=https://127.0.0.1:6443/', ...client, '--proxy-ca-file', ca, '--proxy-timeout=750ms').proxy,
    ).toMatchObject({ ca: 'CA', timeoutMs: 750 });
    for (const flag of [
      '--proxy-to',
      '--proxy-ca-file',
      '--proxy-client-cert-file',
      '--proxy-client-key-file',
      '--proxy-timeout',
    ]) {
      expect(USAGE).toContain(flag);
    }
  });

  test.each([
    [['--proxy-to', 'http://adapter:80', ...client], /must be an https URL/],
    [['--proxy-to', 'adapter.monitoring.svc', ...client], /must be an https URL \(https:\/\/host\[:port\]\)/],
    [['--proxy-to', 'https://u:p@adapter', ...client], /must not hold credentials/],
    [['--proxy-to', 'https://adapter/apis', ...client], /without a path or query/],
    [['--proxy-to', 'https://adapter?x=1', ...client], /without a path or query/],
    [['--proxy-to', 'https://adapter'], /needs --proxy-client-cert-file and --proxy-client-key-file/],
    [['--proxy-to', 'https://adapter', '--proxy-client-cert-file', cert], /needs --proxy-client-cert-file and/],
    [
      ['--proxy-to', 'https://adapter', ...client, '--proxy-timeout', '2m'],
      /--proxy-timeout must be a duration from 100ms to 1m/,
    ],
    [
      ['--proxy-to', 'https://adapter', ...client, '--proxy-ca-file', path.join(dir, 'missing')],
      /--proxy-ca-file: cannot read/,
    ],
    [['--proxy-ca-file', ca], /--proxy-ca-file needs --proxy-to/],
    [[...client], /--proxy-client-cert-file needs --proxy-to/],
  ])('refuses %j', (flags, message) => {
    expect(() => operator(...flags)).toThrow(message);
    expect(() => operator(...flags)).toThrow(ConfigError);
  });
});
