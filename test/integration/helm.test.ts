// The Helm chart charts/sluice against the kustomize install it mirrors (repository root kustomization.yaml: crds/ +
// deploy/), with helm v4 built from its Go module (scripts/env/build-helm.sh, cached):
// - `helm lint --strict`, with the default values and with others;
// - the default render equals `kubectl kustomize` object by object (kind, name, namespace, labels, spec, rules, ...),
//   except the documented differences: no Namespace object (Helm installs into the release's), Helm's standard labels
//   added (CHART_ONLY_ARGS lists the arguments only the chart passes: none today); the chart's crds/ is a
//   byte-for-byte copy of crds/;
// - a render into another namespace moves every reference to it; other values land where they should; values today's
//   sluice cannot honour are refused with the reason; the flags the chart holds back are those `sluice help` lacks;
// - leader election with 2 replicas (the default, as deploy/): its args, its Lease Role (asked with
//   SubjectAccessReviews on the real server), the PodDisruptionBudget; and one replica without it;
// - the metrics port, the ServiceMonitor and who may scrape (the sluice-ingress NetworkPolicy); templates that wait
//   for flags sluice lacks (none today) are rendered from a copy of the chart with the flags switched on, so they are
//   tested before they go live;
// - every render validated by the real kube-apiserver (server-side dry run in a throwaway namespace with the restricted
//   Pod Security level in warn mode; a minimal ServiceMonitor CRD for the ServiceMonitor). cert-manager objects cannot
//   be dry-run here (no cert-manager CRDs in the test control plane): the comparison with deploy/ covers them, and
//   test/integration/deploy.test.ts checks how they are wired.
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  ApiException,
  ApiextensionsV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  type KubeConfig,
  type KubernetesObject,
  type V1Container,
  type V1CustomResourceDefinition,
  type V1Deployment,
  type V1NetworkPolicy,
  type V1Role,
  type V1RoleBinding,
  type V1Service,
} from '@kubernetes/client-node';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, type RunResult } from '../support/command.ts';
import { REPO_ROOT, deleteNamespace, kubeConfig, loadTestEnv, uniqueName, waitFor } from '../support/env.ts';

const CHART = path.join(REPO_ROOT, 'charts', 'sluice');
const RELEASE = 'sluice';
/** The Lease sluice's replicas elect a leader on (src/main.ts LEASE_NAME). */
const LEASE_NAME = 'sluice-operator';
/** Where the kustomize install puts sluice, and sluice's default --cluster-object-namespace. */
const KUSTOMIZE_NAMESPACE = 'sluice-system';
const PACKAGE_VERSION = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string })
  .version;
/**
 * Arguments the chart's default render passes that deploy/ does not. None: both run 2 replicas electing a leader on
 * sluice's defaults (the chart passes --leader-elect=false only when leaderElection.enabled is false).
 */
const CHART_ONLY_ARGS: readonly string[] = [];
/** Helm's standard labels, the only labels the chart adds to deploy/'s (never in selectors). */
const HELM_LABELS = {
  'helm.sh/chart': `sluice-${PACKAGE_VERSION}`,
  'app.kubernetes.io/managed-by': 'Helm',
  'app.kubernetes.io/instance': RELEASE,
  'app.kubernetes.io/version': PACKAGE_VERSION,
};

interface Manifest extends KubernetesObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
}

interface ServiceMonitor extends Manifest {
  spec: {
    selector: { matchLabels: Record<string, string> };
    namespaceSelector: { matchNames: string[] };
    endpoints: { port: string; scheme: string; path: string; interval: string; scrapeTimeout: string }[];
  };
}

/**
 * helm's path, built from its Go module when not cached yet (scripts/test.sh builds it before the unit tests; a cold
 * build takes about 5 minutes on 2 cores). The build's progress lines go to this process's stderr.
 */
function buildHelm(): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['scripts/env/build-helm.sh'], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      const helm = stdout.trim().split('\n').at(-1) ?? '';
      if (code === 0 && helm !== '') resolve(helm);
      else reject(new Error(`scripts/env/build-helm.sh failed (exit ${String(code)})`));
    });
  });
}

/** Both renders are read as Go reads them (YAML 1.1: `defaultMode: 0440` is octal, as kubectl and the kubelet see it). */
function parseManifests(text: string, what: string): Manifest[] {
  return parseAllDocuments(text, { version: '1.1' })
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${what}: YAML does not parse: ${doc.errors[0]?.message ?? ''}`);
      return doc.toJS() as Manifest | null;
    })
    .filter((o): o is Manifest => o !== null);
}

const key = (o: Manifest) => `${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`;
const isCrd = (o: Manifest) => o.kind === 'CustomResourceDefinition';
const isCertManager = (o: Manifest) => o.apiVersion.startsWith('cert-manager.io/');

// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- a typed lookup: the cast is the point
function only<T extends Manifest>(objects: readonly Manifest[], kind: string, name: string): T {
  const found = objects.filter((o) => o.kind === kind && o.metadata.name === name);
  expect(found, `${kind} ${name}`).toHaveLength(1);
  return found[0] as T;
}
const deploymentOf = (objects: readonly Manifest[]) => only<V1Deployment & Manifest>(objects, 'Deployment', 'sluice');
function containerOf(objects: readonly Manifest[]): V1Container {
  const containers = deploymentOf(objects).spec?.template.spec?.containers ?? [];
  expect(containers).toHaveLength(1);
  return containers[0] as V1Container;
}

/**
 * The chart's object less the documented differences (a copy: the argument is left as it is): Helm's standard labels
 * (checked, then removed) and, on the Deployment, CHART_ONLY_ARGS that deploy/ (`want`) does not pass.
 */
function withoutChartAdditions(original: Manifest, want: Manifest): Manifest {
  const o = structuredClone(original) as Manifest & V1Deployment;
  const strip = (labels: Record<string, string> | undefined, where: string) => {
    expect(labels, where).toMatchObject(HELM_LABELS);
    for (const name of Object.keys(HELM_LABELS)) Reflect.deleteProperty(labels ?? {}, name);
  };
  strip(o.metadata.labels, key(o));
  if (o.kind === 'Deployment' && o.spec) {
    strip(o.spec.template.metadata?.labels, `${key(o)}: pod template`);
    const wanted = (want as Manifest & V1Deployment).spec?.template.spec?.containers[0]?.args ?? [];
    const container = o.spec.template.spec?.containers[0];
    if (container?.args) {
      for (const arg of CHART_ONLY_ARGS) expect(container.args, key(o)).toContain(arg);
      container.args = container.args.filter((a) => !CHART_ONLY_ARGS.includes(a) || wanted.includes(a));
    }
  }
  return o;
}

/** Values files (not --set: lists and nested maps stay readable), in a directory removed in afterAll. */
const scratch = mkdtempSync(path.join(tmpdir(), 'sluice-helm-test-'));
let valuesFiles = 0;
function valuesFile(values: object): string {
  const file = path.join(scratch, `values-${String(++valuesFiles)}.yaml`);
  writeFileSync(file, stringify(values));
  return file;
}

/** Values other than the defaults that today's sluice accepts (each lands somewhere the tests below look). */
const CUSTOM_VALUES = {
  image: { repository: 'registry.example.com/platform/sluice', tag: '0.1.0-rc.1', pullPolicy: 'Always' },
  logLevel: 'debug',
  resources: { requests: { cpu: '200m', memory: '256Mi' }, limits: { cpu: '2', memory: '1Gi' } },
  nodeOptions: '--max-old-space-size=768',
  podSecurityContext: {
    runAsNonRoot: true,
    runAsUser: 10001,
    runAsGroup: 10001,
    fsGroup: 10001,
    seccompProfile: { type: 'RuntimeDefault' },
  },
  nodeSelector: { 'kubernetes.io/os': 'linux', 'node-role.example.com/system': 'true' },
  tolerations: [{ key: 'node-role.example.com/system', operator: 'Exists', effect: 'NoSchedule' }],
  affinity: {
    nodeAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [
        {
          weight: 50,
          preference: { matchExpressions: [{ key: 'topology.kubernetes.io/zone', operator: 'In', values: ['a'] }] },
        },
      ],
    },
  },
  extraArgs: ['--read-interval=2s', '--restrict-secret-access'],
};

/** Proxy mode as overlays/proxy-mode sets it up (docs/deploy.md#proxy-mode). */
const PROXY_VALUES = {
  proxy: { to: 'https://prometheus-adapter.monitoring.svc:443', secretName: 'sluice-proxy' },
};

/** The flags block of templates/_helpers.tpl (sluice.operatorFlags): flag name → does today's sluice have it. */
function heldBackFlags(chartDir = CHART): Record<string, boolean> {
  const helpers = readFileSync(path.join(chartDir, 'templates', '_helpers.tpl'), 'utf8');
  const block = /\{\{- define "sluice\.operatorFlags" -\}\}\n([\s\S]*?)\{\{- end \}\}/.exec(helpers)?.[1];
  if (block === undefined) throw new Error('templates/_helpers.tpl: no sluice.operatorFlags block');
  return parse(block) as Record<string, boolean>;
}

/** A copy of the chart with every held-back flag switched on: what the chart renders once sluice has them. */
let allFlagsChart: string | undefined;
function chartWithAllFlags(): string {
  if (allFlagsChart !== undefined) return allFlagsChart;
  const dir = path.join(scratch, 'chart-with-all-flags');
  cpSync(CHART, dir, { recursive: true });
  const file = path.join(dir, 'templates', '_helpers.tpl');
  const flags = Object.keys(heldBackFlags());
  let text = readFileSync(file, 'utf8');
  for (const flag of flags) text = text.replace(`\n${flag}: false\n`, `\n${flag}: true\n`);
  writeFileSync(file, text);
  if (!Object.values(heldBackFlags(dir)).every(Boolean)) throw new Error(`${file}: could not switch the flags on`);
  allFlagsChart = dir;
  return dir;
}

/** Two replicas electing a leader (the defaults, spelt out). */
const LEADER_VALUES = { replicaCount: 2, leaderElection: { enabled: true } };
/** One replica without leader election. */
const SINGLE_VALUES = { replicaCount: 1, leaderElection: { enabled: false } };

/** A metrics port, a ServiceMonitor and who may scrape it (with replicas 2 too). */
const FUTURE_VALUES = {
  ...LEADER_VALUES,
  metrics: { port: 9102 },
  serviceMonitor: { enabled: true, labels: { release: 'kube-prometheus' }, interval: '15s', scrapeTimeout: '5s' },
  networkPolicy: {
    enabled: true,
    metricsFrom: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'prometheus' } } }],
  },
};

describe('helm chart charts/sluice', () => {
  let helm = '';
  let kustomized: Manifest[] = [];

  async function template(namespace: string, args: readonly string[] = [], chartDir = CHART): Promise<RunResult> {
    return run(helm, ['template', RELEASE, chartDir, '--namespace', namespace, ...args]);
  }
  async function render(namespace: string, args: readonly string[] = [], chartDir = CHART): Promise<Manifest[]> {
    const { code, stdout, stderr } = await template(namespace, args, chartDir);
    if (code !== 0) throw new Error(`helm template failed (${String(code)}): ${stderr}`);
    return parseManifests(stdout, 'helm template');
  }

  beforeAll(async () => {
    helm = await buildHelm();
    const kustomize = await run('kubectl', ['kustomize', REPO_ROOT]);
    if (kustomize.code !== 0) throw new Error(`kubectl kustomize failed: ${kustomize.stderr}`);
    kustomized = parseManifests(kustomize.stdout, 'kubectl kustomize');
  }, 900_000);

  afterAll(() => {
    rmSync(scratch, { recursive: true, force: true });
  });

  it("is versioned like package.json, and its crds/ is a copy of the repository's", () => {
    const chart = parse(readFileSync(path.join(CHART, 'Chart.yaml'), 'utf8')) as Record<string, unknown>;
    expect(chart['apiVersion']).toBe('v2');
    expect(chart['appVersion'], 'Chart.yaml appVersion: set it to package.json version').toBe(PACKAGE_VERSION);

    const yamlFiles = (dir: string) =>
      readdirSync(dir)
        .filter((f) => /\.ya?ml$/.test(f))
        .sort();
    const source = path.join(REPO_ROOT, 'crds');
    const copy = path.join(CHART, 'crds');
    const stale = 'charts/sluice/crds differs from crds/: run `npm run chart:crds`';
    expect(yamlFiles(copy), stale).toEqual(yamlFiles(source));
    for (const file of yamlFiles(source)) {
      expect(readFileSync(path.join(copy, file), 'utf8'), `${file}: ${stale}`).toBe(
        readFileSync(path.join(source, file), 'utf8'),
      );
    }
  });

  it('passes helm lint --strict, with the default values and with others', async () => {
    for (const args of [[], ['--values', valuesFile(CUSTOM_VALUES)], ['--namespace', 'autoscaling']]) {
      const { code, stdout, stderr } = await run(helm, ['lint', '--strict', CHART, ...args]);
      expect(code, `helm lint ${args.join(' ')}: ${stdout}${stderr}`).toBe(0);
    }
  });

  it('renders with the default values the objects of the kustomize install, object by object', async () => {
    const chart = await render(KUSTOMIZE_NAMESPACE, ['--include-crds']);
    // Documented difference: the kustomize install creates its Namespace (with the restricted Pod Security labels);
    // Helm installs into the release's namespace (`--create-namespace`) and creates none.
    expect(chart.filter((o) => o.kind === 'Namespace')).toEqual([]);
    const expected = kustomized.filter((o) => o.kind !== 'Namespace');
    expect(kustomized.length - expected.length).toBe(1);

    expect(chart.map(key).sort()).toEqual(expected.map(key).sort());
    for (const want of expected) {
      const got = chart.find((o) => key(o) === key(want));
      if (got === undefined) throw new Error(`${key(want)}: not rendered`);
      // CRDs come from the chart's crds/, untemplated: no Helm labels.
      expect(isCrd(got) ? got : withoutChartAdditions(got, want), key(want)).toEqual(want);
    }
    expect(chart.filter((o) => !isCrd(o)).length).toBeGreaterThan(10);
  });

  it('renders with certificates.mode=cert-manager the objects of overlays/cert-manager, object by object', async () => {
    const overlay = await run('kubectl', ['kustomize', path.join(REPO_ROOT, 'overlays', 'cert-manager')]);
    if (overlay.code !== 0) throw new Error(`kubectl kustomize failed: ${overlay.stderr}`);
    const expected = parseManifests(overlay.stdout, 'kubectl kustomize').filter((o) => o.kind !== 'Namespace');
    const chart = await render(KUSTOMIZE_NAMESPACE, ['--set', 'certificates.mode=cert-manager']);
    expect(chart.map(key).sort()).toEqual(expected.map(key).sort());
    for (const want of expected) {
      const got = chart.find((o) => key(o) === key(want));
      if (got === undefined) throw new Error(`${key(want)}: not rendered`);
      expect(withoutChartAdditions(got, want), key(want)).toEqual(want);
    }
    expect(chart.filter(isCertManager)).toHaveLength(4);
  });

  it('renders with proxy values the objects of overlays/proxy-mode, object by object', async () => {
    const overlay = await run('kubectl', ['kustomize', path.join(REPO_ROOT, 'overlays', 'proxy-mode')]);
    if (overlay.code !== 0) throw new Error(`kubectl kustomize failed: ${overlay.stderr}`);
    const expected = parseManifests(overlay.stdout, 'kubectl kustomize').filter((o) => o.kind !== 'Namespace');
    const chart = await render(KUSTOMIZE_NAMESPACE, ['--values', valuesFile(PROXY_VALUES)]);
    expect(chart.map(key).sort()).toEqual(expected.map(key).sort());
    for (const want of expected) {
      const got = chart.find((o) => key(o) === key(want));
      if (got === undefined) throw new Error(`${key(want)}: not rendered`);
      expect(withoutChartAdditions(got, want), key(want)).toEqual(want);
    }
    expect(containerOf(chart).args?.filter((a) => a.startsWith('--proxy-to='))).toEqual([
      `--proxy-to=${PROXY_VALUES.proxy.to}`,
    ]);
  });

  it('moves every reference to sluice-system into the release namespace', async () => {
    const namespace = 'autoscaling';
    const chart = (await render(namespace)).filter((o) => !isCrd(o));
    const leftovers = chart.filter((o) => JSON.stringify(o).includes(KUSTOMIZE_NAMESPACE)).map(key);
    expect(leftovers).toEqual([]);
    // Namespaced objects in the release namespace, except the RoleBinding that must be in kube-system.
    const elsewhere = chart.filter((o) => o.metadata.namespace !== undefined && o.metadata.namespace !== namespace);
    expect(elsewhere.map(key)).toEqual(['RoleBinding kube-system/sluice:extension-apiserver-authentication-reader']);

    const apiService = only<Manifest & { spec: { service: { namespace: string } } }>(
      chart,
      'APIService',
      'v1beta1.external.metrics.k8s.io',
    );
    expect(apiService.spec.service.namespace).toBe(namespace);
    // Self-managed (the default): sluice writes the caBundle; its Secret and the Service named in its certificate
    // follow the namespace.
    expect(apiService.metadata.annotations?.['cert-manager.io/inject-ca-from']).toBeUndefined();
    expect(containerOf(chart).args).toEqual(
      expect.arrayContaining([
        '--certificates=self-managed',
        `--certificates-secret=${namespace}/sluice-certificates`,
        `--metrics-service=${namespace}/sluice-metrics`,
      ]),
    );
    const certManager = (await render(namespace, ['--set', 'certificates.mode=cert-manager'])).filter((o) => !isCrd(o));
    expect(
      only<Manifest>(certManager, 'APIService', 'v1beta1.external.metrics.k8s.io').metadata.annotations?.[
        'cert-manager.io/inject-ca-from'
      ],
    ).toBe(`${namespace}/sluice-metrics`);
    const certificate = only<Manifest & { spec: { commonName: string; dnsNames: string[] } }>(
      certManager,
      'Certificate',
      'sluice-metrics',
    );
    expect(certificate.spec.commonName).toBe(`sluice-metrics.${namespace}.svc`);
    expect(certificate.spec.dnsNames).toEqual([
      `sluice-metrics.${namespace}.svc`,
      `sluice-metrics.${namespace}.svc.cluster.local`,
    ]);
    // ClusterTriggerAuthentications read their Secrets from sluice's own namespace (sluice's default: sluice-system).
    expect(containerOf(chart).args).toContain(`--cluster-object-namespace=${namespace}`);
    expect(containerOf(await render(KUSTOMIZE_NAMESPACE)).args?.join(' ')).not.toContain('--cluster-object-namespace');
  });

  it('puts the other values where they belong, and leaves the rest as in deploy/', async () => {
    const defaults = await render(KUSTOMIZE_NAMESPACE);
    const custom = await render(KUSTOMIZE_NAMESPACE, ['--values', valuesFile(CUSTOM_VALUES)]);
    const c = containerOf(custom);
    const pod = deploymentOf(custom).spec?.template.spec;
    expect(c.image).toBe('registry.example.com/platform/sluice:0.1.0-rc.1');
    expect(c.imagePullPolicy).toBe('Always');
    expect(c.resources).toEqual(CUSTOM_VALUES.resources);
    expect(c.env).toEqual([{ name: 'NODE_OPTIONS', value: '--max-old-space-size=768' }]);
    expect(pod?.securityContext).toEqual(CUSTOM_VALUES.podSecurityContext);
    expect(pod?.nodeSelector).toEqual(CUSTOM_VALUES.nodeSelector);
    expect(pod?.tolerations).toEqual(CUSTOM_VALUES.tolerations);
    // Helm merges maps: the default podAntiAffinity stays beside the nodeAffinity set here, unless set to null.
    const defaultAffinity = deploymentOf(defaults).spec?.template.spec?.affinity;
    expect(defaultAffinity?.podAntiAffinity).toBeDefined();
    expect(pod?.affinity).toEqual({ podAntiAffinity: defaultAffinity?.podAntiAffinity, ...CUSTOM_VALUES.affinity });
    const noAntiAffinity = await render(KUSTOMIZE_NAMESPACE, [
      '--values',
      valuesFile({ affinity: { podAntiAffinity: null } }),
    ]);
    expect(deploymentOf(noAntiAffinity).spec?.template.spec?.affinity).toBeUndefined();
    const defaultArgs = containerOf(defaults).args ?? [];
    expect(c.args).toEqual([
      ...defaultArgs.map((a) => (a === '--log-level=info' ? '--log-level=debug' : a)),
      ...CUSTOM_VALUES.extraArgs,
    ]);
    // Everything else is untouched: the same objects, and the Deployment differs only in what was set.
    const rest = (objects: Manifest[]) => objects.filter((o) => o.kind !== 'Deployment');
    expect(rest(custom)).toEqual(rest(defaults));
    const unset = (objects: Manifest[]) => {
      const d = structuredClone(deploymentOf(objects));
      const p = d.spec?.template.spec;
      if (p) {
        for (const field of ['securityContext', 'nodeSelector', 'tolerations', 'affinity']) {
          Reflect.deleteProperty(p, field);
        }
        for (const field of ['image', 'imagePullPolicy', 'resources', 'env', 'args']) {
          Reflect.deleteProperty(p.containers[0] ?? {}, field);
        }
      }
      return d;
    };
    expect(unset(custom)).toEqual(unset(defaults));
  });

  it("refuses what today's sluice cannot do, saying why", async () => {
    const refusals: [object, RegExp][] = [
      [{ leaderElection: { enabled: false } }, /replicaCount=2 needs leaderElection\.enabled=true/],
      // values.schema.json: unknown modes, misspelt keys, log levels sluice would refuse at start.
      [{ certificates: { mode: 'vault' } }, /certificates\/mode.*must be one of/],
      [{ replicas: 2 }, /additional properties 'replicas' not allowed/],
      [{ logLevel: 'verbose' }, /logLevel.*must be one of/],
      [{ extraArgs: ['read-interval=2s'] }, /extraArgs\/0.*does not match pattern/],
      [{ proxy: { to: 'https://adapter.monitoring.svc' } }, /proxy\.to needs proxy\.secretName/],
      [
        { proxy: { to: 'http://adapter.monitoring.svc', secretName: 's' } },
        /proxy\.to="http:.*must be the other adapter's https/,
      ],
    ];
    for (const [values, message] of refusals) {
      const { code, stderr } = await template(KUSTOMIZE_NAMESPACE, ['--values', valuesFile(values)]);
      expect(code, JSON.stringify(values)).not.toBe(0);
      expect(stderr, JSON.stringify(values)).toMatch(message);
    }
  });

  it('holds back exactly the flags `sluice help` lacks, and passes only flags it lists', async () => {
    const help = await run(process.execPath, ['src/main.ts', 'help']);
    expect(help.code, help.stderr).toBe(0);
    const known = new Set(help.stdout.match(/--[a-z][a-z0-9-]*/g) ?? []);
    expect(known).toContain('--tls-cert-file');
    for (const [flag, present] of Object.entries(heldBackFlags())) {
      expect(
        known.has(`--${flag}`),
        `sluice ${present ? 'no longer has' : 'now has'} --${flag}: set it to ${String(!present)} in ` +
          'charts/sluice/templates/_helpers.tpl (sluice.operatorFlags) and check the templates and values that use it',
      ).toBe(present);
    }
    const renders = [
      await render('autoscaling', ['--values', valuesFile(CUSTOM_VALUES)]),
      await render('autoscaling', [
        '--values',
        valuesFile({ ...PROXY_VALUES, proxy: { ...PROXY_VALUES.proxy, timeout: '3s' } }),
      ]),
      await render('autoscaling', ['--values', valuesFile(LEADER_VALUES)]),
      await render('autoscaling', ['--values', valuesFile(SINGLE_VALUES)]),
      await render('autoscaling', ['--values', valuesFile(FUTURE_VALUES)], chartWithAllFlags()),
    ];
    const held = new Set(Object.keys(heldBackFlags()).map((f) => `--${f}`));
    for (const objects of renders) {
      const [command, ...flags] = containerOf(objects).args ?? [];
      expect(command).toBe('operator');
      for (const flag of flags.map((a) => a.split('=')[0] ?? '')) {
        expect(known.has(flag) || held.has(flag), `${flag}: not a flag of \`sluice operator\``).toBe(true);
      }
    }
  });

  it('runs 2 replicas with leader election: the Lease namespace and RBAC, rolling updates, a PDB', async () => {
    const chart = await render('autoscaling', ['--values', valuesFile(LEADER_VALUES)]);
    // The defaults are these values.
    expect(await render('autoscaling')).toEqual(chart);
    const deployment = deploymentOf(chart);
    expect(deployment.spec?.replicas).toBe(2);
    expect(deployment.spec?.strategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxUnavailable: 0, maxSurge: 1 },
    });
    const args = containerOf(chart).args ?? [];
    // sluice's default (--leader-elect=true): not passed, as in deploy/.
    expect(args.filter((a) => a.startsWith('--leader-elect='))).toEqual([]);
    expect(args).toContain('--leader-election-namespace=autoscaling');
    const pdb = only<Manifest & { spec: object }>(chart, 'PodDisruptionBudget', 'sluice');
    expect(pdb.metadata.namespace).toBe('autoscaling');
    expect(pdb.spec).toEqual({ minAvailable: 1, selector: deployment.spec?.selector });
    const role = only<V1Role & Manifest>(chart, 'Role', 'sluice-leader-election');
    expect(role.metadata.namespace).toBe('autoscaling');
    expect(role.rules).toEqual([
      {
        apiGroups: ['coordination.k8s.io'],
        resources: ['leases'],
        resourceNames: [LEASE_NAME],
        verbs: ['get', 'update'],
      },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
    ]);
    const binding = only<V1RoleBinding & Manifest>(chart, 'RoleBinding', 'sluice-leader-election');
    expect(binding.metadata.namespace).toBe('autoscaling');
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata.name });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'sluice', namespace: 'autoscaling' }]);

    // In sluice-system, sluice's default Lease namespace: no flag. Disabled (one replica): --leader-elect=false, no
    // Lease RBAC, Recreate, no PDB (it would block every drain of a single pod).
    const home = await render(KUSTOMIZE_NAMESPACE, ['--values', valuesFile(LEADER_VALUES)]);
    expect(containerOf(home).args?.join(' ')).not.toContain('--leader-election-namespace');
    const off = await render('autoscaling', ['--values', valuesFile(SINGLE_VALUES)]);
    expect(deploymentOf(off).spec?.replicas).toBe(1);
    expect(containerOf(off).args).toContain('--leader-elect=false');
    expect(containerOf(off).args?.join(' ')).not.toContain('--leader-election-namespace');
    expect(off.filter((o) => o.metadata.name === 'sluice-leader-election')).toEqual([]);
    expect(off.filter((o) => o.kind === 'PodDisruptionBudget')).toEqual([]);
    expect(deploymentOf(off).spec?.strategy).toEqual({ type: 'Recreate' });
    const noPdb = await render('autoscaling', ['--values', valuesFile({ podDisruptionBudget: { enabled: false } })]);
    expect(noPdb.filter((o) => o.kind === 'PodDisruptionBudget')).toEqual([]);
  });

  it('renders the metrics port, the ServiceMonitor, and lets only metricsFrom scrape it', async () => {
    const chart = await render('autoscaling', ['--values', valuesFile(FUTURE_VALUES)]);
    const c = containerOf(chart);
    expect(c.args).toContain('--metrics-port=9102');
    expect(c.args?.filter((a) => a.startsWith('--leader-elect='))).toEqual([]);
    expect(c.ports).toContainEqual({ name: 'metrics', containerPort: 9102, protocol: 'TCP' });
    const service = only<V1Service & Manifest>(chart, 'Service', 'sluice-metrics');
    expect(service.spec?.ports).toContainEqual({ name: 'metrics', protocol: 'TCP', port: 9102, targetPort: 'metrics' });

    const monitor = only<ServiceMonitor>(chart, 'ServiceMonitor', 'sluice');
    expect(monitor.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(monitor.metadata.namespace).toBe('autoscaling');
    expect(monitor.metadata.labels?.['release']).toBe('kube-prometheus');
    expect(service.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    expect(monitor.spec.namespaceSelector.matchNames).toEqual(['autoscaling']);
    expect(monitor.spec.endpoints).toEqual([
      { port: 'metrics', scheme: 'http', path: '/metrics', interval: '15s', scrapeTimeout: '5s' },
    ]);

    const ingress = only<V1NetworkPolicy & Manifest>(chart, 'NetworkPolicy', 'sluice-ingress');
    expect(ingress.spec?.policyTypes).toEqual(['Ingress']);
    expect(ingress.spec?.ingress).toEqual([
      { ports: [{ protocol: 'TCP', port: 6443 }] },
      { from: FUTURE_VALUES.networkPolicy.metricsFrom, ports: [{ protocol: 'TCP', port: 9102 }] },
    ]);

    // By default: no ServiceMonitor; the metrics port still passed (sluice serves it either way), scraped only from
    // the namespace `monitoring`.
    const off = await render('autoscaling');
    expect(containerOf(off).args).toContain('--metrics-port=8080');
    expect(off.filter((o) => o.kind === 'ServiceMonitor')).toEqual([]);
    expect(only<V1NetworkPolicy & Manifest>(off, 'NetworkPolicy', 'sluice-ingress').spec?.ingress?.[1]).toEqual({
      from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }],
      ports: [{ protocol: 'TCP', port: 8080 }],
    });
    // No metricsFrom: nobody may scrape (the rule is left out); no NetworkPolicy at all: none of them.
    const closed = await render('autoscaling', ['--values', valuesFile({ networkPolicy: { metricsFrom: [] } })]);
    expect(only<V1NetworkPolicy & Manifest>(closed, 'NetworkPolicy', 'sluice-ingress').spec?.ingress).toHaveLength(1);
    const none = await render('autoscaling', ['--values', valuesFile({ networkPolicy: { enabled: false } })]);
    expect(none.filter((o) => o.kind === 'NetworkPolicy')).toEqual([]);
  });

  describe('on the real kube-apiserver', () => {
    let kc: KubeConfig;
    let kubeconfigFile = '';
    let namespace = '';
    let createdServiceMonitorCrd = false;

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
          '--field-manager=sluice-helm-test',
          '--request-timeout=60s',
          '-f',
          '-',
        ],
        { input: manifests.map((o) => stringify(o)).join('---\n') },
      );

    async function expectAccepted(manifests: readonly Manifest[]) {
      const { code, stdout, stderr } = await dryRun(manifests);
      expect(stderr).not.toMatch(/error|invalid|PodSecurity|unknown field/i);
      expect(code, stderr).toBe(0);
      const applied = stdout.split('\n').filter((line) => line.endsWith('serverside-applied (server dry run)'));
      expect(applied, stdout).toHaveLength(manifests.length);
    }

    beforeAll(async () => {
      kubeconfigFile = loadTestEnv().kubeconfig;
      kc = kubeConfig();
      namespace = uniqueName('helm-test');
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
      const crds = kc.makeApiClient(ApiextensionsV1Api);
      try {
        await crds.createCustomResourceDefinition({ body: SERVICE_MONITOR_CRD });
        createdServiceMonitorCrd = true;
      } catch (error) {
        // Already there (a real prometheus-operator, or another run): use it as it is.
        if (!(error instanceof ApiException && error.code === 409)) throw error;
      }
      await waitFor(
        async () => {
          const crd = await crds.readCustomResourceDefinition({ name: SERVICE_MONITOR_CRD.metadata?.name ?? '' });
          return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') === true;
        },
        { timeoutMs: 30_000, message: 'the ServiceMonitor CRD to be established' },
      );
    });

    afterAll(async () => {
      if (createdServiceMonitorCrd) {
        await kc
          .makeApiClient(ApiextensionsV1Api)
          .deleteCustomResourceDefinition({ name: SERVICE_MONITOR_CRD.metadata?.name ?? '' });
      }
      if (namespace) await deleteNamespace(kc, namespace);
    });

    const serverSide = (objects: readonly Manifest[]) => objects.filter((o) => !isCertManager(o));

    it('accepts the default render, CRDs included, with no Pod Security warning', async () => {
      await expectAccepted(serverSide(await render(namespace, ['--include-crds'])));
    });

    it('accepts the render with other values, and with one replica without leader election', async () => {
      await expectAccepted(serverSide(await render(namespace, ['--values', valuesFile(CUSTOM_VALUES)])));
      await expectAccepted(serverSide(await render(namespace, ['--values', valuesFile(SINGLE_VALUES)])));
    });

    it('lets sluice get, create and renew its Lease, and no other (SubjectAccessReviews on the real Role)', async () => {
      // The Role and RoleBinding for real, in the throwaway namespace (removed with it).
      const rbac = serverSide(await render(namespace, ['--values', valuesFile(LEADER_VALUES)])).filter(
        (o) => o.metadata.name === 'sluice-leader-election',
      );
      expect(rbac.map((o) => o.kind).sort()).toEqual(['Role', 'RoleBinding']);
      const { code, stderr } = await run(
        'kubectl',
        [`--kubeconfig=${kubeconfigFile}`, 'apply', '--server-side', '--field-manager=sluice-helm-test', '-f', '-'],
        { input: rbac.map((o) => stringify(o)).join('---\n') },
      );
      expect(code, stderr).toBe(0);
      const authz = kc.makeApiClient(AuthorizationV1Api);
      const allowed = async (verb: string, name?: string, ns = namespace) => {
        const review = await authz.createSubjectAccessReview({
          body: {
            spec: {
              user: `system:serviceaccount:${namespace}:sluice`,
              groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
              resourceAttributes: {
                verb,
                group: 'coordination.k8s.io',
                resource: 'leases',
                namespace: ns,
                ...(name === undefined ? {} : { name }),
              },
            },
          },
        });
        return review.status?.allowed === true;
      };
      await waitFor(() => allowed('get', LEASE_NAME), { timeoutMs: 10_000, message: 'the Lease Role to take effect' });
      const wrong: string[] = [];
      for (const [verb, name] of [
        ['get', LEASE_NAME],
        ['update', LEASE_NAME],
        ['create', undefined],
      ] as const) {
        if (!(await allowed(verb, name))) wrong.push(`denied ${verb} ${name ?? ''}`);
      }
      for (const [verb, name] of [
        ['get', 'kube-controller-manager'],
        ['update', 'another-lease'],
        ['delete', LEASE_NAME],
        ['list', undefined],
        ['watch', undefined],
      ] as const) {
        if (await allowed(verb, name)) wrong.push(`allowed ${verb} ${name ?? ''}`);
      }
      if (await allowed('update', LEASE_NAME, 'kube-system')) wrong.push('allowed update in kube-system');
      expect(wrong).toEqual([]);
    });

    it('accepts the render with the ServiceMonitor, the metrics port and metricsFrom (flags switched on)', async () => {
      const manifests = serverSide(
        await render(namespace, ['--values', valuesFile(FUTURE_VALUES)], chartWithAllFlags()),
      );
      expect(manifests.map((o) => o.kind)).toContain('ServiceMonitor');
      await expectAccepted(manifests);
    });

    it('rejects a broken render, so the checks above are real', async () => {
      const broken = serverSide(await render(namespace)).map((o) => {
        if (o.kind === 'Deployment') {
          const limits = (o as V1Deployment).spec?.template.spec?.containers[0]?.resources?.limits;
          if (limits) limits['memory'] = 'plenty';
        }
        return o;
      });
      const { code, stderr } = await dryRun(broken);
      expect(code).not.toBe(0);
      expect(stderr).toMatch(/quantities must match/);

      const monitor = serverSide(
        await render(namespace, ['--values', valuesFile(FUTURE_VALUES)], chartWithAllFlags()),
      ).filter((o) => o.kind === 'ServiceMonitor') as ServiceMonitor[];
      expect(monitor).toHaveLength(1);
      Object.assign(monitor[0]?.spec.endpoints[0] ?? {}, { targetPortt: 'metrics' });
      const typo = await dryRun(monitor);
      expect(typo.code).not.toBe(0);
      expect(typo.stderr).toMatch(/targetPortt: field not declared in schema/);
    });
  });
});

/**
 * prometheus-operator's ServiceMonitor CRD, cut down to the fields the chart renders (same names and types as
 * monitoring.coreos.com/v1), without x-kubernetes-preserve-unknown-fields: a misspelt field fails the dry run.
 */
const SERVICE_MONITOR_CRD: V1CustomResourceDefinition = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'servicemonitors.monitoring.coreos.com' },
  spec: {
    group: 'monitoring.coreos.com',
    scope: 'Namespaced',
    names: {
      kind: 'ServiceMonitor',
      listKind: 'ServiceMonitorList',
      plural: 'servicemonitors',
      singular: 'servicemonitor',
    },
    versions: [
      {
        name: 'v1',
        served: true,
        storage: true,
        schema: {
          openAPIV3Schema: {
            type: 'object',
            required: ['spec'],
            properties: {
              apiVersion: { type: 'string' },
              kind: { type: 'string' },
              metadata: { type: 'object' },
              spec: {
                type: 'object',
                required: ['selector'],
                properties: {
                  selector: {
                    type: 'object',
                    properties: { matchLabels: { type: 'object', additionalProperties: { type: 'string' } } },
                  },
                  namespaceSelector: {
                    type: 'object',
                    properties: { any: { type: 'boolean' }, matchNames: { type: 'array', items: { type: 'string' } } },
                  },
                  endpoints: {
                    type: 'array',
                    items: {
                      type: 'object',
                      properties: {
                        port: { type: 'string' },
                        scheme: { type: 'string', enum: ['http', 'https', 'HTTP', 'HTTPS'] },
                        path: { type: 'string' },
                        interval: {
                          type: 'string',
                          pattern: '^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$',
                        },
                        scrapeTimeout: {
                          type: 'string',
                          pattern: '^(0|(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$',
                        },
                      },
                    },
                  },
                },
              },
            },
          },
        },
      },
    ],
  },
};
