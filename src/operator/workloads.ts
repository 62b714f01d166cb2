/**
 * Replica counts of Deployments and StatefulSets from watch caches, so that neither a scaling loop's tick nor a
 * reconcile asks the API server for them (a `/scale` GET per object per tick is 333 requests a second at 10,000
 * objects polled every 30 s). Other kinds (anything with a `/scale` subresource) are still read through `/scale`.
 *
 * Each cached object keeps only its name, namespace, uid, `spec.replicas`, `status.replicas` and
 * `status.readyReplicas` (informers.ts: a pod template is most of a Deployment). `get` answers only while the cache is
 * listed and watching; before its first list, after its watch broke (until it watches again: resumed from where it
 * was, or listed again after 410 Gone) and for an object it has not seen (created a moment ago, or missing), it
 * answers `undefined` and the caller reads the API, which also tells a missing object from a late one.
 *
 * Needs `list` and `watch` on apps/v1 Deployments and StatefulSets (deploy/rbac.yaml).
 */
import {
  AppsV1Api,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  type V1ObjectMeta,
} from '@kubernetes/client-node';
import { apiClient } from '../kube-client.ts';
import { slimInformer, supervise, type InformerLog, type Supervision } from './informers.ts';
import type { ScaleTarget } from './kube.ts';

export interface WorkloadReplicas {
  /** `spec.replicas`. */
  readonly replicas: number;
  /** `status.replicas`. */
  readonly statusReplicas: number;
  /** `status.readyReplicas` (omitted by the API at 0, so 0). */
  readonly readyReplicas: number;
  /** The resource (plural) name. */
  readonly resource: 'deployments' | 'statefulsets';
}

export interface WorkloadCache {
  /** The target's replicas from the cache, or undefined when the API must be asked (see the module comment). */
  get(target: ScaleTarget): WorkloadReplicas | undefined;
  start(): Promise<void>;
  stop(): Promise<void>;
}

interface SlimWorkload extends KubernetesObject {
  spec?: { replicas?: number | undefined };
  status?: { replicas?: number | undefined; readyReplicas?: number | undefined };
}

/** What the cache keeps of a Deployment or StatefulSet: identity and replica counts. */
export function slimWorkload(obj: SlimWorkload): SlimWorkload {
  const metadata: V1ObjectMeta = {};
  const { name, namespace, uid, resourceVersion } = obj.metadata ?? {};
  if (name !== undefined) metadata.name = name;
  if (namespace !== undefined) metadata.namespace = namespace;
  if (uid !== undefined) metadata.uid = uid;
  if (resourceVersion !== undefined) metadata.resourceVersion = resourceVersion;
  return {
    metadata,
    spec: { replicas: obj.spec?.replicas },
    status: { replicas: obj.status?.replicas, readyReplicas: obj.status?.readyReplicas },
  };
}

const KINDS = {
  Deployment: 'deployments',
  StatefulSet: 'statefulsets',
} as const satisfies Record<string, WorkloadReplicas['resource']>;

export function createWorkloadCache(kc: KubeConfig, log: InformerLog): WorkloadCache {
  // Lists of every workload may be large: a longer deadline than single calls.
  const apps = apiClient(kc, AppsV1Api, 60_000);
  const entries = Object.entries(KINDS).map(([kind, resource]) => {
    const name = `${kind}s`;
    const list = (): Promise<KubernetesListObject<SlimWorkload>> =>
      resource === 'deployments' ? apps.listDeploymentForAllNamespaces() : apps.listStatefulSetForAllNamespaces();
    // A broken watch leaves the cache as it was: the API is asked until the informer watches again (`current()`:
    // resumed from where it was, or listed again after a 410).
    const informer = slimInformer<SlimWorkload>(kc, `/apis/apps/v1/${resource}`, list, slimWorkload, { name, log });
    return { kind, name, informer };
  });
  const byKind = new Map(entries.map((entry) => [entry.kind, entry]));
  let supervisions: Supervision[] = [];

  return {
    get(target) {
      if (target.apiVersion !== 'apps/v1') return undefined;
      const entry = byKind.get(target.kind);
      if (entry?.informer.current() !== true) return undefined;
      const obj = entry.informer.get(target.name, target.namespace);
      if (obj === undefined) return undefined;
      return {
        replicas: obj.spec?.replicas ?? 0,
        statusReplicas: obj.status?.replicas ?? 0,
        readyReplicas: obj.status?.readyReplicas ?? 0,
        resource: KINDS[target.kind as keyof typeof KINDS],
      };
    },
    async start() {
      supervisions = entries.map(({ name, informer }) => supervise(name, informer, log, () => undefined));
      await Promise.all(entries.map(({ informer }) => informer.start()));
    },
    async stop() {
      for (const supervision of supervisions) supervision.stop();
      await Promise.all(entries.map(({ informer }) => informer.stop()));
    },
  };
}
