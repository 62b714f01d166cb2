/**
 * Secret and ConfigMap reads shared between reconciles for a few seconds.
 *
 * A resync reconciles every ScaledObject; when a thousand of them use one TriggerAuthentication, each read its Secret
 * again (a thousand GETs of one object in a few seconds, every 5 minutes). Here a read is answered from the last
 * answer for `ttlMs`, and concurrent reads of one object share one request. What is shared: the objects' data, as
 * the resolver reads it. What is not: a missing object and a failed read (both are asked again at once, so a Secret
 * created to fix a ScaledObject is seen by its next retry); TriggerAuthentications (their informer queues the
 * objects using one when it changes, and that reconcile must read the new one); Namespace labels (a label added to
 * allow a ClusterTriggerAuthentication is followed by an edit that must see it: the refusal is not retried); the
 * scale target's containers.
 *
 * Why not informers on Secrets, as the performance issue suggested: watching Secrets needs `list` and `watch` on
 * every Secret of the cluster (RBAC cannot limit either by name for objects it does not know in advance:
 * kedacore/keda#3081 is the complaint about exactly that), where sluice asks for `get` alone (docs/security.md). A
 * changed Secret is seen at the object's next reconcile (any change of it, or the resync), at most `ttlMs` later
 * than without this.
 */
import type { AuthPort } from './auth-resolver.ts';

export interface SharedReadsOptions {
  readonly ttlMs: number;
  readonly now?: () => number;
  /** At most this many answers are kept (the oldest go first). */
  readonly maxEntries?: number;
}

interface Entry<T> {
  readonly at: number;
  readonly value: Promise<T>;
}

/** `port` with its Secret and ConfigMap reads shared for `ttlMs` (see above). */
export function sharedReads(port: AuthPort, options: SharedReadsOptions): AuthPort {
  const now = options.now ?? Date.now;
  const maxEntries = options.maxEntries ?? 10_000;
  const entries = new Map<string, Entry<unknown>>();

  function shared<T>(key: string, read: () => Promise<T | undefined>): Promise<T | undefined> {
    const at = now();
    const cached = entries.get(key) as Entry<T | undefined> | undefined;
    if (cached !== undefined && at - cached.at < options.ttlMs) return cached.value;
    const value = read();
    entries.delete(key);
    entries.set(key, { at, value });
    // Only an object that exists is kept: a miss or a failure is asked again by the next read.
    value.then(
      (result) => {
        if (result === undefined && entries.get(key)?.value === value) entries.delete(key);
      },
      () => {
        if (entries.get(key)?.value === value) entries.delete(key);
      },
    );
    while (entries.size > maxEntries) {
      const oldest = entries.keys().next().value;
      if (oldest === undefined) break;
      entries.delete(oldest);
    }
    return value;
  }

  return {
    readSecret: (namespace, name) => shared(`secret/${namespace}/${name}`, () => port.readSecret(namespace, name)),
    readConfigMap: (namespace, name) =>
      shared(`configmap/${namespace}/${name}`, () => port.readConfigMap(namespace, name)),
    readNamespaceLabels: (name) => port.readNamespaceLabels(name),
    readTriggerAuthentication: (namespace, name) => port.readTriggerAuthentication(namespace, name),
    readClusterTriggerAuthentication: (name) => port.readClusterTriggerAuthentication(name),
    readScaleTarget: (namespace, apiVersion, kind, name) => port.readScaleTarget(namespace, apiVersion, kind, name),
  };
}
