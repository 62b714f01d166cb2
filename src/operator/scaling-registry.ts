/**
 * The lifecycle of every ScaledObject's poller and executor, apart from reconcile: reconcile says what should run
 * (`ensure`) or that nothing should (`remove`), and the registry starts, keeps or restarts each part.
 *
 * - A part restarts only when the settings it was built from change (a hash of them), not on every generation: an
 *   edit of maxReplicaCount restarts the executor and leaves the triggers' readers alone; a new Secret value restarts
 *   the poller.
 * - A new poller subscribes before the old one unsubscribes, so shared readers (and their connections) stay open and
 *   the series of metric names that still exist keep their values; series of names that went away are dropped.
 * - What must survive an executor restart (lastActiveTime, the first replica count seen) is kept here per object.
 * - Pollers run on every replica of sluice (each serves the metrics API from its own store); executors, which write
 *   the workloads' scale, run only on the leader (`lead()` / `follow()`, driven by leader.ts). A follower takes
 *   lastActiveTime from the status the leader persists, so a cooldown resumes where it was after a failover.
 */
import type { Logger } from '../log.ts';
import type { MetricStore } from '../metric-store.ts';
import type { SourceHub } from '../scalers/scaler.ts';
import type { EventRecorder, ObjectReference } from './events.ts';
import { Executor, IDLE_EXECUTOR, type ExecutorSettings, type ExecutorSnapshot, type ObjectState } from './executor.ts';
import type { KubePort } from './kube.ts';
import { FailureLog } from './failure-log.ts';
import { Poller, type PollerSettings, type PollerSummary } from './poller.ts';

export interface RuntimeSpec {
  readonly key: string;
  readonly poller: PollerSettings;
  readonly executor: ExecutorSettings;
  /** Of everything the poller is built from (triggers, resolved credentials, pollingInterval, fallback). */
  readonly pollerHash: string;
  /** Of everything the executor is built from (target, replica bounds, cooldowns, pollingInterval, fallback). */
  readonly executorHash: string;
  /** status.lastActiveTime as persisted: where a cooldown resumes after sluice restarted. */
  readonly lastActiveTime: Date | undefined;
}

export interface RuntimeSnapshot {
  readonly poller: PollerSummary;
  readonly executor: ExecutorSnapshot;
  readonly state: Readonly<ObjectState>;
  readonly metricNames: readonly string[];
}

export interface RegistryDeps {
  readonly hub: SourceHub;
  readonly store: MetricStore;
  readonly kube: Pick<KubePort, 'readScale' | 'writeScale' | 'readReadyReplicas'>;
  readonly events: EventRecorder;
  readonly log: Logger;
  /** Something the status of `key` shows changed. */
  readonly onChange: (key: string) => void;
  readonly now?: () => Date;
  /** Whether executors run (this replica leads); from the start, default true. */
  readonly leading?: boolean;
}

interface Running {
  readonly key: string;
  readonly uid: string;
  readonly ref: ObjectReference;
  poller: Poller;
  pollerHash: string;
  /** Undefined on a replica that does not lead. */
  executor: Executor | undefined;
  executorHash: string;
  executorSettings: ExecutorSettings;
  readonly state: ObjectState;
}

export type EnsureOutcome = 'started' | 'restarted' | 'unchanged';

/** What an executor sees before its object is registered: nothing read, so nothing decided. */
const NOTHING_READ: PollerSummary = {
  ready: false,
  active: false,
  anyError: false,
  allError: false,
  fallbackActive: false,
  fallbackReplicas: undefined,
  activeMetrics: [],
  triggers: [],
};

export class ScalingRegistry {
  readonly #deps: RegistryDeps;
  readonly #running = new Map<string, Running>();
  readonly #failures: FailureLog;
  #leading: boolean;

  constructor(deps: RegistryDeps) {
    this.#deps = deps;
    this.#leading = deps.leading ?? true;
    const now = deps.now;
    this.#failures = new FailureLog(deps.log, now === undefined ? {} : { now: () => now().getTime() });
  }

  get leading(): boolean {
    return this.#leading;
  }

  /** This replica now leads: every object's executor starts (from the lastActiveTime last persisted). */
  lead(): void {
    if (this.#leading) return;
    this.#leading = true;
    for (const running of this.#running.values()) {
      if (running.executor !== undefined) continue;
      running.executor = this.#executor(running.key, running.executorSettings, running.state, () => running);
      running.executor.start();
    }
  }

  /** This replica no longer leads: every executor stops at once (the pollers keep the metrics API fresh). */
  async follow(): Promise<void> {
    if (!this.#leading) return;
    this.#leading = false;
    await Promise.all(
      [...this.#running.values()].map(async (running) => {
        const executor = running.executor;
        running.executor = undefined;
        await executor?.stop();
      }),
    );
  }

  has(key: string): boolean {
    return this.#running.has(key);
  }

  get size(): number {
    return this.#running.size;
  }

  snapshot(key: string): RuntimeSnapshot | undefined {
    const running = this.#running.get(key);
    if (!running) return undefined;
    return {
      poller: running.poller.summary(),
      executor: running.executor?.snapshot() ?? IDLE_EXECUTOR,
      state: running.state,
      metricNames: running.poller.metricNames,
    };
  }

  /** Makes the poller and executor of `spec.key` run on these settings. */
  async ensure(spec: RuntimeSpec): Promise<EnsureOutcome> {
    // A new object under an old name (deleted and created again) starts from nothing, not from the old one's state.
    const existing = this.#running.get(spec.key);
    if (existing !== undefined && existing.uid !== spec.executor.ref.uid) await this.remove(spec.key);
    const current = this.#running.get(spec.key);
    if (!current) {
      const state: ObjectState = {
        lastActiveTime: spec.lastActiveTime,
        persistedLastActiveTime: spec.lastActiveTime,
        firstSeenReplicas: undefined,
      };
      // The parts find each other through `running` (their callbacks run only after both exist).
      const running: Running = {
        key: spec.key,
        uid: spec.executor.ref.uid,
        ref: spec.executor.ref,
        state,
        pollerHash: spec.pollerHash,
        executorHash: spec.executorHash,
        executorSettings: spec.executor,
        poller: this.#poller(spec, () => running),
        executor: this.#leading ? this.#executor(spec.key, spec.executor, state, () => running) : undefined,
      };
      this.#running.set(spec.key, running);
      running.poller.start();
      running.executor?.start();
      this.#deps.log('info', `scaling started for ${spec.key}`, {
        triggers: running.poller.metricNames,
        pollingInterval: spec.poller.pollingIntervalS,
      });
      this.#deps.events.emit(spec.executor.ref, 'Normal', 'KEDAScalersStarted', 'Started scalers watch');
      return 'started';
    }

    // Not leading: the leader's persisted lastActiveTime is the truth (where a cooldown resumes on takeover).
    if (!this.#leading) {
      current.state.lastActiveTime = spec.lastActiveTime;
      current.state.persistedLastActiveTime = spec.lastActiveTime;
    }
    let outcome: EnsureOutcome = 'unchanged';
    if (current.pollerHash !== spec.pollerHash) {
      const old = current.poller;
      const next = this.#poller(spec, () => current);
      // Subscribe first: shared readers stay open, and unchanged metric names keep their series.
      next.start();
      old.stop();
      current.poller = next;
      current.pollerHash = spec.pollerHash;
      this.#deps.store.retain(spec.key, next.metricNames);
      current.executor?.notify();
      outcome = 'restarted';
    }
    if (current.executorHash !== spec.executorHash) {
      await current.executor?.stop();
      current.executorSettings = spec.executor;
      current.executorHash = spec.executorHash;
      current.executor = this.#leading
        ? this.#executor(spec.key, spec.executor, current.state, () => current)
        : undefined;
      current.executor?.start();
      outcome = 'restarted';
    }
    if (outcome === 'restarted') this.#deps.log('info', `scaling settings changed for ${spec.key}; restarted`);
    return outcome;
  }

  /** Stops the poller and executor of `key` and drops its series. */
  async remove(key: string, options: { shutdown?: boolean } = {}): Promise<void> {
    const running = this.#running.get(key);
    this.#deps.store.deleteOwner(key);
    if (!running) return;
    this.#running.delete(key);
    running.poller.stop();
    await running.executor?.stop();
    this.#deps.store.deleteOwner(key);
    this.#deps.log('info', `scaling stopped for ${key}`);
    // sluice shutting down is not news about the object (its next start would add a Started event per object).
    if (options.shutdown !== true) {
      this.#deps.events.emit(running.ref, 'Normal', 'KEDAScalersStopped', 'Stopped scalers watch');
    }
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#running.keys()].map((key) => this.remove(key, { shutdown: true })));
    this.#failures.flush();
  }

  #poller(spec: RuntimeSpec, self: () => Running | undefined): Poller {
    const { kube } = this.#deps;
    const target = spec.executor.target;
    return new Poller(spec.poller, {
      hub: this.#deps.hub,
      store: this.#deps.store,
      events: this.#deps.events,
      log: this.#deps.log,
      failures: this.#failures,
      replicas: async () => {
        const [scale, ready] = await Promise.all([kube.readScale(target), kube.readReadyReplicas(target)]);
        return { replicas: scale.replicas, readyReplicas: ready };
      },
      onChange: () => {
        const running = self();
        if (running === undefined || this.#running.get(spec.key) !== running) return;
        running.executor?.notify();
        this.#deps.onChange(spec.key);
      },
    });
  }

  #executor(key: string, settings: ExecutorSettings, state: ObjectState, self: () => Running | undefined): Executor {
    return new Executor(settings, state, {
      kube: this.#deps.kube,
      events: this.#deps.events,
      log: this.#deps.log,
      summary: () => self()?.poller.summary() ?? NOTHING_READ,
      onChange: () => {
        const running = self();
        if (running !== undefined && this.#running.get(key) === running) this.#deps.onChange(key);
      },
      ...(this.#deps.now === undefined ? {} : { now: this.#deps.now }),
    });
  }
}
