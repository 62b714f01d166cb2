// requestKind: the verb and resource of an API request, as kube-apiserver's apiserver_request_total names them, so
// that sluice's own count of what it asks the API server can be compared with the server's.
import { describe, expect, it } from 'vitest';
import { requestKind } from '../../src/kube-client.ts';

describe('requestKind', () => {
  it.each([
    ['GET', '/apis/apps/v1/namespaces/shop/deployments/orders/scale', 'get', 'apps/deployments/scale'],
    ['PATCH', '/apis/apps/v1/namespaces/shop/deployments/orders/scale', 'patch', 'apps/deployments/scale'],
    ['GET', '/apis/apps/v1/deployments', 'list', 'apps/deployments'],
    ['GET', '/apis/apps/v1/namespaces/shop/deployments?limit=500', 'list', 'apps/deployments'],
    ['GET', '/api/v1/namespaces/shop/secrets/rabbit', 'get', '/secrets'],
    ['GET', '/api/v1/namespaces/shop', 'get', '/namespaces'],
    ['POST', '/apis/events.k8s.io/v1/namespaces/shop/events', 'create', 'events.k8s.io/events'],
    [
      'PUT',
      '/apis/coordination.k8s.io/v1/namespaces/sluice-system/leases/sluice-operator',
      'update',
      'coordination.k8s.io/leases',
    ],
    [
      'PATCH',
      '/apis/sluice.dev/v1alpha1/namespaces/shop/scaledobjects/orders/status',
      'patch',
      'sluice.dev/scaledobjects/status',
    ],
    [
      'DELETE',
      '/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/h',
      'delete',
      'autoscaling/horizontalpodautoscalers',
    ],
    ['GET', '/apis/autoscaling/v2', 'get', ''],
    ['GET', '/version', 'get', ''],
  ])('%s %s → %s %s', (method, path, verb, resource) => {
    expect(requestKind(method, path)).toStrictEqual({ verb, resource });
  });
});
