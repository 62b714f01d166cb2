// The rabbitmq scaler's metadata: KEDA's testRabbitMQMetadata / testRabbitMQAuthParamData rows that apply, sluice's
// stricter rows (each says why), metric names and the mode table.
import { createPrivateKey } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { ValidationError } from '../../../src/errors.ts';
import {
  createRabbitMqScaler,
  evaluate,
  goQueryEscape,
  parseRabbitMqConfig,
  type RabbitMqConfig,
} from '../../../src/scalers/rabbitmq.ts';
import type { TriggerInput } from '../../../src/scalers/scaler.ts';
import { SharedPool } from '../../../src/scalers/shared.ts';
import { makeTestPki, type TestPki } from '../../support/pki.ts';
import { triggerInput } from '../../support/trigger.ts';
import { pinnedAddress } from '../../support/pinned-address.ts';

const amqpHost = 'amqp://user:s3cret@broker:5672/';
const httpHost = 'http://user:s3cret@broker:15672/';
/** KEDA's sampleRabbitMqResolvedEnv: `hostFromEnv: myHostSecret`. */
const resolvedEnv = {
  myHostSecret: 'amqp://user:s3cret@somehost.com:5236/vhost',
  RABBITMQ_USERNAME: 'env-user',
  RABBITMQ_PASSWORD: 'env-s3cret',
};

function trigger(metadata: Record<string, string>, authParams: Record<string, string> = {}, index = 0): TriggerInput {
  // The host is the TriggerAuthentication's when it supplies anything (test/support/pinned-address.ts).
  return triggerInput({ type: 'rabbitmq', ...pinnedAddress('host', 'move', metadata, authParams), resolvedEnv, index });
}

interface Row {
  comment: string;
  metadata: Record<string, string>;
  authParams?: Record<string, string>;
}
interface Accepted extends Row {
  expect: Partial<Record<keyof RabbitMqConfig, unknown>>;
}
interface Rejected extends Row {
  field: string;
  message: RegExp;
}

const m = 'spec.triggers[0].metadata';
const authRef = 'spec.triggers[0].authenticationRef';

describe('rabbitmq metadata', () => {
  const accepted: Accepted[] = [
    {
      comment: 'defaults: QueueLength with value 20, activation 0, protocol from the amqp scheme, vhost /',
      metadata: { host: amqpHost, queueName: 'q' },
      expect: { protocol: 'amqp', mode: 'QueueLength', target: 20, activationValue: 0, vhost: '/', timeoutMs: 3000 },
    },
    {
      comment: 'defaults for the regex parameters',
      metadata: { host: httpHost, queueName: 'q' },
      expect: { useRegex: false, operation: 'sum', pageSize: 100, excludeUnacknowledged: false, tls: undefined },
    },
    {
      comment: 'KEDA row: deprecated queueLength alone is QueueLength with that value',
      metadata: { queueLength: '10', queueName: 'sample', hostFromEnv: 'myHostSecret' },
      expect: { mode: 'QueueLength', target: 10, protocol: 'amqp', vhost: 'vhost' },
    },
    {
      comment: 'http scheme selects the management API',
      metadata: { host: httpHost, queueName: 'q', mode: 'QueueLength', value: '10', activationValue: '5' },
      expect: { protocol: 'http', target: 10, activationValue: 5 },
    },
    { comment: 'amqps counts as amqp', metadata: { host: 'amqps://b/', queueName: 'q' }, expect: { protocol: 'amqp' } },
    { comment: 'https counts as http', metadata: { host: 'https://b/', queueName: 'q' }, expect: { protocol: 'http' } },
    {
      comment: 'explicit protocol that matches the scheme',
      metadata: { host: httpHost, queueName: 'q', protocol: 'http' },
      expect: { protocol: 'http' },
    },
    {
      comment: 'KEDA row: protocol from the TriggerAuthentication',
      metadata: { host: httpHost, queueName: 'sample' },
      authParams: { protocol: 'http' },
      expect: { protocol: 'http' },
    },
    {
      comment: 'KEDA row: queue name with slashes',
      metadata: { queueLength: '10', queueName: 'namespace/name', hostFromEnv: 'myHostSecret' },
      expect: { queueName: 'namespace/name' },
    },
    {
      comment: 'fractional value',
      metadata: { host: httpHost, queueName: 'q', mode: 'QueueLength', value: '2.5' },
      expect: { target: 2.5 },
    },
    {
      comment: 'KEDA row: vhostName overrides the host path',
      metadata: { vhostName: 'myVhost', queueName: 'namespace/name', hostFromEnv: 'myHostSecret' },
      expect: { vhost: 'myVhost', url: new URL('amqp://somehost.com:5236/myVhost') },
    },
    {
      comment: 'KEDA row: empty vhostName counts as absent (the host path applies)',
      metadata: { vhostName: '', queueName: 'q', hostFromEnv: 'myHostSecret' },
      expect: { vhost: 'vhost' },
    },
    {
      comment: 'KEDA auth row: vhostName from the TriggerAuthentication',
      metadata: { queueName: 'q', hostFromEnv: 'myHostSecret' },
      authParams: { vhostName: 'myVhost' },
      expect: { vhost: 'myVhost' },
    },
    {
      comment: 'amqp vhost %2F is "/"',
      metadata: { host: 'amqp://b/%2F', queueName: 'q' },
      expect: { vhost: '/' },
    },
    {
      comment: 'http: the last path segment is the vhost, the rest a path prefix; credentials leave the URL',
      metadata: { host: 'http://u:p@b:15672/rabbit/api-proxy/v%2F1', queueName: 'q' },
      expect: {
        vhost: 'v/1',
        url: new URL('http://b:15672/rabbit/api-proxy'),
        credentials: { username: 'u', password: 'p' },
      },
    },
    {
      comment: 'percent-encoded URL credentials are decoded',
      metadata: { host: 'http://us%40r:p%3Ass@b/', queueName: 'q' },
      expect: { credentials: { username: 'us@r', password: 'p:ss' } },
    },
    {
      comment: 'no credentials anywhere',
      metadata: { host: 'http://b/', queueName: 'q' },
      expect: { credentials: undefined },
    },
    {
      comment: 'KEDA row: MessageRate over http',
      metadata: { mode: 'MessageRate', value: '1000', queueName: 'sample', host: 'http://b/' },
      expect: { mode: 'MessageRate', target: 1000 },
    },
    {
      comment: 'KEDA row: MessageRate over https',
      metadata: { mode: 'MessageRate', value: '1000', queueName: 'sample', host: 'https://b/' },
      expect: { mode: 'MessageRate' },
    },
    {
      comment: 'DeliverGetRate over http',
      metadata: { mode: 'DeliverGetRate', value: '3', queueName: 'sample', host: 'http://b/' },
      expect: { mode: 'DeliverGetRate', target: 3 },
    },
    {
      comment: 'KEDA row: QueueLength over amqps',
      metadata: { mode: 'QueueLength', value: '20', queueName: 'sample', host: 'amqps://b/' },
      expect: { mode: 'QueueLength', protocol: 'amqp' },
    },
    {
      comment: 'KEDA row: useRegex over http',
      metadata: { queueName: 'sample', host: 'http://b/', useRegex: 'true' },
      expect: { useRegex: true, operation: 'sum', pageSize: 100 },
    },
    {
      comment: 'KEDA row: MessageRate with useRegex',
      metadata: { mode: 'MessageRate', value: '1000', queueName: 'sample', host: 'http://b/', useRegex: 'true' },
      expect: { useRegex: true, mode: 'MessageRate' },
    },
    {
      comment: 'KEDA row: an unknown key (metricName) is ignored',
      metadata: { mode: 'QueueLength', value: '1000', queueName: 's', host: 'http://b/', metricName: 'host1-sample' },
      expect: { target: 1000 },
    },
    {
      comment: 'useRegex with operation avg and pageSize (KEDA row: valid pageSize)',
      metadata: { queueName: '^q-', host: 'http://b/', useRegex: 'true', operation: 'avg', pageSize: '2' },
      expect: { operation: 'avg', pageSize: 2 },
    },
    {
      comment: 'operation max, pageSize 500 (the API limit)',
      metadata: { queueName: '^q-', host: 'http://b/', useRegex: 'true', operation: 'max', pageSize: '500' },
      expect: { operation: 'max', pageSize: 500 },
    },
    {
      comment: 'KEDA row: excludeUnacknowledged over http',
      metadata: { queueName: 'q', host: 'http://b/', useRegex: 'true', excludeUnacknowledged: 'true' },
      expect: { excludeUnacknowledged: true },
    },
    {
      comment: 'KEDA row: http timeout in ms',
      metadata: { host: httpHost, queueName: 'q', timeout: '1000' },
      expect: { timeoutMs: 1000 },
    },
    {
      comment: 'timeout as a Go duration',
      metadata: { host: httpHost, queueName: 'q', timeout: '1.5s' },
      expect: { timeoutMs: 1500 },
    },
    {
      comment: 'KEDA row: activationValue',
      metadata: { activationValue: '10', queueLength: '20', queueName: 'sample', hostFromEnv: 'myHostSecret' },
      expect: { activationValue: 10, target: 20 },
    },
    {
      comment: 'KEDA row: unsafeSsl true (https) turns off verification',
      metadata: { queueName: 'sample', host: 'https://b/', unsafeSsl: 'true' },
      expect: { tls: {}, unsafeSsl: true },
    },
    {
      comment: 'https verifies by default (system CAs)',
      metadata: { queueName: 'sample', host: 'https://b/' },
      expect: { tls: {}, unsafeSsl: false },
    },
    {
      comment: 'KEDA auth row: username and password from the TriggerAuthentication override the URL',
      metadata: { queueName: 'q', host: httpHost },
      authParams: { username: 'user', password: 'PASSWORD' },
      expect: { credentials: { username: 'user', password: 'PASSWORD' } },
    },
    {
      comment: 'KEDA auth row: username and password from the environment',
      metadata: {
        queueName: 'q',
        hostFromEnv: 'myHostSecret',
        usernameFromEnv: 'RABBITMQ_USERNAME',
        passwordFromEnv: 'RABBITMQ_PASSWORD',
      },
      expect: { credentials: { username: 'env-user', password: 'env-s3cret' } },
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
    {
      comment: 'KEDA auth row: tls disable is the default spelled out',
      metadata: { host: 'amqps://b/', queueName: 'q' },
      authParams: { tls: 'disable' },
      expect: { tls: {} },
    },
  ];
  it.each(accepted)('accepts: $comment', ({ metadata, authParams, expect: expected }) => {
    expect(parseRabbitMqConfig(trigger(metadata, authParams))).toMatchObject(expected);
  });

  it('reads host from the scale target environment variable named by hostFromEnv; metadata wins', () => {
    expect(parseRabbitMqConfig(trigger({ hostFromEnv: 'myHostSecret', queueName: 'q' })).protocol).toBe('amqp');
    const both = trigger({ host: httpHost, hostFromEnv: 'myHostSecret', queueName: 'q' });
    expect(parseRabbitMqConfig(both).protocol).toBe('http');
  });

  it('reads host from the TriggerAuthentication parameters when metadata has none', () => {
    expect(parseRabbitMqConfig(trigger({ queueName: 'q' }, { host: httpHost })).protocol).toBe('http');
  });

  const rejected: Rejected[] = [
    { comment: 'KEDA row: nothing passed', metadata: {}, field: `${m}.host`, message: /missing required/ },
    {
      comment: 'KEDA row: missing host',
      metadata: { queueLength: '10', queueName: 'sample' },
      field: `${m}.host`,
      message: /missing required/,
    },
    {
      comment: 'KEDA row: missing queueName',
      metadata: { queueLength: '10', hostFromEnv: 'myHostSecret' },
      field: `${m}.queueName`,
      message: /missing required/,
    },
    {
      comment: 'KEDA row: host in authParams, still no queueName',
      metadata: { queueLength: '10' },
      authParams: { host: httpHost },
      field: `${m}.queueName`,
      message: /missing required/,
    },
    {
      comment: 'KEDA row: malformed queueLength',
      metadata: { queueLength: 'AA', queueName: 'sample', hostFromEnv: 'myHostSecret' },
      field: `${m}.queueLength`,
      message: /not a number/,
    },
    {
      comment: 'KEDA row: auto protocol and a bad URL scheme',
      metadata: { queueName: 'sample', host: 'something://' },
      field: `${m}.host`,
      message: /unknown host URL scheme "something"/,
    },
    {
      comment: 'not a URL (KEDA accepts any host string with an explicit protocol; sluice needs a URL)',
      metadata: { queueName: 'sample', host: 'myHostSecret', protocol: 'http', queueLength: '10' },
      field: `${m}.host`,
      message: /not a valid URL/,
    },
    {
      comment: 'a URL without a host (KEDA accepts "http://" when parsing)',
      metadata: { queueName: 'sample', host: 'http://' },
      field: `${m}.host`,
      message: /not a valid URL/,
    },
    {
      comment: 'protocol contradicts scheme (KEDA trusts the protocol)',
      metadata: { host: amqpHost, queueName: 'q', protocol: 'http' },
      field: `${m}.protocol`,
      message: /does not match/,
    },
    {
      comment: 'protocol from the TriggerAuthentication contradicts the scheme (KEDA row accepts it)',
      metadata: { queueName: 'sample', hostFromEnv: 'myHostSecret' },
      authParams: { protocol: 'http' },
      field: `${m}.protocol`,
      message: /does not match/,
    },
    {
      comment: 'unknown protocol',
      metadata: { host: amqpHost, queueName: 'q', protocol: 'mqtt' },
      field: `${m}.protocol`,
      message: /must be one of/,
    },
    {
      comment: 'KEDA row: queueLength and mode',
      metadata: { queueLength: '10', mode: 'QueueLength', queueName: 'sample', host: 'https://b/' },
      field: `${m}.queueLength`,
      message: /deprecated/,
    },
    {
      comment: 'KEDA row: queueLength and value',
      metadata: { queueLength: '10', value: '20', queueName: 'sample', host: 'https://b/' },
      field: `${m}.queueLength`,
      message: /deprecated/,
    },
    {
      comment: 'KEDA row: queueLength, mode and value',
      metadata: { queueLength: '10', mode: 'QueueLength', value: '20', queueName: 'sample', host: 'https://b/' },
      field: `${m}.queueLength`,
      message: /deprecated/,
    },
    {
      comment: 'KEDA row: only mode',
      metadata: { host: httpHost, queueName: 'q', mode: 'QueueLength' },
      field: `${m}.value`,
      message: /together/,
    },
    {
      comment: 'KEDA row: only value',
      metadata: { host: httpHost, queueName: 'q', value: '5' },
      field: `${m}.mode`,
      message: /together/,
    },
    {
      comment: 'KEDA row: invalid mode',
      metadata: { host: httpHost, queueName: 'q', mode: 'Feelings', value: '20' },
      field: `${m}.mode`,
      message: /must be one of QueueLength, MessageRate, DeliverGetRate/,
    },
    {
      comment: 'PublishedToDeliveredRatio is not supported (yet)',
      metadata: { host: httpHost, queueName: 'q', mode: 'PublishedToDeliveredRatio', value: '1' },
      field: `${m}.mode`,
      message: /must be one of/,
    },
    {
      comment: 'KEDA row: invalid value',
      metadata: { host: httpHost, queueName: 'q', mode: 'QueueLength', value: 'lots' },
      field: `${m}.value`,
      message: /not a number/,
    },
    {
      comment: 'value zero',
      metadata: { host: httpHost, queueName: 'q', mode: 'QueueLength', value: '0' },
      field: `${m}.value`,
      message: /greater than 0/,
    },
    {
      comment: 'hex is not a number',
      metadata: { host: httpHost, queueName: 'q', activationValue: '0x10' },
      field: `${m}.activationValue`,
      message: /not a number/,
    },
    {
      comment: 'KEDA row: malformed activationValue',
      metadata: { activationValue: 'AA', queueLength: '10', queueName: 'sample', hostFromEnv: 'myHostSecret' },
      field: `${m}.activationValue`,
      message: /not a number/,
    },
    {
      comment: 'KEDA row: MessageRate over amqps',
      metadata: { mode: 'MessageRate', value: '1000', queueName: 'sample', host: 'amqps://b/' },
      field: `${m}.mode`,
      message: /mode MessageRate needs the management API/,
    },
    {
      comment: 'KEDA row: MessageRate over amqp',
      metadata: { mode: 'MessageRate', value: '1000', queueName: 'sample', host: 'amqp://b/' },
      field: `${m}.mode`,
      message: /needs the management API/,
    },
    {
      comment: 'DeliverGetRate over amqp',
      metadata: { mode: 'DeliverGetRate', value: '1', queueName: 'sample', host: 'amqp://b/' },
      field: `${m}.mode`,
      message: /mode DeliverGetRate needs the management API/,
    },
    {
      comment: 'KEDA row: useRegex over amqps',
      metadata: { queueName: 'sample', host: 'amqps://b/', useRegex: 'true' },
      field: `${m}.useRegex`,
      message: /needs the management API/,
    },
    {
      comment: 'KEDA row: excludeUnacknowledged over amqp',
      metadata: {
        mode: 'QueueLength',
        value: '1000',
        queueName: 'sample',
        host: 'amqp://b/',
        excludeUnacknowledged: 'true',
      },
      field: `${m}.excludeUnacknowledged`,
      message: /needs the management API/,
    },
    {
      comment: 'KEDA row: timeout with amqp',
      metadata: { mode: 'QueueLength', value: '1000', queueName: 'sample', host: 'amqp://b/', timeout: '10' },
      field: `${m}.timeout`,
      message: /needs the management API/,
    },
    {
      comment: 'timeout with amqp on the default path too (KEDA only checks with mode + value)',
      metadata: { host: amqpHost, queueName: 'q', timeout: '100' },
      field: `${m}.timeout`,
      message: /needs the management API/,
    },
    {
      comment: 'KEDA row: negative timeout',
      metadata: { mode: 'QueueLength', value: '1000', queueName: 'sample', host: 'http://b/', timeout: '-10' },
      field: `${m}.timeout`,
      message: /not a duration|negative/,
    },
    {
      comment: 'KEDA row: timeout that is not a duration',
      metadata: { mode: 'QueueLength', value: '1000', queueName: 'sample', host: 'http://b/', timeout: 'error' },
      field: `${m}.timeout`,
      message: /not a duration/,
    },
    {
      comment: 'timeout 0 (KEDA: the global default)',
      metadata: { host: httpHost, queueName: 'q', timeout: '0' },
      field: `${m}.timeout`,
      message: /at least/,
    },
    {
      comment: 'KEDA row: pageSize less than 1',
      metadata: { queueName: 'sample', host: 'http://b/', useRegex: 'true', pageSize: '-1' },
      field: `${m}.pageSize`,
      message: /at least 1/,
    },
    {
      comment: 'pageSize 0',
      metadata: { queueName: 'sample', host: 'http://b/', useRegex: 'true', pageSize: '0' },
      field: `${m}.pageSize`,
      message: /at least 1/,
    },
    {
      comment: 'KEDA row: pageSize not a number',
      metadata: { queueName: 'sample', host: 'http://b/', useRegex: 'true', pageSize: 'a' },
      field: `${m}.pageSize`,
      message: /not a number/,
    },
    {
      comment: 'pageSize above the management API limit of 500',
      metadata: { queueName: 'sample', host: 'http://b/', useRegex: 'true', pageSize: '501' },
      field: `${m}.pageSize`,
      message: /at most 500/,
    },
    {
      comment: 'fractional pageSize',
      metadata: { queueName: 'sample', host: 'http://b/', useRegex: 'true', pageSize: '2.5' },
      field: `${m}.pageSize`,
      message: /whole number/,
    },
    {
      comment: 'pageSize without useRegex (KEDA ignores it)',
      metadata: { queueName: 'sample', host: 'http://b/', pageSize: '10' },
      field: `${m}.pageSize`,
      message: /only applies with useRegex/,
    },
    {
      comment: 'operation without useRegex (KEDA ignores it)',
      metadata: { queueName: 'sample', host: 'http://b/', operation: 'max' },
      field: `${m}.operation`,
      message: /only applies with useRegex/,
    },
    {
      comment: 'unknown operation',
      metadata: { queueName: 'sample', host: 'http://b/', useRegex: 'true', operation: 'median' },
      field: `${m}.operation`,
      message: /must be one of sum, avg, max/,
    },
    {
      comment: 'KEDA row: unsafeSsl not a boolean',
      metadata: { queueName: 'sample', host: 'https://b/', unsafeSsl: 'random' },
      field: `${m}.unsafeSsl`,
      message: /not a boolean/,
    },
    {
      comment: 'useRegex not a boolean',
      metadata: { queueName: 'sample', host: 'http://b/', useRegex: 'yes' },
      field: `${m}.useRegex`,
      message: /not a boolean/,
    },
    {
      comment: 'KEDA auth row: username without password',
      metadata: { queueName: 'q', host: resolvedEnv.myHostSecret },
      authParams: { username: 'user' },
      field: authRef,
      message: /"username" and "password" must be given together/,
    },
    {
      comment: 'KEDA auth row: password without username',
      metadata: { queueName: 'q', host: resolvedEnv.myHostSecret },
      authParams: { password: 'PASSWORD' },
      field: authRef,
      message: /together/,
    },
    {
      comment: 'KEDA auth row: usernameFromEnv without password',
      metadata: { queueName: 'q', hostFromEnv: 'myHostSecret', usernameFromEnv: 'RABBITMQ_USERNAME' },
      field: `${m}.usernameFromEnv`,
      message: /together/,
    },
    {
      comment: 'KEDA auth row: passwordFromEnv without username',
      metadata: { queueName: 'q', hostFromEnv: 'myHostSecret', passwordFromEnv: 'RABBITMQ_PASSWORD' },
      field: `${m}.passwordFromEnv`,
      message: /together/,
    },
    {
      comment: 'passwordFromEnv naming a variable the container lacks',
      metadata: { queueName: 'q', host: httpHost, usernameFromEnv: 'RABBITMQ_USERNAME', passwordFromEnv: 'NOPE' },
      field: `${m}.passwordFromEnv`,
      message: /no environment variable "NOPE"/,
    },
    {
      comment: 'password written in trigger metadata (KEDA ignores it there)',
      metadata: { queueName: 'q', host: httpHost, username: 'user', password: 's3cret' },
      field: `${m}.username`,
      message: /must come from a TriggerAuthentication or usernameFromEnv/,
    },
    {
      comment: 'tls written in trigger metadata (KEDA ignores it there)',
      metadata: { queueName: 'q', host: 'https://b/', tls: 'enable' },
      field: `${m}.tls`,
      message: /must come from a TriggerAuthentication, not from trigger metadata/,
    },
    {
      comment: 'KEDA auth row: tls is neither enable nor disable',
      metadata: { queueName: 'q', host: 'amqps://b/' },
      authParams: { tls: 'yes' },
      field: `${m}.tls`,
      message: /must be one of enable, disable/,
    },
    {
      comment: 'tls enable with a plain amqp:// host (KEDA silently connects in plain text)',
      metadata: { queueName: 'q', hostFromEnv: 'myHostSecret' },
      authParams: { tls: 'enable' },
      field: authRef,
      message: /needs an amqps:\/\/ or https:\/\/ host, not amqp:\/\//,
    },
    {
      comment: 'tls enable with a plain http:// host',
      metadata: { queueName: 'q', host: 'http://b/' },
      authParams: { tls: 'enable' },
      field: authRef,
      message: /not http:\/\//,
    },
    {
      comment: 'ca without tls enable (KEDA ignores it)',
      metadata: { queueName: 'q', host: 'https://b/' },
      authParams: { ca: 'PEM' },
      field: authRef,
      message: /"ca" is only used with tls "enable"/,
    },
    {
      comment: 'KEDA auth row: Azure workload identity is not supported yet',
      metadata: { queueName: 'q', host: 'http://b/' },
      authParams: { workloadIdentityResource: 'rabbitmq-resource-id' },
      field: authRef,
      message: /"workloadIdentityResource" .*not supported/,
    },
    {
      comment: 'URL credentials that are not valid percent-encoding',
      metadata: { queueName: 'q', host: 'http://user:s3cret%zz@b/' },
      field: `${m}.host`,
      message: /not valid percent-encoding/,
    },
  ];
  it.each(rejected)('rejects: $comment', ({ metadata, authParams, field, message }) => {
    const err = rejection(() => parseRabbitMqConfig(trigger(metadata, authParams)));
    expect(err.field).toBe(field);
    expect(err.message).toMatch(message);
    for (const secret of ['s3cret', 'PASSWORD', 'env-s3cret']) expect(err.message).not.toContain(secret);
  });

  describe('TLS material from the TriggerAuthentication (parsed when the scaler is built)', () => {
    let pki: TestPki;
    beforeAll(() => {
      pki = makeTestPki();
    });
    const tlsTrigger = (authParams: Record<string, string>, host = 'amqps://b:5671/') =>
      trigger({ queueName: 'q', host }, { tls: 'enable', ...authParams });

    it('KEDA auth rows: ca + cert + key; cert + key (public CA); ca only; encrypted key with keyPassword', () => {
      const all = parseRabbitMqConfig(tlsTrigger({ ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey }));
      // Values are trimmed like every parameter.
      expect(all.tls).toEqual({ ca: pki.caCert.trim(), cert: pki.clientCert.trim(), key: pki.clientKey.trim() });
      expect(all.unsafeSsl).toBe(false);
      const noCa = parseRabbitMqConfig(tlsTrigger({ cert: pki.clientCert, key: pki.clientKey }));
      expect(noCa.tls).not.toHaveProperty('ca');
      const caOnly = parseRabbitMqConfig(tlsTrigger({ ca: pki.caCert }, 'https://b/'));
      expect(caOnly.tls).toEqual({ ca: pki.caCert.trim() });
      const encrypted = parseRabbitMqConfig(
        tlsTrigger({ cert: pki.clientCert, key: pki.clientKeyEncrypted, keyPassword: pki.clientKeyPassword }),
      );
      // Decrypted when built: the key handed to TLS is a plain PKCS#8 key, equal to the unencrypted one.
      expect(encrypted.tls?.key).toMatch(/^-----BEGIN PRIVATE KEY-----/);
      expect(createPrivateKey(encrypted.tls?.key ?? '').equals(createPrivateKey(pki.clientKey))).toBe(true);
      // A CA bundle of several certificates.
      const bundle = parseRabbitMqConfig(tlsTrigger({ ca: `${pki.caCert}\n${pki.otherCaCert}` }));
      expect(bundle.tls?.ca).toContain('BEGIN CERTIFICATE');
    });

    it('rejects bad TLS material without echoing it', () => {
      const rows: { comment: string; authParams: Record<string, string>; message: RegExp }[] = [
        { comment: 'KEDA row placeholder ca', authParams: { ca: 'caaa' }, message: /"ca" is not a PEM certificate/ },
        {
          comment: 'KEDA row: placeholders for all three',
          authParams: { ca: 'caaa', cert: 'ceert', key: 'keey' },
          message: /"ca" is not a PEM certificate/,
        },
        {
          comment: 'KEDA row: missing cert',
          authParams: { ca: pki.caCert, key: pki.clientKey },
          message: /"cert" and "key" must be given together/,
        },
        {
          comment: 'KEDA row: missing key',
          authParams: { ca: pki.caCert, cert: pki.clientCert },
          message: /"cert" and "key" must be given together/,
        },
        {
          comment: 'a certificate block whose body is garbage',
          authParams: { ca: '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n' },
          message: /"ca": certificate 1 of 1 does not parse/,
        },
        {
          comment: 'a key that is not a key',
          authParams: { cert: pki.clientCert, key: 'keey' },
          message: /"key" is not a PEM private key/,
        },
        {
          comment: 'an encrypted key without keyPassword',
          authParams: { cert: pki.clientCert, key: pki.clientKeyEncrypted },
          message: /needs "keyPassword"/,
        },
        {
          comment: 'a wrong keyPassword',
          authParams: { cert: pki.clientCert, key: pki.clientKeyEncrypted, keyPassword: 'wrong-pass-123' },
          message: /"keyPassword" is wrong/,
        },
        {
          comment: 'a key that belongs to another certificate',
          authParams: { cert: pki.clientCert, key: pki.serverKey },
          message: /does not belong to the certificate/,
        },
        {
          comment: 'keyPassword without key',
          authParams: { ca: pki.caCert, keyPassword: 'x' },
          message: /"keyPassword" is only used with "key"/,
        },
      ];
      for (const row of rows) {
        const err = rejection(() => parseRabbitMqConfig(tlsTrigger(row.authParams)), row.comment);
        expect(err.field, row.comment).toBe(authRef);
        expect(err.message, row.comment).toMatch(row.message);
        expect(err.message, row.comment).not.toMatch(/PRIVATE KEY|wrong-pass-123|key-pass-4711/);
      }
    });
  });

  it('names the metric as KEDA does: s<index>-rabbitmq-<QueryEscape(queue)>, normalized', () => {
    const cases = [
      { index: 0, queueName: 'sample', expected: 's0-rabbitmq-sample' },
      { index: 1, queueName: 'namespace/name', expected: 's1-rabbitmq-namespace-2Fname' },
      { index: 0, queueName: 'worker_tasks', expected: 's0-rabbitmq-worker_tasks' },
      // Go's QueryEscape: space is "+", and ! * ' ( ) are escaped (encodeURIComponent leaves them).
      { index: 0, queueName: 'a b', expected: 's0-rabbitmq-a+b' },
      { index: 2, queueName: '^pgx-.*', expected: 's2-rabbitmq--5Epgx---2A' },
      { index: 0, queueName: "q(1)!'~", expected: 's0-rabbitmq-q-281-29-21-27~' },
    ];
    for (const c of cases) {
      const scaler = createRabbitMqScaler(trigger({ host: httpHost, queueName: c.queueName }, {}, c.index));
      expect(scaler.metricName).toBe(c.expected);
      expect(scaler.target).toBe(20);
    }
    expect(goQueryEscape('a/b c')).toBe('a%2Fb+c');
  });

  it('builds, and opens a reader, without touching the network (a host nothing listens on)', async () => {
    const pool = new SharedPool();
    const scaler = createRabbitMqScaler(trigger({ host: 'amqp://u:p@127.0.0.1:1/', queueName: 'q' }));
    // Opening leases the shared connection object but does not connect: closing it releases the lease.
    const reader = scaler.open(pool);
    expect([...pool.held().keys()]).toEqual([expect.stringMatching(/^amqp\|/)]);
    await reader.close();
    expect(pool.held().size).toBe(0);
  });
});

describe('rabbitmq modes: value and activity (KEDA GetMetricsAndActivity)', () => {
  const rows = [
    { mode: 'QueueLength', count: 4, rate: undefined, act: 0, value: 4, active: true },
    { mode: 'QueueLength', count: 0, rate: undefined, act: 0, value: 0, active: false },
    { mode: 'QueueLength', count: 5, rate: undefined, act: 5, value: 5, active: false },
    { mode: 'MessageRate', count: 0, rate: 1.4, act: 0, value: 1.4, active: true },
    { mode: 'MessageRate', count: 4, rate: 0, act: 0, value: 0, active: true }, // messages > act
    { mode: 'MessageRate', count: 0, rate: 0, act: 0, value: 0, active: false },
    { mode: 'MessageRate', count: 3, rate: 2, act: 3, value: 2, active: false },
    { mode: 'DeliverGetRate', count: 30, rate: 1, act: 0, value: 1, active: true },
    { mode: 'DeliverGetRate', count: 30, rate: 0, act: 0, value: 0, active: false }, // messages do not count
    { mode: 'DeliverGetRate', count: 0, rate: 2.5, act: 2.5, value: 2.5, active: false },
  ] as const;
  it.each(rows)('$mode count $count rate $rate act $act → $value, active $active', (r) => {
    expect(evaluate(r.mode, { count: r.count, rate: r.rate }, r.act)).toEqual({ value: r.value, active: r.active });
  });
  it('a rate mode without a rate is an error, not 0', () => {
    expect(() => evaluate('DeliverGetRate', { count: 1, rate: undefined }, 0)).toThrow(/no rate/);
  });
});

function rejection(fn: () => unknown, comment = ''): ValidationError {
  try {
    fn();
  } catch (err) {
    expect(err, comment).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error(`expected a ValidationError ${comment}`);
}
