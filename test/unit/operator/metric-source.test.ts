import { readFile } from 'node:fs/promises';
import { describe, expect, test } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ValidationError } from '../../../src/errors.ts';
import { parseSelector } from '../../../src/labels.ts';
import {
  DEFAULT_MAX_SELECTORS,
  DEFAULT_SELECTOR_IDLE_S,
  fillMetadata,
  namesScaledObject,
  parseMetricSource,
  placeholdersOf,
  selectorKey,
  selectorValues,
} from '../../../src/operator/metric-source.ts';
import { PLACEHOLDER_REFUSED_PARAMS } from '../../../src/scalers/registry.ts';

/** The MetricSource of the issue. */
function queueMessagesReady(): Record<string, unknown> {
  return {
    apiVersion: 'sluice.dev/v1alpha1',
    kind: 'MetricSource',
    metadata: { name: 'queue-messages-ready', namespace: 'shop' },
    spec: {
      metricName: 'queue_messages_ready',
      pollingInterval: 2,
      trigger: {
        type: 'rabbitmq',
        authenticationRef: { name: 'rabbit' },
        metadata: { queueName: '{{queue}}', mode: 'QueueLength' },
      },
    },
  };
}

function withTrigger(trigger: Record<string, unknown>): Record<string, unknown> {
  const source = queueMessagesReady();
  return { ...source, spec: { ...(source['spec'] as object), trigger } };
}

function refusal(run: () => unknown): { field: string; message: string } {
  try {
    run();
  } catch (err) {
    if (err instanceof ValidationError) return { field: err.field, message: err.message };
    throw err;
  }
  throw new Error('expected a ValidationError');
}

describe('placeholdersOf', () => {
  test.each([
    { metadata: { queueName: '{{queue}}' }, found: { queue: ['spec.trigger.metadata.queueName'] } },
    {
      metadata: { queueName: 'orders-{{ env }}-{{tier}}' },
      found: { env: ['spec.trigger.metadata.queueName'], tier: ['spec.trigger.metadata.queueName'] },
    },
    {
      metadata: { query: 'sum(x{svc="{{app.kubernetes.io/name}}"})' },
      found: { 'app.kubernetes.io/name': ['spec.trigger.metadata.query'] },
    },
    {
      metadata: { queueName: '{{q}}', valueLocation: '{{q}}' },
      found: { q: ['spec.trigger.metadata.queueName', 'spec.trigger.metadata.valueLocation'] },
    },
    { metadata: { queueName: 'orders', mode: 'QueueLength' }, found: {} },
  ])('$metadata → $found', ({ metadata, found }) => {
    expect(Object.fromEntries(placeholdersOf(metadata))).toStrictEqual(found);
  });

  test.each([
    { metadata: { queueName: '{{}}' }, field: 'spec.trigger.metadata.queueName', says: 'empty {{}} placeholder' },
    { metadata: { queueName: '{{Bad Key}}' }, field: 'spec.trigger.metadata.queueName', says: 'outside a {{label}}' },
    { metadata: { queueName: '{{-x}}' }, field: 'spec.trigger.metadata.queueName', says: 'does not name a label key' },
    { metadata: { queueName: 'a{{b' }, field: 'spec.trigger.metadata.queueName', says: 'outside a {{label}}' },
    { metadata: { queueName: 'a}}' }, field: 'spec.trigger.metadata.queueName', says: 'outside a {{label}}' },
    { metadata: { hostFromEnv: 'RABBIT' }, field: 'spec.trigger.metadata.hostFromEnv', says: 'no scale target' },
  ])('$metadata is refused at $field', ({ metadata, field, says }) => {
    const problem = refusal(() => placeholdersOf(metadata));
    expect(problem.field).toBe(field);
    expect(problem.message).toContain(says);
  });

  test.each([
    ['rabbitmq', 'host', 'amqp://{{broker}}:5672'],
    ['rabbitmq', 'vhostName', '{{tenant}}'],
    ['rabbitmq', 'password', '{{p}}'],
    ['aws-sqs-queue', 'queueURL', 'https://sqs.eu-west-1.amazonaws.com/1/{{queue}}'],
    ['aws-sqs-queue', 'awsRegion', '{{region}}'],
    ['prometheus', 'serverAddress', 'http://{{prom}}:9090'],
    ['prometheus', 'customHeaders', 'X-Scope-OrgID={{tenant}}'],
    ['metrics-api', 'url', 'http://api/{{path}}'],
    ['metrics-api', 'bearerToken', '{{t}}'],
    ['http-rate', 'service', '{{svc}}'],
  ] as const)(
    '%s: a placeholder in %s (a host, a URL or a credential) is refused naming the field',
    (type, key, value) => {
      const problem = refusal(() => placeholdersOf({ [key]: value }, PLACEHOLDER_REFUSED_PARAMS[type]));
      expect(problem.field).toBe(`spec.trigger.metadata.${key}`);
      expect(problem.message).toContain('picks a host, a URL or a credential');
    },
  );

  test('the same parameters written out are fine', () => {
    expect(
      placeholdersOf({ host: 'amqp://rabbit:5672', queueName: '{{queue}}' }, PLACEHOLDER_REFUSED_PARAMS.rabbitmq).size,
    ).toBe(1);
  });
});

describe('fillMetadata', () => {
  test.each([
    {
      metadata: { queueName: '{{queue}}', mode: 'QueueLength' },
      values: { queue: 'worker_tasks' },
      filled: { queueName: 'worker_tasks', mode: 'QueueLength' },
    },
    {
      metadata: { queueName: 'orders-{{ env }}-{{env}}' },
      values: { env: 'prod' },
      filled: { queueName: 'orders-prod-prod' },
    },
    { metadata: { queueName: '{{a}}.{{b}}' }, values: { a: 'x' }, filled: { queueName: 'x.{{b}}' } },
  ])('$metadata with $values', ({ metadata, values, filled }) => {
    expect(fillMetadata(metadata, values)).toStrictEqual(filled);
  });
});

describe('selectorValues: the HPA selector → one value per placeholder, or the 404 message', () => {
  const one = placeholdersOf({ queueName: '{{queue}}' });
  const two = placeholdersOf({ queueName: '{{env}}-{{queue}}' });
  const none = placeholdersOf({ queueName: 'orders' });
  const values = (selector: string, placeholders = one) =>
    selectorValues(parseSelector(selector), placeholders, 'shop/queue-messages-ready', 'queue_messages_ready');

  test.each([
    { selector: 'queue=worker_tasks', expected: { queue: 'worker_tasks' } },
    { selector: 'queue==worker_tasks', expected: { queue: 'worker_tasks' } },
    { selector: 'queue in (worker_tasks)', expected: { queue: 'worker_tasks' } },
    { selector: ' queue = worker_tasks ', expected: { queue: 'worker_tasks' } },
  ])('$selector → $expected', ({ selector, expected }) => {
    expect(values(selector)).toStrictEqual({ ok: true, values: expected });
  });

  test('two placeholders, any order', () => {
    expect(values('queue=a,env=prod', two)).toStrictEqual({ ok: true, values: { env: 'prod', queue: 'a' } });
  });

  test('no placeholders: the empty selector', () => {
    expect(values('', none)).toStrictEqual({ ok: true, values: {} });
  });

  test.each([
    {
      selector: '',
      says: 'the label selector gives no value for label "queue"; MetricSource shop/queue-messages-ready (metric queue_messages_ready) fills {{queue}} from the selector: give queue=<value>',
    },
    {
      selector: 'app=worker',
      says: 'the label selector names label "app", which is no placeholder of MetricSource shop/queue-messages-ready (metric queue_messages_ready); MetricSource shop/queue-messages-ready (metric queue_messages_ready) fills {{queue}} from the selector: give queue=<value>',
    },
    {
      selector: 'queue in (a,b)',
      says: 'label "queue" must be given exactly one value (queue=<value>) to fill {{queue}}: "in with 2 values" cannot',
    },
    {
      selector: 'queue!=a',
      says: 'label "queue" must be given exactly one value (queue=<value>) to fill {{queue}}: "!=" cannot',
    },
    { selector: 'queue notin (a)', says: '"notin" cannot' },
    { selector: 'queue', says: '"exists" cannot' },
    { selector: '!queue', says: '"does not exist" cannot' },
    { selector: 'queue>3', says: '">" cannot' },
    { selector: 'queue=a,queue=b', says: 'the label selector names label "queue" twice' },
    { selector: 'queue=', says: 'label "queue" has an empty value, which cannot fill {{queue}}' },
  ])('$selector is a 404 saying what is missing', ({ selector, says }) => {
    const answer = values(selector);
    expect(answer.ok).toBe(false);
    expect(answer.ok ? '' : answer.message).toContain(says);
  });

  test('two labels missing are both named', () => {
    const answer = values('', two);
    expect(answer.ok ? '' : answer.message).toContain('gives no value for labels "env", "queue"');
  });

  test('a MetricSource without placeholders says to send no selector', () => {
    const answer = values('queue=a', none);
    expect(answer.ok ? '' : answer.message).toContain('has no placeholders: ask for it with no label selector');
  });
});

describe('selectorKey and ScaledObject selectors', () => {
  test.each([
    [{ queue: 'a' }, 'queue=a'],
    [{ queue: 'a', env: 'prod' }, 'env=prod,queue=a'],
    [{}, ''],
  ])('%o → %s', (values, key) => {
    expect(selectorKey(values)).toBe(key);
  });

  test.each([
    ['scaledobject.sluice.dev/name=worker', true],
    ['queue=a', false],
    ['', false],
  ])('%s names a ScaledObject: %s', (selector, expected) => {
    expect(namesScaledObject(parseSelector(selector))).toBe(expected);
  });
});

describe('parseMetricSource', () => {
  test('the issue’s MetricSource, with the defaults filled in', () => {
    const { source, placeholders } = parseMetricSource(queueMessagesReady());
    expect(source.spec).toStrictEqual({
      metricName: 'queue_messages_ready',
      pollingInterval: 2,
      maxSelectors: DEFAULT_MAX_SELECTORS,
      selectorIdleSeconds: DEFAULT_SELECTOR_IDLE_S,
      trigger: {
        type: 'rabbitmq',
        authenticationRef: { name: 'rabbit', kind: 'TriggerAuthentication' },
        metadata: { queueName: '{{queue}}', mode: 'QueueLength' },
      },
    });
    expect([...placeholders.keys()]).toStrictEqual(['queue']);
  });

  test.each([
    { change: { type: 'cpu', metadata: { value: '50' } }, field: 'spec.trigger.type', says: 'a Resource metric' },
    { change: { type: 'kafka', metadata: {} }, field: 'spec.trigger.type', says: 'unknown trigger type "kafka"' },
    {
      change: { type: 'rabbitmq', metadata: { host: 'amqp://{{h}}', queueName: 'q' } },
      field: 'spec.trigger.metadata.host',
      says: 'picks a host',
    },
    {
      change: { type: 'rabbitmq', metadata: { queueName: 'q' }, name: 'x' },
      field: 'spec.trigger.name',
      says: 'unknown field',
    },
    {
      change: { type: 'rabbitmq', metadata: { queueName: 'q', mode: 'QueueLength', value: '30' } },
      field: 'spec.trigger.metadata.value',
      says: "the HPA's own target applies",
    },
    {
      change: { type: 'prometheus', metadata: { query: 'q', activationThreshold: '1' } },
      field: 'spec.trigger.metadata.activationThreshold',
      says: 'never scales from or to 0',
    },
  ])('$field: $says', ({ change, field, says }) => {
    const problem = refusal(() => parseMetricSource(withTrigger(change)));
    expect(problem.field).toBe(field);
    expect(problem.message).toContain(says);
  });

  test.each([
    { spec: { maxSelectors: 0 }, field: 'spec.maxSelectors' },
    { spec: { maxSelectors: 1001 }, field: 'spec.maxSelectors' },
    { spec: { selectorIdleSeconds: 4 }, field: 'spec.selectorIdleSeconds' },
    { spec: { metricName: 'a/b' }, field: 'spec.metricName' },
    { spec: { metricName: '' }, field: 'spec.metricName' },
  ])('bounds: $spec is refused at $field', ({ spec, field }) => {
    const source = queueMessagesReady();
    const problem = refusal(() => parseMetricSource({ ...source, spec: { ...(source['spec'] as object), ...spec } }));
    expect(problem.field).toBe(field);
  });
});

describe('examples/queue-messages-ready.yaml', () => {
  test('its MetricSource is the issue’s, and valid', async () => {
    const text = await readFile(new URL('../../../examples/queue-messages-ready.yaml', import.meta.url), 'utf8');
    const docs = parseAllDocuments(text).map((d) => d.toJS() as { kind?: string });
    const source = docs.find((d) => d.kind === 'MetricSource');
    expect(source).toStrictEqual(queueMessagesReady());
    expect([...parseMetricSource(source).placeholders.keys()]).toStrictEqual(['queue']);
  });
});
