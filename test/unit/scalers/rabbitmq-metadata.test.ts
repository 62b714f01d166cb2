import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../src/errors.ts';
import { createRabbitMqScaler, parseRabbitMqConfig } from '../../../src/scalers/rabbitmq.ts';
import type { TriggerInput } from '../../../src/scalers/scaler.ts';
import { triggerInput } from '../../support/trigger.ts';

function trigger(metadata: Record<string, string>, authParams: Record<string, string> = {}, index = 0): TriggerInput {
  return triggerInput({ type: 'rabbitmq', metadata, authParams, index });
}

const amqpHost = 'amqp://user:s3cret@broker:5672/';
const httpHost = 'http://user:s3cret@broker:15672/';

describe('rabbitmq metadata', () => {
  const accepted = [
    {
      comment: 'defaults: QueueLength with value 20, activation 0, protocol from the amqp scheme',
      metadata: { host: amqpHost, queueName: 'q' },
      expect: { protocol: 'amqp', target: 20, activationValue: 0, vhost: undefined, timeoutMs: 3000 },
    },
    {
      comment: 'http scheme selects the management API',
      metadata: { host: httpHost, queueName: 'q', mode: 'QueueLength', value: '10', activationValue: '5' },
      expect: { protocol: 'http', target: 10, activationValue: 5 },
    },
    {
      comment: 'amqps and https count as amqp and http',
      metadata: { host: 'amqps://b/', queueName: 'q' },
      expect: { protocol: 'amqp' },
    },
    { comment: 'https', metadata: { host: 'https://b/', queueName: 'q' }, expect: { protocol: 'http' } },
    {
      comment: 'explicit protocol that matches the scheme',
      metadata: { host: httpHost, queueName: 'q', protocol: 'http' },
      expect: { protocol: 'http' },
    },
    {
      comment: 'fractional value',
      metadata: { host: httpHost, queueName: 'q', mode: 'QueueLength', value: '2.5' },
      expect: { target: 2.5 },
    },
    {
      comment: 'vhostName overrides',
      metadata: { host: httpHost, queueName: 'q', vhostName: 'v1' },
      expect: { vhost: 'v1' },
    },
    {
      comment: 'http timeout in ms',
      metadata: { host: httpHost, queueName: 'q', timeout: '1500' },
      expect: { timeoutMs: 1500 },
    },
    {
      comment: 'values are trimmed',
      metadata: { host: ` ${httpHost} `, queueName: ' q ' },
      expect: { queueName: 'q' },
    },
    {
      comment: 'empty string counts as absent (default applies)',
      metadata: { host: httpHost, queueName: 'q', activationValue: '' },
      expect: { activationValue: 0 },
    },
  ];
  it.each(accepted)('accepts: $comment', ({ metadata, expect: expected }) => {
    expect(parseRabbitMqConfig(trigger(metadata))).toMatchObject(expected);
  });

  it('reads host from the scale target environment variable named by hostFromEnv', () => {
    const input = triggerInput({
      type: 'rabbitmq',
      metadata: { hostFromEnv: 'RABBIT_URL', queueName: 'q' },
      resolvedEnv: { RABBIT_URL: httpHost },
    });
    expect(parseRabbitMqConfig(input).protocol).toBe('http');
    // metadata wins over the environment
    const both = triggerInput({ ...input, metadata: { host: amqpHost, hostFromEnv: 'RABBIT_URL', queueName: 'q' } });
    expect(parseRabbitMqConfig(both).protocol).toBe('amqp');
  });

  it('rejects hostFromEnv naming a variable the container does not have, naming the field', () => {
    const input = triggerInput({ type: 'rabbitmq', metadata: { hostFromEnv: 'MISSING', queueName: 'q' } });
    expect(() => parseRabbitMqConfig(input)).toThrow(
      expect.objectContaining({ field: 'spec.triggers[0].metadata.hostFromEnv' }),
    );
  });

  it('reads host from the TriggerAuthentication parameters when metadata has none', () => {
    expect(parseRabbitMqConfig(trigger({ queueName: 'q' }, { host: httpHost })).protocol).toBe('http');
  });

  const rejected = [
    {
      comment: 'missing host',
      metadata: { queueName: 'q' },
      field: 'spec.triggers[0].metadata.host',
      message: /missing required/,
    },
    {
      comment: 'missing queueName',
      metadata: { host: amqpHost },
      field: 'spec.triggers[0].metadata.queueName',
      message: /missing required/,
    },
    {
      comment: 'unknown scheme',
      metadata: { host: 'ftp://b/', queueName: 'q' },
      field: 'spec.triggers[0].metadata.host',
      message: /unknown host URL scheme "ftp"/,
    },
    {
      comment: 'not a URL',
      metadata: { host: 'broker:5672', queueName: 'q' },
      field: 'spec.triggers[0].metadata.host',
      message: /scheme|URL/,
    },
    {
      comment: 'protocol contradicts scheme',
      metadata: { host: amqpHost, queueName: 'q', protocol: 'http' },
      field: 'spec.triggers[0].metadata.protocol',
      message: /does not match/,
    },
    {
      comment: 'unknown protocol',
      metadata: { host: amqpHost, queueName: 'q', protocol: 'mqtt' },
      field: 'spec.triggers[0].metadata.protocol',
      message: /must be one of/,
    },
    {
      comment: 'mode without value',
      metadata: { host: httpHost, queueName: 'q', mode: 'QueueLength' },
      field: 'spec.triggers[0].metadata.value',
      message: /together/,
    },
    {
      comment: 'value without mode',
      metadata: { host: httpHost, queueName: 'q', value: '5' },
      field: 'spec.triggers[0].metadata.mode',
      message: /together/,
    },
    {
      comment: 'unsupported mode',
      metadata: { host: httpHost, queueName: 'q', mode: 'Bogus', value: '5' },
      field: 'spec.triggers[0].metadata.mode',
      message: /must be one of/,
    },
    {
      comment: 'value not a number',
      metadata: { host: httpHost, queueName: 'q', mode: 'QueueLength', value: 'ten' },
      field: 'spec.triggers[0].metadata.value',
      message: /not a number/,
    },
    {
      comment: 'value zero',
      metadata: { host: httpHost, queueName: 'q', mode: 'QueueLength', value: '0' },
      field: 'spec.triggers[0].metadata.value',
      message: /greater than 0/,
    },
    {
      comment: 'hex is not a number',
      metadata: { host: httpHost, queueName: 'q', activationValue: '0x10' },
      field: 'spec.triggers[0].metadata.activationValue',
      message: /not a number/,
    },
    {
      comment: 'timeout with amqp',
      metadata: { host: amqpHost, queueName: 'q', timeout: '100' },
      field: 'spec.triggers[0].metadata.timeout',
      message: /only supported with the http/,
    },
    {
      comment: 'fractional timeout',
      metadata: { host: httpHost, queueName: 'q', timeout: '1.5' },
      field: 'spec.triggers[0].metadata.timeout',
      message: /whole number/,
    },
  ];
  it.each(rejected)('rejects: $comment', ({ metadata, field, message }) => {
    let caught: unknown;
    try {
      parseRabbitMqConfig(trigger(metadata));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    const err = caught as ValidationError;
    expect(err.field).toBe(field);
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain('s3cret');
  });

  it('names the metric as KEDA does: s<index>-rabbitmq-<escaped queue>', async () => {
    const cases = [
      { index: 0, queueName: 'sample', expected: 's0-rabbitmq-sample' },
      { index: 1, queueName: 'namespace/name', expected: 's1-rabbitmq-namespace-2Fname' },
      { index: 0, queueName: 'worker_tasks', expected: 's0-rabbitmq-worker_tasks' },
    ];
    for (const c of cases) {
      const scaler = createRabbitMqScaler(trigger({ host: httpHost, queueName: c.queueName }, {}, c.index));
      expect(scaler.metricName).toBe(c.expected);
      await scaler.close();
    }
  });
});
