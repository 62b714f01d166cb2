// supervise: an informer stopped by an error is restarted with backoff that grows through a long outage (0.5 s
// doubling to 8 s) and starts from 0.5 s again after a quiet minute.
import type { Informer, KubernetesObject } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { HEALTHY_AFTER_MS, supervise } from '../../../src/operator/informers.ts';

/** An informer whose start() fails again (emits 'error') while `down`, as client-node's does when it cannot list. */
function fakeInformer() {
  const handlers = new Map<string, ((arg?: unknown) => void)[]>();
  const state = { down: true, starts: 0 };
  const emit = (verb: string, arg?: unknown) => {
    for (const h of handlers.get(verb) ?? []) h(arg);
  };
  const informer = {
    on(verb: string, cb: (arg?: unknown) => void) {
      handlers.set(verb, [...(handlers.get(verb) ?? []), cb]);
    },
    off: () => undefined,
    start: () => {
      state.starts++;
      emit('connect');
      if (state.down) emit('error', new Error('connect ECONNREFUSED'));
      return Promise.resolve();
    },
    stop: () => Promise.resolve(),
  } as unknown as Informer<KubernetesObject>;
  return { informer, state, emit };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('supervise', () => {
  it('backs off 0.5, 1, 2, 4, 8 s through an outage, though the informer says "connect" before each list', async () => {
    const { informer, emit } = fakeInformer();
    const delays: number[] = [];
    const supervision = supervise(
      'ScaledObjects',
      informer,
      (_level, _message, fields) => delays.push(Number(fields?.['delayMs'] ?? /in (\d+) ms/.exec(_message)?.[1])),
      () => undefined,
    );
    emit('error', new Error('watch ended'));
    await vi.advanceTimersByTimeAsync(120_000);
    expect(delays.slice(0, 7)).toStrictEqual([500, 1000, 2000, 4000, 8000, 8000, 8000]);
    supervision.stop();
  });

  it('after a quiet minute the next error restarts it after 0.5 s again', async () => {
    const { informer, state, emit } = fakeInformer();
    const delays: number[] = [];
    let restarts = 0;
    supervise(
      'HPAs',
      informer,
      (_level, message) => delays.push(Number(/in (\d+) ms/.exec(message)?.[1])),
      () => restarts++,
    );
    emit('error', new Error('watch ended'));
    await vi.advanceTimersByTimeAsync(4000);
    state.down = false;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(restarts).toBeGreaterThan(0);
    await vi.advanceTimersByTimeAsync(HEALTHY_AFTER_MS);
    delays.length = 0;
    emit('error', new Error('watch ended'));
    expect(delays).toStrictEqual([500]);
  });
});
