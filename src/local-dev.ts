/**
 * `sluice operator --local`: running outside a cluster (the test environment, a laptop). sluice then registers
 * itself with kube-apiserver's aggregator: a self-signed serving certificate, an `ExternalName` Service pointing at
 * `localhost` (the aggregator dials `localhost:<port>`), and the APIService `v1beta1.external.metrics.k8s.io`
 * carrying that CA. It also installs the CRDs from crds/. In a cluster, deploy/ does all of this instead.
 */
import { apiClient } from './kube-client.ts';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import {
  KubernetesObjectApi,
  PatchStrategy,
  loadAllYaml,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { createCertificateAuthority, issueServingCertificate, servingNames } from './pki.ts';

export const LOCAL_NAMESPACE = 'sluice-system';
export const LOCAL_SERVICE = 'sluice-metrics';
export const APISERVICE_NAME = 'v1beta1.external.metrics.k8s.io';
const FIELD_MANAGER = 'sluice-local';

export interface ServingCert {
  readonly cert: string;
  readonly key: string;
  /** PEM of the CA that signed `cert` (what the APIService trusts), or a bundle of CAs. */
  readonly ca: string;
}

/**
 * A throwaway CA and a serving certificate for `<service>.<namespace>.svc`, localhost and 127.0.0.1 (pki.ts, no
 * openssl). The pair lives in memory only, so there is no file to watch and nothing renews it (a year is longer than
 * a `--local` run); `--certificates=self-managed` keeps a renewed pair in a Secret instead.
 */
export async function createServingCert(): Promise<ServingCert> {
  const lifetimeMs = 365 * 24 * 3_600_000;
  const ca = await createCertificateAuthority({ commonName: 'sluice-local-ca', lifetimeMs });
  const names = servingNames({
    service: LOCAL_SERVICE,
    namespace: LOCAL_NAMESPACE,
    clusterDomain: 'cluster.local',
    local: true,
  });
  const serving = await issueServingCertificate({ ca, names, lifetimeMs });
  return { cert: serving.cert, key: serving.key, ca: ca.cert };
}

async function apply(api: KubernetesObjectApi, obj: KubernetesObject): Promise<void> {
  await api.patch(obj, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
}

/** Installs every CRD in `crdDir`. */
export async function installCrds(kc: KubeConfig, crdDir: string): Promise<void> {
  const api = apiClient(kc, KubernetesObjectApi);
  for (const name of (await readdir(crdDir)).filter((n) => n.endsWith('.yaml')).sort()) {
    for (const doc of loadAllYaml(await readFile(path.join(crdDir, name), 'utf8')) as KubernetesObject[]) {
      await apply(api, doc);
    }
  }
}

/** Points the external-metrics APIService at this process (`localhost:<port>`). */
export async function registerApiService(kc: KubeConfig, port: number, caPem: string): Promise<void> {
  const api = apiClient(kc, KubernetesObjectApi);
  await apply(api, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: LOCAL_NAMESPACE } });
  await apply(api, {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: LOCAL_SERVICE, namespace: LOCAL_NAMESPACE },
    spec: { type: 'ExternalName', externalName: 'localhost' },
  } as KubernetesObject);
  await apply(api, {
    apiVersion: 'apiregistration.k8s.io/v1',
    kind: 'APIService',
    metadata: { name: APISERVICE_NAME, labels: { 'app.kubernetes.io/managed-by': FIELD_MANAGER } },
    spec: {
      group: 'external.metrics.k8s.io',
      version: 'v1beta1',
      groupPriorityMinimum: 100,
      versionPriority: 100,
      service: { namespace: LOCAL_NAMESPACE, name: LOCAL_SERVICE, port },
      caBundle: Buffer.from(caPem).toString('base64'),
    },
  } as KubernetesObject);
}

/** The namespace sluice keeps its own objects in (the leader-election Lease, the ExternalName Service). */
export async function ensureNamespace(kc: KubeConfig, name: string): Promise<void> {
  await apply(apiClient(kc, KubernetesObjectApi), { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
}

/**
 * Removes the APIService on shutdown: an APIService whose server is gone blocks namespace deletion in the whole
 * cluster (NamespaceDeletionDiscoveryFailure). Only while it still points at this process's port: a second
 * `--local` replica that registered itself since then keeps serving.
 */
export async function unregisterApiService(kc: KubeConfig, port: number): Promise<void> {
  const api = apiClient(kc, KubernetesObjectApi);
  const ref = { apiVersion: 'apiregistration.k8s.io/v1', kind: 'APIService', metadata: { name: APISERVICE_NAME } };
  try {
    const current: KubernetesObject & { spec?: { service?: { port?: number } } } = await api.read(ref);
    if (current.spec?.service?.port !== port) return;
    const resourceVersion = current.metadata?.resourceVersion;
    await api.delete(ref, undefined, undefined, undefined, undefined, undefined, {
      ...(resourceVersion === undefined ? {} : { preconditions: { resourceVersion } }),
    });
  } catch {
    // Already gone, someone else's since, or the API server is gone: nothing left to undo.
  }
}
