import { beforeAll, describe, expect, it } from 'vitest';
import { ScalerError, ValidationError, describeError } from '../../../src/errors.ts';
import { parseSelector } from '../../../src/scalers/exposition.ts';
import {
  createMetricsApiScaler,
  parseJsonPath,
  parseMetricsApiConfig,
  valueAtJsonPath,
  valueFromExposition,
} from '../../../src/scalers/metrics-api.ts';
import { createScaler } from '../../../src/scalers/registry.ts';
import { makeTestPki, type TestPki } from '../../support/pki.ts';
import { triggerInput, expectValidationError } from '../../support/trigger.ts';
import { pinnedAddress } from '../../support/pinned-address.ts';

const META = 'spec.triggers[0].metadata';
const AUTH_REF = 'spec.triggers[0].authenticationRef';
const SECRET = 's3cret-api-key';
const URL_ = 'http://dummy:1230/api/v1/';

function trigger(metadata: Record<string, string>, authParams: Record<string, string> = {}, index = 0) {
  // The address is also the TriggerAuthentication's when it supplies anything (test/support/pinned-address.ts).
  return triggerInput({ type: 'metrics-api', ...pinnedAddress('url', 'copy', metadata, authParams), index });
}
const ok = { url: URL_, valueLocation: 'metric', targetValue: '42' };

let pki: TestPki;
beforeAll(() => {
  pki = makeTestPki();
});

describe('metrics-api metadata (KEDA testMetricsAPIMetadata)', () => {
  const accepted = [
    {
      comment: 'KEDA row: OK; defaults',
      metadata: { url: URL_, valueLocation: 'metric.test', targetValue: '42' },
      expect: {
        targetValue: 42,
        activationTargetValue: 0,
        unsafeSsl: false,
        timeoutMs: 3000,
        valueLocation: 'metric.test',
      },
      format: 'json',
    },
    {
      comment: 'activationTargetValue',
      metadata: { ...ok, activationTargetValue: '20' },
      expect: { activationTargetValue: 20 },
    },
    { comment: 'fractional targetValue', metadata: { ...ok, targetValue: '0.5' }, expect: { targetValue: 0.5 } },
    {
      comment: 'format prometheus',
      metadata: { ...ok, format: 'prometheus', valueLocation: 'up{job="a"}' },
      expect: {},
      format: 'prometheus',
    },
    { comment: 'format json explicitly', metadata: { ...ok, format: 'json' }, expect: {}, format: 'json' },
    { comment: 'timeout in ms', metadata: { ...ok, timeout: '500' }, expect: { timeoutMs: 500 } },
    { comment: 'timeout as a duration', metadata: { ...ok, timeout: '2s' }, expect: { timeoutMs: 2000 } },
    { comment: 'KEDA auth row: unsafeSsl true', metadata: { ...ok, unsafeSsl: 'true' }, expect: { unsafeSsl: true } },
    {
      comment: 'KEDA auth row: unsafeSsl false',
      metadata: { ...ok, unsafeSsl: 'false' },
      expect: { unsafeSsl: false },
    },
    {
      comment: 'aggregateFromKubeServiceEndpoints false is accepted',
      metadata: { ...ok, aggregateFromKubeServiceEndpoints: 'false', aggregationType: 'sum' },
      expect: {},
    },
    { comment: 'https URL with a query string', metadata: { ...ok, url: 'https://h/m?x=1' }, expect: {} },
  ];
  it.each(accepted)('accepts: $comment', ({ metadata, expect: want, format }) => {
    const config = parseMetricsApiConfig(trigger(metadata));
    expect(config).toMatchObject(want);
    if (format !== undefined) expect(config.location.format).toBe(format);
  });

  const rejected = [
    { comment: 'KEDA row: no metadata', metadata: {}, field: `${META}.url` },
    {
      comment: 'KEDA row: targetValue not a number',
      metadata: { ...ok, targetValue: 'aa' },
      field: `${META}.targetValue`,
    },
    {
      comment: 'KEDA row: activationTargetValue not a number',
      metadata: { ...ok, targetValue: '1', activationTargetValue: 'aa' },
      field: `${META}.activationTargetValue`,
    },
    {
      comment: 'KEDA row: missing valueLocation',
      metadata: { url: URL_, targetValue: '1' },
      field: `${META}.valueLocation`,
    },
    { comment: 'KEDA row: missing url', metadata: { valueLocation: 'metric', targetValue: '1' }, field: `${META}.url` },
    {
      comment: 'KEDA row: missing targetValue',
      metadata: { url: URL_, valueLocation: 'metric' },
      field: `${META}.targetValue`,
    },
    { comment: 'targetValue 0', metadata: { ...ok, targetValue: '0' }, field: `${META}.targetValue` },
    { comment: 'KEDA auth row: unsafeSsl "yes"', metadata: { ...ok, unsafeSsl: 'yes' }, field: `${META}.unsafeSsl` },
    { comment: 'unknown format', metadata: { ...ok, format: 'csv' }, field: `${META}.format` },
    { comment: 'format xml: not supported yet', metadata: { ...ok, format: 'xml' }, field: `${META}.format` },
    { comment: 'format yaml: not supported yet', metadata: { ...ok, format: 'yaml' }, field: `${META}.format` },
    {
      comment: 'aggregateFromKubeServiceEndpoints: not supported yet',
      metadata: { ...ok, aggregateFromKubeServiceEndpoints: 'true' },
      field: `${META}.aggregateFromKubeServiceEndpoints`,
    },
    {
      comment: 'unknown aggregationType',
      metadata: { ...ok, aggregationType: 'median' },
      field: `${META}.aggregationType`,
    },
    { comment: 'negative timeout', metadata: { ...ok, timeout: '-1s' }, field: `${META}.timeout` },
    { comment: 'url not http(s)', metadata: { ...ok, url: 'file:///etc/passwd' }, field: `${META}.url` },
    { comment: 'url with credentials', metadata: { ...ok, url: `http://u:${SECRET}@h/` }, field: `${META}.url` },
    { comment: 'json: wildcard', metadata: { ...ok, valueLocation: 'items.*.count' }, field: `${META}.valueLocation` },
    {
      comment: 'prometheus: a selector without a metric name',
      metadata: { ...ok, format: 'prometheus', valueLocation: '{job="a"}' },
      field: `${META}.valueLocation`,
    },
    {
      comment: 'KEDA GetValueFromResponse row: invalid selector backend_queue_size{invalid=test}',
      metadata: { ...ok, format: 'prometheus', valueLocation: 'backend_queue_size{invalid=test}' },
      field: `${META}.valueLocation`,
    },
  ];
  it.each(rejected)('rejects: $comment', ({ metadata, field }) => {
    const act = () => createMetricsApiScaler(trigger(metadata));
    expectValidationError(act, field, [SECRET]);
  });
});

describe('metrics-api auth (KEDA testMetricsAPIAuthMetadata)', () => {
  const rows: {
    comment: string;
    metadata: Record<string, string>;
    authParams: () => Record<string, string>;
    error?: string;
    headers?: Record<string, string>;
    query?: Record<string, string>;
    tls?: boolean;
  }[] = [
    {
      comment: 'KEDA row: success TLS',
      metadata: { authMode: 'tls' },
      authParams: () => ({ ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey }),
      tls: true,
    },
    {
      comment: 'KEDA row: fail TLS, ca not given',
      metadata: { authMode: 'tls' },
      authParams: () => ({ cert: pki.clientCert, key: pki.clientKey }),
      error: AUTH_REF,
    },
    {
      comment: 'KEDA row: fail TLS, key not given',
      metadata: { authMode: 'tls' },
      authParams: () => ({ ca: pki.caCert, cert: pki.clientCert }),
      error: AUTH_REF,
    },
    {
      comment: 'KEDA row: fail TLS, cert not given',
      metadata: { authMode: 'tls' },
      authParams: () => ({ ca: pki.caCert, key: pki.clientKey }),
      error: AUTH_REF,
    },
    {
      comment: 'KEDA row (placeholder PEM "caaa"/"ceert"/"keey"): unparseable material',
      metadata: { authMode: 'tls' },
      authParams: () => ({ ca: 'caaa', cert: 'ceert', key: 'keey' }),
      error: AUTH_REF,
    },
    {
      comment: 'KEDA row: success apiKey default',
      metadata: { authMode: 'apiKey' },
      authParams: () => ({ apiKey: SECRET }),
      headers: { 'X-API-KEY': SECRET },
    },
    {
      comment: 'KEDA row: success apiKey as query param',
      metadata: { authMode: 'apiKey' },
      authParams: () => ({ apiKey: SECRET, method: 'query' }),
      query: { api_key: SECRET },
    },
    {
      comment: 'KEDA row: success apiKey with header and custom key name',
      metadata: { authMode: 'apiKey' },
      authParams: () => ({ apiKey: SECRET, method: 'header', keyParamName: 'custom' }),
      headers: { custom: SECRET },
    },
    {
      comment: 'KEDA row: success apiKey with query param and custom key name',
      metadata: { authMode: 'apiKey' },
      authParams: () => ({ apiKey: SECRET, method: 'query', keyParamName: 'custom' }),
      query: { custom: SECRET },
    },
    {
      comment: 'KEDA (older) row: method and keyParamName in trigger metadata',
      metadata: { authMode: 'apiKey', method: 'query', keyParamName: 'key' },
      authParams: () => ({ apiKey: SECRET }),
      query: { key: SECRET },
    },
    {
      comment: 'KEDA row: fail apiKey with no key',
      metadata: { authMode: 'apiKey' },
      authParams: () => ({}),
      error: AUTH_REF,
    },
    {
      comment: 'KEDA row: success basic',
      metadata: { authMode: 'basic' },
      authParams: () => ({ username: 'user', password: 'pass' }),
      headers: { authorization: `Basic ${Buffer.from('user:pass').toString('base64')}` },
    },
    {
      comment: 'KEDA row: fail basic with no username',
      metadata: { authMode: 'basic' },
      authParams: () => ({}),
      error: AUTH_REF,
    },
    {
      comment: 'KEDA row: success bearer (token)',
      metadata: { authMode: 'bearer' },
      authParams: () => ({ token: SECRET }),
      headers: { authorization: `Bearer ${SECRET}` },
    },
    {
      comment: 'KEDA row: fail bearer without token',
      metadata: { authMode: 'bearer' },
      authParams: () => ({}),
      error: AUTH_REF,
    },
    {
      comment: 'KEDA row: apiKey and TLS together',
      metadata: { authMode: 'apiKey,tls' },
      authParams: () => ({ apiKey: SECRET, ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey }),
      headers: { 'X-API-KEY': SECRET },
      tls: true,
    },
    {
      comment: 'custom is applied',
      metadata: { authMode: 'custom' },
      authParams: () => ({ customAuthHeader: 'X-Org', customAuthValue: SECRET }),
      headers: { 'X-Org': SECRET },
    },
    {
      comment: 'apiKey in trigger metadata is refused (a secret)',
      metadata: { authMode: 'apiKey', apiKey: SECRET },
      authParams: () => ({}),
      error: `${META}.apiKey`,
    },
    {
      comment: 'apiKey query parameter already in the url',
      metadata: { authMode: 'apiKey', url: 'http://h/m?api_key=x' },
      authParams: () => ({ apiKey: SECRET, method: 'query' }),
      error: `${META}.url`,
    },
    {
      comment: 'an unknown authMode',
      metadata: { authMode: 'kerberos' },
      authParams: () => ({}),
      error: `${META}.authMode`,
    },
  ];
  it.each(rows)('$comment', ({ metadata, authParams, error, headers = {}, query = {}, tls = false }) => {
    const act = () => parseMetricsApiConfig(trigger({ ...ok, ...metadata }, authParams()));
    if (error !== undefined) {
      expect(act).toThrow(ValidationError);
      try {
        act();
      } catch (err) {
        expect((err as ValidationError).field).toBe(error);
        expect(describeError(err)).not.toContain(SECRET);
      }
      return;
    }
    const config = act();
    expect(config.auth.headers).toEqual(headers);
    expect(config.auth.query).toEqual(query);
    expect(config.auth.tls.cert !== undefined).toBe(tls);
  });
});

describe('metrics-api metric names (KEDA metricsAPIMetricIdentifiers)', () => {
  it.each([
    { index: 1, valueLocation: 'metric.test', name: 's1-metric-api-metric-test' },
    { index: 0, valueLocation: 'components.0.tasks', name: 's0-metric-api-components-0-tasks' },
    { index: 2, valueLocation: 'value', name: 's2-metric-api-value' },
  ])('$valueLocation at $index → $name', ({ index, valueLocation, name }) => {
    const scaler = createScaler(trigger({ ...ok, valueLocation }, {}, index));
    expect(scaler.metricName).toBe(name);
    expect(scaler.target).toBe(42);
  });
});

describe('JSON valueLocation (GJSON subset)', () => {
  const doc: unknown = JSON.parse(
    '{"components":[{"id":"82328e93e","tasks":32,"str":"64","k":"1k","m":"1500m","wrong":"NaN","b":true,"n":null,"o":{}}],' +
      '"count":2.43,"items":[1,2,3],"a.b":{"c":5},"0":{"x":9},"#":4,"neg":-2,"big":1e21}',
  );
  const F = `${META}.valueLocation`;
  const read = (location: string) => valueAtJsonPath(doc, parseJsonPath(location, F), 'where');

  it.each([
    { comment: 'KEDA: integer', location: 'count', value: 2.43 },
    { comment: 'KEDA: string holding a number', location: 'components.0.str', value: 64 },
    { comment: 'KEDA: {}.[].{}', location: 'components.0.tasks', value: 32 },
    { comment: 'a Quantity with suffix k', location: 'components.0.k', value: 1000 },
    { comment: 'a Quantity with suffix m', location: 'components.0.m', value: 1.5 },
    { comment: 'array length with #', location: 'items.#', value: 3 },
    { comment: 'array index', location: 'items.2', value: 3 },
    { comment: 'escaped dot in a key', location: 'a\\.b.c', value: 5 },
    { comment: 'a number is a key in an object', location: '0.x', value: 9 },
    { comment: 'an escaped # is a key', location: '\\#', value: 4 },
    { comment: 'negative', location: 'neg', value: -2 },
    { comment: 'large number', location: 'big', value: 1e21 },
  ])('$comment: $location → $value', ({ location, value }) => {
    expect(read(location)).toBe(value);
  });

  it.each([
    {
      comment: 'KEDA: invalid data "NaN" (never quoted)',
      location: 'components.0.wrong',
      error: /^where: the value at "components\.0\.wrong" is not a number: .*\(its text is not shown\)$/,
    },
    { comment: 'missing key', location: 'nope', error: /nothing at "nope"/ },
    { comment: 'missing nested key', location: 'components.0.nope', error: /nothing at "components.0.nope"/ },
    { comment: 'index out of range', location: 'items.3', error: /nothing at "items.3"/ },
    { comment: 'a boolean', location: 'components.0.b', error: /boolean true/ },
    { comment: 'null', location: 'components.0.n', error: /got null/ },
    { comment: 'an object', location: 'components.0.o', error: /an object/ },
    { comment: 'an array', location: 'items', error: /an array/ },
    { comment: '# of something that is not an array', location: 'count.#', error: /not an array/ },
    { comment: 'descending into a number', location: 'count.x', error: /nothing at "count.x"/ },
  ])('error: $comment', ({ location, error }) => {
    expect(() => read(location)).toThrow(ScalerError);
    expect(() => read(location)).toThrow(error);
  });

  it.each([
    ['empty', ''],
    ['leading dot', '.a'],
    ['trailing dot', 'a.'],
    ['double dot', 'a..b'],
    ['wildcard *', 'a.*'],
    ['wildcard ?', 'a?'],
    ['pipe', 'a|b'],
    ['modifier', '@reverse'],
    ['modifier inside', 'a.@this'],
    ['array mapping', 'friends.#.age'],
    ['query', 'friends.#(last=="Murphy").first'],
    ['# inside a key', 'a#b'],
    ['lone backslash', 'a\\'],
  ])('rejects the path: %s', (_comment, location) => {
    expect(() => parseJsonPath(location, F)).toThrow(ValidationError);
  });
});

describe('prometheus-format valueLocation (KEDA GetValueFromResponse rows)', () => {
  // KEDA's inputPrometheus, ending without a newline (kedacore/keda#6559).
  const text = `# HELP backend_queue_size Total number of items
\t# TYPE backend_queue_size counter
\tbackend_queue_size{queueName="zero"} 0
\tbackend_queue_size{queueName="one"} 1
\tbackend_queue_size{queueName="two", instance="random"} 2
\tbackend_queue_size{queueName="two", instance="zero"} 20
\t# HELP random_metric Random metric generate to include noise
\t# TYPE random_metric counter
\trandom_metric 10
\tnan_metric NaN
\tinf_metric +Inf`;
  const read = (selector: string, body = text) =>
    valueFromExposition(body, parseSelector(selector, 'f'), 'http://h/metrics');

  it.each([
    { comment: 'KEDA: no labels', selector: 'random_metric', value: 10 },
    { comment: 'KEDA: one label', selector: 'backend_queue_size{queueName="one"}', value: 1 },
    { comment: 'KEDA: a zero value is a value', selector: 'backend_queue_size{queueName="zero"}', value: 0 },
    {
      comment: 'KEDA: multiple labels queried',
      selector: 'backend_queue_size{queueName="two", instance="zero"}',
      value: 20,
    },
    { comment: 'regex matcher', selector: 'backend_queue_size{queueName=~"tw.",instance!="zero"}', value: 2 },
  ])('$comment: $selector → $value', ({ selector, value }) => {
    expect(read(selector)).toBe(value);
  });

  it.each([
    {
      comment: 'KEDA "multiple labels not queried" (KEDA: first match, 2): several series are an error',
      selector: 'backend_queue_size{queueName="two"}',
      error: /2 series match .*add label matchers/,
    },
    { comment: 'no such metric', selector: 'missing_metric', error: /no sample matches missing_metric/ },
    { comment: 'no such label value', selector: 'backend_queue_size{queueName="three"}', error: /no sample matches/ },
    { comment: 'NaN', selector: 'nan_metric', error: /NaN, not a finite number/ },
    { comment: '+Inf', selector: 'inf_metric', error: /Infinity, not a finite number/ },
  ])('error: $comment', ({ selector, error }) => {
    expect(() => read(selector)).toThrow(ScalerError);
    expect(() => read(selector)).toThrow(error);
  });

  it.each([
    ['JSON', '{"value": 1}'],
    ['HTML', '<html><body>Bad Gateway</body></html>'],
    ['a broken line', 'random_metric{a="b" 1'],
  ])('a body that is not exposition (%s) is an error', (_comment, body) => {
    expect(() => read('random_metric', body)).toThrow(/not Prometheus text exposition/);
  });
  it('an empty body has no sample', () => {
    expect(() => read('random_metric', '')).toThrow(/no sample matches/);
  });
});
