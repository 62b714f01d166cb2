// The production manifests: the repository root's kustomization.yaml (crds/ + deploy/), rendered by `kubectl kustomize`
// exactly as `kubectl apply -k .` renders them, then
// - read: the least-privilege and hardening properties that matter (no `*` verbs, the delegated-auth bindings, a
//   non-root read-only container, Service → pod → APIService → certificate wiring);
// - validated by the real kube-apiserver with a server-side dry run of every object (schemas, RBAC objects, the
//   APIService), in a throwaway namespace with the restricted Pod Security level in warn mode;
// - the RBAC rules themselves created for real (renamed, bound to throwaway ServiceAccounts) and asked with
//   SubjectAccessReviews whether they allow what sluice does and deny what it must not do, the leader-election Lease
//   included;
// - two replicas electing a leader: rolling updates, spread over nodes, a PodDisruptionBudget.
// The default install needs no cert-manager (sluice makes its own certificates): the whole kustomization is applied
// with `kubectl apply --server-side --dry-run=server -k .` to the test control plane, which has none. The
// cert-manager overlay (overlays/cert-manager) is checked by reading it (its Certificate kinds do not exist here).
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseConfig } from '../../src/config.ts';
import {
  ApiException,
  AuthorizationV1Api,
  CoreV1Api,
  RbacAuthorizationV1Api,
  type KubeConfig,
  type KubernetesObject,
  type V1APIService,
  type V1ClusterRole,
  type V1ClusterRoleBinding,
  type V1Container,
  type V1Deployment,
  type V1PodDisruptionBudget,
  type V1PolicyRule,
  type V1ResourceAttributes,
  type V1Role,
  type V1RoleBinding,
  type V1Service,
  type RbacV1Subject,
} from '@kubernetes/client-node';
import { parseAllDocuments, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../support/command.ts';
import { REPO_ROOT, deleteNamespace, kubeConfig, loadTestEnv, uniqueName, waitFor } from '../support/env.ts';

const NAMESPACE = 'sluice-system';
const SERVICE_ACCOUNT = 'sluice';
const TLS_SECRET = 'sluice-metrics-tls';
/** The self-managed certificates' Secret (src/config.ts --certificates-secret default). */
const CERTIFICATES_SECRET = 'sluice-certificates';
const APISERVICE = 'v1beta1.external.metrics.k8s.io';
/** The Lease the replicas elect a leader on (src/main.ts LEASE_NAME), in sluice's default namespace sluice-system. */
const LEASE_NAME = 'sluice-operator';

interface Manifest extends KubernetesObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
}

/** The fields of cert-manager's Certificate this test reads. */
interface Certificate extends Manifest {
  spec: { secretName: string; dnsNames?: string[]; isCA?: boolean; issuerRef: { name: string; kind?: string } };
}

interface Issuer extends Manifest {
  spec: { selfSigned?: object; ca?: { secretName: string } };
}

function toYaml(objects: readonly object[]): string {
  return objects.map((o) => stringify(o)).join('---\n');
}

const clone = <T>(value: T): T => structuredClone(value);

async function render(dir = REPO_ROOT): Promise<Manifest[]> {
  const { code, stdout, stderr } = await run('kubectl', ['kustomize', dir]);
  if (code !== 0) throw new Error(`kubectl kustomize failed (${String(code)}): ${stderr}`);
  return parseAllDocuments(stdout).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`rendered YAML does not parse: ${doc.errors[0]?.message ?? ''}`);
    return doc.toJS() as Manifest;
  });
}

// Does this rule list allow the request? RBAC matching: exact names or `*`; `*/scale` matches any resource's scale.
function ruleAllows(rule: V1PolicyRule, attrs: V1ResourceAttributes): boolean {
  const has = (list: readonly string[] | undefined, value: string) =>
    (list ?? []).some((item) => item === '*' || item === value);
  const resource = attrs.subresource ? `${attrs.resource ?? ''}/${attrs.subresource}` : (attrs.resource ?? '');
  const resourceMatches = (rule.resources ?? []).some(
    (r) => r === '*' || r === resource || (attrs.subresource !== undefined && r === `*/${attrs.subresource}`),
  );
  const nameMatches = (rule.resourceNames ?? []).length === 0 || has(rule.resourceNames, attrs.name ?? '');
  return has(rule.verbs, attrs.verb ?? '') && has(rule.apiGroups, attrs.group ?? '') && resourceMatches && nameMatches;
}

describe('deploy manifests: rendered with kubectl kustomize', () => {
  let objects: Manifest[] = [];
  const all = <T extends Manifest>(kind: string) => objects.filter((o) => o.kind === kind) as T[];
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- a typed lookup: the cast is the point
  const one = <T extends Manifest>(kind: string, name: string, namespace?: string): T => {
    const found = objects.filter(
      (o) => o.kind === kind && o.metadata.name === name && o.metadata.namespace === namespace,
    );
    expect(found, `${kind} ${namespace ?? ''}/${name}`).toHaveLength(1);
    return found[0] as T;
  };
  const deployment = () => one<V1Deployment & Manifest>('Deployment', 'sluice', NAMESPACE);
  const container = (): V1Container => {
    const containers = deployment().spec?.template.spec?.containers ?? [];
    expect(containers).toHaveLength(1);
    return containers[0] as V1Container;
  };
  const sluiceSubject: RbacV1Subject = { kind: 'ServiceAccount', name: SERVICE_ACCOUNT, namespace: NAMESPACE };

  beforeAll(async () => {
    objects = await render();
  });

  it('renders the Namespace, every CRD in crds/, and what the operator needs', () => {
    const crdFiles = readdirSync(path.join(REPO_ROOT, 'crds')).filter((f) => /\.ya?ml$/.test(f));
    expect(crdFiles.length).toBeGreaterThan(0);
    const expectedCrds = crdFiles.flatMap((file) =>
      parseAllDocuments(readFileSync(path.join(REPO_ROOT, 'crds', file), 'utf8'))
        .map((doc) => doc.toJS() as Manifest | null)
        .filter((doc): doc is Manifest => doc?.kind === 'CustomResourceDefinition')
        .map((doc) => doc.metadata.name),
    );
    expect(expectedCrds).toContain('scaledobjects.sluice.dev');
    // A new file in crds/ must also be listed in the root kustomization.yaml.
    expect(all('CustomResourceDefinition').map((o) => o.metadata.name)).toEqual(expect.arrayContaining(expectedCrds));

    one('Namespace', NAMESPACE);
    one('ServiceAccount', SERVICE_ACCOUNT, NAMESPACE);
    one('Service', 'sluice-metrics', NAMESPACE);
    one('APIService', 'v1beta1.external.metrics.k8s.io');
    deployment();
    one('PodDisruptionBudget', 'sluice', NAMESPACE);
    one('Role', 'sluice-leader-election', NAMESPACE);
    // Everything namespaced lives in sluice-system, except the one RoleBinding that must be in kube-system.
    const elsewhere = objects.filter((o) => o.metadata.namespace !== undefined && o.metadata.namespace !== NAMESPACE);
    expect(elsewhere.map((o) => `${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`)).toEqual([
      'RoleBinding kube-system/sluice:extension-apiserver-authentication-reader',
    ]);
    for (const o of objects.filter((o) => o.kind !== 'CustomResourceDefinition')) {
      expect(o.metadata.labels?.['app.kubernetes.io/part-of'], `${o.kind} ${o.metadata.name}`).toBe('sluice');
    }
  });

  it('grants no `*` verbs and wildcards only where they are unavoidable', () => {
    const rules = [...all<V1ClusterRole & Manifest>('ClusterRole'), ...all<V1ClusterRole & Manifest>('Role')].flatMap(
      (role) => (role.rules ?? []).map((rule) => ({ role: role.metadata.name, rule })),
    );
    expect(rules.length).toBeGreaterThan(0);
    for (const { role, rule } of rules) {
      const where = `${role}: ${JSON.stringify(rule)}`;
      expect(rule.verbs, where).not.toContain('*');
      if (rule.nonResourceURLs !== undefined) {
        // Discovery only, read only.
        expect(rule.verbs, where).toEqual(['get']);
        for (const url of rule.nonResourceURLs) expect(['/api', '/api/*', '/apis', '/apis/*'], where).toContain(url);
        continue;
      }
      const resources = rule.resources ?? [];
      if ((rule.apiGroups ?? []).includes('*')) {
        // Any group only for the scale subresource (scale targets of any kind).
        expect(resources, where).toEqual(['*/scale']);
        expect(
          rule.verbs.every((v) => ['get', 'patch', 'update'].includes(v)),
          where,
        ).toBe(true);
      }
      if (resources.includes('*')) {
        // Any resource only for external metrics (metric names are dynamic), read only.
        expect(rule.apiGroups, where).toEqual(['external.metrics.k8s.io']);
        expect(
          rule.verbs.every((v) => ['get', 'list'].includes(v)),
          where,
        ).toBe(true);
      }
      if (resources.includes('secrets')) {
        // Secrets by name only: no list or watch, so nothing can be enumerated; writes only to sluice's own Secret
        // (the self-managed certificates), in a Role of its namespace.
        expect(
          rule.verbs.filter((v) => !['get', 'update', 'create'].includes(v)),
          where,
        ).toEqual([]);
        if (rule.verbs.includes('update')) expect(rule.resourceNames, where).toEqual([CERTIFICATES_SECRET]);
        if (rule.verbs.some((v) => v !== 'get')) expect(role, where).toBe('sluice-certificates');
      }
      if (resources.includes('apiservices')) {
        expect(rule.resourceNames, where).toEqual([APISERVICE]);
        expect(rule.verbs, where).toEqual(['get', 'patch']);
      }
      for (const verb of ['escalate', 'bind', 'impersonate']) expect(rule.verbs, where).not.toContain(verb);
    }
    for (const binding of [
      ...all<V1ClusterRoleBinding & Manifest>('ClusterRoleBinding'),
      ...all<V1RoleBinding & Manifest>('RoleBinding'),
    ]) {
      expect(['cluster-admin', 'admin', 'edit'], binding.metadata.name).not.toContain(binding.roleRef.name);
    }
  });

  it('binds sluice to system:auth-delegator and to the extension-apiserver-authentication reader', () => {
    const delegators = all<V1ClusterRoleBinding & Manifest>('ClusterRoleBinding').filter(
      (b) => b.roleRef.kind === 'ClusterRole' && b.roleRef.name === 'system:auth-delegator',
    );
    expect(delegators).toHaveLength(1);
    expect(delegators[0]?.subjects).toEqual([sluiceSubject]);

    const readers = all<V1RoleBinding & Manifest>('RoleBinding').filter(
      (b) => b.roleRef.kind === 'Role' && b.roleRef.name === 'extension-apiserver-authentication-reader',
    );
    expect(readers).toHaveLength(1);
    expect(readers[0]?.metadata.namespace).toBe('kube-system');
    expect(readers[0]?.subjects).toEqual([sluiceSubject]);
  });

  it('lets the HPA controller read external metrics and nothing else', () => {
    const binding = all<V1ClusterRoleBinding & Manifest>('ClusterRoleBinding').find((b) =>
      (b.subjects ?? []).some((s) => s.namespace === 'kube-system' && s.name === 'horizontal-pod-autoscaler'),
    );
    expect(binding?.subjects).toEqual([
      { kind: 'ServiceAccount', name: 'horizontal-pod-autoscaler', namespace: 'kube-system' },
    ]);
    const role = one<V1ClusterRole & Manifest>('ClusterRole', binding?.roleRef.name ?? '');
    expect(role.rules).toEqual([{ apiGroups: ['external.metrics.k8s.io'], resources: ['*'], verbs: ['get', 'list'] }]);
  });

  it('gives the operator role what sluice does (read offline; the real check is the SubjectAccessReviews below)', () => {
    const rules = all<V1ClusterRoleBinding & Manifest>('ClusterRoleBinding')
      .filter((b) => (b.subjects ?? []).some((s) => s.name === SERVICE_ACCOUNT && s.namespace === NAMESPACE))
      .filter((b) => b.roleRef.name.startsWith('sluice'))
      .flatMap((b) => one<V1ClusterRole & Manifest>('ClusterRole', b.roleRef.name).rules ?? []);
    const allowed = (attrs: V1ResourceAttributes) => rules.some((rule) => ruleAllows(rule, attrs));
    for (const attrs of SLUICE_MAY) expect(allowed(attrs), JSON.stringify(attrs)).toBe(true);
    for (const attrs of SLUICE_MAY_NOT) expect(allowed(attrs), JSON.stringify(attrs)).toBe(false);
  });

  it('runs the Deployment as non-root with a read-only root filesystem and no capabilities', () => {
    const spec = deployment().spec;
    const pod = spec?.template.spec;
    expect(spec?.replicas).toBe(2);
    expect(pod?.serviceAccountName).toBe(SERVICE_ACCOUNT);
    expect(pod?.automountServiceAccountToken).not.toBe(false); // it talks to the API server
    expect(pod?.hostNetwork ?? false).toBe(false);
    expect(pod?.securityContext?.runAsNonRoot).toBe(true);
    expect(pod?.securityContext?.runAsUser).toBeGreaterThan(0);
    expect(pod?.securityContext?.seccompProfile?.type).toBe('RuntimeDefault');

    const c = container();
    expect(c.securityContext?.runAsNonRoot ?? pod?.securityContext?.runAsNonRoot).toBe(true);
    expect(c.securityContext?.readOnlyRootFilesystem).toBe(true);
    expect(c.securityContext?.allowPrivilegeEscalation).toBe(false);
    expect(c.securityContext?.privileged ?? false).toBe(false);
    expect(c.securityContext?.capabilities?.drop).toEqual(['ALL']);
    expect(c.securityContext?.capabilities?.add ?? []).toEqual([]);
    expect(c.resources).toEqual({ requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '1', memory: '512Mi' } });
  });

  it('runs 2 replicas electing a leader: rolling updates, spread over nodes, a PDB, the Lease Role', () => {
    const spec = deployment().spec;
    // sluice's default --leader-elect=true and Lease namespace sluice-system: nothing to pass.
    expect((container().args ?? []).filter((a) => a.startsWith('--leader-elect'))).toEqual([]);
    expect(spec?.strategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } });
    expect(spec?.template.spec?.affinity).toEqual({
      podAntiAffinity: {
        preferredDuringSchedulingIgnoredDuringExecution: [
          {
            weight: 100,
            podAffinityTerm: {
              topologyKey: 'kubernetes.io/hostname',
              labelSelector: { matchLabels: spec?.selector.matchLabels },
            },
          },
        ],
      },
    });
    const pdb = one<V1PodDisruptionBudget & Manifest>('PodDisruptionBudget', 'sluice', NAMESPACE);
    expect(pdb.spec).toEqual({ minAvailable: 1, selector: spec?.selector });
    expect(spec?.template.metadata?.labels).toMatchObject(spec?.selector.matchLabels ?? { missing: 'selector' });

    const role = one<V1Role & Manifest>('Role', 'sluice-leader-election', NAMESPACE);
    expect(role.rules).toEqual([
      {
        apiGroups: ['coordination.k8s.io'],
        resources: ['leases'],
        resourceNames: [LEASE_NAME],
        verbs: ['get', 'update'],
      },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
    ]);
    const binding = one<V1RoleBinding & Manifest>('RoleBinding', 'sluice-leader-election', NAMESPACE);
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name });
    expect(binding.subjects).toEqual([sluiceSubject]);
  });

  it('starts the operator with self-managed certificates (nothing mounted), on 0.0.0.0:6443, probed over HTTPS', () => {
    const c = container();
    const pod = deployment().spec?.template.spec;
    expect(c.image).toMatch(/^[^:@]+[:@].+/); // a tag or digest, set by the kustomization's images:
    const args = c.args ?? [];
    expect(args[0]).toBe('operator');
    expect(args).toContain('--bind-address=0.0.0.0');
    expect(args).toContain('--port=6443');
    expect(args.some((a) => a.startsWith('--local'))).toBe(false);

    expect(args).toContain('--certificates=self-managed');
    expect(args.filter((a) => a.startsWith('--tls-') || a.startsWith('--certificates-secret'))).toEqual([]);
    expect(pod?.volumes ?? []).toEqual([]);
    expect(c.volumeMounts ?? []).toEqual([]);

    const port = c.ports?.find((p) => p.containerPort === 6443);
    expect(port?.name).toBe('https');
    for (const [probe, pathName] of [
      [c.readinessProbe, '/readyz'],
      [c.livenessProbe, '/healthz'],
    ] as const) {
      expect(probe?.httpGet?.path).toBe(pathName);
      expect(probe?.httpGet?.scheme).toBe('HTTPS');
      expect([6443, 'https']).toContain(probe?.httpGet?.port);
    }
  });

  it('wires APIService → Service → pod, and the APIService CA to the certificate the pod serves', () => {
    const apiService = one<V1APIService & Manifest>('APIService', 'v1beta1.external.metrics.k8s.io');
    expect(apiService.spec).toMatchObject({
      group: 'external.metrics.k8s.io',
      version: 'v1beta1',
      groupPriorityMinimum: 100,
      versionPriority: 100,
    });
    expect(apiService.spec?.insecureSkipTLSVerify ?? false).toBe(false);
    const ref = apiService.spec?.service;
    const service = one<V1Service & Manifest>('Service', ref?.name ?? '', ref?.namespace);
    const servicePort = service.spec?.ports?.find((p) => p.port === (ref?.port ?? 443));
    expect(servicePort?.port).toBe(443);
    expect(servicePort?.targetPort).toBe('https');
    expect(service.spec?.type ?? 'ClusterIP').toBe('ClusterIP');
    const podLabels = deployment().spec?.template.metadata?.labels ?? {};
    expect(podLabels).toMatchObject(service.spec?.selector ?? { '<no selector>': '' });
    expect(deployment().spec?.selector.matchLabels).toEqual(service.spec?.selector);

    // sluice writes the caBundle itself: nothing of cert-manager's in the default install, and the field is left to
    // sluice (a server-side apply of the file must not own it).
    expect(apiService.metadata.annotations?.['cert-manager.io/inject-ca-from']).toBeUndefined();
    expect(apiService.spec?.caBundle).toBeUndefined();
    expect(objects.filter((o) => o.apiVersion.startsWith('cert-manager.io/'))).toEqual([]);
    // The Secret the pods keep their certificates in: the Role names it, in the Service's namespace.
    const role = one<V1Role & Manifest>('Role', 'sluice-certificates', NAMESPACE);
    expect(role.rules).toEqual([
      { apiGroups: [''], resources: ['secrets'], resourceNames: [CERTIFICATES_SECRET], verbs: ['get', 'update'] },
      { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
    ]);
    expect(one<V1RoleBinding & Manifest>('RoleBinding', 'sluice-certificates', NAMESPACE).subjects).toEqual([
      sluiceSubject,
    ]);
    expect(one<V1ClusterRole & Manifest>('ClusterRole', 'sluice-apiservice-ca').rules).toEqual([
      {
        apiGroups: ['apiregistration.k8s.io'],
        resources: ['apiservices'],
        resourceNames: [APISERVICE],
        verbs: ['get', 'patch'],
      },
    ]);
  });

  it('overlays/cert-manager: cert-manager issues the certificate the pod mounts and injects its CA', async () => {
    const overlay = await render(path.join(REPO_ROOT, 'overlays', 'cert-manager'));
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- a typed lookup: the cast is the point
    const find = <T extends Manifest>(kind: string, name: string, namespace?: string): T => {
      const found = overlay.filter(
        (o) => o.kind === kind && o.metadata.name === name && o.metadata.namespace === namespace,
      );
      expect(found, `${kind} ${namespace ?? ''}/${name}`).toHaveLength(1);
      return found[0] as T;
    };
    // Files mode, the Secret mounted read-only, none of the self-managed RBAC.
    const dep = find<V1Deployment & Manifest>('Deployment', 'sluice', NAMESPACE);
    const c = dep.spec?.template.spec?.containers[0];
    const volume = dep.spec?.template.spec?.volumes?.find((v) => v.secret?.secretName === TLS_SECRET);
    const mount = c?.volumeMounts?.find((m) => m.name === volume?.name);
    expect(mount?.readOnly).toBe(true);
    const mountPath = mount?.mountPath ?? '<no mount>';
    expect(c?.args).toContain(`--tls-cert-file=${mountPath}/tls.crt`);
    expect(c?.args).toContain(`--tls-private-key-file=${mountPath}/tls.key`);
    expect((c?.args ?? []).filter((a) => a.startsWith('--certificates'))).toEqual([]);
    expect(overlay.filter((o) => o.metadata.name.startsWith('sluice-certificates'))).toEqual([]);
    expect(overlay.filter((o) => o.metadata.name === 'sluice-apiservice-ca')).toEqual([]);
    // Everything else as in the default install: its objects without the CRDs and the 4 self-managed RBAC objects,
    // plus 2 Issuers and 2 Certificates.
    const base = objects.filter((o) => o.kind !== 'CustomResourceDefinition').length;
    expect(overlay.filter((o) => !o.apiVersion.startsWith('cert-manager.io/')).length).toBe(base - 4);
    expect(overlay.filter((o) => o.apiVersion.startsWith('cert-manager.io/')).length).toBe(4);

    // cert-manager injects the CA of the Certificate named in the annotation; that Certificate must be what the pod
    // mounts, for the name the aggregator dials, issued by a CA (not self-signed: renewals would break trust).
    const apiService = find<V1APIService & Manifest>('APIService', APISERVICE);
    const ref = apiService.spec?.service;
    const injectFrom = apiService.metadata.annotations?.['cert-manager.io/inject-ca-from'] ?? '';
    const [certNamespace, certName] = injectFrom.split('/');
    const certificate = find<Certificate>('Certificate', certName ?? '', certNamespace);
    expect(certificate.spec.secretName).toBe(TLS_SECRET);
    expect(certificate.spec.dnsNames).toContain(`${ref?.name ?? ''}.${ref?.namespace ?? ''}.svc`);
    const issuer = find<Issuer>(
      certificate.spec.issuerRef.kind ?? 'Issuer',
      certificate.spec.issuerRef.name,
      certNamespace,
    );
    const caSecret = issuer.spec.ca?.secretName;
    const caCertificate = overlay
      .filter((o): o is Certificate => o.kind === 'Certificate')
      .find((cert) => cert.spec.secretName === caSecret);
    expect(caCertificate?.spec.isCA).toBe(true);
    find<Issuer>(
      caCertificate?.spec.issuerRef.kind ?? 'Issuer',
      caCertificate?.spec.issuerRef.name ?? '',
      certNamespace,
    );
  });

  it('overlays/proxy-mode: the proxy flags name files of the Secret sluice-proxy, mounted read-only; nothing else changes', async () => {
    const overlay = await render(path.join(REPO_ROOT, 'overlays', 'proxy-mode'));
    const deployments = overlay.filter((o): o is V1Deployment & Manifest => o.kind === 'Deployment');
    const c = deployments[0]?.spec?.template.spec?.containers[0];
    const volume = deployments[0]?.spec?.template.spec?.volumes?.find((v) => v.secret?.secretName === 'sluice-proxy');
    expect(volume?.secret?.items?.map((i) => i.key).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
    const mount = c?.volumeMounts?.find((m) => m.name === volume?.name);
    expect(mount?.readOnly).toBe(true);
    const at = mount?.mountPath ?? '<no mount>';
    const proxyArgs = (c?.args ?? []).filter((a) => a.startsWith('--proxy-'));
    expect(proxyArgs).toEqual([
      expect.stringMatching(/^--proxy-to=https:\/\/[a-z0-9.-]+:\d+$/),
      `--proxy-ca-file=${at}/ca.crt`,
      `--proxy-client-cert-file=${at}/tls.crt`,
      `--proxy-client-key-file=${at}/tls.key`,
    ]);
    // Flags `sluice operator` accepts (with files that exist, the arguments parse).
    expect(() => parseProxyArgs(proxyArgs)).not.toThrow();
    // The default install otherwise: the same objects, the Deployment's other arguments unchanged.
    const base = objects.filter((o) => o.kind !== 'CustomResourceDefinition');
    expect(overlay.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(base.map((o) => `${o.kind}/${o.metadata.name}`));
    const baseArgs = base.filter((o): o is V1Deployment & Manifest => o.kind === 'Deployment')[0]?.spec?.template.spec
      ?.containers[0]?.args;
    expect((c?.args ?? []).filter((a) => !a.startsWith('--proxy-'))).toEqual(baseArgs);
  });
});

/** Parses `sluice operator --local` with proxy arguments whose file paths are replaced by readable files. */
function parseProxyArgs(args: readonly string[]): unknown {
  const file = path.join(REPO_ROOT, 'package.json');
  return parseConfig([
    'operator',
    '--local',
    ...args.map((a) => a.replace(/=\/var\/run\/sluice\/proxy\/.*$/, `=${file}`)),
  ]);
}

/** What the operator does in the API (src/operator/*, src/server/*): the role must allow each. */
const SCALE_TARGETS = [
  ['apps', 'deployments'],
  ['apps', 'statefulsets'],
  ['argoproj.io', 'rollouts'],
] as const;
const SLUICE_MAY: readonly V1ResourceAttributes[] = [
  ...['get', 'list', 'watch'].map((verb) => ({ verb, group: 'sluice.dev', resource: 'scaledobjects' })),
  { verb: 'patch', group: 'sluice.dev', resource: 'scaledobjects', subresource: 'status', namespace: 'apps' },
  { verb: 'update', group: 'sluice.dev', resource: 'scaledobjects', subresource: 'finalizers', namespace: 'apps' },
  // Adding and removing sluice's finalizer (restoreToOriginalReplicaCount).
  { verb: 'patch', group: 'sluice.dev', resource: 'scaledobjects', namespace: 'apps' },
  // MetricSources: an informer, and their status (metric-source-controller.ts).
  ...['get', 'list', 'watch'].map((verb) => ({ verb, group: 'sluice.dev', resource: 'metricsources' })),
  { verb: 'patch', group: 'sluice.dev', resource: 'metricsources', subresource: 'status', namespace: 'apps' },
  ...['get', 'list', 'watch', 'create', 'patch', 'update', 'delete'].map((verb) => ({
    verb,
    group: 'autoscaling',
    resource: 'horizontalpodautoscalers',
    namespace: 'apps',
  })),
  // Every HPA (one autoscaler per workload: the HPAs others made).
  { verb: 'list', group: 'autoscaling', resource: 'horizontalpodautoscalers' },
  { verb: 'watch', group: 'autoscaling', resource: 'horizontalpodautoscalers' },
  ...['get', 'patch', 'update'].flatMap((verb) =>
    SCALE_TARGETS.map(([group, resource]) => ({ verb, group, resource, subresource: 'scale', namespace: 'apps' })),
  ),
  // The http-rate scaler's endpoint discovery (kube.ts createClusterPort).
  { verb: 'get', group: '', resource: 'services', namespace: 'apps', name: 'ingress-metrics' },
  { verb: 'list', group: 'discovery.k8s.io', resource: 'endpointslices', namespace: 'apps' },
  { verb: 'create', group: '', resource: 'events', namespace: 'apps' },
  { verb: 'patch', group: 'events.k8s.io', resource: 'events', namespace: 'apps' },
  { verb: 'list', group: 'sluice.dev', resource: 'triggerauthentications' },
  { verb: 'watch', group: 'sluice.dev', resource: 'clustertriggerauthentications' },
  // The scale target's pod template, for `<param>FromEnv` (auth-resolver.ts).
  { verb: 'get', group: 'apps', resource: 'deployments', namespace: 'apps', name: 'web' },
  { verb: 'get', group: 'apps', resource: 'statefulsets', namespace: 'apps', name: 'db' },
  // Replica counts from watch caches (workloads.ts).
  ...['list', 'watch'].flatMap((verb) =>
    ['deployments', 'statefulsets'].map((resource) => ({ verb, group: 'apps', resource })),
  ),
  { verb: 'get', group: '', resource: 'secrets', namespace: 'apps', name: 'rabbitmq-credentials' },
  { verb: 'get', group: '', resource: 'configmaps', namespace: 'apps', name: 'rabbitmq-settings' },
  // The ScaledObject's Namespace, for a ClusterTriggerAuthentication's allowedNamespaceSelector.
  { verb: 'get', group: '', resource: 'namespaces', name: 'apps' },
];

/** What it must not be able to do. */
const SLUICE_MAY_NOT: readonly V1ResourceAttributes[] = [
  { verb: 'list', group: 'apps', resource: 'replicasets', namespace: 'apps' },
  { verb: 'update', group: 'apps', resource: 'deployments', namespace: 'apps', name: 'web' },
  { verb: 'patch', group: 'apps', resource: 'statefulsets', namespace: 'apps', name: 'db' },
  { verb: 'get', group: '', resource: 'pods', namespace: 'apps', name: 'web-1' },
  { verb: 'list', group: '', resource: 'secrets', namespace: 'apps' },
  { verb: 'watch', group: '', resource: 'secrets' },
  { verb: 'list', group: '', resource: 'configmaps' },
  // The requestheader Role is for its one ConfigMap: no list or watch of every ConfigMap in kube-system.
  { verb: 'list', group: '', resource: 'configmaps', namespace: 'kube-system' },
  { verb: 'watch', group: '', resource: 'configmaps', namespace: 'kube-system' },
  { verb: 'create', group: 'sluice.dev', resource: 'scaledobjects', namespace: 'apps' },
  { verb: 'delete', group: 'sluice.dev', resource: 'scaledobjects', namespace: 'apps' },
  { verb: 'update', group: 'sluice.dev', resource: 'scaledobjects', namespace: 'apps' },
  { verb: 'patch', group: 'sluice.dev', resource: 'metricsources', namespace: 'apps' },
  { verb: 'create', group: 'sluice.dev', resource: 'metricsources', namespace: 'apps' },
  { verb: 'create', group: '', resource: 'pods', namespace: 'apps' },
  { verb: 'update', group: '', resource: 'services', namespace: 'apps', name: 'ingress-metrics' },
  { verb: 'create', group: 'discovery.k8s.io', resource: 'endpointslices', namespace: 'apps' },
  { verb: 'delete', group: '', resource: 'namespaces', name: 'apps' },
  { verb: 'list', group: '', resource: 'namespaces' },
  { verb: 'watch', group: '', resource: 'namespaces' },
  { verb: 'update', group: '', resource: 'namespaces', name: 'apps' },
  { verb: 'patch', group: '', resource: 'namespaces', name: 'apps' },
  { verb: 'create', group: 'rbac.authorization.k8s.io', resource: 'clusterrolebindings' },
  { verb: 'escalate', group: 'rbac.authorization.k8s.io', resource: 'clusterroles' },
  { verb: 'update', group: 'apiregistration.k8s.io', resource: 'apiservices' },
  { verb: 'update', group: 'apps', resource: 'deployments', subresource: 'status', namespace: 'apps' },
];

describe('deploy manifests: on the real kube-apiserver', () => {
  let kc: KubeConfig;
  let kubeconfigFile = '';
  let namespace = '';
  let objects: Manifest[] = [];
  /** Real RBAC objects this file created (cluster-scoped or in kube-system), removed in afterAll. */
  const created: {
    kind: 'ClusterRole' | 'ClusterRoleBinding' | 'Role' | 'RoleBinding';
    name: string;
    namespace?: string;
  }[] = [];

  /** The objects moved from sluice-system into this run's namespace (cluster-scoped names stay). */
  const relocate = (source: readonly Manifest[]): Manifest[] =>
    source.map((original) => {
      const o = clone(original) as Manifest & {
        subjects?: RbacV1Subject[];
        spec?: { service?: { namespace?: string } };
      };
      if (o.metadata.namespace === NAMESPACE) o.metadata.namespace = namespace;
      if (o.kind === 'Namespace' && o.metadata.name === NAMESPACE) o.metadata.name = namespace;
      for (const s of o.subjects ?? []) if (s.namespace === NAMESPACE) s.namespace = namespace;
      if (o.kind === 'APIService' && o.spec?.service?.namespace === NAMESPACE) o.spec.service.namespace = namespace;
      return o;
    });

  const dryRun = (manifests: readonly Manifest[]) =>
    run(
      'kubectl',
      [
        `--kubeconfig=${kubeconfigFile}`,
        'apply',
        '--server-side',
        '--dry-run=server',
        // Fields another manager owns (e.g. the APIService of a running `sluice --local`) must not fail the check;
        // a dry run changes nothing either way.
        '--force-conflicts',
        '--field-manager=sluice-deploy-test',
        '--request-timeout=60s',
        '-f',
        '-',
      ],
      { input: toYaml(manifests) },
    );

  const serverSide = () => relocate(objects.filter((o) => !o.apiVersion.startsWith('cert-manager.io/')));

  beforeAll(async () => {
    kubeconfigFile = loadTestEnv().kubeconfig;
    kc = kubeConfig();
    objects = await render();
    // The restricted Pod Security level in warn mode: admission then reports (as warnings) any pod-template field of
    // the Deployment that the restricted profile forbids.
    namespace = uniqueName('deploy-test');
    await kc.makeApiClient(CoreV1Api).createNamespace({
      body: {
        metadata: {
          name: namespace,
          labels: {
            'pod-security.kubernetes.io/warn': 'restricted',
            'pod-security.kubernetes.io/warn-version': 'latest',
          },
        },
      },
    });
  });

  afterAll(async () => {
    if (!namespace) return; // beforeAll failed before creating anything
    const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    for (const { kind, name, namespace: ns } of created.reverse()) {
      try {
        if (kind === 'ClusterRole') await rbac.deleteClusterRole({ name });
        else if (kind === 'ClusterRoleBinding') await rbac.deleteClusterRoleBinding({ name });
        else if (kind === 'Role') await rbac.deleteNamespacedRole({ name, namespace: ns ?? '' });
        else await rbac.deleteNamespacedRoleBinding({ name, namespace: ns ?? '' });
      } catch (error) {
        if (!(error instanceof ApiException && error.code === 404)) throw error;
      }
    }
    if (namespace) await deleteNamespace(kc, namespace);
  });

  it('accepts every object in a server-side dry run, with no Pod Security warning', async () => {
    const manifests = serverSide();
    const { code, stdout, stderr } = await dryRun(manifests);
    expect(stderr).not.toMatch(/error|invalid|PodSecurity/i);
    expect(code, stderr).toBe(0);
    const applied = stdout.split('\n').filter((line) => line.endsWith('serverside-applied (server dry run)'));
    expect(applied, stdout).toHaveLength(manifests.length);
  });

  it('applies the whole install (`kubectl apply --server-side --dry-run=server -k .`) on a cluster without cert-manager', async () => {
    // A dry run creates nothing, so the objects in sluice-system need that namespace to exist already (a real apply
    // creates it first, from namespace.yaml). It exists once any `sluice --local` has run, which made this test pass
    // or fail on the order of the test files: make it here, as the real apply would.
    try {
      await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: 'sluice-system' } } });
    } catch (error) {
      if (!(error instanceof ApiException && error.code === 409)) throw error;
    }
    const { code, stdout, stderr } = await run('kubectl', [
      `--kubeconfig=${kubeconfigFile}`,
      'apply',
      '--server-side',
      '--dry-run=server',
      // The APIService of a running `sluice --local` is owned by another manager; a dry run changes nothing.
      '--force-conflicts',
      '--request-timeout=60s',
      '-k',
      REPO_ROOT,
    ]);
    expect(stderr).not.toMatch(/error|no matches for kind/i);
    expect(code, stderr).toBe(0);
    const applied = stdout.split('\n').filter((line) => line.endsWith('serverside-applied (server dry run)'));
    expect(applied, stdout).toHaveLength(objects.length);
  });

  it('rejects broken manifests, so the check above is real', async () => {
    const broken = serverSide().map((o) => {
      if (o.kind === 'APIService') {
        const spec = (o as V1APIService).spec;
        if (spec) spec.groupPriorityMinimum = 0; // must be 1..20000
      }
      if (o.kind === 'Deployment') {
        const limits = (o as V1Deployment).spec?.template.spec?.containers[0]?.resources?.limits;
        if (limits) limits['memory'] = 'plenty';
      }
      return o;
    });
    const { code, stderr } = await dryRun(broken);
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/groupPriorityMinimum/);
    expect(stderr).toMatch(/quantities must match/);
  });

  it('reports a weakened security context as a Pod Security violation', async () => {
    const weakened = serverSide()
      .filter((o) => o.kind === 'Deployment')
      .map((o) => {
        const c = (o as V1Deployment).spec?.template.spec?.containers[0];
        if (c?.securityContext) {
          c.securityContext.capabilities = {};
          c.securityContext.allowPrivilegeEscalation = true;
        }
        return o;
      });
    expect(weakened).toHaveLength(1);
    const { code, stderr } = await dryRun(weakened);
    expect(code, stderr).toBe(0); // warn mode: accepted, with a warning
    expect(stderr).toMatch(/would violate PodSecurity "restricted:latest"/);
    expect(stderr).toMatch(/allowPrivilegeEscalation/);
  });

  it('authorizes what sluice and the HPA controller do, and nothing more (SubjectAccessReviews on the real rules)', async () => {
    const rbac = kc.makeApiClient(RbacAuthorizationV1Api);
    const authz = kc.makeApiClient(AuthorizationV1Api);
    const suffix = namespace.slice('deploy-test-'.length);
    const renamed = (name: string) => `${name}-${suffix}`;
    // The real rules, renamed so they cannot collide with an installed sluice; the HPA controller's binding goes to a
    // ServiceAccount of this namespace instead of kube-system's (the environment's controller is left alone).
    const hpaAccount = 'horizontal-pod-autoscaler';
    const local = relocate(objects);
    const ownRoles = new Set(
      local.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role').map((o) => o.metadata.name),
    );
    for (const role of local.filter((o) => o.kind === 'ClusterRole') as (V1ClusterRole & Manifest)[]) {
      const name = renamed(role.metadata.name);
      await rbac.createClusterRole({ body: { metadata: { name }, rules: role.rules ?? [] } });
      created.push({ kind: 'ClusterRole', name });
    }
    // The leader-election Role, moved into this run's namespace with everything else of sluice-system.
    const roles = local.filter((o) => o.kind === 'Role') as (V1Role & Manifest)[];
    expect(roles.map((o) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`).sort()).toEqual([
      `${namespace}/sluice-certificates`,
      `${namespace}/sluice-leader-election`,
    ]);
    for (const role of roles) {
      const name = renamed(role.metadata.name);
      const ns = role.metadata.namespace ?? '';
      await rbac.createNamespacedRole({
        namespace: ns,
        body: { metadata: { name, namespace: ns }, rules: role.rules ?? [] },
      });
      created.push({ kind: 'Role', name, namespace: ns });
    }
    const subjects = (binding: V1ClusterRoleBinding | V1RoleBinding): RbacV1Subject[] =>
      (binding.subjects ?? []).map((s) => {
        const copy = clone(s);
        if (s.namespace === 'kube-system' && s.name === hpaAccount) copy.namespace = namespace;
        return copy;
      });
    const roleRef = (binding: V1ClusterRoleBinding | V1RoleBinding) => {
      const copy = clone(binding.roleRef);
      if (ownRoles.has(copy.name)) copy.name = renamed(copy.name);
      return copy;
    };
    for (const binding of local.filter((o) => o.kind === 'ClusterRoleBinding') as (V1ClusterRoleBinding & Manifest)[]) {
      const name = renamed(binding.metadata.name);
      await rbac.createClusterRoleBinding({
        body: { metadata: { name }, roleRef: roleRef(binding), subjects: subjects(binding) },
      });
      created.push({ kind: 'ClusterRoleBinding', name });
    }
    for (const binding of local.filter((o) => o.kind === 'RoleBinding') as (V1RoleBinding & Manifest)[]) {
      const name = renamed(binding.metadata.name);
      const ns = binding.metadata.namespace ?? '';
      await rbac.createNamespacedRoleBinding({
        namespace: ns,
        body: { metadata: { name, namespace: ns }, roleRef: roleRef(binding), subjects: subjects(binding) },
      });
      created.push({ kind: 'RoleBinding', name, namespace: ns });
    }

    const allowed = async (
      account: string,
      attrs: { resourceAttributes?: V1ResourceAttributes; nonResourceAttributes?: { path: string; verb: string } },
    ) => {
      const review = await authz.createSubjectAccessReview({
        body: {
          spec: {
            user: `system:serviceaccount:${namespace}:${account}`,
            groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
            ...attrs,
          },
        },
      });
      return review.status?.allowed === true;
    };
    // The RBAC authorizer sees new bindings through an informer: wait for the first.
    await waitFor(() => allowed(SERVICE_ACCOUNT, { resourceAttributes: SLUICE_MAY[0] ?? {} }), {
      timeoutMs: 10_000,
      message: 'the new RBAC objects to take effect',
    });

    const wrong: string[] = [];
    for (const attrs of SLUICE_MAY) {
      if (!(await allowed(SERVICE_ACCOUNT, { resourceAttributes: attrs })))
        wrong.push(`denied ${JSON.stringify(attrs)}`);
    }
    for (const attrs of SLUICE_MAY_NOT) {
      if (await allowed(SERVICE_ACCOUNT, { resourceAttributes: attrs })) wrong.push(`allowed ${JSON.stringify(attrs)}`);
    }
    const delegated: V1ResourceAttributes[] = [
      { verb: 'create', group: 'authorization.k8s.io', resource: 'subjectaccessreviews' },
      { verb: 'create', group: 'authentication.k8s.io', resource: 'tokenreviews' },
      // The requestheader ConfigMap: read at start, then listed and watched by name (a field selector on
      // metadata.name) to reload the front-proxy CA (src/server/requestheader-watch.ts).
      ...['get', 'list', 'watch'].map((verb) => ({
        verb,
        group: '',
        resource: 'configmaps',
        namespace: 'kube-system',
        name: 'extension-apiserver-authentication',
      })),
    ];
    for (const attrs of delegated) {
      if (!(await allowed(SERVICE_ACCOUNT, { resourceAttributes: attrs })))
        wrong.push(`denied ${JSON.stringify(attrs)}`);
    }
    if (!(await allowed(SERVICE_ACCOUNT, { nonResourceAttributes: { path: '/apis/apps/v1', verb: 'get' } }))) {
      wrong.push('denied discovery GET /apis/apps/v1');
    }

    // Leader election: get, create and renew (update) its one Lease in its own namespace; no other Lease, no list,
    // watch or delete, and nothing in another namespace (src/operator/kube.ts createLeasePort).
    const lease = (verb: string, name?: string, ns = namespace): V1ResourceAttributes => ({
      verb,
      group: 'coordination.k8s.io',
      resource: 'leases',
      namespace: ns,
      ...(name === undefined ? {} : { name }),
    });
    for (const attrs of [lease('get', LEASE_NAME), lease('update', LEASE_NAME), lease('create')]) {
      if (!(await allowed(SERVICE_ACCOUNT, { resourceAttributes: attrs })))
        wrong.push(`denied ${JSON.stringify(attrs)}`);
    }
    for (const attrs of [
      lease('update', 'another-lease'),
      lease('get', 'kube-controller-manager'),
      lease('delete', LEASE_NAME),
      lease('patch', LEASE_NAME),
      lease('list'),
      lease('watch'),
      lease('update', LEASE_NAME, 'kube-system'),
      lease('create', undefined, 'kube-system'),
    ]) {
      if (await allowed(SERVICE_ACCOUNT, { resourceAttributes: attrs })) wrong.push(`allowed ${JSON.stringify(attrs)}`);
    }

    // Self-managed certificates: its one Secret read, created and replaced in its own namespace; no other Secret
    // written, nothing listed; its one APIService read and patched (src/operator/kube.ts).
    const secret = (verb: string, name?: string, ns = namespace): V1ResourceAttributes => ({
      verb,
      group: '',
      resource: 'secrets',
      namespace: ns,
      ...(name === undefined ? {} : { name }),
    });
    const apiService = (verb: string, name = APISERVICE): V1ResourceAttributes => ({
      verb,
      group: 'apiregistration.k8s.io',
      resource: 'apiservices',
      name,
    });
    for (const attrs of [
      secret('get', CERTIFICATES_SECRET),
      secret('update', CERTIFICATES_SECRET),
      secret('create'),
      apiService('get'),
      apiService('patch'),
    ]) {
      if (!(await allowed(SERVICE_ACCOUNT, { resourceAttributes: attrs })))
        wrong.push(`denied ${JSON.stringify(attrs)}`);
    }
    for (const attrs of [
      secret('update', 'someone-elses'),
      secret('patch', CERTIFICATES_SECRET),
      secret('delete', CERTIFICATES_SECRET),
      secret('list'),
      secret('watch'),
      secret('update', CERTIFICATES_SECRET, 'kube-system'),
      secret('create', undefined, 'kube-system'),
      apiService('patch', 'v1beta1.metrics.k8s.io'),
      apiService('update'),
      apiService('delete'),
      apiService('list'),
    ]) {
      if (await allowed(SERVICE_ACCOUNT, { resourceAttributes: attrs })) wrong.push(`allowed ${JSON.stringify(attrs)}`);
    }

    const metric: V1ResourceAttributes = {
      verb: 'list',
      group: 'external.metrics.k8s.io',
      version: 'v1beta1',
      resource: 's0-rabbitmq-tasks',
      namespace: 'apps',
    };
    if (!(await allowed(hpaAccount, { resourceAttributes: metric }))) wrong.push('HPA controller denied metric list');
    if (await allowed(hpaAccount, { resourceAttributes: Object.assign(clone(metric), { verb: 'create' }) })) {
      wrong.push('HPA controller allowed metric create');
    }
    if (
      await allowed(hpaAccount, {
        resourceAttributes: { verb: 'get', group: '', resource: 'secrets', namespace: 'apps' },
      })
    ) {
      wrong.push('HPA controller allowed secrets');
    }
    expect(wrong).toEqual([]);
  });
});
