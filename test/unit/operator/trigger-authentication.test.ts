import { describe, expect, test } from 'vitest';
import { ValidationError } from '../../../src/errors.ts';
import {
  CLUSTER_TRIGGER_AUTHENTICATION,
  parseTriggerAuthentication,
  TRIGGER_AUTHENTICATION,
  UNSUPPORTED_SOURCES,
} from '../../../src/operator/trigger-authentication.ts';

/** KEDA's documentation example for RabbitMQ, with the sluice apiVersion. */
function rabbitAuth(): Record<string, unknown> & { spec: Record<string, unknown> } {
  return {
    apiVersion: 'sluice.dev/v1alpha1',
    kind: 'TriggerAuthentication',
    metadata: { name: 'rabbit-auth', namespace: 'shop', uid: 'u1', managedFields: [{ manager: 'kubectl' }] },
    spec: {
      secretTargetRef: [{ parameter: 'host', name: 'rabbit-secret', key: 'host' }],
      configMapTargetRef: [{ parameter: 'vhostName', name: 'rabbit-config', key: 'vhost' }],
      env: [{ parameter: 'username', name: 'RABBIT_USER', containerName: 'consumer' }],
      podIdentity: { provider: 'none' },
    },
  };
}

function parseError(
  obj: unknown,
  kind: 'TriggerAuthentication' | 'ClusterTriggerAuthentication' = 'TriggerAuthentication',
) {
  try {
    parseTriggerAuthentication(obj, kind);
  } catch (err) {
    if (err instanceof ValidationError) return err;
    throw err;
  }
  throw new Error('parseTriggerAuthentication accepted the object');
}

describe('names', () => {
  test("KEDA's kinds, plurals, shortNames and scopes", () => {
    expect(TRIGGER_AUTHENTICATION).toMatchObject({
      kind: 'TriggerAuthentication',
      plural: 'triggerauthentications',
      shortNames: ['ta', 'triggerauth'],
      scope: 'Namespaced',
    });
    expect(CLUSTER_TRIGGER_AUTHENTICATION).toMatchObject({
      kind: 'ClusterTriggerAuthentication',
      plural: 'clustertriggerauthentications',
      shortNames: ['cta', 'clustertriggerauth'],
      scope: 'Cluster',
    });
  });
});

describe('parseTriggerAuthentication: accepted', () => {
  test("KEDA's example parses; metadata is reduced to the fields sluice reads", () => {
    const ta = parseTriggerAuthentication(rabbitAuth(), 'TriggerAuthentication');
    expect(ta.metadata).toStrictEqual({ name: 'rabbit-auth', namespace: 'shop', uid: 'u1' });
    expect(ta.spec.secretTargetRef).toStrictEqual([{ parameter: 'host', name: 'rabbit-secret', key: 'host' }]);
    expect(ta.spec.env?.[0]?.containerName).toBe('consumer');
    expect(ta.spec.podIdentity?.provider).toBe('none');
  });

  test('does not modify its input', () => {
    const input = rabbitAuth();
    const before = JSON.stringify(input);
    parseTriggerAuthentication(input, 'TriggerAuthentication');
    expect(JSON.stringify(input)).toBe(before);
  });

  const accepted: { comment: string; obj: unknown; kind?: 'ClusterTriggerAuthentication' }[] = [
    { comment: 'no spec at all (nothing to resolve)', obj: { metadata: { name: 'a' } } },
    { comment: 'an empty spec', obj: { metadata: { name: 'a' }, spec: {} } },
    { comment: 'no apiVersion/kind (as CustomObjectsApi may hand it)', obj: { metadata: { name: 'a' }, spec: {} } },
    {
      comment: 'a ClusterTriggerAuthentication',
      obj: {
        apiVersion: 'sluice.dev/v1alpha1',
        kind: 'ClusterTriggerAuthentication',
        metadata: { name: 'a' },
        spec: {},
      },
      kind: 'ClusterTriggerAuthentication',
    },
    {
      comment: 'env without containerName',
      obj: { metadata: { name: 'a' }, spec: { env: [{ parameter: 'p', name: 'N' }] } },
    },
    {
      comment: 'status.scaledobjects',
      obj: { metadata: { name: 'a' }, spec: {}, status: { scaledobjects: 'a,b' } },
    },
  ];
  test.each(accepted)('$comment', ({ obj, kind }) => {
    expect(() => parseTriggerAuthentication(obj, kind ?? 'TriggerAuthentication')).not.toThrow();
  });
});

describe('parseTriggerAuthentication: rejected', () => {
  const withSpec = (spec: Record<string, unknown>) => ({ ...rabbitAuth(), spec });
  const rows: {
    comment: string;
    obj: unknown;
    kind?: 'ClusterTriggerAuthentication';
    field: string;
    message: RegExp;
  }[] = [
    { comment: 'not an object', obj: 'x', field: 'TriggerAuthentication', message: /must be an object, got "x"/ },
    { comment: 'null', obj: null, field: 'TriggerAuthentication', message: /must be an object, got null/ },
    {
      comment: "KEDA's apiVersion",
      obj: { ...rabbitAuth(), apiVersion: 'keda.sh/v1alpha1' },
      field: 'apiVersion',
      message: /must be sluice\.dev\/v1alpha1, got "keda\.sh\/v1alpha1"/,
    },
    {
      comment: 'a TriggerAuthentication where a ClusterTriggerAuthentication is expected',
      obj: rabbitAuth(),
      kind: 'ClusterTriggerAuthentication',
      field: 'kind',
      message: /must be ClusterTriggerAuthentication, got "TriggerAuthentication"/,
    },
    { comment: 'no metadata', obj: { spec: {} }, field: 'metadata', message: /is required/ },
    { comment: 'no name', obj: { metadata: {}, spec: {} }, field: 'metadata.name', message: /is required/ },
    {
      comment: 'secretTargetRef is not a list',
      obj: withSpec({ secretTargetRef: { parameter: 'p', name: 'n', key: 'k' } }),
      field: 'spec.secretTargetRef',
      message: /must be an array, got an object/,
    },
    {
      comment: 'secretTargetRef without key',
      obj: withSpec({ secretTargetRef: [{ parameter: 'p', name: 'n' }] }),
      field: 'spec.secretTargetRef[0].key',
      message: /is required/,
    },
    {
      comment: 'secretTargetRef with an empty parameter',
      obj: withSpec({ secretTargetRef: [{ parameter: '', name: 'n', key: 'k' }] }),
      field: 'spec.secretTargetRef[0].parameter',
      message: /must not be empty/,
    },
    {
      comment: 'configMapTargetRef with an empty name',
      obj: withSpec({ configMapTargetRef: [{ parameter: 'p', name: '', key: 'k' }] }),
      field: 'spec.configMapTargetRef[0].name',
      message: /must not be empty/,
    },
    {
      comment: 'configMapTargetRef key is a number',
      obj: withSpec({ configMapTargetRef: [{ parameter: 'p', name: 'n', key: 5 }] }),
      field: 'spec.configMapTargetRef[0].key',
      message: /must be a string, got number 5/,
    },
    {
      comment: 'env without name',
      obj: withSpec({ env: [{ parameter: 'p' }] }),
      field: 'spec.env[0].name',
      message: /is required/,
    },
    {
      comment: 'an unknown field in an entry',
      obj: withSpec({ env: [{ parameter: 'p', name: 'N', container: 'c' }] }),
      field: 'spec.env[0].container',
      message: /unknown field/,
    },
    {
      comment: 'an unknown spec field (typo)',
      obj: withSpec({ secretTargetRefs: [] }),
      field: 'spec.secretTargetRefs',
      message: /unknown field/,
    },
    {
      comment: 'podIdentity without provider',
      obj: withSpec({ podIdentity: {} }),
      field: 'spec.podIdentity.provider',
      message: /is required/,
    },
    {
      comment: 'podIdentity with a provider KEDA does not know',
      obj: withSpec({ podIdentity: { provider: 'azure' } }),
      field: 'spec.podIdentity.provider',
      message: /must be one of azure-workload, gcp, aws, aws-eks, none; got "azure"/,
    },
    ...['azure-workload', 'gcp', 'aws', 'aws-eks'].map((provider) => ({
      comment: `podIdentity ${provider} (KEDA's, not supported yet)`,
      obj: withSpec({ podIdentity: { provider } }),
      field: 'spec.podIdentity.provider',
      message: new RegExp(`"${provider}" is not supported by sluice yet \\(only "none"\\)`),
    })),
    ...(
      [
        ['identityId', 'id'],
        ['identityTenantId', 't'],
        ['identityAuthorityHost', 'https://login'],
        ['roleArn', 'arn:aws:iam::1:role/r'],
        ['externalID', 'x'],
        ['identityOwner', 'workload'],
      ] as const
    ).map(([field, value]) => ({
      comment: `podIdentity ${field} with provider none (would be ignored)`,
      obj: withSpec({ podIdentity: { provider: 'none', [field]: value } }),
      field: `spec.podIdentity.${field}`,
      message: /has no meaning with provider "none"/,
    })),
    ...UNSUPPORTED_SOURCES.map((source) => ({
      comment: `${source} (KEDA's, not supported yet)`,
      obj: withSpec({
        [source]: source === 'filePath' ? '/mnt/creds' : source === 'boundServiceAccountToken' ? [{}] : {},
      }),
      field: `spec.${source}`,
      message: /is not supported by sluice yet; use secretTargetRef, configMapTargetRef or env/,
    })),
  ];
  test.each(rows)('$comment → $field', ({ obj, kind, field, message }) => {
    const err = parseError(obj, kind ?? 'TriggerAuthentication');
    expect(err.field).toBe(field);
    expect(err.message.startsWith(`${field}: `)).toBe(true);
    expect(err.message).toMatch(message);
  });
});

describe('ClusterTriggerAuthentication: allowedNamespaces and allowedNamespaceSelector', () => {
  const cluster = (spec: Record<string, unknown>) => ({
    apiVersion: 'sluice.dev/v1alpha1',
    kind: 'ClusterTriggerAuthentication',
    metadata: { name: 'shared' },
    spec: { secretTargetRef: [{ parameter: 'password', name: 's', key: 'k' }], ...spec },
  });

  test('both fields parse on the cluster kind', () => {
    const selector = {
      matchLabels: { team: 'a' },
      matchExpressions: [
        { key: 'tier', operator: 'In', values: ['gold'] },
        { key: 'env', operator: 'NotIn', values: ['dev'] },
        { key: 'owner', operator: 'Exists' },
        { key: 'quarantined', operator: 'DoesNotExist', values: [] },
      ],
    };
    const parsed = parseTriggerAuthentication(
      cluster({ allowedNamespaces: ['team-a', 'team-b'], allowedNamespaceSelector: selector }),
      'ClusterTriggerAuthentication',
    );
    expect(parsed.spec.allowedNamespaces).toStrictEqual(['team-a', 'team-b']);
    expect(parsed.spec.allowedNamespaceSelector).toStrictEqual(selector);
  });

  const rows: { comment: string; obj: unknown; kind?: 'TriggerAuthentication'; field: string; message: RegExp }[] = [
    {
      comment: 'allowedNamespaces on a (namespaced) TriggerAuthentication: only the cluster kind has it',
      obj: { ...cluster({ allowedNamespaces: ['x'] }), kind: 'TriggerAuthentication' },
      kind: 'TriggerAuthentication',
      field: 'spec.allowedNamespaces',
      message: /unknown field/,
    },
    {
      comment: 'a namespace name that is not a DNS label',
      obj: cluster({ allowedNamespaces: ['Team_A'] }),
      field: 'spec.allowedNamespaces[0]',
      message: /is not a valid name/,
    },
    {
      comment: 'an unknown operator',
      obj: cluster({
        allowedNamespaceSelector: { matchExpressions: [{ key: 'a', operator: 'Equals', values: ['b'] }] },
      }),
      field: 'spec.allowedNamespaceSelector.matchExpressions[0].operator',
      message: /In, NotIn, Exists, DoesNotExist|one of/,
    },
    {
      comment: 'In without values',
      obj: cluster({ allowedNamespaceSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } }),
      field: 'spec.allowedNamespaceSelector.matchExpressions[0].values',
      message: /must not be empty for operator In/,
    },
    {
      comment: 'NotIn with an empty list',
      obj: cluster({ allowedNamespaceSelector: { matchExpressions: [{ key: 'a', operator: 'NotIn', values: [] }] } }),
      field: 'spec.allowedNamespaceSelector.matchExpressions[0].values',
      message: /must not be empty for operator NotIn/,
    },
    {
      comment: 'Exists with values',
      obj: cluster({
        allowedNamespaceSelector: { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['b'] }] },
      }),
      field: 'spec.allowedNamespaceSelector.matchExpressions[0].values',
      message: /must be empty for operator Exists/,
    },
    {
      comment: 'a selector field sluice does not know',
      obj: cluster({ allowedNamespaceSelector: { matchLabel: { a: 'b' } } }),
      field: 'spec.allowedNamespaceSelector.matchLabel',
      message: /unknown field/,
    },
  ];
  test.each(rows)('$comment → $field', ({ obj, kind, field, message }) => {
    const err = parseError(obj, kind ?? 'ClusterTriggerAuthentication');
    expect(err.field).toBe(field);
    expect(err.message).toMatch(message);
  });
});
