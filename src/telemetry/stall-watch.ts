/**
 * Says in the log when the process stopped running JavaScript for a while: a timer due every second that fires late
 * by more than `thresholdMs` means nothing ran in between (a long synchronous task, or the garbage collector near the
 * heap limit). The line gives how long, and the V8 heap used against its limit at that moment, so a lost Lease or a
 * gap in the log can be told apart from a slow API server. (bench/scale.ts at 10,000 objects showed a 29 s gap with no
 * line, followed by the Lease lost; nothing said why.)
 */
import { getHeapStatistics } from 'node:v8';
import type { Logger } from '../log.ts';

export interface HeapFigures {
  readonly usedBytes: number;
  readonly limitBytes: number;
}

/** What to log for a tick due at `dueAt` that ran at `ranAt` (ms), or undefined when it was not late enough. */
export function stallReport(
  dueAt: number,
  ranAt: number,
  heap: HeapFigures,
  thresholdMs: number,
): { readonly message: string; readonly fields: Record<string, unknown> } | undefined {
  const lateMs = ranAt - dueAt;
  if (!(lateMs > thresholdMs)) return undefined;
  const mib = (bytes: number) => Math.round(bytes / 1048576);
  const share = heap.limitBytes > 0 ? heap.usedBytes / heap.limitBytes : 0;
  const near = share >= 0.8;
  return {
    message: `the process ran no JavaScript for ${(lateMs / 1000).toFixed(1)} s${near ? `: the V8 heap is at ${Math.round(share * 100)} % of its limit, so garbage collection is the likely cause (raise the memory limit and --max-old-space-size together)` : ''}`,
    fields: { stalledMs: Math.round(lateMs), heapUsedMiB: mib(heap.usedBytes), heapLimitMiB: mib(heap.limitBytes) },
  };
}

/** Checks every `periodMs` (unref'd: it never keeps the process alive); returns a function that stops it. */
export function watchStalls(log: Logger, options: { periodMs?: number; thresholdMs?: number } = {}): () => void {
  const periodMs = options.periodMs ?? 1000;
  const thresholdMs = options.thresholdMs ?? 2000;
  let dueAt = performance.now() + periodMs;
  const timer = setInterval(() => {
    const ranAt = performance.now();
    const stats = getHeapStatistics();
    const report = stallReport(
      dueAt,
      ranAt,
      { usedBytes: stats.used_heap_size, limitBytes: stats.heap_size_limit },
      thresholdMs,
    );
    if (report !== undefined) log('warn', report.message, report.fields);
    dueAt = ranAt + periodMs;
  }, periodMs);
  timer.unref();
  return () => {
    clearInterval(timer);
  };
}
