// In-memory sources for the ReaderHub and the scaling core: they count opens, reads and closes, lease a shared
// "connection" per backend (so SharedPool.held() shows what is still open), and read whatever the test says: a value,
// a BackendError, a ScalerError, or a read that hangs until the test settles it.
import { BackendError, ScalerError } from '../../src/errors.ts';
import {
  defineScaler,
  type MetricType,
  type Reader,
  type Scaler,
  type SharedResources,
  type Source,
} from '../../src/scalers/scaler.ts';

export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(err: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** What the next reads of a FakeSource do. */
export type Behavior =
  | { readonly kind: 'value'; readonly value: number }
  | { readonly kind: 'backend-error'; readonly message: string }
  | { readonly kind: 'scaler-error'; readonly message: string }
  /** Every read hangs until the test settles it through `pending`. */
  | { readonly kind: 'hang' };

export class FakeSource implements Source<number> {
  readonly key: string;
  readonly backend: string;
  readonly describe: string;
  readonly timeoutMs: number;
  behavior: Behavior = { kind: 'value', value: 0 };
  opens = 0;
  closes = 0;
  reads = 0;
  /** When each read started (Date.now(), so fake timers give exact times). */
  readonly readAt: number[] = [];
  /** Reads started and not settled yet. */
  inFlight = 0;
  /** The largest number of reads in flight at once. */
  maxInFlight = 0;
  /** Hanging reads, oldest first. */
  readonly pending: Deferred<number>[] = [];
  /** The push path the hub handed to the last open(). */
  workArrived: () => void = () => undefined;

  /** Its backend answers a turn's reads together (Source.batched). */
  readonly batched: boolean;
  /** Its reader's Reader.timeoutMs (the limit of a read that is one of a turn's batch), if it has one. */
  readonly #turnTimeoutMs: ((batch: number) => number) | undefined;

  constructor(
    key: string,
    backend = 'backend-1',
    options: { timeoutMs?: number; batched?: boolean; turnTimeoutMs?: (batch: number) => number } = {},
  ) {
    this.key = key;
    this.backend = backend;
    this.describe = `fake://${backend}`;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.batched = options.batched ?? false;
    this.#turnTimeoutMs = options.turnTimeoutMs;
  }

  set(behavior: Behavior): this {
    this.behavior = behavior;
    return this;
  }

  value(value: number): this {
    return this.set({ kind: 'value', value });
  }

  open(shared: SharedResources, workArrived: () => void): Reader<number> {
    this.opens++;
    this.workArrived = workArrived;
    const lease = shared.lease(
      `conn|${this.backend}`,
      () => ({ backend: this.backend }),
      () => undefined,
    );
    let closed = false;
    const reader: Reader<number> = {
      read: () => this.#read(),
      close: () => {
        if (!closed) {
          closed = true;
          this.closes++;
          lease.release();
        }
        return Promise.resolve();
      },
    };
    const turnTimeoutMs = this.#turnTimeoutMs;
    return turnTimeoutMs === undefined ? reader : { ...reader, timeoutMs: turnTimeoutMs };
  }

  async #read(): Promise<number> {
    this.reads++;
    this.readAt.push(Date.now());
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      const b = this.behavior;
      switch (b.kind) {
        case 'value':
          return b.value;
        case 'backend-error':
          throw new BackendError(b.message);
        case 'scaler-error':
          throw new ScalerError(b.message);
        case 'hang': {
          const d = deferred<number>();
          this.pending.push(d);
          return await d.promise;
        }
      }
    } finally {
      this.inFlight--;
    }
  }

  /** Settles the oldest hanging read with `value`. */
  settle(value: number): void {
    const d = this.pending.shift();
    if (d === undefined) throw new Error(`no read of ${this.key} is hanging`);
    d.resolve(value);
  }
}

/** A scaler reading `source`: value as read, active when above 0 (KEDA's activation threshold 0). */
export function fakeScaler(
  source: Source<number>,
  options: { index?: number; name?: string; target?: number; metricType?: MetricType } = {},
): Scaler {
  return defineScaler({
    metricName: `s${options.index ?? 0}-${options.name ?? 'fake'}`,
    target: options.target ?? 5,
    metricType: options.metricType ?? 'AverageValue',
    activation: 0,
    source,
    evaluate: (value) => ({ value, active: value > 0 }),
  });
}
