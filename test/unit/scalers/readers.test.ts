// Proves the ReaderHub's contract with in-memory sources and fake timers: one reader per source key whatever the
// subscribers, reference-counted close (leases released), the readers of one backend read together once per
// interval, never two reads in flight, the per-backend breaker seen through the hub (open → openError without I/O,
// one probe per interval, the others read at once when it closes; ScalerErrors never open it; backends independent),
// the stuck guard, the push path (wake), `changed`, deepEqual, and what /metrics reads (timing, breakers).
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { BackendBreaker } from '../../../src/scalers/breaker.ts';
import { deepEqual, ReaderHub } from '../../../src/scalers/readers.ts';
import { defineScaler, type Reading } from '../../../src/scalers/scaler.ts';
import { SharedPool } from '../../../src/scalers/shared.ts';
import { FakeSource, type Behavior } from '../../support/fake-source.ts';

const I = 1000;
/** Math.random() is pinned to 0.5, so each backend's turns fall at half an interval after its first subscriber. */
const PHASE = I / 2;

let pool: SharedPool;
let hub: ReaderHub;
let t0: number;

beforeEach(() => {
  vi.useFakeTimers({ now: new Date('2026-06-01T00:00:00Z') });
  vi.spyOn(Math, 'random').mockReturnValue(0.5);
  pool = new SharedPool();
  hub = new ReaderHub({ intervalMs: I, shared: pool });
  t0 = Date.now();
});

afterEach(async () => {
  await hub.close();
  vi.restoreAllMocks();
  vi.useRealTimers();
});

interface Delivery {
  readonly reading: Reading<number>;
  readonly changed: boolean;
  readonly t: number;
}

function recorder() {
  const deliveries: Delivery[] = [];
  return {
    deliveries,
    listener: (reading: Reading<number>, changed: boolean) => {
      deliveries.push({ reading, changed, t: Date.now() - t0 });
    },
    last: () => deliveries.at(-1),
    values: () => deliveries.map((d) => (d.reading.ok ? d.reading.value : `error: ${d.reading.error.message}`)),
  };
}

const flush = () => vi.advanceTimersByTimeAsync(0);
const advance = (ms: number) => vi.advanceTimersByTimeAsync(ms);
/** Moves the clock to `ms` after the test started. */
/** Advances the clock until `source` has been read `n` times (at most 10 s). */
async function waitForRead(source: FakeSource, n: number): Promise<void> {
  for (let k = 0; k < 100 && source.reads < n; k++) await advance(100);
  expect(source.reads).toBe(n);
}
const at = (ms: number) => vi.advanceTimersByTimeAsync(ms - (Date.now() - t0));
const since = (source: FakeSource) => source.readAt.map((t) => t - t0);

const down: Behavior = { kind: 'backend-error', message: 'connect ECONNREFUSED 10.0.0.1:5672' };
const OPEN_MESSAGE =
  'connect ECONNREFUSED 10.0.0.1:5672 (circuit open: the backend is read once per interval until it answers)';

describe('sharing', () => {
  test('three subscribers of one key: one reader, opened once, read once per interval', async () => {
    const q = new FakeSource('rabbit|orders', 'rabbit').value(3);
    const recs = [recorder(), recorder(), recorder()];
    for (const r of recs) hub.subscribe(q, r.listener);
    await flush();
    expect(q.opens).toBe(1);
    expect(q.reads).toBe(1);
    for (const r of recs) expect(r.values()).toStrictEqual([3]);

    await at(3 * I);
    expect(since(q)).toStrictEqual([0, PHASE, PHASE + I, PHASE + 2 * I]);
    expect(hub.readsOf(q.key)).toBe(4);
    for (const r of recs) expect(r.deliveries).toHaveLength(4);
    expect(hub.stats()).toMatchObject({ sources: 1, backends: 1, reads: 4 });
  });

  test('the first read does not wait for the turn; then the readers of one backend read together', async () => {
    const q1 = new FakeSource('rabbit|q1', 'rabbit').value(1);
    const q2 = new FakeSource('rabbit|q2', 'rabbit').value(2);
    const other = new FakeSource('prom|up', 'prom').value(1);
    hub.subscribe(q1, () => undefined);
    await at(200);
    hub.subscribe(q2, () => undefined);
    await at(300);
    hub.subscribe(other, () => undefined);
    await at(2 * I);
    expect(since(q1)).toStrictEqual([0, PHASE, PHASE + I]);
    expect(since(q2)).toStrictEqual([200, PHASE, PHASE + I]);
    // Another backend has its own timer (its turns start half an interval after its first subscriber).
    expect(since(other)).toStrictEqual([300, 300 + PHASE, 300 + PHASE + I]);
    expect(hub.stats()).toMatchObject({ sources: 3, backends: 2 });
  });

  test('a late subscriber gets the latest reading at once, without a read of its own', async () => {
    const q = new FakeSource('rabbit|orders', 'rabbit').value(7);
    const early = recorder();
    hub.subscribe(q, early.listener);
    await at(100);
    const late = recorder();
    hub.subscribe(q, late.listener);
    expect(late.deliveries).toHaveLength(0); // not synchronously, inside subscribe()
    await flush();
    expect(late.deliveries).toStrictEqual([{ reading: { ok: true, value: 7, at: t0 }, changed: true, t: 100 }]);
    expect(early.deliveries).toHaveLength(1);
    expect(q.reads).toBe(1);
    expect(hub.latest(q.key)).toStrictEqual({ ok: true, value: 7, at: t0 });
  });

  test('a subscriber that closes before the latest reading is handed over gets nothing', async () => {
    const q = new FakeSource('rabbit|orders', 'rabbit').value(7);
    hub.subscribe(q, () => undefined);
    await flush();
    const late = recorder();
    hub.subscribe(q, late.listener).close();
    await flush();
    expect(late.deliveries).toHaveLength(0);
  });

  test('a listener that throws does not keep the others from their reading', async () => {
    const q = new FakeSource('rabbit|orders', 'rabbit').value(7);
    const r = recorder();
    hub.subscribe(q, () => {
      throw new Error('listener bug');
    });
    hub.subscribe(q, r.listener);
    await flush();
    expect(r.values()).toStrictEqual([7]);
  });
});

describe('reference counting', () => {
  test('the reader closes (and releases its leases) with its last subscriber, not before', async () => {
    const q1 = new FakeSource('rabbit|q1', 'rabbit').value(1);
    const q2 = new FakeSource('rabbit|q2', 'rabbit').value(2);
    const a = hub.subscribe(q1, () => undefined);
    const b = hub.subscribe(q1, () => undefined);
    const c = hub.subscribe(q2, () => undefined);
    await flush();
    expect(pool.held()).toStrictEqual(new Map([['conn|rabbit', 2]]));

    a.close();
    await flush();
    expect(q1.closes).toBe(0);
    expect(pool.held()).toStrictEqual(new Map([['conn|rabbit', 2]]));

    b.close();
    b.close(); // idempotent
    a.close();
    await flush();
    expect(q1.closes).toBe(1);
    expect(pool.held()).toStrictEqual(new Map([['conn|rabbit', 1]]));
    expect(hub.stats()).toMatchObject({ sources: 1, backends: 1 });

    c.close();
    await flush();
    expect(q2.closes).toBe(1);
    expect(pool.held().size).toBe(0);
    expect(hub.stats()).toMatchObject({ sources: 0, backends: 0, breakers: {} });

    const reads = q1.reads + q2.reads;
    await advance(5 * I);
    expect(q1.reads + q2.reads).toBe(reads);
    expect(vi.getTimerCount()).toBe(0);
  });

  test('subscribing again after the last close opens a new reader', async () => {
    const q = new FakeSource('rabbit|q1', 'rabbit').value(1);
    hub.subscribe(q, () => undefined).close();
    await flush();
    const r = recorder();
    hub.subscribe(q, r.listener);
    await flush();
    expect([q.opens, q.closes]).toStrictEqual([2, 1]);
    expect(r.values()).toStrictEqual([1]);
    expect(pool.held()).toStrictEqual(new Map([['conn|rabbit', 1]]));
  });

  test('close() closes every reader and refuses new subscribers', async () => {
    const q = new FakeSource('rabbit|q1', 'rabbit').value(1);
    hub.subscribe(q, () => undefined);
    await flush();
    await hub.close();
    expect(q.closes).toBe(1);
    expect(pool.held().size).toBe(0);
    expect(() => hub.subscribe(q, () => undefined)).toThrow('closed');
  });
});

describe('changed', () => {
  const steps: { comment: string; behavior: Behavior; changed: boolean }[] = [
    { comment: 'the first reading', behavior: { kind: 'value', value: 1 }, changed: true },
    { comment: 'the same value', behavior: { kind: 'value', value: 1 }, changed: false },
    { comment: 'another value', behavior: { kind: 'value', value: 2 }, changed: true },
    { comment: 'an error after a value', behavior: { kind: 'scaler-error', message: 'no queue' }, changed: true },
    { comment: 'the same error again', behavior: { kind: 'scaler-error', message: 'no queue' }, changed: false },
    { comment: 'another error', behavior: { kind: 'scaler-error', message: 'no vhost' }, changed: true },
    { comment: 'a value after an error', behavior: { kind: 'value', value: 2 }, changed: true },
    { comment: 'zero after a value', behavior: { kind: 'value', value: 0 }, changed: true },
  ];

  test('follows each reading: ' + steps.map((s) => `${s.comment} → ${s.changed}`).join('; '), async () => {
    const q = new FakeSource('rabbit|q1', 'rabbit');
    const r = recorder();
    const [first, ...rest] = steps;
    if (first === undefined) throw new Error('no steps');
    q.set(first.behavior);
    hub.subscribe(q, r.listener);
    await flush();
    for (const step of rest) {
      q.set(step.behavior);
      await advance(I);
    }
    expect(r.deliveries.map((d) => d.changed)).toStrictEqual(steps.map((s) => s.changed));
  });

  const equal: { comment: string; a: unknown; b: unknown; equal: boolean }[] = [
    { comment: 'equal numbers', a: 1, b: 1, equal: true },
    { comment: 'NaN equals NaN', a: NaN, b: NaN, equal: true },
    { comment: '0 and -0 differ', a: 0, b: -0, equal: false },
    { comment: 'number and string differ', a: 1, b: '1', equal: false },
    { comment: 'null and undefined differ', a: null, b: undefined, equal: false },
    { comment: 'null and {} differ', a: null, b: {}, equal: false },
    {
      comment: 'objects with the same fields in another order',
      a: { x: 1, y: [1, 2] },
      b: { y: [1, 2], x: 1 },
      equal: true,
    },
    { comment: 'a nested difference', a: { x: { y: [1, 2] } }, b: { x: { y: [1, 3] } }, equal: false },
    { comment: 'an extra field', a: { x: 1 }, b: { x: 1, y: undefined }, equal: false },
    {
      comment: 'same number of fields, other names',
      a: { x: 1, y: undefined },
      b: { x: 1, z: undefined },
      equal: false,
    },
    { comment: 'arrays of different length', a: [1, 2], b: [1, 2, 3], equal: false },
    { comment: 'array and object with the same keys', a: [1], b: { 0: 1 }, equal: false },
    { comment: 'arrays of objects', a: [{ q: 'a', n: 1 }], b: [{ n: 1, q: 'a' }], equal: true },
  ];
  test.each(equal)('deepEqual: $comment', ({ a, b, equal: want }) => {
    expect(deepEqual(a, b)).toBe(want);
    expect(deepEqual(b, a)).toBe(want);
  });
});

describe('a scaler evaluates only changed readings', () => {
  test('an unchanged reading gives the last result at the new time, without evaluating again', async () => {
    const q = new FakeSource('rabbit|q-eval', 'rabbit').value(4);
    const evaluate = vi.fn((n: number) => ({ value: n * 10, active: n > 0 }));
    const scaler = defineScaler({
      metricName: 's0-q',
      target: 5,
      metricType: 'AverageValue',
      activation: 0,
      source: q,
      evaluate,
    });
    const results: { value: number | undefined; at: number; changed: boolean }[] = [];
    scaler.watch(hub, (result, changed) => {
      results.push({ value: result.ok ? result.sample.value : undefined, at: result.at - t0, changed });
    });
    await flush();
    await advance(2 * I); // two more reads of the same 4
    q.set({ kind: 'value', value: 6 });
    await advance(I);
    expect(results.map((r) => [r.value, r.changed])).toStrictEqual([
      [40, true],
      [40, false],
      [40, false],
      [60, true],
    ]);
    // Each delivery carries its own read's time, and evaluate ran once per distinct reading.
    expect(new Set(results.map((r) => r.at)).size).toBe(4);
    expect(evaluate.mock.calls.map(([n]) => n)).toStrictEqual([4, 6]);
  });
});

describe('one read in flight per reader', () => {
  test('a slow read makes the following turns skip it (no stacking); it reads again once settled', async () => {
    const slow = new FakeSource('rabbit|slow', 'rabbit').set({ kind: 'hang' });
    const fast = new FakeSource('rabbit|fast', 'rabbit').value(1);
    const r = recorder();
    hub.subscribe(slow, r.listener);
    hub.subscribe(fast, () => undefined);
    await at(3 * I);
    expect(slow.reads).toBe(1);
    expect(slow.maxInFlight).toBe(1);
    expect(r.deliveries).toHaveLength(0);
    // The other reader of the backend is not held up.
    expect(fast.reads).toBe(4);

    slow.settle(5);
    await flush();
    expect(r.values()).toStrictEqual([5]);
    slow.value(6);
    // It took 3 s: turns leave it alone for 3 × 3 s (REST_FACTOR), then read it again.
    await at(11 * I + PHASE);
    expect(slow.reads).toBe(1);
    await at(12 * I + PHASE);
    expect(slow.reads).toBe(2);
    expect(r.values()).toStrictEqual([5, 6]);
    expect(slow.maxInFlight).toBe(1);
  });
});

describe('a slow backend is rested', () => {
  test('reads alternating slow and quick: said slow once, never quick again while the alternation lasts', async () => {
    const logged: string[] = [];
    const rested = new ReaderHub({ intervalMs: I, shared: pool, log: (_level, message) => logged.push(message) });
    try {
      const q = new FakeSource('rabbit|flappy', 'rabbit').set({ kind: 'hang' });
      rested.subscribe(q, () => undefined);
      // 30 reads: every other one takes 1.2 s, the others answer at once.
      for (let i = 0; i < 30; i++) {
        await waitForRead(q, i + 1);
        if (i % 2 === 0) await advance(1200);
        q.settle(i);
      }
      expect(logged.filter((m) => m.includes('answers slowly'))).toHaveLength(1);
      expect(logged.filter((m) => m.includes('answers quickly again'))).toHaveLength(0);
    } finally {
      await rested.close();
    }
  });

  test('after a read of D ms its turns skip it for 3 × D, said once in the log; fast again, every interval again (said after a minute)', async () => {
    const logged: [string, string][] = [];
    const rested = new ReaderHub({
      intervalMs: I,
      shared: pool,
      log: (level, message) => logged.push([level, message]),
    });
    try {
      const q = new FakeSource('rabbit|big-list', 'rabbit').set({ kind: 'hang' });
      rested.subscribe(q, () => undefined);
      await at(1400);
      q.settle(1);
      q.value(2);
      await flush();
      // Read at 0 for 1.4 s: left alone until 1.4 + 4.2 s, so the turns at 1.5 … 5.5 s skip it.
      await at(7 * I + PHASE);
      expect(since(q)).toStrictEqual([0, 6 * I + PHASE, 7 * I + PHASE]);
      const slowly = [
        'warn',
        'backend fake://rabbit answers slowly (its reads take about 1400 ms): its sources are read about every 5.6 s instead of every 1.0 s, so that sluice keeps it busy at most a quarter of the time',
      ];
      // Quick reads since: the smoothed pace is quick after 8 of them, and the change is said a minute after that.
      expect(logged).toStrictEqual([slowly]);
      await at(60 * I + PHASE);
      expect(logged).toStrictEqual([slowly]);
      await at(80 * I + PHASE);
      expect(logged).toStrictEqual([
        slowly,
        ['info', 'backend fake://rabbit answers quickly again: read every interval'],
      ]);
    } finally {
      await rested.close();
    }
  });
});

describe('pace of a batched backend', () => {
  test('one slow batched turn moves the smoothed pace once, not once per source it read', async () => {
    const logged: string[] = [];
    const paced = new ReaderHub({ intervalMs: I, shared: pool, log: (_level, message) => logged.push(message) });
    try {
      const sources = [1, 2, 3, 4, 5].map((i) => new FakeSource(`rabbit|q${i}`, 'rabbit', { batched: true }).value(i));
      for (const s of sources) paced.subscribe(s, () => undefined);
      // Quick turns (0 ms), then one that takes 2 s: the average moves by a fifth of it (400 ms: a period of 1.6 s,
      // not past 2 intervals). Counted per source it would move five times, to about 1.3 s, and be called slow.
      await at(3 * I + PHASE);
      for (const s of sources) s.set({ kind: 'hang' });
      await at(4 * I + PHASE);
      await advance(2000);
      for (const s of sources) s.settle(0);
      await flush();
      expect(logged.filter((m) => m.includes('answers slowly'))).toStrictEqual([]);
    } finally {
      await paced.close();
    }
  });
});

describe('breaker through the hub', () => {
  function rabbitDown() {
    const queues = ['q1', 'q2', 'q3'].map((q) => new FakeSource(`rabbit|${q}`, 'rabbit').set(down));
    const recs = queues.map(() => recorder());
    queues.forEach((q, i) => hub.subscribe(q, recs[i]?.listener ?? (() => undefined)));
    const reads = () => queues.map((q) => q.reads);
    return { queues, recs, reads };
  }

  test('a backend failure opens it: every reader gets the same openError, without I/O while open', async () => {
    const { recs, reads } = rabbitDown();
    await flush();
    // The three first reads went out before the first failure came back.
    expect(reads()).toStrictEqual([1, 1, 1]);
    expect(hub.stats().breakers).toStrictEqual({ 'fake://rabbit': 'open' });
    for (const r of recs) expect(r.values()).toStrictEqual([`error: ${OPEN_MESSAGE}`]);

    await at(PHASE); // a turn while open
    expect(reads()).toStrictEqual([1, 1, 1]);
    for (const r of recs) {
      expect(r.deliveries).toHaveLength(2);
      expect(r.last()).toMatchObject({ reading: { ok: false, error: { message: OPEN_MESSAGE } }, changed: false });
    }
  });

  test('a new reader of an open backend gets the openError without touching it', async () => {
    rabbitDown();
    await flush();
    const q4 = new FakeSource('rabbit|q4', 'rabbit').value(1);
    const r = recorder();
    hub.subscribe(q4, r.listener);
    await flush();
    expect(q4.reads).toBe(0);
    expect(r.values()).toStrictEqual([`error: ${OPEN_MESSAGE}`]);
  });

  test('after the interval exactly one probe; its success closes it and the others read at once', async () => {
    const { queues, recs, reads } = rabbitDown();
    await flush();
    await at(I + PHASE - 1);
    expect(hub.stats().breakers).toStrictEqual({ 'fake://rabbit': 'halfOpen' });
    expect(reads()).toStrictEqual([1, 1, 1]);
    for (const q of queues) q.value(4);

    await at(I + PHASE);
    // One probe (the first reader), then the other two at once, not at the next turn.
    expect(since(queues[0] as FakeSource)).toStrictEqual([0, I + PHASE]);
    expect(reads()).toStrictEqual([2, 2, 2]);
    expect(queues.map((q) => q.readAt.at(-1))).toStrictEqual(queues.map(() => t0 + I + PHASE));
    expect(hub.stats().breakers).toStrictEqual({ 'fake://rabbit': 'closed' });
    for (const r of recs) expect(r.last()).toMatchObject({ reading: { ok: true, value: 4 }, changed: true });

    await at(2 * I + PHASE);
    expect(reads()).toStrictEqual([3, 3, 3]);
  });

  test('while the backend stays down, it is probed once per interval, by one reader at a time', async () => {
    const { recs, reads } = rabbitDown();
    await flush();
    const probes: number[] = [];
    for (let turn = 1; turn <= 6; turn++) {
      await at(turn * I + PHASE);
      probes.push(reads().reduce((a, b) => a + b, 0) - 3);
    }
    // Cumulative probes after each turn from the first halfOpen one: one more every interval.
    expect(probes).toStrictEqual([1, 2, 3, 4, 5, 6]);
    expect(reads()).toStrictEqual([3, 3, 3]);
    // Probe or not, every reader reports the same error.
    for (const r of recs)
      for (const d of r.deliveries) expect(d.reading).toMatchObject({ ok: false, error: { message: OPEN_MESSAGE } });
  });

  test('a ScalerError (the backend answered) never opens it: every reader keeps reading every interval', async () => {
    const queues = ['q1', 'q2', 'q3'].map((q) =>
      new FakeSource(`rabbit|${q}`, 'rabbit').set({ kind: 'scaler-error', message: `queue ${q} not found` }),
    );
    const recs = queues.map(() => recorder());
    queues.forEach((q, i) => hub.subscribe(q, recs[i]?.listener ?? (() => undefined)));
    await at(5 * I);
    expect(queues.map((q) => q.reads)).toStrictEqual([6, 6, 6]);
    expect(hub.stats().breakers).toStrictEqual({ 'fake://rabbit': 'closed' });
    expect(recs[1]?.last()?.reading).toMatchObject({ ok: false, error: { message: 'queue q2 not found' } });
  });

  test('backends are independent: one open, the other read every interval', async () => {
    const { reads } = rabbitDown();
    const prom = new FakeSource('prom|up', 'prom').value(1);
    const r = recorder();
    hub.subscribe(prom, r.listener);
    await at(3 * I);
    expect(hub.stats().breakers['fake://prom']).toBe('closed');
    expect(hub.stats().breakers['fake://rabbit']).not.toBe('closed');
    expect(prom.reads).toBe(4);
    expect(r.deliveries.every((d) => d.reading.ok)).toBe(true);
    expect(reads().reduce((a, b) => a + b, 0)).toBeLessThan(3 + 3);
  });
});

describe('stuck guard', () => {
  test('a read outliving its timeout by 1 s is reported as failed; the reader is skipped until it settles', async () => {
    const q = new FakeSource('rabbit|q1', 'rabbit', { timeoutMs: 2000 }).set({ kind: 'hang' });
    const r = recorder();
    hub.subscribe(q, r.listener);
    await at(2999);
    expect(r.deliveries).toHaveLength(0);
    await at(3000);
    expect(r.deliveries).toHaveLength(1);
    expect(r.last()?.t).toBe(3000);
    expect(r.last()?.reading).toMatchObject({
      ok: false,
      error: {
        message:
          'reading fake://rabbit did not finish within 3000 ms although its timeout is 2000 ms; the reader is left alone until it returns',
      },
    });

    await at(6 * I);
    expect(q.reads).toBe(1);
    // The late answer is not delivered (the read was already reported as failed); the next turn reads again.
    q.settle(9);
    q.value(4);
    await flush();
    expect(r.deliveries).toHaveLength(1);
    // Reported failed after 3 s: rested for 3 × 3 s from then (REST_FACTOR), then read again.
    await at(11 * I + PHASE);
    expect(q.reads).toBe(1);
    await at(12 * I + PHASE);
    expect(q.reads).toBe(2);
    expect(r.values().at(-1)).toBe(4);
    // The hub's guard is not a backend failure: the breaker stayed closed.
    expect(hub.stats().breakers).toStrictEqual({ 'fake://rabbit': 'closed' });
  });

  test("a batched turn's reads get the limit their reader gives for the batch (a list of many queues takes longer)", async () => {
    // The reader's limit grows by 1 s per read in the batch: three together may take 2 s + 3 s.
    const sources = [1, 2, 3].map(
      (i) =>
        new FakeSource(`rabbit|q${i}`, 'rabbit', {
          timeoutMs: 2000,
          batched: true,
          turnTimeoutMs: (batch) => 2000 + batch * 1000,
        }),
    );
    const recs = sources.map(() => recorder());
    sources.forEach((s, i) => hub.subscribe(s, recs[i]?.listener ?? (() => undefined)));
    await flush();
    for (const s of sources) s.set({ kind: 'hang' });
    await at(PHASE);
    expect(sources.map((s) => s.inFlight)).toStrictEqual([1, 1, 1]);
    // A lone read's limit (2 s) plus the guard's second has passed: not given up on.
    await at(PHASE + 3000);
    expect(recs.map((r) => r.deliveries.length)).toStrictEqual([1, 1, 1]);
    // The batch's limit (5 s) plus the guard's second has.
    await at(PHASE + 6000);
    expect(recs.map((r) => r.values().at(-1))).toStrictEqual(
      sources.map(
        () =>
          'error: reading fake://rabbit did not finish within 6000 ms although its timeout is 5000 ms; the reader is left alone until it returns',
      ),
    );
  });
});

describe('wake (the push path)', () => {
  test('reads at once when the last read started 100 ms ago or more, else 100 ms after it; bursts coalesce', async () => {
    const q = new FakeSource('rabbit|q1', 'rabbit').value(1);
    const r = recorder();
    hub.subscribe(q, r.listener);
    await flush();

    q.workArrived(); // 0 ms after the first read: waits until 100
    q.workArrived();
    hub.wake(q.key);
    await at(99);
    expect(q.reads).toBe(1);
    await at(100);
    expect(since(q)).toStrictEqual([0, 100]);

    await at(250);
    q.value(2);
    q.workArrived(); // 150 ms after the last read: at once
    await flush();
    expect(since(q)).toStrictEqual([0, 100, 250]);
    expect(r.values()).toStrictEqual([1, 1, 2]);

    // A burst of pushes between two turns, one every 10 ms: one read every 100 ms.
    for (let ms = 260; ms < PHASE; ms += 10) {
      q.workArrived();
      await at(ms);
    }
    expect(since(q)).toStrictEqual([0, 100, 250, 350, 450]);
  });

  test('no read while one is in flight, and none queued for later', async () => {
    const q = new FakeSource('rabbit|q1', 'rabbit').set({ kind: 'hang' });
    hub.subscribe(q, () => undefined);
    await at(300);
    q.workArrived();
    await at(400);
    expect(q.reads).toBe(1);
    q.settle(1);
    q.value(1);
    await at(450);
    expect(q.reads).toBe(1);
    expect(q.maxInFlight).toBe(1);
  });

  test('a wake for a key nobody reads is ignored', () => {
    expect(() => {
      hub.wake('nobody|reads|this');
    }).not.toThrow();
  });

  test('a pending wake is dropped when the reader closes', async () => {
    const q = new FakeSource('rabbit|q1', 'rabbit').value(1);
    const sub = hub.subscribe(q, () => undefined);
    await flush();
    q.workArrived(); // due at 100
    sub.close();
    await at(200);
    expect(q.reads).toBe(1);
  });
});

describe('timing and breakers (read by /metrics on scrape)', () => {
  test("a source's last read duration, its backend turn's lateness, and every backend's breaker state", async () => {
    const slow = new FakeSource('rabbit|slow', 'rabbit').set({ kind: 'hang' });
    const dead = new FakeSource('prom|dead', 'prom').set(down);
    hub.subscribe(slow, () => undefined);
    hub.subscribe(dead, () => undefined);
    expect(hub.timing('rabbit|slow')).toStrictEqual({ lastDurationMs: undefined, lagMs: undefined });
    await advance(300);
    slow.settle(7);
    await flush();
    // The first read started at once and took 300 ms; no turn yet.
    expect(hub.timing('rabbit|slow')).toStrictEqual({ lastDurationMs: 300, lagMs: undefined });
    expect(hub.breakers()).toStrictEqual([
      { describe: 'fake://rabbit', state: 'closed' },
      { describe: 'fake://prom', state: 'open' },
    ]);
    await at(PHASE);
    // The turn came on time (fake timers never run late).
    expect(hub.timing('rabbit|slow')?.lagMs).toBe(0);
    expect(hub.timing('nobody|reads-this')).toBeUndefined();
  });
});

describe('read budget and batched backends', () => {
  test('a turn of a batched backend is one read of the budget: five reads go out together under a budget of two', async () => {
    await hub.close();
    hub = new ReaderHub({ intervalMs: I, shared: pool, maxConcurrentReads: 2 });
    const sources = [1, 2, 3, 4, 5].map((i) => new FakeSource(`rabbit|q${i}`, 'rabbit', { batched: true }).value(i));
    for (const s of sources) hub.subscribe(s, recorder().listener);
    await flush();
    const hanging = sources.map((s) => s.set({ kind: 'hang' }));
    await at(PHASE);
    // All five started in the same turn (a backend that lists them would send one request).
    expect(hanging.map((s) => s.inFlight)).toStrictEqual([1, 1, 1, 1, 1]);
  });

  test('a batched turn is one call of the breaker and one timer, however many sources it reads', async () => {
    const sources = [1, 2, 3, 4, 5].map((i) => new FakeSource(`rabbit|q${i}`, 'rabbit', { batched: true }).value(i));
    const recs = sources.map(() => recorder());
    sources.forEach((s, i) => hub.subscribe(s, recs[i]?.listener ?? (() => undefined)));
    await flush();
    const run = vi.spyOn(BackendBreaker.prototype, 'run');
    const timeouts = vi.spyOn(globalThis, 'setTimeout');
    await at(PHASE);
    expect(sources.map((s) => s.reads)).toStrictEqual([2, 2, 2, 2, 2]);
    expect(run).toHaveBeenCalledTimes(1);
    // The turn's guard, and the backend's next turn.
    expect(timeouts).toHaveBeenCalledTimes(2);
    expect(recs.map((r) => r.values())).toStrictEqual([1, 2, 3, 4, 5].map((v) => [v, v]));
  });

  test("one read of a batched turn failing as the backend fails the turn's call: the circuit opens for all", async () => {
    const sources = [1, 2, 3].map((i) => new FakeSource(`rabbit|q${i}`, 'rabbit', { batched: true }).value(i));
    const recs = sources.map(() => recorder());
    sources.forEach((s, i) => hub.subscribe(s, recs[i]?.listener ?? (() => undefined)));
    await flush();
    sources[1]?.set(down);
    // Three good first reads (each source's own), then turns of which one read in three fails. Counted per read that
    // is a third of the reads, below the breaker's half, for ever; counted per turn, the fourth failed turn is more
    // than half of the calls (4 of 7).
    await at(PHASE + 2 * I);
    expect(hub.stats().breakers).toStrictEqual({ 'fake://rabbit': 'closed' });
    expect(recs.map((r) => r.values().at(-1))).toStrictEqual([1, `error: ${down.message}`, 3]);
    await at(PHASE + 3 * I);
    expect(hub.stats().breakers).toStrictEqual({ 'fake://rabbit': 'open' });
    expect(recs.map((r) => r.values().at(-1))).toStrictEqual([1, `error: ${OPEN_MESSAGE}`, 3]);
  });

  test('sources that are not batched share the budget read by read', async () => {
    await hub.close();
    hub = new ReaderHub({ intervalMs: I, shared: pool, maxConcurrentReads: 2 });
    const sources = [1, 2, 3, 4, 5].map((i) => new FakeSource(`http|u${i}`, 'http').value(i));
    for (const s of sources) hub.subscribe(s, recorder().listener);
    await flush();
    for (const s of sources) s.set({ kind: 'hang' });
    await at(PHASE);
    expect(sources.reduce((n, s) => n + s.inFlight, 0)).toBe(2);
  });
});
