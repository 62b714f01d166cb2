// Proves BackendBreaker's state machine: only a BackendError (or an unexpected error) opens it, an open circuit refuses
// without calling the action and names the last failure, and resetTimeoutMs later exactly one probe goes through,
// whose outcome closes or re-opens it.
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { BackendError, ScalerError } from '../../../src/errors.ts';
import { BackendBreaker, type BreakerState } from '../../../src/scalers/breaker.ts';
import { deferred } from '../../support/fake-source.ts';

const RESET_MS = 1000;

let breakers: BackendBreaker[] = [];
let transitions: { state: BreakerState; lastError: string | undefined }[] = [];

function breaker(): BackendBreaker {
  const b = new BackendBreaker({ resetTimeoutMs: RESET_MS, windowMs: 10_000 }, (state, lastError) => {
    transitions.push({ state, lastError });
  });
  breakers.push(b);
  return b;
}

/** What one run() did: its value, or the error it rejected with. */
async function outcome(b: BackendBreaker, action: () => Promise<number>): Promise<{ value?: number; error?: Error }> {
  try {
    return { value: await b.run(action) };
  } catch (err) {
    return { error: err as Error };
  }
}

const ok = () => Promise.resolve(1);
const backendDown = () => Promise.reject(new BackendError('connect ECONNREFUSED 127.0.0.1:5672'));
const queueMissing = () => Promise.reject(new ScalerError('queue "orders" not found'));

/** Opens `b` with one backend failure. */
async function open(b: BackendBreaker): Promise<void> {
  await outcome(b, backendDown);
  expect(b.state).toBe('open');
}

beforeEach(() => {
  vi.useFakeTimers();
  transitions = [];
});
afterEach(() => {
  for (const b of breakers) b.shutdown();
  breakers = [];
  vi.useRealTimers();
});

describe('BackendBreaker from closed', () => {
  const rows: {
    comment: string;
    action: () => Promise<number>;
    state: BreakerState;
    /** The error run() rejects with: the action's own (not the open-circuit one). */
    error: string | undefined;
  }[] = [
    { comment: 'a success keeps it closed', action: ok, state: 'closed', error: undefined },
    {
      comment: 'a BackendError opens it (volume threshold 1) and is reported as itself',
      action: backendDown,
      state: 'open',
      error: 'connect ECONNREFUSED 127.0.0.1:5672',
    },
    {
      comment: 'a ScalerError (the backend answered) keeps it closed',
      action: queueMissing,
      state: 'closed',
      error: 'queue "orders" not found',
    },
    {
      comment: 'an unexpected error (not a ScalerError) counts as a backend failure',
      action: () => Promise.reject(new TypeError('fetch failed')),
      state: 'open',
      error: 'fetch failed',
    },
  ];
  test.each(rows)('$comment', async ({ action, state, error }) => {
    const b = breaker();
    const result = await outcome(b, action);
    expect(result.error?.message).toBe(error);
    expect(b.state).toBe(state);
  });

  test('ScalerErrors never open it, however many', async () => {
    const b = breaker();
    for (let i = 0; i < 20; i++) await outcome(b, queueMissing);
    expect(b.state).toBe('closed');
    expect(b.lastError).toBeUndefined();
    expect(transitions).toStrictEqual([]);
  });
});

describe('BackendBreaker open', () => {
  test('refuses without calling the action, with an error naming the last failure', async () => {
    const b = breaker();
    await open(b);
    const action = vi.fn(ok);
    const result = await outcome(b, action);
    expect(action).not.toHaveBeenCalled();
    expect(result.error).toBeInstanceOf(BackendError);
    expect(result.error?.message).toBe(
      'connect ECONNREFUSED 127.0.0.1:5672 (circuit open: the backend is read once per interval until it answers)',
    );
    expect(b.openError().message).toBe(result.error?.message);
    expect(b.lastError).toBe('connect ECONNREFUSED 127.0.0.1:5672');
  });

  test('stays open until resetTimeoutMs has passed, then is halfOpen', async () => {
    const b = breaker();
    await open(b);
    await vi.advanceTimersByTimeAsync(RESET_MS - 1);
    expect(b.state).toBe('open');
    await vi.advanceTimersByTimeAsync(1);
    expect(b.state).toBe('halfOpen');
  });

  test('halfOpen lets exactly one call through (the probe); the others are refused while it runs', async () => {
    const b = breaker();
    await open(b);
    await vi.advanceTimersByTimeAsync(RESET_MS);
    const probe = deferred<number>();
    const first = vi.fn(() => probe.promise);
    const others = [vi.fn(ok), vi.fn(ok), vi.fn(ok)];
    const firstOutcome = outcome(b, first);
    const refused = await Promise.all(others.map((action) => outcome(b, action)));
    expect(first).toHaveBeenCalledTimes(1);
    for (const action of others) expect(action).not.toHaveBeenCalled();
    for (const r of refused) expect(r.error?.message).toContain('(circuit open:');
    expect(b.state).toBe('halfOpen');
    probe.resolve(7);
    expect(await firstOutcome).toStrictEqual({ value: 7 });
    expect(b.state).toBe('closed');
  });

  const probes: { comment: string; probe: () => Promise<number>; state: BreakerState }[] = [
    { comment: 'a successful probe closes it', probe: ok, state: 'closed' },
    {
      comment: 'a probe answered with a ScalerError closes it (the backend answered)',
      probe: queueMissing,
      state: 'closed',
    },
    { comment: 'a failed probe opens it again', probe: backendDown, state: 'open' },
  ];
  test.each(probes)('$comment', async ({ probe, state }) => {
    const b = breaker();
    await open(b);
    await vi.advanceTimersByTimeAsync(RESET_MS);
    await outcome(b, probe);
    expect(b.state).toBe(state);
  });

  test('after a failed probe, it waits another resetTimeoutMs before the next probe', async () => {
    const b = breaker();
    await open(b);
    await vi.advanceTimersByTimeAsync(RESET_MS);
    await outcome(b, () => Promise.reject(new BackendError('503 Service Unavailable')));
    expect(b.state).toBe('open');
    // The message follows the latest failure.
    expect(b.openError().message).toMatch(/^503 Service Unavailable \(circuit open/);
    const early = vi.fn(ok);
    await vi.advanceTimersByTimeAsync(RESET_MS - 1);
    await outcome(b, early);
    expect(early).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(b.state).toBe('halfOpen');
    expect(await outcome(b, ok)).toStrictEqual({ value: 1 });
    expect(b.state).toBe('closed');
  });

  test('transitions are reported with the last failure', async () => {
    const b = breaker();
    await open(b);
    await vi.advanceTimersByTimeAsync(RESET_MS);
    await outcome(b, ok);
    const why = 'connect ECONNREFUSED 127.0.0.1:5672';
    expect(transitions).toStrictEqual([
      { state: 'open', lastError: why },
      { state: 'halfOpen', lastError: why },
      { state: 'closed', lastError: why },
    ]);
  });

  test('openError without any failure yet has a generic cause', () => {
    expect(breaker().openError().message).toBe(
      'the backend failed (circuit open: the backend is read once per interval until it answers)',
    );
  });

  test('shutdown refuses like an open circuit, without calling the action', async () => {
    const b = breaker();
    b.shutdown();
    const action = vi.fn(ok);
    const result = await outcome(b, action);
    expect(action).not.toHaveBeenCalled();
    expect(result.error).toBeInstanceOf(BackendError);
  });
});
