// `sluice serve --config`: the file of MetricSources, checked whole before anything is served.
import { afterEach, describe, expect, test } from 'vitest';
import { stringify } from 'yaml';
import { loadMetricSources, parseMetricSourceFile } from '../../../src/cli/serve.ts';
import { MetricStore } from '../../../src/metric-store.ts';
import { createAuthResolver } from '../../../src/operator/auth-resolver.ts';
import { MetricSourceRegistry } from '../../../src/operator/metric-sources.ts';
import { ReaderHub } from '../../../src/scalers/readers.ts';

// These MetricSources have no authenticationRef: the resolver reads nothing.
const nothing = () => Promise.reject(new Error('no cluster in this test'));
const auth = createAuthResolver({
  readSecret: nothing,
  readConfigMap: nothing,
  readTriggerAuthentication: nothing,
  readClusterTriggerAuthentication: nothing,
  readNamespaceLabels: nothing,
  readScaleTarget: nothing,
});
const loadMetricSourceFile = async (registry: MetricSourceRegistry, text: string) =>
  loadMetricSources('metrics.yaml', parseMetricSourceFile('metrics.yaml', text), { auth, registry });

const hub = new ReaderHub({ intervalMs: 1000 });
const registry = new MetricSourceRegistry({
  hub,
  store: new MetricStore(),
  cluster: { readyEndpoints: () => Promise.reject(new Error('no cluster')) },
  log: () => undefined,
  onChange: () => undefined,
});
afterEach(() => {
  registry.stopAll();
});

function source(name: string, metricName: string, metadata: Record<string, string> = {}): Record<string, unknown> {
  return {
    apiVersion: 'sluice.dev/v1alpha1',
    kind: 'MetricSource',
    metadata: { name, namespace: 'shop' },
    spec: {
      metricName,
      trigger: {
        type: 'rabbitmq',
        metadata: { host: 'http://rabbit:15672', queueName: '{{queue}}', mode: 'QueueLength', ...metadata },
      },
    },
  };
}

const file = (...docs: unknown[]) => docs.map((d) => stringify(d)).join('---\n');

describe('the file of MetricSources', () => {
  test('every document is served', async () => {
    const count = await loadMetricSourceFile(registry, file(source('a', 'depth_a'), null, source('b', 'depth_b')));
    expect(count).toBe(2);
    expect(registry.owns('shop', 'depth_a') && registry.owns('shop', 'depth_b')).toBe(true);
  });

  test.each([
    {
      text: file(source('a', 'depth'), source('b', 'DEPTH')),
      says: 'metrics.yaml: MetricSource shop/b: metric DEPTH is already served in namespace shop by MetricSource a',
    },
    {
      text: file(source('a', 'depth', { host: 'http://{{broker}}:15672' })),
      says: 'metrics.yaml: MetricSource shop/a: spec.trigger.metadata.host: may not hold a {{label}} placeholder',
    },
    {
      text: file(source('a', 'depth', { mode: 'Bogus' })),
      says: 'metrics.yaml: MetricSource shop/a: spec.trigger.metadata.mode: "Bogus" must be one of',
    },
    {
      text: file(source('a', 'depth'), source('a', 'other')),
      says: 'metrics.yaml: MetricSource shop/a is in the file twice',
    },
    { text: 'a: [', says: 'metrics.yaml: document 1:' },
    { text: '', says: 'metrics.yaml: no MetricSource in it' },
  ])('refused whole, naming the file, the object and the field: $says', async ({ text, says }) => {
    await expect(loadMetricSourceFile(registry, text)).rejects.toThrow(says);
    expect(registry.owns('shop', 'depth')).toBe(false);
  });

  test('documents are parsed in order, empty ones skipped', () => {
    expect(parseMetricSourceFile('m.yaml', '---\na: 1\n---\n---\nb: 2\n')).toStrictEqual([{ a: 1 }, { b: 2 }]);
  });
});
