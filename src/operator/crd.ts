/**
 * The ScaledObject CustomResourceDefinition, built from the TypeBox schemas in scaled-object.ts so the CRD, the types
 * and the runtime validator cannot drift. `scripts/gen-crds.ts` writes it to crds/scaledobject.yaml.
 *
 * kube-apiserver only accepts structural schemas (every node typed; no $ref, patternProperties, const, anyOf of
 * types, …): `toStructuralSchema` converts TypeBox's JSON Schema into that subset and throws on anything else.
 */
import {
  API_VERSION,
  GROUP,
  KIND,
  LIST_KIND,
  PLURAL,
  ScaledObjectSpecSchema,
  ScaledObjectStatusSchema,
  SHORT_NAMES,
  SINGULAR,
  VERSION,
} from './scaled-object.ts';

/** apiextensions.k8s.io/v1 JSONSchemaProps, with JSON field names (client-node's model renames some). */
export interface JsonSchemaProps {
  type?: string;
  format?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minItems?: number;
  maxItems?: number;
  required?: string[];
  properties?: Record<string, JsonSchemaProps>;
  additionalProperties?: JsonSchemaProps;
  items?: JsonSchemaProps;
  nullable?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-list-type'?: string;
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: string;
  'x-kubernetes-validations'?: { rule: string; message?: string; fieldPath?: string }[];
}

export interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
  description?: string;
  priority?: number;
}

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels?: Record<string, string> };
  spec: {
    group: string;
    names: { kind: string; listKind: string; plural: string; singular: string; shortNames: string[] };
    scope: 'Namespaced' | 'Cluster';
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      subresources: { status: Record<string, never> };
      additionalPrinterColumns: PrinterColumn[];
      schema: { openAPIV3Schema: JsonSchemaProps };
    }[];
  };
}

/** Keywords with no structural meaning that are dropped: `$id`/`$schema` ids, and additionalProperties: false (the API
 * server prunes unknown fields instead, and kubectl's strict field validation reports them). */
const DROPPED = new Set(['$id', '$schema']);
/** TypeBox's Record key pattern for `Type.Record(Type.String(), V)`. */
const ANY_KEY = '^.*$';

/**
 * Converts a TypeBox (JSON Schema) node into a structural schema node: Record → additionalProperties, properties with
 * a default leave `required` (the API server defaults before it validates, and users may omit them), and every node
 * must have a type. Throws an Error naming the schema path for anything a CRD cannot express.
 */
export function toStructuralSchema(schema: unknown, path = '#'): JsonSchemaProps {
  if (!isRecord(schema)) throw new Error(`${path}: not a schema object`);
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) {
    if (DROPPED.has(key)) continue;
    if (COPIED.has(key)) {
      out[key] = structuredClone(value);
    } else if (key === 'properties') {
      if (!isRecord(value)) throw new Error(`${path}/properties: not an object`);
      out['properties'] = Object.fromEntries(
        Object.entries(value).map(([name, child]) => [name, toStructuralSchema(child, `${path}/properties/${name}`)]),
      );
    } else if (key === 'required') {
      // Filled in below, once `properties` is known.
    } else if (key === 'items') {
      out['items'] = toStructuralSchema(value, `${path}/items`);
    } else if (key === 'additionalProperties') {
      if (value === false || value === true) continue;
      out['additionalProperties'] = toStructuralSchema(value, `${path}/additionalProperties`);
    } else if (key === 'patternProperties') {
      const entries = isRecord(value) ? Object.entries(value) : [];
      const [only] = entries;
      if (entries.length !== 1 || only?.[0] !== ANY_KEY) {
        throw new Error(`${path}/patternProperties: only Type.Record(Type.String(), …) can be expressed in a CRD`);
      }
      out['additionalProperties'] = toStructuralSchema(only[1], `${path}/patternProperties`);
    } else {
      throw new Error(`${path}/${key}: keyword not supported in a structural CRD schema`);
    }
  }

  const properties = isRecord(out['properties']) ? out['properties'] : undefined;
  const required = Array.isArray(schema['required'])
    ? schema['required'].filter((name): name is string => {
        if (typeof name !== 'string') throw new Error(`${path}/required: not a list of names`);
        const child = properties?.[name];
        return !(isRecord(child) && 'default' in child);
      })
    : [];
  if (required.length > 0) out['required'] = required;

  if (
    out['type'] === undefined &&
    out['x-kubernetes-preserve-unknown-fields'] !== true &&
    out['x-kubernetes-int-or-string'] !== true
  ) {
    throw new Error(`${path}: every node of a structural schema needs a type`);
  }
  if (properties !== undefined && out['additionalProperties'] !== undefined) {
    throw new Error(`${path}: properties and additionalProperties are mutually exclusive in a CRD`);
  }
  const sorted: JsonSchemaProps = Object.fromEntries(
    Object.entries(out).sort(([a], [b]) => KEY_ORDER.indexOf(a) - KEY_ORDER.indexOf(b)),
  );
  return sorted;
}

/** Key order in the generated YAML: what a reader looks for first. */
const KEY_ORDER = [
  'description',
  'type',
  'format',
  'enum',
  'default',
  'minimum',
  'maximum',
  'minLength',
  'maxLength',
  'pattern',
  'minItems',
  'maxItems',
  'nullable',
  'required',
  'properties',
  'additionalProperties',
  'items',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-int-or-string',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-map-type',
  'x-kubernetes-validations',
];
/** Keywords holding subschemas or property names: converted by toStructuralSchema, not copied. */
const CONVERTED = ['required', 'properties', 'additionalProperties', 'items'];
/** Keywords copied as they are (after a type check). Anything else, TypeBox's or JSON Schema's, is rejected. */
const COPIED = new Set(KEY_ORDER.filter((key) => !CONVERTED.includes(key)));

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The openAPIV3Schema of a resource: its TypeMeta and metadata, and the structural forms of its spec and status. */
export function resourceOpenApiSchema(description: string, spec: unknown, status: unknown): JsonSchemaProps {
  return {
    description,
    type: 'object',
    properties: {
      apiVersion: { description: 'APIVersion defines the versioned schema of this object.', type: 'string' },
      kind: { description: 'Kind is the REST resource this object represents.', type: 'string' },
      metadata: { type: 'object' },
      spec: toStructuralSchema(spec, '#/spec'),
      status: toStructuralSchema(status, '#/status'),
    },
    required: ['spec'],
  };
}

/** The openAPIV3Schema of the ScaledObject resource. */
export function scaledObjectOpenApiSchema(): JsonSchemaProps {
  return resourceOpenApiSchema(
    `ScaledObject scales a workload on external events (KEDA-compatible, ${API_VERSION}).`,
    ScaledObjectSpecSchema,
    ScaledObjectStatusSchema,
  );
}

function conditionColumn(type: string): PrinterColumn {
  return { name: type, type: 'string', jsonPath: `.status.conditions[?(@.type=="${type}")].status` };
}

/** KEDA's printer columns. */
export const PRINTER_COLUMNS: readonly PrinterColumn[] = [
  { name: 'ScaleTargetKind', type: 'string', jsonPath: '.status.scaleTargetKind' },
  { name: 'ScaleTargetName', type: 'string', jsonPath: '.spec.scaleTargetRef.name' },
  { name: 'Min', type: 'integer', jsonPath: '.spec.minReplicaCount' },
  { name: 'Max', type: 'integer', jsonPath: '.spec.maxReplicaCount' },
  conditionColumn('Ready'),
  conditionColumn('Active'),
  conditionColumn('Fallback'),
  conditionColumn('Paused'),
  { name: 'Triggers', type: 'string', jsonPath: '.status.triggersTypes' },
  { name: 'Authentications', type: 'string', jsonPath: '.status.authenticationsTypes' },
  { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
];

/** A CRD's names and scope. */
export interface ResourceNames {
  readonly kind: string;
  readonly listKind: string;
  readonly plural: string;
  readonly singular: string;
  readonly shortNames: readonly string[];
  readonly scope: 'Namespaced' | 'Cluster';
}

/** The `<plural>.sluice.dev` CRD: one served and stored version with the status subresource. */
export function customResourceDefinition(
  names: ResourceNames,
  printerColumns: readonly PrinterColumn[],
  openAPIV3Schema: JsonSchemaProps,
): CustomResourceDefinition {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${names.plural}.${GROUP}`, labels: { 'app.kubernetes.io/part-of': 'sluice' } },
    spec: {
      group: GROUP,
      names: {
        kind: names.kind,
        listKind: names.listKind,
        plural: names.plural,
        singular: names.singular,
        shortNames: [...names.shortNames],
      },
      scope: names.scope,
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: printerColumns.map((c) => ({ ...c })),
          schema: { openAPIV3Schema },
        },
      ],
    },
  };
}

/** The `scaledobjects.sluice.dev` CRD. */
export function scaledObjectCrd(): CustomResourceDefinition {
  return customResourceDefinition(
    {
      kind: KIND,
      listKind: LIST_KIND,
      plural: PLURAL,
      singular: SINGULAR,
      shortNames: SHORT_NAMES,
      scope: 'Namespaced',
    },
    PRINTER_COLUMNS,
    scaledObjectOpenApiSchema(),
  );
}
