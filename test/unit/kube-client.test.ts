// requestKind: the verb and resource of an API request, as kube-apiserver's apiserver_request_total names them, so
// that sluice's own count of what it asks the API server can be compared with the server's. The connection pools:
// the Lease never waits behind a saturated default pool.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CoordinationV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { apiClient, requestKind } from '../../src/kube-client.ts';

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

describe('connection pools', () => {
  it('a Lease request is answered while every default connection is busy (and a default request waits)', async () => {
    // An API server that holds namespace reads open until told, and answers Lease reads at once.
    const held: ServerResponse[] = [];
    let holding = true;
    const server = createServer((request: IncomingMessage, response: ServerResponse) => {
      if (holding && request.url?.startsWith('/api/v1/namespaces/') === true) {
        held.push(response);
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'l' } }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    const core = apiClient(kc, CoreV1Api, 30_000);
    const leases = apiClient(kc, CoordinationV1Api, 30_000, 'leader-election');
    try {
      const busy = Array.from({ length: 33 }, (_, i) => core.readNamespace({ name: `n${i}` }).catch(() => undefined));
      // The default pool opens 32 connections; the 33rd request waits for one.
      await expect.poll(() => held.length, { timeout: 5000 }).toBe(32);
      await expect(leases.readNamespacedLease({ name: 'l', namespace: 'sluice-system' })).resolves.toMatchObject({
        metadata: { name: 'l' },
      });
      expect(held).toHaveLength(32);
      holding = false;
      for (const response of held.splice(0)) response.destroy();
      await Promise.all(busy);
    } finally {
      for (const response of held) response.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
