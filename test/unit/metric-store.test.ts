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

describe('MetricStore: touch, retain, ofOwner', () => {
  it('touch confirms an unchanged series at a new time and changes nothing else', () => {
    const store = new MetricStore();
    store.set(series({ metricName: 's0-q-Orders', owner: 'ns/a', value: 7, error: undefined }));
    store.set(series({ metricName: 's0-q-Orders', owner: 'ns/b', value: 9 }));
    // The name is matched case-insensitively, as everywhere in the store.
    store.touch('ns/a', 'ns', 's0-q-orders', new Date(5000));
    const [a, b] = store.find('ns', 's0-q-Orders');
    expect(a).toEqual(series({ metricName: 's0-q-Orders', owner: 'ns/a', value: 7, timestamp: new Date(5000) }));
    expect(b?.timestamp).toEqual(new Date(0)); // another owner's series is untouched
    // An error stays an error (never becomes a value) when touched.
    store.set(series({ metricName: 'e', owner: 'ns/a', value: undefined, error: 'queue gone' }));
    store.touch('ns/a', 'ns', 'e', new Date(6000));
    expect(store.find('ns', 'e')).toEqual([
      series({ metricName: 'e', owner: 'ns/a', value: undefined, error: 'queue gone', timestamp: new Date(6000) }),
    ]);
  });

  it('touch of a series that does not exist creates nothing', () => {
    const store = new MetricStore();
    store.touch('ns/a', 'ns', 'm', new Date(1));
    store.set(series({ metricName: 'm', owner: 'ns/a' }));
    store.touch('ns/b', 'ns', 'm', new Date(1)); // another owner
    store.touch('ns/a', 'other', 'm', new Date(1)); // another namespace
    expect(store.find('ns', 'm').map((s) => s.owner)).toEqual(['ns/a']);
    expect(store.find('other', 'm')).toEqual([]);
    expect(store.ofOwner('ns/b')).toEqual([]);
    expect(store.metricNames()).toEqual(['m']);
  });

  it("retain keeps the owner's series named (case-insensitively) and removes its others, not anyone else's", () => {
    const store = new MetricStore();
    store.set(series({ metricName: 's0-Keep', owner: 'ns/a' }));
    store.set(series({ metricName: 's1-drop', owner: 'ns/a' }));
    store.set(series({ metricName: 's1-drop', owner: 'ns/b' }));
    store.retain('ns/a', ['S0-KEEP']);
    expect(store.ofOwner('ns/a').map((s) => s.metricName)).toEqual(['s0-Keep']);
    expect(store.find('ns', 's1-drop').map((s) => s.owner)).toEqual(['ns/b']);
    expect(store.metricNames('ns').sort()).toEqual(['s0-Keep', 's1-drop']);
    // Retaining nothing removes everything of the owner, and the names nobody else has.
    store.retain('ns/a', []);
    expect(store.ofOwner('ns/a')).toEqual([]);
    expect(store.metricNames('ns')).toEqual(['s1-drop']);
    // An owner the store does not know is fine.
    store.retain('ns/nobody', ['x']);
    expect(store.metricNames()).toEqual(['s1-drop']);
  });

  it('ofOwner lists the series of one owner in every namespace, and forgets deleted ones', () => {
    const store = new MetricStore();
    store.set(series({ metricName: 'm1', owner: 'ns/a', value: 1 }));
    store.set(series({ namespace: 'other', metricName: 'm1', owner: 'ns/a', value: 2 }));
    store.set(series({ metricName: 'm1', owner: 'ns/a', value: 3 })); // replaces the first
    store.set(series({ metricName: 'm2', owner: 'ns/b', value: 4 }));
    expect(
      store
        .ofOwner('ns/a')
        .map((s) => `${s.namespace}:${s.value}`)
        .sort(),
    ).toEqual(['ns:3', 'other:2']);
    store.deleteOwner('ns/a');
    expect(store.ofOwner('ns/a')).toEqual([]);
    expect(store.ofOwner('ns/b').map((s) => s.value)).toEqual([4]);
    // Written again after a delete, it is found again.
    store.set(series({ metricName: 'm1', owner: 'ns/a', value: 5 }));
    expect(store.ofOwner('ns/a').map((s) => s.value)).toEqual([5]);
  });
});
