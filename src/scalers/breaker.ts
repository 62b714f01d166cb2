/**
 * One circuit breaker (opossum) per backend. Every reader of a backend (every queue of one broker, every query of one
 * Prometheus) reads through it, so a dead backend costs one attempt per interval however many ScaledObjects read it,
 * instead of one per trigger.
 *
 * - closed: reads go through. Only BackendError counts as a failure (refused, timeout, TLS, 5xx, credentials); a
 *   ScalerError means the backend answered (a missing queue, an empty result) and counts as a success.
 * - open: after more than half of the reads in the window failed; reads are refused at once with a BackendError
 *   naming the last failure, without touching the network.
 * - halfOpen: `resetTimeoutMs` after opening, exactly one read (the probe) goes through; its success closes the
 *   circuit, its failure opens it again for another `resetTimeoutMs`.
 */
import CircuitBreaker from 'opossum';
import { BackendError, ScalerError, describeError } from '../errors.ts';

export type BreakerState = 'closed' | 'open' | 'halfOpen';

export interface BreakerOptions {
  /** How long an open circuit refuses reads before it lets one probe through, in ms. */
  readonly resetTimeoutMs: number;
  /** The statistics window, in ms (a multiple of 10). */
  readonly windowMs: number;
}

/** Transitions, for logs and the CLI. */
export type BreakerListener = (state: BreakerState, lastError: string | undefined) => void;

/** What a read refused by an open circuit adds to the backend's error (`sluice explain` shows the breaker open). */
export const CIRCUIT_OPEN_NOTE = 'circuit open: the backend is read once per interval until it answers';

export class BackendBreaker {
  readonly #breaker: CircuitBreaker<[() => Promise<unknown>]>;
  #lastError: string | undefined;

  constructor(options: BreakerOptions, onChange?: BreakerListener) {
    this.#breaker = new CircuitBreaker((action: () => Promise<unknown>) => action(), {
      // Readers bound each read with their own timeout (an AbortSignal); the hub guards against one that ignores it.
      timeout: false,
      resetTimeout: options.resetTimeoutMs,
      rollingCountTimeout: Math.max(10, Math.round(options.windowMs / 10) * 10),
      rollingCountBuckets: 10,
      errorThresholdPercentage: 50,
      volumeThreshold: 1,
      // The backend answered: a read-level problem, not a backend failure.
      errorFilter: (err: unknown) => err instanceof ScalerError && !(err instanceof BackendError),
    });
    this.#breaker.on('failure', (err: unknown) => {
      this.#lastError = describeError(err);
    });
    if (onChange) {
      this.#breaker.on('open', () => {
        onChange('open', this.#lastError);
      });
      this.#breaker.on('halfOpen', () => {
        onChange('halfOpen', this.#lastError);
      });
      this.#breaker.on('close', () => {
        onChange('closed', this.#lastError);
      });
    }
  }

  get state(): BreakerState {
    if (this.#breaker.opened) return 'open';
    if (this.#breaker.halfOpen) return 'halfOpen';
    return 'closed';
  }

  /** The last backend failure, for messages. */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  /**
   * The error every read of the backend reports while the circuit is not closed: why it opened, the same message for
   * refused reads and failed probes alike (so status and logs change only when the cause does).
   */
  openError(): BackendError {
    return new BackendError(`${this.#lastError ?? 'the backend failed'} (${CIRCUIT_OPEN_NOTE})`);
  }

  /** Runs `action` through the breaker; rejects with openError() when the circuit refuses it. */
  async run<T>(action: () => Promise<T>): Promise<T> {
    try {
      return (await this.#breaker.fire(action)) as T;
    } catch (err) {
      if ((err as { code?: unknown }).code === 'EOPENBREAKER' || (err as { code?: unknown }).code === 'ESHUTDOWN') {
        throw this.openError();
      }
      throw err;
    }
  }

  shutdown(): void {
    this.#breaker.shutdown();
  }
}
