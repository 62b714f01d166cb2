/**
 * What /metrics reads at scrape time, bound to the parts that already know it: the ScaledObject cache (which objects
 * exist, their conditions), the scaling registry (what each poller last saw) and the ReaderHub (read timings, circuit
 * breakers). Nothing here runs on the read or reconcile paths.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { RuntimeSnapshot } from '../operator/scaling-registry.ts';
import type { BreakerState } from '../scalers/breaker.ts';
import type { SourceTiming } from '../scalers/readers.ts';
import type { ConditionView, OwnMetricsSources, ScaledObjectView, TriggerView } from './own-metrics.ts';

export interface MetricsSourceDeps {
  /** The ScaledObject cache (the controller's informer). */
  readonly scaledObjects: { list(): readonly KubernetesObject[] };
  /** The scaling registry: what runs for a key `namespace/name`. */
  readonly runtime: { snapshot(key: string): RuntimeSnapshot | undefined };
  /** The ReaderHub. */
  readonly hub: {
    timing(key: string): SourceTiming | undefined;
    breakers(): Iterable<{ readonly describe: string; readonly state: BreakerState }>;
  };
  readonly leading: () => boolean;
  readonly queueDepth: () => number;
  readonly kubeRequests: () => ReadonlyMap<string, number>;
}

export function ownMetricsSources(deps: MetricsSourceDeps): OwnMetricsSources {
  return {
    *scaledObjects() {
      for (const so of deps.scaledObjects.list()) {
        const view = viewOf(so, deps);
        if (view !== undefined) yield view;
      }
    },
    breakers: () => deps.hub.breakers(),
    leading: deps.leading,
    queueDepth: deps.queueDepth,
    kubeRequests: deps.kubeRequests,
  };
}

function viewOf(so: KubernetesObject, deps: MetricsSourceDeps): ScaledObjectView | undefined {
  const { namespace, name } = so.metadata ?? {};
  if (namespace === undefined || name === undefined) return undefined;
  const snapshot = deps.runtime.snapshot(`${namespace}/${name}`);
  return {
    namespace,
    name,
    conditions: conditionsOf(so),
    running:
      snapshot === undefined
        ? undefined
        : {
            fallbackActive: snapshot.poller.fallbackActive,
            triggers: snapshot.poller.triggers.map((t): TriggerView => {
              const timing = deps.hub.timing(t.sourceKey);
              return {
                index: t.index,
                type: t.type,
                metricName: t.metricName,
                value: t.error === undefined ? t.value : undefined,
                active: t.active,
                errors: t.errors,
                latencySeconds: seconds(timing?.lastDurationMs),
                loopLagSeconds: seconds(timing?.lagMs),
              };
            }),
          },
  };
}

function seconds(ms: number | undefined): number | undefined {
  return ms === undefined ? undefined : ms / 1000;
}

/** status.conditions as written (type and status only: messages may quote errors and are no label). */
function conditionsOf(so: KubernetesObject): ConditionView[] {
  const conditions = (so as { status?: { conditions?: unknown } }).status?.conditions;
  if (!Array.isArray(conditions)) return [];
  return conditions.flatMap((c: unknown) => {
    const { type, status } = (c ?? {}) as { type?: unknown; status?: unknown };
    return typeof type === 'string' && typeof status === 'string' ? [{ type, status }] : [];
  });
}
