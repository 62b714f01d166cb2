// Proves `sluice validate`: the real CLI (spawned) on good and bad files, several files and stdin, with exit codes and
// messages `file: Kind/name: field: message` that are the operator's own (compared with what parseScaledObject,
// the scalers and parseTriggerAuthentication say); and the kind → validator table.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { VALIDATORS, validateScaledObject } from '../../../src/cli/validate.ts';
import { ValidationError } from '../../../src/errors.ts';
import { parseScaledObject } from '../../../src/operator/scaled-object.ts';
import { parseTriggerAuthentication } from '../../../src/operator/trigger-authentication.ts';
import { run } from '../../support/command.ts';

const GOOD = `
apiVersion: sluice.dev/v1alpha1
kind: ScaledObject
metadata: {name: worker, namespace: shop}
spec:
  scaleTargetRef: {name: worker}
  minReplicaCount: 0
  maxReplicaCount: 10
  triggers:
    - type: rabbitmq
      metadata: {host: "amqp://rabbit:5672/", queueName: tasks, mode: QueueLength, value: "30"}
---
apiVersion: sluice.dev/v1alpha1
kind: TriggerAuthentication
metadata: {name: rabbit, namespace: shop}
spec:
  secretTargetRef: [{parameter: host, name: rabbit, key: host}]
---
apiVersion: sluice.dev/v1alpha1
kind: ClusterTriggerAuthentication
metadata: {name: shared}
spec:
  secretTargetRef: [{parameter: host, name: rabbit, key: host}]
---
`;

/** min > max; a rabbitmq trigger without queueName; TriggerAuthentication with an unsupported provider; a Deployment. */
const BAD = `
apiVersion: sluice.dev/v1alpha1
kind: ScaledObject
metadata: {name: inverted}
spec:
  scaleTargetRef: {name: worker}
  minReplicaCount: 5
  maxReplicaCount: 2
  triggers:
    - type: rabbitmq
      metadata: {host: "amqp://rabbit:5672/", queueName: tasks, value: "30"}
---
apiVersion: sluice.dev/v1alpha1
kind: ScaledObject
metadata: {name: noqueue}
spec:
  scaleTargetRef: {name: worker}
  triggers:
    - type: rabbitmq
      metadata: {host: "amqp://rabbit:5672/", value: "30"}
    - type: prometheus
      metadata: {serverAddress: "http://prom:9090", query: "up", threshold: "abc"}
---
apiVersion: sluice.dev/v1alpha1
kind: TriggerAuthentication
metadata: {name: cloudy}
spec:
  podIdentity: {provider: aws}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker}
`;

let dir: string;
const file = (name: string): string => path.join(dir, name);

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'sluice-validate-'));
  await writeFile(file('good.yaml'), GOOD);
  await writeFile(file('bad.yaml'), BAD);
  await writeFile(file('broken.yaml'), 'kind: ScaledObject\nmetadata: {name: x\n');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const validate = (args: string[], input?: string) =>
  run(process.execPath, ['src/main.ts', 'validate', ...args], input === undefined ? {} : { input });

/** The message the operator's own function gives for `obj`. */
function operatorMessage(parse: () => unknown): string {
  try {
    parse();
  } catch (err) {
    if (err instanceof ValidationError) return err.message;
    throw err;
  }
  throw new Error('the operator accepted it');
}

describe('sluice validate (the real CLI)', { timeout: 30_000 }, () => {
  test('a good file: exit 0 and a one-line summary', async () => {
    const r = await validate([file('good.yaml')]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toBe('3 objects in 1 file: 3 valid, 0 invalid\n');
  });

  test('a bad file: exit 1, one line per error naming file, object and field, in the operator’s words', async () => {
    const r = await validate([file('bad.yaml')]);
    expect(r.code).toBe(1);
    const minMax = operatorMessage(() =>
      parseScaledObject({
        apiVersion: 'sluice.dev/v1alpha1',
        kind: 'ScaledObject',
        metadata: { name: 'inverted' },
        spec: {
          scaleTargetRef: { name: 'worker' },
          minReplicaCount: 5,
          maxReplicaCount: 2,
          triggers: [{ type: 'rabbitmq', metadata: { host: 'amqp://rabbit:5672/', queueName: 'tasks', value: '30' } }],
        },
      }),
    );
    const provider = operatorMessage(() =>
      parseTriggerAuthentication(
        { kind: 'TriggerAuthentication', metadata: { name: 'cloudy' }, spec: { podIdentity: { provider: 'aws' } } },
        'TriggerAuthentication',
      ),
    );
    const bad = file('bad.yaml');
    expect(r.stdout.split('\n')).toEqual([
      `${bad}: ScaledObject/inverted: ${minMax}`,
      // Every trigger of an object is checked, not only the first failing one.
      `${bad}: ScaledObject/noqueue: spec.triggers[0].metadata.queueName: missing required parameter "queueName"`,
      `${bad}: ScaledObject/noqueue: spec.triggers[1].metadata.threshold: "abc" is not a number`,
      `${bad}: TriggerAuthentication/cloudy: ${provider}`,
      `${bad}: Deployment/worker: kind: unknown kind "Deployment" (sluice validate checks ScaledObject, TriggerAuthentication, ClusterTriggerAuthentication, MetricSource of sluice.dev/v1alpha1)`,
      '4 objects in 1 file: 0 valid, 4 invalid',
      '',
    ]);
    expect(minMax).toMatch(/^spec\.minReplicaCount: minReplicaCount must be less than or equal to maxReplicaCount/);
  });

  test('stdin with -: the file is <stdin>', async () => {
    const r = await validate(['-'], BAD.split('---')[1]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^<stdin>: ScaledObject\/noqueue: spec\.triggers\[0\]\.metadata\.queueName: missing/);
    expect(r.stdout).toMatch(/\n1 object in 1 file: 0 valid, 1 invalid\n$/);
    const good = await validate(['-'], GOOD);
    expect(good).toMatchObject({ code: 0, stdout: '3 objects in 1 file: 3 valid, 0 invalid\n' });
  });

  test('several files, one of them not YAML and one missing: all reported, exit 1', async () => {
    const r = await validate([file('good.yaml'), file('broken.yaml'), file('missing.yaml')]);
    expect(r.code).toBe(1);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^${file('broken.yaml')}: document 1, line \\d+: not valid YAML: `));
    expect(lines[1]).toBe(`${file('missing.yaml')}: no such file`);
    expect(lines[2]).toBe('3 objects in 3 files: 3 valid, 0 invalid, 2 unreadable');
  });

  test('no file: usage on stderr, exit 2', async () => {
    const r = await validate([]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^usage: sluice validate FILE\.\.\./);
  });
});

describe('validateScaledObject', () => {
  test('a trigger with an authenticationRef is left to the operator (its metadata needs the credentials)', () => {
    const got = validateScaledObject({
      apiVersion: 'sluice.dev/v1alpha1',
      kind: 'ScaledObject',
      metadata: { name: 'authed' },
      spec: {
        scaleTargetRef: { name: 'worker' },
        triggers: [{ type: 'rabbitmq', authenticationRef: { name: 'rabbit' }, metadata: { queueName: 'tasks' } }],
      },
    });
    expect(got).toEqual({ errors: [], unchecked: 1 });
  });

  test('the HPA it implies is checked too (a target below a milli-unit)', () => {
    const got = validateScaledObject({
      kind: 'ScaledObject',
      metadata: { name: 'tiny' },
      spec: {
        scaleTargetRef: { name: 'worker' },
        triggers: [
          { type: 'prometheus', metadata: { serverAddress: 'http://p:9090', query: 'up', threshold: '0.0001' } },
        ],
      },
    });
    expect(got.errors).toEqual([
      'spec.triggers[0]: the target of metric s0-prometheus must be a number greater than 0 (at least 0.001), got 0.0001',
    ]);
  });

  test('the table knows the four kinds', () => {
    expect(Object.keys(VALIDATORS)).toEqual([
      'ScaledObject',
      'TriggerAuthentication',
      'ClusterTriggerAuthentication',
      'MetricSource',
    ]);
  });

  test('a MetricSource: placeholders checked with the operator’s words (none may pick the host)', () => {
    const source = (metadata: Record<string, string>) => ({
      apiVersion: 'sluice.dev/v1alpha1',
      kind: 'MetricSource',
      metadata: { name: 'queue-messages-ready', namespace: 'shop' },
      spec: { metricName: 'queue_messages_ready', trigger: { type: 'rabbitmq', metadata } },
    });
    const validator = VALIDATORS['MetricSource'];
    if (validator === undefined) throw new Error('no MetricSource validator');
    expect(validator(source({ host: 'amqp://rabbit:5672', queueName: '{{queue}}', mode: 'QueueLength' }))).toEqual({
      errors: [],
      unchecked: 0,
    });
    const bad = validator(source({ host: '{{host}}', queueName: '{{queue}}', mode: 'QueueLength' }));
    expect(bad.errors).toHaveLength(1);
    expect(bad.errors[0]).toMatch(/^spec\.trigger\.metadata\.host: /);
  });
});
