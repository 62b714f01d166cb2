/**
 * A keyed work queue with controller-runtime's semantics:
 * - a key is queued at most once (adding a queued key is a no-op);
 * - a key is never handled by two workers at once; a key added while it is being handled is handled again after;
 * - a handler that throws is retried with per-key exponential backoff, unless it threw a TerminalError;
 * - a handler may ask to be called again after a delay (`requeueAfterMs`), which also resets its backoff;
 * - two priorities: a `low` key (a status refresh: a scaling loop has news; the periodic resync) waits while any
 *   `high` key (a change of the object, a retry) is queued, and becomes `high` when added as such. After a mass create, news from
 *   the new objects' scaling loops kept ten thousand status refreshes ahead of the objects still waiting for their
 *   HPA; now those go first.
 */
import { SluiceError, describeError } from '../errors.ts';

export interface HandlerResult {
  readonly requeueAfterMs?: number;
}

export type Handler = (key: string) => Promise<HandlerResult | undefined>;

/** `high`: the object changed, a retry; `low`: a status refresh or the periodic resync, which may wait. */
export type Priority = 'high' | 'low';

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

  // Each key is in #queued with its priority, and in the list of that priority; a key raised from low to high stays
  // in #low as a stale entry, skipped when reached.
  readonly #high: string[] = [];
  readonly #low: string[] = [];
  readonly #queued = new Map<string, Priority>();
  readonly #processing = new Set<string>();
  /** Keys added while being handled, with the priority to queue them at once done. */
  readonly #dirty = new Map<string, Priority>();
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

  /** Queues `key` now (`low`: after every `high` key). */
  add(key: string, priority: Priority = 'high'): void {
    if (this.#stopped) return;
    if (priority === 'high') this.#clearTimer(key);
    if (this.#processing.has(key)) {
      if (this.#dirty.get(key) !== 'high') this.#dirty.set(key, priority);
      return;
    }
    const queued = this.#queued.get(key);
    if (queued === 'high' || queued === priority) return;
    this.#queued.set(key, priority);
    (priority === 'high' ? this.#high : this.#low).push(key);
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
    return this.#queued.size;
  }

  /** Resolves when nothing is queued or being handled (delayed keys do not count). */
  async idle(): Promise<void> {
    if (this.#active === 0 && this.#queued.size === 0) return;
    await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Stops accepting keys, drops delayed ones and waits for running handlers. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const { timer } of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    this.#high.length = 0;
    this.#low.length = 0;
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

  /** The next key to handle: the oldest high one, else the oldest low one (stale entries skipped). */
  #next(): string | undefined {
    for (const [list, priority] of [
      [this.#high, 'high'],
      [this.#low, 'low'],
    ] as const) {
      for (let key = list.shift(); key !== undefined; key = list.shift()) {
        if (this.#queued.get(key) === priority) return key;
      }
    }
    return undefined;
  }

  #pump(): void {
    while (!this.#stopped && this.#active < this.#concurrency && this.#queued.size > 0) {
      const key = this.#next();
      if (key === undefined) break;
      this.#queued.delete(key);
      this.#processing.add(key);
      this.#active++;
      void this.#run(key);
    }
    if (this.#active === 0 && this.#queued.size === 0) {
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
    const dirty = this.#dirty.get(key);
    this.#dirty.delete(key);
    if (dirty !== undefined) this.add(key, dirty);
    if (retryInMs !== undefined && dirty !== 'high') this.addAfter(key, retryInMs);
    this.#pump();
  }
}
