/**
 * The ScaledObject annotations sluice acts on, KEDA's (docs/keda-compatibility.md#annotations) and the same keys under
 * sluice's own prefixes, parsed into one value. When both prefixes set a key, sluice's wins.
 *
 * | key (`autoscaling.keda.sh/…` or `autoscaling.sluice.dev/…`) | effect |
 * |---|---|
 * | `paused-replicas: "<n>"` | paused: no HPA, no poller or executor, the target held at n through /scale (n = 0 is a real 0) |
 * | `paused: "true"`         | paused at the current replica count (no HPA, no poller or executor) |
 * | `paused-scale-in: "true"`  | the HPA's scaleDown selectPolicy Disabled; the executor never scales in (to 0 or idle) |
 * | `paused-scale-out: "true"` | the HPA's scaleUp selectPolicy Disabled; the executor never activates from 0 (or idle) |
 * | `force-activation: "true"` | active whatever the triggers say |
 *
 * | key (`scaledobject.keda.sh/…` or `scaledobject.sluice.dev/…`) | effect |
 * |---|---|
 * | `transfer-hpa-ownership: "true"` | adopt the existing HPA named in advanced.horizontalPodAutoscalerConfig.name |
 * | `hpa-excluded-labels: "a,b"`     | these labels of the ScaledObject are not copied onto its HPA |
 *
 * Deliberate difference from KEDA: a value that does not parse is an error naming the annotation (Ready=False), where
 * KEDA reads an unparsable boolean as true and fails the reconcile on an unparsable count. Booleans take Go's
 * strconv.ParseBool spellings (1, t, T, TRUE, true, True and the false ones), as KEDA does.
 */
import { ValidationError } from '../errors.ts';

export const KEDA_AUTOSCALING = 'autoscaling.keda.sh/';
export const SLUICE_AUTOSCALING = 'autoscaling.sluice.dev/';
export const KEDA_SCALEDOBJECT = 'scaledobject.keda.sh/';
export const SLUICE_SCALEDOBJECT = 'scaledobject.sluice.dev/';

export interface ObjectAnnotations {
  /** `paused-replicas`: the count the target is held at while paused. */
  readonly pausedReplicas: number | undefined;
  /** Paused altogether (`paused-replicas` or `paused`): no HPA, nothing running. */
  readonly paused: boolean;
  readonly pausedScaleIn: boolean;
  readonly pausedScaleOut: boolean;
  readonly forceActivation: boolean;
  readonly transferHpaOwnership: boolean;
  readonly hpaExcludedLabels: readonly string[];
}

const TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const FALSE = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);
const INT32_MAX = 2_147_483_647;

/** The value of `key` under sluice's prefix, else KEDA's, with the field path that names it. */
function lookup(
  annotations: Readonly<Record<string, string>>,
  key: string,
  prefixes: readonly [sluice: string, keda: string],
): { value: string; field: string } | undefined {
  for (const prefix of prefixes) {
    const value = annotations[`${prefix}${key}`];
    if (value !== undefined) return { value, field: `metadata.annotations["${prefix}${key}"]` };
  }
  return undefined;
}

function bool(
  annotations: Readonly<Record<string, string>>,
  key: string,
  prefixes: readonly [string, string],
): boolean {
  const found = lookup(annotations, key, prefixes);
  if (found === undefined) return false;
  if (TRUE.has(found.value)) return true;
  if (FALSE.has(found.value)) return false;
  throw new ValidationError(found.field, `must be "true" or "false", got ${JSON.stringify(found.value.slice(0, 40))}`);
}

/** Parses the annotations sluice acts on. Throws ValidationError naming the annotation. */
export function parseAnnotations(annotations: Readonly<Record<string, string>> | undefined): ObjectAnnotations {
  const all = annotations ?? {};
  const autoscaling = [SLUICE_AUTOSCALING, KEDA_AUTOSCALING] as const;
  const scaledObject = [SLUICE_SCALEDOBJECT, KEDA_SCALEDOBJECT] as const;
  let pausedReplicas: number | undefined;
  const replicas = lookup(all, 'paused-replicas', autoscaling);
  if (replicas !== undefined) {
    // As deploy/admission-policy.yaml: at most 10 digits, at most int32's maximum.
    if (!/^\d{1,10}$/.test(replicas.value) || Number(replicas.value) > INT32_MAX) {
      throw new ValidationError(
        replicas.field,
        `must be a whole number of replicas (0 to ${INT32_MAX}), got ${JSON.stringify(replicas.value.slice(0, 40))}`,
      );
    }
    pausedReplicas = Number(replicas.value);
  }
  const paused = bool(all, 'paused', autoscaling);
  const excluded = lookup(all, 'hpa-excluded-labels', scaledObject);
  return {
    pausedReplicas,
    paused: pausedReplicas !== undefined || paused,
    pausedScaleIn: bool(all, 'paused-scale-in', autoscaling),
    pausedScaleOut: bool(all, 'paused-scale-out', autoscaling),
    forceActivation: bool(all, 'force-activation', autoscaling),
    transferHpaOwnership: bool(all, 'transfer-hpa-ownership', scaledObject),
    hpaExcludedLabels:
      excluded === undefined
        ? []
        : excluded.value
            .split(',')
            .map((label) => label.trim())
            .filter((label) => label !== ''),
  };
}

/** Whether any pause annotation is in effect (the Paused condition). */
export function anyPause(a: ObjectAnnotations): boolean {
  return a.paused || a.pausedScaleIn || a.pausedScaleOut;
}
