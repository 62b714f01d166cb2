/**
 * `sluice validate FILE... | -`: the checks the operator makes before it does anything with an object (schema,
 * cross-field rules, annotations, every trigger's metadata, the HPA it implies), offline, with the operator's own
 * messages: `file: Kind/name: field: message`. Exit 1 on any error (or unknown kind), 0 when every object is valid.
 *
 * Triggers that read parameters from a TriggerAuthentication (`authenticationRef`) or from the scale target's
 * environment (`…FromEnv`) are checked as far as their schema; their metadata needs the resolved values, which only
 * the cluster has, and is checked by the operator then (the summary says how many).
 *
 * Kinds are a table (VALIDATORS): a new kind is one entry.
 */
import { ValidationError, describeError } from '../errors.ts';
import { parseAnnotations } from '../operator/annotations.ts';
import { parseComposite } from '../operator/composite.ts';
import { METRIC_SOURCE, parseMetricSource } from '../operator/metric-source.ts';
import { desiredHpa } from '../operator/hpa.ts';
import { buildTrigger, hpaMetrics } from '../operator/reconcile.ts';
import { API_VERSION, parseScaledObject, type ScaledObject } from '../operator/scaled-object.ts';
import {
  CLUSTER_TRIGGER_AUTHENTICATION,
  TRIGGER_AUTHENTICATION,
  parseTriggerAuthentication,
} from '../operator/trigger-authentication.ts';
import type { ClusterPort, Scaler } from '../scalers/scaler.ts';
import { DocumentError, parseDocuments, readSource, type CliIo } from './documents.ts';

/** What a validator found in one object. */
export interface Validation {
  /** `field: message`, the operator's words. */
  readonly errors: readonly string[];
  /** Triggers whose metadata needs the cluster (credentials, the target's environment) to be checked. */
  readonly unchecked: number;
}

export type Validator = (object: Readonly<Record<string, unknown>>) => Validation;

/** Kind → validator. Add a kind here (e.g. MetricSource) and `sluice validate` knows it. */
export const VALIDATORS: Readonly<Record<string, Validator>> = {
  ScaledObject: validateScaledObject,
  [TRIGGER_AUTHENTICATION.kind]: (object) =>
    only(() => parseTriggerAuthentication(object, TRIGGER_AUTHENTICATION.kind)),
  [CLUSTER_TRIGGER_AUTHENTICATION.kind]: (object) =>
    only(() => parseTriggerAuthentication(object, CLUSTER_TRIGGER_AUTHENTICATION.kind)),
  [METRIC_SOURCE.kind]: (object) => only(() => parseMetricSource(object)),
};

/** Scalers never call the cluster while they are built; offline nothing answers. */
const OFFLINE: ClusterPort = {
  readyEndpoints: () => Promise.reject(new Error('sluice validate works offline: no cluster to ask')),
};

function only(parse: () => unknown): Validation {
  try {
    parse();
    return { errors: [], unchecked: 0 };
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    return { errors: [err.message], unchecked: 0 };
  }
}

/** Whether the trigger's metadata needs values from the cluster (a TriggerAuthentication, the target's env). */
export function needsCluster(trigger: ScaledObject['spec']['triggers'][number]): boolean {
  return trigger.authenticationRef !== undefined || Object.keys(trigger.metadata).some((k) => k.endsWith('FromEnv'));
}

/**
 * What reconcile checks before it resolves credentials (parseScaledObject, parseAnnotations, parseComposite), then
 * every trigger that needs no credentials (buildTrigger; all of them are reported, not only the first), then the HPA
 * (desiredHpa) when every trigger could be built.
 */
export function validateScaledObject(object: Readonly<Record<string, unknown>>): Validation {
  let so: ScaledObject;
  let composite;
  try {
    so = parseScaledObject(object);
    parseAnnotations(so.metadata.annotations);
    composite = parseComposite(so.spec);
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    return { errors: [err.message], unchecked: 0 };
  }
  const errors: string[] = [];
  const scalers: Scaler[] = [];
  let unchecked = 0;
  const resources = [];
  for (const [index, trigger] of so.spec.triggers.entries()) {
    if (needsCluster(trigger)) {
      unchecked++;
      continue;
    }
    try {
      const built = buildTrigger(so, index, OFFLINE, { triggers: [] }, composite);
      if (built.kind === 'scaler') scalers.push(built.scaler);
      else resources.push(built.resource);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      errors.push(err.message);
    }
  }
  if (errors.length === 0 && unchecked === 0) {
    try {
      desiredHpa({
        // Offline objects carry neither: the HPA's owner reference needs them, nothing else does.
        scaledObject: {
          ...so,
          metadata: {
            ...so.metadata,
            namespace: so.metadata.namespace ?? 'default',
            uid: so.metadata.uid ?? 'offline',
          },
        },
        metrics: hpaMetrics(scalers, composite),
        resources,
        annotations: parseAnnotations(so.metadata.annotations),
      });
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      errors.push(err.message);
    }
  }
  return { errors, unchecked };
}

/** One object's result, for the report. */
interface Checked {
  readonly file: string;
  readonly label: string;
  readonly errors: readonly string[];
  readonly unchecked: number;
}

const USAGE_LINE = 'usage: sluice validate FILE... (or - for standard input)';

/** Runs the subcommand; returns the exit code (0 all valid, 1 some error, 2 bad usage). */
export async function runValidate(args: readonly string[], io: CliIo): Promise<number> {
  if (args.length === 0 || args.some((a) => a === '--help' || a === '-h')) {
    (args.length === 0 ? io.stderr : io.stdout)(`${USAGE_LINE}\n`);
    return args.length === 0 ? 2 : 0;
  }
  const unknownFlag = args.find((a) => a.startsWith('-') && a !== '-');
  if (unknownFlag !== undefined) {
    io.stderr(`sluice validate: unknown option "${unknownFlag}"; ${USAGE_LINE}\n`);
    return 2;
  }
  const results: Checked[] = [];
  let fileErrors = 0;
  for (const path of args) {
    const file = path === '-' ? '<stdin>' : path;
    let documents;
    try {
      documents = parseDocuments(await readSource(path, io));
    } catch (err) {
      if (!(err instanceof DocumentError)) throw err;
      io.stdout(`${err.message.startsWith(`${path}:`) ? err.message : `${file}: ${err.message}`}\n`);
      fileErrors++;
      continue;
    }
    for (const { document, value } of documents) results.push(check(file, document, value));
  }
  for (const r of results) for (const e of r.errors) io.stdout(`${r.file}: ${r.label}: ${e}\n`);
  const invalid = results.filter((r) => r.errors.length > 0).length;
  const unchecked = results.reduce((n, r) => n + r.unchecked, 0);
  const files = args.length === 1 ? '1 file' : `${args.length} files`;
  const objects = results.length === 1 ? '1 object' : `${results.length} objects`;
  const unreadable = fileErrors === 0 ? '' : `, ${fileErrors} unreadable`;
  const note =
    unchecked === 0
      ? ''
      : ` (${unchecked} trigger${unchecked === 1 ? '' : 's'} with an authenticationRef or …FromEnv: metadata checked by the operator once it resolves them)`;
  io.stdout(`${objects} in ${files}: ${results.length - invalid} valid, ${invalid} invalid${unreadable}${note}\n`);
  return invalid > 0 || fileErrors > 0 ? 1 : 0;
}

function check(file: string, document: number, value: unknown): Checked {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return {
      file,
      label: `document ${document}`,
      errors: ['is not an object (a Kubernetes object has kind and metadata)'],
      unchecked: 0,
    };
  }
  const object = value as Record<string, unknown>;
  const kind = typeof object['kind'] === 'string' ? object['kind'] : undefined;
  const metadata = object['metadata'];
  const name =
    typeof metadata === 'object' && metadata !== null && typeof (metadata as { name?: unknown }).name === 'string'
      ? (metadata as { name: string }).name
      : `<document ${document}>`;
  const label = `${kind ?? '<no kind>'}/${name}`;
  const validator = kind === undefined ? undefined : VALIDATORS[kind];
  if (validator === undefined || !Object.hasOwn(VALIDATORS, kind ?? '')) {
    const known = Object.keys(VALIDATORS).join(', ');
    const message =
      kind === undefined
        ? `kind: is required (sluice validate checks ${known} of ${API_VERSION})`
        : `kind: unknown kind "${kind}" (sluice validate checks ${known} of ${API_VERSION})`;
    return { file, label, errors: [message], unchecked: 0 };
  }
  try {
    return { file, label, ...validator(object) };
  } catch (err) {
    // A validator that throws something else is a bug in sluice; report it against the object, keep going.
    return {
      file,
      label,
      errors: [`could not be checked (a bug in sluice; please report it): ${describeError(err)}`],
      unchecked: 0,
    };
  }
}
