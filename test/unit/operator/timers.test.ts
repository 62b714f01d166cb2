// Proves setSafeTimeout honours delays above 2^31 − 1 ms (where a plain setTimeout fires after 1 ms), fires exactly
// once at the due time, and that clear() stops it, also between its steps.
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { MAX_TIMER_MS, setSafeTimeout } from '../../../src/operator/timers.ts';

describe('setSafeTimeout', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date('2026-06-01T00:00:00Z') });
  });
  afterEach(() => {
    vi.restoreAllMocks();
    vi.useRealTimers();
  });

  test('the fake clock overflows like Node: a plain setTimeout above 2^31 − 1 ms fires after 1 ms', () => {
    // Guards the test below: it would prove nothing if the fake timers honoured any delay.
    const fn = vi.fn();
    setTimeout(fn, MAX_TIMER_MS + 1);
    vi.advanceTimersByTime(1);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  test.each([
    { comment: 'an ordinary delay', delay: 1500 },
    { comment: 'exactly the largest timer delay', delay: MAX_TIMER_MS },
    { comment: '2^31 + 1000 ms (about 24.9 days)', delay: 2 ** 31 + 1000 },
    { comment: 'a year (the longest cooldown)', delay: 31_536_000_000 },
  ])('$comment: fires once, at the delay and not before', ({ delay }) => {
    const steps = vi.spyOn(globalThis, 'setTimeout');
    const fn = vi.fn();
    setSafeTimeout(fn, delay);
    // Checked first: a step above the limit would fire after 1 ms (and re-arm every ms, for ever).
    expect(steps.mock.calls.map(([, ms]) => ms ?? 0).every((ms) => ms <= MAX_TIMER_MS)).toBe(true);
    vi.advanceTimersByTime(1);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(delay - 2);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fn).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(3 * MAX_TIMER_MS);
    expect(fn).toHaveBeenCalledTimes(1);
    // Waited in as few steps as the limit allows.
    expect(steps).toHaveBeenCalledTimes(Math.ceil(delay / MAX_TIMER_MS));
  });

  test.each([
    { comment: 'a zero delay fires on the next tick', delay: 0 },
    { comment: 'a negative delay fires on the next tick', delay: -50 },
  ])('$comment', ({ delay }) => {
    const fn = vi.fn();
    setSafeTimeout(fn, delay);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(0);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  test.each([
    { comment: 'before the first step', clearAfter: 10 },
    { comment: 'after the first step, during the second', clearAfter: MAX_TIMER_MS + 10 },
  ])('clear() $comment prevents it', ({ clearAfter }) => {
    const fn = vi.fn();
    const timer = setSafeTimeout(fn, 2 ** 31 + 1000);
    vi.advanceTimersByTime(clearAfter);
    timer.clear();
    vi.advanceTimersByTime(3 * MAX_TIMER_MS);
    expect(fn).not.toHaveBeenCalled();
    expect(vi.getTimerCount()).toBe(0);
  });

  test('clear() after it fired is harmless', () => {
    const fn = vi.fn();
    const timer = setSafeTimeout(fn, 10);
    vi.advanceTimersByTime(10);
    timer.clear();
    timer.clear();
    expect(fn).toHaveBeenCalledTimes(1);
  });
});
