/**
 * Reference-counted resources shared by readers: one AMQP connection per broker, vhost and credentials; one undici
 * Agent per origin and TLS material; one SQS client per endpoint and credentials. The first lease creates the
 * resource, the last release disposes of it (so zero ScaledObjects on a broker means zero connections to it).
 */
import type { Lease, SharedResources } from './scaler.ts';

interface Entry {
  readonly value: unknown;
  readonly dispose: (value: never) => Promise<void> | void;
  refs: number;
}

export class SharedPool implements SharedResources {
  readonly #entries = new Map<string, Entry>();
  readonly #onDisposeError: (key: string, err: unknown) => void;

  constructor(options: { onDisposeError?: (key: string, err: unknown) => void } = {}) {
    this.#onDisposeError = options.onDisposeError ?? (() => undefined);
  }

  lease<T>(key: string, create: () => T, dispose: (value: T) => Promise<void> | void): Lease<T> {
    let entry = this.#entries.get(key);
    if (!entry) {
      entry = { value: create(), dispose: dispose, refs: 0 };
      this.#entries.set(key, entry);
    }
    entry.refs++;
    const held = entry;
    let released = false;
    return {
      value: held.value as T,
      release: () => {
        if (released) return;
        released = true;
        held.refs--;
        if (held.refs > 0 || this.#entries.get(key) !== held) return;
        this.#entries.delete(key);
        try {
          void Promise.resolve((held.dispose as (value: T) => Promise<void> | void)(held.value as T)).catch(
            (err: unknown) => {
              this.#onDisposeError(key, err);
            },
          );
        } catch (err) {
          this.#onDisposeError(key, err);
        }
      },
    };
  }

  /** Keys held now, with their reference counts (tests, benchmarks, the CLI). */
  held(): Map<string, number> {
    return new Map([...this.#entries].map(([key, entry]) => [key, entry.refs]));
  }
}
