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
 */
import type { Logger } from '../log.ts';
import type { MetricStore } from '../metric-store.ts';
import type { SourceHub } from '../scalers/scaler.ts';
import type { EventRecorder } from './events.ts';
import { Executor, type ExecutorSettings, type ExecutorSnapshot, type ObjectState } from './executor.ts';
import type { KubePort } from './kube.ts';
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
}

interface Running {
  readonly uid: string;
  poller: Poller;
  pollerHash: string;
  executor: Executor;
  executorHash: string;
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

  constructor(deps: RegistryDeps) {
    this.#deps = deps;
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
      executor: running.executor.snapshot(),
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
        uid: spec.executor.ref.uid,
        state,
        pollerHash: spec.pollerHash,
        executorHash: spec.executorHash,
        poller: this.#poller(spec, () => running),
        executor: this.#executor(spec, state, () => running),
      };
      this.#running.set(spec.key, running);
      running.poller.start();
      running.executor.start();
      this.#deps.log('info', `scaling started for ${spec.key}`, {
        triggers: running.poller.metricNames,
        pollingInterval: spec.poller.pollingIntervalS,
      });
      return 'started';
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
      current.executor.notify();
      outcome = 'restarted';
    }
    if (current.executorHash !== spec.executorHash) {
      await current.executor.stop();
      current.executor = this.#executor(spec, current.state, () => current);
      current.executorHash = spec.executorHash;
      current.executor.start();
      outcome = 'restarted';
    }
    if (outcome === 'restarted') this.#deps.log('info', `scaling settings changed for ${spec.key}; restarted`);
    return outcome;
  }

  /** Stops the poller and executor of `key` and drops its series. */
  async remove(key: string): Promise<void> {
    const running = this.#running.get(key);
    this.#deps.store.deleteOwner(key);
    if (!running) return;
    this.#running.delete(key);
    running.poller.stop();
    await running.executor.stop();
    this.#deps.store.deleteOwner(key);
    this.#deps.log('info', `scaling stopped for ${key}`);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#running.keys()].map((key) => this.remove(key)));
  }

  #poller(spec: RuntimeSpec, self: () => Running | undefined): Poller {
    const { kube } = this.#deps;
    const target = spec.executor.target;
    return new Poller(spec.poller, {
      hub: this.#deps.hub,
      store: this.#deps.store,
      events: this.#deps.events,
      log: this.#deps.log,
      replicas: async () => {
        const [scale, ready] = await Promise.all([kube.readScale(target), kube.readReadyReplicas(target)]);
        return { replicas: scale.replicas, readyReplicas: ready };
      },
      onChange: () => {
        const running = self();
        if (running === undefined || this.#running.get(spec.key) !== running) return;
        running.executor.notify();
        this.#deps.onChange(spec.key);
      },
    });
  }

  #executor(spec: RuntimeSpec, state: ObjectState, self: () => Running | undefined): Executor {
    return new Executor(spec.executor, state, {
      kube: this.#deps.kube,
      events: this.#deps.events,
      log: this.#deps.log,
      summary: () => self()?.poller.summary() ?? NOTHING_READ,
      onChange: () => {
        const running = self();
        if (running !== undefined && this.#running.get(spec.key) === running) this.#deps.onChange(spec.key);
      },
      ...(this.#deps.now === undefined ? {} : { now: this.#deps.now }),
    });
  }
}
