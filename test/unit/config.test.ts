// The flags of `sluice operator` parsed here: the credential flags (docs/security.md#credentials), off unless given;
// --metrics-port; the offline subcommands handed to their own parsers.
import { describe, expect, test } from 'vitest';
import { parseConfig, USAGE, type OperatorConfig } from '../../src/config.ts';

const operator = (...flags: string[]) => parseConfig(['operator', '--local', ...flags]) as OperatorConfig;

describe('credential flags', () => {
  test('all off by default: no ClusterTriggerAuthentication for every namespace, Secrets anywhere, no operator identity', () => {
    expect(operator()).toMatchObject({
      clusterTriggerAuthenticationAnyNamespace: false,
      restrictSecretAccess: false,
      allowOperatorCloudIdentity: false,
      clusterObjectNamespace: 'sluice-system',
    });
  });

  test.each([
    ['--cluster-trigger-authentication-any-namespace', 'clusterTriggerAuthenticationAnyNamespace'],
    ['--restrict-secret-access', 'restrictSecretAccess'],
    ['--allow-operator-cloud-identity', 'allowOperatorCloudIdentity'],
  ] as const)('%s sets %s, and is in the usage text', (flag, key) => {
    expect(operator(flag)[key]).toBe(true);
    expect(USAGE).toContain(flag);
  });

  test('they are switches: a value is refused', () => {
    expect(() => operator('--restrict-secret-access=yes')).toThrow(/restrict-secret-access/);
  });
});

describe('--metrics-port', () => {
  test("8080 by default (KEDA's), any port, 0 turns it off; in the usage text", () => {
    expect(operator().metricsPort).toBe(8080);
    expect(operator('--metrics-port', '9102').metricsPort).toBe(9102);
    expect(operator('--metrics-port=0').metricsPort).toBeUndefined();
    expect(USAGE).toContain('--metrics-port <n>');
  });

  test('refuses what is not a port, and the metrics API port', () => {
    expect(() => operator('--metrics-port', '70000')).toThrow(/--metrics-port must be a whole number from 0 to 65535/);
    expect(() => operator('--metrics-port', 'x')).toThrow(/--metrics-port/);
    expect(() => operator('--port', '9000', '--metrics-port', '9000')).toThrow(/must differ/);
  });
});

describe('the offline subcommands', () => {
  test('validate and simulate hand their arguments to their own parsers (src/cli/), and are in the usage text', () => {
    expect(parseConfig(['validate', 'a.yaml', '-'])).toEqual({ command: 'validate', args: ['a.yaml', '-'] });
    expect(parseConfig(['simulate', '-f', 'so.yaml', '--trace', 't.csv'])).toEqual({
      command: 'simulate',
      args: ['-f', 'so.yaml', '--trace', 't.csv'],
    });
    expect(USAGE).toContain('sluice validate FILE... | -');
    expect(USAGE).toContain('sluice simulate -f SCALEDOBJECT.yaml --trace TRACE.csv');
  });
});

describe('sluice serve', () => {
  test('--config and the operator settings that apply; no leader, no own /metrics', () => {
    const config = parseConfig(['serve', '--config', 'metrics.yaml', '--local', '--port', '7443']);
    expect(config).toMatchObject({
      command: 'serve',
      configFile: 'metrics.yaml',
      local: true,
      port: 7443,
      metricsPort: undefined,
      leaderElection: undefined,
    });
  });

  test.each([
    [['serve', '--local'], /sluice serve needs --config/],
    [['operator', '--local', '--config', 'x.yaml'], /--config is for sluice serve/],
    [['serve', '--config', 'x.yaml', '--local', '--leader-elect=false'], /sluice serve does not take --leader-elect/],
    [['serve', '--config', 'x.yaml', '--local', '--metrics-port', '9'], /does not take --metrics-port/],
    [
      ['serve', '--config', 'x.yaml', '--certificates=self-managed'],
      /--tls-cert-file and --tls-private-key-file, or --local/,
    ],
  ])('%j is refused', (argv, message) => {
    expect(() => parseConfig(argv)).toThrow(message);
  });
});
