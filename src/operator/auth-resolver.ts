/**
 * Resolves what each trigger of a ScaledObject is handed besides its metadata
 * (docs/keda-compatibility.md#triggerauthentication, docs/keda-compatibility.md#parameter-resolution):
 *   - `resolvedEnv`: the environment of the scale target's container (`scaleTargetRef.envSourceContainerName`, else
 *     the first), as the kubelet would build it: `envFrom` (ConfigMaps and Secrets, with `prefix`, in order), then
 *     `env` in order, later entries overriding earlier ones and envFrom; `value` with `$(VAR)` expansion
 *     (`$$` escapes), `valueFrom.secretKeyRef`, `valueFrom.configMapKeyRef`; `fieldRef`/`resourceFieldRef`/
 *     `fileKeyRef` are skipped (they need the pod). This is what `<param>FromEnv` metadata names.
 *   - `authParams`: from the trigger's `authenticationRef` (TriggerAuthentication, or ClusterTriggerAuthentication),
 *     in KEDA's order, later sources overwriting the same parameter: `env` (the scale target's container
 *     `containerName`, else the first; not envSourceContainerName, as in KEDA) → `configMapTargetRef` →
 *     `secretTargetRef`. A TriggerAuthentication reads Secrets and ConfigMaps only from the ScaledObject's namespace;
 *     a ClusterTriggerAuthentication only from one configured namespace (default `sluice-system`; KEDA's
 *     `KEDA_CLUSTER_OBJECT_NAMESPACE`).
 *
 * Who may use which credentials (docs/security.md#credentials), checked before anything a credential is read from:
 *   - A ClusterTriggerAuthentication is usable only from the namespaces it names: `spec.allowedNamespaces`, or
 *     `spec.allowedNamespaceSelector` matched against the labels of the ScaledObject's Namespace (read only then;
 *     `get` on namespaces). With neither, from no namespace, unless `anyNamespaceClusterTriggerAuthentication`
 *     (`--cluster-trigger-authentication-any-namespace`, KEDA's behaviour). KEDA has no such restriction
 *     (kedacore/keda#4857). A namespace label that changes is seen at the next reconcile (the periodic resync, or an
 *     edit of the ScaledObject or of the ClusterTriggerAuthentication).
 *   - With `restrictSecretAccess` (`--restrict-secret-access`, KEDA's `KEDA_RESTRICT_SECRET_ACCESS`) sluice reads
 *     Secrets only for ClusterTriggerAuthentications (in the cluster-object namespace): a TriggerAuthentication's
 *     `secretTargetRef` is refused, and container environment variables set from Secrets (`secretKeyRef`, envFrom
 *     `secretRef`) are not resolved, as in KEDA (pkg/scaling/resolver/scale_resolvers.go).
 *   - `identityOwner: operator` in a trigger's metadata (KEDA: use the operator's own cloud identity, e.g. the AWS
 *     SDK's default chain) is refused unless `allowOperatorCloudIdentity` (`--allow-operator-cloud-identity`). The
 *     scalers, in turn, use sluice's own identity only when a trigger says `identityOwner: operator`.
 *
 * Everything is read again on every call (reads are shared within one call; the composition root wraps the port in
 * auth-cache.ts, which shares Secret and ConfigMap reads between calls for 10 s), so a Secret that appears
 * is seen by the next reconcile, and one that changes by the next reconcile at most 10 s later. `fingerprint` tells the caller whether anything changed without
 * the caller holding or comparing credentials.
 *
 * Deliberate differences from KEDA (strict where KEDA is lax):
 *   - A missing TriggerAuthentication/ClusterTriggerAuthentication, Secret, ConfigMap, key, container or environment
 *     variable is an error naming the field and the missing object; KEDA logs it and hands the scaler "" (which then
 *     fails, or worse, connects without credentials).
 *   - Errors come in two kinds. ValidationError (Ready=False, no HPA; re-checked when the ScaledObject changes, on the
 *     periodic resync, and when the integrator watches TriggerAuthentications, when one changes): what only an edit
 *     can fix: the authenticationRef names no such object, the object is invalid or uses a source sluice does not
 *     support (podIdentity other than "none", Vault, cloud secret managers, filePath, …), a container name matches no
 *     container, an environment variable the TriggerAuthentication names is not defined, the scale target has no pod
 *     template. AuthResolutionError (runtime, retried with backoff by the work queue): what may appear by itself a
 *     moment later or is an API failure: a Secret or ConfigMap (or a key in it) not found, the scale target not
 *     found, any failed read (403, 5xx, timeouts).
 *   - The scale target is read only when something needs its environment (a non-empty `<param>FromEnv` in a trigger's
 *     metadata, or `env` in a referenced TriggerAuthentication); `envSourceContainerName` is checked only then.
 *     KEDA always reads it. An unrelated environment variable that cannot be resolved (e.g. its Secret is missing) is
 *     left out of `resolvedEnv` rather than failing the ScaledObject; a variable a trigger asks for that cannot be
 *     resolved is an AuthResolutionError naming the `<param>FromEnv` field and the Secret/ConfigMap.
 *   - `optional: true` on secretKeyRef/configMapKeyRef/envFrom is honoured as the kubelet does (variable absent);
 *     `$(VAR)` expansion follows the kubelet exactly (KEDA's copy mishandles values shorter than 4 characters);
 *     envFrom `prefix` is applied.
 *   - No credential value ever appears in an error: messages name the Secret/ConfigMap, key, variable and container,
 *     never a value. A literal `value` in the pod template may be a credential too, so it is never quoted either.
 */
import { apiClient } from '../kube-client.ts';
import { fingerprint } from '../fingerprint.ts';
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  KubernetesObjectApi,
  type KubeConfig,
} from '@kubernetes/client-node';
import { SluiceError, ValidationError, describeError } from '../errors.ts';
import { matches, type Requirement } from '../labels.ts';
import { GROUP, VERSION, type ScaledObject } from './scaled-object.ts';
import {
  CLUSTER_TRIGGER_AUTHENTICATION,
  SELECTOR_OPERATORS,
  TRIGGER_AUTHENTICATION,
  parseTriggerAuthentication,
  type AuthenticationKind,
  type LabelSelector,
  type TriggerAuthentication,
  type TriggerAuthenticationSpec,
} from './trigger-authentication.ts';

export const DEFAULT_CLUSTER_OBJECT_NAMESPACE = 'sluice-system';

// ---------------------------------------------------------------------------------------------------------------
// the port

export interface KeySelector {
  readonly name?: string;
  readonly key: string;
  readonly optional?: boolean;
}

export interface EnvVar {
  readonly name: string;
  readonly value?: string;
  readonly valueFrom?: {
    readonly secretKeyRef?: KeySelector;
    readonly configMapKeyRef?: KeySelector;
    readonly fieldRef?: unknown;
    readonly resourceFieldRef?: unknown;
    readonly fileKeyRef?: unknown;
  };
}

export interface EnvFromSource {
  readonly prefix?: string;
  readonly configMapRef?: { readonly name?: string; readonly optional?: boolean };
  readonly secretRef?: { readonly name?: string; readonly optional?: boolean };
}

/** The part of a pod-template container the resolver reads. */
export interface ContainerEnv {
  readonly name: string;
  readonly env?: readonly EnvVar[];
  readonly envFrom?: readonly EnvFromSource[];
}

/**
 * What the resolver reads from the cluster. Every read returns undefined when the object does not exist and throws
 * on any other failure (with a message that holds no credential).
 */
export interface AuthPort {
  /** The Secret's `data`, decoded (base64 → UTF-8). */
  readSecret(namespace: string, name: string): Promise<Readonly<Record<string, string>> | undefined>;
  /** The ConfigMap's `data`. */
  readConfigMap(namespace: string, name: string): Promise<Readonly<Record<string, string>> | undefined>;
  /** The TriggerAuthentication as the API server returns it (parsed and validated by the resolver). */
  readTriggerAuthentication(namespace: string, name: string): Promise<unknown>;
  readClusterTriggerAuthentication(name: string): Promise<unknown>;
  /** The labels of a Namespace (`{}` when it has none). */
  readNamespaceLabels(name: string): Promise<Readonly<Record<string, string>> | undefined>;
  /** The containers of the workload's pod template (`spec.template.spec.containers`; [] when it has none). */
  readScaleTarget(
    namespace: string,
    apiVersion: string,
    kind: string,
    name: string,
  ): Promise<readonly ContainerEnv[] | undefined>;
}

// ---------------------------------------------------------------------------------------------------------------
// results and errors

export interface ResolvedTrigger {
  /** Parameters from the trigger's (Cluster)TriggerAuthentication; {} without authenticationRef. Secret values. */
  readonly authParams: Readonly<Record<string, string>>;
  /** The scale target container's environment; {} when no trigger reads it. May hold secret values. */
  readonly resolvedEnv: Readonly<Record<string, string>>;
}

export interface AuthResolution {
  /** One per `spec.triggers[i]`, same order. */
  readonly triggers: readonly ResolvedTrigger[];
  /**
   * A keyed digest (HMAC-SHA256 under a key random to this process) of everything resolved: equal fingerprints mean
   * equal credentials. Safe to keep and compare; reveals nothing, but has no meaning outside this process either.
   */
  readonly fingerprint: string;
}

/**
 * A reference that could not be resolved now but may resolve by itself (a Secret created a moment later) or a failed
 * read: the caller retries with backoff. `field` is the ScaledObject field that led to it.
 */
export class AuthResolutionError extends SluiceError {
  override name = 'AuthResolutionError';
  readonly field: string;

  constructor(field: string, message: string, options?: ErrorOptions) {
    super('AUTH_UNRESOLVED', `${field}: ${message}`, options);
    this.field = field;
  }
}

export interface AuthResolverOptions {
  /** Where a ClusterTriggerAuthentication's Secrets and ConfigMaps are read (default `sluice-system`). */
  readonly clusterObjectNamespace?: string;
  /** A ClusterTriggerAuthentication that names no allowed namespace is usable from every namespace (KEDA). */
  readonly anyNamespaceClusterTriggerAuthentication?: boolean;
  /** Secrets are read only for ClusterTriggerAuthentications (KEDA's KEDA_RESTRICT_SECRET_ACCESS). */
  readonly restrictSecretAccess?: boolean;
  /** Triggers may ask for sluice's own cloud identity with `identityOwner: operator`. */
  readonly allowOperatorCloudIdentity?: boolean;
}

/** The command-line flags behind AuthResolverOptions, for messages. */
export const FLAGS = {
  anyNamespace: '--cluster-trigger-authentication-any-namespace',
  restrictSecretAccess: '--restrict-secret-access',
  operatorIdentity: '--allow-operator-cloud-identity',
} as const;

export interface AuthResolver {
  /** Throws ValidationError (needs an edit) or AuthResolutionError (retry); see the file comment. */
  resolve(so: ScaledObject): Promise<AuthResolution>;
}

/**
 * Whose triggers are resolved: a ScaledObject's, or a MetricSource's one trigger (which has no scale target, so
 * `<param>FromEnv` and a TriggerAuthentication's `env` are refused for it, naming the field).
 */
export interface AuthSubject {
  readonly namespace: string;
  readonly triggers: readonly {
    readonly metadata: Readonly<Record<string, string>>;
    readonly authenticationRef?: ScaledObject['spec']['triggers'][number]['authenticationRef'];
  }[];
  /** The field of trigger `index` in messages (`spec.triggers[0]`, `spec.trigger`). */
  readonly triggerField: (index: number) => string;
  readonly scaleTargetRef: ScaledObject['spec']['scaleTargetRef'] | undefined;
  /** What the subject is, for the message refusing what needs a scale target (`a MetricSource`). */
  readonly kind: string;
}

/** The resolver of any AuthSubject, by the same rules (and with the same options) as `resolve`. */
export interface TriggerAuthResolver {
  resolveTriggers(subject: AuthSubject): Promise<AuthResolution>;
}

/** A ScaledObject as an AuthSubject. */
export function scaledObjectSubject(so: ScaledObject): AuthSubject {
  return {
    namespace: so.metadata.namespace ?? '',
    triggers: so.spec.triggers,
    triggerField: (index) => `spec.triggers[${index}]`,
    scaleTargetRef: so.spec.scaleTargetRef,
    kind: 'a ScaledObject',
  };
}

const FROM_ENV = 'FromEnv';
/** Why a Secret in the scale target's environment is not read. */
const RESTRICTED = `, not read: sluice runs with ${FLAGS.restrictSecretAccess} and reads Secrets only for ClusterTriggerAuthentications`;

export function createAuthResolver(
  port: AuthPort,
  options: AuthResolverOptions = {},
): AuthResolver & TriggerAuthResolver {
  const policy: Policy = {
    clusterNamespace: options.clusterObjectNamespace ?? DEFAULT_CLUSTER_OBJECT_NAMESPACE,
    anyNamespace: options.anyNamespaceClusterTriggerAuthentication === true,
    restrictSecretAccess: options.restrictSecretAccess === true,
    operatorIdentity: options.allowOperatorCloudIdentity === true,
  };
  return {
    resolve: (so) => new Resolution(port, scaledObjectSubject(so), policy).run(),
    resolveTriggers: (subject) => new Resolution(port, subject, policy).run(),
  };
}

interface Policy {
  readonly clusterNamespace: string;
  readonly anyNamespace: boolean;
  readonly restrictSecretAccess: boolean;
  readonly operatorIdentity: boolean;
}

/**
 * Whether a ClusterTriggerAuthentication's `spec.allowedNamespaces` / `spec.allowedNamespaceSelector` let `namespace`
 * use it. `labels` is asked for only when the answer depends on them (a selector, and a name not in the list).
 * `undefined` when the object names no namespace at all (neither field): the caller's default applies.
 */
export async function namespaceAllowed(
  spec: Pick<TriggerAuthenticationSpec, 'allowedNamespaces' | 'allowedNamespaceSelector'>,
  namespace: string,
  labels: () => Promise<Readonly<Record<string, string>>>,
): Promise<boolean | undefined> {
  const { allowedNamespaces: names, allowedNamespaceSelector: selector } = spec;
  if (names === undefined && selector === undefined) return undefined;
  if (names?.includes(namespace) === true) return true;
  if (selector === undefined) return false;
  return selectorMatches(selector, await labels());
}

/**
 * metav1.LabelSelector semantics (apimachinery LabelSelectorAsSelector): every matchLabels pair and every
 * matchExpressions requirement must hold; NotIn and DoesNotExist hold for a missing label; `{}` matches everything.
 */
export function selectorMatches(selector: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  const requirements: Requirement[] = [
    ...Object.entries(selector.matchLabels ?? {}).map(([key, value]): Requirement => ({
      key,
      operator: 'equals',
      values: [value],
    })),
    ...(selector.matchExpressions ?? []).map(({ key, operator, values }): Requirement => ({
      key,
      operator: SELECTOR_OPERATOR[operator],
      values: values ?? [],
    })),
  ];
  return matches({ requirements }, labels);
}

const SELECTOR_OPERATOR: Readonly<Record<(typeof SELECTOR_OPERATORS)[number], Requirement['operator']>> = {
  In: 'in',
  NotIn: 'notin',
  Exists: 'exists',
  DoesNotExist: 'doesnotexist',
};

/**
 * Whether a ScaledObject (as parsed, or raw from the informer cache) refers to a (Cluster)TriggerAuthentication:
 * maps TriggerAuthentication events to the ScaledObjects to reconcile again. `namespace` is the
 * TriggerAuthentication's; leave it out for a ClusterTriggerAuthentication.
 */
export function refersToAuthentication(
  so: unknown,
  kind: AuthenticationKind,
  name: string,
  namespace?: string,
): boolean {
  const metadata = field(so, 'metadata');
  if (kind === TRIGGER_AUTHENTICATION.kind && field(metadata, 'namespace') !== namespace) return false;
  const triggers = field(field(so, 'spec'), 'triggers');
  if (!Array.isArray(triggers)) return false;
  return triggers.some((trigger: unknown) => {
    const ref = field(trigger, 'authenticationRef');
    const refKind = field(ref, 'kind') ?? TRIGGER_AUTHENTICATION.kind;
    return field(ref, 'name') === name && refKind === kind;
  });
}

function field(obj: unknown, key: string): unknown {
  return typeof obj === 'object' && obj !== null ? (obj as Record<string, unknown>)[key] : undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// one resolution

/** One environment variable as far as it could be resolved. Problems name things, never values. */
type EnvEntry =
  | { readonly kind: 'value'; readonly value: string }
  | { readonly kind: 'unresolved'; readonly problem: string; readonly cause?: unknown }
  | { readonly kind: 'skipped'; readonly source: string };

interface ContainerTable {
  readonly container: string;
  readonly vars: ReadonlyMap<string, EnvEntry>;
  /** envFrom sources that could not be read (a requested variable missing may have come from one of them). */
  readonly envFromProblems: readonly { readonly problem: string; readonly cause?: unknown }[];
  /** envFrom Secrets not read under restrictSecretAccess (likewise). */
  readonly envFromSkipped: readonly string[];
}

type Loaded = { readonly auth: TriggerAuthentication; readonly kind: AuthenticationKind; readonly name: string };

class Resolution {
  readonly #port: AuthPort;
  readonly #so: AuthSubject;
  readonly #namespace: string;
  readonly #clusterNamespace: string;
  readonly #policy: Policy;
  readonly #reads = new Map<string, Promise<unknown>>();
  readonly #tables = new Map<string, Promise<ContainerTable>>();

  constructor(port: AuthPort, subject: AuthSubject, policy: Policy) {
    this.#port = port;
    this.#so = subject;
    this.#namespace = subject.namespace;
    this.#clusterNamespace = policy.clusterNamespace;
    this.#policy = policy;
  }

  async run(): Promise<AuthResolution> {
    if (this.#namespace === '') throw new ValidationError('metadata.namespace', 'is required');
    const { triggers } = this.#so;
    if (!this.#policy.operatorIdentity) {
      for (const [index, trigger] of triggers.entries()) {
        if (trigger.metadata['identityOwner']?.trim() === 'operator') {
          throw new ValidationError(
            `${this.#so.triggerField(index)}.metadata.identityOwner`,
            `"operator" asks for sluice's own cloud identity, which this operator does not lend to triggers (it ` +
              `runs without ${FLAGS.operatorIdentity}): give the trigger its own credentials through a ` +
              'TriggerAuthentication',
          );
        }
      }
    }

    // All read at once; the first failure in trigger order is reported.
    const settled = await Promise.allSettled(triggers.map((_, index) => this.#loadAuthentication(index)));
    const auths = settled.map((result) => {
      if (result.status === 'rejected') throw result.reason;
      return result.value;
    });
    const wantsEnv = triggers.some((t) => requestedEnv(t.metadata).length > 0);
    const needsTarget = wantsEnv || auths.some((a) => (a?.auth.spec.env?.length ?? 0) > 0);

    let resolvedEnv: Readonly<Record<string, string>> = {};
    if (needsTarget) {
      const source = await this.#envSourceTable();
      if (wantsEnv) resolvedEnv = Object.freeze(valuesOf(source));
      for (const [index, trigger] of triggers.entries()) {
        for (const [key, variable] of requestedEnv(trigger.metadata)) {
          checkRequested(
            source,
            variable,
            `${this.#so.triggerField(index)}.metadata.${key}`,
            this.#targetDescription(),
          );
        }
      }
    }

    const resolved: ResolvedTrigger[] = [];
    for (const [index, loaded] of auths.entries()) {
      const authParams = loaded ? await this.#authParams(index, loaded) : {};
      resolved.push({ authParams: Object.freeze(authParams), resolvedEnv });
    }
    return { triggers: resolved, fingerprint: fingerprintOf(resolved) };
  }

  // -- reads, shared within this resolution --

  #read<T>(key: string, read: () => Promise<T>): Promise<T> {
    let pending = this.#reads.get(key) as Promise<T> | undefined;
    if (pending === undefined) {
      pending = read();
      this.#reads.set(key, pending);
      // A read nobody awaits any more must not become an unhandled rejection.
      pending.catch(() => undefined);
    }
    return pending;
  }

  #secret(namespace: string, name: string) {
    return this.#read(`Secret/${namespace}/${name}`, () => this.#port.readSecret(namespace, name));
  }

  #configMap(namespace: string, name: string) {
    return this.#read(`ConfigMap/${namespace}/${name}`, () => this.#port.readConfigMap(namespace, name));
  }

  // -- authenticationRef --

  async #loadAuthentication(index: number): Promise<Loaded | undefined> {
    const ref = this.#so.triggers[index]?.authenticationRef;
    if (ref === undefined) return undefined;
    const field = `${this.#so.triggerField(index)}.authenticationRef`;
    const { kind, name } = ref;
    const cluster = kind === CLUSTER_TRIGGER_AUTHENTICATION.kind;
    const where = cluster ? '' : ` in namespace "${this.#namespace}"`;
    let raw: unknown;
    try {
      raw = await this.#read(`${kind}/${cluster ? '' : this.#namespace}/${name}`, () =>
        cluster
          ? this.#port.readClusterTriggerAuthentication(name)
          : this.#port.readTriggerAuthentication(this.#namespace, name),
      );
    } catch (cause) {
      throw new AuthResolutionError(field, `cannot read ${kind} "${name}"${where}: ${describeError(cause)}`, {
        cause,
      });
    }
    if (raw === undefined || raw === null) {
      throw new ValidationError(field, `${kind} "${name}" not found${where}`);
    }
    let auth: TriggerAuthentication;
    try {
      auth = parseTriggerAuthentication(raw, kind);
    } catch (cause) {
      if (!(cause instanceof ValidationError)) throw cause;
      throw new ValidationError(field, `${kind} "${name}"${where} is invalid: ${cause.message}`, { cause });
    }
    // Before anything a credential is read from.
    if (cluster) await this.#checkNamespaceAllowed(field, name, auth);
    else if (this.#policy.restrictSecretAccess && (auth.spec.secretTargetRef?.length ?? 0) > 0) {
      throw new ValidationError(
        field,
        `${kind} "${name}"${where}: spec.secretTargetRef: sluice runs with ${FLAGS.restrictSecretAccess}, so only a ` +
          `ClusterTriggerAuthentication may read Secrets (from namespace "${this.#clusterNamespace}"); use one, or ` +
          'configMapTargetRef / env for what is not secret',
      );
    }
    return { auth, kind, name };
  }

  /** A ClusterTriggerAuthentication is usable only from the namespaces it allows (see the file comment). */
  async #checkNamespaceAllowed(field: string, name: string, auth: TriggerAuthentication): Promise<void> {
    const ns = this.#namespace;
    const label = `ClusterTriggerAuthentication "${name}"`;
    const allowed = await namespaceAllowed(auth.spec, ns, async () => {
      let labels: Readonly<Record<string, string>> | undefined;
      try {
        labels = await this.#read(`Namespace//${ns}`, () => this.#port.readNamespaceLabels(ns));
      } catch (cause) {
        throw new AuthResolutionError(
          field,
          `cannot read Namespace "${ns}" to match ${label}'s spec.allowedNamespaceSelector: ${describeError(cause)}`,
          { cause },
        );
      }
      if (labels === undefined) {
        throw new AuthResolutionError(
          field,
          `Namespace "${ns}" not found (its labels are matched against ${label}'s spec.allowedNamespaceSelector)`,
        );
      }
      return labels;
    });
    if (allowed === true || (allowed === undefined && this.#policy.anyNamespace)) return;
    const refused = `${label} may not be used from namespace "${ns}"`;
    const { allowedNamespaces: names, allowedNamespaceSelector: selector } = auth.spec;
    let why: string;
    if (allowed === undefined) {
      why =
        'it names no namespace that may use it, and without spec.allowedNamespaces or spec.allowedNamespaceSelector ' +
        `a ClusterTriggerAuthentication may be used from none (unless the operator runs with ${FLAGS.anyNamespace}); ` +
        `add "${ns}" to its spec.allowedNamespaces, or give it a spec.allowedNamespaceSelector that matches the ` +
        "namespace's labels";
    } else if (selector === undefined) {
      why = `it is not in the ClusterTriggerAuthentication's spec.allowedNamespaces; add "${ns}" there (or a spec.allowedNamespaceSelector that matches the namespace's labels)`;
    } else if (names === undefined) {
      why = `its labels do not match the ClusterTriggerAuthentication's spec.allowedNamespaceSelector; label the namespace to match it, or add "${ns}" to spec.allowedNamespaces`;
    } else {
      why = `it is not in the ClusterTriggerAuthentication's spec.allowedNamespaces and its labels do not match spec.allowedNamespaceSelector; add "${ns}" to spec.allowedNamespaces, or label the namespace to match the selector`;
    }
    throw new ValidationError(field, `${refused}: ${why}`);
  }

  async #authParams(index: number, { auth, kind, name }: Loaded): Promise<Record<string, string>> {
    const field = `${this.#so.triggerField(index)}.authenticationRef`;
    const cluster = kind === CLUSTER_TRIGGER_AUTHENTICATION.kind;
    const label = cluster ? `${kind} "${name}"` : `${kind} "${name}" in namespace "${this.#namespace}"`;
    // A TriggerAuthentication's Secrets and ConfigMaps come from the ScaledObject's namespace only.
    const objectNamespace = cluster ? this.#clusterNamespace : this.#namespace;
    const params: Record<string, string> = {};

    for (const [j, entry] of (auth.spec.env ?? []).entries()) {
      const at = `${label}: spec.env[${j}] (parameter "${entry.parameter}")`;
      const table = await this.#tableFor(
        entry.containerName,
        (names) =>
          new ValidationError(
            field,
            `${label}: spec.env[${j}].containerName: ${this.#noContainer(entry.containerName, names)}`,
          ),
      );
      const found = table.vars.get(entry.name);
      const variable = `environment variable "${entry.name}" of container "${table.container}" in ${this.#targetDescription()}`;
      params[entry.parameter] = valueOrThrow(found, table, {
        missing: () =>
          new ValidationError(
            field,
            `${at}: ${this.#targetDescription()} container "${table.container}" has no environment variable "${entry.name}"`,
          ),
        runtime: (problem, cause) => new AuthResolutionError(field, `${at}: ${variable}: ${problem}`, { cause }),
        skipped: (source) =>
          new ValidationError(field, `${at}: ${variable} is set from ${source}, which sluice cannot resolve`),
      });
    }

    for (const [j, ref] of (auth.spec.configMapTargetRef ?? []).entries()) {
      const at = `${label}: spec.configMapTargetRef[${j}] (parameter "${ref.parameter}")`;
      params[ref.parameter] = await this.#keyOf(
        'ConfigMap',
        objectNamespace,
        ref.name,
        ref.key,
        (message, cause) =>
          new AuthResolutionError(field, `${at}: ${message}`, cause === undefined ? undefined : { cause }),
      );
    }

    for (const [j, ref] of (auth.spec.secretTargetRef ?? []).entries()) {
      const at = `${label}: spec.secretTargetRef[${j}] (parameter "${ref.parameter}")`;
      params[ref.parameter] = await this.#keyOf(
        'Secret',
        objectNamespace,
        ref.name,
        ref.key,
        (message, cause) =>
          new AuthResolutionError(field, `${at}: ${message}`, cause === undefined ? undefined : { cause }),
      );
    }
    return params;
  }

  /** The value of `key` in a Secret's or ConfigMap's data; every failure goes through `fail` (never quoting data). */
  async #keyOf(
    what: 'Secret' | 'ConfigMap',
    namespace: string,
    name: string,
    key: string,
    fail: (message: string, cause?: unknown) => Error,
  ): Promise<string> {
    let data: Readonly<Record<string, string>> | undefined;
    try {
      data = await (what === 'Secret' ? this.#secret(namespace, name) : this.#configMap(namespace, name));
    } catch (cause) {
      throw fail(`cannot read ${what} "${name}" in namespace "${namespace}": ${describeError(cause)}`, cause);
    }
    if (data === undefined) throw fail(`${what} "${name}" not found in namespace "${namespace}"`);
    const value = Object.hasOwn(data, key) ? data[key] : undefined;
    if (value === undefined) {
      throw fail(`${what} "${name}" in namespace "${namespace}" has no key "${key}"${keysHint(data)}`);
    }
    return value;
  }

  // -- the scale target's environment --

  #targetDescription(): string {
    const target = this.#so.scaleTargetRef;
    return target === undefined ? 'the scale target' : `${target.kind} "${target.name}"`;
  }

  #noContainer(name: string | undefined, containers: string): string {
    return `container "${name ?? ''}" not found in ${this.#targetDescription()} (containers: ${containers})`;
  }

  async #containers(): Promise<readonly ContainerEnv[]> {
    const ref = this.#so.scaleTargetRef;
    if (ref === undefined) {
      throw new ValidationError(
        `${this.#so.triggerField(0)}.authenticationRef`,
        `${this.#so.kind} has no scale target whose containers' environment could be read: a TriggerAuthentication ` +
          'used here may not have spec.env; use secretTargetRef or configMapTargetRef',
      );
    }
    const { apiVersion, kind, name } = ref;
    const field = 'spec.scaleTargetRef';
    const target = `${kind} "${name}" (${apiVersion}) in namespace "${this.#namespace}"`;
    let containers: readonly ContainerEnv[] | undefined;
    try {
      containers = await this.#read(`target`, () =>
        this.#port.readScaleTarget(this.#namespace, apiVersion, kind, name),
      );
    } catch (cause) {
      throw new AuthResolutionError(field, `cannot read ${target} for its environment: ${describeError(cause)}`, {
        cause,
      });
    }
    if (containers === undefined) {
      throw new AuthResolutionError(field, `${target} not found (its containers' environment is needed)`);
    }
    if (containers.length === 0) {
      throw new ValidationError(
        field,
        `${target} has no pod template containers (spec.template.spec.containers), so *FromEnv parameters and ` +
          'TriggerAuthentication env cannot be read from it',
      );
    }
    return containers;
  }

  /**
   * The table of the container `name` (else the first); `notFound` builds the error for a name that matches none,
   * given the names there are.
   */
  async #tableFor(name: string | undefined, notFound: (containers: string) => Error): Promise<ContainerTable> {
    const containers = await this.#containers();
    const container = name === undefined || name === '' ? containers[0] : containers.find((c) => c.name === name);
    if (container === undefined) throw notFound(containers.map((c) => c.name).join(', '));
    let table = this.#tables.get(container.name);
    if (table === undefined) {
      table = this.#buildTable(container);
      this.#tables.set(container.name, table);
    }
    return table;
  }

  #envSourceTable(): Promise<ContainerTable> {
    const name = this.#so.scaleTargetRef?.envSourceContainerName;
    return this.#tableFor(
      name,
      (names) => new ValidationError('spec.scaleTargetRef.envSourceContainerName', this.#noContainer(name, names)),
    );
  }

  /** The kubelet's makeEnvironmentVariables, as far as it can be done without a pod. */
  async #buildTable(container: ContainerEnv): Promise<ContainerTable> {
    const vars = new Map<string, EnvEntry>();
    const envFromProblems: { problem: string; cause?: unknown }[] = [];
    const envFromSkipped: string[] = [];
    const ns = this.#namespace;

    for (const [j, source] of (container.envFrom ?? []).entries()) {
      const ref = source.configMapRef ?? source.secretRef;
      if (ref === undefined) continue;
      const what = source.configMapRef !== undefined ? 'ConfigMap' : 'Secret';
      const name = ref.name ?? '';
      if (what === 'Secret' && this.#policy.restrictSecretAccess) {
        envFromSkipped.push(`envFrom[${j}].secretRef (Secret "${name}"${RESTRICTED})`);
        continue;
      }
      let data: Readonly<Record<string, string>> | undefined;
      try {
        data = await (what === 'Secret' ? this.#secret(ns, name) : this.#configMap(ns, name));
      } catch (cause) {
        envFromProblems.push({
          problem: `envFrom[${j}]: cannot read ${what} "${name}" in namespace "${ns}": ${describeError(cause)}`,
          cause,
        });
        continue;
      }
      if (data === undefined) {
        if (ref.optional !== true)
          envFromProblems.push({ problem: `envFrom[${j}]: ${what} "${name}" not found in namespace "${ns}"` });
        continue;
      }
      for (const [key, value] of Object.entries(data))
        vars.set(`${source.prefix ?? ''}${key}`, { kind: 'value', value });
    }

    for (const [j, envVar] of (container.env ?? []).entries()) {
      const entry = await this.#entryOf(envVar, j, vars);
      if (entry !== undefined) vars.set(envVar.name, entry);
    }
    return { container: container.name, vars, envFromProblems, envFromSkipped };
  }

  /** The variable's entry; undefined when the kubelet would leave it out. */
  async #entryOf(envVar: EnvVar, j: number, defined: ReadonlyMap<string, EnvEntry>): Promise<EnvEntry | undefined> {
    const from = envVar.valueFrom;
    if ((envVar.value !== undefined && envVar.value !== '') || from === undefined) {
      return expand(envVar.value ?? '', defined, `env[${j}]`);
    }
    const ref = from.secretKeyRef ?? from.configMapKeyRef;
    if (ref === undefined) {
      const source =
        from.fieldRef !== undefined
          ? 'fieldRef'
          : from.resourceFieldRef !== undefined
            ? 'resourceFieldRef'
            : from.fileKeyRef !== undefined
              ? 'fileKeyRef'
              : 'an unknown source';
      return { kind: 'skipped', source: `env[${j}].valueFrom ${source}` };
    }
    const what = from.secretKeyRef !== undefined ? 'Secret' : 'ConfigMap';
    const selector = `env[${j}].valueFrom.${what === 'Secret' ? 'secretKeyRef' : 'configMapKeyRef'}`;
    if (what === 'Secret' && this.#policy.restrictSecretAccess) {
      return { kind: 'skipped', source: `${selector} (Secret "${ref.name ?? ''}"${RESTRICTED})` };
    }
    try {
      const value = await this.#keyOf(what, this.#namespace, ref.name ?? '', ref.key, (message, cause) => {
        throw new EnvProblem(`${selector}: ${message}`, cause);
      });
      return { kind: 'value', value };
    } catch (err) {
      if (!(err instanceof EnvProblem)) throw err;
      // optional and not found (object or key; not a failed read): the kubelet leaves the variable out.
      if (ref.optional === true && err.readFailure === undefined) return undefined;
      return { kind: 'unresolved', problem: err.message, cause: err.readFailure };
    }
  }
}

/** Carries a variable's problem out of #keyOf; `readFailure` is set when the read failed (not: was not found). */
class EnvProblem extends Error {
  readonly readFailure: unknown;

  constructor(message: string, readFailure: unknown) {
    super(message);
    this.readFailure = readFailure;
  }
}

/**
 * Kubernetes' `$(VAR)` expansion (third_party/forked/golang/expansion): `$$` is a literal `$`, `$(NAME)` is replaced
 * by the variable when defined (else left as it is), anything else is copied. A reference to a variable that could
 * not be resolved makes this one unresolved too, instead of silently keeping the literal `$(NAME)`.
 */
function expand(input: string, defined: ReadonlyMap<string, EnvEntry>, at = 'value'): EnvEntry {
  let out = '';
  let checkpoint = 0;
  for (let cursor = 0; cursor < input.length; cursor++) {
    if (input[cursor] !== '$' || cursor + 1 >= input.length) continue;
    out += input.slice(checkpoint, cursor);
    const rest = input.slice(cursor + 1);
    let advance = 1;
    if (rest[0] === '$') {
      out += '$';
    } else if (rest[0] === '(') {
      const close = rest.indexOf(')', 1);
      if (close === -1) {
        out += '$(';
      } else {
        const name = rest.slice(1, close);
        const entry = defined.get(name);
        if (entry === undefined) out += `$(${name})`;
        else if (entry.kind === 'value') out += entry.value;
        else if (entry.kind === 'skipped')
          return { kind: 'skipped', source: `${at} refers to $(${name}), set from ${entry.source}` };
        else return { kind: 'unresolved', problem: `${at} refers to $(${name}): ${entry.problem}`, cause: entry.cause };
        advance = close + 1;
      }
    } else {
      out += `$${rest[0] ?? ''}`;
    }
    cursor += advance;
    checkpoint = cursor + 1;
  }
  return { kind: 'value', value: out + input.slice(checkpoint) };
}

function valuesOf(table: ContainerTable): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, entry] of table.vars) if (entry.kind === 'value') out[name] = entry.value;
  return out;
}

/** `[metadataKey, variableName]` for every non-empty `<param>FromEnv` of a trigger. */
function requestedEnv(metadata: Readonly<Record<string, string>>): [string, string][] {
  return Object.entries(metadata)
    .filter(([key, value]) => key.length > FROM_ENV.length && key.endsWith(FROM_ENV) && value.trim() !== '')
    .map(([key, value]) => [key, value.trim()]);
}

/** A variable a trigger asks for must resolve, or say why not; a plainly absent one is left to the scaler's parser. */
function checkRequested(table: ContainerTable, variable: string, field: string, target: string): void {
  const where = `environment variable "${variable}" of container "${table.container}" in ${target}`;
  valueOrThrow(table.vars.get(variable), table, {
    missing: () => undefined,
    runtime: (problem, cause) => new AuthResolutionError(field, `${where}: ${problem}`, { cause }),
    skipped: (source) => new ValidationError(field, `${where} is set from ${source}, which sluice cannot resolve`),
  });
}

function valueOrThrow(
  entry: EnvEntry | undefined,
  table: ContainerTable,
  errors: {
    /** The error for a variable that is not defined at all; undefined: not an error here (the value is ''). */
    missing: () => Error | undefined;
    runtime: (problem: string, cause: unknown) => Error;
    skipped: (source: string) => Error;
  },
): string {
  if (entry === undefined) {
    // It may have come from an envFrom source that could not be read.
    const [first] = table.envFromProblems;
    if (first !== undefined) throw errors.runtime(`not defined, and ${first.problem}`, first.cause);
    const [skipped] = table.envFromSkipped;
    if (skipped !== undefined) throw errors.skipped(`${skipped}, if anywhere`);
    const missing = errors.missing();
    if (missing !== undefined) throw missing;
    return '';
  }
  if (entry.kind === 'unresolved') throw errors.runtime(entry.problem, entry.cause);
  if (entry.kind === 'skipped') throw errors.skipped(entry.source);
  return entry.value;
}

/** ` (keys: a, b)`: key names help find a typo and are not values. */
function keysHint(data: Readonly<Record<string, string>>): string {
  const keys = Object.keys(data).sort();
  if (keys.length === 0) return ' (it has no keys)';
  const shown = keys.slice(0, 10).join(', ');
  return ` (keys: ${shown}${keys.length > 10 ? `, … ${keys.length - 10} more` : ''})`;
}

function fingerprintOf(triggers: readonly ResolvedTrigger[]): string {
  return fingerprint(triggers.map((t) => [t.authParams, t.resolvedEnv]));
}

// ---------------------------------------------------------------------------------------------------------------
// the port over @kubernetes/client-node (kept here rather than in kube.ts, which another change owns)

/**
 * The AuthPort over the Kubernetes API. Needs `get` on secrets, configmaps, triggerauthentications,
 * clustertriggerauthentications, namespaces (allowedNamespaceSelector), and on the scale target's resource (e.g. apps deployments) when its environment is
 * used. Errors are reduced to `HTTP <code> <reason>: <Status message>`: ApiException's own message carries the whole
 * response body and headers.
 */
export function createKubeAuthPort(kc: KubeConfig): AuthPort {
  const core = apiClient(kc, CoreV1Api);
  const custom = apiClient(kc, CustomObjectsApi);
  const objects = apiClient(kc, KubernetesObjectApi);

  async function orUndefined<T>(read: () => Promise<T>): Promise<T | undefined> {
    try {
      return await read();
    } catch (err) {
      if (isObjectNotFound(err)) return undefined;
      throw conciseApiError(err);
    }
  }

  return {
    readSecret: (namespace, name) =>
      orUndefined(async () => {
        const secret = await core.readNamespacedSecret({ namespace, name });
        return Object.fromEntries(
          Object.entries(secret.data ?? {}).map(([key, value]) => [key, Buffer.from(value, 'base64').toString('utf8')]),
        );
      }),
    readConfigMap: (namespace, name) =>
      orUndefined(async () => ({ ...(await core.readNamespacedConfigMap({ namespace, name })).data })),
    readTriggerAuthentication: (namespace, name) =>
      orUndefined(() =>
        custom.getNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          plural: TRIGGER_AUTHENTICATION.plural,
          namespace,
          name,
        }),
      ),
    readClusterTriggerAuthentication: (name) =>
      orUndefined(() =>
        custom.getClusterCustomObject({
          group: GROUP,
          version: VERSION,
          plural: CLUSTER_TRIGGER_AUTHENTICATION.plural,
          name,
        }),
      ),
    readNamespaceLabels: (name) =>
      orUndefined(async () => ({ ...(await core.readNamespace({ name })).metadata?.labels })),
    readScaleTarget: (namespace, apiVersion, kind, name) =>
      orUndefined(async () => containersOf(await objects.read({ apiVersion, kind, metadata: { name, namespace } }))),
  };
}

/** A 404 for the object itself; a 404 without `details.name` means the resource type is not served (no CRD). */
function isObjectNotFound(err: unknown): boolean {
  if (!(err instanceof ApiException) || err.code !== 404) return false;
  const status = statusOf(err.body);
  return typeof field(field(status, 'details'), 'name') === 'string';
}

function statusOf(body: unknown): unknown {
  if (typeof body !== 'string') return body;
  try {
    return JSON.parse(body) as unknown;
  } catch {
    return undefined;
  }
}

function conciseApiError(err: unknown): unknown {
  if (!(err instanceof ApiException)) return err;
  const status = statusOf(err.body);
  const reason = field(status, 'reason');
  const message = field(status, 'message');
  const code = String(err.code);
  if (err.code === 404 && typeof message !== 'string') {
    return new Error(`HTTP 404: the API server does not serve this resource (is its CRD installed?)`);
  }
  return new Error(
    `HTTP ${code}${typeof reason === 'string' ? ` ${reason}` : ''}${typeof message === 'string' ? `: ${message}` : ''}`,
  );
}

/** `spec.template.spec.containers` of any workload kind, reduced to what the resolver reads. */
function containersOf(workload: unknown): ContainerEnv[] {
  const containers = field(field(field(field(workload, 'spec'), 'template'), 'spec'), 'containers');
  if (!Array.isArray(containers)) return [];
  return containers.flatMap((c: unknown) => {
    const name = field(c, 'name');
    if (typeof name !== 'string') return [];
    const env = field(c, 'env');
    const envFrom = field(c, 'envFrom');
    return [
      {
        name,
        ...(Array.isArray(env) ? { env: env as EnvVar[] } : {}),
        ...(Array.isArray(envFrom) ? { envFrom: envFrom as EnvFromSource[] } : {}),
      },
    ];
  });
}
