import { describe, expect, test } from 'vitest';
import { ValidationError } from '../../../src/errors.ts';
import {
  API_VERSION,
  GROUP,
  HPA_NAME_PREFIX,
  hpaNameFor,
  KIND,
  parseScaledObject,
  PLURAL,
  SCALED_OBJECT_LABEL,
  VERSION,
} from '../../../src/operator/scaled-object.ts';

/** KEDA's worked example (docs/keda-compatibility.md#worked-example), with the sluice apiVersion. */
function ordersConsumer(): Fixture {
  return {
    apiVersion: 'sluice.dev/v1alpha1',
    kind: 'ScaledObject',
    metadata: { name: 'orders-consumer', namespace: 'shop', uid: 'uid-1', creationTimestamp: '2026-06-01T12:00:00Z' },
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
    },
  };
}

/** The input as a test edits it: loosely typed, since most rows make it invalid. */
interface Fixture {
  [key: string]: unknown;
  metadata: Record<string, unknown>;
  spec: { [key: string]: unknown; triggers: Record<string, unknown>[] };
}
type Mutable = Fixture;
const spec = (o: Mutable) => o.spec;
const trigger = (o: Mutable, index = 0): Record<string, unknown> => {
  const found = o.spec.triggers[index];
  if (found === undefined) throw new Error(`no trigger ${index}`);
  return found;
};
const metadataOf = (o: Mutable, index = 0) => trigger(o, index)['metadata'] as Record<string, unknown>;

function parseError(obj: unknown): ValidationError {
  try {
    parseScaledObject(obj);
  } catch (err) {
    if (err instanceof ValidationError) return err;
    throw err;
  }
  throw new Error('parseScaledObject accepted the object');
}

describe('constants', () => {
  test('group, version, kind, plural, label and HPA prefix', () => {
    expect({ GROUP, VERSION, API_VERSION, KIND, PLURAL, SCALED_OBJECT_LABEL, HPA_NAME_PREFIX }).toStrictEqual({
      GROUP: 'sluice.dev',
      VERSION: 'v1alpha1',
      API_VERSION: 'sluice.dev/v1alpha1',
      KIND: 'ScaledObject',
      PLURAL: 'scaledobjects',
      SCALED_OBJECT_LABEL: 'scaledobject.sluice.dev/name',
      HPA_NAME_PREFIX: 'sluice-hpa-',
    });
  });
});

describe('parseScaledObject: defaults (docs/keda-compatibility.md#scaledobject-spec)', () => {
  test('a minimal object gets every KEDA default', () => {
    const so = parseScaledObject({
      metadata: { name: 'a' },
      spec: {
        scaleTargetRef: { name: 'web' },
        triggers: [{ type: 'prometheus', metadata: {}, authenticationRef: { name: 'auth' } }],
        fallback: { failureThreshold: 3, replicas: 2 },
        advanced: {},
      },
    });
    expect(so.spec).toStrictEqual({
      scaleTargetRef: { name: 'web', apiVersion: 'apps/v1', kind: 'Deployment' },
      pollingInterval: 30,
      initialCooldownPeriod: 0,
      cooldownPeriod: 300,
      minReplicaCount: 0,
      maxReplicaCount: 100,
      fallback: { failureThreshold: 3, replicas: 2, behavior: 'static' },
      advanced: { restoreToOriginalReplicaCount: false },
      triggers: [
        {
          // No metricType default: AverageValue for external triggers is applied where the metric is built, and a
          // cpu/memory trigger may take its type from metadata `type` (KEDA's deprecated spelling).
          type: 'prometheus',
          metadata: {},
          useCachedMetrics: false,
          authenticationRef: { name: 'auth', kind: 'TriggerAuthentication' },
        },
      ],
    });
    expect(so.spec.idleReplicaCount).toBeUndefined();
  });

  test('given values are kept', () => {
    const input = ordersConsumer();
    Object.assign(spec(input), {
      pollingInterval: 5,
      cooldownPeriod: 0,
      initialCooldownPeriod: 60,
      minReplicaCount: 2,
    });
    spec(input)['scaleTargetRef'] = { name: 'orders', apiVersion: 'apps/v1', kind: 'StatefulSet' };
    const so = parseScaledObject(input);
    expect(so.spec.pollingInterval).toBe(5);
    expect(so.spec.cooldownPeriod).toBe(0);
    expect(so.spec.initialCooldownPeriod).toBe(60);
    expect(so.spec.minReplicaCount).toBe(2);
    expect(so.spec.scaleTargetRef.kind).toBe('StatefulSet');
  });

  test('the input is not modified', () => {
    const input = ordersConsumer();
    const copy = structuredClone(input);
    parseScaledObject(input);
    expect(input).toStrictEqual(copy);
  });

  test('a Date creationTimestamp (client-node typed models) becomes an RFC 3339 string', () => {
    const input = ordersConsumer();
    input.metadata['creationTimestamp'] = new Date('2026-06-01T12:00:00.123Z');
    expect(parseScaledObject(input).metadata.creationTimestamp).toBe('2026-06-01T12:00:00Z');
  });

  test('unknown metadata fields (managedFields, …) pass through', () => {
    const input = ordersConsumer();
    input.metadata['managedFields'] = [{ manager: 'kubectl' }];
    expect(parseScaledObject(input).metadata).toHaveProperty('managedFields');
  });
});

describe('parseScaledObject: accepted', () => {
  const rows: { comment: string; mutate: (o: Mutable) => void }[] = [
    { comment: 'KEDA worked example', mutate: () => undefined },
    {
      comment: 'apiVersion and kind may be absent (list items)',
      mutate: (o) => {
        Object.assign(o, { apiVersion: undefined, kind: undefined });
      },
    },
    {
      comment: 'min equal to max',
      mutate: (o) => {
        Object.assign(spec(o), { minReplicaCount: 10, maxReplicaCount: 10 });
      },
    },
    {
      comment: 'idle 1 below min 2',
      mutate: (o) => {
        Object.assign(spec(o), { idleReplicaCount: 1, minReplicaCount: 2 });
      },
    },
    {
      comment: 'idle 0 with min 0 (no effect; KEDA accepts it too)',
      mutate: (o) => {
        Object.assign(spec(o), { idleReplicaCount: 0 });
      },
    },
    {
      comment: 'Utilization on a cpu trigger',
      mutate: (o) => {
        spec(o).triggers.push({ type: 'cpu', metricType: 'Utilization', metadata: { value: '50' } });
      },
    },
    {
      comment: 'two unnamed triggers (names are unique only when set)',
      mutate: (o) => {
        spec(o).triggers.push({ type: 'rabbitmq', metadata: {} }, { type: 'rabbitmq', name: '', metadata: {} });
      },
    },
    {
      comment: 'distinct trigger names',
      mutate: (o) => {
        trigger(o)['name'] = 'a';
        spec(o).triggers.push({ type: 'rabbitmq', name: 'b', metadata: {} });
      },
    },
    {
      comment: 'only cpu and memory triggers with minReplicaCount 1 (the HPA reads them; no scale to zero)',
      mutate: (o) => {
        spec(o)['minReplicaCount'] = 1;
        spec(o)['triggers'] = [
          { type: 'cpu', metricType: 'Utilization', metadata: { value: '50' } },
          { type: 'memory', metadata: { type: 'AverageValue', value: '256Mi' } },
        ];
      },
    },
    {
      comment: 'a cpu trigger next to an external one may keep minReplicaCount 0 (activity comes from the other)',
      mutate: (o) => {
        spec(o).triggers.push({ type: 'cpu', metricType: 'Utilization', metadata: { value: '50' } });
      },
    },
    {
      comment: 'scalingModifiers with a formula over the named triggers',
      mutate: (o) => {
        trigger(o)['name'] = 'orders';
        spec(o).triggers.push({ type: 'prometheus', name: 'lag', metadata: {} });
        spec(o)['advanced'] = {
          scalingModifiers: { formula: 'orders + lag / 2', target: '5', activationTarget: '1', metricType: 'Value' },
        };
      },
    },
    {
      comment: 'fallback behavior scalingModifiers with a formula',
      mutate: (o) => {
        trigger(o)['name'] = 'orders';
        spec(o)['advanced'] = { scalingModifiers: { formula: 'orders ?? 0', target: '5' } };
        spec(o)['fallback'] = { failureThreshold: 3, replicas: 1, behavior: 'scalingModifiers' };
      },
    },
    {
      comment: '64 triggers (MAX_TRIGGERS)',
      mutate: (o) => {
        spec(o)['triggers'] = Array.from({ length: 64 }, () => ({ type: 'prometheus', metadata: {} }));
      },
    },
    {
      comment: 'an empty scalingModifiers object is ignored, as in KEDA',
      mutate: (o) => {
        spec(o)['advanced'] = { scalingModifiers: {} };
      },
    },
    {
      comment: 'advanced HPA config with a name and a behavior with fields sluice does not model',
      mutate: (o) =>
        void (spec(o)['advanced'] = {
          restoreToOriginalReplicaCount: true,
          horizontalPodAutoscalerConfig: {
            name: 'custom-hpa',
            behavior: {
              scaleDown: {
                stabilizationWindowSeconds: 60,
                selectPolicy: 'Max',
                policies: [{ type: 'Percent', value: 100, periodSeconds: 15 }],
                tolerance: '0.05',
              },
            },
          },
        }),
    },
    {
      comment: 'a 52-character name: the HPA name is exactly 63',
      mutate: (o) => {
        o.metadata['name'] = 'a'.repeat(52);
      },
    },
    {
      comment: 'a 63-character name with a custom HPA name',
      mutate: (o) => {
        o.metadata['name'] = 'a'.repeat(63);
        spec(o)['advanced'] = { horizontalPodAutoscalerConfig: { name: 'short' } };
      },
    },
    {
      comment: 'a status as the operator writes it',
      mutate: (o) =>
        void (o['status'] = {
          scaleTargetKind: 'apps/v1.Deployment',
          scaleTargetGVKR: { group: 'apps', version: 'v1', kind: 'Deployment', resource: 'deployments' },
          originalReplicaCount: 1,
          hpaName: 'sluice-hpa-orders-consumer',
          externalMetricNames: ['s0-rabbitmq-orders'],
          triggersTypes: 'rabbitmq',
          authenticationsTypes: 'rabbitmq-auth',
          lastActiveTime: '2026-06-01T12:00:00Z',
          triggersActivity: { 's0-rabbitmq-orders': { isActive: true } },
          health: { 's0-rabbitmq-orders': { numberOfFailures: 0, status: 'Happy' } },
          conditions: [
            {
              type: 'Ready',
              status: 'True',
              reason: 'ScaledObjectReady',
              message: 'ok',
              lastTransitionTime: '2026-06-01T12:00:00Z',
            },
          ],
          observedGeneration: 3,
        }),
    },
  ];
  test.each(rows)('$comment', ({ mutate }) => {
    const input = ordersConsumer();
    mutate(input);
    const so = parseScaledObject(input);
    expect(so.metadata.name).toBe(input.metadata['name']);
    expect(so.spec.triggers.length).toBe(spec(input).triggers.length);
  });
});

describe('parseScaledObject: rejected, naming the first offending field', () => {
  const rows: { comment: string; mutate: (o: Mutable) => unknown; field: string; message: string }[] = [
    // shape
    {
      comment: 'not an object',
      mutate: () => 'hello',
      field: 'ScaledObject',
      message: 'must be an object, got "hello"',
    },
    {
      comment: 'a KEDA object: points at the apiVersion to change',
      mutate: (o) => {
        o['apiVersion'] = 'keda.sh/v1alpha1';
      },
      field: 'apiVersion',
      message:
        'must be sluice.dev/v1alpha1, got "keda.sh/v1alpha1" (a KEDA ScaledObject: change apiVersion to sluice.dev/v1alpha1)',
    },
    {
      comment: 'wrong kind',
      mutate: (o) => {
        o['kind'] = 'ScaledJob';
      },
      field: 'kind',
      message: 'must be ScaledObject, got "ScaledJob"',
    },
    {
      comment: 'no metadata',
      mutate: (o) => {
        Reflect.deleteProperty(o, 'metadata');
      },
      field: 'metadata',
      message: 'is required',
    },
    {
      comment: 'no name',
      mutate: (o) => {
        delete o.metadata['name'];
      },
      field: 'metadata.name',
      message: 'is required',
    },
    {
      comment: 'no spec',
      mutate: (o) => {
        Reflect.deleteProperty(o, 'spec');
      },
      field: 'spec',
      message: 'is required',
    },
    {
      comment: 'spec is a list',
      mutate: (o) => {
        Object.assign(o, { spec: [] });
      },
      field: 'spec',
      message: 'must be an object, got a list',
    },
    {
      comment: 'no scaleTargetRef',
      mutate: (o) => {
        delete spec(o)['scaleTargetRef'];
      },
      field: 'spec.scaleTargetRef',
      message: 'is required',
    },
    {
      comment: 'empty scaleTargetRef.name',
      mutate: (o) => {
        spec(o)['scaleTargetRef'] = { name: '' };
      },
      field: 'spec.scaleTargetRef.name',
      message: 'must not be empty',
    },
    {
      comment: 'unknown spec field, with the likely intended one (HPA naming)',
      mutate: (o) => {
        spec(o)['minReplicas'] = 1;
      },
      field: 'spec.minReplicas',
      message: 'unknown field (did you mean "minReplicaCount"?)',
    },
    {
      comment: 'misspelt field: did you mean',
      mutate: (o) => {
        spec(o)['pollinginterval'] = 1;
      },
      field: 'spec.pollinginterval',
      message: 'did you mean "pollingInterval"?',
    },
    {
      comment: 'unknown field with no close match lists the known ones',
      mutate: (o) => {
        trigger(o)['extra'] = true;
      },
      field: 'spec.triggers[0].extra',
      message: 'unknown field (known fields: type, name, metadata, metricType, useCachedMetrics, authenticationRef)',
    },
    // numbers
    {
      comment: 'pollingInterval 0',
      mutate: (o) => {
        spec(o)['pollingInterval'] = 0;
      },
      field: 'spec.pollingInterval',
      message: 'must be at least 1, got 0',
    },
    {
      comment: 'pollingInterval as a string',
      mutate: (o) => {
        spec(o)['pollingInterval'] = '30';
      },
      field: 'spec.pollingInterval',
      message: 'must be an integer, got "30"',
    },
    {
      comment: 'cooldownPeriod not whole',
      mutate: (o) => {
        spec(o)['cooldownPeriod'] = 1.5;
      },
      field: 'spec.cooldownPeriod',
      message: 'must be an integer, got number 1.5',
    },
    {
      comment: 'negative cooldownPeriod',
      mutate: (o) => {
        spec(o)['cooldownPeriod'] = -1;
      },
      field: 'spec.cooldownPeriod',
      message: 'must be at least 0, got -1',
    },
    {
      comment: 'negative initialCooldownPeriod',
      mutate: (o) => {
        spec(o)['initialCooldownPeriod'] = -1;
      },
      field: 'spec.initialCooldownPeriod',
      message: 'must be at least 0',
    },
    {
      comment: 'negative minReplicaCount',
      mutate: (o) => {
        spec(o)['minReplicaCount'] = -1;
      },
      field: 'spec.minReplicaCount',
      message: 'must be at least 0',
    },
    {
      comment: 'maxReplicaCount 0 (as KEDA)',
      mutate: (o) => {
        spec(o)['maxReplicaCount'] = 0;
      },
      field: 'spec.maxReplicaCount',
      message: 'must be at least 1, got 0',
    },
    {
      comment: 'maxReplicaCount beyond int32',
      mutate: (o) => {
        spec(o)['maxReplicaCount'] = 2 ** 31;
      },
      field: 'spec.maxReplicaCount',
      message: 'must be at most 2147483647',
    },
    {
      comment: 'negative idleReplicaCount',
      mutate: (o) => {
        spec(o)['idleReplicaCount'] = -1;
      },
      field: 'spec.idleReplicaCount',
      message: 'must be at least 0',
    },
    // cross-field replica rules
    {
      comment: 'min above max',
      mutate: (o) => {
        Object.assign(spec(o), { minReplicaCount: 11, maxReplicaCount: 10 });
      },
      field: 'spec.minReplicaCount',
      message: 'minReplicaCount must be less than or equal to maxReplicaCount (minReplicaCount 11, maxReplicaCount 10)',
    },
    {
      comment: 'min above the default max 100',
      mutate: (o) => {
        Object.assign(spec(o), { minReplicaCount: 101, maxReplicaCount: undefined });
      },
      field: 'spec.minReplicaCount',
      message: 'minReplicaCount must be less than or equal to maxReplicaCount',
    },
    {
      comment: 'idle equal to min',
      mutate: (o) => {
        Object.assign(spec(o), { idleReplicaCount: 2, minReplicaCount: 2 });
      },
      field: 'spec.idleReplicaCount',
      message: 'idleReplicaCount must be less than minReplicaCount (idleReplicaCount 2, minReplicaCount 2)',
    },
    {
      comment: 'idle 1 with min 0',
      mutate: (o) => {
        Object.assign(spec(o), { idleReplicaCount: 1 });
      },
      field: 'spec.idleReplicaCount',
      message: 'idleReplicaCount must be less than minReplicaCount',
    },
    // fallback
    {
      comment: 'fallback without replicas',
      mutate: (o) => {
        spec(o)['fallback'] = { failureThreshold: 3 };
      },
      field: 'spec.fallback.replicas',
      message: 'is required',
    },
    {
      comment: 'fallback negative threshold',
      mutate: (o) => {
        spec(o)['fallback'] = { failureThreshold: -1, replicas: 1 };
      },
      field: 'spec.fallback.failureThreshold',
      message: 'must be at least 0',
    },
    {
      comment: 'fallback unknown behavior',
      mutate: (o) => {
        spec(o)['fallback'] = { failureThreshold: 3, replicas: 1, behavior: 'dynamic' };
      },
      field: 'spec.fallback.behavior',
      message:
        'must be one of static, currentReplicas, currentReplicasIfHigher, currentReplicasIfLower, scalingModifiers; got "dynamic"',
    },
    {
      comment: 'fallback behavior scalingModifiers without a formula',
      mutate: (o) => {
        spec(o)['fallback'] = { failureThreshold: 3, replicas: 1, behavior: 'scalingModifiers' };
      },
      field: 'spec.fallback.behavior',
      message: 'requires spec.advanced.scalingModifiers.formula',
    },
    {
      comment: 'fallback with only cpu/memory triggers (min 1, so that the scale-to-zero rule does not decide first)',
      mutate: (o) => {
        spec(o)['minReplicaCount'] = 1;
        spec(o)['triggers'] = [{ type: 'cpu', metricType: 'Utilization', metadata: { value: '50' } }];
        spec(o)['fallback'] = { failureThreshold: 3, replicas: 1 };
      },
      field: 'spec.fallback',
      message: 'fallback needs at least one trigger other than cpu or memory',
    },
    {
      comment: 'only cpu/memory triggers with minReplicaCount 0 (KEDA: scale to zero does not work then)',
      mutate: (o) => {
        spec(o)['triggers'] = [
          { type: 'cpu', metricType: 'Utilization', metadata: { value: '50' } },
          { type: 'memory', metricType: 'Utilization', metadata: { value: '50' } },
        ];
      },
      field: 'spec.minReplicaCount',
      message: 'with only cpu and memory triggers scale to zero does not work',
    },
    // advanced
    {
      comment: 'scalingModifiers whose formula names no trigger (parseComposite runs at validation)',
      mutate: (o) => {
        trigger(o)['name'] = 'a';
        spec(o)['advanced'] = { scalingModifiers: { formula: 'a + b', target: '5' } };
      },
      field: 'spec.advanced.scalingModifiers.formula',
      message: '"b" is not the name of a trigger (the formula can use: a;',
    },
    {
      comment: 'scalingModifiers with a formula and no target',
      mutate: (o) => {
        trigger(o)['name'] = 'a';
        spec(o)['advanced'] = { scalingModifiers: { formula: 'a' } };
      },
      field: 'spec.advanced.scalingModifiers.target',
      message: 'formula is given but target is empty',
    },
    {
      comment: 'scalingModifiers metricType Utilization',
      mutate: (o) => {
        spec(o)['advanced'] = { scalingModifiers: { formula: 'a', target: '1', metricType: 'Utilization' } };
      },
      field: 'spec.advanced.scalingModifiers.metricType',
      message: 'must be one of AverageValue, Value',
    },
    {
      comment: 'custom HPA name that is not a valid object name',
      mutate: (o) => {
        spec(o)['advanced'] = { horizontalPodAutoscalerConfig: { name: 'My_HPA' } };
      },
      field: 'spec.advanced.horizontalPodAutoscalerConfig.name',
      message: '"My_HPA" is not a valid name',
    },
    {
      comment: 'custom HPA name over 63 characters',
      mutate: (o) => {
        spec(o)['advanced'] = { horizontalPodAutoscalerConfig: { name: 'h'.repeat(64) } };
      },
      field: 'spec.advanced.horizontalPodAutoscalerConfig.name',
      message: 'must be at most 63 characters, got 64',
    },
    {
      comment: 'behavior policy value 0',
      mutate: (o) =>
        void (spec(o)['advanced'] = {
          horizontalPodAutoscalerConfig: {
            behavior: { scaleUp: { policies: [{ type: 'Pods', value: 0, periodSeconds: 15 }] } },
          },
        }),
      field: 'spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp.policies[0].value',
      message: 'must be at least 1, got 0',
    },
    {
      comment: 'behavior selectPolicy unknown',
      mutate: (o) =>
        void (spec(o)['advanced'] = {
          horizontalPodAutoscalerConfig: { behavior: { scaleDown: { selectPolicy: 'Least' } } },
        }),
      field: 'spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.selectPolicy',
      message: 'must be one of Max, Min, Disabled',
    },
    // triggers
    {
      comment: 'no triggers',
      mutate: (o) => {
        Reflect.deleteProperty(spec(o), 'triggers');
      },
      field: 'spec.triggers',
      message: 'is required',
    },
    {
      comment: 'empty triggers',
      mutate: (o) => {
        spec(o)['triggers'] = [];
      },
      field: 'spec.triggers',
      message: 'must have at least 1 item(s)',
    },
    {
      comment: '65 triggers: over MAX_TRIGGERS',
      mutate: (o) => {
        spec(o)['triggers'] = Array.from({ length: 65 }, () => ({ type: 'prometheus', metadata: {} }));
      },
      field: 'spec.triggers',
      message: 'must not have more than 64 items',
    },
    {
      comment: 'trigger without type',
      mutate: (o) => {
        delete trigger(o)['type'];
      },
      field: 'spec.triggers[0].type',
      message: 'is required',
    },
    {
      comment: 'trigger with empty type',
      mutate: (o) => {
        trigger(o)['type'] = '';
      },
      field: 'spec.triggers[0].type',
      message: 'must not be empty',
    },
    {
      comment: 'trigger without metadata (required, as in KEDA)',
      mutate: (o) => {
        delete trigger(o)['metadata'];
      },
      field: 'spec.triggers[0].metadata',
      message: 'is required',
    },
    {
      comment: 'second trigger metadata is a list',
      mutate: (o) => {
        spec(o).triggers.push({ type: 'prometheus', metadata: ['a'] });
      },
      field: 'spec.triggers[1].metadata',
      message: 'must be an object, got a list',
    },
    {
      comment: 'unquoted number in metadata',
      mutate: (o) => {
        metadataOf(o)['value'] = 20;
      },
      field: 'spec.triggers[0].metadata.value',
      message: 'must be a string, got number 20; quote it in YAML: "20"',
    },
    {
      comment: 'metadata key that is not an identifier is quoted in the path',
      mutate: (o) => {
        metadataOf(o)['app.kubernetes.io/name'] = true;
      },
      field: 'spec.triggers[0].metadata["app.kubernetes.io/name"]',
      message: 'must be a string, got boolean true; quote it in YAML: "true"',
    },
    {
      comment: 'unknown metricType',
      mutate: (o) => {
        trigger(o)['metricType'] = 'Average';
      },
      field: 'spec.triggers[0].metricType',
      message: 'must be one of AverageValue, Value, Utilization; got "Average"',
    },
    {
      comment: 'Utilization on an external trigger',
      mutate: (o) => {
        trigger(o)['metricType'] = 'Utilization';
      },
      field: 'spec.triggers[0].metricType',
      message:
        "'Utilization' metric type is unsupported for external metrics, allowed values are 'Value' or 'AverageValue'",
    },
    {
      comment: 'useCachedMetrics on a cpu trigger',
      mutate: (o) => {
        spec(o).triggers.push({ type: 'cpu', metricType: 'Utilization', useCachedMetrics: true, metadata: {} });
      },
      field: 'spec.triggers[1].useCachedMetrics',
      message: 'property "useCachedMetrics" is not supported for "cpu" scaler',
    },
    {
      comment: 'duplicate trigger names: the second one is reported',
      mutate: (o) => {
        trigger(o)['name'] = 'orders';
        spec(o).triggers.push(
          { type: 'prometheus', name: 'other', metadata: {} },
          { type: 'prometheus', name: 'orders', metadata: {} },
        );
      },
      field: 'spec.triggers[2].name',
      message:
        'triggerName "orders" is defined multiple times in the ScaledObject, but it must be unique (also spec.triggers[0])',
    },
    {
      comment: 'authenticationRef without name',
      mutate: (o) => {
        trigger(o)['authenticationRef'] = {};
      },
      field: 'spec.triggers[0].authenticationRef.name',
      message: 'is required',
    },
    {
      comment: 'authenticationRef unknown kind',
      mutate: (o) => {
        trigger(o)['authenticationRef'] = { name: 'a', kind: 'Secret' };
      },
      field: 'spec.triggers[0].authenticationRef.kind',
      message: 'must be one of TriggerAuthentication, ClusterTriggerAuthentication; got "Secret"',
    },
    // names
    {
      comment: 'name over 63 characters',
      mutate: (o) => {
        o.metadata['name'] = 'a'.repeat(64);
      },
      field: 'metadata.name',
      message: 'must be at most 63 characters (it is used as a label value), got 64',
    },
    {
      comment: 'name of 53 characters: the generated HPA name would be 64',
      mutate: (o) => {
        o.metadata['name'] = 'a'.repeat(53);
      },
      field: 'metadata.name',
      message: `the HPA name "sluice-hpa-${'a'.repeat(53)}" would be 64 characters, over the limit of 63: use a name of at most 52 characters or set spec.advanced.horizontalPodAutoscalerConfig.name`,
    },
    // status
    {
      comment: 'a status timestamp that is not RFC 3339',
      mutate: (o) => {
        o['status'] = { lastActiveTime: 'yesterday' };
      },
      field: 'status.lastActiveTime',
      message: 'must be an RFC 3339 date-time',
    },
    {
      comment: 'a condition status outside True/False/Unknown',
      mutate: (o) => {
        o['status'] = { conditions: [{ type: 'Ready', status: 'Yes' }] };
      },
      field: 'status.conditions[0].status',
      message: 'must be one of True, False, Unknown; got "Yes"',
    },
  ];
  test.each(rows)('$comment', ({ mutate, field, message }) => {
    const input = ordersConsumer();
    const replaced = mutate(input);
    const error = parseError(replaced === undefined ? input : replaced);
    expect(error.field).toBe(field);
    expect(error.message).toContain(message);
    expect(error.message.startsWith(`${field}: `)).toBe(true);
    expect(error.code).toBe('INVALID_SPEC');
  });
});

describe('hpaNameFor', () => {
  test('sluice-hpa-<name> by default, the custom name when set', () => {
    const so = parseScaledObject(ordersConsumer());
    expect(hpaNameFor(so)).toBe('sluice-hpa-orders-consumer');
    const custom = ordersConsumer();
    spec(custom)['advanced'] = { horizontalPodAutoscalerConfig: { name: 'orders-hpa' } };
    expect(hpaNameFor(parseScaledObject(custom))).toBe('orders-hpa');
  });
});
