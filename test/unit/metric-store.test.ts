import { describe, expect, it } from 'vitest';
import { MetricStore, type Series } from '../../src/metric-store.ts';

const series = (over: Partial<Series> & Pick<Series, 'metricName' | 'owner'>): Series => ({
  namespace: 'ns',
  labels: {},
  value: 1,
  error: undefined,
  timestamp: new Date(0),
  ...over,
});

describe('MetricStore', () => {
  it('finds a metric by name case-insensitively (the HPA controller asks in lower case) and keeps its spelling', () => {
    const store = new MetricStore();
    store.set(series({ metricName: 's0-rabbitmq-Orders', owner: 'ns/a' }));
    expect(store.find('ns', 's0-rabbitmq-orders').map((s) => s.metricName)).toEqual(['s0-rabbitmq-Orders']);
    expect(store.find('ns', 'S0-RABBITMQ-ORDERS')).toHaveLength(1);
    expect(store.metricNames('ns')).toEqual(['s0-rabbitmq-Orders']);
  });

  it('keeps one series per owner, replaces it on write, and scopes by namespace', () => {
    const store = new MetricStore();
    store.set(series({ metricName: 'm', owner: 'ns/a', value: 1 }));
    store.set(series({ metricName: 'm', owner: 'ns/a', value: 2 }));
    store.set(series({ metricName: 'm', owner: 'ns/b', value: 3 }));
    store.set(series({ namespace: 'other', metricName: 'm', owner: 'other/a', value: 4 }));
    expect(store.find('ns', 'm').map((s) => s.value)).toEqual([2, 3]);
    expect(store.find('other', 'm').map((s) => s.value)).toEqual([4]);
    expect(store.metricNames()).toEqual(['m']);
  });

  it('deletes every series of an owner and nothing else', () => {
    const store = new MetricStore();
    store.set(series({ metricName: 'm1', owner: 'ns/a' }));
    store.set(series({ metricName: 'm2', owner: 'ns/a' }));
    store.set(series({ metricName: 'm1', owner: 'ns/b' }));
    store.deleteOwner('ns/a');
    expect(store.find('ns', 'm1').map((s) => s.owner)).toEqual(['ns/b']);
    expect(store.find('ns', 'm2')).toEqual([]);
    expect(store.metricNames('ns')).toEqual(['m1']);
  });
});
