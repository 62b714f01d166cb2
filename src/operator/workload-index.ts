/**
 * Objects by the workload they target (namespace, group, kind, name), kept current from informer events: which
 * ScaledObjects and which HPAs act on one Deployment. One autoscaler per workload (ownership.ts) asks this on every
 * reconcile and on every event; scanning the namespace instead made both O(objects in the namespace), so a mass
 * create of N objects in one namespace cost O(N²).
 */
import type { KubernetesObject, V2HorizontalPodAutoscaler } from '@kubernetes/client-node';
import type { Workload } from './ownership.ts';

/** What one autoscaler per workload reads about a workload: who acts on it. */
export interface Targeting {
  readonly scaledObjects: readonly KubernetesObject[];
  readonly hpas: readonly V2HorizontalPodAutoscaler[];
}

function workloadKey(namespace: string, workload: Workload): string {
  // Kubernetes names and kinds hold no '/', and API groups no '/' either: the key is unambiguous.
  return `${namespace}/${workload.group}/${workload.kind}/${workload.name}`;
}

export class WorkloadIndex {
  /** workload key → keys (`namespace/name`) of the objects targeting it */
  readonly #byWorkload = new Map<string, Set<string>>();
  /** object key → its workload key and workload */
  readonly #byObject = new Map<string, { readonly key: string; readonly workload: Workload }>();

  /**
   * Records that the object `key` in `namespace` targets `workload` (moving it if it targeted another). Returns the
   * workload it targeted before, if that was a different one.
   */
  set(key: string, namespace: string, workload: Workload): Workload | undefined {
    const next = workloadKey(namespace, workload);
    const before = this.#byObject.get(key);
    if (before?.key === next) return undefined;
    if (before !== undefined) this.#remove(key, before.key);
    this.#byObject.set(key, { key: next, workload });
    let keys = this.#byWorkload.get(next);
    if (keys === undefined) {
      keys = new Set();
      this.#byWorkload.set(next, keys);
    }
    keys.add(key);
    return before?.workload;
  }

  /** Forgets the object `key`; returns the workload it targeted, if known. */
  delete(key: string): Workload | undefined {
    const before = this.#byObject.get(key);
    if (before === undefined) return undefined;
    this.#byObject.delete(key);
    this.#remove(key, before.key);
    return before.workload;
  }

  /** Keys of the objects of `namespace` that target `workload`. */
  keys(namespace: string, workload: Workload): readonly string[] {
    const keys = this.#byWorkload.get(workloadKey(namespace, workload));
    return keys === undefined ? [] : [...keys];
  }

  #remove(key: string, from: string): void {
    const keys = this.#byWorkload.get(from);
    keys?.delete(key);
    if (keys?.size === 0) this.#byWorkload.delete(from);
  }
}
