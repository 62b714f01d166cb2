/**
 * Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection package does it
 * (k8s.io/client-go/tools/leaderelection): the leader renews the Lease every `retryPeriod`; a candidate takes it over
 * once its holder has not renewed it for `leaseDuration`, judged by this process's own clock from the moment it last
 * saw the Lease change (never by comparing another node's timestamps with ours); a leader that cannot renew within
 * `renewDeadline` stops leading before anyone else may start. KEDA's timings by default: 15 s, 10 s, 2 s.
 *
 * One difference from client-go, for a faster failover at the same safety: a follower reads the Lease every
 * `observePeriod` (500 ms) rather than every `retryPeriod`, so it notices each renewal within half a second, and it
 * tries to take over the moment the Lease has gone `leaseDuration` without one. A dead leader is replaced within
 * leaseDuration + observePeriod (15.5 s) of its last renewal, where client-go takes up to leaseDuration + 2 ×
 * retryPeriod (19 s). The cost is two small GETs a second per follower.
 *
 * What leading means in sluice (main.ts): every replica watches, polls and serves the metrics API; only the leader
 * writes — HPAs, ScaledObject status, Events, and the scale of workloads (executors).
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { describeError } from '../errors.ts';
import type { Logger } from '../log.ts';

export interface LeaseRecord {
  readonly holderIdentity: string | undefined;
  readonly leaseDurationSeconds: number | undefined;
  readonly acquireTime: string | undefined;
  readonly renewTime: string | undefined;
  readonly leaseTransitions: number | undefined;
  readonly resourceVersion: string | undefined;
}

/** What the elector needs of the API server (kube.ts implements it over CoordinationV1Api). */
export interface LeasePort {
  /** The Lease, or undefined when it does not exist. */
  get(): Promise<LeaseRecord | undefined>;
  /** Creates it; throws when it exists (409). */
  create(record: Omit<LeaseRecord, 'resourceVersion'>): Promise<void>;
  /** Replaces it if it still has `resourceVersion`; throws on a conflict (409). */
  update(record: LeaseRecord): Promise<void>;
}

export interface LeaderOptions {
  readonly port: LeasePort;
  readonly log: Logger;
  /** This replica's identity in the Lease (default `<hostname>_<uuid>`). */
  readonly identity?: string;
  readonly leaseDurationMs?: number;
  readonly renewDeadlineMs?: number;
  readonly retryPeriodMs?: number;
  /** How often a follower reads the Lease (default 500 ms). */
  readonly observePeriodMs?: number;
  readonly onStartedLeading: () => void;
  readonly onStoppedLeading: () => void;
  /** Local monotonic-ish clock in ms (tests). */
  readonly now?: () => number;
}

export interface LeaderElector {
  readonly identity: string;
  isLeader(): boolean;
  /** The identity holding the Lease as last seen (for logs and /metrics). */
  holder(): string | undefined;
  /** Starts campaigning (returns at once). */
  start(): void;
  /** Stops; a leader releases the Lease (empties its holder) so a follower takes over at once. */
  stop(): Promise<void>;
}

/** Microsecond RFC 3339 time, as the Lease's MicroTime fields want. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export function createLeaderElector(options: LeaderOptions): LeaderElector {
  const identity = options.identity ?? `${hostname()}_${randomUUID()}`;
  const leaseMs = options.leaseDurationMs ?? 15_000;
  const renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
  const retryMs = options.retryPeriodMs ?? 2_000;
  const observeMs = options.observePeriodMs ?? 500;
  const now = options.now ?? (() => performance.timeOrigin + performance.now());
  const { port, log } = options;

  let leading = false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  /** Fires renewDeadline after the last successful renewal: a leader that could not renew stops leading. */
  let deadline: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  /** The record as last seen, and when (our clock) it last changed. */
  let observed: LeaseRecord | undefined;
  let observedAt = 0;
  /** The last attempt failed (an API error or a conflict): try again after retryPeriod. */
  let failed = false;
  let lastError: string | undefined;

  const same = (a: LeaseRecord | undefined, b: LeaseRecord | undefined): boolean =>
    a?.holderIdentity === b?.holderIdentity && a?.renewTime === b?.renewTime && a?.acquireTime === b?.acquireTime;

  function startLeading(): void {
    if (leading) return;
    leading = true;
    log('info', 'leader election: this replica now leads', { identity });
    options.onStartedLeading();
  }

  function stopLeading(why: string): void {
    clearTimeout(deadline);
    if (!leading) return;
    leading = false;
    log('warn', `leader election: this replica no longer leads (${why})`, { identity });
    options.onStoppedLeading();
  }

  /** One attempt to acquire or renew. Returns whether we hold the Lease now. */
  async function tryAcquireOrRenew(): Promise<boolean> {
    const at = now();
    const current = await port.get();
    const record = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.ceil(leaseMs / 1000),
      renewTime: microTime(Date.now()),
    };
    if (current === undefined) {
      await port.create({ ...record, acquireTime: record.renewTime, leaseTransitions: 0 });
      observed = { ...record, acquireTime: record.renewTime, leaseTransitions: 0, resourceVersion: undefined };
      observedAt = at;
      return true;
    }
    if (!same(current, observed)) {
      observed = current;
      observedAt = at;
    }
    const holder = current.holderIdentity;
    const ours = holder === identity;
    const expired =
      holder === undefined ||
      holder === '' ||
      at > observedAt + (current.leaseDurationSeconds ?? leaseMs / 1000) * 1000;
    if (!ours && !expired) return false;
    await port.update({
      ...record,
      acquireTime: ours ? current.acquireTime : record.renewTime,
      leaseTransitions: ours ? current.leaseTransitions : (current.leaseTransitions ?? 0) + 1,
      resourceVersion: current.resourceVersion,
    });
    observedAt = at;
    return true;
  }

  async function cycle(): Promise<void> {
    try {
      const held = await tryAcquireOrRenew();
      lastError = undefined;
      if (held) {
        clearTimeout(deadline);
        deadline = setTimeout(() => {
          stopLeading(`could not renew the Lease for ${renewDeadlineMs} ms`);
        }, renewDeadlineMs);
        deadline.unref();
        startLeading();
      } else if (leading) {
        stopLeading(`the Lease is held by ${observed?.holderIdentity ?? 'another replica'}`);
      }
    } catch (err) {
      // A conflict or an API error: a leader keeps leading until its renew deadline (the timer above) passes.
      failed = true;
      // Said once per new reason (a replica that can never read the Lease must not be silent about it).
      const error = describeError(err);
      log(leading || error !== lastError ? 'warn' : 'debug', 'leader election: reading or writing the Lease failed', {
        error,
        leading,
      });
      lastError = error;
      return;
    }
  }

  /** The leader renews every retryPeriod; a follower looks every observePeriod, and once more exactly at expiry. */
  function delay(): number {
    if (leading || failed) return retryMs;
    const untilExpiry = observedAt + (observed?.leaseDurationSeconds ?? leaseMs / 1000) * 1000 - now();
    return Math.max(1, Math.min(observeMs, untilExpiry + 1));
  }

  function schedule(): void {
    if (stopped) return;
    const ms = delay();
    failed = false;
    timer = setTimeout(() => {
      running = cycle().finally(() => {
        running = undefined;
        schedule();
      });
    }, ms);
    timer.unref();
  }

  return {
    identity,
    isLeader: () => leading,
    holder: () => observed?.holderIdentity,
    start() {
      running = cycle().finally(() => {
        running = undefined;
        schedule();
      });
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
      clearTimeout(deadline);
      if (!leading) return;
      leading = false;
      try {
        const current = await port.get();
        if (current?.holderIdentity === identity) {
          await port.update({
            ...current,
            holderIdentity: '',
            leaseDurationSeconds: 1,
            renewTime: microTime(Date.now()),
          });
        }
        log('info', 'leader election: released the Lease', { identity });
      } catch (err) {
        log('warn', 'leader election: could not release the Lease (a follower takes over when it expires)', {
          error: describeError(err),
        });
      }
      options.onStoppedLeading();
    },
  };
}
