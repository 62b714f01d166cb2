/**
 * The MetricSource resource (`sluice.dev/v1alpha1`, namespaced): one external metric name served to any HPA, read by
 * one trigger whose metadata may hold `{{label}}` placeholders filled from the label selector the HPA sends. One
 * TypeBox schema gives the types, the validator (parseMetricSource) and the CRD (metricSourceCrd), like the other
 * sluice resources. docs/metric-sources.md says how it is used.
 *
 * The placeholder rules are pure functions here, with table tests:
 * - `placeholdersOf` finds them in the trigger's metadata (`{{queue}}`, `orders-{{env}}`); a placeholder in a parameter
 *   that picks a host, a URL or a credential (registry.ts PLACEHOLDER_REFUSED_PARAMS), or any `<param>FromEnv`, is
 *   refused at validation, naming the field;
 * - `selectorValues` turns the HPA's selector into one value per placeholder, or says (for a 404) what is missing:
 *   each placeholder's label with exactly one value (`queue=a`, `queue==a`, `queue in (a)`), and no other label;
 * - `fillMetadata` writes the values in; the filled metadata is then validated by the scaler like any metadata.
 */
import Type, { type Static } from 'typebox';
import { Value } from 'typebox/value';
import { ValidationError } from '../errors.ts';
import { LabelSelectorError, parseSelector, type Selector } from '../labels.ts';
import { isKnownTriggerType, PLACEHOLDER_REFUSED_PARAMS, TARGET_PARAMS } from '../scalers/registry.ts';
import { RESOURCE_TRIGGER_TYPES } from './composite.ts';
import {
  customResourceDefinition,
  resourceOpenApiSchema,
  type CustomResourceDefinition,
  type PrinterColumn,
} from './crd.ts';
import {
  API_VERSION,
  AuthenticationRefSchema,
  ConditionSchema,
  MAX_POLLING_INTERVAL_S,
  OBJECT_META_FIELDS,
  ResourceSchema,
  SCALED_OBJECT_LABEL,
} from './scaled-object.ts';
import { describeValue, isPlainObject, throwFirstSchemaError } from './schema-errors.ts';

export const METRIC_SOURCE = {
  kind: 'MetricSource',
  listKind: 'MetricSourceList',
  plural: 'metricsources',
  singular: 'metricsource',
  shortNames: ['msrc'],
  scope: 'Namespaced',
} as const;

/** The default of spec.maxSelectors: live selectors per MetricSource. */
export const DEFAULT_MAX_SELECTORS = 100;
/** The most spec.maxSelectors may say (each live selector is a reader, a series and a line of status). */
export const MAX_SELECTORS = 1000;
/**
 * The default of spec.selectorIdleSeconds: a selector no request named for this long is dropped. Twenty of the HPA
 * controller's 15 s syncs: a kube-controller-manager that restarts or fails over does not make every selector wait
 * for a first read again, and a deleted HPA stops costing reads within minutes.
 */
export const DEFAULT_SELECTOR_IDLE_S = 300;
/** The least spec.selectorIdleSeconds may say. */
export const MIN_SELECTOR_IDLE_S = 5;
/** The value placeholders take to validate a MetricSource before any HPA asks (a label value, a number, a name). */
export const SAMPLE_PLACEHOLDER_VALUE = '1';

const INT32_MAX = 2_147_483_647;
/** External metric names are path segments of the metrics API; a label value's characters, up to 253. */
const METRIC_NAME = '^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$';

const TriggerSchema = Type.Object(
  {
    type: Type.String({ minLength: 1, description: 'Scaler type, e.g. rabbitmq, aws-sqs-queue, prometheus.' }),
    metadata: Type.Record(Type.String(), Type.String(), {
      description:
        'Scaler-specific parameters, as in a ScaledObject trigger; values may hold {{label}} placeholders, filled from the label selector the HPA sends (not in parameters that pick a host, a URL or a credential).',
    }),
    authenticationRef: Type.Optional(AuthenticationRefSchema),
  },
  { additionalProperties: false, description: 'What is read, as a ScaledObject trigger.' },
);

export const MetricSourceSpecSchema = Type.Object(
  {
    metricName: Type.String({
      minLength: 1,
      maxLength: 253,
      pattern: METRIC_NAME,
      description: "The external metric name HPAs ask for (the HPA's metric.name); unique in the namespace.",
    }),
    pollingInterval: Type.Integer({
      format: 'int32',
      minimum: 1,
      maximum: MAX_POLLING_INTERVAL_S,
      default: 30,
      description:
        'Seconds between two checks of the live selectors (dropping idle ones, refreshing the status). Values are read about once a second whatever this says, as for ScaledObjects.',
    }),
    maxSelectors: Type.Integer({
      format: 'int32',
      minimum: 1,
      maximum: MAX_SELECTORS,
      default: DEFAULT_MAX_SELECTORS,
      description: 'At most this many label selectors are served at once; a new one past it is refused (429).',
    }),
    selectorIdleSeconds: Type.Integer({
      format: 'int32',
      minimum: MIN_SELECTOR_IDLE_S,
      maximum: INT32_MAX,
      default: DEFAULT_SELECTOR_IDLE_S,
      description:
        "A selector no request named for this long is dropped (its reader closed). Keep it well above the HPA controller's sync period (15 s by default).",
    }),
    trigger: TriggerSchema,
  },
  { additionalProperties: false, description: 'MetricSourceSpec: one external metric, read by one trigger.' },
);

const SelectorStatusSchema = Type.Object({
  labelSelector: Type.String({ description: 'The selector as served (its labels, sorted).' }),
  since: Type.String({ format: 'date-time', description: 'When a request first named it.' }),
  error: Type.Optional(Type.String({ description: 'Why its value is unknown now, if it is.' })),
});

export const MetricSourceStatusSchema = Type.Object(
  {
    conditions: Type.Optional(Type.Array(ConditionSchema)),
    selectors: Type.Optional(
      Type.Array(SelectorStatusSchema, { description: 'The live selectors: each is read until it goes unused.' }),
    ),
    lastError: Type.Optional(Type.String({ description: 'The latest read error of any selector (no credentials).' })),
    observedGeneration: Type.Optional(Type.Integer({ format: 'int64', minimum: 0 })),
  },
  { description: 'MetricSourceStatus, written by the operator (the leader).' },
);

const ObjectMetaSchema = Type.Object({
  ...OBJECT_META_FIELDS,
  creationTimestamp: Type.Optional(Type.String()),
});

export const MetricSourceSchema = ResourceSchema(ObjectMetaSchema, MetricSourceSpecSchema, MetricSourceStatusSchema);

export type MetricSource = Static<typeof MetricSourceSchema>;
export type MetricSourceSpec = Static<typeof MetricSourceSpecSchema>;
export type MetricSourceStatus = Static<typeof MetricSourceStatusSchema>;
export type MetricSourceTrigger = Static<typeof TriggerSchema>;
export type SelectorStatus = Static<typeof SelectorStatusSchema>;

// ---------------------------------------------------------------------------------------------------------------
// placeholders

/** `{{ label }}`: a label key between double braces (spaces allowed inside). */
const PLACEHOLDER = /\{\{\s*([^{}\s]*)\s*\}\}/g;

/** Label → the metadata fields whose values hold it (`spec.trigger.metadata.<key>`), in order of first use. */
export type Placeholders = ReadonlyMap<string, readonly string[]>;

const METADATA_PATH = 'spec.trigger.metadata';

/**
 * The placeholders of a trigger's metadata. Throws ValidationError naming the field for a placeholder that is not a
 * label key, stray braces, a placeholder in a parameter `refused` lists (it picks a host, a URL or a credential), and
 * any `<param>FromEnv`.
 */
export function placeholdersOf(
  metadata: Readonly<Record<string, string>>,
  refused: readonly string[] = [],
): Placeholders {
  const found = new Map<string, string[]>();
  for (const [key, value] of Object.entries(metadata)) {
    const field = `${METADATA_PATH}.${key}`;
    if (key.endsWith('FromEnv') && key.length > 'FromEnv'.length) {
      throw new ValidationError(
        field,
        "a MetricSource has no scale target whose environment could be read: give the value in metadata or from a TriggerAuthentication's secretTargetRef or configMapTargetRef",
      );
    }
    const labels: string[] = [];
    for (const match of value.matchAll(PLACEHOLDER)) {
      const label = match[1] ?? '';
      checkLabelKey(label, field);
      labels.push(label);
    }
    if (/\{\{|\}\}/.test(value.replace(PLACEHOLDER, ''))) {
      throw new ValidationError(field, 'has "{{" or "}}" outside a {{label}} placeholder');
    }
    if (labels.length === 0) continue;
    if (refused.includes(key)) {
      throw new ValidationError(
        field,
        `may not hold a {{label}} placeholder: "${key}" picks a host, a URL or a credential, which a label selector (written by whoever writes an HPA) must never choose; write it out`,
      );
    }
    for (const label of labels) {
      const fields = found.get(label);
      if (fields === undefined) found.set(label, [field]);
      else if (!fields.includes(field)) fields.push(field);
    }
  }
  return found;
}

function checkLabelKey(label: string, field: string): void {
  if (label === '') throw new ValidationError(field, 'has an empty {{}} placeholder: name a label, e.g. {{queue}}');
  try {
    parseSelector(`${label}=x`);
  } catch (err) {
    if (!(err instanceof LabelSelectorError)) throw err;
    throw new ValidationError(
      field,
      `placeholder {{${label}}} does not name a label key (a-z, 0-9, "-", "_", ".", one "/")`,
      {
        cause: err,
      },
    );
  }
}

/** The metadata with every placeholder replaced by its label's value (labels without a value are left as they are). */
export function fillMetadata(
  metadata: Readonly<Record<string, string>>,
  values: Readonly<Record<string, string>>,
): Record<string, string> {
  return Object.fromEntries(
    Object.entries(metadata).map(([key, value]) => [
      key,
      value.replace(PLACEHOLDER, (whole, label: string) =>
        Object.hasOwn(values, label) ? (values[label] ?? '') : whole,
      ),
    ]),
  );
}

/** Every placeholder's label given `value` (validation before any HPA asks). */
export function sampleValues(placeholders: Placeholders, value = SAMPLE_PLACEHOLDER_VALUE): Record<string, string> {
  return Object.fromEntries([...placeholders.keys()].map((label) => [label, value]));
}

export type SelectorValues =
  | { readonly ok: true; readonly values: Readonly<Record<string, string>> }
  | { readonly ok: false; readonly message: string };

/**
 * One value per placeholder label from the HPA's selector, or what is missing (the 404's message). `source` names the
 * MetricSource (`shop/queue-messages-ready`) and `metricName` the metric, for the messages. Pure.
 */
export function selectorValues(
  selector: Selector,
  placeholders: Placeholders,
  source: string,
  metricName: string,
): SelectorValues {
  const labels = [...placeholders.keys()];
  const of = `MetricSource ${source} (metric ${metricName})`;
  const hint =
    labels.length === 0
      ? `${of} has no placeholders: ask for it with no label selector`
      : `${of} fills ${labels.map((l) => `{{${l}}}`).join(', ')} from the selector: give ${labels.map((l) => `${l}=<value>`).join(',')}`;
  const values: Record<string, string> = {};
  for (const { key, operator, values: given } of selector.requirements) {
    if (!placeholders.has(key)) {
      return {
        ok: false,
        message: `the label selector names label "${key}", which is no placeholder of ${of}; ${hint}`,
      };
    }
    const single = (operator === 'equals' || operator === 'in') && given.length === 1 ? given[0] : undefined;
    if (single === undefined) {
      return {
        ok: false,
        message: `label "${key}" must be given exactly one value (${key}=<value>) to fill {{${key}}}: "${describeRequirement(operator, given.length)}" cannot; ${hint}`,
      };
    }
    if (Object.hasOwn(values, key)) {
      return { ok: false, message: `the label selector names label "${key}" twice; ${hint}` };
    }
    if (single === '') {
      return { ok: false, message: `label "${key}" has an empty value, which cannot fill {{${key}}}; ${hint}` };
    }
    values[key] = single;
  }
  const missing = labels.filter((label) => !Object.hasOwn(values, label));
  if (missing.length > 0) {
    const names = missing.map((l) => `"${l}"`).join(', ');
    return {
      ok: false,
      message: `the label selector gives no value for label${missing.length > 1 ? 's' : ''} ${names}; ${hint}`,
    };
  }
  return { ok: true, values };
}

function describeRequirement(operator: Selector['requirements'][number]['operator'], count: number): string {
  switch (operator) {
    case 'in':
      return `in with ${count} values`;
    case 'notin':
      return 'notin';
    case 'notequals':
      return '!=';
    case 'exists':
      return 'exists';
    case 'doesnotexist':
      return 'does not exist';
    case 'gt':
      return '>';
    case 'lt':
      return '<';
    case 'equals':
      return '=';
  }
}

/** The canonical form of a selector's values (`a=1,queue=x`, sorted by label): one live selector each. */
export function selectorKey(values: Readonly<Record<string, string>>): string {
  return Object.keys(values)
    .sort()
    .map((label) => `${label}=${values[label] ?? ''}`)
    .join(',');
}

/** Whether a selector asks for a ScaledObject's series: those are never a MetricSource's, whatever the name. */
export function namesScaledObject(selector: Selector): boolean {
  return selector.requirements.some((r) => r.key === SCALED_OBJECT_LABEL);
}

// ---------------------------------------------------------------------------------------------------------------
// parsing

/** A parsed MetricSource and its placeholders. */
export interface ParsedMetricSource {
  readonly source: MetricSource;
  readonly placeholders: Placeholders;
}

/**
 * Applies the defaults and validates a MetricSource: the schema, the trigger type (a scaler, not cpu or memory), and
 * the placeholders. Throws ValidationError naming the field. The scaler's own validation of the metadata runs where
 * credentials are known (metric-sources.ts), as for ScaledObjects.
 */
export function parseMetricSource(obj: unknown): ParsedMetricSource {
  const kind = METRIC_SOURCE.kind;
  if (!isPlainObject(obj)) throw new ValidationError(kind, `must be an object, got ${describeValue(obj)}`);
  if (obj['apiVersion'] !== undefined && obj['apiVersion'] !== API_VERSION) {
    throw new ValidationError('apiVersion', `must be ${API_VERSION}, got ${describeValue(obj['apiVersion'])}`);
  }
  if (obj['kind'] !== undefined && obj['kind'] !== kind) {
    throw new ValidationError('kind', `must be ${kind}, got ${describeValue(obj['kind'])}`);
  }
  const value = structuredClone(obj);
  const metadata = value['metadata'];
  if (isPlainObject(metadata)) {
    const created = metadata['creationTimestamp'];
    if (created instanceof Date) metadata['creationTimestamp'] = created.toISOString().replace(/\.\d{3}Z$/, 'Z');
  }
  const defaulted = Value.Default(MetricSourceSchema, value);
  // Errors are listed only for an object that has some (as parseScaledObject does).
  if (!Value.Check(MetricSourceSchema, defaulted)) {
    throwFirstSchemaError(Value.Errors(MetricSourceSchema, defaulted), defaulted, {
      root: kind,
      suggestFieldsFrom: MetricSourceSchema,
      quoteHint: true,
    });
    throw new ValidationError(kind, `does not match the ${kind} schema`);
  }
  const source = defaulted;
  const { type, metadata: triggerMetadata } = source.spec.trigger;
  if (RESOURCE_TRIGGER_TYPES.includes(type)) {
    throw new ValidationError(
      'spec.trigger.type',
      `"${type}" is a Resource metric the HPA reads itself; a MetricSource serves external metrics only`,
    );
  }
  if (!isKnownTriggerType(type)) {
    throw new ValidationError(
      'spec.trigger.type',
      `unknown trigger type "${type}" (supported: ${Object.keys(PLACEHOLDER_REFUSED_PARAMS).join(', ')})`,
    );
  }
  const target = TARGET_PARAMS[type].find((key) => Object.hasOwn(triggerMetadata, key));
  if (target !== undefined) {
    throw new ValidationError(
      `${METADATA_PATH}.${target}`,
      "a MetricSource serves the raw value and never scales from or to 0: the HPA's own target applies; remove it",
    );
  }
  const placeholders = placeholdersOf(triggerMetadata, PLACEHOLDER_REFUSED_PARAMS[type]);
  return { source, placeholders };
}

// ---------------------------------------------------------------------------------------------------------------
// CRD

export const METRIC_SOURCE_PRINTER_COLUMNS: readonly PrinterColumn[] = [
  { name: 'Metric', type: 'string', jsonPath: '.spec.metricName' },
  { name: 'Trigger', type: 'string', jsonPath: '.spec.trigger.type' },
  { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
  { name: 'Selectors', type: 'string', jsonPath: '.status.selectors[*].labelSelector', priority: 1 },
  { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
];

/** The `metricsources.sluice.dev` CRD (namespaced). */
export function metricSourceCrd(): CustomResourceDefinition {
  return customResourceDefinition(
    METRIC_SOURCE,
    METRIC_SOURCE_PRINTER_COLUMNS,
    resourceOpenApiSchema(
      `MetricSource serves one external metric to any HPA, read by one trigger whose metadata may hold {{label}} placeholders filled from the HPA's label selector (${API_VERSION}).`,
      MetricSourceSpecSchema,
      MetricSourceStatusSchema,
    ),
  );
}
