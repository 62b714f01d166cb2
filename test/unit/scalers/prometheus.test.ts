import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackendError, ScalerError, ValidationError, describeError } from '../../../src/errors.ts';
import {
  createPrometheusScaler,
  parsePrometheusConfig,
  parsePrometheusResponse,
  prometheusValue,
  readPrometheusResult,
} from '../../../src/scalers/prometheus.ts';
import { createScaler } from '../../../src/scalers/registry.ts';
import { makeTestPki, type TestPki } from '../../support/pki.ts';
import { expectSampleError, expectValidationError, standalone, triggerInput } from '../../support/trigger.ts';
import { pinnedAddress } from '../../support/pinned-address.ts';

const META = 'spec.triggers[0].metadata';
const AUTH_REF = 'spec.triggers[0].authenticationRef';
const SECRET = 's3cret-token';

function trigger(metadata: Record<string, string>, authParams: Record<string, string> = {}, index = 0) {
  // The address is also the TriggerAuthentication's when it supplies anything (test/support/pinned-address.ts).
  return triggerInput({ type: 'prometheus', ...pinnedAddress('serverAddress', 'copy', metadata, authParams), index });
}

// KEDA's testPromMetadata "all properly formed" row (metricName is ignored, as in KEDA).
const base = {
  serverAddress: 'http://localhost:9090',
  metricName: 'http_requests_total',
  threshold: '100',
  query: 'up',
};

let pki: TestPki;
beforeAll(() => {
  pki = makeTestPki();
});

describe('prometheus metadata (KEDA testPromMetadata)', () => {
  const accepted = [
    {
      comment: 'KEDA row: all properly formed; sluice defaults',
      metadata: base,
      expect: {
        threshold: 100,
        activationThreshold: 0,
        ignoreNullValues: false,
        unsafeSsl: false,
        timeoutMs: 3000,
        endpoint: 'http://localhost:9090/api/v1/query?query=up',
      },
    },
    {
      comment: 'KEDA row: with namespace',
      metadata: { serverAddress: 'http://localhost:9090', threshold: '100', query: 'up', namespace: 'foo' },
      expect: { endpoint: 'http://localhost:9090/api/v1/query?query=up&namespace=foo' },
    },
    {
      comment: 'KEDA row: ignoreNullValues false',
      metadata: { ...base, ignoreNullValues: 'false' },
      expect: { ignoreNullValues: false },
    },
    {
      comment: 'ignoreNullValues true',
      metadata: { ...base, ignoreNullValues: 'true' },
      expect: { ignoreNullValues: true },
    },
    {
      comment: 'KEDA row: activationThreshold',
      metadata: { ...base, activationThreshold: '50' },
      expect: { activationThreshold: 50 },
    },
    { comment: 'fractional threshold', metadata: { ...base, threshold: '0.5' }, expect: { threshold: 0.5 } },
    {
      comment: 'KEDA row: unsafeSsl',
      metadata: { ...base, serverAddress: 'https://localhost:9090', unsafeSsl: 'true' },
      expect: { unsafeSsl: true },
    },
    {
      comment: 'KEDA row: customHeaders',
      metadata: { ...base, customHeaders: 'key1=value1,key2=value2' },
      expect: { headers: { key1: 'value1', key2: 'value2' } },
    },
    {
      comment: 'KEDA row: queryParameters (URL-escaped)',
      metadata: { ...base, query: 'sum(rate(x{a="b"}[1m]))', queryParameters: 'key1=value 1,key2=a&b' },
      expect: {
        endpoint:
          'http://localhost:9090/api/v1/query?query=sum%28rate%28x%7Ba%3D%22b%22%7D%5B1m%5D%29%29&key1=value+1&key2=a%26b',
      },
    },
    {
      comment: 'KEDA row: timeout in milliseconds',
      metadata: { ...base, timeout: '1000' },
      expect: { timeoutMs: 1000 },
    },
    { comment: 'timeout as a Go duration', metadata: { ...base, timeout: '1.5s' }, expect: { timeoutMs: 1500 } },
    {
      comment: 'a path prefix on serverAddress is kept (trailing slash or not)',
      metadata: { ...base, serverAddress: 'https://proxy.example/prometheus/' },
      expect: { endpoint: 'https://proxy.example/prometheus/api/v1/query?query=up' },
    },
    {
      comment: 'values are trimmed',
      metadata: { ...base, serverAddress: ' http://localhost:9090 ', query: ' up ' },
      expect: { query: 'up' },
    },
  ];
  it.each(accepted)('accepts: $comment', ({ metadata, expect: want }) => {
    const config = parsePrometheusConfig(trigger(metadata));
    const { endpoint, ...rest } = want as Record<string, unknown>;
    expect(config).toMatchObject(rest);
    if (endpoint !== undefined) expect(config.endpoint.href).toBe(endpoint);
  });

  const rejected = [
    { comment: 'KEDA row: no metadata', metadata: {}, field: `${META}.serverAddress` },
    {
      comment: 'KEDA row: missing serverAddress',
      metadata: { ...base, serverAddress: '' },
      field: `${META}.serverAddress`,
    },
    { comment: 'KEDA row: missing threshold', metadata: { ...base, threshold: '' }, field: `${META}.threshold` },
    { comment: 'KEDA row: malformed threshold', metadata: { ...base, threshold: 'one' }, field: `${META}.threshold` },
    { comment: 'threshold 0', metadata: { ...base, threshold: '0' }, field: `${META}.threshold` },
    { comment: 'negative threshold', metadata: { ...base, threshold: '-5' }, field: `${META}.threshold` },
    {
      comment: 'KEDA row: malformed activationThreshold',
      metadata: { ...base, activationThreshold: 'one' },
      field: `${META}.activationThreshold`,
    },
    { comment: 'KEDA row: missing query', metadata: { ...base, query: '' }, field: `${META}.query` },
    {
      comment: 'KEDA row: ignoreNullValues with a wrong value',
      metadata: { ...base, ignoreNullValues: 'xxxx' },
      field: `${META}.ignoreNullValues`,
    },
    { comment: 'unsafeSsl not a boolean', metadata: { ...base, unsafeSsl: 'yes' }, field: `${META}.unsafeSsl` },
    {
      comment: 'KEDA row: customHeaders with a wrong format',
      metadata: { ...base, customHeaders: 'key1=value1,key2' },
      field: `${META}.customHeaders`,
    },
    {
      comment: 'customHeaders with an invalid header name',
      metadata: { ...base, customHeaders: 'bad name=1' },
      field: `${META}.customHeaders`,
    },
    {
      comment: 'customHeaders setting a header metadata endpoints require (Google Cloud)',
      metadata: { ...base, customHeaders: 'Metadata-Flavor=Google' },
      field: `${META}.customHeaders`,
    },
    {
      comment: 'customHeaders setting the AWS IMDSv2 token header',
      metadata: { ...base, customHeaders: 'X-aws-ec2-metadata-token=x' },
      field: `${META}.customHeaders`,
    },
    {
      comment: 'KEDA row: queryParameters with a wrong format',
      metadata: { ...base, queryParameters: 'key1=value1,key2' },
      field: `${META}.queryParameters`,
    },
    {
      comment: 'queryParameters must not override the query',
      metadata: { ...base, queryParameters: 'query=up' },
      field: `${META}.queryParameters`,
    },
    {
      comment: 'queryParameters must not set time',
      metadata: { ...base, queryParameters: 'time=0' },
      field: `${META}.queryParameters`,
    },
    {
      comment: 'queryParameters must not repeat the namespace parameter',
      metadata: { ...base, namespace: 'a', queryParameters: 'namespace=b' },
      field: `${META}.queryParameters`,
    },
    { comment: 'KEDA row: negative timeout', metadata: { ...base, timeout: '-1' }, field: `${META}.timeout` },
    { comment: 'KEDA row: timeout not a number', metadata: { ...base, timeout: 'a' }, field: `${META}.timeout` },
    { comment: 'timeout 0', metadata: { ...base, timeout: '0' }, field: `${META}.timeout` },
    {
      comment: 'serverAddress not a URL',
      metadata: { ...base, serverAddress: 'localhost:9090' },
      field: `${META}.serverAddress`,
    },
    {
      comment: 'serverAddress with credentials',
      metadata: { ...base, serverAddress: `http://admin:${SECRET}@localhost:9090` },
      field: `${META}.serverAddress`,
    },
    {
      comment: 'serverAddress with a query string',
      metadata: { ...base, serverAddress: 'http://localhost:9090/?x=1' },
      field: `${META}.serverAddress`,
    },
    {
      comment: 'awsRegion (SigV4) is not supported',
      metadata: { ...base, awsRegion: 'eu-west-1' },
      field: `${META}.awsRegion`,
    },
    {
      comment: 'identityOwner is not supported',
      metadata: { ...base, identityOwner: 'operator' },
      field: `${META}.identityOwner`,
    },
  ];
  it.each(rejected)('rejects: $comment', ({ metadata, field }) => {
    const act = () => createPrometheusScaler(trigger(metadata));
    expectValidationError(act, field, [SECRET]);
  });
});

describe('prometheus auth (KEDA testPrometheusAuthMetadata)', () => {
  const rows: {
    comment: string;
    metadata: Record<string, string>;
    authParams: () => Record<string, string>;
    error?: string;
    header?: string;
  }[] = [
    {
      comment: 'KEDA row: success TLS',
      metadata: { authModes: 'tls' },
      authParams: () => ({ ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey }),
    },
    {
      comment: 'KEDA row: TLS, ca is optional',
      metadata: { authModes: 'tls' },
      authParams: () => ({ cert: pki.clientCert, key: pki.clientKey }),
    },
    {
      comment: 'KEDA row: fail TLS, key not given',
      metadata: { authModes: 'tls' },
      authParams: () => ({ ca: pki.caCert, cert: pki.clientCert }),
      error: AUTH_REF,
    },
    {
      comment: 'KEDA row: fail TLS, cert not given',
      metadata: { authModes: 'tls' },
      authParams: () => ({ ca: pki.caCert, key: pki.clientKey }),
      error: AUTH_REF,
    },
    {
      comment: 'KEDA row (placeholder PEM): ca "caaa" is not a certificate',
      metadata: { authModes: 'tls' },
      authParams: () => ({ ca: 'caaa', cert: pki.clientCert, key: pki.clientKey }),
      error: AUTH_REF,
    },
    {
      comment: 'KEDA row: success bearer',
      metadata: { authModes: 'bearer' },
      authParams: () => ({ bearerToken: SECRET }),
      header: `Bearer ${SECRET}`,
    },
    {
      comment: 'KEDA row: fail bearer with no token',
      metadata: { authModes: 'bearer' },
      authParams: () => ({}),
      error: AUTH_REF,
    },
    {
      comment: 'KEDA row: success basic',
      metadata: { authModes: 'basic' },
      authParams: () => ({ username: 'user', password: 'pass' }),
      header: `Basic ${Buffer.from('user:pass').toString('base64')}`,
    },
    {
      comment: 'KEDA row: fail basic with no username',
      metadata: { authModes: 'basic' },
      authParams: () => ({}),
      error: AUTH_REF,
    },
    {
      comment: 'KEDA row: tls, basic',
      metadata: { authModes: 'tls, basic' },
      authParams: () => ({ ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey, username: 'user', password: 'p' }),
      header: `Basic ${Buffer.from('user:p').toString('base64')}`,
    },
    {
      comment: 'KEDA row: tls,basic without cert and key',
      metadata: { authModes: 'tls,basic' },
      authParams: () => ({ username: 'user', password: 'pass' }),
      error: AUTH_REF,
    },
    {
      comment: 'KEDA row: success custom',
      metadata: { authModes: 'custom' },
      authParams: () => ({ customAuthHeader: 'header', customAuthValue: 'value' }),
    },
    {
      comment: 'KEDA row: fail custom with no customAuthHeader',
      metadata: { authModes: 'custom' },
      authParams: () => ({ customAuthHeader: '' }),
      error: AUTH_REF,
    },
    {
      comment: 'KEDA row: fail custom with no customAuthValue',
      metadata: { authModes: 'custom' },
      authParams: () => ({ customAuthValue: '' }),
      error: AUTH_REF,
    },
    {
      comment: 'KEDA row: custom header and value with newlines',
      metadata: { authModes: 'custom' },
      authParams: () => ({ customAuthHeader: 'header\n', customAuthValue: 'value\n' }),
    },
    {
      comment: 'apiKey is not applied by the prometheus scaler: an error, not ignored',
      metadata: { authModes: 'apiKey' },
      authParams: () => ({ apiKey: SECRET }),
      error: `${META}.authModes`,
    },
    {
      comment: 'oauth is not supported',
      metadata: { authModes: 'oauth' },
      authParams: () => ({}),
      error: `${META}.authModes`,
    },
    {
      comment: 'customHeaders must not set the header bearer sets',
      metadata: { authModes: 'bearer', customHeaders: 'Authorization=Basic x' },
      authParams: () => ({ bearerToken: SECRET }),
      error: `${META}.customHeaders`,
    },
  ];
  it.each(rows)('$comment', ({ metadata, authParams, error, header }) => {
    const act = () => parsePrometheusConfig(trigger({ ...base, ...metadata }, authParams()));
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
    if (header !== undefined) expect(config.headers['authorization']).toBe(header);
  });
});

describe('prometheus metric names (KEDA prometheusMetricIdentifiers)', () => {
  it.each([
    { index: 0, name: 's0-prometheus' },
    { index: 1, name: 's1-prometheus' },
  ])('trigger $index → $name', ({ index, name }) => {
    const scaler = createScaler(trigger(base, {}, index));
    expect(scaler.metricName).toBe(name);
    expect(scaler.target).toBe(100);
    expect(scaler.metricType).toBe('AverageValue');
  });
});

describe('parsePrometheusResponse (KEDA testPromQueryResult, strict)', () => {
  const vector = (value: unknown[]) =>
    JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [{ metric: {}, value }] } });
  const empty = JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [] } });
  const rows: { comment: string; body: string; ignoreNullValues: boolean; value?: number; error?: RegExp }[] = [
    { comment: 'valid value', body: vector([1, '2']), ignoreNullValues: false, value: 2 },
    { comment: 'fractional, exponent', body: vector([1, '1.5e3']), ignoreNullValues: false, value: 1500 },
    { comment: 'negative', body: vector([1, '-3.25']), ignoreNullValues: false, value: -3.25 },
    {
      comment: 'scalar result',
      body: JSON.stringify({ status: 'success', data: { resultType: 'scalar', result: [1, '7'] } }),
      ignoreNullValues: false,
      value: 7,
    },
    {
      comment: "KEDA row: no values but shouldn't ignore",
      body: empty,
      ignoreNullValues: false,
      error: /empty result .*ignoreNullValues/,
    },
    { comment: 'KEDA row: no values, ignoreNullValues → 0', body: empty, ignoreNullValues: true, value: 0 },
    {
      comment: "KEDA row: value is empty list but shouldn't ignore",
      body: vector([]),
      ignoreNullValues: false,
      // An empty value pair reads as an empty result, like no series at all (same message).
      error: /empty result .*ignoreNullValues/,
    },
    { comment: 'KEDA row: value is empty list, ignored → 0', body: vector([]), ignoreNullValues: true, value: 0 },
    { comment: 'KEDA row: not enough values', body: vector([1]), ignoreNullValues: true, error: /malformed/ },
    {
      comment: 'KEDA row: multiple results (even with ignoreNullValues)',
      body: JSON.stringify({
        status: 'success',
        data: {
          resultType: 'vector',
          result: [
            { metric: { a: '1' }, value: [1, '1'] },
            { metric: { a: '2' }, value: [1, '2'] },
          ],
        },
      }),
      ignoreNullValues: true,
      error: /2 series .*exactly one/,
    },
    {
      comment: "KEDA row: +Inf but shouldn't ignore",
      body: vector([1, '+Inf']),
      ignoreNullValues: false,
      error: /\+Inf/,
    },
    { comment: 'KEDA row: +Inf ignored → 0', body: vector([1, '+Inf']), ignoreNullValues: true, value: 0 },
    {
      comment: "KEDA row: -Inf but shouldn't ignore",
      body: vector([1, '-Inf']),
      ignoreNullValues: false,
      error: /-Inf/,
    },
    { comment: 'KEDA row: -Inf ignored → 0', body: vector([1, '-Inf']), ignoreNullValues: true, value: 0 },
    { comment: 'NaN is an error', body: vector([1, 'NaN']), ignoreNullValues: false, error: /NaN/ },
    { comment: 'NaN ignored → 0', body: vector([1, 'NaN']), ignoreNullValues: true, value: 0 },
    {
      comment: 'KEDA row "no results" ({}): malformed, even with ignoreNullValues (KEDA reads 0)',
      body: '{}',
      ignoreNullValues: true,
      error: /malformed.*status/,
    },
    {
      comment: 'KEDA-style body without status: malformed',
      body: JSON.stringify({ data: { result: [] } }),
      ignoreNullValues: true,
      error: /malformed/,
    },
    { comment: 'not JSON', body: '<html>502</html>', ignoreNullValues: true, error: /not JSON/ },
    { comment: 'empty body', body: '', ignoreNullValues: true, error: /not JSON/ },
    { comment: 'a JSON array', body: '[]', ignoreNullValues: true, error: /malformed/ },
    {
      comment: 'status error',
      body: JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'parse error' }),
      ignoreNullValues: true,
      error: /failed .*bad_data \(the query or its parameters are invalid/,
    },
    {
      comment: 'status error of a type Prometheus does not have',
      body: JSON.stringify({ status: 'error', errorType: 'AKIAIOSFODNN7EXAMPLE', error: 'AKIAIOSFODNN7EXAMPLE' }),
      ignoreNullValues: true,
      error: /failed the query "q": an error of an unknown type$/,
    },
    {
      comment: 'a status that is not a string Prometheus sends',
      body: JSON.stringify({ status: 'AKIAIOSFODNN7EXAMPLE' }),
      ignoreNullValues: true,
      error: /"status" is a string, not "success"$/,
    },
    {
      comment: 'a resultType Prometheus does not have',
      body: JSON.stringify({ status: 'success', data: { resultType: 'AKIAIOSFODNN7EXAMPLE', result: [] } }),
      ignoreNullValues: true,
      error: /"resultType" is a string; the query must give a vector or a scalar$/,
    },
    {
      comment: 'a value that is not a number',
      body: JSON.stringify({
        status: 'success',
        data: { resultType: 'vector', result: [{ metric: {}, value: [1, 'AKIAIOSFODNN7EXAMPLE'] }] },
      }),
      ignoreNullValues: true,
      error: /the value at data\.result\[0\]\.value\[1\] is not a number$/,
    },
    {
      comment: 'matrix result (a range query)',
      body: JSON.stringify({ status: 'success', data: { resultType: 'matrix', result: [] } }),
      ignoreNullValues: true,
      error: /"matrix"; the query must give a vector or a scalar/,
    },
    {
      comment: 'string result',
      body: JSON.stringify({ status: 'success', data: { resultType: 'string', result: [1, 'x'] } }),
      ignoreNullValues: true,
      error: /"string"/,
    },
    {
      comment: 'result is not an array',
      body: JSON.stringify({ status: 'success', data: { resultType: 'vector', result: {} } }),
      ignoreNullValues: true,
      error: /not an array/,
    },
    { comment: 'value is a number, not a string', body: vector([1, 2]), ignoreNullValues: true, error: /pair/ },
    { comment: 'timestamp is a string', body: vector(['1', '2']), ignoreNullValues: true, error: /pair/ },
    { comment: 'value is not a number', body: vector([1, 'abc']), ignoreNullValues: true, error: /not a number/ },
    { comment: 'value is an empty string', body: vector([1, '']), ignoreNullValues: true, error: /not a number/ },
    {
      comment: 'value is missing',
      body: JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [{}] } }),
      ignoreNullValues: true,
      error: /pair/,
    },
  ];
  // What the scaler does: the reader reads the body (readPrometheusResult), each trigger evaluates the reading
  // (prometheusValue); parsePrometheusResponse is the two in one.
  const parse = (body: string, ignoreNullValues: boolean): number =>
    prometheusValue(readPrometheusResult(body, 'q'), ignoreNullValues, 'q');
  it.each(rows)('$comment', ({ body, ignoreNullValues, value, error }) => {
    if (error === undefined) {
      expect(parse(body, ignoreNullValues)).toBe(value);
      expect(parsePrometheusResponse(body, ignoreNullValues, 'q')).toBe(value);
    } else {
      let caught: unknown;
      try {
        parse(body, ignoreNullValues);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(ScalerError);
      // Prometheus answered: never a backend failure (its circuit breaker must not count it).
      expect(caught).not.toBeInstanceOf(BackendError);
      expect(describeError(caught)).toMatch(error);
      expect(() => parsePrometheusResponse(body, ignoreNullValues, 'q')).toThrow(error);
    }
  });
});

describe('prometheus sample against an in-process server', () => {
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end();
  let requests: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    requests.push(req);
    handler(req, res);
  });
  let address = '';
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    address = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  it('sends query, time, namespace, queryParameters, custom and auth headers; reads the value', async () => {
    requests = [];
    handler = (_req, res) =>
      res.end(
        JSON.stringify({
          status: 'success',
          data: { resultType: 'vector', result: [{ metric: {}, value: [1, '42'] }] },
        }),
      );
    const scaler = standalone(
      createPrometheusScaler(
        trigger(
          {
            serverAddress: `${address}/prefix`,
            query: 'sum(up)',
            threshold: '10',
            activationThreshold: '41',
            namespace: 'team-a',
            queryParameters: 'dedup=true',
            customHeaders: 'X-Scope-OrgID=tenant-1',
            authModes: 'bearer',
          },
          { bearerToken: SECRET },
        ),
      ),
    );
    const before = Date.now();
    expect(await scaler.sample(new AbortController().signal)).toEqual({ value: 42, active: true });
    await scaler.close();
    const req = requests[0];
    const url = new URL(req?.url ?? '', address);
    expect(url.pathname).toBe('/prefix/api/v1/query');
    expect(url.searchParams.get('query')).toBe('sum(up)');
    expect(url.searchParams.get('namespace')).toBe('team-a');
    expect(url.searchParams.get('dedup')).toBe('true');
    const time = Date.parse(url.searchParams.get('time') ?? '');
    expect(time).toBeGreaterThanOrEqual(before - 1000);
    expect(time).toBeLessThanOrEqual(Date.now() + 1000);
    expect(req?.headers['x-scope-orgid']).toBe('tenant-1');
    expect(req?.headers['authorization']).toBe(`Bearer ${SECRET}`);
  });

  it('value equal to activationThreshold is not active (strict >)', async () => {
    handler = (_req, res) =>
      res.end(
        JSON.stringify({
          status: 'success',
          data: { resultType: 'vector', result: [{ metric: {}, value: [1, '5'] }] },
        }),
      );
    const scaler = standalone(
      createPrometheusScaler(
        trigger({ serverAddress: address, query: 'x', threshold: '10', activationThreshold: '5' }),
      ),
    );
    expect(await scaler.sample(new AbortController().signal)).toEqual({ value: 5, active: false });
    await scaler.close();
  });

  it("a 400 is named by Prometheus' errorType; its error text is never quoted", async () => {
    handler = (_req, res) => {
      res.statusCode = 400;
      res.end(JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'AKIAIOSFODNN7EXAMPLE at char 3' }));
    };
    const scaler = standalone(createPrometheusScaler(trigger({ serverAddress: address, query: 'x(', threshold: '1' })));
    const err = await expectSampleError(scaler, ['AKIA']);
    expect(err).toBe(
      `${address}/api/v1/query answered HTTP 400: bad_data (the query or its parameters are invalid, e.g. a PromQL syntax error; Prometheus' own error text is not shown)`,
    );
    await scaler.close();
  });
});
