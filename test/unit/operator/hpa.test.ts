import { describe, expect, it, test } from 'vitest';
import { ValidationError } from '../../../src/errors.ts';
import {
  desiredHpa,
  hpaUpToDate,
  withDesiredDigest,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  type DesiredHpa,
  type HpaMetric,
} from '../../../src/operator/hpa.ts';
import { parseAnnotations } from '../../../src/operator/annotations.ts';
import { parseScaledObject, type ScaledObject } from '../../../src/operator/scaled-object.ts';
import type { ResourceMetric } from '../../../src/scalers/cpu-memory.ts';

/** KEDA's worked example (docs/keda-compatibility.md#worked-example) with sluice's group, label and HPA prefix. */
function ordersConsumer(spec: Record<string, unknown> = {}, metadata: Record<string, unknown> = {}): ScaledObject {
  return parseScaledObject({
    apiVersion: 'sluice.dev/v1alpha1',
    kind: 'ScaledObject',
    metadata: { name: 'orders-consumer', namespace: 'shop', uid: 'c0ffee-uid', ...metadata },
    spec: {
      scaleTargetRef: { name: 'orders' },
      minReplicaCount: 0,
      maxReplicaCount: 10,
      triggers: [
        {
          type: 'rabbitmq',
          authenticationRef: { name: 'rabbitmq-auth' },
          metadata: { queueName: 'orders', mode: 'QueueLength', value: '20', activationValue: '5', protocol: 'http' },
        },
      ],
      ...spec,
    },
  });
}

const orders: HpaMetric = { metricName: 's0-rabbitmq-orders', target: 20, metricType: 'AverageValue' };

describe('desiredHpa', () => {
  test("KEDA's worked example, adapted to sluice names", () => {
    expect(desiredHpa({ scaledObject: ordersConsumer(), metrics: [orders] })).toStrictEqual({
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: {
        name: 'sluice-hpa-orders-consumer',
        namespace: 'shop',
        labels: {
          'app.kubernetes.io/name': 'sluice-hpa-orders-consumer',
          'app.kubernetes.io/part-of': 'orders-consumer',
          'app.kubernetes.io/managed-by': 'sluice-operator',
          'scaledobject.sluice.dev/name': 'orders-consumer',
        },
        ownerReferences: [
          {
            apiVersion: 'sluice.dev/v1alpha1',
            kind: 'ScaledObject',
            name: 'orders-consumer',
            uid: 'c0ffee-uid',
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      spec: {
        minReplicas: 1,
        maxReplicas: 10,
        scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'orders' },
        metrics: [
          {
            type: 'External',
            external: {
              metric: {
                name: 's0-rabbitmq-orders',
                selector: { matchLabels: { 'scaledobject.sluice.dev/name': 'orders-consumer' } },
              },
              target: { type: 'AverageValue', averageValue: '20' },
            },
          },
        ],
      },
    });
  });

  test('exports the managed-by label the controller selects on', () => {
    expect([MANAGED_BY_LABEL, MANAGED_BY]).toStrictEqual(['app.kubernetes.io/managed-by', 'sluice-operator']);
  });

  const rows: {
    comment: string;
    so: ScaledObject;
    metrics?: HpaMetric[];
    check: (hpa: DesiredHpa) => void;
  }[] = [
    {
      comment: 'minReplicas is minReplicaCount when above 0',
      so: ordersConsumer({ minReplicaCount: 3 }),
      check: (hpa) => {
        expect(hpa.spec.minReplicas).toBe(3);
      },
    },
    {
      comment: 'maxReplicas defaults to 100',
      so: ordersConsumer({ maxReplicaCount: undefined }),
      check: (hpa) => {
        expect(hpa.spec.maxReplicas).toBe(100);
      },
    },
    {
      comment: 'custom HPA name from advanced.horizontalPodAutoscalerConfig.name, also in app.kubernetes.io/name',
      so: ordersConsumer({ advanced: { horizontalPodAutoscalerConfig: { name: 'orders-autoscaler' } } }),
      check: (hpa) => {
        expect(hpa.metadata.name).toBe('orders-autoscaler');
        expect(hpa.metadata.labels['app.kubernetes.io/name']).toBe('orders-autoscaler');
      },
    },
    {
      comment: 'scaleTargetRef apiVersion and kind are kept',
      so: ordersConsumer({ scaleTargetRef: { name: 'db', apiVersion: 'apps/v1', kind: 'StatefulSet' } }),
      check: (hpa) => {
        expect(hpa.spec.scaleTargetRef).toStrictEqual({ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db' });
      },
    },
    {
      comment: 'behavior is copied verbatim, including fields sluice does not model',
      so: ordersConsumer({
        advanced: {
          horizontalPodAutoscalerConfig: {
            behavior: {
              scaleDown: {
                stabilizationWindowSeconds: 60,
                policies: [{ type: 'Percent', value: 50, periodSeconds: 30 }],
                tolerance: '0.05',
              },
              scaleUp: { selectPolicy: 'Disabled' },
            },
          },
        },
      }),
      check: (hpa) => {
        expect(hpa.spec.behavior).toStrictEqual({
          scaleDown: {
            stabilizationWindowSeconds: 60,
            policies: [{ type: 'Percent', value: 50, periodSeconds: 30 }],
            tolerance: '0.05',
          },
          scaleUp: { selectPolicy: 'Disabled' },
        });
      },
    },
    {
      comment: 'no behavior key without advanced behavior (server-side apply would own an empty one)',
      so: ordersConsumer({ advanced: { restoreToOriginalReplicaCount: true } }),
      check: (hpa) => {
        expect(hpa.spec).not.toHaveProperty('behavior');
      },
    },
    {
      comment: 'Value metric type gives target.value',
      so: ordersConsumer(),
      metrics: [{ metricName: 's0-prometheus', target: 100, metricType: 'Value' }],
      check: (hpa) => {
        expect(hpa.spec.metrics[0]?.external?.target).toStrictEqual({ type: 'Value', value: '100' });
      },
    },
    {
      comment: 'fractional targets are canonical DecimalSI quantities',
      so: ordersConsumer(),
      metrics: [
        { metricName: 's0-a', target: 1.5, metricType: 'AverageValue' },
        { metricName: 's1-b', target: 0.25, metricType: 'Value' },
        { metricName: 's2-c', target: 3000, metricType: 'AverageValue' },
      ],
      check: (hpa) => {
        expect(hpa.spec.metrics.map((m) => m.external?.target)).toStrictEqual([
          { type: 'AverageValue', averageValue: '1500m' },
          { type: 'Value', value: '250m' },
          { type: 'AverageValue', averageValue: '3k' },
        ]);
      },
    },
    {
      comment: 'one External metric per trigger, in trigger order, all selected by the ScaledObject label',
      so: ordersConsumer(),
      metrics: [
        { metricName: 's0-rabbitmq-orders', target: 20, metricType: 'AverageValue' },
        { metricName: 's1-aws-sqs-queue-jobs', target: 5, metricType: 'AverageValue' },
      ],
      check: (hpa) => {
        expect(hpa.spec.metrics.map((m) => [m.type, m.external?.metric.name])).toStrictEqual([
          ['External', 's0-rabbitmq-orders'],
          ['External', 's1-aws-sqs-queue-jobs'],
        ]);
        for (const m of hpa.spec.metrics) {
          expect(m.external?.metric.selector).toStrictEqual({
            matchLabels: { 'scaledobject.sluice.dev/name': 'orders-consumer' },
          });
        }
      },
    },
    {
      comment: 'the ScaledObject labels are copied and may override name/part-of, not managed-by or the SO label',
      so: ordersConsumer(
        {},
        {
          labels: {
            team: 'payments',
            'app.kubernetes.io/name': 'orders',
            'app.kubernetes.io/managed-by': 'helm',
            'scaledobject.sluice.dev/name': 'someone-else',
          },
        },
      ),
      check: (hpa) => {
        expect(hpa.metadata.labels).toStrictEqual({
          'app.kubernetes.io/name': 'orders',
          'app.kubernetes.io/part-of': 'orders-consumer',
          team: 'payments',
          'app.kubernetes.io/managed-by': 'sluice-operator',
          'scaledobject.sluice.dev/name': 'orders-consumer',
        });
      },
    },
  ];
  test.each(rows)('$comment', ({ so, metrics, check }) => {
    check(desiredHpa({ scaledObject: so, metrics: metrics ?? [orders] }));
  });

  test('the same input gives the same object (stable for server-side apply)', () => {
    const so = ordersConsumer({ minReplicaCount: 2 }, { labels: { b: '2', a: '1' } });
    expect(JSON.stringify(desiredHpa({ scaledObject: so, metrics: [orders] }))).toBe(
      JSON.stringify(desiredHpa({ scaledObject: structuredClone(so), metrics: [orders] })),
    );
  });

  test('behavior is copied, not shared', () => {
    const so = ordersConsumer({
      advanced: { horizontalPodAutoscalerConfig: { behavior: { scaleUp: { selectPolicy: 'Max' } } } },
    });
    const hpa = desiredHpa({ scaledObject: so, metrics: [orders] });
    expect(hpa.spec.behavior).not.toBe(so.spec.advanced?.horizontalPodAutoscalerConfig?.behavior);
  });

  const errors: { comment: string; so: ScaledObject; metrics: HpaMetric[]; field: string; message: string }[] = [
    {
      comment: 'no namespace',
      so: { ...ordersConsumer(), metadata: { name: 'orders-consumer', uid: 'u' } },
      metrics: [orders],
      field: 'metadata.namespace',
      message: 'is required',
    },
    {
      comment: 'no uid (the ownerReference needs it)',
      so: { ...ordersConsumer(), metadata: { name: 'orders-consumer', namespace: 'shop' } },
      metrics: [orders],
      field: 'metadata.uid',
      message: 'is required to own the HPA',
    },
    {
      comment: 'no metrics (KEDA message)',
      so: ordersConsumer(),
      metrics: [],
      field: 'spec.triggers',
      message: 'no metric specs returned from scalers for ScaledObject shop/orders-consumer',
    },
    {
      comment: 'duplicate metric names (KEDA message), naming the second trigger',
      so: ordersConsumer(),
      metrics: [orders, { ...orders, metricName: 's1-x' }, { ...orders, metricName: 's1-x' }],
      field: 'spec.triggers[1]',
      message: 'metricName s1-x defined multiple times in ScaledObject orders-consumer',
    },
    {
      comment: 'target 0 (the HPA API rejects it)',
      so: ordersConsumer(),
      metrics: [{ ...orders, target: 0 }],
      field: 'spec.triggers[0]',
      message: 'the target of metric s0-rabbitmq-orders must be a number greater than 0',
    },
    {
      comment: 'target below the milli precision of the quantity',
      so: ordersConsumer(),
      metrics: [{ ...orders, metricName: 's2-x', target: 0.0001 }],
      field: 'spec.triggers[2]',
      message: 'got 0.0001',
    },
    {
      comment: 'target NaN',
      so: ordersConsumer(),
      metrics: [{ ...orders, target: Number.NaN }],
      field: 'spec.triggers[0]',
      message: 'got NaN',
    },
    {
      comment: 'target Infinity',
      so: ordersConsumer(),
      metrics: [{ ...orders, target: Infinity }],
      field: 'spec.triggers[0]',
      message: 'got Infinity',
    },
  ];
  test.each(errors)('rejects: $comment', ({ so, metrics, field, message }) => {
    let caught: unknown;
    try {
      desiredHpa({ scaledObject: so, metrics });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    expect((caught as ValidationError).field).toBe(field);
    expect((caught as ValidationError).message).toContain(message);
  });
});

describe('desiredHpa: cpu and memory (Resource and ContainerResource metrics)', () => {
  const cpu: ResourceMetric = {
    name: 'cpu',
    container: undefined,
    target: { type: 'Utilization', averageUtilization: 60 },
  };
  const memory: ResourceMetric = {
    name: 'memory',
    container: undefined,
    target: { type: 'AverageValue', averageValue: '256Mi' },
  };
  const appMemory: ResourceMetric = { ...memory, container: 'app' };
  const sidecarCpu: ResourceMetric = { ...cpu, container: 'sidecar' };

  test('a Resource metric: Utilization as averageUtilization', () => {
    const hpa = desiredHpa({ scaledObject: ordersConsumer(), metrics: [], resources: [cpu] });
    expect(hpa.spec.metrics).toStrictEqual([
      { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 60 } } },
    ]);
  });

  test('a ContainerResource metric: AverageValue as the Quantity written, for the container', () => {
    const hpa = desiredHpa({ scaledObject: ordersConsumer(), metrics: [], resources: [appMemory] });
    expect(hpa.spec.metrics).toStrictEqual([
      {
        type: 'ContainerResource',
        containerResource: {
          name: 'memory',
          container: 'app',
          target: { type: 'AverageValue', averageValue: '256Mi' },
        },
      },
    ]);
  });

  test('sorted as KEDA sorts them: ContainerResource < External < Resource, trigger order within a type', () => {
    const hpa = desiredHpa({
      scaledObject: ordersConsumer(),
      metrics: [orders, { metricName: 's3-prometheus', target: 5, metricType: 'Value' }],
      resources: [memory, appMemory, cpu, sidecarCpu],
    });
    expect(
      hpa.spec.metrics.map((m) => [
        m.type,
        m.external?.metric.name ?? m.resource?.name ?? `${m.containerResource?.name}/${m.containerResource?.container}`,
      ]),
    ).toStrictEqual([
      ['ContainerResource', 'memory/app'],
      ['ContainerResource', 'cpu/sidecar'],
      ['External', 's0-rabbitmq-orders'],
      ['External', 's3-prometheus'],
      ['Resource', 'memory'],
      ['Resource', 'cpu'],
    ]);
  });

  test('only cpu/memory triggers: no external metric needed', () => {
    const hpa = desiredHpa({
      scaledObject: ordersConsumer({ minReplicaCount: 1 }),
      metrics: [],
      resources: [cpu, memory],
    });
    expect(hpa.spec.metrics.map((m) => m.type)).toStrictEqual(['Resource', 'Resource']);
    expect(hpa.spec.minReplicas).toBe(1);
  });

  test('no external metric and no resource: the KEDA error', () => {
    expect(() => desiredHpa({ scaledObject: ordersConsumer(), metrics: [], resources: [] })).toThrow(
      'no metric specs returned from scalers for ScaledObject shop/orders-consumer',
    );
  });
});

describe('desiredHpa: scalingModifiers (one composite metric)', () => {
  const composite: HpaMetric = { metricName: 'composite-metric', target: 5, metricType: 'Value' };

  test('the only External metric is composite-metric, selected by the ScaledObject label', () => {
    const hpa = desiredHpa({ scaledObject: ordersConsumer(), metrics: [composite] });
    expect(hpa.spec.metrics).toStrictEqual([
      {
        type: 'External',
        external: {
          metric: {
            name: 'composite-metric',
            selector: { matchLabels: { 'scaledobject.sluice.dev/name': 'orders-consumer' } },
          },
          target: { type: 'Value', value: '5' },
        },
      },
    ]);
  });

  test('next to cpu triggers: between the ContainerResource and Resource metrics', () => {
    const hpa = desiredHpa({
      scaledObject: ordersConsumer(),
      metrics: [{ ...composite, metricType: 'AverageValue', target: 2.5 }],
      resources: [
        { name: 'cpu', container: undefined, target: { type: 'Utilization', averageUtilization: 60 } },
        { name: 'cpu', container: 'app', target: { type: 'Utilization', averageUtilization: 70 } },
      ],
    });
    expect(hpa.spec.metrics.map((m) => m.type)).toStrictEqual(['ContainerResource', 'External', 'Resource']);
    expect(hpa.spec.metrics[1]?.external?.target).toStrictEqual({ type: 'AverageValue', averageValue: '2500m' });
  });

  test('a composite target below the Quantity precision names spec.advanced.scalingModifiers.target', () => {
    let caught: unknown;
    try {
      desiredHpa({ scaledObject: ordersConsumer(), metrics: [{ ...composite, target: 0.0004 }] });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    expect((caught as ValidationError).field).toBe('spec.advanced.scalingModifiers.target');
    expect((caught as ValidationError).message).toContain('got 0.0004');
  });
});

describe('desiredHpa: annotations', () => {
  const behavior = {
    scaleDown: {
      stabilizationWindowSeconds: 60,
      selectPolicy: 'Max',
      policies: [{ type: 'Percent', value: 50, periodSeconds: 30 }],
    },
    scaleUp: { policies: [{ type: 'Pods', value: 4, periodSeconds: 15 }] },
  };
  const withBehavior = (annotations: Record<string, string>) =>
    ordersConsumer(
      { advanced: { horizontalPodAutoscalerConfig: { behavior: structuredClone(behavior) } } },
      { annotations },
    );

  const rows: { comment: string; so: ScaledObject; want: unknown }[] = [
    {
      comment: 'paused-scale-in without a behavior: scaleDown selectPolicy Disabled only',
      so: ordersConsumer({}, { annotations: { 'autoscaling.keda.sh/paused-scale-in': 'true' } }),
      want: { scaleDown: { selectPolicy: 'Disabled' } },
    },
    {
      comment: 'paused-scale-out without a behavior: scaleUp selectPolicy Disabled only',
      so: ordersConsumer({}, { annotations: { 'autoscaling.sluice.dev/paused-scale-out': 'true' } }),
      want: { scaleUp: { selectPolicy: 'Disabled' } },
    },
    {
      comment: 'both: both sides Disabled',
      so: ordersConsumer(
        {},
        {
          annotations: {
            'autoscaling.keda.sh/paused-scale-in': 'true',
            'autoscaling.keda.sh/paused-scale-out': 'true',
          },
        },
      ),
      want: { scaleDown: { selectPolicy: 'Disabled' }, scaleUp: { selectPolicy: 'Disabled' } },
    },
    {
      comment: "paused-scale-in merged into the user's behavior: the user's policies kept, selectPolicy replaced",
      so: withBehavior({ 'autoscaling.keda.sh/paused-scale-in': 'true' }),
      want: {
        scaleDown: {
          stabilizationWindowSeconds: 60,
          selectPolicy: 'Disabled',
          policies: [{ type: 'Percent', value: 50, periodSeconds: 30 }],
        },
        scaleUp: { policies: [{ type: 'Pods', value: 4, periodSeconds: 15 }] },
      },
    },
    {
      comment: "paused-scale-out merged into the user's behavior: scaleDown untouched",
      so: withBehavior({ 'autoscaling.keda.sh/paused-scale-out': 'true' }),
      want: {
        scaleDown: behavior.scaleDown,
        scaleUp: { policies: [{ type: 'Pods', value: 4, periodSeconds: 15 }], selectPolicy: 'Disabled' },
      },
    },
    {
      comment: 'the annotations set to "false": the user behavior verbatim',
      so: withBehavior({ 'autoscaling.keda.sh/paused-scale-in': 'false', 'autoscaling.keda.sh/paused-scale-out': 'f' }),
      want: behavior,
    },
  ];
  test.each(rows)('$comment', ({ so, want }) => {
    const hpa = desiredHpa({
      scaledObject: so,
      metrics: [orders],
      annotations: parseAnnotations(so.metadata.annotations),
    });
    expect(hpa.spec.behavior).toStrictEqual(want);
  });

  test("the ScaledObject's behavior is not modified by the injection", () => {
    const so = withBehavior({ 'autoscaling.keda.sh/paused-scale-in': 'true' });
    desiredHpa({ scaledObject: so, metrics: [orders], annotations: parseAnnotations(so.metadata.annotations) });
    expect(so.spec.advanced?.horizontalPodAutoscalerConfig?.behavior).toStrictEqual(behavior);
  });

  test("the ScaledObject's annotations are copied onto the HPA, except kubectl's last-applied-configuration", () => {
    const annotations = {
      'kubectl.kubernetes.io/last-applied-configuration': '{"apiVersion":"sluice.dev/v1alpha1"}',
      'autoscaling.keda.sh/paused-scale-in': 'true',
      'example.com/owner': 'payments',
    };
    const so = ordersConsumer({}, { annotations });
    const hpa = desiredHpa({ scaledObject: so, metrics: [orders], annotations: parseAnnotations(annotations) });
    expect(hpa.metadata.annotations).toStrictEqual({
      'autoscaling.keda.sh/paused-scale-in': 'true',
      'example.com/owner': 'payments',
    });
  });

  test('no annotations key when only last-applied-configuration is there (server-side apply would own it)', () => {
    const so = ordersConsumer({}, { annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}' } });
    expect(desiredHpa({ scaledObject: so, metrics: [orders] }).metadata).not.toHaveProperty('annotations');
    expect(desiredHpa({ scaledObject: ordersConsumer(), metrics: [orders] }).metadata).not.toHaveProperty(
      'annotations',
    );
  });

  test('hpa-excluded-labels: those labels of the ScaledObject are not copied; sluice-set labels stay', () => {
    const annotations = {
      'scaledobject.keda.sh/hpa-excluded-labels': 'team, cost,app.kubernetes.io/name,scaledobject.sluice.dev/name',
    };
    const so = ordersConsumer(
      {},
      {
        annotations,
        labels: { team: 'payments', cost: 'c-42', tier: 'backend', 'app.kubernetes.io/name': 'orders' },
      },
    );
    const hpa = desiredHpa({ scaledObject: so, metrics: [orders], annotations: parseAnnotations(annotations) });
    expect(hpa.metadata.labels).toStrictEqual({
      // The default name label is sluice's own: only the ScaledObject's override of it is excluded.
      'app.kubernetes.io/name': 'sluice-hpa-orders-consumer',
      'app.kubernetes.io/part-of': 'orders-consumer',
      tier: 'backend',
      'app.kubernetes.io/managed-by': 'sluice-operator',
      'scaledobject.sluice.dev/name': 'orders-consumer',
    });
  });
});

describe('hpaUpToDate: a reconcile at rest writes no HPA', () => {
  const desired = withDesiredDigest(desiredHpa({ scaledObject: ordersConsumer(), metrics: [orders] }));
  /** What the informer holds after the apply: the server's fields, defaults and the HPA controller's status. */
  const stored = (): DesiredHpa => {
    const hpa = structuredClone(desired);
    Object.assign(hpa.metadata, { uid: 'u', resourceVersion: '9', generation: 2, creationTimestamp: new Date(0) });
    hpa.status = { currentReplicas: 3, desiredReplicas: 3 };
    return hpa;
  };
  const rows: { comment: string; change: (hpa: DesiredHpa) => void; upToDate: boolean }[] = [
    { comment: 'as applied, with server fields and a status', change: () => undefined, upToDate: true },
    {
      comment: 'a label someone else added',
      change: (h) => {
        h.metadata.labels['team'] = 'a';
      },
      upToDate: true,
    },
    {
      comment: 'a behavior someone else set (not a field sluice sets)',
      change: (h) => {
        h.spec.behavior = { scaleDown: { stabilizationWindowSeconds: 60 } };
      },
      upToDate: true,
    },
    {
      comment: 'maxReplicas changed by hand',
      change: (h) => {
        h.spec.maxReplicas = 99;
      },
      upToDate: false,
    },
    {
      comment: 'a metric removed by hand',
      change: (h) => {
        h.spec.metrics = [];
      },
      upToDate: false,
    },
    {
      comment: "sluice's label removed",
      change: (h) => {
        delete h.metadata.labels['app.kubernetes.io/managed-by'];
      },
      upToDate: false,
    },
    {
      comment: 'no digest (made by an older sluice, or by hand)',
      change: (h) => {
        delete h.metadata.annotations?.['sluice.dev/desired-digest'];
      },
      upToDate: false,
    },
    {
      comment: 'another digest (sluice wanted something else then, e.g. a field it no longer sets)',
      change: (h) => {
        h.metadata.annotations = { 'sluice.dev/desired-digest': 'f'.repeat(32) };
      },
      upToDate: false,
    },
  ];
  it.each(rows)('$comment → $upToDate', ({ change, upToDate }) => {
    const hpa = stored();
    change(hpa);
    expect(hpaUpToDate(desired, hpa)).toBe(upToDate);
  });

  it('not in the cache: apply', () => {
    expect(hpaUpToDate(desired, undefined)).toBe(false);
  });

  it('the digest depends on what sluice wants, not on the process', () => {
    const again = withDesiredDigest(structuredClone(desired));
    expect(again.metadata.annotations).toStrictEqual(desired.metadata.annotations);
    const other = structuredClone(desired);
    other.spec.maxReplicas = 11;
    expect(withDesiredDigest(other).metadata.annotations?.['sluice.dev/desired-digest']).not.toBe(
      desired.metadata.annotations?.['sluice.dev/desired-digest'],
    );
  });
});
