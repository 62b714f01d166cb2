// Proves WorkloadIndex: objects found by the workload they target, moved when their target changes, gone when
// deleted, namespaces and group/kind kept apart.
import { describe, expect, test } from 'vitest';
import type { Workload } from '../../../src/operator/ownership.ts';
import { WorkloadIndex } from '../../../src/operator/workload-index.ts';

const ORDERS: Workload = { group: 'apps', kind: 'Deployment', name: 'orders' };
const BILLING: Workload = { group: 'apps', kind: 'Deployment', name: 'billing' };

describe('WorkloadIndex', () => {
  test('finds every object on a workload, and only in its namespace and group/kind', () => {
    const index = new WorkloadIndex();
    index.set('shop/a', 'shop', ORDERS);
    index.set('shop/b', 'shop', ORDERS);
    index.set('shop/c', 'shop', BILLING);
    index.set('other/a', 'other', ORDERS);
    index.set('shop/d', 'shop', { ...ORDERS, kind: 'StatefulSet' });
    index.set('shop/e', 'shop', { ...ORDERS, group: 'example.com' });
    expect(index.keys('shop', ORDERS)).toStrictEqual(['shop/a', 'shop/b']);
    expect(index.keys('other', ORDERS)).toStrictEqual(['other/a']);
    expect(index.keys('shop', { ...ORDERS, kind: 'StatefulSet' })).toStrictEqual(['shop/d']);
    expect(index.keys('nowhere', ORDERS)).toStrictEqual([]);
  });

  test('a change of target moves the object and returns the workload it left', () => {
    const index = new WorkloadIndex();
    expect(index.set('shop/a', 'shop', ORDERS)).toBeUndefined();
    expect(index.set('shop/a', 'shop', ORDERS)).toBeUndefined();
    expect(index.set('shop/a', 'shop', BILLING)).toStrictEqual(ORDERS);
    expect(index.keys('shop', ORDERS)).toStrictEqual([]);
    expect(index.keys('shop', BILLING)).toStrictEqual(['shop/a']);
  });

  test('a deleted object is gone; deleting returns its workload once', () => {
    const index = new WorkloadIndex();
    index.set('shop/a', 'shop', ORDERS);
    index.set('shop/b', 'shop', ORDERS);
    expect(index.delete('shop/a')).toStrictEqual(ORDERS);
    expect(index.delete('shop/a')).toBeUndefined();
    expect(index.keys('shop', ORDERS)).toStrictEqual(['shop/b']);
  });
});
