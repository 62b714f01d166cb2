/**
 * A circuit breaker (opossum) around one scaler's sample(). It bounds every call by a timeout and, after repeated
 * failures, stops calling a dead backend for a while. Either way the caller gets a ScalerError: an open circuit
 * means "value unknown", never zero.
 */
import CircuitBreaker from 'opossum';
import { ScalerError, describeError } from '../errors.ts';
import type { Sample, Scaler } from './scaler.ts';

export type BreakerState = 'closed' | 'open' | 'halfOpen';

export interface BreakerOptions {
  /** Upper bound of one sample, in ms. */
  readonly timeoutMs: number;
  /** How long an open circuit waits before letting one trial call through, in ms. */
  readonly resetTimeoutMs: number;
  /** The statistics window, in ms; the circuit opens when half the calls in it failed (and at least 3 were made). */
  readonly windowMs: number;
}

/** Defaults scaled to the polling interval: a window of 5 polls, a retry after 3 polls (5–30 s). */
export function breakerOptionsFor(pollingIntervalS: number): BreakerOptions {
  const pollMs = pollingIntervalS * 1000;
  return {
    timeoutMs: Math.min(10_000, Math.max(1000, pollMs)),
    resetTimeoutMs: Math.min(30_000, Math.max(5000, 3 * pollMs)),
    windowMs: Math.max(10_000, 5 * pollMs),
  };
}

export class GuardedScaler {
  readonly scaler: Scaler;
  readonly #breaker: CircuitBreaker<[AbortSignal], Sample>;
  readonly #timeoutMs: number;
  #lastError = '';

  constructor(scaler: Scaler, options: BreakerOptions) {
    this.scaler = scaler;
    this.#timeoutMs = options.timeoutMs;
    this.#breaker = new CircuitBreaker((signal: AbortSignal) => scaler.sample(signal), {
      // The signal below enforces the timeout; opossum's own is a backstop for a scaler that ignores it.
      timeout: options.timeoutMs + 1000,
      resetTimeout: options.resetTimeoutMs,
      rollingCountTimeout: options.windowMs,
      errorThresholdPercentage: 50,
      volumeThreshold: 3,
    });
  }

  get state(): BreakerState {
    if (this.#breaker.opened) return 'open';
    if (this.#breaker.halfOpen) return 'halfOpen';
    return 'closed';
  }

  /** One sample, bounded by the timeout. Throws ScalerError. */
  async sample(): Promise<Sample> {
    if (this.#breaker.opened) {
      throw new ScalerError(`circuit open after repeated failures; last error: ${this.#lastError}`);
    }
    try {
      return await this.#breaker.fire(AbortSignal.timeout(this.#timeoutMs));
    } catch (err) {
      const wrapped =
        err instanceof ScalerError
          ? err
          : new ScalerError(`sampling ${this.scaler.metricName} failed: ${describeError(err)}`, { cause: err });
      this.#lastError = wrapped.message;
      throw wrapped;
    }
  }

  async close(): Promise<void> {
    this.#breaker.shutdown();
    await this.scaler.close();
  }
}
