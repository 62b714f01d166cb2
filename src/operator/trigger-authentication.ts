/**
 * The TriggerAuthentication (namespaced, `ta`/`triggerauth`) and ClusterTriggerAuthentication (cluster-scoped,
 * `cta`/`clustertriggerauth`) resources: one TypeBox schema for their common spec gives the TypeScript types, the
 * runtime validator (parseTriggerAuthentication) and both CRDs' openAPIV3Schema. Field for field KEDA's
 * `keda.sh/v1alpha1` TriggerAuthenticationSpec, under `sluice.dev/v1alpha1`
 * (docs/keda-compatibility.md#triggerauthentication).
 *
 * sluice resolves `secretTargetRef`, `configMapTargetRef` and `env` (auth-resolver.ts). KEDA's other sources
 * (`podIdentity` providers other than `none`, `filePath`, `hashiCorpVault`, `azureKeyVault`, `gcpSecretManager`,
 * `awsSecretManager`, `boundServiceAccountToken`, `oauth2`) are part of the CRD so that a KEDA manifest applies as it
 * is, and parseTriggerAuthentication rejects them by name ("not supported by sluice yet"), so a ScaledObject that uses
 * such an object gets Ready=False saying why instead of scaling with credentials silently missing.
 *
 * A ClusterTriggerAuthentication also says which namespaces may use it (sluice's addition; KEDA lets every namespace
 * use every ClusterTriggerAuthentication, kedacore/keda#4857): `spec.allowedNamespaces` (names) and/or
 * `spec.allowedNamespaceSelector` (a metav1.LabelSelector matched against the labels of the ScaledObject's Namespace).
 * With neither, no namespace may use it unless the operator runs with `--cluster-trigger-authentication-any-namespace`
 * (auth-resolver.ts enforces it; docs/keda-compatibility.md#triggerauthentication).
 */
import Type, { type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { Value } from 'typebox/value';
import { ValidationError } from '../errors.ts';
import {
  customResourceDefinition,
  resourceOpenApiSchema,
  type CustomResourceDefinition,
  type JsonSchemaProps,
  type PrinterColumn,
} from './crd.ts';
import { API_VERSION, OBJECT_META_FIELDS, ResourceSchema } from './scaled-object.ts';
import { describeValue, isPlainObject, throwFirstSchemaError } from './schema-errors.ts';

export const TRIGGER_AUTHENTICATION = {
  kind: 'TriggerAuthentication',
  listKind: 'TriggerAuthenticationList',
  plural: 'triggerauthentications',
  singular: 'triggerauthentication',
  shortNames: ['ta', 'triggerauth'],
  scope: 'Namespaced',
} as const;

export const CLUSTER_TRIGGER_AUTHENTICATION = {
  kind: 'ClusterTriggerAuthentication',
  listKind: 'ClusterTriggerAuthenticationList',
  plural: 'clustertriggerauthentications',
  singular: 'clustertriggerauthentication',
  shortNames: ['cta', 'clustertriggerauth'],
  scope: 'Cluster',
} as const;

export type AuthenticationKind = typeof TRIGGER_AUTHENTICATION.kind | typeof CLUSTER_TRIGGER_AUTHENTICATION.kind;

/** KEDA's podIdentity providers (the CRD enum); sluice supports only `none` so far. */
export const POD_IDENTITY_PROVIDERS = ['azure-workload', 'gcp', 'aws', 'aws-eks', 'none'] as const;
const SUPPORTED_POD_IDENTITY_PROVIDERS: readonly string[] = ['none'];

// ---------------------------------------------------------------------------------------------------------------
// spec

const Parameter = Type.String({ minLength: 1, description: 'The scaler parameter this value is given as.' });

const TargetRefSchema = (what: 'Secret' | 'ConfigMap') =>
  Type.Object(
    {
      parameter: Parameter,
      name: Type.String({
        minLength: 1,
        description: `Name of the ${what}: in the ScaledObject's namespace for a TriggerAuthentication, in the operator's cluster-object namespace for a ClusterTriggerAuthentication.`,
      }),
      key: Type.String({ minLength: 1, description: `Key in the ${what}'s data.` }),
    },
    { additionalProperties: false },
  );

const EnvSchema = Type.Object(
  {
    parameter: Parameter,
    name: Type.String({
      minLength: 1,
      description: "Name of an environment variable of the scale target's container.",
    }),
    containerName: Type.Optional(
      Type.String({ description: "Container of the scale target's pod template (default: the first)." }),
    ),
  },
  { additionalProperties: false },
);

const PodIdentitySchema = Type.Object(
  {
    provider: Type.Enum([...POD_IDENTITY_PROVIDERS], {
      type: 'string',
      description: 'Platform identity to authenticate with; sluice supports only "none" so far.',
    }),
    identityId: Type.Optional(Type.String()),
    identityTenantId: Type.Optional(Type.String()),
    identityAuthorityHost: Type.Optional(Type.String()),
    roleArn: Type.Optional(Type.String()),
    externalID: Type.Optional(Type.String()),
    identityOwner: Type.Optional(Type.Enum(['keda', 'workload'], { type: 'string' })),
  },
  { additionalProperties: false, description: 'Pod identity (KEDA); only provider "none" is supported by sluice.' },
);

/** podIdentity's fields besides `provider`: each configures a provider sluice does not support. */
const POD_IDENTITY_FIELDS = [
  'identityId',
  'identityTenantId',
  'identityAuthorityHost',
  'roleArn',
  'externalID',
  'identityOwner',
] as const;

/** A KEDA source sluice does not implement: kept (not pruned) so parseTriggerAuthentication can name it. */
const unsupportedObject = (description: string) =>
  Type.Optional(
    Type.Object(
      {},
      { 'x-kubernetes-preserve-unknown-fields': true, description: `${description} (not supported by sluice yet).` },
    ),
  );

/** Spec fields KEDA has and sluice rejects, in KEDA's resolution order. */
export const UNSUPPORTED_SOURCES = [
  'filePath',
  'hashiCorpVault',
  'azureKeyVault',
  'gcpSecretManager',
  'awsSecretManager',
  'boundServiceAccountToken',
  'oauth2',
] as const;

/** The fields both kinds share (KEDA's TriggerAuthenticationSpec). */
const SPEC_FIELDS = {
  podIdentity: Type.Optional(PodIdentitySchema),
  secretTargetRef: Type.Optional(
    Type.Array(TargetRefSchema('Secret'), {
      description: 'Parameters read from Secrets; applied after env and configMapTargetRef, so they win.',
    }),
  ),
  configMapTargetRef: Type.Optional(
    Type.Array(TargetRefSchema('ConfigMap'), {
      description: 'Parameters read from ConfigMaps; applied after env.',
    }),
  ),
  env: Type.Optional(
    Type.Array(EnvSchema, {
      description: "Parameters read from the scale target's container environment; applied first.",
    }),
  ),
  filePath: Type.Optional(
    Type.String({ description: 'KEDA: a file mounted in the operator (not supported by sluice yet).' }),
  ),
  hashiCorpVault: unsupportedObject('HashiCorp Vault'),
  azureKeyVault: unsupportedObject('Azure Key Vault'),
  gcpSecretManager: unsupportedObject('GCP Secret Manager'),
  awsSecretManager: unsupportedObject('AWS Secrets Manager'),
  boundServiceAccountToken: Type.Optional(
    Type.Array(Type.Object({}, { 'x-kubernetes-preserve-unknown-fields': true }), {
      description: 'Bound service account tokens (not supported by sluice yet).',
    }),
  ),
  oauth2: unsupportedObject('OAuth2 client credentials'),
};

export const TriggerAuthenticationSpecSchema = Type.Object(SPEC_FIELDS, {
  additionalProperties: false,
  description: 'TriggerAuthenticationSpec: where the parameters of a trigger come from (KEDA keda.sh/v1alpha1).',
});

/** metav1.LabelSelectorOperator: the operators a LabelSelector's matchExpressions take. */
export const SELECTOR_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;

/**
 * metav1.LabelSelectorRequirement. In and NotIn need values, Exists and DoesNotExist take none (apimachinery
 * ValidateLabelSelectorRequirement): a CEL rule in the CRD, and parseTriggerAuthentication for objects that did not
 * come through the API server.
 */
const SelectorRequirementSchema = Type.Object(
  {
    key: Type.String({ minLength: 1, description: 'The label key the requirement applies to.' }),
    operator: Type.Enum([...SELECTOR_OPERATORS], { type: 'string' }),
    values: Type.Optional(
      Type.Array(Type.String(), { description: 'Label values: required for In and NotIn, empty otherwise.' }),
    ),
  },
  {
    additionalProperties: false,
    'x-kubernetes-validations': [
      {
        rule: "self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0 : !has(self.values) || size(self.values) == 0",
        message: 'values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist',
      },
    ],
  },
);

/** metav1.LabelSelector. An empty selector (`{}`) matches every namespace, as everywhere in Kubernetes. */
export const LabelSelectorSchema = Type.Object(
  {
    matchLabels: Type.Optional(Type.Record(Type.String(), Type.String())),
    matchExpressions: Type.Optional(Type.Array(SelectorRequirementSchema)),
  },
  {
    additionalProperties: false,
    description:
      "Namespaces whose labels match may use this ClusterTriggerAuthentication (matchLabels and matchExpressions, ANDed; {} matches every namespace; kubernetes.io/metadata.name is each namespace's name).",
  },
);

const DNS1123_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';

export const ClusterTriggerAuthenticationSpecSchema = Type.Object(
  {
    ...SPEC_FIELDS,
    allowedNamespaces: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 63, pattern: DNS1123_LABEL }), {
        description:
          'Namespaces whose ScaledObjects may use this ClusterTriggerAuthentication (sluice). With neither this nor allowedNamespaceSelector, no namespace may (unless the operator runs with --cluster-trigger-authentication-any-namespace).',
        'x-kubernetes-list-type': 'set',
      }),
    ),
    allowedNamespaceSelector: Type.Optional(LabelSelectorSchema),
  },
  {
    additionalProperties: false,
    description:
      'ClusterTriggerAuthenticationSpec: where the parameters of a trigger come from (KEDA keda.sh/v1alpha1), and which namespaces may use them (sluice).',
  },
);

export const TriggerAuthenticationStatusSchema = Type.Object(
  {
    scaledobjects: Type.Optional(Type.String({ description: 'Comma-separated names of the ScaledObjects using it.' })),
  },
  { description: 'TriggerAuthenticationStatus.' },
);

const ObjectMetaSchema = Type.Object(OBJECT_META_FIELDS);

export const TriggerAuthenticationSchema = ResourceSchema(
  ObjectMetaSchema,
  TriggerAuthenticationSpecSchema,
  TriggerAuthenticationStatusSchema,
);

export const ClusterTriggerAuthenticationSchema = ResourceSchema(
  ObjectMetaSchema,
  ClusterTriggerAuthenticationSpecSchema,
  TriggerAuthenticationStatusSchema,
);

/** Compiled on first use, as the ScaledObject's (src/operator/scaled-object.ts). */
let namespacedValidator: ReturnType<typeof Compile<typeof TriggerAuthenticationSchema>> | undefined;
let clusterValidator: ReturnType<typeof Compile<typeof ClusterTriggerAuthenticationSchema>> | undefined;

/** Either kind as parsed: a (namespaced) TriggerAuthentication never has the ClusterTriggerAuthentication-only fields. */
export type TriggerAuthentication = Static<typeof ClusterTriggerAuthenticationSchema>;
export type TriggerAuthenticationSpec = Static<typeof ClusterTriggerAuthenticationSpecSchema>;
export type LabelSelector = Static<typeof LabelSelectorSchema>;
export type AuthSecretTargetRef = Static<ReturnType<typeof TargetRefSchema>>;
export type AuthEnvironment = Static<typeof EnvSchema>;

// ---------------------------------------------------------------------------------------------------------------
// parsing

/**
 * Validates a (Cluster)TriggerAuthentication against the schema, then rejects what sluice does not implement.
 * Throws ValidationError whose field is relative to the object (`spec.secretTargetRef[0].key`). The input is not
 * modified. Fields the metadata carries beyond those in the schema (managedFields, labels, …) are ignored.
 */
export function parseTriggerAuthentication(obj: unknown, kind: AuthenticationKind): TriggerAuthentication {
  if (!isPlainObject(obj)) throw new ValidationError(kind, `must be an object, got ${describeValue(obj)}`);
  if (obj['apiVersion'] !== undefined && obj['apiVersion'] !== API_VERSION) {
    throw new ValidationError('apiVersion', `must be ${API_VERSION}, got ${describeValue(obj['apiVersion'])}`);
  }
  if (obj['kind'] !== undefined && obj['kind'] !== kind) {
    throw new ValidationError('kind', `must be ${kind}, got ${describeValue(obj['kind'])}`);
  }
  const metadata = obj['metadata'];
  const value: Record<string, unknown> = {
    ...(obj['apiVersion'] !== undefined ? { apiVersion: obj['apiVersion'] } : {}),
    ...(obj['kind'] !== undefined ? { kind: obj['kind'] } : {}),
    ...(metadata !== undefined
      ? { metadata: isPlainObject(metadata) ? pick(metadata, Object.keys(ObjectMetaSchema.properties)) : metadata }
      : {}),
    // KEDA's spec is required, but `spec: {}` is written back by some tools as no spec at all.
    spec: obj['spec'] ?? {},
    ...(obj['status'] !== undefined ? { status: obj['status'] } : {}),
  };
  const schema =
    kind === CLUSTER_TRIGGER_AUTHENTICATION.kind ? ClusterTriggerAuthenticationSchema : TriggerAuthenticationSchema;
  const validator =
    kind === CLUSTER_TRIGGER_AUTHENTICATION.kind
      ? (clusterValidator ??= Compile(ClusterTriggerAuthenticationSchema))
      : (namespacedValidator ??= Compile(TriggerAuthenticationSchema));
  if (!validator.Check(value)) {
    throwFirstSchemaError(Value.Errors(schema, value), value, { root: 'TriggerAuthentication' });
    throw new ValidationError(kind, `does not match the ${kind} schema`);
  }
  const ta: TriggerAuthentication = structuredClone(value);
  checkSupported(ta.spec);
  checkSelector(ta.spec.allowedNamespaceSelector);
  return ta;
}

/** What the CRD's CEL rule checks, for objects that did not come through the API server. */
function checkSelector(selector: LabelSelector | undefined): void {
  for (const [i, requirement] of (selector?.matchExpressions ?? []).entries()) {
    const count = requirement.values?.length ?? 0;
    const needsValues = requirement.operator === 'In' || requirement.operator === 'NotIn';
    if (needsValues ? count === 0 : count > 0) {
      throw new ValidationError(
        `spec.allowedNamespaceSelector.matchExpressions[${i}].values`,
        needsValues
          ? `must not be empty for operator ${requirement.operator}`
          : `must be empty for operator ${requirement.operator}`,
      );
    }
  }
}

function checkSupported(spec: TriggerAuthenticationSpec): void {
  const provider = spec.podIdentity?.provider;
  if (provider !== undefined && !SUPPORTED_POD_IDENTITY_PROVIDERS.includes(provider)) {
    throw new ValidationError(
      'spec.podIdentity.provider',
      `"${provider}" is not supported by sluice yet (only "none"); use secretTargetRef, configMapTargetRef or env`,
    );
  }
  // The identity fields belong to the providers sluice does not support: with "none" they would be ignored.
  for (const field of POD_IDENTITY_FIELDS) {
    if (spec.podIdentity?.[field] !== undefined) {
      throw new ValidationError(
        `spec.podIdentity.${field}`,
        `has no meaning with provider "${provider ?? 'none'}" (it configures a cloud identity sluice does not support yet); remove it`,
      );
    }
  }
  for (const source of UNSUPPORTED_SOURCES) {
    if (spec[source] !== undefined) {
      throw new ValidationError(
        `spec.${source}`,
        'is not supported by sluice yet; use secretTargetRef, configMapTargetRef or env',
      );
    }
  }
}

function pick(obj: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(keys.filter((k) => obj[k] !== undefined).map((k) => [k, obj[k]]));
}

// ---------------------------------------------------------------------------------------------------------------
// CRDs

/** The openAPIV3Schema of either kind (the cluster kind adds allowedNamespaces and allowedNamespaceSelector). */
export function triggerAuthenticationOpenApiSchema(kind: AuthenticationKind): JsonSchemaProps {
  const cluster = kind === CLUSTER_TRIGGER_AUTHENTICATION.kind;
  return resourceOpenApiSchema(
    cluster
      ? `${kind} says where a trigger's credentials come from and which namespaces may use them (KEDA-compatible, ${API_VERSION}).`
      : `${kind} says where a trigger's credentials come from (KEDA-compatible, ${API_VERSION}).`,
    cluster ? ClusterTriggerAuthenticationSpecSchema : TriggerAuthenticationSpecSchema,
    TriggerAuthenticationStatusSchema,
  );
}

/** KEDA's printer columns, without the Vault address and scaled jobs sluice does not have, plus Age. */
export const TRIGGER_AUTHENTICATION_PRINTER_COLUMNS: readonly PrinterColumn[] = [
  { name: 'PodIdentity', type: 'string', jsonPath: '.spec.podIdentity.provider' },
  { name: 'Secret', type: 'string', jsonPath: '.spec.secretTargetRef[*].name' },
  { name: 'Env', type: 'string', jsonPath: '.spec.env[*].name' },
  { name: 'ScaledObjects', type: 'string', jsonPath: '.status.scaledobjects', priority: 1 },
  { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
];

function authenticationCrd(
  names: typeof TRIGGER_AUTHENTICATION | typeof CLUSTER_TRIGGER_AUTHENTICATION,
): CustomResourceDefinition {
  return customResourceDefinition(
    names,
    TRIGGER_AUTHENTICATION_PRINTER_COLUMNS,
    triggerAuthenticationOpenApiSchema(names.kind),
  );
}

/** The `triggerauthentications.sluice.dev` CRD (namespaced). */
export function triggerAuthenticationCrd(): CustomResourceDefinition {
  return authenticationCrd(TRIGGER_AUTHENTICATION);
}

/** The `clustertriggerauthentications.sluice.dev` CRD (cluster-scoped). */
export function clusterTriggerAuthenticationCrd(): CustomResourceDefinition {
  return authenticationCrd(CLUSTER_TRIGGER_AUTHENTICATION);
}
