/**
 * `sluice explain`: why a ScaledObject is (or is not) scaling, as a pure function of what the cluster shows — the
 * object and the status the operator writes, its HPA, the target's replicas, the values the metrics API serves right
 * now, and the object's Events — and one screen of text (or JSON) made from it.
 *
 * The 0 ↔ 1 decision is the operator's own (`decideScale`, src/operator/scale-decision.ts) run on the same inputs the
 * executor uses; the HPA's part is the HPA controller's algorithm (src/hpa-algorithm.ts). Nothing here does I/O: src/cli/explain.ts
 * gathers, this decides and renders.
 */
import { parseAnnotations } from '../operator/annotations.ts';
import { findCondition } from '../operator/conditions.ts';
import { decideScale, type ScaleRule } from '../operator/scale-decision.ts';
import { parseScaledObject, type ScaledObject, type ScaledObjectStatus } from '../operator/scaled-object.ts';
import { CIRCUIT_OPEN_NOTE } from '../scalers/breaker.ts';
import { formatQuantity, parseQuantity } from '../quantity.ts';
import { describeError } from '../errors.ts';
import { DEFAULT_TOLERANCE, replicasForMetrics, tolerancesFor } from '../hpa-algorithm.ts';

/** One External metric of the HPA with the value served for it now. */
interface ExternalMetric {
  readonly name: string;
  readonly targetType: 'AverageValue' | 'Value';
  readonly target: number;
  readonly value: number;
}

const TOLERANCE = DEFAULT_TOLERANCE;

/**
 * What the HPA controller proposes for `metrics` at `current` replicas (src/hpa-algorithm.ts), within min and max,
 * before its behavior's rate limits and stabilization windows. Pods count as existing and ready (explain reads the
 * scale's spec, not its pods).
 */
function externalReplicas(
  metrics: readonly ExternalMetric[],
  current: number,
  bounds: { readonly min: number; readonly max: number },
): { readonly replicas: number } {
  const proposal = replicasForMetrics(
    metrics.map((m) => ({ metricType: m.targetType, target: m.target, name: m.name })),
    metrics.map((m) => m.value),
    { specReplicas: current, statusReplicas: current, readyReplicas: current, tolerances: tolerancesFor(undefined) },
  );
  const replicas = proposal.replicas ?? current;
  return { replicas: Math.min(bounds.max, Math.max(bounds.min, replicas)) };
}

/** The HPA as explain reads it (the fields of autoscaling/v2 it uses). */
export interface HpaView {
  readonly name: string;
  readonly minReplicas: number | undefined;
  readonly maxReplicas: number;
  readonly metrics: readonly {
    readonly name: string;
    readonly type: 'AverageValue' | 'Value' | 'Utilization';
    readonly target: number;
  }[];
  readonly currentReplicas: number | undefined;
  readonly desiredReplicas: number | undefined;
  readonly lastScaleTime: string | undefined;
  readonly conditions: readonly { type: string; status: string; reason?: string; message?: string }[];
}

/** A metric as the metrics API answered it just now: a value, or the error it gave. */
export type MetricReading =
  | { readonly value: number; readonly timestamp: string | undefined }
  | { readonly error: string; readonly status: number };

export interface ScaleEvent {
  readonly reason: string;
  readonly message: string;
  readonly at: string | undefined;
}

export interface ExplainInput {
  /** The ScaledObject as read from the API server. */
  readonly object: Record<string, unknown>;
  readonly hpa: HpaView | undefined;
  /** The target's `spec.replicas`; undefined when it could not be read (`targetError` says why). */
  readonly targetReplicas: number | undefined;
  readonly targetError?: string | undefined;
  /** Per external metric name, what the metrics API answers for this object's selector. */
  readonly readings: ReadonlyMap<string, MetricReading>;
  /** The object's Events, any order. */
  readonly events: readonly ScaleEvent[];
  readonly now: Date;
}

export interface ExplainTrigger {
  readonly index: number;
  readonly name?: string;
  readonly type: string;
  readonly metricName: string;
  readonly metricType?: 'AverageValue' | 'Value';
  readonly target?: number;
  readonly activationThreshold?: number;
  /** Absent when unknown (an error, or not read yet). */
  readonly value?: number;
  readonly error?: string;
  readonly active?: boolean;
  /** The backend's circuit breaker, when the error says it is open. */
  readonly breaker?: 'open';
  /** The value served is the fallback's, not a reading (status.health says the trigger is failing). */
  readonly fallbackValue?: boolean;
}

export interface ExplainReport {
  readonly namespace: string;
  readonly name: string;
  readonly target: { readonly kind: string; readonly name: string };
  readonly valid: boolean;
  readonly ready: ConditionView | undefined;
  readonly active: ConditionView | undefined;
  readonly paused: {
    readonly paused: boolean;
    readonly replicas?: number;
    readonly scaleIn: boolean;
    readonly scaleOut: boolean;
  };
  readonly fallback:
    | { readonly configured: false }
    | {
        readonly configured: true;
        readonly failureThreshold: number;
        readonly replicas: number;
        readonly engaged: boolean;
      };
  readonly triggers: readonly ExplainTrigger[];
  readonly currentReplicas?: number;
  readonly desiredReplicas?: number;
  readonly hpa?: {
    readonly name: string;
    readonly minReplicas: number;
    readonly maxReplicas: number;
    /** `ceil(85 / 30) = 3`, one line per metric, then the bounds. */
    readonly computation: readonly string[];
    readonly currentReplicas?: number;
    readonly desiredReplicas?: number;
    readonly conditions: readonly ConditionView[];
  };
  readonly cooldown: {
    readonly cooldownPeriodSeconds: number;
    readonly lastActiveTime?: string;
    /** When an inactive object at more than zero (or idle) replicas scales in, if nothing becomes active. */
    readonly scalesInAt?: string;
    readonly remainingSeconds?: number;
  };
  readonly decision?: { readonly rule: ScaleRule; readonly reason: string; readonly to?: number };
  readonly lastScale?: ScaleEvent;
  readonly whatWouldChange: readonly string[];
  readonly problems: readonly string[];
}

export interface ConditionView {
  readonly type: string;
  readonly status: string;
  readonly reason?: string;
  readonly message?: string;
}

/** Events that record a 0 ↔ N decision of the executor (KEDA's reasons). */
const SCALE_EVENTS = new Set([
  'KEDAScaleTargetActivated',
  'KEDAScaleTargetDeactivated',
  'KEDAScaleTargetActivationFailed',
  'KEDAScaleTargetDeactivationFailed',
]);

function conditionView(c: { type: string; status: string; reason?: string; message?: string } | undefined) {
  if (c === undefined) return undefined;
  return {
    type: c.type,
    status: c.status,
    ...(c.reason !== undefined && c.reason !== '' ? { reason: c.reason } : {}),
    ...(c.message !== undefined && c.message !== '' ? { message: c.message } : {}),
  };
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function record(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

export function explain(input: ExplainInput): ExplainReport {
  const meta = record(input.object['metadata']);
  const rawSpec = record(input.object['spec']);
  const status = record(input.object['status']) as ScaledObjectStatus;
  const namespace = str(meta['namespace']) ?? '';
  const name = str(meta['name']) ?? '';
  const rawTarget = record(rawSpec['scaleTargetRef']);
  const target = { kind: str(rawTarget['kind']) ?? 'Deployment', name: str(rawTarget['name']) ?? '' };
  const ready = conditionView(findCondition(status.conditions, 'Ready'));
  const active = conditionView(findCondition(status.conditions, 'Active'));
  const problems: string[] = [];

  let so: ScaledObject | undefined;
  try {
    so = parseScaledObject(input.object);
  } catch (err) {
    problems.push(`the object is invalid: ${describeError(err)}`);
  }
  let annotations = parseAnnotations(undefined);
  try {
    annotations = parseAnnotations(so?.metadata.annotations);
  } catch (err) {
    problems.push(describeError(err));
  }
  const paused = {
    paused: annotations.paused,
    ...(annotations.pausedReplicas !== undefined ? { replicas: annotations.pausedReplicas } : {}),
    scaleIn: annotations.pausedScaleIn,
    scaleOut: annotations.pausedScaleOut,
  };
  const fallbackSpec = so?.spec.fallback;
  const fallbackEngaged = findCondition(status.conditions, 'Fallback')?.status === 'True';
  const fallback =
    fallbackSpec === undefined
      ? ({ configured: false } as const)
      : ({
          configured: true,
          failureThreshold: fallbackSpec.failureThreshold,
          replicas: fallbackSpec.replicas,
          engaged: fallbackEngaged,
        } as const);

  const triggers = triggerViews(so, status, input.readings, fallbackEngaged);
  if (input.targetError !== undefined)
    problems.push(`cannot read the replicas of ${target.kind} ${target.name}: ${input.targetError}`);
  if (ready?.status === 'False') problems.push(`Ready=False ${ready.reason ?? ''}: ${ready.message ?? ''}`);

  const cooldownPeriodSeconds = so?.spec.cooldownPeriod ?? 300;
  const lastActiveTime = status.lastActiveTime;
  const lastScale = lastScaleEvent(input.events);
  const base = {
    namespace,
    name,
    target,
    valid: so !== undefined,
    ready,
    active,
    paused,
    fallback,
    triggers,
    ...(input.targetReplicas !== undefined ? { currentReplicas: input.targetReplicas } : {}),
    ...(input.hpa !== undefined ? { hpa: hpaView(input.hpa, triggers) } : {}),
    ...(lastScale !== undefined ? { lastScale } : {}),
    problems,
  };
  if (so === undefined || input.targetReplicas === undefined || paused.paused) {
    const desired = paused.paused ? (paused.replicas ?? input.targetReplicas) : undefined;
    return {
      ...base,
      ...(desired !== undefined ? { desiredReplicas: desired } : {}),
      cooldown: { cooldownPeriodSeconds, ...(lastActiveTime !== undefined ? { lastActiveTime } : {}) },
      whatWouldChange: paused.paused ? ['remove the paused annotation: sluice then scales it again'] : [],
    };
  }

  const current = input.targetReplicas;
  const anyActive = triggers.some((t) => t.active === true);
  const anyError = triggers.some((t) => t.error !== undefined);
  const decision = decideScale({
    currentReplicas: current,
    minReplicaCount: so.spec.minReplicaCount,
    maxReplicaCount: so.spec.maxReplicaCount,
    idleReplicaCount: so.spec.idleReplicaCount,
    active: anyActive || (fallbackEngaged && (fallbackSpec?.replicas ?? 0) > 0),
    anyError,
    allError: triggers.length > 0 && triggers.every((t) => t.error !== undefined),
    lastActiveTime: lastActiveTime !== undefined ? new Date(lastActiveTime) : undefined,
    createdAt: new Date(so.metadata.creationTimestamp ?? input.now.toISOString()),
    cooldownPeriodS: so.spec.cooldownPeriod,
    initialCooldownPeriodS: so.spec.initialCooldownPeriod,
    now: input.now,
    fallback: fallbackSpec,
    fallbackReplicas: fallbackEngaged ? fallbackSpec?.replicas : undefined,
    pausedScaleIn: annotations.pausedScaleIn,
    pausedScaleOut: annotations.pausedScaleOut,
    forceActivation: annotations.forceActivation,
  });

  const hpaDesired = input.hpa !== undefined ? hpaDesiredFor(input.hpa, triggers, current) : undefined;
  const desired =
    decision.action === 'scale'
      ? decision.to
      : current === 0 || (so.spec.idleReplicaCount !== undefined && current === so.spec.idleReplicaCount && !anyActive)
        ? current
        : (hpaDesired ?? current);

  const cooldown = cooldownView(so, current, anyActive, lastActiveTime, input.now);
  return {
    ...base,
    desiredReplicas: desired,
    cooldown,
    decision: {
      rule: decision.rule,
      reason: decision.reason,
      ...(decision.action === 'scale' ? { to: decision.to } : {}),
    },
    whatWouldChange: whatWouldChange(so, input.hpa, triggers, current, anyActive, cooldown, annotations.pausedScaleOut),
  };
}

function triggerViews(
  so: ScaledObject | undefined,
  status: ScaledObjectStatus,
  readings: ReadonlyMap<string, MetricReading>,
  fallbackEngaged: boolean,
): ExplainTrigger[] {
  const names = status.externalMetricNames ?? [];
  const external = (so?.spec.triggers ?? []).flatMap((t, index) =>
    t.type === 'cpu' || t.type === 'memory' ? [] : [{ index, type: t.type, name: t.name }],
  );
  return external.map((t, i) => {
    const metricName = names[i] ?? `s${t.index}-${t.type}`;
    const threshold = status.triggersThresholds?.[metricName];
    const reading = readings.get(metricName);
    const failing = status.health?.[metricName]?.status === 'Failing';
    const view: ExplainTrigger = {
      index: t.index,
      ...(t.name !== undefined && t.name !== '' ? { name: t.name } : {}),
      type: t.type,
      metricName,
      ...(threshold !== undefined
        ? {
            metricType: threshold.metricType,
            target: parseQuantity(threshold.target),
            activationThreshold: parseQuantity(threshold.activation),
          }
        : {}),
    };
    if (reading === undefined) return view;
    if ('error' in reading) {
      return {
        ...view,
        error: reading.error,
        ...(reading.error.includes(CIRCUIT_OPEN_NOTE) ? { breaker: 'open' } : {}),
      };
    }
    const activation = view.activationThreshold;
    return {
      ...view,
      value: reading.value,
      ...(activation !== undefined ? { active: reading.value > activation } : {}),
      ...(failing && fallbackEngaged ? { fallbackValue: true } : {}),
    };
  });
}

function hpaMetrics(hpa: HpaView, triggers: readonly ExplainTrigger[]): ExternalMetric[] | undefined {
  const metrics: ExternalMetric[] = [];
  for (const m of hpa.metrics) {
    if (m.type === 'Utilization') return undefined; // cpu/memory: the HPA reads them itself
    const trigger = triggers.find((t) => t.metricName.toLowerCase() === m.name.toLowerCase());
    if (trigger?.value === undefined) return undefined;
    metrics.push({ name: m.name, targetType: m.type, target: m.target, value: trigger.value });
  }
  return metrics.length > 0 ? metrics : undefined;
}

function hpaDesiredFor(hpa: HpaView, triggers: readonly ExplainTrigger[], current: number): number | undefined {
  const metrics = hpaMetrics(hpa, triggers);
  if (metrics === undefined || current === 0) return undefined;
  return externalReplicas(metrics, current, { min: hpa.minReplicas ?? 1, max: hpa.maxReplicas }).replicas;
}

function hpaView(hpa: HpaView, triggers: readonly ExplainTrigger[]): NonNullable<ExplainReport['hpa']> {
  const computation: string[] = [];
  for (const m of hpa.metrics) {
    const trigger = triggers.find((t) => t.metricName.toLowerCase() === m.name.toLowerCase());
    const value = trigger?.value;
    if (value === undefined) {
      computation.push(`${m.name}: unknown (${trigger?.error ?? 'no value'}): the HPA holds its replicas`);
    } else if (m.type === 'AverageValue') {
      computation.push(
        `${m.name}: ceil(${formatQuantity(value)} / ${formatQuantity(m.target)}) = ${String(Math.ceil(value / m.target))}`,
      );
    } else if (m.type === 'Value') {
      computation.push(
        `${m.name}: ceil(current × ${formatQuantity(value)} / ${formatQuantity(m.target)}) (a Value target scales the current count)`,
      );
    }
  }
  computation.push(
    `bounded by min ${String(hpa.minReplicas ?? 1)} and max ${String(hpa.maxReplicas)}, tolerance 10 %, and the behavior's rate limits and stabilization windows`,
  );
  return {
    name: hpa.name,
    minReplicas: hpa.minReplicas ?? 1,
    maxReplicas: hpa.maxReplicas,
    computation,
    ...(hpa.currentReplicas !== undefined ? { currentReplicas: hpa.currentReplicas } : {}),
    ...(hpa.desiredReplicas !== undefined ? { desiredReplicas: hpa.desiredReplicas } : {}),
    conditions: hpa.conditions.flatMap((c) => {
      const view = conditionView(c);
      return view === undefined ? [] : [view];
    }),
  };
}

function cooldownView(
  so: ScaledObject,
  current: number,
  anyActive: boolean,
  lastActiveTime: string | undefined,
  now: Date,
): ExplainReport['cooldown'] {
  const cooldownPeriodSeconds = so.spec.cooldownPeriod;
  const floor = so.spec.idleReplicaCount ?? so.spec.minReplicaCount;
  const since =
    lastActiveTime !== undefined
      ? new Date(lastActiveTime)
      : so.metadata.creationTimestamp !== undefined
        ? new Date(so.metadata.creationTimestamp)
        : undefined;
  const period = lastActiveTime !== undefined ? cooldownPeriodSeconds : so.spec.initialCooldownPeriod;
  const view = { cooldownPeriodSeconds, ...(lastActiveTime !== undefined ? { lastActiveTime } : {}) };
  if (anyActive || current <= floor || since === undefined) return view;
  const at = new Date(since.getTime() + period * 1000);
  return {
    ...view,
    scalesInAt: at.toISOString().replace(/\.\d{3}Z$/, 'Z'),
    remainingSeconds: Math.max(0, Math.ceil((at.getTime() - now.getTime()) / 1000)),
  };
}

function lastScaleEvent(events: readonly ScaleEvent[]): ScaleEvent | undefined {
  let last: ScaleEvent | undefined;
  for (const e of events) {
    if (!SCALE_EVENTS.has(e.reason)) continue;
    if (last === undefined || (e.at ?? '') >= (last.at ?? '')) last = e;
  }
  return last;
}

/**
 * Where `metric` alone moves the HPA off `desired`: the least value above which it wants more, and the greatest at or
 * below which it wants fewer. The HPA's answer is a step function of the value, changing only where value / target
 * crosses a whole number or the tolerance band's edges around the current count: those are the candidates.
 */
function steps(
  metric: ExternalMetric,
  current: number,
  bounds: { readonly min: number; readonly max: number },
): { up?: { above: number; to: number }; down?: { atMost: number; to: number } } {
  const at = (value: number) => externalReplicas([{ ...metric, value }], current, bounds).replicas;
  const desired = at(metric.value);
  const per = metric.targetType === 'AverageValue' ? metric.target : metric.target / current;
  const candidates = new Set<number>([(1 - TOLERANCE) * current * per, (1 + TOLERANCE) * current * per]);
  for (let n = 0; n <= bounds.max; n++) candidates.add(n * per);
  const sorted = [...candidates].filter((c) => c >= 0).sort((a, b) => a - b);
  const epsilon = per / 1_000_000;
  const result: { up?: { above: number; to: number }; down?: { atMost: number; to: number } } = {};
  for (const c of sorted) {
    if (c < metric.value) continue;
    const to = at(c + epsilon);
    if (to > desired) {
      result.up = { above: c, to };
      break;
    }
  }
  for (const c of sorted.reverse()) {
    if (c >= metric.value) continue;
    const to = at(c);
    if (to < desired) {
      result.down = { atMost: c, to };
      break;
    }
  }
  return result;
}

function whatWouldChange(
  so: ScaledObject,
  hpa: HpaView | undefined,
  triggers: readonly ExplainTrigger[],
  current: number,
  anyActive: boolean,
  cooldown: ExplainReport['cooldown'],
  pausedScaleOut: boolean,
): string[] {
  const lines: string[] = [];
  const atRest = current === 0 || (so.spec.idleReplicaCount !== undefined && current === so.spec.idleReplicaCount);
  const failing = triggers.filter((t) => t.error !== undefined);
  for (const t of failing) {
    lines.push(`${t.metricName} answers again → its value counts again (until then nothing scales in)`);
  }
  if (atRest && !anyActive) {
    const to = Math.max(1, so.spec.minReplicaCount);
    for (const t of triggers) {
      if (t.value === undefined || t.activationThreshold === undefined) continue;
      lines.push(
        pausedScaleOut
          ? `${t.metricName} above ${formatQuantity(t.activationThreshold)} (now ${formatQuantity(t.value)}) → nothing: paused-scale-out`
          : `${t.metricName} above ${formatQuantity(t.activationThreshold)} (now ${formatQuantity(t.value)}) → ${String(current)} → ${String(to)} replicas`,
      );
    }
    return lines;
  }
  if (!anyActive && failing.length === 0 && cooldown.remainingSeconds !== undefined) {
    const floor = so.spec.idleReplicaCount ?? so.spec.minReplicaCount;
    lines.push(
      `no trigger active for ${String(cooldown.remainingSeconds)} s more → ${String(current)} → ${String(floor)} replicas (any trigger above its activation threshold restarts the cooldown)`,
    );
  }
  if (hpa === undefined || current === 0) return lines;
  const bounds = { min: hpa.minReplicas ?? 1, max: hpa.maxReplicas };
  for (const m of hpa.metrics) {
    if (m.type === 'Utilization') continue;
    const t = triggers.find((x) => x.metricName.toLowerCase() === m.name.toLowerCase());
    if (t?.value === undefined) continue;
    const { up, down } = steps({ name: m.name, targetType: m.type, target: m.target, value: t.value }, current, bounds);
    const now = formatQuantity(t.value);
    if (up !== undefined)
      lines.push(`${m.name} above ${formatQuantity(up.above)} (now ${now}) → ${String(up.to)} replicas`);
    else lines.push(`${m.name}: more changes nothing (maxReplicaCount ${String(hpa.maxReplicas)})`);
    if (down !== undefined && anyActive) {
      lines.push(
        `${m.name} at or below ${formatQuantity(down.atMost)} → ${String(down.to)} replicas (after the scale-down stabilization window)`,
      );
    }
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------------------------
// text

function cond(c: ConditionView | undefined): string {
  if (c === undefined) return 'unknown';
  return `${c.status}${c.reason !== undefined ? ` ${c.reason}` : ''}${c.message !== undefined ? `: ${c.message}` : ''}`;
}

/** The state of each HPA condition when all is well (kubernetes pkg/apis/autoscaling, HorizontalPodAutoscalerConditionType). */
const USUAL_HPA_CONDITIONS: Readonly<Record<string, string>> = {
  AbleToScale: 'True',
  ScalingActive: 'True',
  ScalingLimited: 'False',
  ScaledToZero: 'False',
};

/** One screen of text. */
export function renderExplain(r: ExplainReport): string {
  const out: string[] = [];
  out.push(
    `ScaledObject ${r.namespace}/${r.name} → ${r.target.kind} ${r.target.name}${r.hpa !== undefined ? ` (HPA ${r.hpa.name})` : ''}`,
  );
  out.push(`  Ready     ${cond(r.ready)}`);
  out.push(`  Active    ${cond(r.active)}`);
  out.push(
    `  Paused    ${r.paused.paused ? `yes${r.paused.replicas !== undefined ? ` at ${String(r.paused.replicas)} replicas` : ''}` : 'no'}${r.paused.scaleIn ? ', scale-in paused' : ''}${r.paused.scaleOut ? ', scale-out paused' : ''}`,
  );
  out.push(
    `  Fallback  ${r.fallback.configured ? `${r.fallback.engaged ? 'ENGAGED' : 'not engaged'} (after ${String(r.fallback.failureThreshold)} failed polls → ${String(r.fallback.replicas)} replicas)` : 'not configured'}`,
  );
  out.push('');
  out.push('  Triggers');
  for (const t of r.triggers) {
    const value =
      t.value !== undefined
        ? `value ${formatQuantity(t.value)}${t.fallbackValue === true ? ' (the fallback value)' : ''}`
        : `ERROR ${t.error ?? 'no value yet'}`;
    const threshold =
      t.target !== undefined
        ? `, activation > ${formatQuantity(t.activationThreshold ?? 0)}, target ${formatQuantity(t.target)}${t.metricType === 'AverageValue' ? ' per replica' : ''}`
        : '';
    const activity = t.active === undefined ? '' : t.active ? ', active' : ', not active';
    const breaker = t.breaker === 'open' ? ', circuit breaker open' : '';
    out.push(`    [${String(t.index)}] ${t.type} ${t.metricName}: ${value}${threshold}${activity}${breaker}`);
  }
  if (r.triggers.length === 0) out.push('    (no external triggers)');
  out.push('');
  out.push(
    `  Replicas  ${r.currentReplicas !== undefined ? String(r.currentReplicas) : 'unknown'} now, ${r.desiredReplicas !== undefined ? String(r.desiredReplicas) : 'unknown'} desired`,
  );
  if (r.hpa !== undefined) {
    out.push(
      `  HPA       ${r.hpa.name}: ${r.hpa.currentReplicas !== undefined ? `current ${String(r.hpa.currentReplicas)}, ` : ''}${r.hpa.desiredReplicas !== undefined ? `desired ${String(r.hpa.desiredReplicas)}` : 'no decision yet'}`,
    );
    for (const line of r.hpa.computation) out.push(`            ${line}`);
    for (const c of r.hpa.conditions) {
      // A condition in its usual state without its message: the message matters when something is wrong.
      const usual = USUAL_HPA_CONDITIONS[c.type] === c.status;
      out.push(
        `            ${c.type} ${usual ? `${c.status}${c.reason !== undefined ? ` ${c.reason}` : ''}` : cond(c)}`,
      );
    }
  } else if (r.valid && !r.paused.paused) {
    out.push('  HPA       none (sluice writes it once the object is valid and its target exists)');
  }
  const cd = r.cooldown;
  out.push(
    `  Cooldown  ${String(cd.cooldownPeriodSeconds)} s${cd.lastActiveTime !== undefined ? `, last active ${cd.lastActiveTime}` : ', never active'}${cd.scalesInAt !== undefined ? `; scales in at ${cd.scalesInAt} (${String(cd.remainingSeconds ?? 0)} s) unless a trigger becomes active` : ''}`,
  );
  if (r.decision !== undefined) out.push(`  Decision  ${r.decision.rule}: ${r.decision.reason}`);
  if (r.lastScale !== undefined) {
    out.push(`  Last 0↔N  ${r.lastScale.at ?? ''} ${r.lastScale.reason}: ${r.lastScale.message}`);
  }
  if (r.problems.length > 0) {
    out.push('');
    out.push('  Problems');
    for (const p of r.problems) out.push(`    - ${p}`);
  }
  if (r.whatWouldChange.length > 0) {
    out.push('');
    out.push('  What would change it');
    for (const w of r.whatWouldChange) out.push(`    - ${w}`);
  }
  return `${out.join('\n')}\n`;
}
