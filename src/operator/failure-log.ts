/**
 * The log lines of failing and recovering triggers, shared by every poller of the process, so that a backend failing
 * for many triggers at once is one line, not one per trigger.
 *
 * A trigger that starts failing (or whose error changes, or a five-minute reminder) is logged at once, with its name,
 * unless a line with the **same error** was written less than `windowMs` ago: then it is counted, and when that window
 * ends one line says how many more triggers failed with it and names a few. Errors that name one queue or one query
 * differ from trigger to trigger and are each logged; an error about the backend (a timeout, a refused connection, an
 * open circuit) is the same text for all its triggers. Recoveries collapse the same way, per window, whatever the
 * trigger. At 10,000 objects on one broker whose circuit opened and closed 45 times, the per-trigger lines were 68,702
 * warnings in ten minutes; with this they are at most two lines per distinct error and per window.
 */
import type { Logger } from '../log.ts';

export interface FailureLogOptions {
  /** How long after a line others like it are only counted (default 60 s). */
  readonly windowMs?: number;
  readonly now?: () => number;
}

/** Names given as examples in a summary line. */
const EXAMPLES = 3;

interface Window {
  readonly since: number;
  count: number;
  readonly examples: string[];
  timer: NodeJS.Timeout | undefined;
  /** The fields of the line that opened the window (the error), repeated in its summary. */
  readonly fields: Record<string, unknown>;
}

export class FailureLog {
  readonly #log: Logger;
  readonly #windowMs: number;
  readonly #now: () => number;
  /** By error text; the recoveries' window under RECOVERED. */
  readonly #windows = new Map<string, Window>();
  #sweptAt = -Infinity;

  constructor(log: Logger, options: FailureLogOptions = {}) {
    this.#log = log;
    this.#windowMs = options.windowMs ?? 60_000;
    this.#now = options.now ?? Date.now;
  }

  /** `trigger` (a metric name and its object) failed with `error`; `fields` go on its line (never credentials). */
  failed(trigger: string, error: string, fields: Record<string, unknown> = {}): void {
    if (this.#counted(`failed|${error}`, trigger, { error })) return;
    this.#log('warn', `trigger ${trigger} failed; its value is unknown (not zero)`, { error, ...fields });
  }

  recovered(trigger: string): void {
    if (this.#counted('recovered', trigger, {})) return;
    this.#log('info', `trigger ${trigger} recovered`);
  }

  /** Windows held now (tests). */
  get held(): number {
    return this.#windows.size;
  }

  /** Ends every window, writing what each has counted (shutdown, tests). */
  flush(): void {
    for (const [key, window] of this.#windows) this.#close(key, window);
  }

  /** Whether a line like this was written within the window (then it is counted); else opens a window. */
  #counted(key: string, trigger: string, fields: Record<string, unknown>): boolean {
    const now = this.#now();
    const window = this.#windows.get(key);
    if (window !== undefined && now - window.since < this.#windowMs) {
      window.count++;
      if (window.examples.length < EXAMPLES) window.examples.push(trigger);
      window.timer ??= setTimeout(
        () => {
          this.#close(key, window);
        },
        Math.max(0, window.since + this.#windowMs - now),
      ).unref();
      return true;
    }
    if (window !== undefined) this.#close(key, window);
    this.#windows.set(key, { since: now, count: 0, examples: [], timer: undefined, fields });
    this.#sweep(now);
    return false;
  }

  #close(key: string, window: Window): void {
    clearTimeout(window.timer);
    if (this.#windows.get(key) === window) this.#windows.delete(key);
    if (window.count === 0) return;
    const seconds = Math.round(this.#windowMs / 1000);
    const more = `${window.count} more trigger${window.count === 1 ? '' : 's'}`;
    if (key === 'recovered') {
      this.#log('info', `${more} recovered in the ${seconds} s after that line`, { examples: window.examples });
    } else {
      this.#log('warn', `${more} failed with the same error in the ${seconds} s after that line`, {
        ...window.fields,
        examples: window.examples,
      });
    }
  }

  /** Forgets windows that ended without anything counted (they have no timer), so distinct errors do not pile up. */
  #sweep(now: number): void {
    if (this.#windows.size < 256 || now - this.#sweptAt < this.#windowMs / 4) return;
    this.#sweptAt = now;
    for (const [key, window] of this.#windows) {
      if (window.count === 0 && now - window.since >= this.#windowMs) this.#windows.delete(key);
    }
  }
}
