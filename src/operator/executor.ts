/**
 * The executor of one ScaledObject: the only part of sluice that changes a workload's replica count itself. It reads
 * the target's replicas, applies `decideScale` (KEDA's executor table, scale-decision.ts) to what the poller
 * summarises, and writes the scale subresource: activation from 0 (or idle), the return to 0 (or idle) after the
 * cooldown, repairs below minReplicaCount. Between those the HPA decides.
 *
 * When it decides:
 * - at once whenever the poller reports a change (a trigger became active, failed, fell back): activation waits for
 *   no poll, only for the read that saw the work (about a second);
 * - when a cooldown it is waiting on ends (a timer at exactly that moment);
 * - every pollingInterval otherwise (KEDA's activation check period), which notices a replica count someone changed.
 * It never decides before every trigger has been read once (a restart must not act on "nothing known yet").
 *
 * lastActiveTime lives in the ObjectState the registry keeps across executor restarts; the executor asks for it to be
 * persisted (status) when activity ends and at least every tenth of the cooldown while active, so a restart of sluice
 * honours a cooldown in progress.
 */
import { describeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { EventRecorder, ObjectReference } from './events.ts';
import type { KubePort, ScaleTarget } from './kube.ts';
import type { PollerSummary } from './poller.ts';
import { decideScale, type ScaleDecision } from './scale-decision.ts';
import { setSafeTimeout, type SafeTimer } from './timers.ts';

export interface ExecutorSettings {
  readonly ref: ObjectReference;
  readonly target: ScaleTarget;
  /** `group/version.Kind` of the target, for messages and events (KEDA's scaleTargetKind). */
  readonly targetKind: string;
  readonly pollingIntervalS: number;
  readonly cooldownPeriodS: number;
  readonly initialCooldownPeriodS: number;
  readonly minReplicaCount: number;
  readonly maxReplicaCount: number;
  readonly idleReplicaCount: number | undefined;
  readonly hasFallback: boolean;
  readonly createdAt: Date;
  /** `paused-scale-in` / `paused-scale-out` / `force-activation` annotations. */
  readonly pausedScaleIn: boolean;
  readonly pausedScaleOut: boolean;
  readonly forceActivation: boolean;
  /** Only cpu and memory triggers: always active (KEDA's rule; the HPA scales it, never to zero). */
  readonly alwaysActive: boolean;
}

/** What survives an executor restart (kept by the registry). */
export interface ObjectState {
  lastActiveTime: Date | undefined;
  /** The lastActiveTime last handed to the status writer. */
  persistedLastActiveTime: Date | undefined;
  /** The first replica count read (status.originalReplicaCount). */
  firstSeenReplicas: number | undefined;
}

export interface ExecutorSnapshot {
  readonly evaluations: number;
  readonly evaluatedAt: Date | undefined;
  readonly currentReplicas: number | undefined;
  /** The target's resource (plural) name, once its scale was read. */
  readonly resource: string | undefined;
  readonly decision: ScaleDecision | undefined;
  /** Why the last evaluation could not read or write the target's scale. */
  readonly scaleError: string | undefined;
  /** An evaluation has been running for longer than it should (a hung call). */
  readonly stuckSince: Date | undefined;
}

export interface ExecutorDeps {
  readonly kube: Pick<KubePort, 'readScale' | 'writeScale'>;
  readonly events: EventRecorder;
  readonly log: Logger;
  /** The poller's current summary (the registry binds it to the running poller). */
  readonly summary: () => PollerSummary;
  /** Something the status shows changed. */
  readonly onChange: () => void;
  readonly now?: () => Date;
}

/** The settings one decision depends on. */
export type DecisionSettings = Pick<
  ExecutorSettings,
  | 'minReplicaCount'
  | 'maxReplicaCount'
  | 'idleReplicaCount'
  | 'hasFallback'
  | 'createdAt'
  | 'cooldownPeriodS'
  | 'initialCooldownPeriodS'
  | 'pausedScaleIn'
  | 'pausedScaleOut'
  | 'forceActivation'
  | 'alwaysActive'
>;

/**
 * One evaluation, pure (the executor and `sluice simulate` both decide with it): decideScale on the poller's summary,
 * and the lastActiveTime to keep before acting. When activity ended since the previous decision, the cooldown starts
 * now (not from the last evaluation). The caller sets lastActiveTime to `now` when `decision.refreshLastActiveTime`,
 * once a 'scale' action was written.
 */
export function evaluateScale(input: {
  readonly settings: DecisionSettings;
  readonly summary: Pick<PollerSummary, 'active' | 'anyError' | 'allError' | 'fallbackReplicas'>;
  readonly currentReplicas: number;
  readonly lastActiveTime: Date | undefined;
  readonly previous: ScaleDecision | undefined;
  readonly now: Date;
}): { readonly decision: ScaleDecision; readonly lastActiveTime: Date | undefined } {
  const { settings, summary, now } = input;
  const active = summary.active || settings.alwaysActive || settings.forceActivation;
  const lastActiveTime = !active && input.previous?.condition.status === 'True' ? now : input.lastActiveTime;
  const decision = decideScale({
    currentReplicas: input.currentReplicas,
    minReplicaCount: settings.minReplicaCount,
    maxReplicaCount: settings.maxReplicaCount,
    idleReplicaCount: settings.idleReplicaCount,
    active: summary.active || settings.alwaysActive,
    anyError: summary.anyError,
    allError: summary.allError,
    lastActiveTime,
    createdAt: settings.createdAt,
    cooldownPeriodS: settings.cooldownPeriodS,
    initialCooldownPeriodS: settings.initialCooldownPeriodS,
    now,
    fallback: settings.hasFallback ? { replicas: summary.fallbackReplicas ?? 0 } : undefined,
    fallbackReplicas: summary.fallbackReplicas,
    pausedScaleIn: settings.pausedScaleIn,
    pausedScaleOut: settings.pausedScaleOut,
    forceActivation: settings.forceActivation,
  });
  return { decision, lastActiveTime };
}

/** Nothing evaluated yet (also what a replica that does not lead shows: it runs no executor). */
export const IDLE_EXECUTOR: ExecutorSnapshot = {
  evaluations: 0,
  evaluatedAt: undefined,
  currentReplicas: undefined,
  resource: undefined,
  decision: undefined,
  scaleError: undefined,
  stuckSince: undefined,
};

/** An evaluation running longer than this is reported as stuck (every call in it has a shorter timeout). */
const STUCK_AFTER_MS = 30_000;

export class Executor {
  readonly settings: ExecutorSettings;
  readonly #deps: ExecutorDeps;
  readonly #state: ObjectState;
  readonly #now: () => Date;
  #snapshot: ExecutorSnapshot = IDLE_EXECUTOR;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #heartbeat: SafeTimer | undefined;
  #cooldownTimer: SafeTimer | undefined;
  #watchdog: SafeTimer | undefined;

  constructor(settings: ExecutorSettings, state: ObjectState, deps: ExecutorDeps) {
    this.settings = settings;
    this.#state = state;
    this.#deps = deps;
    this.#now = deps.now ?? (() => new Date());
  }

  snapshot(): ExecutorSnapshot {
    return this.#snapshot;
  }

  start(): void {
    this.notify();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#heartbeat?.clear();
    this.#cooldownTimer?.clear();
    this.#watchdog?.clear();
    await this.#running;
  }

  /** Decide now (or right after the evaluation in progress). */
  notify(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
    });
  }

  async #loop(): Promise<void> {
    do {
      this.#again = false;
      await this.#evaluate();
    } while (this.#pending());
    this.#scheduleHeartbeat();
  }

  /** A notify() arrived during the evaluation (read through a method: it changes across awaits). */
  #pending(): boolean {
    return this.#again && !this.#stopped;
  }

  #scheduleHeartbeat(): void {
    this.#heartbeat?.clear();
    if (this.#stopped) return;
    this.#heartbeat = setSafeTimeout(() => {
      this.notify();
    }, this.settings.pollingIntervalS * 1000);
  }

  /** One decision: read the target, decide, act. Never throws. */
  async #evaluate(): Promise<void> {
    const summary = this.#deps.summary();
    if (!summary.ready) return;
    const before = this.#snapshot;
    const started = this.#now();
    this.#watchdog = setSafeTimeout(() => {
      this.#snapshot = { ...this.#snapshot, stuckSince: started };
      this.#deps.log('error', `the executor of ${this.#owner} has been waiting on the API server for 30 s`, {
        target: this.#describeTarget(),
      });
      this.#deps.onChange();
    }, STUCK_AFTER_MS);

    let currentReplicas: number | undefined;
    let resource = before.resource;
    let decision: ScaleDecision | undefined;
    let scaleError: string | undefined;
    const state = this.#state;
    try {
      const scale = await this.#deps.kube.readScale(this.settings.target);
      currentReplicas = scale.replicas;
      resource = scale.resource;
      state.firstSeenReplicas ??= scale.replicas;
      const now = this.#now();
      const evaluated = evaluateScale({
        settings: this.settings,
        summary,
        currentReplicas: scale.replicas,
        lastActiveTime: state.lastActiveTime,
        previous: before.decision,
        now,
      });
      decision = evaluated.decision;
      state.lastActiveTime = evaluated.lastActiveTime;
      if (decision.action === 'scale') {
        await this.#write(scale.replicas, decision, summary);
        currentReplicas = decision.to;
      }
      if (decision.refreshLastActiveTime) state.lastActiveTime = now;
    } catch (err) {
      scaleError = describeError(err);
      if (scaleError !== before.scaleError) {
        this.#deps.log('warn', `cannot scale ${this.#describeTarget()}`, {
          scaledObject: this.#owner,
          error: scaleError,
        });
      }
    } finally {
      this.#watchdog.clear();
    }

    this.#snapshot = {
      evaluations: before.evaluations + 1,
      evaluatedAt: started,
      currentReplicas,
      resource,
      decision,
      scaleError,
      stuckSince: undefined,
    };
    this.#scheduleCooldownEnd(decision);
    if (decision?.rule !== before.decision?.rule || decision?.reason !== before.decision?.reason) {
      this.#deps.log('debug', `${this.#owner}: ${decision?.reason ?? scaleError ?? 'no decision'}`, {
        rule: decision?.rule,
        replicas: currentReplicas,
      });
    }
    if (this.#statusWorthy(before, summary)) this.#deps.onChange();
  }

  async #write(from: number, decision: ScaleDecision & { action: 'scale' }, summary: PollerSummary): Promise<void> {
    const activating = decision.rule === 'scale-from-zero';
    const deactivating = decision.rule === 'scale-in';
    try {
      await this.#deps.kube.writeScale(this.settings.target, decision.to);
    } catch (err) {
      if (activating || deactivating) {
        this.#deps.events.emit(
          this.settings.ref,
          'Warning',
          activating ? 'KEDAScaleTargetActivationFailed' : 'KEDAScaleTargetDeactivationFailed',
          `Failed to scale ${this.#describeTarget()} from ${from} to ${decision.to}: ${describeError(err)}`,
        );
      }
      throw err;
    }
    this.#deps.log('info', `scaled ${this.#describeTarget()} from ${from} to ${decision.to}`, {
      scaledObject: this.#owner,
      rule: decision.rule,
      reason: decision.reason,
    });
    const { targetKind } = this.settings;
    const { namespace, name } = this.settings.target;
    if (activating) {
      this.#deps.events.emit(
        this.settings.ref,
        'Normal',
        'KEDAScaleTargetActivated',
        `Scaled ${targetKind} ${namespace}/${name} from ${from} to ${decision.to}, triggered by ${summary.activeMetrics.join(';')}`,
      );
    } else if (deactivating) {
      this.#deps.events.emit(
        this.settings.ref,
        'Normal',
        'KEDAScaleTargetDeactivated',
        `Deactivated ${targetKind} ${namespace}/${name} from ${from} to ${decision.to}`,
      );
    }
  }

  /** A timer for the moment the cooldown being waited on ends, so scale-in does not wait for the next heartbeat. */
  #scheduleCooldownEnd(decision: ScaleDecision | undefined): void {
    this.#cooldownTimer?.clear();
    this.#cooldownTimer = undefined;
    if (this.#stopped || decision?.rule !== 'cooldown') return;
    const last = this.#state.lastActiveTime;
    const endsAt =
      last !== undefined
        ? last.getTime() + this.settings.cooldownPeriodS * 1000
        : this.settings.createdAt.getTime() + this.settings.initialCooldownPeriodS * 1000;
    this.#cooldownTimer = setSafeTimeout(
      () => {
        this.notify();
      },
      Math.max(0, endsAt - this.#now().getTime()) + 5,
    );
  }

  /**
   * Whether the status should be rewritten: decisions and conditions, scale errors, the first replica count, and
   * lastActiveTime when activity ends or at least every tenth of the cooldown (at least a second apart) while active.
   */
  #statusWorthy(before: ExecutorSnapshot, summary: PollerSummary): boolean {
    const after = this.#snapshot;
    const state = this.#state;
    let worthy =
      before.evaluations === 0 ||
      after.scaleError !== before.scaleError ||
      after.decision?.condition.reason !== before.decision?.condition.reason ||
      after.decision?.readyCondition.reason !== before.decision?.readyCondition.reason ||
      after.resource !== before.resource;
    const last = state.lastActiveTime?.getTime();
    const persisted = state.persistedLastActiveTime?.getTime();
    if (last !== undefined && last !== persisted) {
      const ended = !summary.active && before.decision?.condition.status === 'True';
      const every = Math.max(1000, (this.settings.cooldownPeriodS * 1000) / 10);
      if (ended || persisted === undefined || last - persisted >= every) worthy = true;
    }
    if (worthy) state.persistedLastActiveTime = state.lastActiveTime;
    return worthy;
  }

  get #owner(): string {
    return `${this.settings.ref.namespace}/${this.settings.ref.name}`;
  }

  #describeTarget(): string {
    const t = this.settings.target;
    return `${t.kind} ${t.namespace}/${t.name}`;
  }
}
