// In-memory ports for operator tests: a KubePort whose replica count the test controls and which records every call,
// an EventRecorder that records, and a PollerSummary builder.
import type { V2HorizontalPodAutoscaler } from '@kubernetes/client-node';
import type { EventRecorder, EventType, ObjectReference } from '../../src/operator/events.ts';
import type { ExecutorSettings } from '../../src/operator/executor.ts';
import type { KubePort, ObjectRef, ScaleState, ScaleTarget } from '../../src/operator/kube.ts';
import type { PollerSummary } from '../../src/operator/poller.ts';

export interface RecordedEvent {
  readonly type: EventType;
  readonly reason: string;
  readonly note: string;
  readonly regarding: ObjectReference;
}

export type RecordingEvents = EventRecorder & {
  readonly events: RecordedEvent[];
  reasons(): string[];
};

export function recordingEvents(): RecordingEvents {
  const events: RecordedEvent[] = [];
  return {
    events,
    emit(regarding, type, reason, note) {
      events.push({ type, reason, note, regarding });
    },
    reasons: () => events.map((e) => e.reason),
  };
}

/** One call to the MemoryKube, in order. */
export type KubeCall =
  | { readonly op: 'applyHpa'; readonly hpa: V2HorizontalPodAutoscaler }
  | { readonly op: 'adoptHpa'; readonly hpa: V2HorizontalPodAutoscaler }
  | {
      readonly op: 'setFinalizers';
      readonly ref: ObjectRef;
      readonly finalizers: readonly string[];
      readonly resourceVersion: string | undefined;
    }
  | { readonly op: 'deleteHpa'; readonly namespace: string; readonly name: string }
  | {
      readonly op: 'patchStatus';
      readonly ref: ObjectRef;
      readonly status: Record<string, unknown>;
      readonly resourceVersion: string | undefined;
    }
  | { readonly op: 'readScale'; readonly target: ScaleTarget }
  | { readonly op: 'writeScale'; readonly target: ScaleTarget; readonly replicas: number }
  | { readonly op: 'readReadyReplicas'; readonly target: ScaleTarget };

/**
 * A KubePort in memory. `replicas` is the target's spec.replicas; every call is appended to `calls`. Each method can
 * be replaced by a test (e.g. `kube.onReadScale = () => Promise.reject(...)`) through the `on…` hooks, which run
 * after the call is recorded.
 */
export class MemoryKube implements KubePort {
  replicas = 0;
  readyReplicas: number | undefined = undefined;
  resource = 'deployments';
  readonly calls: KubeCall[] = [];
  onApplyHpa: ((hpa: V2HorizontalPodAutoscaler) => Promise<void>) | undefined;
  onAdoptHpa: ((hpa: V2HorizontalPodAutoscaler) => Promise<void>) | undefined;
  onSetFinalizers:
    ((ref: ObjectRef, finalizers: readonly string[], resourceVersion: string | undefined) => Promise<void>) | undefined;
  onPatchStatus:
    | ((ref: ObjectRef, status: Record<string, unknown>, resourceVersion: string | undefined) => Promise<void>)
    | undefined;
  onReadScale: ((target: ScaleTarget) => Promise<ScaleState>) | undefined;
  onWriteScale: ((target: ScaleTarget, replicas: number) => Promise<void>) | undefined;

  ops(): string[] {
    return this.calls.map((c) => c.op);
  }

  of<Op extends KubeCall['op']>(op: Op): Extract<KubeCall, { op: Op }>[] {
    return this.calls.filter((c): c is Extract<KubeCall, { op: Op }> => c.op === op);
  }

  /** The replica counts written, in order. */
  writes(): number[] {
    return this.of('writeScale').map((c) => c.replicas);
  }

  async applyHpa(hpa: V2HorizontalPodAutoscaler): Promise<void> {
    this.calls.push({ op: 'applyHpa', hpa });
    await this.onApplyHpa?.(hpa);
  }

  async adoptHpa(hpa: V2HorizontalPodAutoscaler): Promise<void> {
    this.calls.push({ op: 'adoptHpa', hpa });
    await this.onAdoptHpa?.(hpa);
  }

  async setFinalizers(
    ref: ObjectRef,
    finalizers: readonly string[],
    resourceVersion: string | undefined,
  ): Promise<void> {
    this.calls.push({ op: 'setFinalizers', ref, finalizers: [...finalizers], resourceVersion });
    await this.onSetFinalizers?.(ref, finalizers, resourceVersion);
  }

  deleteHpa(namespace: string, name: string): Promise<void> {
    this.calls.push({ op: 'deleteHpa', namespace, name });
    return Promise.resolve();
  }

  async patchStatus(
    ref: ObjectRef,
    status: Record<string, unknown>,
    resourceVersion: string | undefined,
  ): Promise<void> {
    this.calls.push({ op: 'patchStatus', ref, status, resourceVersion });
    await this.onPatchStatus?.(ref, status, resourceVersion);
  }

  async readScale(target: ScaleTarget): Promise<ScaleState> {
    this.calls.push({ op: 'readScale', target });
    if (this.onReadScale) return this.onReadScale(target);
    return { replicas: this.replicas, statusReplicas: this.replicas, resource: this.resource };
  }

  async writeScale(target: ScaleTarget, replicas: number): Promise<void> {
    this.calls.push({ op: 'writeScale', target, replicas });
    if (this.onWriteScale) await this.onWriteScale(target, replicas);
    this.replicas = replicas;
  }

  readReadyReplicas(target: ScaleTarget): Promise<number | undefined> {
    this.calls.push({ op: 'readReadyReplicas', target });
    return Promise.resolve(this.readyReplicas);
  }
}

/** A PollerSummary: every trigger read, nothing active, nothing failing, unless `fields` say otherwise. */
export function pollerSummary(fields: Partial<PollerSummary> = {}): PollerSummary {
  return {
    ready: true,
    active: false,
    anyError: false,
    allError: false,
    fallbackActive: false,
    fallbackReplicas: undefined,
    activeMetrics: [],
    triggers: [],
    ...fields,
  };
}

/**
 * An executor's settings for `ref`, scaling the Deployment of the same name in its namespace between 0 and 10 with
 * KEDA's defaults (pollingInterval 30, cooldownPeriod 300), created a day before `now`.
 */
export function executorSettings(
  ref: ObjectReference,
  now: Date,
  overrides: Partial<ExecutorSettings> = {},
): ExecutorSettings {
  return {
    ref,
    target: { namespace: ref.namespace, apiVersion: 'apps/v1', kind: 'Deployment', name: ref.name },
    targetKind: 'apps/v1.Deployment',
    pollingIntervalS: 30,
    cooldownPeriodS: 300,
    initialCooldownPeriodS: 0,
    minReplicaCount: 0,
    maxReplicaCount: 10,
    idleReplicaCount: undefined,
    hasFallback: false,
    createdAt: new Date(now.getTime() - 86_400_000),
    pausedScaleIn: false,
    pausedScaleOut: false,
    forceActivation: false,
    alwaysActive: false,
    ...overrides,
  };
}
