// sluice's rule (src/scalers/metadata.ts pinAddress, docs/security.md#credentials): the credentials a
// TriggerAuthentication supplies are sent only to an address that TriggerAuthentication supplies too. Per scaler:
// rabbitmq `host` (and `oauthTokenURI`) and aws-sqs-queue `awsEndpoint` may then not be set in trigger metadata at
// all; prometheus `serverAddress` and metrics-api `url` may be set there only at or under the TriggerAuthentication's.
// Without credentials from a TriggerAuthentication, metadata sets addresses as in KEDA.
import { describe, expect, test } from 'vitest';
import { describeError, ValidationError } from '../../../src/errors.ts';
import { parseAwsSqsQueueConfig } from '../../../src/scalers/aws-sqs-queue.ts';
import { parseMetricsApiConfig } from '../../../src/scalers/metrics-api.ts';
import { parsePrometheusConfig } from '../../../src/scalers/prometheus.ts';
import { parseRabbitMqConfig } from '../../../src/scalers/rabbitmq.ts';
import { triggerInput } from '../../support/trigger.ts';

const META = 'spec.triggers[0].metadata';
const REF = 'spec.triggers[0].authenticationRef';
const SECRET = 'pinned-S3CRET-never-shown';

interface Row {
  comment: string;
  metadata: Record<string, string>;
  authParams?: Record<string, string>;
  resolvedEnv?: Record<string, string>;
}
interface Refused extends Row {
  field: string;
  message: RegExp;
}

function input(type: string, row: Row) {
  return triggerInput({
    type,
    metadata: row.metadata,
    authParams: row.authParams ?? {},
    resolvedEnv: row.resolvedEnv ?? {},
  });
}

function refusal(parse: () => unknown): ValidationError {
  try {
    parse();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    expect(describeError(err)).not.toContain(SECRET);
    return err as ValidationError;
  }
  throw new Error('accepted');
}

const RULE = /sluice sends a TriggerAuthentication's credentials only to the \w+ it gives too/;

describe('rabbitmq: with credentials from the TriggerAuthentication, host comes from it', () => {
  const parse = (row: Row) => parseRabbitMqConfig(input('rabbitmq', row));
  const accepted: (Row & { url: string; credentials?: unknown })[] = [
    {
      comment: 'host and username/password from the TriggerAuthentication; vhostName from metadata',
      metadata: { queueName: 'q', vhostName: 'orders' },
      authParams: { host: 'http://rabbit:15672/', username: 'u', password: SECRET },
      url: 'http://rabbit:15672/',
      credentials: { username: 'u', password: SECRET },
    },
    {
      comment: 'host with userinfo from the TriggerAuthentication (KEDA documentation pattern)',
      metadata: { queueName: 'q' },
      authParams: { host: `amqp://u:${SECRET}@rabbit:5672/vh` },
      url: 'amqp://rabbit:5672/vh',
    },
    {
      comment: 'host in metadata, no credentials from a TriggerAuthentication',
      metadata: { queueName: 'q', host: 'amqp://rabbit:5672/' },
      url: 'amqp://rabbit:5672/%2F',
    },
    {
      comment: 'host in metadata, the TriggerAuthentication gives no credential (vhostName only)',
      metadata: { queueName: 'q', host: 'http://rabbit:15672/' },
      authParams: { vhostName: 'orders' },
      url: 'http://rabbit:15672/',
    },
    {
      comment: 'hostFromEnv and credentials from the environment (no TriggerAuthentication): the workload owns both',
      metadata: { queueName: 'q', hostFromEnv: 'HOST', usernameFromEnv: 'USER', passwordFromEnv: 'PASS' },
      resolvedEnv: { HOST: 'amqp://rabbit:5672/', USER: 'u', PASS: SECRET },
      url: 'amqp://rabbit:5672/%2F',
    },
  ];
  test.each(accepted)('accepted: $comment', (row) => {
    const config = parse(row);
    expect(config.url.href).toBe(row.url);
    if (row.credentials !== undefined) expect(config.credentials).toStrictEqual(row.credentials);
  });

  const refused: Refused[] = [
    {
      comment: 'metadata host with username/password from the TriggerAuthentication',
      metadata: { queueName: 'q', host: 'http://attacker.example:15672/' },
      authParams: { username: 'u', password: SECRET },
      field: `${META}.host`,
      message:
        /^spec\.triggers\[0\]\.metadata\.host: must not be set in trigger metadata: the TriggerAuthentication supplies credentials \(username, password\), and sluice sends a TriggerAuthentication's credentials only to the host it gives too; put host in the TriggerAuthentication \(secretTargetRef or configMapTargetRef with parameter "host"\)$/,
    },
    {
      comment: 'metadata host overriding a TriggerAuthentication host that carries userinfo',
      metadata: { queueName: 'q', host: 'amqp://attacker.example:5672/' },
      authParams: { host: `amqp://u:${SECRET}@rabbit:5672/` },
      field: `${META}.host`,
      message: /credentials \(userinfo in host\)/,
    },
    {
      comment: 'metadata host with username/password and the host from the TriggerAuthentication too',
      metadata: { queueName: 'q', host: 'amqp://attacker.example:5672/' },
      authParams: { host: 'amqp://rabbit:5672/', username: 'u', password: SECRET },
      field: `${META}.host`,
      message: RULE,
    },
    {
      comment: 'hostFromEnv with credentials from the TriggerAuthentication',
      metadata: { queueName: 'q', hostFromEnv: 'HOST' },
      authParams: { username: 'u', password: SECRET },
      resolvedEnv: { HOST: 'amqp://attacker.example/' },
      field: `${META}.hostFromEnv`,
      message: /must not be set: the TriggerAuthentication supplies credentials \(username, password\)/,
    },
    {
      comment: 'metadata host with a client certificate from the TriggerAuthentication',
      metadata: { queueName: 'q', host: 'amqps://attacker.example:5671/' },
      authParams: { tls: 'enable', cert: 'PEM', key: SECRET },
      field: `${META}.host`,
      message: /credentials \(cert, key\)/,
    },
    {
      comment: 'metadata host with OAuth2 client credentials from the TriggerAuthentication',
      metadata: { queueName: 'q', host: 'https://attacker.example/' },
      authParams: { oauthTokenURI: 'https://idp/token', clientID: 'sluice', clientSecret: SECRET },
      field: `${META}.host`,
      message: /credentials \(clientID, clientSecret\)/,
    },
    {
      comment: 'metadata oauthTokenURI: the client secret would go to it',
      metadata: { queueName: 'q', oauthTokenURI: 'https://attacker.example/token' },
      authParams: { host: 'https://rabbit/', clientID: 'sluice', clientSecret: SECRET },
      field: `${META}.oauthTokenURI`,
      message: /only to the oauthTokenURI it gives too/,
    },
    {
      comment: 'credentials from the TriggerAuthentication and no host anywhere',
      metadata: { queueName: 'q' },
      authParams: { username: 'u', password: SECRET },
      field: REF,
      message: /the TriggerAuthentication supplies credentials \(username, password\) but no host/,
    },
  ];
  test.each(refused)('refused: $comment → $field', (row) => {
    const err = refusal(() => parse(row));
    expect(err.field).toBe(row.field);
    expect(err.message).toMatch(row.message);
  });
});

/** prometheus and metrics-api share the rule: metadata at or under the TriggerAuthentication's address. */
const HTTP_SCALERS = [
  {
    type: 'prometheus',
    address: 'serverAddress',
    base: { query: 'up', threshold: '1' },
    target: (row: Row) => {
      const endpoint = parsePrometheusConfig(input('prometheus', row)).endpoint;
      return `${endpoint.origin}${endpoint.pathname.replace(/\/api\/v1\/query$/, '')}`;
    },
  },
  {
    type: 'metrics-api',
    address: 'url',
    base: { valueLocation: 'v', targetValue: '1' },
    target: (row: Row) => {
      const url = parseMetricsApiConfig(input('metrics-api', row)).url;
      return `${url.origin}${url.pathname}`;
    },
  },
] as const;

describe.each(HTTP_SCALERS)(
  '$type: with credentials from the TriggerAuthentication, $address is at or under its own',
  ({ address, base, target }) => {
    const bearer = { bearerToken: SECRET };
    const row = (metadataAddress: string | undefined, authParams: Record<string, string>): Row => ({
      comment: '',
      metadata: {
        ...base,
        authModes: 'bearer',
        ...(metadataAddress === undefined ? {} : { [address]: metadataAddress }),
      },
      authParams,
    });

    const accepted: {
      comment: string;
      metadata?: string;
      ta?: string;
      modes?: Record<string, string>;
      reads: string;
    }[] = [
      {
        comment: 'only the TriggerAuthentication gives it',
        ta: 'https://gw.example/tenant-a',
        reads: 'https://gw.example/tenant-a',
      },
      {
        comment: 'metadata gives the same address',
        metadata: 'https://gw.example/tenant-a',
        ta: 'https://gw.example/tenant-a',
        reads: 'https://gw.example/tenant-a',
      },
      {
        comment: 'metadata narrows it to a path below',
        metadata: 'https://gw.example/tenant-a/v1/q',
        ta: 'https://gw.example/tenant-a',
        reads: 'https://gw.example/tenant-a/v1/q',
      },
      {
        comment: 'the TriggerAuthentication pins an origin: any path there (host case and default port normalized)',
        metadata: 'https://GW.example:443/anything',
        ta: 'https://gw.example',
        reads: 'https://gw.example/anything',
      },
    ];
    test.each(accepted)('accepted: $comment', ({ metadata, ta, reads }) => {
      const authParams = { ...bearer, ...(ta === undefined ? {} : { [address]: ta }) };
      expect(target(row(metadata, authParams))).toBe(reads);
    });

    test('accepted: without credentials from a TriggerAuthentication, metadata sets any address (as KEDA)', () => {
      expect(
        target({ comment: '', metadata: { ...base, [address]: 'http://anywhere.example:8080/x' }, authParams: {} }),
      ).toBe('http://anywhere.example:8080/x');
      expect(
        target({
          comment: '',
          metadata: { ...base, [address]: 'http://anywhere.example/x' },
          authParams: { [address]: 'https://gw.example/', ca: '' },
        }),
      ).toBe('http://anywhere.example/x');
    });

    const refused: { comment: string; metadata: string; ta?: string }[] = [
      { comment: 'another host', metadata: 'https://attacker.example/tenant-a', ta: 'https://gw.example/tenant-a' },
      { comment: 'another port', metadata: 'https://gw.example:8443/tenant-a', ta: 'https://gw.example/tenant-a' },
      { comment: 'another scheme', metadata: 'http://gw.example/tenant-a', ta: 'https://gw.example/tenant-a' },
      { comment: 'a sibling path', metadata: 'https://gw.example/tenant-b', ta: 'https://gw.example/tenant-a' },
      {
        comment: 'a path that only starts alike',
        metadata: 'https://gw.example/tenant-ab',
        ta: 'https://gw.example/tenant-a',
      },
      {
        comment: 'dot segments out of the path',
        metadata: 'https://gw.example/tenant-a/../tenant-b',
        ta: 'https://gw.example/tenant-a',
      },
      {
        comment: 'an encoded slash a proxy could decode',
        metadata: 'https://gw.example/tenant-a/..%2Ftenant-b',
        ta: 'https://gw.example/tenant-a',
      },
      {
        comment: 'an encoded dot segment',
        metadata: 'https://gw.example/tenant-a/%2e%2E%5ctenant-b',
        ta: 'https://gw.example/tenant-a',
      },
      {
        comment: 'userinfo that looks like the host',
        metadata: 'https://gw.example@attacker.example/tenant-a',
        ta: 'https://gw.example/tenant-a',
      },
    ];
    test.each(refused)('refused: $comment', ({ metadata, ta }) => {
      const err = refusal(() => target(row(metadata, { ...bearer, ...(ta === undefined ? {} : { [address]: ta }) })));
      expect(err.field).toBe(`${META}.${address}`);
      expect(err.message).toMatch(
        new RegExp(
          `^${META.replace(/[.[\]]/g, '\\$&')}\\.${address}: must be at or under the TriggerAuthentication's ${address} \\(same scheme, host and port`,
        ),
      );
      expect(err.message).toMatch(RULE);
    });

    // Every credential kind of KEDA's auth modes pins the address.
    const credentials: Record<string, string>[] = [
      { bearerToken: SECRET },
      { token: SECRET },
      { username: 'u', password: SECRET },
      { apiKey: SECRET },
      { customAuthHeader: 'X-Auth', customAuthValue: SECRET },
      { cert: 'PEM', key: SECRET },
    ];
    test.each(credentials)('refused: metadata %s with no address in the TriggerAuthentication', (authParams) => {
      const err = refusal(() =>
        target({ comment: '', metadata: { ...base, [address]: 'https://attacker.example/' }, authParams }),
      );
      expect(err.field).toBe(`${META}.${address}`);
      expect(err.message).toContain(
        `cannot be used: the TriggerAuthentication supplies credentials (${Object.keys(authParams).join(', ')}) but no ${address}`,
      );
      expect(err.message).toContain(`put ${address} in the TriggerAuthentication`);
    });

    test('refused: credentials from the TriggerAuthentication and no address anywhere → authenticationRef', () => {
      const err = refusal(() => target(row(undefined, bearer)));
      expect(err.field).toBe(REF);
      expect(err.message).toContain(`supplies credentials (bearerToken) but no ${address}`);
    });

    test("the TriggerAuthentication's address that is not a URL is named, not quoted", () => {
      const err = refusal(() => target(row('https://gw.example/', { ...bearer, [address]: `not a url ${SECRET}` })));
      expect(err.field).toBe(REF);
      expect(err.message).toBe(`${REF}: the TriggerAuthentication's ${address} is not a valid URL`);
    });
  },
);

describe('aws-sqs-queue: static keys from the TriggerAuthentication go only to its awsEndpoint', () => {
  const parse = (row: Row) => parseAwsSqsQueueConfig(input('aws-sqs-queue', row));
  const base = { queueURL: 'orders', awsRegion: 'eu-west-1' };
  const keys = { awsAccessKeyID: 'AKID', awsSecretAccessKey: SECRET };

  test('accepted: keys and awsEndpoint from the TriggerAuthentication; keys alone go to the region endpoint', () => {
    expect(
      parse({ comment: '', metadata: base, authParams: { ...keys, awsEndpoint: 'http://moto:4566' } }).endpoint,
    ).toBe('http://moto:4566');
    expect(parse({ comment: '', metadata: base, authParams: keys }).endpoint).toBeUndefined();
  });

  test('refused: awsEndpoint in metadata with keys from the TriggerAuthentication', () => {
    const err = refusal(() =>
      parse({ comment: '', metadata: { ...base, awsEndpoint: 'http://attacker.example' }, authParams: keys }),
    );
    expect(err.field).toBe(`${META}.awsEndpoint`);
    expect(err.message).toMatch(/credentials \(awsAccessKeyID, awsSecretAccessKey\)/);
    expect(err.message).toMatch(RULE);
  });
});
