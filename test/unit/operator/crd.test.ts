import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Type from 'typebox';
import { Value } from 'typebox/value';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { DEFAULT_OUT_DIR, main, renderCrds } from '../../../scripts/gen-crds.ts';
import {
  scaledObjectCrd,
  scaledObjectOpenApiSchema,
  toStructuralSchema,
  type JsonSchemaProps,
} from '../../../src/operator/crd.ts';
import { MAX_TRIGGERS, ScaledObjectSpecSchema } from '../../../src/operator/scaled-object.ts';
import { metricSourceCrd } from '../../../src/operator/metric-source.ts';
import {
  clusterTriggerAuthenticationCrd,
  triggerAuthenticationCrd,
  triggerAuthenticationOpenApiSchema,
} from '../../../src/operator/trigger-authentication.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..', '..');
const CRD_FILE = path.join(ROOT, 'crds', 'scaledobject.yaml');

/** Every schema node with its path. */
function* nodes(schema: JsonSchemaProps, at = '$'): Generator<[string, JsonSchemaProps]> {
  yield [at, schema];
  for (const [name, child] of Object.entries(schema.properties ?? {})) yield* nodes(child, `${at}.${name}`);
  if (schema.items) yield* nodes(schema.items, `${at}[]`);
  if (schema.additionalProperties) yield* nodes(schema.additionalProperties, `${at}{}`);
}

const ALLOWED_KEYS = new Set([
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
  'x-kubernetes-list-type',
  'x-kubernetes-validations',
]);

describe('crds/scaledobject.yaml', () => {
  test('is what the generator writes today (run `npm run crds` if this fails)', async () => {
    const onDisk = await readFile(CRD_FILE, 'utf8');
    expect(onDisk).toBe(renderCrds().get('scaledobject.yaml'));
  });

  test('its schema equals the one built from the TypeBox schema', async () => {
    const crd = parse(await readFile(CRD_FILE, 'utf8')) as ReturnType<typeof scaledObjectCrd>;
    expect(crd.spec.versions[0]?.schema.openAPIV3Schema).toStrictEqual(scaledObjectOpenApiSchema());
    expect(crd).toStrictEqual(scaledObjectCrd());
  });
});

describe('the CRD', () => {
  const crd = scaledObjectCrd();
  const version = crd.spec.versions[0];

  test('names, scope, version, status subresource', () => {
    expect(crd.metadata.name).toBe('scaledobjects.sluice.dev');
    expect(crd.spec.group).toBe('sluice.dev');
    expect(crd.spec.names).toStrictEqual({
      kind: 'ScaledObject',
      listKind: 'ScaledObjectList',
      plural: 'scaledobjects',
      singular: 'scaledobject',
      shortNames: ['so'],
    });
    expect(crd.spec.scope).toBe('Namespaced');
    expect(crd.spec.versions).toHaveLength(1);
    expect(version?.name).toBe('v1alpha1');
    expect(version?.served && version.storage).toBe(true);
    expect(version?.subresources).toStrictEqual({ status: {} });
  });

  test("KEDA's printer columns", () => {
    expect(version?.additionalPrinterColumns.map((c) => [c.name, c.type, c.jsonPath])).toStrictEqual([
      ['ScaleTargetKind', 'string', '.status.scaleTargetKind'],
      ['ScaleTargetName', 'string', '.spec.scaleTargetRef.name'],
      ['Min', 'integer', '.spec.minReplicaCount'],
      ['Max', 'integer', '.spec.maxReplicaCount'],
      ['Ready', 'string', '.status.conditions[?(@.type=="Ready")].status'],
      ['Active', 'string', '.status.conditions[?(@.type=="Active")].status'],
      ['Fallback', 'string', '.status.conditions[?(@.type=="Fallback")].status'],
      ['Paused', 'string', '.status.conditions[?(@.type=="Paused")].status'],
      ['Triggers', 'string', '.status.triggersTypes'],
      ['Authentications', 'string', '.status.authenticationsTypes'],
      ['Age', 'date', '.metadata.creationTimestamp'],
    ]);
  });

  // The CEL rules kubectl apply enforces (parseScaledObject checks the same for objects that got past an older CRD).
  // Literal on purpose: the rule text is what the API server evaluates, and KEDA's min ≤ max comes first, verbatim.
  test("the spec's CEL rules: KEDA's min ≤ max, then idle < min, unique trigger names and scalingModifiers", () => {
    expect(scaledObjectOpenApiSchema().properties?.['spec']?.['x-kubernetes-validations']).toStrictEqual([
      {
        rule: '!has(self.minReplicaCount) || self.minReplicaCount <= (has(self.maxReplicaCount) ? self.maxReplicaCount : 100)',
        message: 'minReplicaCount must be less than or equal to maxReplicaCount',
      },
      {
        rule: '!has(self.idleReplicaCount) || self.idleReplicaCount < (has(self.minReplicaCount) ? self.minReplicaCount : 0) || (self.idleReplicaCount == 0 && (!has(self.minReplicaCount) || self.minReplicaCount == 0))',
        message: 'idleReplicaCount must be less than minReplicaCount',
        fieldPath: '.idleReplicaCount',
      },
      {
        rule: "self.triggers.all(t, !has(t.name) || t.name == '' || self.triggers.filter(u, has(u.name) && u.name == t.name).size() == 1)",
        message: 'trigger names must be unique within the ScaledObject',
        fieldPath: '.triggers',
      },
      {
        rule: "!has(self.advanced) || !has(self.advanced.scalingModifiers) || !has(self.advanced.scalingModifiers.formula) || (has(self.advanced.scalingModifiers.target) && self.triggers.exists(t, has(t.name) && t.name != ''))",
        message: 'a scalingModifiers formula needs a target and named triggers',
        fieldPath: '.advanced.scalingModifiers',
      },
      {
        rule: "!has(self.fallback) || self.fallback.behavior != 'scalingModifiers' || (has(self.advanced) && has(self.advanced.scalingModifiers) && has(self.advanced.scalingModifiers.formula))",
        message: 'fallback behavior scalingModifiers needs spec.advanced.scalingModifiers.formula',
        fieldPath: '.fallback.behavior',
      },
    ]);
  });

  test('at most 64 triggers (MAX_TRIGGERS), at least 1', () => {
    const triggers = scaledObjectOpenApiSchema().properties?.['spec']?.properties?.['triggers'];
    expect([triggers?.minItems, triggers?.maxItems]).toStrictEqual([1, 64]);
    expect(MAX_TRIGGERS).toBe(64);
  });

  describe('the schema is structural', () => {
    const all = [...nodes(scaledObjectOpenApiSchema())];

    test('it has a node for every field', () => {
      expect(all.map(([at]) => at)).toEqual(
        expect.arrayContaining([
          '$.spec.triggers[].metadata{}',
          '$.spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.policies[].periodSeconds',
          '$.status.conditions[].lastTransitionTime',
          '$.status.health{}.numberOfFailures',
          '$.status.triggersActivity{}.isActive',
        ]),
      );
      expect(all.length).toBeGreaterThan(70);
    });

    test.each(all)(
      '%s: typed, only supported keywords, no properties together with additionalProperties',
      (_at, node) => {
        expect(
          node.type ?? (node['x-kubernetes-preserve-unknown-fields'] === true ? 'preserved' : undefined),
        ).toBeDefined();
        for (const key of Object.keys(node)) expect(ALLOWED_KEYS).toContain(key);
        expect(node.properties !== undefined && node.additionalProperties !== undefined).toBe(false);
        if (node.default !== undefined) expect(Value.Check(node as never, node.default)).toBe(true);
        for (const name of node.required ?? []) {
          expect(node.properties?.[name]).toBeDefined();
          expect(node.properties?.[name]?.default).toBeUndefined();
        }
        if (node.type === 'string' && node.enum) expect(node.enum.every((v) => typeof v === 'string')).toBe(true);
      },
    );

    test('fields with defaults are optional for users; the others stay required', () => {
      const spec = scaledObjectOpenApiSchema().properties?.['spec'];
      expect(spec?.required).toStrictEqual(['scaleTargetRef', 'triggers']);
      expect(spec?.properties?.['triggers']?.items?.required).toStrictEqual(['type', 'metadata']);
      expect(spec?.properties?.['scaleTargetRef']?.required).toStrictEqual(['name']);
      expect(spec?.properties?.['pollingInterval']?.default).toBe(30);
    });

    test('maps (Type.Record) become additionalProperties', () => {
      const metadata =
        scaledObjectOpenApiSchema().properties?.['spec']?.properties?.['triggers']?.items?.properties?.['metadata'];
      expect(metadata).toStrictEqual({
        description: 'Scaler-specific parameters; every value is a string.',
        type: 'object',
        additionalProperties: { type: 'string' },
      });
    });
  });
});

describe.each([
  {
    file: 'triggerauthentication.yaml',
    crd: triggerAuthenticationCrd,
    name: 'triggerauthentications.sluice.dev',
    scope: 'Namespaced',
    names: {
      kind: 'TriggerAuthentication',
      listKind: 'TriggerAuthenticationList',
      plural: 'triggerauthentications',
      singular: 'triggerauthentication',
      shortNames: ['ta', 'triggerauth'],
    },
  },
  {
    file: 'clustertriggerauthentication.yaml',
    crd: clusterTriggerAuthenticationCrd,
    name: 'clustertriggerauthentications.sluice.dev',
    scope: 'Cluster',
    names: {
      kind: 'ClusterTriggerAuthentication',
      listKind: 'ClusterTriggerAuthenticationList',
      plural: 'clustertriggerauthentications',
      singular: 'clustertriggerauthentication',
      shortNames: ['cta', 'clustertriggerauth'],
    },
  },
])('crds/$file', ({ file, crd, name, scope, names }) => {
  test('is what the generator writes today (run `npm run crds` if this fails)', async () => {
    const onDisk = await readFile(path.join(ROOT, 'crds', file), 'utf8');
    expect(onDisk).toBe(renderCrds().get(file));
    expect(parse(onDisk)).toStrictEqual(crd());
  });

  test("KEDA's names, scope and shortNames; one served storage version with a status subresource", () => {
    const built = crd();
    expect(built.metadata.name).toBe(name);
    expect(built.spec.group).toBe('sluice.dev');
    expect(built.spec.scope).toBe(scope);
    expect(built.spec.names).toStrictEqual(names);
    expect(built.spec.versions.map((v) => [v.name, v.served, v.storage, v.subresources])).toStrictEqual([
      ['v1alpha1', true, true, { status: {} }],
    ]);
  });

  test("KEDA's printer columns (no Vault address, no scaled jobs) plus Age", () => {
    expect(crd().spec.versions[0]?.additionalPrinterColumns.map((c) => [c.name, c.jsonPath])).toStrictEqual([
      ['PodIdentity', '.spec.podIdentity.provider'],
      ['Secret', '.spec.secretTargetRef[*].name'],
      ['Env', '.spec.env[*].name'],
      ['ScaledObjects', '.status.scaledobjects'],
      ['Age', '.metadata.creationTimestamp'],
    ]);
  });

  const schema = triggerAuthenticationOpenApiSchema(names.kind as 'TriggerAuthentication');
  const all = [...nodes(schema)];

  test('it has a node for every field', () => {
    expect(all.map(([at]) => at)).toEqual(
      expect.arrayContaining([
        '$.spec.secretTargetRef[].key',
        '$.spec.configMapTargetRef[].parameter',
        '$.spec.env[].containerName',
        '$.spec.podIdentity.provider',
        '$.spec.hashiCorpVault',
        '$.spec.boundServiceAccountToken[]',
        '$.status.scaledobjects',
      ]),
    );
    expect(schema.properties?.['spec']?.properties?.['secretTargetRef']?.items?.required).toStrictEqual([
      'parameter',
      'name',
      'key',
    ]);
    expect(schema.properties?.['spec']?.properties?.['env']?.items?.required).toStrictEqual(['parameter', 'name']);
  });

  test.each(all)(
    '%s: typed, only supported keywords, no properties together with additionalProperties',
    (_at, node) => {
      expect(
        node.type ?? (node['x-kubernetes-preserve-unknown-fields'] === true ? 'preserved' : undefined),
      ).toBeDefined();
      for (const key of Object.keys(node)) expect(ALLOWED_KEYS).toContain(key);
      expect(node.properties !== undefined && node.additionalProperties !== undefined).toBe(false);
      for (const required of node.required ?? []) expect(node.properties?.[required]).toBeDefined();
    },
  );
});

describe('toStructuralSchema', () => {
  const rejects: { comment: string; schema: unknown; error: string }[] = [
    {
      comment: 'a union of types',
      schema: Type.Union([Type.String(), Type.Number()]),
      error: '#/anyOf: keyword not supported',
    },
    { comment: 'a literal (const)', schema: Type.Literal('x'), error: '#/const: keyword not supported' },
    {
      comment: 'patternProperties other than any key',
      schema: { type: 'object', patternProperties: { '^a': { type: 'string' } } },
      error: 'only Type.Record(Type.String(), …) can be expressed',
    },
    {
      comment: 'an untyped node',
      schema: Type.Object({ x: Type.Unknown() }),
      error: '#/properties/x: every node of a structural schema needs a type',
    },
    { comment: 'a $ref', schema: { type: 'object', $ref: '#/x' }, error: '#/$ref: keyword not supported' },
    {
      comment: 'properties and additionalProperties together',
      schema: { type: 'object', properties: { a: { type: 'string' } }, additionalProperties: { type: 'string' } },
      error: 'mutually exclusive',
    },
  ];
  test.each(rejects)('rejects $comment', ({ schema, error }) => {
    expect(() => toStructuralSchema(schema)).toThrow(error);
  });

  test('drops $id and additionalProperties: false, keeps x-kubernetes extensions', () => {
    const schema = Type.Object(
      { a: Type.String() },
      { $id: 'X', additionalProperties: false, 'x-kubernetes-map-type': 'atomic' },
    );
    expect(toStructuralSchema(schema)).toStrictEqual({
      type: 'object',
      required: ['a'],
      properties: { a: { type: 'string' } },
      'x-kubernetes-map-type': 'atomic',
    });
  });

  test('does not change the TypeBox schema it reads', () => {
    const before = JSON.stringify(ScaledObjectSpecSchema);
    toStructuralSchema(ScaledObjectSpecSchema);
    expect(JSON.stringify(ScaledObjectSpecSchema)).toBe(before);
  });
});

describe('scripts/gen-crds.ts', () => {
  let dir: string;
  const output = () => {
    const lines: string[] = [];
    return { lines, out: { log: (m: string) => lines.push(m), error: (m: string) => lines.push(m) } };
  };
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'sluice-crds-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('writes by default into crds/ at the repository root', () => {
    expect(DEFAULT_OUT_DIR).toBe(path.join(ROOT, 'crds'));
  });

  test('--check: missing, then written, then stale', async () => {
    const missing = output();
    expect(await main(['--check', '--out-dir', dir], missing.out)).toBe(1);
    expect(missing.lines.join('\n')).toMatch(/scaledobject\.yaml \(missing\)[\s\S]*Run `npm run crds`/);

    const write = output();
    expect(await main(['--out-dir', dir], write.out)).toBe(0);
    const written = await readFile(path.join(dir, 'scaledobject.yaml'), 'utf8');
    expect(written).toBe(renderCrds().get('scaledobject.yaml'));

    const fresh = output();
    expect(await main(['--check', '--out-dir', dir], fresh.out)).toBe(0);
    expect(fresh.lines).toStrictEqual([
      'gen-crds: scaledobject.yaml, triggerauthentication.yaml, clustertriggerauthentication.yaml, metricsource.yaml up to date',
    ]);

    await writeFile(path.join(dir, 'scaledobject.yaml'), written.replace('default: 300', 'default: 301'));
    const stale = output();
    expect(await main(['--check', '--out-dir', dir], stale.out)).toBe(1);
    expect(stale.lines.join('\n')).toContain('gen-crds: out of date with src/operator/scaled-object.ts:');

    // The other files name their own source, and each stale file is listed.
    await writeFile(path.join(dir, 'scaledobject.yaml'), written);
    await writeFile(path.join(dir, 'clustertriggerauthentication.yaml'), 'stale\n');
    const staleAuth = output();
    expect(await main(['--check', '--out-dir', dir], staleAuth.out)).toBe(1);
    expect(staleAuth.lines.join('\n')).toContain(
      `gen-crds: out of date with src/operator/trigger-authentication.ts: ${path.relative(process.cwd(), path.join(dir, 'clustertriggerauthentication.yaml'))}\n`,
    );
    expect(staleAuth.lines.join('\n')).not.toContain('scaledobject.yaml');
  });

  test('writes all three CRD files, each headed by the file it is generated from', async () => {
    const write = output();
    expect(await main(['--out-dir', dir], write.out)).toBe(0);
    for (const [file, source] of [
      ['scaledobject.yaml', 'src/operator/scaled-object.ts'],
      ['triggerauthentication.yaml', 'src/operator/trigger-authentication.ts'],
      ['clustertriggerauthentication.yaml', 'src/operator/trigger-authentication.ts'],
    ] as const) {
      const text = await readFile(path.join(dir, file), 'utf8');
      expect(text.split('\n')[0]).toBe(
        `# Generated by scripts/gen-crds.ts from ${source}. Do not edit: run \`npm run crds\`.`,
      );
    }
  });

  test('the generated file is deterministic', async () => {
    await main(['--out-dir', dir], output().out);
    const first = await readFile(path.join(dir, 'scaledobject.yaml'), 'utf8');
    await main(['--out-dir', dir], output().out);
    expect(await readFile(path.join(dir, 'scaledobject.yaml'), 'utf8')).toBe(first);
  });

  test('an unknown argument is a usage error', async () => {
    const bad = output();
    expect(await main(['--chek'], bad.out)).toBe(2);
    expect(bad.lines.join('\n')).toContain('usage: node scripts/gen-crds.ts [--check] [--out-dir DIR]');
  });

  test('as a command: --check exits 1 on a stale file and 0 on the repository’s own', async () => {
    await writeFile(path.join(dir, 'scaledobject.yaml'), 'stale\n');
    const script = path.join(ROOT, 'scripts', 'gen-crds.ts');
    const stale = spawnSync(process.execPath, [script, '--check', '--out-dir', dir], { encoding: 'utf8' });
    expect(stale.status).toBe(1);
    expect(stale.stderr).toContain('out of date');
    const repo = spawnSync(process.execPath, [script, '--check'], { encoding: 'utf8', cwd: ROOT });
    expect(repo.stderr).toBe('');
    expect(repo.status).toBe(0);
    // Two node processes: seconds each on a loaded 2-core machine.
  }, 30_000);
});

describe('crds/metricsource.yaml', () => {
  test('is what the generator writes today (run `npm run crds` if this fails)', async () => {
    const onDisk = await readFile(path.join(ROOT, 'crds', 'metricsource.yaml'), 'utf8');
    expect(onDisk).toBe(renderCrds().get('metricsource.yaml'));
    expect(parse(onDisk)).toStrictEqual(metricSourceCrd());
  });

  test('namespaced, one served storage version with a status subresource; defaults leave required', () => {
    const built = metricSourceCrd();
    expect(built.metadata.name).toBe('metricsources.sluice.dev');
    expect(built.spec.scope).toBe('Namespaced');
    expect(built.spec.names.kind).toBe('MetricSource');
    expect(built.spec.versions.map((v) => [v.name, v.served, v.storage, v.subresources])).toStrictEqual([
      ['v1alpha1', true, true, { status: {} }],
    ]);
    const spec = built.spec.versions[0]?.schema.openAPIV3Schema.properties?.['spec'];
    expect(spec?.required).toStrictEqual(['metricName', 'trigger']);
  });
});
