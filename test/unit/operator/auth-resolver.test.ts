import { beforeEach, describe, expect, test } from 'vitest';
import { describeError, ValidationError } from '../../../src/errors.ts';
import {
  AuthResolutionError,
  createAuthResolver,
  refersToAuthentication,
  type AuthPort,
  type AuthResolverOptions,
  type ContainerEnv,
} from '../../../src/operator/auth-resolver.ts';
import { metricSourceSubject } from '../../../src/operator/metric-source-controller.ts';
import { parseScaledObject, type ScaledObject } from '../../../src/operator/scaled-object.ts';

// ---------------------------------------------------------------------------------------------------------------
// an in-memory cluster

/** Every credential-like value the fixtures hold: no error message may contain any of them. */
const SECRET_VALUES = [
  'pw-from-secret-7f3a',
  'user-from-secret-91c2',
  'host-from-configmap-55d1',
  'literal-env-password-0b9e',
  'envfrom-secret-value-c4d8',
  'cluster-secret-value-e2a7',
] as const;

class MemoryPort implements AuthPort {
  readonly secrets = new Map<string, Record<string, string>>();
  readonly configMaps = new Map<string, Record<string, string>>();
  readonly triggerAuths = new Map<string, unknown>();
  readonly clusterTriggerAuths = new Map<string, unknown>();
  readonly targets = new Map<string, ContainerEnv[]>();
  /** Namespace name → its labels. */
  readonly namespaces = new Map<string, Record<string, string>>();
  /** `<Kind>/<namespace>/<name>` → the error a read of it throws. */
  readonly failures = new Map<string, Error>();
  readonly reads: string[] = [];

  #get<T>(kind: string, key: string, from: Map<string, T>): Promise<T | undefined> {
    const id = `${kind}/${key}`;
    this.reads.push(id);
    const failure = this.failures.get(id);
    if (failure) return Promise.reject(failure);
    const found = from.get(key);
    return Promise.resolve(found === undefined ? undefined : structuredClone(found));
  }

  readSecret(namespace: string, name: string) {
    return this.#get('Secret', `${namespace}/${name}`, this.secrets);
  }
  readConfigMap(namespace: string, name: string) {
    return this.#get('ConfigMap', `${namespace}/${name}`, this.configMaps);
  }
  readTriggerAuthentication(namespace: string, name: string) {
    return this.#get('TriggerAuthentication', `${namespace}/${name}`, this.triggerAuths);
  }
  readClusterTriggerAuthentication(name: string) {
    return this.#get('ClusterTriggerAuthentication', name, this.clusterTriggerAuths);
  }
  readNamespaceLabels(name: string) {
    return this.#get('Namespace', name, this.namespaces);
  }
  readScaleTarget(namespace: string, apiVersion: string, kind: string, name: string) {
    return this.#get(`${apiVersion}.${kind}`, `${namespace}/${name}`, this.targets);
  }
}

const NS = 'shop';

function ta(name: string, spec: Record<string, unknown>, kind = 'TriggerAuthentication', namespace?: string) {
  return {
    apiVersion: 'sluice.dev/v1alpha1',
    kind,
    metadata: { name, ...(namespace !== undefined ? { namespace } : {}) },
    spec,
  };
}

interface TriggerFixture {
  metadata?: Record<string, string>;
  authenticationRef?: { name: string; kind?: string };
}

function scaledObject(
  triggers: TriggerFixture[] = [{}],
  scaleTargetRef: Record<string, unknown> = { name: 'consumer' },
): ScaledObject {
  return parseScaledObject({
    metadata: { name: 'orders', namespace: NS },
    spec: {
      scaleTargetRef,
      triggers: triggers.map((t) => ({ type: 'rabbitmq', metadata: t.metadata ?? {}, ...t })),
    },
  });
}

let port: MemoryPort;
const resolver = (options?: AuthResolverOptions) => createAuthResolver(port, options);
const resolve = (so: ScaledObject, options?: AuthResolverOptions) => resolver(options).resolve(so);

/** The error resolve() throws, checked to be of the expected class. */
async function failure<E extends Error>(
  so: ScaledObject,
  type: new (...args: never[]) => E,
  options?: AuthResolverOptions,
): Promise<E> {
  try {
    await resolve(so, options);
  } catch (err) {
    expect(err).toBeInstanceOf(type);
    return err as E;
  }
  throw new Error('resolve() succeeded');
}

function deployment(containers: ContainerEnv[], name = 'consumer', namespace = NS): void {
  port.targets.set(`${namespace}/${name}`, containers);
}

beforeEach(() => {
  port = new MemoryPort();
});

// ---------------------------------------------------------------------------------------------------------------

describe('resolvedEnv: the scale target container, as the kubelet builds it', () => {
  const fromEnv = (variable: string): TriggerFixture[] => [{ metadata: { passwordFromEnv: variable } }];

  test('value, secretKeyRef, configMapKeyRef; fieldRef and resourceFieldRef are left out', async () => {
    port.secrets.set(`${NS}/creds`, { password: SECRET_VALUES[0] });
    port.configMaps.set(`${NS}/settings`, { host: SECRET_VALUES[2] });
    deployment([
      {
        name: 'app',
        env: [
          { name: 'PLAIN', value: 'v' },
          { name: 'EMPTY', value: '' },
          { name: 'NOTHING' },
          { name: 'PASSWORD', valueFrom: { secretKeyRef: { name: 'creds', key: 'password' } } },
          { name: 'HOST', valueFrom: { configMapKeyRef: { name: 'settings', key: 'host' } } },
          { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
          { name: 'CPU', valueFrom: { resourceFieldRef: { resource: 'limits.cpu' } } },
        ],
      },
    ]);
    const { triggers } = await resolve(scaledObject(fromEnv('PASSWORD')));
    expect(triggers[0]?.resolvedEnv).toStrictEqual({
      PLAIN: 'v',
      EMPTY: '',
      NOTHING: '',
      PASSWORD: SECRET_VALUES[0],
      HOST: SECRET_VALUES[2],
    });
    expect(triggers[0]?.authParams).toStrictEqual({});
  });

  const expansions: { comment: string; value: string; expected: string }[] = [
    { comment: 'a reference to an earlier variable', value: 'amqp://$(USER)@h', expected: 'amqp://guest@h' },
    { comment: 'two references', value: '$(USER):$(PORT)', expected: 'guest:5672' },
    { comment: 'a reference to an envFrom variable', value: '$(CM_REGION)', expected: 'eu' },
    { comment: 'an undefined reference stays as it is', value: 'x$(NOPE)y', expected: 'x$(NOPE)y' },
    { comment: 'a later variable is not yet defined', value: '$(LATER)', expected: '$(LATER)' },
    { comment: '$$ escapes a reference', value: '$$(USER)', expected: '$(USER)' },
    { comment: '$$ alone is one $ (KEDA keeps both)', value: '$$', expected: '$' },
    { comment: 'a $ before another character stays', value: 'a$b', expected: 'a$b' },
    { comment: 'a trailing $ stays', value: 'cost$', expected: 'cost$' },
    { comment: 'an unterminated reference stays', value: '$(USER', expected: '$(USER' },
    { comment: 'an empty reference name', value: '$()', expected: '$()' },
    { comment: 'a reference to a variable holding $( is not expanded again', value: '$(RAW)', expected: '$(USER)' },
  ];
  test.each(expansions)('$(VAR) expansion: $comment', async ({ value, expected }) => {
    port.configMaps.set(`${NS}/regional`, { REGION: 'eu' });
    deployment([
      {
        name: 'app',
        envFrom: [{ configMapRef: { name: 'regional' }, prefix: 'CM_' }],
        env: [
          { name: 'USER', value: 'guest' },
          { name: 'PORT', value: '5672' },
          { name: 'RAW', value: '$$(USER)' },
          { name: 'X', value },
          { name: 'LATER', value: 'late' },
        ],
      },
    ]);
    const { triggers } = await resolve(scaledObject(fromEnv('X')));
    expect(triggers[0]?.resolvedEnv['X']).toBe(expected);
  });

  test('envFrom: ConfigMaps and Secrets with prefix, later sources override earlier ones, env overrides both', async () => {
    port.configMaps.set(`${NS}/base`, { A: 'cm-a', B: 'cm-b', C: 'cm-c' });
    port.secrets.set(`${NS}/override`, { B: SECRET_VALUES[4], D: 'sec-d' });
    deployment([
      {
        name: 'app',
        envFrom: [
          { configMapRef: { name: 'base' } },
          { secretRef: { name: 'override' } },
          { configMapRef: { name: 'base' }, prefix: 'P_' },
        ],
        env: [
          { name: 'C', value: 'env-c' },
          { name: 'E', value: 'first' },
          { name: 'E', value: 'second' },
        ],
      },
    ]);
    const { triggers } = await resolve(scaledObject(fromEnv('B')));
    expect(triggers[0]?.resolvedEnv).toStrictEqual({
      A: 'cm-a',
      B: SECRET_VALUES[4],
      C: 'env-c',
      D: 'sec-d',
      E: 'second',
      P_A: 'cm-a',
      P_B: 'cm-b',
      P_C: 'cm-c',
    });
  });

  test('optional sources that do not exist are left out, as the kubelet does', async () => {
    port.secrets.set(`${NS}/partial`, { other: 'x' });
    deployment([
      {
        name: 'app',
        envFrom: [
          { secretRef: { name: 'absent', optional: true } },
          { configMapRef: { name: 'absent', optional: true } },
        ],
        env: [
          { name: 'A', value: 'from-value' },
          { name: 'A', valueFrom: { secretKeyRef: { name: 'absent', key: 'k', optional: true } } },
          { name: 'B', valueFrom: { secretKeyRef: { name: 'partial', key: 'missing', optional: true } } },
          { name: 'C', valueFrom: { configMapKeyRef: { name: 'absent', key: 'k', optional: true } } },
          { name: 'WANTED', value: 'ok' },
        ],
      },
    ]);
    const { triggers } = await resolve(scaledObject(fromEnv('WANTED')));
    // A keeps its earlier value: an optional reference that resolves to nothing does not set the variable.
    expect(triggers[0]?.resolvedEnv).toStrictEqual({ A: 'from-value', WANTED: 'ok' });
  });

  test('envSourceContainerName picks the container; the first one otherwise', async () => {
    deployment([
      { name: 'sidecar', env: [{ name: 'WHO', value: 'sidecar' }] },
      { name: 'app', env: [{ name: 'WHO', value: 'app' }] },
    ]);
    const first = await resolve(scaledObject(fromEnv('WHO')));
    expect(first.triggers[0]?.resolvedEnv).toStrictEqual({ WHO: 'sidecar' });
    const named = await resolve(scaledObject(fromEnv('WHO'), { name: 'consumer', envSourceContainerName: 'app' }));
    expect(named.triggers[0]?.resolvedEnv).toStrictEqual({ WHO: 'app' });
  });

  test('every trigger gets the same environment', async () => {
    deployment([{ name: 'app', env: [{ name: 'Q', value: 'orders' }] }]);
    const { triggers } = await resolve(scaledObject([{ metadata: { queueNameFromEnv: 'Q' } }, {}]));
    expect(triggers.map((t) => t.resolvedEnv)).toStrictEqual([{ Q: 'orders' }, { Q: 'orders' }]);
  });

  test('the scale target is not read when nothing needs its environment', async () => {
    const { triggers } = await resolve(scaledObject([{ metadata: { queueName: 'q', hostFromEnv: '  ' } }]));
    expect(triggers).toStrictEqual([{ authParams: {}, resolvedEnv: {} }]);
    expect(port.reads).toStrictEqual([]);
  });

  test('the scale target is read once however many triggers and containers need it', async () => {
    deployment([{ name: 'app', env: [{ name: 'Q', value: 'q' }] }]);
    await resolve(scaledObject([{ metadata: { aFromEnv: 'Q' } }, { metadata: { bFromEnv: 'Q' } }]));
    expect(port.reads).toStrictEqual(['apps/v1.Deployment/shop/consumer']);
  });

  test('an unrelated variable that cannot be resolved is left out rather than failing the object', async () => {
    deployment([
      {
        name: 'app',
        env: [
          { name: 'BROKEN', valueFrom: { secretKeyRef: { name: 'absent', key: 'k' } } },
          { name: 'ALSO_BROKEN', value: 'x$(BROKEN)' },
          { name: 'WANTED', value: 'ok' },
        ],
      },
    ]);
    const { triggers } = await resolve(scaledObject(fromEnv('WANTED')));
    expect(triggers[0]?.resolvedEnv).toStrictEqual({ WANTED: 'ok' });
  });

  test('a variable the container does not define is left to the scaler’s parser (it names the field)', async () => {
    deployment([{ name: 'app', env: [] }]);
    const { triggers } = await resolve(scaledObject(fromEnv('UNDEFINED')));
    expect(triggers[0]?.resolvedEnv).toStrictEqual({});
  });
});

describe('resolvedEnv: errors', () => {
  const fromEnv = (variable: string): TriggerFixture[] => [{ metadata: { passwordFromEnv: variable } }];
  const field = 'spec.triggers[0].metadata.passwordFromEnv';

  test('envSourceContainerName naming no container is a ValidationError naming the field', async () => {
    deployment([{ name: 'app' }, { name: 'sidecar' }]);
    const err = await failure(
      scaledObject(fromEnv('X'), { name: 'consumer', envSourceContainerName: 'worker' }),
      ValidationError,
    );
    expect(err.field).toBe('spec.scaleTargetRef.envSourceContainerName');
    expect(err.message).toBe(
      'spec.scaleTargetRef.envSourceContainerName: container "worker" not found in Deployment "consumer" (containers: app, sidecar)',
    );
  });

  test('the scale target not found is a runtime error (it may be created a moment later)', async () => {
    const err = await failure(scaledObject(fromEnv('X')), AuthResolutionError);
    expect(err.field).toBe('spec.scaleTargetRef');
    expect(err.message).toBe(
      'spec.scaleTargetRef: Deployment "consumer" (apps/v1) in namespace "shop" not found (its containers\' environment is needed)',
    );
  });

  test('a scale target without pod template containers is a ValidationError', async () => {
    deployment([]);
    const err = await failure(scaledObject(fromEnv('X')), ValidationError);
    expect(err.field).toBe('spec.scaleTargetRef');
    expect(err.message).toContain('has no pod template containers (spec.template.spec.containers)');
  });

  test('reading the scale target fails: a runtime error with the cause', async () => {
    const cause = new Error('HTTP 403 Forbidden: deployments.apps "consumer" is forbidden');
    port.failures.set('apps/v1.Deployment/shop/consumer', cause);
    const err = await failure(scaledObject(fromEnv('X')), AuthResolutionError);
    expect(err.cause).toBe(cause);
    expect(err.message).toBe(
      'spec.scaleTargetRef: cannot read Deployment "consumer" (apps/v1) in namespace "shop" for its environment: HTTP 403 Forbidden: deployments.apps "consumer" is forbidden',
    );
  });

  const runtime: { comment: string; env: ContainerEnv; setup?: () => void; message: string }[] = [
    {
      comment: 'secretKeyRef to a Secret that does not exist',
      env: { name: 'app', env: [{ name: 'P', valueFrom: { secretKeyRef: { name: 'creds', key: 'password' } } }] },
      message:
        'environment variable "P" of container "app" in Deployment "consumer": env[0].valueFrom.secretKeyRef: Secret "creds" not found in namespace "shop"',
    },
    {
      comment: 'secretKeyRef to a key the Secret does not have (key names are listed, values never)',
      env: { name: 'app', env: [{ name: 'P', valueFrom: { secretKeyRef: { name: 'creds', key: 'pasword' } } }] },
      setup: () => port.secrets.set(`${NS}/creds`, { password: SECRET_VALUES[0], username: SECRET_VALUES[1] }),
      message:
        'environment variable "P" of container "app" in Deployment "consumer": env[0].valueFrom.secretKeyRef: Secret "creds" in namespace "shop" has no key "pasword" (keys: password, username)',
    },
    {
      comment: 'configMapKeyRef to a ConfigMap that does not exist',
      env: { name: 'app', env: [{ name: 'P', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'k' } } }] },
      message:
        'environment variable "P" of container "app" in Deployment "consumer": env[0].valueFrom.configMapKeyRef: ConfigMap "cfg" not found in namespace "shop"',
    },
    {
      comment: 'configMapKeyRef to an empty ConfigMap',
      env: { name: 'app', env: [{ name: 'P', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'k' } } }] },
      setup: () => port.configMaps.set(`${NS}/cfg`, {}),
      message:
        'environment variable "P" of container "app" in Deployment "consumer": env[0].valueFrom.configMapKeyRef: ConfigMap "cfg" in namespace "shop" has no key "k" (it has no keys)',
    },
    {
      comment: 'optional does not hide a failed read',
      env: {
        name: 'app',
        env: [{ name: 'P', valueFrom: { secretKeyRef: { name: 'creds', key: 'k', optional: true } } }],
      },
      setup: () => port.failures.set(`Secret/${NS}/creds`, new Error('HTTP 500 InternalError: etcd timeout')),
      message:
        'environment variable "P" of container "app" in Deployment "consumer": env[0].valueFrom.secretKeyRef: cannot read Secret "creds" in namespace "shop": HTTP 500 InternalError: etcd timeout',
    },
    {
      comment: 'a value referring to a variable that could not be resolved',
      env: {
        name: 'app',
        env: [
          { name: 'PW', valueFrom: { secretKeyRef: { name: 'creds', key: 'k' } } },
          { name: 'P', value: 'amqp://u:$(PW)@h' },
        ],
      },
      message:
        'environment variable "P" of container "app" in Deployment "consumer": env[1] refers to $(PW): env[0].valueFrom.secretKeyRef: Secret "creds" not found in namespace "shop"',
    },
    {
      comment: 'not defined, but an envFrom Secret could not be found',
      env: { name: 'app', envFrom: [{ secretRef: { name: 'bulk' } }] },
      message:
        'environment variable "P" of container "app" in Deployment "consumer": not defined, and envFrom[0]: Secret "bulk" not found in namespace "shop"',
    },
    {
      comment: 'not defined, but an envFrom ConfigMap could not be read',
      env: { name: 'app', envFrom: [{ configMapRef: { name: 'bulk' } }] },
      setup: () => port.failures.set(`ConfigMap/${NS}/bulk`, new Error('HTTP 403 Forbidden')),
      message:
        'environment variable "P" of container "app" in Deployment "consumer": not defined, and envFrom[0]: cannot read ConfigMap "bulk" in namespace "shop": HTTP 403 Forbidden',
    },
  ];
  test.each(runtime)('$comment → AuthResolutionError naming the *FromEnv field', async ({ env, setup, message }) => {
    setup?.();
    deployment([env]);
    const err = await failure(scaledObject(fromEnv('P')), AuthResolutionError);
    expect(err.field).toBe(field);
    expect(err.message).toBe(`${field}: ${message}`);
  });

  test('a variable set from fieldRef cannot be resolved: a ValidationError', async () => {
    deployment([{ name: 'app', env: [{ name: 'P', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } }] }]);
    const err = await failure(scaledObject(fromEnv('P')), ValidationError);
    expect(err.message).toBe(
      `${field}: environment variable "P" of container "app" in Deployment "consumer" is set from env[0].valueFrom fieldRef, which sluice cannot resolve`,
    );
  });

  test('the Secret appears: the next resolve succeeds (nothing is cached across calls)', async () => {
    deployment([{ name: 'app', env: [{ name: 'P', valueFrom: { secretKeyRef: { name: 'creds', key: 'k' } } }] }]);
    const r = resolver();
    await expect(r.resolve(scaledObject(fromEnv('P')))).rejects.toBeInstanceOf(AuthResolutionError);
    port.secrets.set(`${NS}/creds`, { k: SECRET_VALUES[0] });
    const { triggers } = await r.resolve(scaledObject(fromEnv('P')));
    expect(triggers[0]?.resolvedEnv['P']).toBe(SECRET_VALUES[0]);
  });
});

describe('authParams from a TriggerAuthentication', () => {
  const ref = (name: string, kind?: string): TriggerFixture[] => [
    { authenticationRef: { name, ...(kind !== undefined ? { kind } : {}) } },
  ];

  test("KEDA's order: env, then configMapTargetRef, then secretTargetRef; later sources overwrite", async () => {
    port.triggerAuths.set(
      `${NS}/rabbit-auth`,
      ta('rabbit-auth', {
        env: [
          { parameter: 'password', name: 'PW' },
          { parameter: 'host', name: 'HOST' },
          { parameter: 'vhostName', name: 'VHOST' },
        ],
        configMapTargetRef: [
          { parameter: 'host', name: 'rabbit-config', key: 'host' },
          { parameter: 'password', name: 'rabbit-config', key: 'password' },
        ],
        secretTargetRef: [
          { parameter: 'password', name: 'rabbit-secret', key: 'password' },
          { parameter: 'username', name: 'rabbit-secret', key: 'username' },
        ],
      }),
    );
    deployment([
      {
        name: 'app',
        env: [
          { name: 'PW', value: SECRET_VALUES[3] },
          { name: 'HOST', value: 'env-host' },
          { name: 'VHOST', value: 'env-vhost' },
        ],
      },
    ]);
    port.configMaps.set(`${NS}/rabbit-config`, { host: SECRET_VALUES[2], password: 'cm-password' });
    port.secrets.set(`${NS}/rabbit-secret`, { password: SECRET_VALUES[0], username: SECRET_VALUES[1] });
    const { triggers } = await resolve(scaledObject(ref('rabbit-auth')));
    expect(triggers[0]?.authParams).toStrictEqual({
      vhostName: 'env-vhost', // env only
      host: SECRET_VALUES[2], // configMap overwrote env
      password: SECRET_VALUES[0], // secret overwrote configMap and env
      username: SECRET_VALUES[1],
    });
    // env in a TriggerAuthentication does not fill resolvedEnv: that is for *FromEnv only.
    expect(triggers[0]?.resolvedEnv).toStrictEqual({});
  });

  test('env reads the container named by containerName (not envSourceContainerName), else the first', async () => {
    port.triggerAuths.set(
      `${NS}/a`,
      ta('a', {
        env: [
          { parameter: 'first', name: 'WHO' },
          { parameter: 'named', name: 'WHO', containerName: 'app' },
        ],
      }),
    );
    deployment([
      { name: 'sidecar', env: [{ name: 'WHO', value: 'sidecar' }] },
      { name: 'app', env: [{ name: 'WHO', value: 'app' }] },
    ]);
    const so = scaledObject([{ authenticationRef: { name: 'a' } }], {
      name: 'consumer',
      envSourceContainerName: 'app',
    });
    const { triggers } = await resolve(so);
    expect(triggers[0]?.authParams).toStrictEqual({ first: 'sidecar', named: 'app' });
  });

  test('Secrets and ConfigMaps of a TriggerAuthentication are read only from the ScaledObject’s namespace', async () => {
    port.triggerAuths.set(`${NS}/a`, ta('a', { secretTargetRef: [{ parameter: 'p', name: 'creds', key: 'k' }] }));
    port.secrets.set('other/creds', { k: SECRET_VALUES[0] });
    port.secrets.set('sluice-system/creds', { k: SECRET_VALUES[5] });
    const err = await failure(scaledObject(ref('a')), AuthResolutionError);
    expect(err.message).toContain('Secret "creds" not found in namespace "shop"');
    expect(port.reads).toStrictEqual(['TriggerAuthentication/shop/a', 'Secret/shop/creds']);
  });

  test('a ClusterTriggerAuthentication reads from the cluster-object namespace (default sluice-system)', async () => {
    port.clusterTriggerAuths.set(
      'global',
      ta(
        'global',
        {
          secretTargetRef: [{ parameter: 'password', name: 'creds', key: 'k' }],
          configMapTargetRef: [{ parameter: 'host', name: 'cfg', key: 'host' }],
          allowedNamespaces: [NS],
        },
        'ClusterTriggerAuthentication',
      ),
    );
    port.secrets.set(`${NS}/creds`, { k: 'wrong-namespace' });
    port.secrets.set('sluice-system/creds', { k: SECRET_VALUES[5] });
    port.configMaps.set('sluice-system/cfg', { host: 'h' });
    port.secrets.set('platform/creds', { k: 'platform' });
    port.configMaps.set('platform/cfg', { host: 'platform-h' });

    const defaulted = await resolve(scaledObject(ref('global', 'ClusterTriggerAuthentication')));
    expect(defaulted.triggers[0]?.authParams).toStrictEqual({ host: 'h', password: SECRET_VALUES[5] });

    const configured = await resolve(scaledObject(ref('global', 'ClusterTriggerAuthentication')), {
      clusterObjectNamespace: 'platform',
    });
    expect(configured.triggers[0]?.authParams).toStrictEqual({ host: 'platform-h', password: 'platform' });
  });

  test('a ClusterTriggerAuthentication’s env still reads the scale target in the ScaledObject’s namespace', async () => {
    port.clusterTriggerAuths.set(
      'global',
      ta('global', { env: [{ parameter: 'p', name: 'P' }], allowedNamespaces: [NS] }, 'ClusterTriggerAuthentication'),
    );
    port.secrets.set(`${NS}/creds`, { k: SECRET_VALUES[0] });
    deployment([{ name: 'app', env: [{ name: 'P', valueFrom: { secretKeyRef: { name: 'creds', key: 'k' } } }] }]);
    const { triggers } = await resolve(scaledObject(ref('global', 'ClusterTriggerAuthentication')));
    expect(triggers[0]?.authParams).toStrictEqual({ p: SECRET_VALUES[0] });
  });

  test('triggers without authenticationRef get {}; a shared TriggerAuthentication and Secret are read once', async () => {
    port.triggerAuths.set(`${NS}/a`, ta('a', { secretTargetRef: [{ parameter: 'p', name: 'creds', key: 'k' }] }));
    port.secrets.set(`${NS}/creds`, { k: SECRET_VALUES[0] });
    const { triggers } = await resolve(
      scaledObject([{ authenticationRef: { name: 'a' } }, {}, { authenticationRef: { name: 'a' } }]),
    );
    expect(triggers.map((t) => t.authParams)).toStrictEqual([{ p: SECRET_VALUES[0] }, {}, { p: SECRET_VALUES[0] }]);
    expect(port.reads).toStrictEqual(['TriggerAuthentication/shop/a', 'Secret/shop/creds']);
  });

  test('an empty value is handed on as it is (the scaler’s parser reads "" as absent, as KEDA does)', async () => {
    port.triggerAuths.set(`${NS}/a`, ta('a', { secretTargetRef: [{ parameter: 'p', name: 'creds', key: 'k' }] }));
    port.secrets.set(`${NS}/creds`, { k: '' });
    const { triggers } = await resolve(scaledObject(ref('a')));
    expect(triggers[0]?.authParams).toStrictEqual({ p: '' });
  });

  test('podIdentity none is accepted and adds nothing', async () => {
    port.triggerAuths.set(`${NS}/a`, ta('a', { podIdentity: { provider: 'none' } }));
    const { triggers } = await resolve(scaledObject(ref('a')));
    expect(triggers[0]?.authParams).toStrictEqual({});
    expect(port.reads).toStrictEqual(['TriggerAuthentication/shop/a']);
  });

  test('a changed Secret is seen by the next resolve, and changes the fingerprint', async () => {
    port.triggerAuths.set(`${NS}/a`, ta('a', { secretTargetRef: [{ parameter: 'p', name: 'creds', key: 'k' }] }));
    port.secrets.set(`${NS}/creds`, { k: SECRET_VALUES[0] });
    const r = resolver();
    const before = await r.resolve(scaledObject(ref('a')));
    const again = await r.resolve(scaledObject(ref('a')));
    port.secrets.set(`${NS}/creds`, { k: SECRET_VALUES[1] });
    const after = await r.resolve(scaledObject(ref('a')));
    expect(after.triggers[0]?.authParams).toStrictEqual({ p: SECRET_VALUES[1] });
    expect(again.fingerprint).toBe(before.fingerprint);
    expect(after.fingerprint).not.toBe(before.fingerprint);
    expect(before.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    for (const value of SECRET_VALUES) expect(before.fingerprint).not.toContain(value);
  });

  test('the fingerprint also covers the environment', async () => {
    deployment([{ name: 'app', env: [{ name: 'Q', value: 'one' }] }]);
    const so = scaledObject([{ metadata: { hostFromEnv: 'Q' } }]);
    const before = await resolve(so);
    deployment([{ name: 'app', env: [{ name: 'Q', value: 'two' }] }]);
    expect((await resolve(so)).fingerprint).not.toBe(before.fingerprint);
  });
});

describe('authParams: errors', () => {
  const field = 'spec.triggers[0].authenticationRef';
  const ref = (name: string, kind?: string): TriggerFixture[] => [
    { authenticationRef: { name, ...(kind !== undefined ? { kind } : {}) } },
  ];

  test('a TriggerAuthentication that does not exist is a ValidationError naming the field and the object', async () => {
    const err = await failure(scaledObject(ref('rabbit-auth')), ValidationError);
    expect(err.field).toBe(field);
    expect(err.message).toBe(
      'spec.triggers[0].authenticationRef: TriggerAuthentication "rabbit-auth" not found in namespace "shop"',
    );
  });

  test('a TriggerAuthentication in another namespace is not found', async () => {
    port.triggerAuths.set('other/rabbit-auth', ta('rabbit-auth', {}));
    await failure(scaledObject(ref('rabbit-auth')), ValidationError);
  });

  test('a ClusterTriggerAuthentication that does not exist', async () => {
    const err = await failure(scaledObject(ref('global', 'ClusterTriggerAuthentication')), ValidationError);
    expect(err.message).toBe('spec.triggers[0].authenticationRef: ClusterTriggerAuthentication "global" not found');
  });

  test('the error of the first trigger in order is reported', async () => {
    const so = scaledObject([{}, { authenticationRef: { name: 'first' } }, { authenticationRef: { name: 'second' } }]);
    port.failures.set(`TriggerAuthentication/${NS}/second`, new Error('HTTP 500'));
    const err = await failure(so, ValidationError);
    expect(err.field).toBe('spec.triggers[1].authenticationRef');
  });

  const invalid: { comment: string; spec: Record<string, unknown>; message: string }[] = [
    {
      comment: 'an unsupported podIdentity',
      spec: { podIdentity: { provider: 'aws', roleArn: 'arn:aws:iam::1:role/x' } },
      message:
        'TriggerAuthentication "a" in namespace "shop" is invalid: spec.podIdentity.provider: "aws" is not supported by sluice yet (only "none"); use secretTargetRef, configMapTargetRef or env',
    },
    {
      comment: 'HashiCorp Vault',
      spec: { hashiCorpVault: { address: 'https://vault', authentication: 'token' } },
      message:
        'TriggerAuthentication "a" in namespace "shop" is invalid: spec.hashiCorpVault: is not supported by sluice yet; use secretTargetRef, configMapTargetRef or env',
    },
    {
      comment: 'a malformed entry',
      spec: { secretTargetRef: [{ parameter: 'p', name: 'creds' }] },
      message: 'TriggerAuthentication "a" in namespace "shop" is invalid: spec.secretTargetRef[0].key: is required',
    },
  ];
  test.each(invalid)('an invalid TriggerAuthentication ($comment) is a ValidationError', async ({ spec, message }) => {
    port.triggerAuths.set(`${NS}/a`, ta('a', spec));
    const err = await failure(scaledObject(ref('a')), ValidationError);
    expect(err.field).toBe(field);
    expect(err.message).toBe(`${field}: ${message}`);
  });

  test('reading the TriggerAuthentication fails: a runtime error with the cause', async () => {
    const cause = new Error('HTTP 404: the API server does not serve this resource (is its CRD installed?)');
    port.failures.set(`TriggerAuthentication/${NS}/a`, cause);
    const err = await failure(scaledObject(ref('a')), AuthResolutionError);
    expect(err.cause).toBe(cause);
    expect(err.message).toBe(
      `${field}: cannot read TriggerAuthentication "a" in namespace "shop": HTTP 404: the API server does not serve this resource (is its CRD installed?)`,
    );
  });

  const runtime: { comment: string; spec: Record<string, unknown>; setup?: () => void; message: string }[] = [
    {
      comment: 'a Secret that does not exist',
      spec: { secretTargetRef: [{ parameter: 'password', name: 'rabbit-secret', key: 'password' }] },
      message:
        'TriggerAuthentication "a" in namespace "shop": spec.secretTargetRef[0] (parameter "password"): Secret "rabbit-secret" not found in namespace "shop"',
    },
    {
      comment: 'a Secret without the key',
      spec: { secretTargetRef: [{ parameter: 'password', name: 'rabbit-secret', key: 'pass' }] },
      setup: () => port.secrets.set(`${NS}/rabbit-secret`, { password: SECRET_VALUES[0] }),
      message:
        'TriggerAuthentication "a" in namespace "shop": spec.secretTargetRef[0] (parameter "password"): Secret "rabbit-secret" in namespace "shop" has no key "pass" (keys: password)',
    },
    {
      comment: 'a Secret that cannot be read',
      spec: { secretTargetRef: [{ parameter: 'password', name: 'rabbit-secret', key: 'password' }] },
      setup: () =>
        port.failures.set(
          `Secret/${NS}/rabbit-secret`,
          new Error('HTTP 403 Forbidden: secrets "rabbit-secret" is forbidden'),
        ),
      message:
        'TriggerAuthentication "a" in namespace "shop": spec.secretTargetRef[0] (parameter "password"): cannot read Secret "rabbit-secret" in namespace "shop": HTTP 403 Forbidden: secrets "rabbit-secret" is forbidden',
    },
    {
      comment: 'a ConfigMap that does not exist',
      spec: { configMapTargetRef: [{ parameter: 'host', name: 'cfg', key: 'host' }] },
      message:
        'TriggerAuthentication "a" in namespace "shop": spec.configMapTargetRef[0] (parameter "host"): ConfigMap "cfg" not found in namespace "shop"',
    },
    {
      comment: 'a ConfigMap without the key, with many keys',
      spec: { configMapTargetRef: [{ parameter: 'host', name: 'cfg', key: 'host' }] },
      setup: () =>
        port.configMaps.set(`${NS}/cfg`, Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`k${i}`, 'v']))),
      message:
        'TriggerAuthentication "a" in namespace "shop": spec.configMapTargetRef[0] (parameter "host"): ConfigMap "cfg" in namespace "shop" has no key "host" (keys: k0, k1, k10, k11, k2, k3, k4, k5, k6, k7, … 2 more)',
    },
    {
      comment: 'env whose variable comes from a missing Secret',
      spec: { env: [{ parameter: 'password', name: 'PW' }] },
      setup: () => {
        deployment([{ name: 'app', env: [{ name: 'PW', valueFrom: { secretKeyRef: { name: 'creds', key: 'k' } } }] }]);
      },
      message:
        'TriggerAuthentication "a" in namespace "shop": spec.env[0] (parameter "password"): environment variable "PW" of container "app" in Deployment "consumer": env[0].valueFrom.secretKeyRef: Secret "creds" not found in namespace "shop"',
    },
    {
      comment: 'env when the scale target does not exist',
      spec: { env: [{ parameter: 'password', name: 'PW' }] },
      message: 'Deployment "consumer" (apps/v1) in namespace "shop" not found (its containers\' environment is needed)',
    },
  ];
  test.each(runtime)('$comment → AuthResolutionError', async ({ spec, setup, message }) => {
    port.triggerAuths.set(`${NS}/a`, ta('a', spec));
    setup?.();
    const err = await failure(scaledObject(ref('a')), AuthResolutionError);
    expect(err.message.endsWith(message)).toBe(true);
    expect(err.field).toBe(message.startsWith('Deployment') ? 'spec.scaleTargetRef' : field);
  });

  test('a ClusterTriggerAuthentication names the namespace it read from', async () => {
    port.clusterTriggerAuths.set(
      'global',
      ta(
        'global',
        { secretTargetRef: [{ parameter: 'p', name: 'creds', key: 'k' }], allowedNamespaces: [NS] },
        'ClusterTriggerAuthentication',
      ),
    );
    const err = await failure(scaledObject(ref('global', 'ClusterTriggerAuthentication')), AuthResolutionError);
    expect(err.message).toBe(
      `${field}: ClusterTriggerAuthentication "global": spec.secretTargetRef[0] (parameter "p"): Secret "creds" not found in namespace "sluice-system"`,
    );
  });

  const validation: { comment: string; spec: Record<string, unknown>; containers: ContainerEnv[]; message: string }[] =
    [
      {
        comment: 'env naming a container the scale target does not have',
        spec: { env: [{ parameter: 'p', name: 'P', containerName: 'worker' }] },
        containers: [{ name: 'app' }],
        message:
          'TriggerAuthentication "a" in namespace "shop": spec.env[0].containerName: container "worker" not found in Deployment "consumer" (containers: app)',
      },
      {
        comment: 'env naming a variable the container does not define',
        spec: { env: [{ parameter: 'p', name: 'P' }] },
        containers: [{ name: 'app', env: [{ name: 'Q', value: 'q' }] }],
        message:
          'TriggerAuthentication "a" in namespace "shop": spec.env[0] (parameter "p"): Deployment "consumer" container "app" has no environment variable "P"',
      },
      {
        comment: 'env naming a variable set from resourceFieldRef',
        spec: { env: [{ parameter: 'p', name: 'P' }] },
        containers: [
          { name: 'app', env: [{ name: 'P', valueFrom: { resourceFieldRef: { resource: 'limits.cpu' } } }] },
        ],
        message:
          'TriggerAuthentication "a" in namespace "shop": spec.env[0] (parameter "p"): environment variable "P" of container "app" in Deployment "consumer" is set from env[0].valueFrom resourceFieldRef, which sluice cannot resolve',
      },
    ];
  test.each(validation)('$comment → ValidationError', async ({ spec, containers, message }) => {
    port.triggerAuths.set(`${NS}/a`, ta('a', spec));
    deployment(containers);
    const err = await failure(scaledObject(ref('a')), ValidationError);
    expect(err.field).toBe(field);
    expect(err.message).toBe(`${field}: ${message}`);
  });
});

describe('no credential value in any error', () => {
  /**
   * Every error the resolver can raise, in a cluster where every Secret, ConfigMap and literal env value holds one of
   * SECRET_VALUES. Each scenario arranges one failure next to values that resolve.
   */
  const scenarios: { comment: string; so: () => ScaledObject; setup: () => void }[] = [];
  const taScenario = (comment: string, spec: Record<string, unknown>, setup: () => void = () => undefined) =>
    scenarios.push({
      comment,
      so: () => scaledObject([{ authenticationRef: { name: 'a' } }]),
      setup: () => {
        port.triggerAuths.set(`${NS}/a`, ta('a', spec));
        setup();
      },
    });
  const envScenario = (comment: string, containers: ContainerEnv[], so?: () => ScaledObject) =>
    scenarios.push({
      comment,
      so: so ?? (() => scaledObject([{ metadata: { passwordFromEnv: 'P' } }])),
      setup: () => {
        deployment(containers);
      },
    });

  const goodEnv = [
    { name: 'LITERAL', value: SECRET_VALUES[3] },
    { name: 'FROM_SECRET', valueFrom: { secretKeyRef: { name: 'creds', key: 'password' } } },
  ];
  taScenario('TA: Secret key missing', { secretTargetRef: [{ parameter: 'p', name: 'creds', key: 'nope' }] });
  taScenario('TA: Secret missing', { secretTargetRef: [{ parameter: 'p', name: 'absent', key: 'k' }] });
  taScenario('TA: Secret read fails', { secretTargetRef: [{ parameter: 'p', name: 'failing', key: 'k' }] });
  taScenario('TA: ConfigMap key missing', { configMapTargetRef: [{ parameter: 'p', name: 'cfg', key: 'nope' }] });
  taScenario('TA: ConfigMap missing', { configMapTargetRef: [{ parameter: 'p', name: 'absent', key: 'k' }] });
  taScenario('TA: env variable missing', { env: [{ parameter: 'p', name: 'NOPE' }] }, () => {
    deployment([{ name: 'app', env: goodEnv }]);
  });
  taScenario('TA: env container missing', { env: [{ parameter: 'p', name: 'LITERAL', containerName: 'x' }] }, () => {
    deployment([{ name: 'app', env: goodEnv }]);
  });
  taScenario('TA: env from a missing Secret', { env: [{ parameter: 'p', name: 'BAD' }] }, () => {
    deployment([
      { name: 'app', env: [...goodEnv, { name: 'BAD', valueFrom: { secretKeyRef: { name: 'creds', key: 'x' } } }] },
    ]);
  });
  taScenario('TA: env from fieldRef', { env: [{ parameter: 'p', name: 'F' }] }, () => {
    deployment([{ name: 'app', env: [...goodEnv, { name: 'F', valueFrom: { fieldRef: { fieldPath: 'x' } } }] }]);
  });
  taScenario('TA: env, scale target missing', { env: [{ parameter: 'p', name: 'LITERAL' }] });
  taScenario('TA: unsupported podIdentity', { podIdentity: { provider: 'gcp' } });
  taScenario('TA: malformed', { secretTargetRef: [{ parameter: 'p', name: 'creds', key: '' }] });
  scenarios.push({
    comment: 'TA missing',
    so: () => scaledObject([{ authenticationRef: { name: 'absent' } }]),
    setup: () => undefined,
  });
  scenarios.push({
    comment: 'CTA: Secret key missing',
    so: () => scaledObject([{ authenticationRef: { name: 'g', kind: 'ClusterTriggerAuthentication' } }]),
    setup: () =>
      port.clusterTriggerAuths.set(
        'g',
        ta(
          'g',
          { secretTargetRef: [{ parameter: 'p', name: 'creds', key: 'nope' }], allowedNamespaces: [NS] },
          'ClusterTriggerAuthentication',
        ),
      ),
  });
  envScenario('env: Secret key missing, next to resolved values', [
    { name: 'app', env: [...goodEnv, { name: 'P', valueFrom: { secretKeyRef: { name: 'creds', key: 'nope' } } }] },
  ]);
  envScenario('env: expansion of an unresolved variable', [
    {
      name: 'app',
      env: [
        ...goodEnv,
        { name: 'BAD', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'nope' } } },
        { name: 'P', value: `$(LITERAL)$(FROM_SECRET)$(BAD)` },
      ],
    },
  ]);
  envScenario('env: envFrom Secret missing', [
    { name: 'app', envFrom: [{ secretRef: { name: 'bulk' } }, { secretRef: { name: 'creds' } }], env: goodEnv },
  ]);
  envScenario('env: fieldRef requested', [
    { name: 'app', env: [...goodEnv, { name: 'P', valueFrom: { fieldRef: { fieldPath: 'x' } } }] },
  ]);
  envScenario('env: envSourceContainerName missing', [{ name: 'app', env: goodEnv }], () =>
    scaledObject([{ metadata: { passwordFromEnv: 'P' } }], { name: 'consumer', envSourceContainerName: 'x' }),
  );
  envScenario('env: no containers', []);
  scenarios.push({
    comment: 'env: scale target missing',
    so: () => scaledObject([{ metadata: { passwordFromEnv: 'P' } }]),
    setup: () => undefined,
  });
  scenarios.push({
    comment: 'env: scale target read fails',
    so: () => scaledObject([{ metadata: { passwordFromEnv: 'P' } }]),
    setup: () => port.failures.set('apps/v1.Deployment/shop/consumer', new Error('HTTP 500')),
  });

  const seen = new Set<string>();
  test.each(scenarios)('$comment', async ({ so, setup }) => {
    port.secrets.set(`${NS}/creds`, { password: SECRET_VALUES[0], username: SECRET_VALUES[1] });
    port.secrets.set(`sluice-system/creds`, { password: SECRET_VALUES[5] });
    port.secrets.set(`${NS}/bulk-values`, { X: SECRET_VALUES[4] });
    port.configMaps.set(`${NS}/cfg`, { host: SECRET_VALUES[2] });
    port.failures.set(`Secret/${NS}/failing`, new Error('HTTP 403 Forbidden'));
    setup();
    let error: unknown;
    try {
      await resolve(so());
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(Error);
    const err = error as Error & { field?: string };
    expect(err instanceof ValidationError || err instanceof AuthResolutionError).toBe(true);
    const texts = [err.message, describeError(err), String(err), err.stack ?? '', JSON.stringify(err), err.field ?? ''];
    for (const text of texts) for (const value of SECRET_VALUES) expect(text).not.toContain(value);
    seen.add(err.constructor.name);
  });

  test('the scenarios cover both error kinds', () => {
    expect([...seen].sort()).toStrictEqual(['AuthResolutionError', 'ValidationError']);
  });
});

describe('refersToAuthentication (maps TriggerAuthentication events to ScaledObjects)', () => {
  const raw = {
    metadata: { name: 'so', namespace: NS },
    spec: {
      triggers: [
        { type: 'rabbitmq', authenticationRef: { name: 'a' } },
        { type: 'rabbitmq', authenticationRef: { name: 'g', kind: 'ClusterTriggerAuthentication' } },
      ],
    },
  };
  const rows: { comment: string; args: Parameters<typeof refersToAuthentication>; expected: boolean }[] = [
    { comment: 'TA, same namespace (kind defaulted)', args: [raw, 'TriggerAuthentication', 'a', NS], expected: true },
    { comment: 'TA, other namespace', args: [raw, 'TriggerAuthentication', 'a', 'other'], expected: false },
    { comment: 'TA, other name', args: [raw, 'TriggerAuthentication', 'b', NS], expected: false },
    { comment: 'CTA by name', args: [raw, 'ClusterTriggerAuthentication', 'g'], expected: true },
    { comment: 'CTA named like the TA', args: [raw, 'ClusterTriggerAuthentication', 'a'], expected: false },
    { comment: 'TA named like the CTA', args: [raw, 'TriggerAuthentication', 'g', NS], expected: false },
    { comment: 'not an object', args: [undefined, 'TriggerAuthentication', 'a', NS], expected: false },
    {
      comment: 'a parsed ScaledObject',
      args: [scaledObject([{ authenticationRef: { name: 'a' } }]), 'TriggerAuthentication', 'a', NS],
      expected: true,
    },
  ];
  test.each(rows)('$comment → $expected', ({ args, expected }) => {
    expect(refersToAuthentication(...args)).toBe(expected);
  });
});

describe('a MetricSource trigger (no scale target)', () => {
  const port = new MemoryPort();
  port.secrets.set(`${NS}/rabbit`, { host: 'amqp://user-from-secret-91c2:pw-from-secret-7f3a@rabbit:5672' });
  port.triggerAuths.set(
    `${NS}/rabbit`,
    ta('rabbit', { secretTargetRef: [{ parameter: 'host', name: 'rabbit', key: 'host' }] }),
  );
  port.triggerAuths.set(`${NS}/from-env`, ta('from-env', { env: [{ parameter: 'host', name: 'RABBIT_HOST' }] }));
  const source = (auth: string) =>
    metricSourceSubject({
      metadata: { name: 'queue-messages-ready', namespace: NS },
      spec: {
        metricName: 'queue_messages_ready',
        pollingInterval: 30,
        maxSelectors: 100,
        selectorIdleSeconds: 300,
        trigger: {
          type: 'rabbitmq',
          metadata: { queueName: '{{queue}}' },
          authenticationRef: { name: auth, kind: 'TriggerAuthentication' },
        },
      },
    });

  test('secretTargetRef resolves as for a ScaledObject', async () => {
    const resolution = await createAuthResolver(port).resolveTriggers(source('rabbit'));
    expect(Object.keys(resolution.triggers[0]?.authParams ?? {})).toStrictEqual(['host']);
  });

  test('a TriggerAuthentication with env is refused at spec.trigger.authenticationRef: there is no container', async () => {
    const err = await createAuthResolver(port)
      .resolveTriggers(source('from-env'))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).field).toBe('spec.trigger.authenticationRef');
    expect((err as ValidationError).message).toContain('a MetricSource has no scale target');
  });

  test('--restrict-secret-access applies: a TriggerAuthentication may not read Secrets', async () => {
    const err = await createAuthResolver(port, { restrictSecretAccess: true })
      .resolveTriggers(source('rabbit'))
      .catch((e: unknown) => e);
    expect((err as ValidationError).field).toBe('spec.trigger.authenticationRef');
    expect((err as ValidationError).message).toContain('--restrict-secret-access');
  });
});
