/**
 * The ReaderHub: one reader per source (a queue, a query, a URL), shared by every trigger of every ScaledObject that
 * reads it, and read about once per interval (default 1 s) whatever the number of triggers and HPA requests.
 *
 * - **Sharing.** Sources with the same key share one reader; the first subscriber opens it (and reads at once), the
 *   last one closes it, releasing the connections it leased (shared.ts).
 * - **Cadence.** The readers of one backend read together on one timer per backend, so a backend that can answer
 *   many reads in one request (the RabbitMQ management API lists a vhost's queues) sees them arrive together. A reader
 *   never has two reads in flight: a turn that finds its last read still running skips it.
 * - **Breaker.** Every read goes through the backend's circuit breaker (breaker.ts); a batched turn goes through it as
 *   one call (it is one request). While it is open no reader of that backend touches the network; each interval one of
 *   them probes, and when the probe succeeds the others read at once instead of waiting for their next turn.
 * - **Delivery.** Every completed read goes to the source's subscribers with `changed` telling whether it differs
 *   from the previous one. A read that outlives its timeout by a second is reported as failed (the reader is stuck)
 *   and the reader is left alone until it settles.
 * - **Push.** A reader whose backend can say "work arrived" calls the `workArrived` it was opened with; the hub then
 *   reads that source at once (at most every 100 ms).
 * - **Budget.** At most `maxConcurrentReads` reads run at once in the whole process. Past that, reads wait in one
 *   queue per namespace (the namespace of a source's first subscriber), served round-robin: a namespace with a
 *   thousand slow sources delays its own reads, not everyone else's. The turn of a backend whose sources are
 *   `batched` counts as one read: its reads go out together or the batch would be cut into several requests (a
 *   thousand RabbitMQ queues were read with four vhost listings a second instead of one).
 */
import { BackendError, describeError, type ScalerError } from '../errors.ts';
import { BackendBreaker, type BreakerState } from './breaker.ts';
import {
  asScalerError,
  type Reader,
  type Reading,
  type SharedResources,
  type Source,
  type SourceHub,
  type Subscription,
} from './scaler.ts';
import { SharedPool } from './shared.ts';

export type HubLog = (level: 'debug' | 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;

export interface ReaderHubOptions {
  /** How often each source is read, in ms (default 1000). */
  readonly intervalMs?: number;
  readonly shared?: SharedResources;
  readonly log?: HubLog;
  /** Clock (ms since the epoch) for reading times. */
  readonly now?: () => number;
  /** At most this many reads at once in the whole process (default 256); beyond, a fair share per namespace. */
  readonly maxConcurrentReads?: number;
}

type Listener = (reading: Reading<unknown>, changed: boolean) => void;

interface SourceEntry {
  readonly source: Source<unknown>;
  /** The namespace whose share of the read budget this source's reads use (its first subscriber's). */
  readonly namespace: string;
  readonly reader: Reader<unknown>;
  readonly backend: BackendEntry;
  readonly listeners: Set<Listener>;
  last: Reading<unknown> | undefined;
  inFlight: boolean;
  lastStartedAt: number;
  wakeTimer: NodeJS.Timeout | undefined;
  reads: number;
  /** How long the last completed read took, in ms (/metrics). */
  lastDurationMs: number | undefined;
  /** Turns skip the source until then (performance.now() ms): a slow backend is not read back to back. */
  restUntil: number;
  closed: boolean;
}

interface BackendEntry {
  readonly key: string;
  readonly describe: string;
  readonly breaker: BackendBreaker;
  readonly sources: Set<SourceEntry>;
  timer: NodeJS.Timeout | undefined;
  nextProbe: number;
  /** The circuit opened and has not closed since (for logging transitions once). */
  down: boolean;
  /** How late the backend's last turn started against its schedule, in ms (timer and event-loop delay; /metrics). */
  lagMs: number | undefined;
  /** Its reads take so long that its sources are read less often than every interval (for logging transitions). */
  slow: boolean;
  /** Its reads' duration, smoothed (ms): what `slow` is judged on, so one quick read among slow ones changes nothing. */
  paceMs: number | undefined;
  /** While slow: since when its smoothed pace has been quick (performance.now() ms). */
  quickSince: number | undefined;
}

/** The timing of one source's reads, for /metrics. */
export interface SourceTiming {
  /** How long the last completed read took, in ms. */
  readonly lastDurationMs: number | undefined;
  /** How late its backend's last turn started against its schedule, in ms. */
  readonly lagMs: number | undefined;
}

/** What the hub holds now (tests, benchmarks, the CLI). */
export interface HubStats {
  readonly sources: number;
  readonly backends: number;
  /** Reads started since the hub was created. */
  readonly reads: number;
  /** Reads waiting for the read budget now. */
  readonly waiting: number;
  readonly breakers: Readonly<Record<string, BreakerState>>;
}

/** The least time between two reads of one source that `workArrived` may ask for. */
const WAKE_MIN_GAP_MS = 100;

/**
 * After a read that took D ms, turns leave the source alone for REST_FACTOR × D ms: a backend that answers slowly
 * (a RabbitMQ management API listing 10,000 queues took 2–3 s on the test ground, with RabbitMQ at more than one
 * core) is kept busy by sluice at most a quarter of the time, instead of being asked again the moment it answers.
 * Reads faster than a quarter of the interval are not affected. The push path (`wake`) is not rested: it reads one
 * source.
 */
export const REST_FACTOR = 3;

/**
 * The rest is decided per read; whether a backend *is* slow (the log line) is judged on its reads' duration smoothed
 * with this weight per read, and it is called quick again once that has been quick for PACE_DWELL_MS: at 10,000 queues, reads of
 * one broker alternating between 200 ms and 2 s logged the change 158 times in 7 minutes.
 */
const PACE_WEIGHT = 0.2;
const PACE_DWELL_MS = 60_000;

export class ReaderHub implements SourceHub {
  readonly intervalMs: number;
  readonly #shared: SharedResources;
  readonly #log: HubLog;
  readonly #now: () => number;
  readonly #sources = new Map<string, SourceEntry>();
  readonly #backends = new Map<string, BackendEntry>();
  readonly #budget: ReadBudget;
  #reads = 0;
  #closed = false;

  constructor(options: ReaderHubOptions = {}) {
    this.intervalMs = options.intervalMs ?? 1000;
    this.#shared = options.shared ?? new SharedPool();
    this.#log = options.log ?? (() => undefined);
    this.#now = options.now ?? Date.now;
    this.#budget = new ReadBudget(options.maxConcurrentReads ?? 256);
  }

  subscribe<R>(
    source: Source<R>,
    listener: (reading: Reading<R>, changed: boolean) => void,
    namespace = '',
  ): Subscription {
    if (this.#closed) throw new Error('the reader hub is closed');
    const entry = this.#sources.get(source.key) ?? this.#open(source, namespace);
    const wrapped = listener as Listener;
    entry.listeners.add(wrapped);
    const last = entry.last;
    if (last !== undefined) {
      queueMicrotask(() => {
        if (entry.listeners.has(wrapped)) this.#call(wrapped, last, true);
      });
    }
    let closed = false;
    return {
      close: () => {
        if (closed) return;
        closed = true;
        entry.listeners.delete(wrapped);
        if (entry.listeners.size === 0) void this.#closeSource(entry);
      },
    };
  }

  /** Reads a source now (the push path), unless a read of it is running or started less than 100 ms ago. */
  wake(key: string): void {
    const entry = this.#sources.get(key);
    if (!entry || entry.inFlight || entry.wakeTimer !== undefined) return;
    const wait = entry.lastStartedAt + WAKE_MIN_GAP_MS - performance.now();
    if (wait <= 0) {
      this.#readThroughBreaker(entry);
      return;
    }
    entry.wakeTimer = setTimeout(() => {
      entry.wakeTimer = undefined;
      if (!entry.closed && !entry.inFlight) this.#readThroughBreaker(entry);
    }, wait);
  }

  /** The latest reading of a source, if it is open and has been read. */
  latest(key: string): Reading<unknown> | undefined {
    return this.#sources.get(key)?.last;
  }

  stats(): HubStats {
    return {
      sources: this.#sources.size,
      backends: this.#backends.size,
      reads: this.#reads,
      waiting: this.#budget.waiting,
      breakers: Object.fromEntries([...this.#backends.values()].map((b) => [b.describe, b.breaker.state])),
    };
  }

  /** The timing of a source's reads, if it is open (read when /metrics is scraped; nothing is computed per read). */
  timing(key: string): SourceTiming | undefined {
    const entry = this.#sources.get(key);
    return entry && { lastDurationMs: entry.lastDurationMs, lagMs: entry.backend.lagMs };
  }

  /** Every backend and the state of its circuit breaker (`describe` has no credentials; two may share one). */
  breakers(): { readonly describe: string; readonly state: BreakerState }[] {
    return [...this.#backends.values()].map((b) => ({ describe: b.describe, state: b.breaker.state }));
  }

  /** Reads started for one source so far (tests). */
  readsOf(key: string): number {
    return this.#sources.get(key)?.reads ?? 0;
  }

  async close(): Promise<void> {
    this.#closed = true;
    const entries = [...this.#sources.values()];
    for (const entry of entries) entry.listeners.clear();
    await Promise.all(entries.map((entry) => this.#closeSource(entry)));
  }

  #open(source: Source<unknown>, namespace: string): SourceEntry {
    let backend = this.#backends.get(source.backend);
    if (!backend) {
      const created: BackendEntry = {
        key: source.backend,
        describe: source.describe,
        breaker: new BackendBreaker(
          // Half an interval, not a whole one: the circuit must be halfOpen by the next turn after a failed probe (the
          // reset timer starts when the probe fails, a little after its turn), or probes come every other interval.
          { resetTimeoutMs: this.intervalMs / 2, windowMs: 10 * this.intervalMs },
          (state, lastError) => {
            // One line when the backend goes down and one when it is back, not one per failed probe.
            if (state === 'open' && !created.down) {
              created.down = true;
              this.#log('warn', `backend ${created.describe} failed; reading it once per interval until it answers`, {
                error: lastError,
              });
            } else if (state === 'closed' && created.down) {
              created.down = false;
              this.#log('info', `backend ${created.describe} answers again`);
            }
          },
        ),
        sources: new Set(),
        timer: undefined,
        nextProbe: 0,
        down: false,
        lagMs: undefined,
        slow: false,
        paceMs: undefined,
        quickSince: undefined,
      };
      backend = created;
      this.#backends.set(source.backend, backend);
      this.#scheduleBackend(backend, Math.random() * this.intervalMs);
    }
    const entry: SourceEntry = {
      source,
      namespace,
      reader: source.open(this.#shared, () => {
        this.wake(source.key);
      }),
      backend,
      listeners: new Set(),
      last: undefined,
      inFlight: false,
      lastStartedAt: -Infinity,
      wakeTimer: undefined,
      reads: 0,
      lastDurationMs: undefined,
      restUntil: -Infinity,
      closed: false,
    };
    backend.sources.add(entry);
    this.#sources.set(source.key, entry);
    // The first read does not wait for the backend's turn: a new trigger has a value within one read.
    this.#readThroughBreaker(entry);
    return entry;
  }

  async #closeSource(entry: SourceEntry): Promise<void> {
    if (entry.closed) return;
    entry.closed = true;
    clearTimeout(entry.wakeTimer);
    if (this.#sources.get(entry.source.key) === entry) this.#sources.delete(entry.source.key);
    const backend = entry.backend;
    backend.sources.delete(entry);
    if (backend.sources.size === 0 && this.#backends.get(backend.key) === backend) {
      clearTimeout(backend.timer);
      backend.breaker.shutdown();
      this.#backends.delete(backend.key);
    }
    try {
      await entry.reader.close();
    } catch (err) {
      this.#log('warn', `closing the reader of ${entry.source.describe} failed`, { error: describeError(err) });
    }
  }

  #scheduleBackend(backend: BackendEntry, delayMs: number): void {
    const due = performance.now() + delayMs;
    backend.timer = setTimeout(() => {
      if (!this.#backends.has(backend.key)) return;
      backend.lagMs = Math.max(0, performance.now() - due);
      this.#turn(backend);
      this.#scheduleBackend(backend, this.intervalMs);
    }, delayMs);
    backend.timer.unref();
  }

  /** One turn of a backend: every idle reader reads, or, while the circuit is open, one probe. */
  #turn(backend: BackendEntry): void {
    const now = performance.now();
    const idle = [...backend.sources].filter((entry) => !entry.inFlight && entry.restUntil <= now);
    if (idle.length === 0) return;
    switch (backend.breaker.state) {
      case 'closed':
        if (idle.length > 1 && idle.every((entry) => entry.source.batched === true)) {
          void this.#read(...idle);
          return;
        }
        for (const entry of idle) this.#readThroughBreaker(entry);
        return;
      case 'open': {
        const error = backend.breaker.openError();
        for (const entry of idle) this.#deliver(entry, { ok: false, error, at: this.#now() });
        return;
      }
      case 'halfOpen': {
        const probe = idle[backend.nextProbe++ % idle.length];
        if (probe === undefined) return;
        void this.#read(probe).then(() => {
          // The backend answers again: the others read now rather than at the next turn.
          if (backend.breaker.state !== 'closed') return;
          for (const entry of backend.sources) if (!entry.inFlight && entry !== probe) this.#readThroughBreaker(entry);
        });
      }
    }
  }

  #readThroughBreaker(entry: SourceEntry): void {
    void this.#read(entry);
  }

  /**
   * Reads `entries` (one source, or one turn of a batched backend) under one share of the read budget and delivers the
   * readings. Sources already being read or closed are skipped. Never rejects.
   *
   * The batch is **one call of its backend's breaker and one stuck guard**, not one per source: a batched backend
   * answers the turn with one request, so the breaker counts one success or one failure for it (a BackendError of any
   * of its reads fails the call), and a turn of 1,000 queues no longer costs 1,000 breaker calls and 1,000 timers a
   * second (most of sluice's CPU at rest, in a profile of 1,000 idle objects).
   */
  async #read(...entries: readonly SourceEntry[]): Promise<void> {
    const batch = entries.filter((entry) => !entry.inFlight && !entry.closed);
    const first = batch[0];
    if (first === undefined) return;
    for (const entry of batch) entry.inFlight = true;
    const release = await this.#budget.acquire(first.namespace);
    try {
      // Some may have been closed while they waited for a share of the read budget.
      const reads = batch.filter((entry) => !isClosed(entry));
      if (reads.length > 0) await this.#readBatch(first.backend, reads);
    } finally {
      release();
      for (const entry of batch) entry.inFlight = false;
    }
  }

  async #readBatch(backend: BackendEntry, reads: readonly SourceEntry[]): Promise<void> {
    // One time limit per distinct timeout: AbortSignal.timeout cannot be cancelled, and a thousand of them a second
    // (each firing a TimeoutError after the read is long done) showed in a CPU profile.
    const limits = new Map<number, AbortSignal>();
    const timeouts = reads.map((entry) => entry.reader.timeoutMs?.(reads.length) ?? entry.source.timeoutMs);
    const started = performance.now();
    for (const entry of reads) {
      entry.lastStartedAt = started;
      entry.reads++;
    }
    this.#reads += reads.length;
    /** Each read's outcome, once it has settled. */
    const outcomes: (Reading<unknown> | undefined)[] = reads.map(() => undefined);
    const run = backend.breaker.run(async () => {
      await Promise.all(
        reads.map(async (entry, i) => {
          const ms = timeouts[i] ?? entry.source.timeoutMs;
          let signal = limits.get(ms);
          if (signal === undefined) {
            signal = AbortSignal.timeout(ms);
            limits.set(ms, signal);
          }
          try {
            outcomes[i] = { ok: true, value: await entry.reader.read(signal), at: this.#now() };
          } catch (err) {
            outcomes[i] = { ok: false, error: asScalerError(err), at: this.#now() };
          }
        }),
      );
      // The backend failed if any read says so (a batched turn is one request: they all do).
      const failed = outcomes.find((o) => o?.ok === false && o.error instanceof BackendError);
      if (failed?.ok === false) throw failed.error;
    });
    const timeoutMs = Math.max(...timeouts);
    let guard: NodeJS.Timeout | undefined;
    const stuck = new Promise<'stuck'>((resolve) => {
      guard = setTimeout(() => {
        resolve('stuck');
      }, timeoutMs + 1000);
    });
    // The circuit refused the call (no read started), or the call itself failed.
    let refused: ScalerError | undefined;
    let late = false;
    try {
      late = (await Promise.race([run, stuck])) === 'stuck';
    } catch (err) {
      refused = asScalerError(err);
    } finally {
      clearTimeout(guard);
    }
    const stuckError = (entry: SourceEntry) =>
      new BackendError(
        `reading ${entry.source.describe} did not finish within ${timeoutMs + 1000} ms although its timeout is ${timeoutMs} ms; the reader is left alone until it returns`,
      );
    const finishedAt = performance.now();
    this.#paced(backend, finishedAt - started, finishedAt);
    reads.forEach((entry, i) => {
      this.#finished(entry, finishedAt);
      const outcome = outcomes[i];
      if (outcome?.ok === true) {
        this.#deliver(entry, outcome);
        return;
      }
      const error = outcome?.error ?? (late ? stuckError(entry) : (refused ?? stuckError(entry)));
      // While the circuit is not closed, every reader of the backend reports the same error, probe or not.
      const reported =
        error instanceof BackendError && backend.breaker.state !== 'closed' ? backend.breaker.openError() : error;
      this.#deliver(entry, { ok: false, error: reported, at: this.#now() });
    });
    // A read that outlived the guard still holds the reader (and its share of the budget) until it settles.
    await run.catch(() => undefined);
  }

  /** Records how long a read took and rests the source for REST_FACTOR times that. */
  #finished(entry: SourceEntry, now: number): void {
    const took = now - entry.lastStartedAt;
    entry.lastDurationMs = took;
    const periodMs = (REST_FACTOR + 1) * took;
    // Only a read slow enough for the rest to reach past the next turn rests its source.
    entry.restUntil = periodMs > this.intervalMs ? now + REST_FACTOR * took : -Infinity;
  }

  /**
   * Notes how long one read, or one batched turn, of `backend` took, and logs its pace changing. Once per turn, not per
   * source: a turn of 1,000 queues is one request, and counted 1,000 times it would move the average at once.
   */
  #paced(backend: BackendEntry, took: number, now: number): void {
    backend.paceMs = backend.paceMs === undefined ? took : backend.paceMs + PACE_WEIGHT * (took - backend.paceMs);
    const pacePeriodMs = (REST_FACTOR + 1) * backend.paceMs;
    if (!backend.slow && pacePeriodMs > 2 * this.intervalMs) {
      backend.slow = true;
      backend.quickSince = undefined;
      this.#log(
        'warn',
        `backend ${backend.describe} answers slowly (its reads take about ${Math.round(backend.paceMs)} ms): its sources are read about every ${(pacePeriodMs / 1000).toFixed(1)} s instead of every ${(this.intervalMs / 1000).toFixed(1)} s, so that sluice keeps it busy at most a quarter of the time`,
      );
    } else if (backend.slow) {
      backend.quickSince = pacePeriodMs < this.intervalMs ? (backend.quickSince ?? now) : undefined;
      if (backend.quickSince !== undefined && now - backend.quickSince >= PACE_DWELL_MS) {
        backend.slow = false;
        this.#log('info', `backend ${backend.describe} answers quickly again: read every interval`);
      }
    }
  }

  #deliver(entry: SourceEntry, reading: Reading<unknown>): void {
    if (entry.closed) return;
    const changed = !sameReading(entry.last, reading);
    entry.last = reading;
    for (const listener of [...entry.listeners]) this.#call(listener, reading, changed);
  }

  #call(listener: Listener, reading: Reading<unknown>, changed: boolean): void {
    try {
      listener(reading, changed);
    } catch (err) {
      this.#log('warn', 'a reading listener threw', { error: describeError(err) });
    }
  }
}

function sameReading(a: Reading<unknown> | undefined, b: Reading<unknown>): boolean {
  if (a === undefined) return false;
  if (a.ok && b.ok) return deepEqual(a.value, b.value);
  if (!a.ok && !b.ok) return a.error.message === b.error.message;
  return false;
}

/** Structural equality of plain data (numbers, strings, booleans, null, arrays, plain objects). */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every(
    (k) => Object.hasOwn(b, k) && deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]),
  );
}

/**
 * The process-wide read budget: `max` reads at once; waiting reads queue per namespace and are let in round-robin, so
 * one namespace's slow or numerous sources cannot starve the others.
 */
export class ReadBudget {
  readonly #max: number;
  #running = 0;
  readonly #queues = new Map<string, (() => void)[]>();

  constructor(max: number) {
    this.#max = max;
  }

  get waiting(): number {
    let n = 0;
    for (const queue of this.#queues.values()) n += queue.length;
    return n;
  }

  /** Resolves with a release function once the read may start. */
  acquire(namespace: string): Promise<() => void> {
    if (this.#running < this.#max) {
      this.#running++;
      return Promise.resolve(this.#releaser());
    }
    return new Promise((resolve) => {
      let queue = this.#queues.get(namespace);
      if (!queue) {
        queue = [];
        this.#queues.set(namespace, queue);
      }
      queue.push(() => {
        resolve(this.#releaser());
      });
    });
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#running--;
      this.#next();
    };
  }

  /** Lets the head of the next namespace's queue in (the map's order rotates: round-robin). */
  #next(): void {
    for (const [namespace, queue] of this.#queues) {
      const start = queue.shift();
      this.#queues.delete(namespace);
      // Back at the end of the rotation, if it still has waiting reads.
      if (queue.length > 0) this.#queues.set(namespace, queue);
      if (start !== undefined) {
        this.#running++;
        start();
        return;
      }
    }
  }
}

/** Read through a call, so the check after an await is not narrowed away by the one before it. */
function isClosed(entry: { readonly closed: boolean }): boolean {
  return entry.closed;
}
