// The MetricSource registry with real scalers reading a real HTTP server on 127.0.0.1 through a real ReaderHub: what a
// request for a metric and a selector gets (unowned, 404, 429, served), the series it leaves in the store, errors that
// stay errors, the bound on live selectors, and selectors dropped when unused.
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { parseSelector } from '../../../src/labels.ts';
import { MetricStore } from '../../../src/metric-store.ts';
import {
  metricNameOwner,
  metricSourceReady,
  metricSourceRefused,
  metricSourceStatus,
  metricSourceStatusPatch,
} from '../../../src/operator/metric-source-controller.ts';
import { placeholdersOf } from '../../../src/operator/metric-source.ts';
import { MetricSourceRegistry, type MetricSourceSettings } from '../../../src/operator/metric-sources.ts';
import { ReaderHub } from '../../../src/scalers/readers.ts';
import { createScaler } from '../../../src/scalers/registry.ts';
import type { ClusterPort } from '../../../src/scalers/scaler.ts';
import { startMetricServer, type MetricServer } from '../../support/metric-server.ts';

const NO_CLUSTER: ClusterPort = {
  readyEndpoints: () => Promise.reject(new Error('no cluster in this test')),
};

let server: MetricServer;
let hub: ReaderHub;
let store: MetricStore;
let registry: MetricSourceRegistry;
let clock: number;
let changes: string[];

beforeEach(async () => {
  server = await startMetricServer();
  server.respond = () => ({ body: JSON.stringify({ a: 5, b: 7 }), contentType: 'application/json' });
  hub = new ReaderHub({ intervalMs: 1000 });
  store = new MetricStore();
  clock = Date.parse('2026-12-07T12:00:00Z');
  changes = [];
  registry = new MetricSourceRegistry({
    hub,
    store,
    cluster: NO_CLUSTER,
    log: () => undefined,
    onChange: (key) => changes.push(key),
    now: () => clock,
  });
});

afterEach(async () => {
  registry.stopAll();
  await hub.close();
  await server.close();
});

/** A metrics-api MetricSource whose `{{field}}` picks the JSON field served. */
function settings(overrides: Partial<MetricSourceSettings> = {}): MetricSourceSettings {
  const metadata = overrides.metadata ?? { url: server.url, valueLocation: '{{field}}' };
  return {
    key: 'shop/fields',
    namespace: 'shop',
    metricName: 'json_field',
    type: 'metrics-api',
    metadata,
    placeholders: placeholdersOf(metadata),
    authParams: {},
    pollingIntervalS: 1,
    maxSelectors: 100,
    selectorIdleS: 60,
    hash: 'h1',
    ...overrides,
  };
}

const ask = (selector: string, metric = 'json_field', namespace = 'shop') =>
  registry.request(namespace, metric, parseSelector(selector));

async function served(selector: string): Promise<void> {
  const answer = ask(selector);
  if (answer.kind !== 'served') throw new Error(`expected served, got ${JSON.stringify(answer)}`);
  await answer.firstRead;
}

describe('MetricSourceRegistry', () => {
  test('names it does not own, and ScaledObject selectors, are unowned', () => {
    registry.ensure(settings());
    expect(ask('field=a', 'other_metric')).toStrictEqual({ kind: 'unowned' });
    expect(ask('field=a', 'json_field', 'elsewhere')).toStrictEqual({ kind: 'unowned' });
    expect(ask('scaledobject.sluice.dev/name=worker')).toStrictEqual({ kind: 'unowned' });
    expect(registry.owns('shop', 'JSON_FIELD')).toBe(true);
    expect(registry.owns('shop', 'other_metric')).toBe(false);
  });

  test('the first request waits for one read; each selector is its own series with its labels, the raw value', async () => {
    registry.ensure(settings());
    await served('field=a');
    await served('field in (b)');
    const series = store.find('shop', 'json_field').map((s) => [s.labels, s.value, s.error]);
    expect(series).toStrictEqual([
      [{ field: 'a' }, 5, undefined],
      [{ field: 'b' }, 7, undefined],
    ]);
    // Both selectors read the same URL: one source in the hub, one request per read.
    expect(hub.stats().sources).toBe(1);
    expect(registry.snapshot('shop/fields')?.selectors.map((s) => s.labelSelector)).toStrictEqual([
      'field=a',
      'field=b',
    ]);
    expect(changes).toStrictEqual(['shop/fields', 'shop/fields']);
  });

  test('a ScaledObject trigger and a MetricSource selector on one source are one reader: one request per read', async () => {
    const trigger = createScaler({
      namespace: 'shop',
      index: 0,
      type: 'metrics-api',
      name: undefined,
      metadata: { url: server.url, valueLocation: 'a', targetValue: '10' },
      metricType: 'AverageValue',
      authParams: {},
      resolvedEnv: {},
      cluster: NO_CLUSTER,
    });
    const values: number[] = [];
    const subscription = trigger.watch(hub, (result) => {
      if (result.ok) values.push(result.sample.value);
    });
    registry.ensure(settings());
    await served('field=a');
    expect(hub.stats().sources).toBe(1);
    // Every read (the first, and any turn since) is one request, whoever subscribed.
    expect(server.requests).toHaveLength(hub.readsOf(trigger.sourceKey));
    expect(values[0]).toBe(5);
    subscription.close();
  });

  test('a selector that cannot fill the placeholders is a 404 naming the label, and starts nothing', () => {
    registry.ensure(settings());
    const answer = ask('app=x');
    expect(answer).toMatchObject({ kind: 'refused', code: 404 });
    expect(answer.kind === 'refused' ? answer.message : '').toContain('label "app", which is no placeholder');
    expect(store.find('shop', 'json_field')).toStrictEqual([]);
    expect(hub.stats().sources).toBe(0);
  });

  test('filled values are validated like any metadata value: an invalid one is a 404 naming the field', () => {
    const metadata = { host: 'http://127.0.0.1:1', queueName: 'q', mode: '{{mode}}' };
    registry.ensure(settings({ type: 'rabbitmq', metadata, placeholders: placeholdersOf(metadata) }));
    const answer = ask('mode=Bogus');
    expect(answer).toMatchObject({ kind: 'refused', code: 404 });
    expect(answer.kind === 'refused' ? answer.message : '').toContain(
      'spec.trigger.metadata.mode: "Bogus" must be one of QueueLength, MessageRate, DeliverGetRate',
    );
  });

  test('a failed read is an error in the series and the snapshot, never a 0', async () => {
    server.respond = () => ({ status: 503, body: 'secret-looking body' });
    registry.ensure(settings());
    await served('field=a');
    const [series] = store.find('shop', 'json_field');
    expect(series?.value).toBeUndefined();
    expect(series?.error).toContain('503');
    expect(series?.error).not.toContain('secret-looking body');
    expect(registry.snapshot('shop/fields')?.lastError).toBe(series?.error);
  });

  test('at most maxSelectors live selectors: one more is a 429 until one goes idle', async () => {
    registry.ensure(settings({ maxSelectors: 2, selectorIdleS: 60 }));
    await served('field=a');
    clock += 30_000;
    await served('field=b');
    const third = ask('field=c');
    expect(third).toMatchObject({ kind: 'refused', code: 429 });
    expect(third.kind === 'refused' ? third.message : '').toContain(
      'already serves 2 label selectors (spec.maxSelectors)',
    );
    // A selector already live is still served.
    expect(ask('field=a').kind).toBe('served');
    // field=a was just named again: 60 s later field=b (named 60 s ago) is dropped, field=a is not.
    clock += 30_000;
    expect(ask('field=a').kind).toBe('served');
    clock += 30_000;
    registry.sweepIdle('shop/fields');
    expect(registry.snapshot('shop/fields')?.selectors.map((s) => s.labelSelector)).toStrictEqual(['field=a']);
    expect(store.find('shop', 'json_field').map((s) => s.labels)).toStrictEqual([{ field: 'a' }]);
    expect(ask('field=c').kind).toBe('served');
  });

  test('remove drops every series; a changed hash starts over', async () => {
    registry.ensure(settings());
    await served('field=a');
    expect(registry.ensure(settings())).toBe('unchanged');
    expect(registry.ensure(settings({ hash: 'h2' }))).toBe('restarted');
    expect(store.find('shop', 'json_field')).toStrictEqual([]);
    await served('field=a');
    registry.remove('shop/fields');
    expect(store.find('shop', 'json_field')).toStrictEqual([]);
    expect(registry.owns('shop', 'json_field')).toBe(false);
    expect(hub.stats().sources).toBe(0);
  });
});

describe('one MetricSource per metric name, the oldest', () => {
  test.each([
    {
      candidates: [
        { name: 'b', createdAt: '2026-01-02' },
        { name: 'a', createdAt: '2026-01-03' },
      ],
      owner: 'b',
    },
    {
      candidates: [
        { name: 'b', createdAt: '2026-01-02' },
        { name: 'a', createdAt: '2026-01-02' },
      ],
      owner: 'a',
    },
    { candidates: [{ name: 'a', createdAt: '2026-01-02', metricName: 'OTHER' }], owner: undefined },
  ])('$candidates → $owner', ({ candidates, owner }) => {
    const list = candidates.map((c) => ({ metricName: 'Queue_Depth', ...c }));
    expect(metricNameOwner(list, 'queue_depth')).toBe(owner);
  });
});

describe('status', () => {
  const now = new Date('2026-12-07T12:00:00Z');
  test('Ready, the live selectors and the last error; no values', () => {
    const status = metricSourceStatus(
      {},
      metricSourceReady('queue_messages_ready', 1),
      {
        selectors: [
          { labelSelector: 'queue=a', since: now, lastRequestAt: now, value: 12, error: undefined },
          { labelSelector: 'queue=b', since: now, lastRequestAt: now, value: undefined, error: 'connection refused' },
        ],
        lastError: 'connection refused',
      },
      3,
      now,
    );
    expect(status).toStrictEqual({
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'MetricSourceReady',
          message: 'serving external metric queue_messages_ready (1 live selector)',
          lastTransitionTime: '2026-12-07T12:00:00Z',
        },
      ],
      selectors: [
        { labelSelector: 'queue=a', since: '2026-12-07T12:00:00Z' },
        { labelSelector: 'queue=b', since: '2026-12-07T12:00:00Z', error: 'connection refused' },
      ],
      lastError: 'connection refused',
      observedGeneration: 3,
    });
  });

  test('refused: no selectors, and the patch clears what went away', () => {
    const status = metricSourceStatus({}, metricSourceRefused('MetricNameConflict', 'x'), undefined, undefined, now);
    expect(metricSourceStatusPatch(status)).toStrictEqual({
      conditions: [
        {
          type: 'Ready',
          status: 'False',
          reason: 'MetricNameConflict',
          message: 'x',
          lastTransitionTime: '2026-12-07T12:00:00Z',
        },
      ],
      selectors: [],
      lastError: null,
      observedGeneration: null,
    });
  });
});
