import { describe, expect, it } from 'vitest';
import { stallReport, watchStalls } from '../../../src/telemetry/stall-watch.ts';

const MiB = 1048576;
const heap = (used: number, limit = 400) => ({ usedBytes: used * MiB, limitBytes: limit * MiB });

describe('stallReport', () => {
  it.each([
    // [late by ms, heap used MiB, expected message or undefined]
    { late: 0, used: 100, want: undefined },
    { late: 2000, used: 100, want: undefined }, // at the threshold: not reported
    { late: 2001, used: 100, want: 'the process ran no JavaScript for 2.0 s' },
    { late: 29_000, used: 100, want: 'the process ran no JavaScript for 29.0 s' },
    {
      late: 29_000,
      used: 330,
      want: 'the process ran no JavaScript for 29.0 s: the V8 heap is at 83 % of its limit, so garbage collection is the likely cause (raise the memory limit and --max-old-space-size together)',
    },
  ])('late by $late ms, heap $used MiB of 400', ({ late, used, want }) => {
    expect(stallReport(1000, 1000 + late, heap(used), 2000)?.message).toBe(want);
  });

  it('gives the figures as fields', () => {
    expect(stallReport(0, 5400, heap(330.4), 2000)?.fields).toStrictEqual({
      stalledMs: 5400,
      heapUsedMiB: 330,
      heapLimitMiB: 400,
    });
  });
});

describe('watchStalls', () => {
  it('logs a blocked event loop, with how long it was blocked', async () => {
    const lines: { level: string; message: string; stalledMs: number }[] = [];
    const stop = watchStalls(
      (level, message, fields) => {
        lines.push({ level, message, stalledMs: Number(fields?.['stalledMs']) });
      },
      { periodMs: 20, thresholdMs: 300 },
    );
    try {
      await new Promise((resolve) => setTimeout(resolve, 60));
      const until = performance.now() + 800;
      while (performance.now() < until) {
        // the event loop is blocked: no timer runs
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
      // A busy machine may add a stall of its own; the one made here is among what was said.
      const made = lines.filter((line) => line.stalledMs >= 700);
      expect(made).toHaveLength(1);
      expect(made[0]?.level).toBe('warn');
      expect(made[0]?.message).toMatch(/^the process ran no JavaScript for \d+\.\d s/);
    } finally {
      stop();
    }
  });
});
