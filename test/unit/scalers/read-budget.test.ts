// The ReaderHub's process-wide read budget: at most `max` reads at once; past that, reads wait per namespace and are
// let in round-robin, so one namespace's many (or slow) sources cannot starve another's.
import { describe, expect, it } from 'vitest';
import { ReadBudget } from '../../../src/scalers/readers.ts';

describe('ReadBudget', () => {
  it('lets `max` reads run at once, queues the rest, and lets one in per release', async () => {
    const budget = new ReadBudget(2);
    const first = await budget.acquire('a');
    const second = await budget.acquire('a');
    let third = false;
    const waiting = budget.acquire('a').then((release) => {
      third = true;
      return release;
    });
    await Promise.resolve();
    expect(third).toBe(false);
    expect(budget.waiting).toBe(1);
    first();
    (await waiting)();
    expect(third).toBe(true);
    second();
    expect(budget.waiting).toBe(0);
  });

  it('serves namespaces round-robin: a namespace with many waiting reads does not starve another', async () => {
    const budget = new ReadBudget(1);
    const hold = await budget.acquire('busy');
    const order: string[] = [];
    const wait = (namespace: string, n: number) =>
      budget.acquire(namespace).then((release) => {
        order.push(`${namespace}${n}`);
        release();
      });
    const all = [
      wait('busy', 1),
      wait('busy', 2),
      wait('busy', 3),
      wait('quiet', 1),
      wait('busy', 4),
      wait('other', 1),
    ];
    hold();
    await Promise.all(all);
    expect(order).toEqual(['busy1', 'quiet1', 'other1', 'busy2', 'busy3', 'busy4']);
  });

  it('a release is idempotent: calling it twice frees one slot, not two', async () => {
    const budget = new ReadBudget(1);
    const release = await budget.acquire('a');
    release();
    release();
    const next = await budget.acquire('a');
    let extra = false;
    void budget.acquire('a').then(() => (extra = true));
    await Promise.resolve();
    expect(extra).toBe(false);
    next();
  });
});
