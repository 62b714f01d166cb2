// Which informer updates queue a reconcile: relevantSignature() must change for everything reconcile reads (spec via
// generation, labels, annotations — pause annotations do not bump the generation —, finalizers, deletion, owners) and
// stay the same for status-only updates (sluice's own status writes, the HPA controller's status every sync).
import { describe, expect, test } from 'vitest';
import type { KubernetesObject } from '@kubernetes/client-node';
import { relevantSignature } from '../../../src/operator/controller.ts';

interface Plain {
  apiVersion: string;
  kind: string;
  metadata: Record<string, unknown>;
  spec: unknown;
  status: unknown;
}

const base: Plain = {
  apiVersion: 'autoscaling/v2',
  kind: 'HorizontalPodAutoscaler',
  metadata: {
    name: 'sluice-hpa-a',
    namespace: 'ns',
    uid: 'u1',
    generation: 3,
    resourceVersion: '100',
    labels: { 'scaledobject.sluice.dev/name': 'a' },
    annotations: { note: 'x' },
    managedFields: [{ manager: 'sluice-operator' }],
  },
  spec: { maxReplicas: 4 },
  status: { currentReplicas: 1, desiredReplicas: 1 },
};

const rows: { comment: string; change: (o: Plain) => Plain; queues: boolean }[] = [
  {
    comment: 'status only (and a new resourceVersion, managedFields): no reconcile',
    change: (o) => ({
      ...o,
      metadata: { ...o.metadata, resourceVersion: '101', managedFields: [] },
      status: { currentReplicas: 2, desiredReplicas: 3 },
    }),
    queues: false,
  },
  {
    comment: 'a spec change bumps the generation',
    change: (o) => ({ ...o, metadata: { ...o.metadata, generation: 4 } }),
    queues: true,
  },
  {
    comment: 'an annotation (pause annotations do not bump the generation)',
    change: (o) => ({ ...o, metadata: { ...o.metadata, annotations: { 'autoscaling.keda.sh/paused': 'true' } } }),
    queues: true,
  },
  { comment: 'a label', change: (o) => ({ ...o, metadata: { ...o.metadata, labels: {} } }), queues: true },
  { comment: 'a finalizer', change: (o) => ({ ...o, metadata: { ...o.metadata, finalizers: ['f'] } }), queues: true },
  {
    comment: 'deletion',
    change: (o) => ({ ...o, metadata: { ...o.metadata, deletionTimestamp: new Date('2026-01-01T00:00:00Z') } }),
    queues: true,
  },
  {
    comment: 'an owner reference',
    change: (o) => ({
      ...o,
      metadata: { ...o.metadata, ownerReferences: [{ apiVersion: 'v1', kind: 'X', name: 'x', uid: 'x' }] },
    }),
    queues: true,
  },
];

/** The informer hands plain JSON objects; the client-node type only describes them. */
const signed = (o: Plain): KubernetesObject => o;

describe('relevantSignature', () => {
  test.each(rows)('$comment', ({ change, queues }) => {
    expect(relevantSignature(signed(change(base))) !== relevantSignature(signed(base))).toBe(queues);
  });

  test('an object without a generation falls back to its spec', () => {
    const metadata = { ...base.metadata };
    delete metadata['generation'];
    const noGeneration = { ...base, metadata };
    expect(relevantSignature(signed({ ...noGeneration, spec: { maxReplicas: 5 } }))).not.toBe(
      relevantSignature(signed(noGeneration)),
    );
  });
});
