// Who may use which credentials (docs/security.md#credentials), as the auth resolver enforces it: the namespaces a
// ClusterTriggerAuthentication allows (allowedNamespaces, allowedNamespaceSelector), the operator flags
// (--cluster-trigger-authentication-any-namespace, --restrict-secret-access, --allow-operator-cloud-identity), and
// that a refusal reads nothing a credential comes from.
import { beforeEach, describe, expect, test } from 'vitest';
import { describeError, ValidationError } from '../../../src/errors.ts';
import {
  AuthResolutionError,
  createAuthResolver,
  namespaceAllowed,
  selectorMatches,
  type AuthPort,
  type AuthResolverOptions,
  type ContainerEnv,
} from '../../../src/operator/auth-resolver.ts';
import { parseScaledObject, type ScaledObject } from '../../../src/operator/scaled-object.ts';
import type { LabelSelector } from '../../../src/operator/trigger-authentication.ts';

const NS = 'team-a';
const CLUSTER_NS = 'sluice-system';
const TOKEN = 'bearer-token-never-shown-5e1f';
const FIELD = 'spec.triggers[0].authenticationRef';

class MemoryPort implements AuthPort {
  readonly secrets = new Map<string, Record<string, string>>();
  readonly configMaps = new Map<string, Record<string, string>>();
  readonly triggerAuths = new Map<string, unknown>();
  readonly clusterTriggerAuths = new Map<string, unknown>();
  readonly namespaces = new Map<string, Record<string, string>>();
  readonly targets = new Map<string, ContainerEnv[]>();
  readonly failures = new Map<string, Error>();
  readonly reads: string[] = [];

  #get<T>(id: string, key: string, from: Map<string, T>): Promise<T | undefined> {
    this.reads.push(id);
    const failure = this.failures.get(id);
    if (failure) return Promise.reject(failure);
    return Promise.resolve(from.get(key));
  }
  readSecret(namespace: string, name: string) {
    return this.#get(`Secret/${namespace}/${name}`, `${namespace}/${name}`, this.secrets);
  }
  readConfigMap(namespace: string, name: string) {
    return this.#get(`ConfigMap/${namespace}/${name}`, `${namespace}/${name}`, this.configMaps);
  }
  readTriggerAuthentication(namespace: string, name: string) {
    return this.#get(`TriggerAuthentication/${namespace}/${name}`, `${namespace}/${name}`, this.triggerAuths);
  }
  readClusterTriggerAuthentication(name: string) {
    return this.#get(`ClusterTriggerAuthentication/${name}`, name, this.clusterTriggerAuths);
  }
  readNamespaceLabels(name: string) {
    return this.#get(`Namespace/${name}`, name, this.namespaces);
  }
  readScaleTarget(namespace: string, _apiVersion: string, _kind: string, name: string) {
    return this.#get(`Target/${namespace}/${name}`, `${namespace}/${name}`, this.targets);
  }
}

let port: MemoryPort;
beforeEach(() => {
  port = new MemoryPort();
  port.secrets.set(`${CLUSTER_NS}/creds`, { token: TOKEN });
  port.secrets.set(`${NS}/creds`, { token: TOKEN });
  port.namespaces.set(NS, { 'kubernetes.io/metadata.name': NS, team: 'a', tier: 'gold' });
});

function so(
  triggers: { metadata?: Record<string, string>; authenticationRef?: { name: string; kind?: string } }[],
): ScaledObject {
  return parseScaledObject({
    metadata: { name: 'orders', namespace: NS },
    spec: {
      scaleTargetRef: { name: 'consumer' },
      triggers: triggers.map((t) => ({ type: 'metrics-api', metadata: t.metadata ?? {}, ...t })),
    },
  });
}

const cta = (spec: Record<string, unknown>) => ({
  apiVersion: 'sluice.dev/v1alpha1',
  kind: 'ClusterTriggerAuthentication',
  metadata: { name: 'shared' },
  spec: { secretTargetRef: [{ parameter: 'bearerToken', name: 'creds', key: 'token' }], ...spec },
});
const ta = (spec: Record<string, unknown>) => ({
  apiVersion: 'sluice.dev/v1alpha1',
  kind: 'TriggerAuthentication',
  metadata: { name: 'local', namespace: NS },
  spec,
});
const usesCta = () => so([{ authenticationRef: { name: 'shared', kind: 'ClusterTriggerAuthentication' } }]);

async function refusal(
  scaled: ScaledObject,
  options: AuthResolverOptions = {},
  type: typeof ValidationError | typeof AuthResolutionError = ValidationError,
): Promise<ValidationError> {
  try {
    await createAuthResolver(port, options).resolve(scaled);
  } catch (err) {
    expect(err).toBeInstanceOf(type);
    expect(`${describeError(err)}\n${(err as Error).stack ?? ''}`).not.toContain(TOKEN);
    return err as ValidationError;
  }
  throw new Error('resolve() succeeded');
}

// ---------------------------------------------------------------------------------------------------------------

describe('selectorMatches: metav1.LabelSelector semantics', () => {
  const labels = { team: 'a', tier: 'gold', 'kubernetes.io/metadata.name': NS };
  const rows: { comment: string; selector: LabelSelector; matches: boolean }[] = [
    { comment: 'empty selector matches everything', selector: {}, matches: true },
    {
      comment: 'matchLabels, all present and equal',
      selector: { matchLabels: { team: 'a', tier: 'gold' } },
      matches: true,
    },
    { comment: 'matchLabels, one differs', selector: { matchLabels: { team: 'a', tier: 'silver' } }, matches: false },
    { comment: 'matchLabels, one missing', selector: { matchLabels: { env: 'prod' } }, matches: false },
    {
      comment: 'matchLabels by name (kubernetes.io/metadata.name)',
      selector: { matchLabels: { 'kubernetes.io/metadata.name': NS } },
      matches: true,
    },
    {
      comment: 'In, value listed',
      selector: { matchExpressions: [{ key: 'team', operator: 'In', values: ['b', 'a'] }] },
      matches: true,
    },
    {
      comment: 'In, value not listed',
      selector: { matchExpressions: [{ key: 'team', operator: 'In', values: ['b'] }] },
      matches: false,
    },
    {
      comment: 'In, label missing',
      selector: { matchExpressions: [{ key: 'env', operator: 'In', values: ['prod'] }] },
      matches: false,
    },
    {
      comment: 'NotIn, value listed',
      selector: { matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['a'] }] },
      matches: false,
    },
    {
      comment: 'NotIn, value not listed',
      selector: { matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['b'] }] },
      matches: true,
    },
    {
      comment: 'NotIn, label missing (matches, as in Kubernetes)',
      selector: { matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['prod'] }] },
      matches: true,
    },
    {
      comment: 'Exists, present',
      selector: { matchExpressions: [{ key: 'tier', operator: 'Exists' }] },
      matches: true,
    },
    {
      comment: 'Exists, missing',
      selector: { matchExpressions: [{ key: 'env', operator: 'Exists' }] },
      matches: false,
    },
    {
      comment: 'DoesNotExist, missing',
      selector: { matchExpressions: [{ key: 'env', operator: 'DoesNotExist' }] },
      matches: true,
    },
    {
      comment: 'DoesNotExist, present',
      selector: { matchExpressions: [{ key: 'team', operator: 'DoesNotExist' }] },
      matches: false,
    },
    {
      comment: 'matchLabels and matchExpressions are ANDed: both hold',
      selector: { matchLabels: { team: 'a' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['gold'] }] },
      matches: true,
    },
    {
      comment: 'matchLabels and matchExpressions are ANDed: one fails',
      selector: { matchLabels: { team: 'a' }, matchExpressions: [{ key: 'tier', operator: 'DoesNotExist' }] },
      matches: false,
    },
    {
      comment: 'several expressions are ANDed',
      selector: {
        matchExpressions: [
          { key: 'team', operator: 'Exists' },
          { key: 'env', operator: 'DoesNotExist' },
          { key: 'tier', operator: 'NotIn', values: ['bronze'] },
        ],
      },
      matches: true,
    },
  ];
  test.each(rows)('$comment', ({ selector, matches }) => {
    expect(selectorMatches(selector, labels)).toBe(matches);
  });
});

describe('namespaceAllowed: allowedNamespaces and/or allowedNamespaceSelector', () => {
  const labels = { team: 'a' };
  const rows: {
    comment: string;
    spec: { allowedNamespaces?: string[]; allowedNamespaceSelector?: LabelSelector };
    allowed: boolean | undefined;
    readsLabels: boolean;
  }[] = [
    {
      comment: 'neither field: no answer (the flag decides; default no)',
      spec: {},
      allowed: undefined,
      readsLabels: false,
    },
    { comment: 'listed by name', spec: { allowedNamespaces: ['x', NS] }, allowed: true, readsLabels: false },
    { comment: 'not listed, no selector', spec: { allowedNamespaces: ['x'] }, allowed: false, readsLabels: false },
    { comment: 'an empty list allows none', spec: { allowedNamespaces: [] }, allowed: false, readsLabels: false },
    {
      comment: 'listed by name: the labels are not read',
      spec: { allowedNamespaces: [NS], allowedNamespaceSelector: { matchLabels: { team: 'b' } } },
      allowed: true,
      readsLabels: false,
    },
    {
      comment: 'not listed, but the selector matches (either is enough)',
      spec: { allowedNamespaces: ['x'], allowedNamespaceSelector: { matchLabels: { team: 'a' } } },
      allowed: true,
      readsLabels: true,
    },
    {
      comment: 'selector alone, no match',
      spec: { allowedNamespaceSelector: { matchLabels: { team: 'b' } } },
      allowed: false,
      readsLabels: true,
    },
    {
      comment: 'selector {} allows every namespace',
      spec: { allowedNamespaceSelector: {} },
      allowed: true,
      readsLabels: true,
    },
  ];
  test.each(rows)('$comment', async ({ spec, allowed, readsLabels }) => {
    let read = false;
    const result = await namespaceAllowed(spec, NS, () => {
      read = true;
      return Promise.resolve(labels);
    });
    expect(result).toBe(allowed);
    expect(read).toBe(readsLabels);
  });
});

describe('a ClusterTriggerAuthentication is used only from the namespaces it allows', () => {
  test('by default, one that names no namespace may be used from none: Ready=False naming the field and the rule', async () => {
    port.clusterTriggerAuths.set('shared', cta({}));
    const err = await refusal(usesCta());
    expect(err.field).toBe(FIELD);
    expect(err.message).toBe(
      `${FIELD}: ClusterTriggerAuthentication "shared" may not be used from namespace "${NS}": it names no namespace ` +
        'that may use it, and without spec.allowedNamespaces or spec.allowedNamespaceSelector a ' +
        'ClusterTriggerAuthentication may be used from none (unless the operator runs with ' +
        `--cluster-trigger-authentication-any-namespace); add "${NS}" to its spec.allowedNamespaces, or give it a ` +
        "spec.allowedNamespaceSelector that matches the namespace's labels",
    );
    // Refused before any Secret is read (nor the namespace: nothing to match).
    expect(port.reads).toStrictEqual(['ClusterTriggerAuthentication/shared']);
  });

  test('--cluster-trigger-authentication-any-namespace restores KEDA: one that names no namespace may be used from all', async () => {
    port.clusterTriggerAuths.set('shared', cta({}));
    const { triggers } = await createAuthResolver(port, { anyNamespaceClusterTriggerAuthentication: true }).resolve(
      usesCta(),
    );
    expect(triggers[0]?.authParams).toStrictEqual({ bearerToken: TOKEN });
  });

  test('the flag does not open one that names its namespaces', async () => {
    port.clusterTriggerAuths.set('shared', cta({ allowedNamespaces: ['team-b'] }));
    const err = await refusal(usesCta(), { anyNamespaceClusterTriggerAuthentication: true });
    expect(err.message).toContain(`may not be used from namespace "${NS}": it is not in`);
    expect(port.reads).not.toContain(`Secret/${CLUSTER_NS}/creds`);
  });

  const refusedRows: { comment: string; spec: Record<string, unknown>; message: string }[] = [
    {
      comment: 'not in allowedNamespaces',
      spec: { allowedNamespaces: ['team-b'] },
      message: `it is not in the ClusterTriggerAuthentication's spec.allowedNamespaces; add "${NS}" there (or a spec.allowedNamespaceSelector that matches the namespace's labels)`,
    },
    {
      comment: 'labels do not match allowedNamespaceSelector',
      spec: { allowedNamespaceSelector: { matchLabels: { team: 'b' } } },
      message: `its labels do not match the ClusterTriggerAuthentication's spec.allowedNamespaceSelector; label the namespace to match it, or add "${NS}" to spec.allowedNamespaces`,
    },
    {
      comment: 'neither the list nor the selector',
      spec: {
        allowedNamespaces: ['team-b'],
        allowedNamespaceSelector: { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['gold'] }] },
      },
      message: `it is not in the ClusterTriggerAuthentication's spec.allowedNamespaces and its labels do not match spec.allowedNamespaceSelector; add "${NS}" to spec.allowedNamespaces, or label the namespace to match the selector`,
    },
  ];
  test.each(refusedRows)('refused: $comment, and no Secret is read', async ({ spec, message }) => {
    port.clusterTriggerAuths.set('shared', cta(spec));
    const err = await refusal(usesCta());
    expect(err.message).toBe(
      `${FIELD}: ClusterTriggerAuthentication "shared" may not be used from namespace "${NS}": ${message}`,
    );
    expect(port.reads.filter((r) => r.startsWith('Secret/'))).toStrictEqual([]);
  });

  const allowedRows: { comment: string; spec: Record<string, unknown> }[] = [
    { comment: 'listed in allowedNamespaces', spec: { allowedNamespaces: [NS] } },
    { comment: 'matchLabels', spec: { allowedNamespaceSelector: { matchLabels: { team: 'a' } } } },
    {
      comment: 'matchExpressions In / NotIn / Exists / DoesNotExist',
      spec: {
        allowedNamespaceSelector: {
          matchExpressions: [
            { key: 'team', operator: 'In', values: ['a', 'c'] },
            { key: 'tier', operator: 'NotIn', values: ['bronze'] },
            { key: 'kubernetes.io/metadata.name', operator: 'Exists' },
            { key: 'quarantined', operator: 'DoesNotExist' },
          ],
        },
      },
    },
    { comment: 'the selector {} (every namespace, explicitly)', spec: { allowedNamespaceSelector: {} } },
  ];
  test.each(allowedRows)('allowed: $comment', async ({ spec }) => {
    port.clusterTriggerAuths.set('shared', cta(spec));
    const { triggers } = await createAuthResolver(port).resolve(usesCta());
    expect(triggers[0]?.authParams).toStrictEqual({ bearerToken: TOKEN });
  });

  test('the Namespace is read only for a selector, once per resolution', async () => {
    port.clusterTriggerAuths.set('shared', cta({ allowedNamespaceSelector: { matchLabels: { team: 'a' } } }));
    await createAuthResolver(port).resolve(
      so([
        { authenticationRef: { name: 'shared', kind: 'ClusterTriggerAuthentication' } },
        { authenticationRef: { name: 'shared', kind: 'ClusterTriggerAuthentication' } },
      ]),
    );
    expect(port.reads.filter((r) => r.startsWith('Namespace/'))).toStrictEqual([`Namespace/${NS}`]);
  });

  test('a Namespace that cannot be read is retried (AuthResolutionError), and no Secret is read', async () => {
    port.clusterTriggerAuths.set('shared', cta({ allowedNamespaceSelector: { matchLabels: { team: 'a' } } }));
    port.failures.set(`Namespace/${NS}`, new Error('HTTP 403 Forbidden: namespaces "team-a" is forbidden'));
    const err = await refusal(usesCta(), {}, AuthResolutionError);
    expect(err.message).toBe(
      `${FIELD}: cannot read Namespace "${NS}" to match ClusterTriggerAuthentication "shared"'s ` +
        'spec.allowedNamespaceSelector: HTTP 403 Forbidden: namespaces "team-a" is forbidden',
    );
    expect(port.reads.filter((r) => r.startsWith('Secret/'))).toStrictEqual([]);
  });

  test('a namespaced TriggerAuthentication needs no allow-list (its own namespace only)', async () => {
    port.triggerAuths.set(
      `${NS}/local`,
      ta({ secretTargetRef: [{ parameter: 'bearerToken', name: 'creds', key: 'token' }] }),
    );
    const { triggers } = await createAuthResolver(port).resolve(so([{ authenticationRef: { name: 'local' } }]));
    expect(triggers[0]?.authParams).toStrictEqual({ bearerToken: TOKEN });
  });
});

describe('--restrict-secret-access: Secrets only for ClusterTriggerAuthentications', () => {
  const restricted = { restrictSecretAccess: true };

  test("a TriggerAuthentication's secretTargetRef is refused, naming the field, before anything is read", async () => {
    port.triggerAuths.set(
      `${NS}/local`,
      ta({ secretTargetRef: [{ parameter: 'bearerToken', name: 'creds', key: 'token' }] }),
    );
    const err = await refusal(so([{ authenticationRef: { name: 'local' } }]), restricted);
    expect(err.field).toBe(FIELD);
    expect(err.message).toBe(
      `${FIELD}: TriggerAuthentication "local" in namespace "${NS}": spec.secretTargetRef: sluice runs with ` +
        `--restrict-secret-access, so only a ClusterTriggerAuthentication may read Secrets (from namespace ` +
        `"${CLUSTER_NS}"); use one, or configMapTargetRef / env for what is not secret`,
    );
    expect(port.reads).toStrictEqual([`TriggerAuthentication/${NS}/local`]);
  });

  test('a TriggerAuthentication with configMapTargetRef only still works', async () => {
    port.configMaps.set(`${NS}/cfg`, { url: 'http://metrics' });
    port.triggerAuths.set(`${NS}/local`, ta({ configMapTargetRef: [{ parameter: 'url', name: 'cfg', key: 'url' }] }));
    const { triggers } = await createAuthResolver(port, restricted).resolve(
      so([{ authenticationRef: { name: 'local' } }]),
    );
    expect(triggers[0]?.authParams).toStrictEqual({ url: 'http://metrics' });
  });

  test('a ClusterTriggerAuthentication reads its Secret from the cluster-object namespace', async () => {
    port.clusterTriggerAuths.set('shared', cta({ allowedNamespaces: [NS] }));
    const { triggers } = await createAuthResolver(port, restricted).resolve(usesCta());
    expect(triggers[0]?.authParams).toStrictEqual({ bearerToken: TOKEN });
    expect(port.reads).toContain(`Secret/${CLUSTER_NS}/creds`);
  });

  test('a Secret in the scale target environment is not read: <param>FromEnv is refused naming the field', async () => {
    port.targets.set(`${NS}/consumer`, [
      {
        name: 'app',
        env: [
          { name: 'PLAIN', value: 'http://plain' },
          { name: 'FROM_SECRET', valueFrom: { secretKeyRef: { name: 'creds', key: 'token' } } },
        ],
        envFrom: [{ secretRef: { name: 'bulk' } }],
      },
    ]);
    const plain = await createAuthResolver(port, restricted).resolve(so([{ metadata: { urlFromEnv: 'PLAIN' } }]));
    expect(plain.triggers[0]?.resolvedEnv).toStrictEqual({ PLAIN: 'http://plain' });

    const err = await refusal(so([{ metadata: { bearerTokenFromEnv: 'FROM_SECRET' } }]), restricted);
    expect(err.field).toBe('spec.triggers[0].metadata.bearerTokenFromEnv');
    expect(err.message).toContain(
      'is set from env[1].valueFrom.secretKeyRef (Secret "creds", not read: sluice runs with --restrict-secret-access',
    );
    const fromBulk = await refusal(so([{ metadata: { passwordFromEnv: 'FROM_BULK' } }]), restricted);
    expect(fromBulk.message).toContain('envFrom[0].secretRef (Secret "bulk", not read');
    expect(port.reads.filter((r) => r.startsWith('Secret/'))).toStrictEqual([]);
  });

  test("a ClusterTriggerAuthentication's env entry set from a Secret is refused too", async () => {
    port.targets.set(`${NS}/consumer`, [
      { name: 'app', env: [{ name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'creds', key: 'token' } } }] },
    ]);
    port.clusterTriggerAuths.set(
      'shared',
      cta({ secretTargetRef: undefined, env: [{ parameter: 'bearerToken', name: 'TOKEN' }], allowedNamespaces: [NS] }),
    );
    const err = await refusal(usesCta(), restricted);
    expect(err.field).toBe(FIELD);
    expect(err.message).toContain('--restrict-secret-access');
    expect(port.reads.filter((r) => r.startsWith('Secret/'))).toStrictEqual([]);
  });
});

describe("identityOwner: operator (sluice's own cloud identity) needs --allow-operator-cloud-identity", () => {
  const sqs = (metadata: Record<string, string>) =>
    parseScaledObject({
      metadata: { name: 'orders', namespace: NS },
      spec: { scaleTargetRef: { name: 'consumer' }, triggers: [{ type: 'aws-sqs-queue', metadata }] },
    });

  test('refused by default, naming the field, the rule and the flag', async () => {
    const err = await refusal(sqs({ queueURL: 'q', awsRegion: 'eu-west-1', identityOwner: ' operator ' }));
    expect(err.field).toBe('spec.triggers[0].metadata.identityOwner');
    expect(err.message).toBe(
      `spec.triggers[0].metadata.identityOwner: "operator" asks for sluice's own cloud identity, which this operator ` +
        'does not lend to triggers (it runs without --allow-operator-cloud-identity): give the trigger its own ' +
        'credentials through a TriggerAuthentication',
    );
  });

  test('allowed with the flag; other values are left to the scaler', async () => {
    const resolver = createAuthResolver(port, { allowOperatorCloudIdentity: true });
    await expect(resolver.resolve(sqs({ queueURL: 'q', identityOwner: 'operator' }))).resolves.toBeDefined();
    await expect(createAuthResolver(port).resolve(sqs({ queueURL: 'q', identityOwner: 'pod' }))).resolves.toBeDefined();
  });
});
