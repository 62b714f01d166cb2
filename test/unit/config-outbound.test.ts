// The flags of `sluice operator` that say where triggers may make sluice connect (docs/security.md#read-back-and-reach):
// --deny-cidrs, --allow-cidrs and --resolve, validated at startup (a ConfigError, exit code 2, naming the flag).
import { describe, expect, test } from 'vitest';
import { parseConfig, USAGE, type OperatorConfig } from '../../src/config.ts';
import { ConfigError } from '../../src/errors.ts';

const operator = (...flags: string[]) => parseConfig(['operator', '--local', ...flags]) as OperatorConfig;
const ranges = (list: readonly { text: string }[]) => list.map((r) => r.text);

describe('outbound flags', () => {
  test('none by default: the built-in refusals only', () => {
    const { outbound } = operator();
    expect(outbound.deny).toEqual([]);
    expect(outbound.allow).toEqual([]);
    expect(outbound.hosts.size).toBe(0);
  });

  test('comma lists, repeatable, normalized', () => {
    const { outbound } = operator(
      '--deny-cidrs=10.0.0.0/8, FD00::/8',
      '--deny-cidrs',
      '192.168.0.0/16',
      '--allow-cidrs=169.254.20.10',
    );
    expect(ranges(outbound.deny)).toEqual(['10.0.0.0/8', 'fd00::/8', '192.168.0.0/16']);
    expect(ranges(outbound.allow)).toEqual(['169.254.20.10/32']);
  });

  test('--resolve maps names to addresses (several per name), case-insensitively', () => {
    const { outbound } = operator(
      '--resolve=Metadata.Test=169.254.169.254',
      '--resolve',
      'two.test=127.0.0.1,two.test=[::1]',
    );
    expect(outbound.hosts).toEqual(
      new Map([
        ['metadata.test', ['169.254.169.254']],
        ['two.test', ['127.0.0.1', '::1']],
      ]),
    );
  });

  test.each([
    [
      '--deny-cidrs=10.0.0.1/8',
      /^--deny-cidrs: "10\.0\.0\.1\/8" has bits set past its prefix length; the range is 10\.0\.0\.0\/8$/,
    ],
    ['--allow-cidrs=169.254.0.0/33', /^--allow-cidrs: .* prefix length/],
    ['--allow-cidrs=metadata.google.internal', /^--allow-cidrs: .* is not an IPv4 or IPv6 address/],
    ['--resolve=metadata.test', /^--resolve: "metadata\.test" is not host=ip/],
    ['--resolve==127.0.0.1', /^--resolve: .* is not host=ip/],
    ['--resolve=a.test=localhost', /^--resolve: "a\.test=localhost": "localhost" is not an IP address$/],
  ])('%s is a ConfigError naming the flag', (flag, message) => {
    expect(() => operator(flag)).toThrow(ConfigError);
    expect(() => operator(flag)).toThrow(message);
  });

  test('all three are in the usage text', () => {
    for (const flag of ['--deny-cidrs', '--allow-cidrs', '--resolve']) expect(USAGE).toContain(flag);
  });
});
