/**
 * `sluice simulate -f SCALEDOBJECT.yaml --trace TRACE.csv`: replays a metric trace through the decisions the operator
 * makes (activation, cooldown, idle replicas, fallback: executor.ts evaluateScale, poller.ts summarizeTriggers,
 * fallback.ts) and the HPA controller's algorithm (hpa-algorithm.ts hpaSync) on the HPA the operator would write
 * (hpa.ts desiredHpa), offline. docs/simulate.md says what it models and what it does not.
 *
 * The model of time: sluice reads every backend about once a second (the read interval), so the operator's side is
 * evaluated every second and at every trace row; the HPA controller syncs every `--hpa-sync` seconds (15 by default),
 * starting at the trace's first row. The trace is a step function: a row's values hold until the next row. An empty
 * cell is a failed read (the error path; never 0). Every replica is assumed to exist and be Ready at once.
 */
import { parseArgs } from 'node:util';
import { ValidationError, describeError } from '../errors.ts';
import {
  DEFAULT_DOWNSCALE_STABILIZATION_S,
  DEFAULT_SYNC_PERIOD_S,
  DEFAULT_TOLERANCE,
  EMPTY_HISTORY,
  hpaSync,
  replicasForMetrics,
  tolerancesFor,
  type HpaBehaviorRules,
  type HpaControllerFlags,
  type HpaHistory,
  type HpaMetricTarget,
  type HpaScalingRules,
} from '../hpa-algorithm.ts';
import { parseAnnotations } from '../operator/annotations.ts';
import { parseComposite } from '../operator/composite.ts';
import { evaluateScale, type DecisionSettings } from '../operator/executor.ts';
import { fallbackEngagesAt, fallbackReplicas, fallbackValue, failureCount } from '../operator/fallback.ts';
import { desiredHpa } from '../operator/hpa.ts';
import { summarizeTriggers, type TriggerState } from '../operator/poller.ts';
import { buildTrigger, hpaMetrics, runtimeSpec } from '../operator/reconcile.ts';
import type { ScaleDecision } from '../operator/scale-decision.ts';
import { parseScaledObject, type Fallback, type HpaBehavior, type ScaledObject } from '../operator/scaled-object.ts';
import type { ClusterPort, Scaler } from '../scalers/scaler.ts';
import { DocumentError, parseDocuments, readSource, type CliIo } from './documents.ts';
import { validateScaledObject } from './validate.ts';

/** A ScaledObject or trace that simulate cannot use; the message names the file and field. */
export class SimulationError extends ValidationError {
  override name = 'SimulationError';
}

/** One trigger as simulate needs it. */
export interface SimTrigger {
  /** The trace column: the trigger's name, else its index. */
  readonly column: string;
  readonly index: number;
  readonly type: string;
  readonly metricName: string;
  readonly target: number;
  readonly metricType: 'AverageValue' | 'Value';
  readonly activation: number;
}

/** Everything the replay depends on, derived from the ScaledObject as the operator derives it. */
export interface SimModel {
  readonly name: string;
  readonly triggers: readonly SimTrigger[];
  readonly settings: DecisionSettings;
  readonly pollingIntervalS: number;
  readonly fallback: Fallback | undefined;
  readonly hpa: {
    readonly minReplicas: number;
    readonly maxReplicas: number;
    readonly metrics: readonly HpaMetricTarget[];
    readonly behavior: HpaBehaviorRules | undefined;
  };
}

export interface TraceRow {
  /** Seconds. */
  readonly t: number;
  /** Per trigger (model order); undefined = the read failed. */
  readonly values: readonly (number | undefined)[];
}

export interface SimStep {
  /** Seconds, as in the trace. */
  readonly t: number;
  /** Per trigger (model order); undefined = failed. */
  readonly values: readonly (number | undefined)[];
  /**
   * What the metrics ask for now: the HPA's proposal within min and max replicas, before its stabilization windows
   * and rate limits; the executor's target while it activates or deactivates; 0 (or idle) while inactive at zero.
   */
  readonly desiredReplicas: number;
  /** The target's replica count after this step. */
  readonly replicas: number;
  /** Who decided and why (the operator's reason, or the HPA controller's). */
  readonly reason: string;
}

export interface SimOptions {
  readonly hpaSyncS: number;
  /** The target's replicas when the trace starts (default: minReplicaCount). */
  readonly initialReplicas?: number | undefined;
  /** sluice's read interval in seconds (default 1). */
  readonly readIntervalS?: number | undefined;
  /** The HPA controller's tolerance and downscale stabilization flags (default 0.1 and 300 s). */
  readonly flags?: HpaControllerFlags | undefined;
}

const OFFLINE: ClusterPort = {
  readyEndpoints: () => Promise.reject(new Error('sluice simulate works offline: no cluster to ask')),
};

/**
 * The model of a ScaledObject (already checked with validateScaledObject): its triggers' targets and activation
 * thresholds (buildTrigger), the executor's settings (runtimeSpec) and the HPA (desiredHpa). Throws SimulationError
 * for what simulate does not model.
 */
export function modelOf(raw: unknown, epoch: Date): SimModel {
  const so: ScaledObject = parseScaledObject(raw);
  so.metadata.creationTimestamp = epoch.toISOString();
  const annotations = parseAnnotations(so.metadata.annotations);
  if (annotations.paused) {
    throw new SimulationError(
      'metadata.annotations',
      'the object is paused: nothing scales it (remove the annotation to simulate it)',
    );
  }
  const composite = parseComposite(so.spec);
  if (composite !== undefined) {
    throw new SimulationError('spec.advanced.scalingModifiers', 'is not supported by sluice simulate yet');
  }
  const scalers: Scaler[] = [];
  const triggers: SimTrigger[] = [];
  for (const [index, trigger] of so.spec.triggers.entries()) {
    let built;
    try {
      built = buildTrigger(so, index, OFFLINE, { triggers: [] }, composite);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      throw new SimulationError(
        err.field,
        `${err.message.slice(err.field.length + 2)} (simulate cannot read a TriggerAuthentication or the target's environment: give the parameter in the trigger's metadata for the simulation)`,
        { cause: err },
      );
    }
    if (built.kind === 'resource') {
      throw new SimulationError(
        `spec.triggers[${index}].type`,
        `${trigger.type} triggers cannot be simulated (the HPA reads them from the pods, not from a trace)`,
      );
    }
    const scaler = built.scaler;
    scalers.push(scaler);
    triggers.push({
      column: trigger.name !== undefined && trigger.name !== '' ? trigger.name : String(index),
      index,
      type: trigger.type,
      metricName: scaler.metricName,
      target: scaler.target,
      metricType: scaler.metricType,
      activation: scaler.activation,
    });
  }
  const key = `${so.metadata.namespace ?? 'default'}/${so.metadata.name}`;
  const spec = runtimeSpec(
    key,
    so,
    { scalers, names: triggers.map(() => undefined), identities: triggers, resources: [] },
    { triggers: [], fingerprint: 'offline' },
    annotations,
    composite,
  );
  const hpa = desiredHpa({
    scaledObject: {
      ...so,
      metadata: { ...so.metadata, namespace: so.metadata.namespace ?? 'default', uid: so.metadata.uid ?? 'offline' },
    },
    metrics: hpaMetrics(scalers, composite),
    annotations,
  });
  return {
    name: so.metadata.name,
    triggers,
    settings: spec.executor,
    pollingIntervalS: so.spec.pollingInterval,
    fallback: so.spec.fallback,
    hpa: {
      minReplicas: hpa.spec.minReplicas,
      maxReplicas: hpa.spec.maxReplicas,
      metrics: triggers.map((t) => ({ metricType: t.metricType, target: t.target, name: t.column })),
      behavior: behaviorRules(hpa.spec.behavior as HpaBehavior | undefined),
    },
  };
}

/** The schema-checked behavior as the algorithm's types (the schema allows exactly these values). */
function behaviorRules(behavior: HpaBehavior | undefined): HpaBehaviorRules | undefined {
  if (behavior === undefined) return undefined;
  const rules = (r: HpaBehavior['scaleUp']): HpaScalingRules | undefined => {
    if (r === undefined) return undefined;
    const tolerance = (r as { tolerance?: unknown }).tolerance;
    return {
      stabilizationWindowSeconds: r.stabilizationWindowSeconds,
      selectPolicy: r.selectPolicy,
      policies: r.policies?.map((p) => ({
        type: p.type,
        value: p.value,
        periodSeconds: p.periodSeconds,
      })),
      tolerance: typeof tolerance === 'number' || typeof tolerance === 'string' ? tolerance : undefined,
    };
  };
  return { scaleUp: rules(behavior.scaleUp), scaleDown: rules(behavior.scaleDown) };
}

/**
 * The trace CSV: a header `t,<column>…` (a trigger's name, or its index), then one row per moment, `t` in seconds
 * (increasing), numbers or empty cells. Lines starting with `#` and blank lines are skipped. Every trigger needs a
 * column; a column naming no trigger is an error. Throws SimulationError naming the line.
 */
export function parseTrace(text: string, triggers: readonly Pick<SimTrigger, 'column' | 'index'>[]): TraceRow[] {
  const lines = text.split(/\r?\n/).map((line, i) => ({ line: line.trim(), number: i + 1 }));
  const content = lines.filter(({ line }) => line !== '' && !line.startsWith('#'));
  const header = content[0];
  if (header === undefined)
    throw new SimulationError('trace', 'is empty: it needs a header "t,<trigger name or index>…" and rows');
  const columns = header.line.split(',').map((c) => c.trim());
  if (columns[0] !== 't') {
    throw new SimulationError(
      `trace line ${header.number}`,
      `the first column must be "t" (seconds), got "${columns[0] ?? ''}"`,
    );
  }
  const positions = triggers.map((trigger) => {
    const byName = columns.indexOf(trigger.column);
    const at = byName > 0 ? byName : columns.indexOf(String(trigger.index));
    if (at <= 0) {
      throw new SimulationError(
        `trace line ${header.number}`,
        `no column for spec.triggers[${trigger.index}] (name it "${trigger.column}"${trigger.column === String(trigger.index) ? '' : ` or "${trigger.index}"`})`,
      );
    }
    return at;
  });
  for (const [i, column] of columns.entries()) {
    if (i > 0 && !positions.includes(i)) {
      const known = triggers.map((t) => `"${t.column}"`).join(', ');
      throw new SimulationError(
        `trace line ${header.number}`,
        `column "${column}" names no trigger (the triggers: ${known})`,
      );
    }
  }
  const rows: TraceRow[] = [];
  for (const { line, number } of content.slice(1)) {
    const cells = line.split(',').map((c) => c.trim());
    if (cells.length > columns.length) {
      throw new SimulationError(`trace line ${number}`, `has ${cells.length} cells, the header ${columns.length}`);
    }
    const t = Number(cells[0]);
    if (cells[0] === '' || !Number.isFinite(t)) {
      throw new SimulationError(`trace line ${number}`, `t must be a number of seconds, got "${cells[0] ?? ''}"`);
    }
    const previous = rows.at(-1);
    if (previous !== undefined && t <= previous.t) {
      throw new SimulationError(`trace line ${number}`, `t must increase (${t} follows ${previous.t})`);
    }
    const values = positions.map((at) => {
      const cell = cells[at] ?? '';
      if (cell === '') return undefined;
      const value = Number(cell);
      if (!Number.isFinite(value)) {
        throw new SimulationError(
          `trace line ${number}`,
          `"${cell}" in column "${columns[at] ?? ''}" is not a number (leave it empty for a failed read)`,
        );
      }
      return value;
    });
    rows.push({ t, values });
  }
  if (rows.length === 0) throw new SimulationError('trace', 'has a header but no rows');
  return rows;
}

interface TriggerRun {
  failingSince: number | undefined;
  fallbackReplicas: number | undefined;
}

/**
 * The replay. Pure: the same model, trace and options give the same steps. A step is recorded at every trace row,
 * every HPA sync, and whenever the replica count changes.
 */
export function simulate(model: SimModel, trace: readonly TraceRow[], options: SimOptions): SimStep[] {
  const first = trace[0];
  const last = trace.at(-1);
  if (first === undefined || last === undefined) return [];
  const epoch = model.settings.createdAt.getTime();
  const ms = (t: number): number => epoch + (t - first.t) * 1000;
  const readS = options.readIntervalS ?? 1;
  const times = new Set<number>(trace.map((r) => r.t));
  const syncs = new Set<number>();
  for (let t = first.t; t <= last.t + 1e-9; t += readS) times.add(round(t));
  for (let t = first.t; t <= last.t + 1e-9; t += options.hpaSyncS) {
    times.add(round(t));
    syncs.add(round(t));
  }
  const pollingMs = model.pollingIntervalS * 1000;
  const runs: TriggerRun[] = model.triggers.map(() => ({ failingSince: undefined, fallbackReplicas: undefined }));
  let replicas = options.initialReplicas ?? model.settings.minReplicaCount;
  let lastActiveTime: Date | undefined;
  let previous: ScaleDecision | undefined;
  let history: HpaHistory = EMPTY_HISTORY;
  let row = 0;
  const steps: SimStep[] = [];
  for (const t of [...times].sort((a, b) => a - b)) {
    while (row + 1 < trace.length && (trace[row + 1]?.t ?? Infinity) <= t) row++;
    const values = trace[row]?.values ?? [];
    const now = ms(t);
    const before = replicas;

    // The poller: each trigger's state, fallback by time as fallback.ts counts it.
    const states: TriggerState[] = model.triggers.map((trigger, i) => {
      const run = runs[i] ?? { failingSince: undefined, fallbackReplicas: undefined };
      const value = values[i];
      if (value !== undefined) {
        run.failingSince = undefined;
        run.fallbackReplicas = undefined;
      } else {
        run.failingSince ??= now;
        const fallback = model.fallback;
        run.fallbackReplicas =
          fallback !== undefined && now >= fallbackEngagesAt(run.failingSince, fallback.failureThreshold, pollingMs)
            ? fallbackReplicas(fallback, replicas)
            : undefined;
      }
      return {
        index: trigger.index,
        type: trigger.type,
        metricName: trigger.metricName,
        sourceKey: trigger.metricName,
        errors: 0,
        value,
        active: value !== undefined && value > trigger.activation,
        error: value === undefined ? 'no value in the trace' : undefined,
        readAt: now,
        failingSince: run.failingSince,
        failures: run.failingSince === undefined ? 0 : failureCount(run.failingSince, now, pollingMs),
        fallbackReplicas: run.fallbackReplicas,
      };
    });
    const summary = summarizeTriggers(states);

    // The executor.
    const evaluated = evaluateScale({
      settings: model.settings,
      summary,
      currentReplicas: replicas,
      lastActiveTime,
      previous,
      now: new Date(now),
    });
    const decision = evaluated.decision;
    lastActiveTime = evaluated.lastActiveTime;
    previous = decision;
    let reason = decision.reason;
    let desired: number | undefined = decision.action === 'scale' ? decision.to : undefined;
    if (decision.action === 'scale') replicas = decision.to;
    if (decision.refreshLastActiveTime) lastActiveTime = new Date(now);

    // What the HPA reads: the value, a fallback's synthetic value, or an error.
    const served = model.triggers.map((trigger, i) => {
      const value = values[i];
      if (value !== undefined) return value;
      const fallback = runs[i]?.fallbackReplicas;
      return fallback === undefined ? undefined : fallbackValue(trigger.metricType, trigger.target, fallback, replicas);
    });
    if (desired === undefined && replicas > 0) {
      const proposal = replicasForMetrics(model.hpa.metrics, served, {
        specReplicas: replicas,
        statusReplicas: replicas,
        readyReplicas: replicas,
        tolerances: tolerancesFor(model.hpa.behavior, options.flags),
      });
      desired =
        proposal.replicas === undefined
          ? replicas
          : Math.min(model.hpa.maxReplicas, Math.max(model.hpa.minReplicas, proposal.replicas));
    }

    // The HPA controller.
    const synced = syncs.has(t);
    if (synced) {
      const result = hpaSync({
        hpa: model.hpa,
        currentReplicas: replicas,
        values: served,
        now,
        history,
        flags: options.flags,
      });
      history = result.history;
      if (replicas > 0) reason = `HPA: ${result.reason}`;
      if (result.rescale) replicas = result.replicas;
    }
    if (trace.some((r) => r.t === t) || synced || replicas !== before) {
      steps.push({ t, values, desiredReplicas: desired ?? replicas, replicas, reason });
    }
  }
  return steps;
}

function round(t: number): number {
  return Math.round(t * 1000) / 1000;
}

// ---------------------------------------------------------------------------------------------------------------
// the command

const USAGE_LINE =
  'usage: sluice simulate -f SCALEDOBJECT.yaml --trace TRACE.csv [-o table|json] [--out chart.svg|chart.png] [--hpa-sync <seconds>] [--hpa-tolerance <ratio>] [--hpa-downscale-stabilization <seconds>] [--replicas <n>]';

/** Runs the subcommand; returns the exit code (0 done, 1 invalid object or trace, 2 bad usage). */
export async function runSimulate(args: readonly string[], io: CliIo): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        filename: { type: 'string', short: 'f' },
        trace: { type: 'string' },
        output: { type: 'string', short: 'o', default: 'table' },
        out: { type: 'string' },
        'hpa-sync': { type: 'string', default: String(DEFAULT_SYNC_PERIOD_S) },
        'hpa-tolerance': { type: 'string', default: String(DEFAULT_TOLERANCE) },
        'hpa-downscale-stabilization': { type: 'string', default: String(DEFAULT_DOWNSCALE_STABILIZATION_S) },
        replicas: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    io.stderr(`sluice simulate: ${describeError(err)}\n${USAGE_LINE}\n`);
    return 2;
  }
  if (values.help) {
    io.stdout(`${USAGE_LINE}\n`);
    return 0;
  }
  const usage = (message: string): number => {
    io.stderr(`sluice simulate: ${message}\n${USAGE_LINE}\n`);
    return 2;
  };
  const file = values.filename;
  const tracePath = values.trace;
  if (file === undefined || tracePath === undefined) return usage('-f and --trace are required');
  if (values.output !== 'table' && values.output !== 'json')
    return usage(`-o must be table or json, got "${values.output}"`);
  const hpaSyncS = Number(values['hpa-sync']);
  if (!Number.isFinite(hpaSyncS) || hpaSyncS <= 0)
    return usage(`--hpa-sync must be a number of seconds above 0, got "${values['hpa-sync']}"`);
  const tolerance = Number(values['hpa-tolerance']);
  if (!Number.isFinite(tolerance) || tolerance < 0) {
    return usage(`--hpa-tolerance must be a number of 0 or more, got "${values['hpa-tolerance']}"`);
  }
  const downscaleStabilizationS = Number(values['hpa-downscale-stabilization']);
  if (!Number.isFinite(downscaleStabilizationS) || downscaleStabilizationS < 0) {
    return usage(
      `--hpa-downscale-stabilization must be a number of seconds, 0 or more, got "${values['hpa-downscale-stabilization']}"`,
    );
  }
  const initial = values.replicas === undefined ? undefined : Number(values.replicas);
  if (initial !== undefined && (!Number.isInteger(initial) || initial < 0)) {
    return usage(`--replicas must be a whole number, got "${values.replicas ?? ''}"`);
  }
  const out = values.out;
  if (out !== undefined && !/\.(svg|png)$/i.test(out)) return usage(`--out must end in .svg or .png, got "${out}"`);

  // The ScaledObject: the operator's validation first.
  let raw: Record<string, unknown>;
  let label: string;
  try {
    const objects = parseDocuments(await readSource(file, io)).filter(
      (d) => typeof d.value === 'object' && d.value !== null && (d.value as { kind?: unknown }).kind === 'ScaledObject',
    );
    if (objects.length !== 1) {
      io.stdout(`${file}: holds ${objects.length} ScaledObjects; simulate takes a file with exactly one\n`);
      return 1;
    }
    raw = objects[0]?.value as Record<string, unknown>;
    const name = (raw['metadata'] as { name?: unknown } | undefined)?.name;
    label = `ScaledObject/${typeof name === 'string' ? name : '<unnamed>'}`;
  } catch (err) {
    if (!(err instanceof DocumentError)) throw err;
    io.stdout(`${err.message.startsWith(`${file}:`) ? err.message : `${file}: ${err.message}`}\n`);
    return 1;
  }
  const validation = validateScaledObject(raw);
  if (validation.errors.length > 0) {
    for (const e of validation.errors) io.stdout(`${file}: ${label}: ${e}\n`);
    return 1;
  }
  let model: SimModel;
  let trace: TraceRow[];
  try {
    model = modelOf(raw, new Date(0));
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    io.stdout(`${file}: ${label}: ${err.message}\n`);
    return 1;
  }
  try {
    trace = parseTrace(await readSource(tracePath, io), model.triggers);
  } catch (err) {
    if (!(err instanceof ValidationError) && !(err instanceof DocumentError)) throw err;
    io.stdout(`${err.message.startsWith(`${tracePath}:`) ? err.message : `${tracePath}: ${err.message}`}\n`);
    return 1;
  }
  const steps = simulate(model, trace, {
    hpaSyncS,
    initialReplicas: initial,
    flags: { tolerance, downscaleStabilizationS },
  });
  io.stdout(values.output === 'json' ? `${JSON.stringify(toJson(model, steps), null, 2)}\n` : table(model, steps));
  if (out !== undefined) {
    const { writeChart } = await import('./chart.ts');
    const bytes = await writeChart(out, model, steps, `${file} with ${tracePath} (HPA sync ${hpaSyncS} s)`);
    io.stderr(`wrote ${out} (${bytes} bytes)\n`);
  }
  return 0;
}

/** `-o json`: value is one number (null when the read failed) with one trigger, an object by column with several. */
export function toJson(
  model: Pick<SimModel, 'triggers'>,
  steps: readonly SimStep[],
): {
  t: number;
  value: number | null | Record<string, number | null>;
  desiredReplicas: number;
  replicas: number;
  reason: string;
}[] {
  return steps.map((s) => ({
    t: s.t,
    value:
      model.triggers.length === 1
        ? (s.values[0] ?? null)
        : Object.fromEntries(model.triggers.map((trigger, i) => [trigger.column, s.values[i] ?? null])),
    desiredReplicas: s.desiredReplicas,
    replicas: s.replicas,
    reason: s.reason,
  }));
}

function table(model: Pick<SimModel, 'triggers'>, steps: readonly SimStep[]): string {
  const header = ['t', ...model.triggers.map((t) => t.column), 'desired', 'replicas', 'reason'];
  const rows = steps.map((s) => [
    String(s.t),
    ...s.values.map((v) => (v === undefined ? 'error' : String(v))),
    String(s.desiredReplicas),
    String(s.replicas),
    s.reason,
  ]);
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => (i === header.length - 1 ? 0 : (r[i] ?? '').length))),
  );
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}
