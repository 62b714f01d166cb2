/**
 * The operator's only door to the Kubernetes API: a narrow port (what reconcile and the scaling loop need) and its
 * implementation over @kubernetes/client-node. Everything here is I/O; decisions live elsewhere.
 */
import {
  ApiException,
  ApiregistrationV1Api,
  AutoscalingV2Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  KubernetesObjectApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1APIResource,
  type V1Lease,
  V1MicroTime,
  type V2HorizontalPodAutoscaler,
} from '@kubernetes/client-node';
import { ScalerError, SluiceError } from '../errors.ts';
import { apiClient } from '../kube-client.ts';
import type { CaBundlePort, CertificateSecretPort } from './certificate-manager.ts';
import type { LeasePort, LeaseRecord } from './leader.ts';
import type { WorkloadCache } from './workloads.ts';
import type { ClusterPort } from '../scalers/scaler.ts';

export const FIELD_MANAGER = 'sluice-operator';

export interface ScaleTarget {
  readonly namespace: string;
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
}

export interface ScaleState {
  /** `spec.replicas` (missing at 0, so 0). */
  readonly replicas: number;
  /** `status.replicas`. */
  readonly statusReplicas: number;
  /** The target's resource (plural) name, from discovery. */
  readonly resource: string;
}

export interface ObjectRef {
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly namespace: string;
  readonly name: string;
}

export interface KubePort {
  applyHpa(hpa: V2HorizontalPodAutoscaler): Promise<void>;
  /**
   * Takes an existing HPA over: replaces it with `hpa` (spec, labels, annotations, owner reference), so nothing its
   * previous manager set survives; later changes are server-side applied as usual.
   */
  adoptHpa(hpa: V2HorizontalPodAutoscaler): Promise<void>;
  /** Sets a custom object's finalizers (a merge patch guarded by resourceVersion: a concurrent change fails with 409). */
  setFinalizers(ref: ObjectRef, finalizers: readonly string[], resourceVersion: string | undefined): Promise<void>;
  deleteHpa(namespace: string, name: string): Promise<void>;
  /**
   * Merge-patches the status subresource of a custom object, guarded by the resourceVersion the status was computed
   * from: when the object has changed since (the informer's copy was behind), the API server answers 409.
   */
  patchStatus(ref: ObjectRef, status: Record<string, unknown>, resourceVersion: string | undefined): Promise<void>;
  readScale(target: ScaleTarget): Promise<ScaleState>;
  writeScale(target: ScaleTarget, replicas: number): Promise<void>;
  /** The target's `status.readyReplicas` (Deployments, StatefulSets, ReplicaSets; undefined when it has none). */
  readReadyReplicas(target: ScaleTarget): Promise<number | undefined>;
}

export class TargetNotFoundError extends SluiceError {
  override name = 'TargetNotFoundError';

  constructor(target: ScaleTarget, detail: string, options?: ErrorOptions) {
    super('TARGET_NOT_FOUND', `${target.kind} ${target.namespace}/${target.name}: ${detail}`, options);
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof ApiException && err.code === 404;
}

/** Exposes KubernetesObjectApi's cached discovery lookup (apiVersion + kind → resource). */
class Discovery extends KubernetesObjectApi {
  lookup(apiVersion: string, kind: string): Promise<V1APIResource | undefined> {
    return this.resource(apiVersion, kind);
  }
}

function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const slash = apiVersion.indexOf('/');
  return slash === -1
    ? { group: '', version: apiVersion }
    : { group: apiVersion.slice(0, slash), version: apiVersion.slice(slash + 1) };
}

interface ScaleObject {
  spec?: { replicas?: number };
  status?: { replicas?: number };
}

/**
 * The port over the API server. With `workloads`, replicas of Deployments and StatefulSets come from its watch caches
 * when it has them (workloads.ts), so the scaling loops' ticks make no API call; everything else reads `/scale`.
 */
export function createKubePort(kc: KubeConfig, workloads?: Pick<WorkloadCache, 'get'>): KubePort {
  const objects = apiClient(kc, KubernetesObjectApi);
  const custom = apiClient(kc, CustomObjectsApi);
  const autoscaling = apiClient(kc, AutoscalingV2Api);
  const discovery = apiClient(kc, Discovery);
  const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

  async function scaleRef(target: ScaleTarget): Promise<ObjectRef> {
    const resource = await discovery.lookup(target.apiVersion, target.kind);
    if (!resource) {
      throw new TargetNotFoundError(
        target,
        `the API server does not serve kind ${target.kind} in ${target.apiVersion}`,
      );
    }
    const { group, version } = splitApiVersion(target.apiVersion);
    if (group === '') {
      // Core kinds (e.g. ReplicationController) live under /api/v1, which CustomObjectsApi cannot address.
      throw new TargetNotFoundError(target, 'core-group scale targets are not supported; use an apps/v1 workload');
    }
    return { group, version, plural: resource.name, namespace: target.namespace, name: target.name };
  }

  return {
    async applyHpa(hpa) {
      await objects.patch(hpa, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
    },

    async adoptHpa(hpa) {
      const { name, namespace } = hpa.metadata ?? {};
      if (name === undefined || namespace === undefined) throw new SluiceError('INVALID_HPA', 'the HPA needs a name');
      const current = await autoscaling.readNamespacedHorizontalPodAutoscaler({ name, namespace });
      const body = structuredClone(hpa);
      if (body.metadata !== undefined && current.metadata?.resourceVersion !== undefined) {
        body.metadata.resourceVersion = current.metadata.resourceVersion;
      }
      await autoscaling.replaceNamespacedHorizontalPodAutoscaler({
        name,
        namespace,
        body,
        fieldManager: FIELD_MANAGER,
      });
    },

    async setFinalizers(ref, finalizers, resourceVersion) {
      await custom.patchNamespacedCustomObject(
        {
          ...ref,
          body: {
            metadata: { finalizers: [...finalizers], ...(resourceVersion === undefined ? {} : { resourceVersion }) },
          },
        },
        mergePatch,
      );
    },

    async deleteHpa(namespace, name) {
      try {
        await objects.delete({
          apiVersion: 'autoscaling/v2',
          kind: 'HorizontalPodAutoscaler',
          metadata: { name, namespace },
        });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    },

    async patchStatus(ref, status, resourceVersion) {
      const metadata = resourceVersion === undefined ? {} : { metadata: { resourceVersion } };
      await custom.patchNamespacedCustomObjectStatus({ ...ref, body: { ...metadata, status } }, mergePatch);
    },

    async readScale(target) {
      const cached = workloads?.get(target);
      if (cached !== undefined) {
        return { replicas: cached.replicas, statusReplicas: cached.statusReplicas, resource: cached.resource };
      }
      const ref = await scaleRef(target);
      let scale: ScaleObject;
      try {
        scale = (await custom.getNamespacedCustomObjectScale(ref)) as ScaleObject;
      } catch (err) {
        if (isNotFound(err)) throw new TargetNotFoundError(target, 'not found', { cause: err });
        throw err;
      }
      return {
        replicas: scale.spec?.replicas ?? 0,
        statusReplicas: scale.status?.replicas ?? 0,
        resource: ref.plural,
      };
    },

    async writeScale(target, replicas) {
      const ref = await scaleRef(target);
      await custom.patchNamespacedCustomObjectScale({ ...ref, body: { spec: { replicas } } }, mergePatch);
    },

    async readReadyReplicas(target) {
      const cached = workloads?.get(target);
      if (cached !== undefined) return cached.readyReplicas;
      const ref = await scaleRef(target);
      const object = (await custom.getNamespacedCustomObject(ref)) as { status?: { readyReplicas?: unknown } };
      const ready = object.status?.readyReplicas;
      if (typeof ready === 'number') return ready;
      // apps/v1 workloads omit readyReplicas at 0.
      return ref.group === 'apps' ? 0 : undefined;
    },
  };
}

/** The scalers' view of the cluster: ready endpoints of a Service port, from its EndpointSlices. */
export function createClusterPort(kc: KubeConfig): ClusterPort {
  const core = apiClient(kc, CoreV1Api);
  const discovery = apiClient(kc, DiscoveryV1Api);
  return {
    async readyEndpoints(namespace, service, port) {
      let svc;
      try {
        svc = await core.readNamespacedService({ name: service, namespace });
      } catch (cause) {
        throw new ScalerError(`cannot read Service ${namespace}/${service}`, { cause });
      }
      const wanted = svc.spec?.ports?.find((p) => p.name === port || String(p.port) === port);
      if (!wanted) throw new ScalerError(`Service ${namespace}/${service} has no port "${port}"`);
      let slices;
      try {
        slices = await discovery.listNamespacedEndpointSlice({
          namespace,
          labelSelector: `kubernetes.io/service-name=${service}`,
        });
      } catch (cause) {
        throw new ScalerError(`cannot list the EndpointSlices of Service ${namespace}/${service}`, { cause });
      }
      // A dual-stack Service has one slice per address family for the same pods: read one family only (the
      // Service's primary), or every pod would be counted twice.
      const family = svc.spec?.ipFamilies?.[0] ?? 'IPv4';
      const found = new Map<string, { address: string; port: number }>();
      for (const slice of slices.items) {
        if (slice.addressType !== family) continue;
        // The slice's port carries the Service port's name (empty for a single unnamed port).
        const slicePort = slice.ports?.find((p) => (p.name ?? '') === (wanted.name ?? ''))?.port;
        if (slicePort === undefined) continue;
        for (const endpoint of slice.endpoints ?? []) {
          if (endpoint.conditions?.ready === false) continue;
          const address = endpoint.addresses[0];
          if (address !== undefined) found.set(`${address}:${slicePort}`, { address, port: slicePort });
        }
      }
      return [...found.values()];
    },
  };
}

/** The Lease sluice's replicas elect a leader on (leader.ts), over CoordinationV1Api. */
export function createLeasePort(kc: KubeConfig, namespace: string, name: string): LeasePort {
  // Its own connections: a renewal never waits behind reconcile traffic (kube-client.ts).
  const api = apiClient(kc, CoordinationV1Api, undefined, 'leader-election');
  // The client declares MicroTime as a Date but hands back the wire string: take either, as the server wrote it.
  const text = (time: unknown): string | undefined =>
    time instanceof Date ? time.toISOString() : typeof time === 'string' ? time : undefined;
  const toRecord = (lease: V1Lease): LeaseRecord => ({
    holderIdentity: lease.spec?.holderIdentity,
    leaseDurationSeconds: lease.spec?.leaseDurationSeconds,
    acquireTime: text(lease.spec?.acquireTime),
    renewTime: text(lease.spec?.renewTime),
    leaseTransitions: lease.spec?.leaseTransitions,
    resourceVersion: lease.metadata?.resourceVersion,
  });
  const micro = (time: string | undefined) => (time === undefined ? undefined : new V1MicroTime(Date.parse(time)));
  const body = (record: Omit<LeaseRecord, 'resourceVersion'>, resourceVersion?: string): V1Lease => {
    const acquireTime = micro(record.acquireTime);
    const renewTime = micro(record.renewTime);
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name, namespace, ...(resourceVersion === undefined ? {} : { resourceVersion }) },
      spec: {
        ...(record.holderIdentity === undefined ? {} : { holderIdentity: record.holderIdentity }),
        ...(record.leaseDurationSeconds === undefined ? {} : { leaseDurationSeconds: record.leaseDurationSeconds }),
        ...(acquireTime === undefined ? {} : { acquireTime }),
        ...(renewTime === undefined ? {} : { renewTime }),
        ...(record.leaseTransitions === undefined ? {} : { leaseTransitions: record.leaseTransitions }),
      },
    };
  };
  return {
    async get() {
      try {
        return toRecord(await api.readNamespacedLease({ name, namespace }));
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async create(record) {
      await api.createNamespacedLease({ namespace, body: body(record) });
    },
    async update(record) {
      await api.replaceNamespacedLease({ name, namespace, body: body(record, record.resourceVersion) });
    },
  };
}

const isConflict = (err: unknown): boolean => err instanceof ApiException && err.code === 409;

/**
 * The self-managed certificates' Secret (certificate-manager.ts): get, create and replace by name, nothing listed
 * (deploy/rbac.yaml: Role sluice-certificates). A replace carries the resourceVersion read, so a concurrent write
 * is a 409, never a silent overwrite.
 */
export function createCertificateSecretPort(kc: KubeConfig, namespace: string, name: string): CertificateSecretPort {
  const api = apiClient(kc, CoreV1Api);
  const encode = (data: Readonly<Record<string, string>>) =>
    Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
  const body = (
    secret: { data: Readonly<Record<string, string>>; annotations: Readonly<Record<string, string>> },
    resourceVersion?: string,
  ) => ({
    apiVersion: 'v1',
    kind: 'Secret',
    // kubernetes.io/tls: `kubectl get secret` shows what it is; the type requires tls.crt and tls.key, allows more.
    type: 'kubernetes.io/tls',
    metadata: {
      name,
      namespace,
      labels: { 'app.kubernetes.io/name': 'sluice', 'app.kubernetes.io/managed-by': FIELD_MANAGER },
      annotations: { ...secret.annotations },
      ...(resourceVersion === undefined ? {} : { resourceVersion }),
    },
    data: encode(secret.data),
  });
  return {
    async read() {
      try {
        const secret = await api.readNamespacedSecret({ name, namespace });
        return {
          data: Object.fromEntries(
            Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]),
          ),
          annotations: secret.metadata?.annotations ?? {},
          resourceVersion: secret.metadata?.resourceVersion,
        };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async create(secret) {
      try {
        await api.createNamespacedSecret({ namespace, body: body(secret) });
        return 'created';
      } catch (err) {
        if (isConflict(err)) return 'exists';
        throw err;
      }
    },
    async update(secret) {
      try {
        await api.replaceNamespacedSecret({ name, namespace, body: body(secret, secret.resourceVersion) });
        return 'updated';
      } catch (err) {
        if (isConflict(err)) return 'conflict';
        throw err;
      }
    },
  };
}

/** The caBundle of APIService `name`: get and a merge patch of `spec.caBundle` (deploy/rbac.yaml, by name). */
export function createCaBundlePort(kc: KubeConfig, name: string): CaBundlePort {
  const api = apiClient(kc, ApiregistrationV1Api);
  return {
    async read() {
      try {
        const service = await api.readAPIService({ name });
        return Buffer.from(service.spec?.caBundle ?? '', 'base64').toString('utf8');
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    async write(bundle) {
      await api.patchAPIService(
        { name, body: { spec: { caBundle: Buffer.from(bundle).toString('base64') } }, fieldManager: FIELD_MANAGER },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    },
  };
}
