/**
 * A keyed work queue with controller-runtime's semantics:
 * - a key is queued at most once (adding a queued key is a no-op);
 * - a key is never handled by two workers at once; a key added while it is being handled is handled again after;
 * - a handler that throws is retried with per-key exponential backoff, unless it threw a TerminalError;
 * - a handler may ask to be called again after a delay (`requeueAfterMs`), which also resets its backoff.
 */
import { SluiceError, describeError } from '../errors.ts';

export interface HandlerResult {
  readonly requeueAfterMs?: number;
}

export type Handler = (key: string) => Promise<HandlerResult | undefined>;

/** Thrown by a handler when retrying cannot help (e.g. an invalid spec); logged, not retried. */
export class TerminalError extends SluiceError {
  override name = 'TerminalError';

  constructor(message: string, options?: ErrorOptions) {
    super('TERMINAL', message, options);
  }
}

export interface WorkQueueOptions {
  readonly handler: Handler;
  readonly concurrency?: number;
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
  readonly onError?: (key: string, message: string, retryInMs: number | undefined) => void;
  /** How an error is put into words for onError (default: describeError). */
  readonly describe?: (err: unknown) => string;
}

export class WorkQueue {
  readonly #handler: Handler;
  readonly #concurrency: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #onError: WorkQueueOptions['onError'];
  readonly #describe: (err: unknown) => string;

  readonly #queue: string[] = [];
  readonly #queued = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #dirty = new Set<string>();
  readonly #failures = new Map<string, number>();
  readonly #timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  readonly #idleWaiters: (() => void)[] = [];
  #active = 0;
  #stopped = false;

  constructor(options: WorkQueueOptions) {
    this.#handler = options.handler;
    this.#concurrency = options.concurrency ?? 4;
    this.#baseDelayMs = options.baseDelayMs ?? 200;
    this.#maxDelayMs = options.maxDelayMs ?? 60_000;
    this.#onError = options.onError;
    this.#describe = options.describe ?? describeError;
  }

  /** Queues `key` now. */
  add(key: string): void {
    if (this.#stopped) return;
    this.#clearTimer(key);
    if (this.#processing.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#queued.has(key)) return;
    this.#queued.add(key);
    this.#queue.push(key);
    this.#pump();
  }

  /** Queues `key` after `delayMs`, unless it is queued sooner. An earlier pending delay wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.#stopped) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const at = Date.now() + delayMs;
    const existing = this.#timers.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.#timers.set(key, { at, timer });
  }

  /** Number of keys waiting (not counting delayed ones or those being handled). */
  get length(): number {
    return this.#queue.length;
  }

  /** Resolves when nothing is queued or being handled (delayed keys do not count). */
  async idle(): Promise<void> {
    if (this.#active === 0 && this.#queue.length === 0) return;
    await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Stops accepting keys, drops delayed ones and waits for running handlers. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const { timer } of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    this.#queue.length = 0;
    this.#queued.clear();
    await this.idle();
  }

  #clearTimer(key: string): void {
    const existing = this.#timers.get(key);
    if (existing) {
      clearTimeout(existing.timer);
      this.#timers.delete(key);
    }
  }

  #pump(): void {
    while (!this.#stopped && this.#active < this.#concurrency && this.#queue.length > 0) {
      const key = this.#queue.shift();
      if (key === undefined) break;
      this.#queued.delete(key);
      this.#processing.add(key);
      this.#active++;
      void this.#run(key);
    }
    if (this.#active === 0 && this.#queue.length === 0) {
      for (const resolve of this.#idleWaiters.splice(0)) resolve();
    }
  }

  async #run(key: string): Promise<void> {
    let retryInMs: number | undefined;
    try {
      const result = await this.#handler(key);
      this.#failures.delete(key);
      retryInMs = result?.requeueAfterMs;
    } catch (err) {
      if (err instanceof TerminalError) {
        this.#failures.delete(key);
        this.#onError?.(key, this.#describe(err), undefined);
      } else {
        const failures = (this.#failures.get(key) ?? 0) + 1;
        this.#failures.set(key, failures);
        retryInMs = Math.min(this.#baseDelayMs * 2 ** (failures - 1), this.#maxDelayMs);
        this.#onError?.(key, this.#describe(err), retryInMs);
      }
    } finally {
      this.#processing.delete(key);
      this.#active--;
    }
    if (this.#dirty.delete(key)) this.add(key);
    else if (retryInMs !== undefined) this.addAfter(key, retryInMs);
    this.#pump();
  }
}
