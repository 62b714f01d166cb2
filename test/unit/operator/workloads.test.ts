// What the watch caches keep: a Deployment's identity and replica counts, not its pod template; any cached object
// without managedFields.
import { describe, expect, it } from 'vitest';
import { withoutManagedFields } from '../../../src/operator/informers.ts';
import { slimWorkload } from '../../../src/operator/workloads.ts';

const deployment = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: {
    name: 'orders',
    namespace: 'shop',
    uid: 'u1',
    resourceVersion: '42',
    labels: { app: 'orders' },
    managedFields: [{ manager: 'kubectl', operation: 'Apply' }],
  },
  spec: { replicas: 3, template: { spec: { containers: [{ name: 'worker', image: 'worker:1' }] } } },
  status: { replicas: 3, readyReplicas: 2, conditions: [{ type: 'Available', status: 'True' }] },
};

describe('slimWorkload', () => {
  it('keeps the name, namespace, uid, resourceVersion and the replica counts only', () => {
    expect(slimWorkload(deployment)).toStrictEqual({
      metadata: { name: 'orders', namespace: 'shop', uid: 'u1', resourceVersion: '42' },
      spec: { replicas: 3 },
      status: { replicas: 3, readyReplicas: 2 },
    });
  });

  it('absent counts stay absent (readyReplicas is omitted by the API at 0)', () => {
    expect(slimWorkload({ metadata: { name: 'a', namespace: 'b' }, spec: {}, status: {} })).toStrictEqual({
      metadata: { name: 'a', namespace: 'b' },
      spec: { replicas: undefined },
      status: { replicas: undefined, readyReplicas: undefined },
    });
  });
});

describe('withoutManagedFields', () => {
  it('drops metadata.managedFields and nothing else', () => {
    const { managedFields: _dropped, ...metadata } = deployment.metadata;
    expect(withoutManagedFields(deployment)).toStrictEqual({ ...deployment, metadata });
  });

  it('an object without them is returned as it is', () => {
    const plain = { metadata: { name: 'a' } };
    expect(withoutManagedFields(plain)).toBe(plain);
  });
});
