// Proves parseResourceTrigger, the cpu and memory triggers as the HPA Resource (or ContainerResource) metric they
// stand for: Utilization / AverageValue × cpu / memory, containerName, KEDA's deprecated metadata `type` against
// metricType (agree, disagree, neither), and refusals naming the field: Value, authenticationRef, bad values.
import { describe, expect, test } from 'vitest';
import { ValidationError } from '../../../src/errors.ts';
import {
  isResourceTrigger,
  parseResourceTrigger,
  RESOURCE_TRIGGERS,
  type ResourceMetric,
  type ResourceTriggerInput,
} from '../../../src/scalers/cpu-memory.ts';

function trigger(fields: Partial<ResourceTriggerInput>): ResourceTriggerInput {
  return {
    index: 0,
    type: 'cpu',
    metadata: { value: '60' },
    metricType: 'Utilization',
    hasAuthenticationRef: false,
    ...fields,
  };
}

describe('isResourceTrigger', () => {
  test.each([
    { comment: 'cpu', type: 'cpu', want: true },
    { comment: 'memory', type: 'memory', want: true },
    { comment: 'an external trigger', type: 'prometheus', want: false },
    { comment: 'case matters, as in KEDA', type: 'CPU', want: false },
  ])('$comment', ({ type, want }) => {
    expect(isResourceTrigger(type)).toBe(want);
  });

  test('the two types', () => {
    expect(RESOURCE_TRIGGERS).toStrictEqual(['cpu', 'memory']);
  });
});

describe('parseResourceTrigger: accepted', () => {
  const rows: { comment: string; input: Partial<ResourceTriggerInput>; want: ResourceMetric }[] = [
    {
      comment: 'cpu Utilization 60 %',
      input: { type: 'cpu', metricType: 'Utilization', metadata: { value: '60' } },
      want: { name: 'cpu', container: undefined, target: { type: 'Utilization', averageUtilization: 60 } },
    },
    {
      comment: 'memory Utilization 80 %',
      input: { type: 'memory', metricType: 'Utilization', metadata: { value: '80' } },
      want: { name: 'memory', container: undefined, target: { type: 'Utilization', averageUtilization: 80 } },
    },
    {
      comment: 'cpu AverageValue 500m (the Quantity kept as written)',
      input: { type: 'cpu', metricType: 'AverageValue', metadata: { value: '500m' } },
      want: { name: 'cpu', container: undefined, target: { type: 'AverageValue', averageValue: '500m' } },
    },
    {
      comment: 'memory AverageValue 256Mi',
      input: { type: 'memory', metricType: 'AverageValue', metadata: { value: '256Mi' } },
      want: { name: 'memory', container: undefined, target: { type: 'AverageValue', averageValue: '256Mi' } },
    },
    {
      comment: 'cpu AverageValue as a plain number of cores',
      input: { type: 'cpu', metricType: 'AverageValue', metadata: { value: '1.5' } },
      want: { name: 'cpu', container: undefined, target: { type: 'AverageValue', averageValue: '1.5' } },
    },
    {
      comment: 'Utilization above 100 % (requests are not limits)',
      input: { metadata: { value: '250' } },
      want: { name: 'cpu', container: undefined, target: { type: 'Utilization', averageUtilization: 250 } },
    },
    {
      comment: 'Utilization 1 % (the smallest)',
      input: { metadata: { value: '1' } },
      want: { name: 'cpu', container: undefined, target: { type: 'Utilization', averageUtilization: 1 } },
    },
    {
      comment: 'the value is trimmed (KEDA metadata rule)',
      input: { metadata: { value: ' 70 ' } },
      want: { name: 'cpu', container: undefined, target: { type: 'Utilization', averageUtilization: 70 } },
    },
    {
      comment: 'containerName: a ContainerResource metric for that container',
      input: { type: 'memory', metricType: 'AverageValue', metadata: { value: '1Gi', containerName: 'app' } },
      want: { name: 'memory', container: 'app', target: { type: 'AverageValue', averageValue: '1Gi' } },
    },
    {
      comment: 'containerName of 63 characters',
      input: { metadata: { value: '50', containerName: 'c'.repeat(63) } },
      want: { name: 'cpu', container: 'c'.repeat(63), target: { type: 'Utilization', averageUtilization: 50 } },
    },
    {
      comment: 'an empty containerName counts as absent (KEDA metadata rule)',
      input: { metadata: { value: '50', containerName: '' } },
      want: { name: 'cpu', container: undefined, target: { type: 'Utilization', averageUtilization: 50 } },
    },
    // metadata `type` (KEDA's deprecated spelling) against metricType
    {
      comment: 'metadata type only (no metricType): Utilization',
      input: { metricType: undefined, metadata: { type: 'Utilization', value: '50' } },
      want: { name: 'cpu', container: undefined, target: { type: 'Utilization', averageUtilization: 50 } },
    },
    {
      comment: 'metadata type only: AverageValue',
      input: { type: 'memory', metricType: undefined, metadata: { type: 'AverageValue', value: '512Mi' } },
      want: { name: 'memory', container: undefined, target: { type: 'AverageValue', averageValue: '512Mi' } },
    },
    {
      comment: 'metadata type and metricType agree',
      input: { metricType: 'AverageValue', metadata: { type: 'AverageValue', value: '250m' } },
      want: { name: 'cpu', container: undefined, target: { type: 'AverageValue', averageValue: '250m' } },
    },
    {
      comment: 'an empty metadata type counts as absent: metricType decides',
      input: { metricType: 'Utilization', metadata: { type: '', value: '50' } },
      want: { name: 'cpu', container: undefined, target: { type: 'Utilization', averageUtilization: 50 } },
    },
  ];
  test.each(rows)('$comment', ({ input, want }) => {
    expect(parseResourceTrigger(trigger(input))).toStrictEqual(want);
  });
});

describe('parseResourceTrigger: rejected, naming the field', () => {
  const rows: { comment: string; input: Partial<ResourceTriggerInput>; field: string; message: string }[] = [
    {
      comment: 'neither metricType nor metadata type',
      input: { metricType: undefined, metadata: { value: '50' } },
      field: 'spec.triggers[0].metricType',
      message: 'a cpu trigger needs metricType Utilization (a percentage of requests) or AverageValue (a Quantity)',
    },
    {
      comment: 'metadata type and metricType disagree',
      input: { index: 2, metricType: 'Utilization', metadata: { type: 'AverageValue', value: '50' } },
      field: 'spec.triggers[2].metadata.type',
      message: '"AverageValue" disagrees with metricType "Utilization"',
    },
    {
      comment: 'metricType Value (the HPA has no Value target for Resource metrics)',
      input: { type: 'memory', metricType: 'Value', metadata: { value: '50' } },
      field: 'spec.triggers[0].metricType',
      message: 'a memory trigger takes Utilization or AverageValue',
    },
    {
      comment: 'metadata type Value (not one of the two)',
      input: { metricType: undefined, metadata: { type: 'Value', value: '50' } },
      field: 'spec.triggers[0].metadata.type',
      message: '"Value" must be one of Utilization, AverageValue',
    },
    {
      comment: 'an authenticationRef (nothing to authenticate)',
      input: { index: 1, hasAuthenticationRef: true },
      field: 'spec.triggers[1].authenticationRef',
      message: 'a cpu trigger reads nothing that needs credentials',
    },
    {
      comment: 'no value',
      input: { metadata: {} },
      field: 'spec.triggers[0].metadata.value',
      message: 'missing required parameter "value"',
    },
    {
      comment: 'Utilization 0',
      input: { metadata: { value: '0' } },
      field: 'spec.triggers[0].metadata.value',
      message: `must be a whole percentage of the pods' cpu requests (e.g. "60"), got "0"`,
    },
    {
      comment: 'Utilization with a fraction',
      input: { metadata: { value: '50.5' } },
      field: 'spec.triggers[0].metadata.value',
      message: 'got "50.5"',
    },
    {
      comment: 'Utilization with a percent sign',
      input: { type: 'memory', metadata: { value: '50%' } },
      field: 'spec.triggers[0].metadata.value',
      message: `must be a whole percentage of the pods' memory requests (e.g. "60"), got "50%"`,
    },
    {
      comment: 'Utilization negative',
      input: { metadata: { value: '-5' } },
      field: 'spec.triggers[0].metadata.value',
      message: 'got "-5"',
    },
    {
      comment: 'Utilization as a Quantity',
      input: { metadata: { value: '500m' } },
      field: 'spec.triggers[0].metadata.value',
      message: 'got "500m"',
    },
    {
      comment: 'Utilization above int32',
      input: { metadata: { value: '2147483648' } },
      field: 'spec.triggers[0].metadata.value',
      message: 'got "2147483648"',
    },
    {
      comment: 'AverageValue 0',
      input: { metricType: 'AverageValue', metadata: { value: '0' } },
      field: 'spec.triggers[0].metadata.value',
      message: 'must be a Kubernetes Quantity greater than 0 (e.g. "500m"), got "0"',
    },
    {
      comment: 'AverageValue negative',
      input: { type: 'memory', metricType: 'AverageValue', metadata: { value: '-1Gi' } },
      field: 'spec.triggers[0].metadata.value',
      message: 'must be a Kubernetes Quantity greater than 0 (e.g. "256Mi"), got "-1Gi"',
    },
    {
      comment: 'AverageValue that is not a Quantity',
      input: { metricType: 'AverageValue', metadata: { value: 'half a core' } },
      field: 'spec.triggers[0].metadata.value',
      message: 'must be a Kubernetes Quantity greater than 0 (e.g. "500m"), got "half a core"',
    },
    {
      comment: 'AverageValue with an unknown suffix',
      input: { type: 'memory', metricType: 'AverageValue', metadata: { value: '256MB' } },
      field: 'spec.triggers[0].metadata.value',
      message: 'got "256MB"',
    },
    {
      comment: 'containerName that is not a DNS-1123 label',
      input: { metadata: { value: '50', containerName: 'My_App' } },
      field: 'spec.triggers[0].metadata.containerName',
      message: '"My_App" is not a container name',
    },
    {
      comment: 'containerName of 64 characters',
      input: { metadata: { value: '50', containerName: 'c'.repeat(64) } },
      field: 'spec.triggers[0].metadata.containerName',
      message: 'is not a container name',
    },
  ];
  test.each(rows)('$comment', ({ input, field, message }) => {
    let caught: unknown;
    try {
      parseResourceTrigger(trigger(input));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    const error = caught as ValidationError;
    expect(error.field).toBe(field);
    expect(error.message.startsWith(`${field}: `)).toBe(true);
    expect(error.message).toContain(message);
  });
});
