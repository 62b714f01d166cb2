/**
 * `sluice operator --local`: running outside a cluster (the test environment, a laptop). sluice then registers
 * itself with kube-apiserver's aggregator: a self-signed serving certificate, an `ExternalName` Service pointing at
 * `localhost` (the aggregator dials `localhost:<port>`), and the APIService `v1beta1.external.metrics.k8s.io`
 * carrying that CA. It also installs the CRDs from crds/. In a cluster, deploy/ does all of this instead.
 */
import { apiClient } from './kube-client.ts';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  KubernetesObjectApi,
  PatchStrategy,
  loadAllYaml,
  type KubeConfig,
  type KubernetesObject,
} from '@kubernetes/client-node';
import { SluiceError } from './errors.ts';

const run = promisify(execFile);

export const LOCAL_NAMESPACE = 'sluice-system';
export const LOCAL_SERVICE = 'sluice-metrics';
export const APISERVICE_NAME = 'v1beta1.external.metrics.k8s.io';
const FIELD_MANAGER = 'sluice-local';

export interface ServingCert {
  readonly cert: string;
  readonly key: string;
  /** PEM of the CA that signed `cert` (what the APIService trusts). */
  readonly ca: string;
}

/**
 * A throwaway CA and a serving certificate for `<service>.<namespace>.svc`, localhost and 127.0.0.1 (openssl). The
 * pair lives in memory only, so there is no file to watch. To replace it on the running server (a self-managed
 * certificate with rotation), hand a new pair to `ServerTls.swapServingPair` (src/server/certificates.ts) and, if the
 * CA changes, register the APIService again with the new CA (`registerApiService`) before the old one is dropped.
 */
export async function createServingCert(): Promise<ServingCert> {
  const dir = await mkdtemp(path.join(tmpdir(), 'sluice-local-'));
  const file = (name: string) => path.join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  try {
    await run('openssl', [
      'req',
      '-x509',
      ...ec,
      '-keyout',
      file('ca.key'),
      '-out',
      file('ca.crt'),
      '-days',
      '365',
      '-subj',
      '/CN=sluice-local-ca',
    ]);
    await run('openssl', [
      'req',
      ...ec,
      '-keyout',
      file('tls.key'),
      '-out',
      file('tls.csr'),
      '-subj',
      `/CN=${LOCAL_SERVICE}.${LOCAL_NAMESPACE}.svc`,
    ]);
    await writeFile(
      file('ext.cnf'),
      `subjectAltName=DNS:${LOCAL_SERVICE}.${LOCAL_NAMESPACE}.svc,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n`,
    );
    await run('openssl', [
      'x509',
      '-req',
      '-in',
      file('tls.csr'),
      '-CA',
      file('ca.crt'),
      '-CAkey',
      file('ca.key'),
      '-CAcreateserial',
      '-out',
      file('tls.crt'),
      '-days',
      '365',
      '-sha256',
      '-extfile',
      file('ext.cnf'),
    ]);
    const [cert, key, ca] = await Promise.all(['tls.crt', 'tls.key', 'ca.crt'].map((n) => readFile(file(n), 'utf8')));
    if (cert === undefined || key === undefined || ca === undefined) throw new Error('unreachable');
    return { cert, key, ca };
  } catch (cause) {
    throw new SluiceError('LOCAL_CERT', 'cannot create a serving certificate with openssl (is openssl installed?)', {
      cause,
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
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
