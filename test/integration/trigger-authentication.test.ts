// TriggerAuthentication / ClusterTriggerAuthentication on the real kube-apiserver: the generated CRDs apply with
// server-side apply and are served (a non-structural schema would be refused), the API server enforces their schema,
// and the resolver, over the real API (createKubeAuthPort), resolves Secrets, ConfigMaps, TriggerAuthentications and
// a Deployment's environment, with its errors for what is missing, and heals once a missing Secret appears.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  ApiException,
  ApiextensionsV1Api,
  AppsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  PatchStrategy,
  loadAllYaml,
  setHeaderOptions,
  type KubeConfig,
  type KubernetesObject,
  type V1Container,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeError, ValidationError } from '../../src/errors.ts';
import {
  AuthResolutionError,
  createAuthResolver,
  createKubeAuthPort,
  type AuthResolver,
} from '../../src/operator/auth-resolver.ts';
import { parseScaledObject, type ScaledObject } from '../../src/operator/scaled-object.ts';
import {
  createNamespace,
  deleteNamespace,
  kubeConfig,
  loadTestEnv,
  REPO_ROOT,
  uniqueName,
  waitFor,
} from '../support/env.ts';

const GROUP = 'sluice.dev';
const VERSION = 'v1alpha1';
/** The field manager `sluice operator --local` installs CRDs with, so both applies own the same fields. */
const FIELD_MANAGER = 'sluice-local';
const CRD_FILES = ['triggerauthentication.yaml', 'clustertriggerauthentication.yaml'];

/** Values no error message may contain. */
const SECRETS = {
  password: `pw-${uniqueName('s')}`,
  username: `user-${uniqueName('s')}`,
  literal: `literal-${uniqueName('s')}`,
  bulk: `bulk-${uniqueName('s')}`,
  cluster: `cluster-${uniqueName('s')}`,
};

describe('TriggerAuthentication CRDs and resolution on the real API server', () => {
  let kc: KubeConfig;
  let core: CoreV1Api;
  let custom: CustomObjectsApi;
  let ns: string;
  /** Stands in for sluice-system: where ClusterTriggerAuthentication Secrets live. */
  let clusterNs: string;
  const ctaName = uniqueName('cta');
  let resolver: AuthResolver;

  const so = (triggers: Record<string, unknown>[], scaleTargetRef: Record<string, unknown> = { name: 'consumer' }) =>
    parseScaledObject({
      metadata: { name: 'orders', namespace: ns },
      spec: { scaleTargetRef, triggers: triggers.map((t) => ({ type: 'rabbitmq', metadata: {}, ...t })) },
    });

  async function failure(scaled: ScaledObject): Promise<Error & { field: string }> {
    try {
      await resolver.resolve(scaled);
    } catch (err) {
      if (err instanceof ValidationError || err instanceof AuthResolutionError) {
        const text = `${describeError(err)}\n${err.stack ?? ''}`;
        for (const value of Object.values(SECRETS)) expect(text).not.toContain(value);
        return err;
      }
      throw err;
    }
    throw new Error('resolve() succeeded');
  }

  const createTa = (name: string, spec: Record<string, unknown>) =>
    custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: ns,
      plural: 'triggerauthentications',
      body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'TriggerAuthentication', metadata: { name }, spec },
    });

  const secret = (namespace: string, name: string, data: Record<string, string>) =>
    core.createNamespacedSecret({ namespace, body: { metadata: { name }, stringData: data } });

  beforeAll(async () => {
    kc = kubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    custom = kc.makeApiClient(CustomObjectsApi);

    // The CRDs, exactly as generated, with server-side apply (another test or `sluice --local` may have applied them).
    const objects = KubernetesObjectApi.makeApiClient(kc);
    for (const file of CRD_FILES) {
      for (const doc of loadAllYaml(readFileSync(path.join(REPO_ROOT, 'crds', file), 'utf8')) as KubernetesObject[]) {
        await objects.patch(doc, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
      }
    }
    const extensions = kc.makeApiClient(ApiextensionsV1Api);
    for (const name of ['triggerauthentications.sluice.dev', 'clustertriggerauthentications.sluice.dev']) {
      await waitFor(
        async () => {
          const crd = await extensions.readCustomResourceDefinition({ name });
          const status = (type: string) => crd.status?.conditions?.find((c) => c.type === type)?.status;
          return status('Established') === 'True' && status('NamesAccepted') === 'True';
        },
        { timeoutMs: 30_000, message: `CRD ${name} to be established` },
      );
    }

    ns = await createNamespace(kc, 'trigger-auth');
    clusterNs = await createNamespace(kc, 'trigger-auth-cluster');
    resolver = createAuthResolver(createKubeAuthPort(kc), { clusterObjectNamespace: clusterNs });

    await secret(ns, 'rabbit-secret', { password: SECRETS.password, username: SECRETS.username });
    await secret(ns, 'bulk', { TOKEN: SECRETS.bulk });
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'rabbit-config' }, data: { host: 'rabbit.example', vhost: 'orders', REGION: 'eu' } },
    });
    await secret(clusterNs, 'shared', { password: SECRETS.cluster });

    const containers: V1Container[] = [
      {
        name: 'sidecar',
        image: 'registry.invalid/sidecar:1',
        env: [{ name: 'WHO', value: 'sidecar' }],
      },
      {
        name: 'consumer',
        image: 'registry.invalid/consumer:1',
        envFrom: [{ configMapRef: { name: 'rabbit-config' }, prefix: 'CFG_' }, { secretRef: { name: 'bulk' } }],
        env: [
          { name: 'WHO', value: 'consumer' },
          { name: 'RABBIT_USER', valueFrom: { secretKeyRef: { name: 'rabbit-secret', key: 'username' } } },
          { name: 'RABBIT_PASSWORD', valueFrom: { secretKeyRef: { name: 'rabbit-secret', key: 'password' } } },
          { name: 'RABBIT_HOST', valueFrom: { configMapKeyRef: { name: 'rabbit-config', key: 'host' } } },
          { name: 'LITERAL', value: SECRETS.literal },
          { name: 'RABBIT_URL', value: 'amqp://$(RABBIT_USER)@$(RABBIT_HOST)/$(CFG_vhost)' },
          { name: 'ESCAPED', value: '$$(RABBIT_HOST)' },
          { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
          { name: 'LATE', valueFrom: { secretKeyRef: { name: 'created-later', key: 'token' } } },
        ],
      },
    ];
    const apps = kc.makeApiClient(AppsV1Api);
    const labels = { app: 'consumer' };
    const template = { metadata: { labels }, spec: { containers } };
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: { metadata: { name: 'consumer' }, spec: { replicas: 0, selector: { matchLabels: labels }, template } },
    });
    await apps.createNamespacedStatefulSet({
      namespace: ns,
      body: {
        metadata: { name: 'stateful' },
        spec: { replicas: 0, serviceName: 'stateful', selector: { matchLabels: labels }, template },
      },
    });

    await createTa('rabbit-auth', {
      env: [{ parameter: 'username', name: 'WHO', containerName: 'sidecar' }],
      configMapTargetRef: [
        { parameter: 'host', name: 'rabbit-config', key: 'host' },
        { parameter: 'username', name: 'rabbit-config', key: 'vhost' },
      ],
      secretTargetRef: [
        { parameter: 'password', name: 'rabbit-secret', key: 'password' },
        { parameter: 'username', name: 'rabbit-secret', key: 'username' },
      ],
    });
    await custom.createClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: 'clustertriggerauthentications',
      body: {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: 'ClusterTriggerAuthentication',
        metadata: { name: ctaName },
        spec: {
          secretTargetRef: [{ parameter: 'password', name: 'shared', key: 'password' }],
          // Matched against the real Namespace's labels (every namespace has its name as a label).
          allowedNamespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': ns } },
        },
      },
    });
  });

  afterAll(async () => {
    await custom
      .deleteClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: 'clustertriggerauthentications',
        name: ctaName,
      })
      .catch(() => undefined);
    await deleteNamespace(kc, ns);
    await deleteNamespace(kc, clusterNs);
  });

  it('the CRDs are served with their names, short names and printer columns', () => {
    const kubectl = (...args: string[]) =>
      spawnSync('kubectl', ['--kubeconfig', loadTestEnv().kubeconfig, ...args], { encoding: 'utf8' });
    const ta = kubectl('get', 'ta', '-n', ns);
    expect(ta.stderr).toBe('');
    expect(ta.stdout).toMatch(/^NAME\s+PODIDENTITY\s+SECRET\s+ENV\s+AGE\n/);
    // kubectl shows the first match of a `[*]` column.
    expect(ta.stdout).toMatch(/rabbit-auth\s+rabbit-secret\s+WHO\s+\d+s/);
    const cta = kubectl('get', 'clustertriggerauth', ctaName, '-o', 'name');
    expect(cta.stdout.trim()).toBe(`clustertriggerauthentication.sluice.dev/${ctaName}`);
    expect(kubectl('get', 'triggerauth', '-n', ns, '-o', 'name').stdout.trim()).toBe(
      'triggerauthentication.sluice.dev/rabbit-auth',
    );
    expect(kubectl('get', 'cta', ctaName, '-o', 'name').status).toBe(0);
  });

  it('the API server enforces the schema and keeps KEDA fields sluice rejects later', async () => {
    const invalid: unknown = await createTa('no-key', { secretTargetRef: [{ parameter: 'p', name: 'n' }] }).catch(
      (err: unknown) => err,
    );
    expect(invalid).toBeInstanceOf(ApiException);
    expect((invalid as ApiException<unknown>).code).toBe(422);
    expect(String((invalid as ApiException<unknown>).body)).toContain('spec.secretTargetRef[0].key: Required value');

    const badProvider: unknown = await createTa('bad-provider', { podIdentity: { provider: 'azure' } }).catch(
      (err: unknown) => err,
    );
    expect((badProvider as ApiException<unknown>).code).toBe(422);

    await createTa('vault', { hashiCorpVault: { address: 'https://vault.example', authentication: 'token' } });
    const stored = (await custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: ns,
      plural: 'triggerauthentications',
      name: 'vault',
    })) as { spec: Record<string, unknown> };
    expect(stored.spec).toStrictEqual({
      hashiCorpVault: { address: 'https://vault.example', authentication: 'token' },
    });
    const err = await failure(so([{ authenticationRef: { name: 'vault' } }]));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.message).toBe(
      `spec.triggers[0].authenticationRef: TriggerAuthentication "vault" in namespace "${ns}" is invalid: spec.hashiCorpVault: is not supported by sluice yet; use secretTargetRef, configMapTargetRef or env`,
    );

    await createTa('aws-identity', { podIdentity: { provider: 'aws' } });
    const aws = await failure(so([{ authenticationRef: { name: 'aws-identity' } }]));
    expect(aws.message).toContain('spec.podIdentity.provider: "aws" is not supported by sluice yet');
  });

  it('resolves a TriggerAuthentication in KEDA’s order and the Deployment’s environment', async () => {
    const { triggers, fingerprint } = await resolver.resolve(
      so(
        [
          { authenticationRef: { name: 'rabbit-auth' }, metadata: { hostFromEnv: 'RABBIT_URL' } },
          { authenticationRef: { name: ctaName, kind: 'ClusterTriggerAuthentication' } },
        ],
        { name: 'consumer', envSourceContainerName: 'consumer' },
      ),
    );
    expect(triggers[0]?.authParams).toStrictEqual({
      host: 'rabbit.example',
      password: SECRETS.password,
      username: SECRETS.username, // env (sidecar) → configMap (vhost) → secret: the Secret wins
    });
    expect(triggers[1]?.authParams).toStrictEqual({ password: SECRETS.cluster });
    expect(triggers[0]?.resolvedEnv).toStrictEqual({
      CFG_host: 'rabbit.example',
      CFG_vhost: 'orders',
      CFG_REGION: 'eu',
      TOKEN: SECRETS.bulk,
      WHO: 'consumer',
      RABBIT_USER: SECRETS.username,
      RABBIT_PASSWORD: SECRETS.password,
      RABBIT_HOST: 'rabbit.example',
      LITERAL: SECRETS.literal,
      RABBIT_URL: `amqp://${SECRETS.username}@rabbit.example/orders`,
      ESCAPED: '$(RABBIT_HOST)',
      // POD (fieldRef) is skipped; LATE (Secret not created yet) is left out: no trigger asks for it.
    });
    expect(triggers[1]?.resolvedEnv).toBe(triggers[0]?.resolvedEnv);
    expect(fingerprint).toMatch(/^[0-9a-f]{64}$/);
  });

  it('reads any workload kind with a pod template (a StatefulSet), first container by default', async () => {
    const { triggers } = await resolver.resolve(
      so([{ metadata: { hostFromEnv: 'WHO' } }], { name: 'stateful', kind: 'StatefulSet' }),
    );
    expect(triggers[0]?.resolvedEnv).toStrictEqual({ WHO: 'sidecar' });
  });

  it('errors name the field and the missing object, and a missing Secret heals once it is created', async () => {
    const missingTa = await failure(so([{ authenticationRef: { name: 'rabbit-auth-typo' } }]));
    expect(missingTa).toBeInstanceOf(ValidationError);
    expect(missingTa.message).toBe(
      `spec.triggers[0].authenticationRef: TriggerAuthentication "rabbit-auth-typo" not found in namespace "${ns}"`,
    );

    const missingCta = await failure(
      so([{ authenticationRef: { name: `${ctaName}-x`, kind: 'ClusterTriggerAuthentication' } }]),
    );
    expect(missingCta.message).toBe(
      `spec.triggers[0].authenticationRef: ClusterTriggerAuthentication "${ctaName}-x" not found`,
    );

    const container = await failure(
      so([{ metadata: { hostFromEnv: 'WHO' } }], { name: 'consumer', envSourceContainerName: 'worker' }),
    );
    expect(container).toBeInstanceOf(ValidationError);
    expect(container.message).toBe(
      'spec.scaleTargetRef.envSourceContainerName: container "worker" not found in Deployment "consumer" (containers: sidecar, consumer)',
    );

    const target = await failure(so([{ metadata: { hostFromEnv: 'WHO' } }], { name: 'absent' }));
    expect(target).toBeInstanceOf(AuthResolutionError);
    expect(target.message).toBe(
      `spec.scaleTargetRef: Deployment "absent" (apps/v1) in namespace "${ns}" not found (its containers' environment is needed)`,
    );

    const kind = await failure(
      so([{ metadata: { hostFromEnv: 'WHO' } }], { name: 'x', apiVersion: 'example.com/v1', kind: 'Nope' }),
    );
    expect(kind).toBeInstanceOf(AuthResolutionError);
    expect(kind.message).toContain('spec.scaleTargetRef: cannot read Nope "x" (example.com/v1)');

    await createTa('late-auth', { secretTargetRef: [{ parameter: 'token', name: 'created-later', key: 'token' }] });
    const lateAuth = so([{ authenticationRef: { name: 'late-auth' } }]);
    const lateEnv = so([{}, { metadata: { tokenFromEnv: 'LATE' } }], {
      name: 'consumer',
      envSourceContainerName: 'consumer',
    });
    const authBefore = await failure(lateAuth);
    expect(authBefore).toBeInstanceOf(AuthResolutionError);
    expect(authBefore.message).toBe(
      `spec.triggers[0].authenticationRef: TriggerAuthentication "late-auth" in namespace "${ns}": spec.secretTargetRef[0] (parameter "token"): Secret "created-later" not found in namespace "${ns}"`,
    );
    const envBefore = await failure(lateEnv);
    expect(envBefore).toBeInstanceOf(AuthResolutionError);
    expect(envBefore.message).toBe(
      `spec.triggers[1].metadata.tokenFromEnv: environment variable "LATE" of container "consumer" in Deployment "consumer": env[8].valueFrom.secretKeyRef: Secret "created-later" not found in namespace "${ns}"`,
    );

    await secret(ns, 'created-later', { other: SECRETS.password });
    for (const late of [lateAuth, lateEnv]) {
      const wrongKey = await failure(late);
      expect(wrongKey.message).toContain(
        `Secret "created-later" in namespace "${ns}" has no key "token" (keys: other)`,
      );
    }

    await core.patchNamespacedSecret(
      { namespace: ns, name: 'created-later', body: { stringData: { token: SECRETS.bulk } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    expect((await resolver.resolve(lateAuth)).triggers[0]?.authParams).toStrictEqual({ token: SECRETS.bulk });
    expect((await resolver.resolve(lateEnv)).triggers[1]?.resolvedEnv['LATE']).toBe(SECRETS.bulk);
  });

  it('a Secret of the ClusterTriggerAuthentication is not read from the ScaledObject’s namespace', async () => {
    await custom.createClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: 'clustertriggerauthentications',
      body: {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: 'ClusterTriggerAuthentication',
        metadata: { name: `${ctaName}-ns` },
        spec: {
          secretTargetRef: [{ parameter: 'password', name: 'rabbit-secret', key: 'password' }],
          allowedNamespaces: [ns],
        },
      },
    });
    try {
      const err = await failure(
        so([{ authenticationRef: { name: `${ctaName}-ns`, kind: 'ClusterTriggerAuthentication' } }]),
      );
      expect(err).toBeInstanceOf(AuthResolutionError);
      expect(err.message).toContain(`Secret "rabbit-secret" not found in namespace "${clusterNs}"`);
    } finally {
      await custom.deleteClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: 'clustertriggerauthentications',
        name: `${ctaName}-ns`,
      });
    }
  });
  it('a ClusterTriggerAuthentication is used only from the namespaces it allows, by the real Namespace labels', async () => {
    const name = `${ctaName}-sel`;
    const label = uniqueName('team');
    const createCta = (metadataName: string, spec: Record<string, unknown>) =>
      custom.createClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: 'clustertriggerauthentications',
        body: {
          apiVersion: `${GROUP}/${VERSION}`,
          kind: 'ClusterTriggerAuthentication',
          metadata: { name: metadataName },
          spec,
        },
      });
    // The CRD's CEL rule: In needs values (as metav1.LabelSelector).
    const invalid: unknown = await createCta(`${name}-bad`, {
      allowedNamespaceSelector: { matchExpressions: [{ key: 'team', operator: 'In' }] },
    }).catch((err: unknown) => err);
    expect(invalid).toBeInstanceOf(ApiException);
    expect((invalid as ApiException<unknown>).code).toBe(422);
    expect(String((invalid as ApiException<unknown>).body)).toContain('values must be non-empty for In and NotIn');

    await createCta(name, {
      secretTargetRef: [{ parameter: 'password', name: 'shared', key: 'password' }],
      allowedNamespaceSelector: {
        matchLabels: { 'sluice-test/team': label },
        matchExpressions: [{ key: 'sluice-test/quarantined', operator: 'DoesNotExist' }],
      },
    });
    try {
      const uses = so([{ authenticationRef: { name, kind: 'ClusterTriggerAuthentication' } }]);
      const refused = await failure(uses);
      expect(refused).toBeInstanceOf(ValidationError);
      expect(refused.message).toBe(
        `spec.triggers[0].authenticationRef: ClusterTriggerAuthentication "${name}" may not be used from namespace "${ns}": its labels do not match the ClusterTriggerAuthentication's spec.allowedNamespaceSelector; label the namespace to match it, or add "${ns}" to spec.allowedNamespaces`,
      );
      const labelNamespace = (labels: Record<string, string | null>) =>
        core.patchNamespace(
          { name: ns, body: { metadata: { labels } } },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
      await labelNamespace({ 'sluice-test/team': label });
      expect((await resolver.resolve(uses)).triggers[0]?.authParams).toStrictEqual({ password: SECRETS.cluster });
      await labelNamespace({ 'sluice-test/quarantined': 'true' });
      expect(await failure(uses)).toBeInstanceOf(ValidationError);
      await labelNamespace({ 'sluice-test/team': null, 'sluice-test/quarantined': null });
    } finally {
      await custom.deleteClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: 'clustertriggerauthentications',
        name,
      });
    }
  });
});
