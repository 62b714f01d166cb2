// The credential flags of `sluice operator` (docs/security.md#credentials): off unless given.
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
