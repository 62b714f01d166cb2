// The metrics API reports every response to its onResponse hook (sluice's /metrics: latency by route and code):
// the route's pattern, never the path asked for (a path holds namespace and metric names without bound).
import { afterEach, expect, test } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { MetricStore } from '../../../src/metric-store.ts';
import { buildServer } from '../../../src/server/app.ts';
import { series } from './support.ts';

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

test('each response reaches onResponse with its route pattern, status code and duration', async () => {
  const calls: [string, number, number][] = [];
  const store = new MetricStore();
  store.set(series({ namespace: 'shop', metricName: 's0-rabbitmq-orders', value: 5 }));
  app = buildServer({
    store,
    authenticate: () => ({ username: 'hpa', uid: '', groups: ['system:authenticated'], extra: {} }),
    authorize: () => Promise.resolve({ allowed: true, reason: '' }),
    ready: () => true,
    onResponse: (route, code, seconds) => {
      calls.push([route, code, seconds]);
    },
  });
  await app.inject({ url: '/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/s0-rabbitmq-orders' });
  await app.inject({ url: '/apis/external.metrics.k8s.io/v1beta1/namespaces/shop/s0-nothing-here' });
  await app.inject({ url: '/healthz' });
  await app.inject({ url: '/no/such/route/secret-name' });
  expect(calls.map(([route, code]) => [route, code])).toStrictEqual([
    ['/apis/external.metrics.k8s.io/v1beta1/namespaces/:namespace/:metric', 200],
    ['/apis/external.metrics.k8s.io/v1beta1/namespaces/:namespace/:metric', 404],
    ['/healthz', 200],
    ['unmatched', 404],
  ]);
  expect(calls.every(([, , seconds]) => seconds >= 0 && seconds < 5)).toBe(true);
});
