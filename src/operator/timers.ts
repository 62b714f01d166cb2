/**
 * Timers that honour any delay: Node's setTimeout fires after 1 ms for a delay above 2^31 − 1 ms (about 24.8 days),
 * which would turn a long cooldown into an immediate scale-in. setSafeTimeout waits in steps instead. Timers are
 * unref'd: they never keep the process alive on their own.
 */
export const MAX_TIMER_MS = 2_147_483_647;

export interface SafeTimer {
  clear(): void;
}

export function setSafeTimeout(fn: () => void, delayMs: number): SafeTimer {
  let handle: NodeJS.Timeout | undefined;
  let cleared = false;
  const due = Date.now() + Math.max(0, delayMs);
  const arm = (): void => {
    const left = due - Date.now();
    handle = setTimeout(
      () => {
        if (cleared) return;
        if (due - Date.now() > 0) arm();
        else fn();
      },
      Math.min(Math.max(0, left), MAX_TIMER_MS),
    );
    handle.unref();
  };
  arm();
  return {
    clear() {
      cleared = true;
      clearTimeout(handle);
    },
  };
}
