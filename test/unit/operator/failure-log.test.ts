// The failure log under fake timers: the first trigger with an error is logged with its name; others with the same
// error within the window are one summary line when it ends; different errors are each logged; recoveries collapse
// the same way; flush() writes what is counted; distinct errors are forgotten once their window is over.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FailureLog } from '../../../src/operator/failure-log.ts';
import type { Level } from '../../../src/log.ts';

interface Line {
  readonly level: Level;
  readonly message: string;
  readonly fields: Record<string, unknown> | undefined;
}

let lines: Line[];
let failures: FailureLog;
const WINDOW = 60_000;

beforeEach(() => {
  vi.useFakeTimers({ now: new Date('2026-12-07T00:00:00Z') });
  lines = [];
  failures = new FailureLog((level, message, fields) => lines.push({ level, message, fields }), { windowMs: WINDOW });
});

afterEach(() => {
  vi.useRealTimers();
});

const TIMEOUT = 'cannot reach the RabbitMQ management API at http://127.0.0.1:15672: timed out';

describe('FailureLog', () => {
  it('10,000 triggers failing with one error within a window: two lines, the first named, then the count', async () => {
    for (let i = 0; i < 10_000; i++) failures.failed(`s0-rabbitmq-q${i} of ns/so-${i}`, TIMEOUT, { failingSince: 'x' });
    expect(lines).toStrictEqual([
      {
        level: 'warn',
        message: 'trigger s0-rabbitmq-q0 of ns/so-0 failed; its value is unknown (not zero)',
        fields: { error: TIMEOUT, failingSince: 'x' },
      },
    ]);
    await vi.advanceTimersByTimeAsync(WINDOW - 1);
    expect(lines).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(lines[1]).toStrictEqual({
      level: 'warn',
      message: '9999 more triggers failed with the same error in the 60 s after that line',
      fields: {
        error: TIMEOUT,
        examples: ['s0-rabbitmq-q1 of ns/so-1', 's0-rabbitmq-q2 of ns/so-2', 's0-rabbitmq-q3 of ns/so-3'],
      },
    });
    // The next failure with it opens a new window: logged by name again.
    failures.failed('s0-rabbitmq-q0 of ns/so-0', TIMEOUT);
    expect(lines).toHaveLength(3);
    expect(lines[2]?.message).toBe('trigger s0-rabbitmq-q0 of ns/so-0 failed; its value is unknown (not zero)');
  });

  it('errors that differ (one per queue) are each logged, and never summarised', async () => {
    failures.failed('s0-a of ns/a', 'queue "a" does not exist');
    failures.failed('s0-b of ns/b', 'queue "b" does not exist');
    await vi.advanceTimersByTimeAsync(2 * WINDOW);
    expect(lines.map((l) => l.message)).toStrictEqual([
      'trigger s0-a of ns/a failed; its value is unknown (not zero)',
      'trigger s0-b of ns/b failed; its value is unknown (not zero)',
    ]);
  });

  it('a line after the window has passed is logged, and writes the count of the window before it first', () => {
    failures.failed('t1', TIMEOUT);
    failures.failed('t2', TIMEOUT);
    vi.setSystemTime(Date.now() + WINDOW); // the clock moves without the timer having fired yet
    failures.failed('t3', TIMEOUT);
    expect(lines.map((l) => l.message)).toStrictEqual([
      'trigger t1 failed; its value is unknown (not zero)',
      '1 more trigger failed with the same error in the 60 s after that line',
      'trigger t3 failed; its value is unknown (not zero)',
    ]);
  });

  it('recoveries collapse per window whatever the trigger; flush() writes what is counted', () => {
    for (const t of ['t1', 't2', 't3', 't4']) failures.recovered(t);
    failures.failed('t5', TIMEOUT);
    failures.failed('t6', TIMEOUT);
    expect(lines.map((l) => l.message)).toStrictEqual([
      'trigger t1 recovered',
      'trigger t5 failed; its value is unknown (not zero)',
    ]);
    failures.flush();
    expect(lines.slice(2)).toStrictEqual([
      {
        level: 'info',
        message: '3 more triggers recovered in the 60 s after that line',
        fields: { examples: ['t2', 't3', 't4'] },
      },
      {
        level: 'warn',
        message: '1 more trigger failed with the same error in the 60 s after that line',
        fields: { error: TIMEOUT, examples: ['t6'] },
      },
    ]);
    failures.flush();
    expect(lines).toHaveLength(4);
  });

  it('holds no timer for errors logged once, and forgets thousands of distinct errors once their windows end', async () => {
    for (let i = 0; i < 1000; i++) failures.failed(`t${i}`, `queue "q${i}" does not exist`);
    expect(vi.getTimerCount()).toBe(0);
    expect(failures.held).toBe(1000);
    await vi.advanceTimersByTimeAsync(WINDOW);
    failures.failed('t-late', 'another error');
    expect(failures.held).toBe(1);
    // Every window was over and had counted nothing: a second line for q0 is logged by name again.
    failures.failed('t0', 'queue "q0" does not exist');
    expect(lines).toHaveLength(1002);
  });
});
