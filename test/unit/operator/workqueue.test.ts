import { describe, expect, it } from 'vitest';
import { TerminalError, WorkQueue } from '../../../src/operator/workqueue.ts';

const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

describe('WorkQueue', () => {
  it('de-duplicates a key that is already queued', async () => {
    const seen: string[] = [];
    const queue = new WorkQueue({ concurrency: 1, handler: (key) => Promise.resolve(void seen.push(key)) });
    queue.add('busy'); // occupies the only worker, so the adds below wait in the queue
    queue.add('a');
    queue.add('a');
    queue.add('b');
    queue.add('a');
    expect(queue.length).toBe(2);
    await queue.idle();
    expect(seen).toEqual(['busy', 'a', 'b']);
  });

  it('runs low keys after every high one; a low key added high moves up, once', async () => {
    const seen: string[] = [];
    const queue = new WorkQueue({ concurrency: 1, handler: (key) => Promise.resolve(void seen.push(key)) });
    queue.add('busy');
    queue.add('refresh-1', 'low');
    queue.add('refresh-2', 'low');
    queue.add('new-1');
    queue.add('refresh-2'); // the object changed meanwhile: it goes with the high keys
    queue.add('new-1', 'low'); // already queued high: stays high
    queue.add('new-2');
    expect(queue.length).toBe(4);
    await queue.idle();
    expect(seen).toEqual(['busy', 'new-1', 'refresh-2', 'new-2', 'refresh-1']);
  });

  it('never runs one key twice at once, and re-runs a key added while it ran', async () => {
    let running = 0;
    let maxRunning = 0;
    let calls = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const queue = new WorkQueue({
      concurrency: 4,
      handler: async () => {
        calls++;
        running++;
        maxRunning = Math.max(maxRunning, running);
        if (calls === 1) await gate;
        running--;
        return undefined;
      },
    });
    queue.add('k');
    await tick();
    queue.add('k'); // while the first run is blocked
    queue.add('k');
    await tick();
    expect(calls).toBe(1);
    release();
    await queue.idle();
    await tick();
    await queue.idle();
    expect(calls).toBe(2);
    expect(maxRunning).toBe(1);
  });

  it('runs different keys concurrently up to the limit', async () => {
    let running = 0;
    let maxRunning = 0;
    const queue = new WorkQueue({
      concurrency: 2,
      handler: async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await tick(5);
        running--;
        return undefined;
      },
    });
    for (const k of ['a', 'b', 'c', 'd']) queue.add(k);
    await queue.idle();
    expect(maxRunning).toBe(2);
  });

  it('retries a failing key with growing backoff, and not after a TerminalError', async () => {
    const times: number[] = [];
    const errors: (number | undefined)[] = [];
    const queue = new WorkQueue({
      baseDelayMs: 20,
      handler: (key) => {
        times.push(Date.now());
        if (key === 'terminal') return Promise.reject(new TerminalError('invalid'));
        return times.length < 3 ? Promise.reject(new Error('boom')) : Promise.resolve(undefined);
      },
      onError: (_key, _message, retryInMs) => errors.push(retryInMs),
    });
    queue.add('flaky');
    await tick(150);
    await queue.idle();
    expect(times).toHaveLength(3);
    expect(errors).toEqual([20, 40]);
    const gaps = [(times[1] ?? 0) - (times[0] ?? 0), (times[2] ?? 0) - (times[1] ?? 0)];
    expect(gaps[0]).toBeGreaterThanOrEqual(15);
    expect(gaps[1]).toBeGreaterThanOrEqual(35);

    queue.add('terminal');
    await tick(100);
    expect(times).toHaveLength(4);
    expect(errors.at(-1)).toBeUndefined();
    await queue.stop();
  });

  it('honours requeueAfterMs, and an earlier add wins over a later delayed one', async () => {
    const times: number[] = [];
    const start = Date.now();
    const queue = new WorkQueue({
      handler: () => {
        times.push(Date.now() - start);
        return Promise.resolve(times.length === 1 ? { requeueAfterMs: 40 } : undefined);
      },
    });
    queue.add('k');
    await tick(100);
    expect(times).toHaveLength(2);
    expect(times[1]).toBeGreaterThanOrEqual(35);

    queue.addAfter('x', 1000);
    queue.addAfter('x', 10);
    await tick(60);
    expect(times).toHaveLength(3);
    await queue.stop();
  });

  it('drops delayed keys on stop', async () => {
    let calls = 0;
    const queue = new WorkQueue({
      handler: () => {
        calls++;
        return Promise.resolve(undefined);
      },
    });
    queue.addAfter('k', 20);
    await queue.stop();
    await tick(50);
    expect(calls).toBe(0);
  });
});
