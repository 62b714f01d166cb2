import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../src/errors.ts';
import { RateWindow, createHttpRateScaler, parseHttpRateConfig } from '../../../src/scalers/http-rate.ts';
import { createScaler } from '../../../src/scalers/registry.ts';
import type { TriggerInput } from '../../../src/scalers/scaler.ts';
import { triggerInput } from '../../support/trigger.ts';

function trigger(metadata: Record<string, string>, index = 0): TriggerInput {
  return triggerInput({ type: 'http-rate', metadata, index });
}

const url = 'http://ingress-metrics.ingress:10254/metrics';
const counter = 'nginx_vts_server_requests_total{code="2xx"}';
const viaUrl = { url, counter, targetRate: '100' };
const viaService = { service: 'ingress', port: 'metrics', counter, targetRate: '100' };

describe('http-rate metadata', () => {
  const accepted = [
    {
      comment: 'url form with defaults: window 60s, activation 0, timeout 3s',
      metadata: viaUrl,
      expect: {
        windowMs: 60_000,
        activationRate: 0,
        timeoutMs: 3000,
        targetRate: 100,
        counterName: 'nginx_vts_server_requests_total',
      },
      source: { kind: 'url' },
    },
    {
      comment: 'service form: path defaults to /metrics',
      metadata: viaService,
      expect: {},
      source: { kind: 'service', service: 'ingress', port: 'metrics', path: '/metrics' },
    },
    {
      comment: 'service form with a port number and a path',
      metadata: { ...viaService, port: '9913', path: '/status/format/prometheus' },
      expect: {},
      source: { kind: 'service', port: '9913', path: '/status/format/prometheus' },
    },
    {
      comment: 'window and timeout as Go durations, fractional target and activation',
      metadata: { ...viaUrl, window: '1m30s', timeout: '500ms', targetRate: '2.5', activationRate: '0.5' },
      expect: { windowMs: 90_000, timeoutMs: 500, targetRate: 2.5, activationRate: 0.5 },
      source: {},
    },
    {
      comment: 'window and timeout as whole milliseconds (KEDA)',
      metadata: { ...viaUrl, window: '10000', timeout: '1500' },
      expect: { windowMs: 10_000, timeoutMs: 1500 },
      source: {},
    },
    {
      comment: 'the largest window and timeout, 1h and 60s',
      metadata: { ...viaUrl, window: '1h', timeout: '60s' },
      expect: { windowMs: 3_600_000, timeoutMs: 60_000 },
      source: {},
    },
    {
      comment: 'the smallest window, 1s',
      metadata: { ...viaUrl, window: '1s' },
      expect: { windowMs: 1000 },
      source: {},
    },
    {
      comment: 'https url; a query string is kept',
      metadata: { ...viaUrl, url: 'https://exporter.example:8443/metrics?format=text' },
      expect: {},
      source: { kind: 'url' },
    },
    {
      comment: 'a selector without labels',
      metadata: { ...viaUrl, counter: 'http_requests_total' },
      expect: { counterName: 'http_requests_total' },
      source: {},
    },
    {
      comment: 'the name given as __name__, with a regex matcher',
      metadata: { ...viaUrl, counter: '{__name__="http_requests_total",code=~"2.."}' },
      expect: { counterName: 'http_requests_total' },
      source: {},
    },
    {
      comment: 'values are trimmed; empty strings count as absent',
      metadata: { ...viaUrl, url: ` ${url} `, window: '', activationRate: ' ' },
      expect: { windowMs: 60_000, activationRate: 0 },
      source: {},
    },
  ];
  it.each(accepted)('accepts: $comment', ({ metadata, expect: expected, source }) => {
    const config = parseHttpRateConfig(trigger(metadata));
    expect(config).toMatchObject(expected);
    expect(config.source).toMatchObject(source);
  });

  const rejected = [
    { comment: 'neither url nor service', metadata: { counter, targetRate: '1' }, field: 'url', message: 'give "url"' },
    {
      comment: 'both url and service',
      metadata: { ...viaUrl, service: 'ingress', port: '80' },
      field: 'service',
      message: 'not both',
    },
    {
      comment: 'port with url',
      metadata: { ...viaUrl, port: '80' },
      field: 'port',
      message: 'only used with "service"',
    },
    {
      comment: 'path with url',
      metadata: { ...viaUrl, path: '/m' },
      field: 'path',
      message: 'only used with "service"',
    },
    {
      comment: 'service without port',
      metadata: { service: 'ingress', counter, targetRate: '1' },
      field: 'port',
      message: 'missing',
    },
    {
      comment: 'service name with upper case',
      metadata: { ...viaService, service: 'Ingress' },
      field: 'service',
      message: 'not a Service name',
    },
    {
      comment: 'service in another namespace',
      metadata: { ...viaService, service: 'ingress.other' },
      field: 'service',
      message: 'not a Service name',
    },
    {
      comment: 'service name starting with a digit',
      metadata: { ...viaService, service: '1ngress' },
      field: 'service',
      message: 'not a Service name',
    },
    {
      comment: 'service name over 63 characters',
      metadata: { ...viaService, service: 'a'.repeat(64) },
      field: 'service',
      message: 'not a Service name',
    },
    { comment: 'port 0', metadata: { ...viaService, port: '0' }, field: 'port', message: 'neither a port number' },
    {
      comment: 'port 65536',
      metadata: { ...viaService, port: '65536' },
      field: 'port',
      message: 'neither a port number',
    },
    {
      comment: 'port name with an underscore',
      metadata: { ...viaService, port: 'http_metrics' },
      field: 'port',
      message: 'neither a port number',
    },
    {
      comment: 'path without a leading slash',
      metadata: { ...viaService, path: 'metrics' },
      field: 'path',
      message: 'must start with "/"',
    },
    { comment: 'path with a space', metadata: { ...viaService, path: '/a b' }, field: 'path', message: 'no spaces' },
    {
      comment: 'path with a fragment',
      metadata: { ...viaService, path: '/metrics#x' },
      field: 'path',
      message: 'no spaces or "#"',
    },
    {
      comment: 'url that is not a URL',
      metadata: { ...viaUrl, url: 'ingress:10254/metrics x' },
      field: 'url',
      message: 'must be an http or https URL, not ingress',
    },
    {
      comment: 'url with no scheme',
      metadata: { ...viaUrl, url: '/metrics' },
      field: 'url',
      message: 'not a valid URL',
    },
    {
      comment: 'url with a non-http scheme',
      metadata: { ...viaUrl, url: 'ftp://host/metrics' },
      field: 'url',
      message: 'must be an http or https URL, not ftp',
    },
    {
      comment: 'url with a fragment',
      metadata: { ...viaUrl, url: `${url}#top` },
      field: 'url',
      message: 'must not contain a #fragment',
    },
    {
      comment: 'url with credentials',
      metadata: { ...viaUrl, url: 'http://user:s3cret@host/metrics' },
      field: 'url',
      message: 'must not contain credentials',
    },
    {
      comment: 'missing counter',
      metadata: { url, targetRate: '1' },
      field: 'counter',
      message: 'missing required parameter',
    },
    {
      comment: 'counter that is not a selector',
      metadata: { ...viaUrl, counter: 'http_requests_total{code=2xx}' },
      field: 'counter',
      message: 'invalid sample selector',
    },
    {
      comment: 'counter with an invalid regex',
      metadata: { ...viaUrl, counter: 'x{code=~"("}' },
      field: 'counter',
      message: '"(" is not a valid RE2 regular expression: missing closing )',
    },
    {
      comment: 'counter with a lookahead (RE2 has none, as in Prometheus)',
      metadata: { ...viaUrl, counter: 'x{code=~"(?!5)..."}' },
      field: 'counter',
      message: 'uses a lookahead `(?!`, which is not supported by RE2',
    },
    {
      comment: 'counter without a metric name',
      metadata: { ...viaUrl, counter: '{code="2xx"}' },
      field: 'counter',
      message: 'must name the counter metric',
    },
    {
      comment: 'missing targetRate',
      metadata: { url, counter },
      field: 'targetRate',
      message: 'missing required parameter',
    },
    {
      comment: 'targetRate 0',
      metadata: { ...viaUrl, targetRate: '0' },
      field: 'targetRate',
      message: 'greater than 0',
    },
    {
      comment: 'negative targetRate',
      metadata: { ...viaUrl, targetRate: '-5' },
      field: 'targetRate',
      message: 'greater than 0',
    },
    {
      comment: 'targetRate not a number',
      metadata: { ...viaUrl, targetRate: '10/s' },
      field: 'targetRate',
      message: 'not a number',
    },
    {
      comment: 'negative activationRate',
      metadata: { ...viaUrl, activationRate: '-1' },
      field: 'activationRate',
      message: 'at least 0',
    },
    {
      comment: 'activationRate not a number',
      metadata: { ...viaUrl, activationRate: 'high' },
      field: 'activationRate',
      message: 'not a number',
    },
    { comment: 'window below 1s', metadata: { ...viaUrl, window: '500ms' }, field: 'window', message: 'at least 1s' },
    { comment: 'window 0', metadata: { ...viaUrl, window: '0' }, field: 'window', message: 'at least 1s' },
    {
      comment: 'window with an unknown unit',
      metadata: { ...viaUrl, window: '1d' },
      field: 'window',
      message: 'not a duration',
    },
    {
      comment: 'window as a float without unit',
      metadata: { ...viaUrl, window: '1.5' },
      field: 'window',
      message: 'not a duration',
    },
    {
      comment: 'negative window',
      metadata: { ...viaUrl, window: '-60s' },
      field: 'window',
      message: 'must not be negative',
    },
    { comment: 'window above 1h', metadata: { ...viaUrl, window: '61m' }, field: 'window', message: 'at most 1h0m0s' },
    { comment: 'timeout 0', metadata: { ...viaUrl, timeout: '0s' }, field: 'timeout', message: 'at least 1ms' },
    {
      comment: 'timeout above 60s',
      metadata: { ...viaUrl, timeout: '61s' },
      field: 'timeout',
      message: 'at most 1m0s',
    },
    {
      comment: 'timeout not a duration',
      metadata: { ...viaUrl, timeout: 'soon' },
      field: 'timeout',
      message: 'not a duration',
    },
  ];
  it.each(rejected)('rejects: $comment', ({ metadata, field, message }) => {
    let error: unknown;
    try {
      parseHttpRateConfig(trigger(metadata));
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).field).toBe(`spec.triggers[0].metadata.${field}`);
    expect((error as ValidationError).message).toContain(message);
    expect((error as ValidationError).message).not.toContain('s3cret');
  });

  it('builds without touching the network or the cluster, through the registry', () => {
    // triggerInput's default cluster fails any call; building must not make one.
    const scaler = createScaler(trigger(viaService));
    expect(scaler.target).toBe(100);
    expect(scaler.metricType).toBe('AverageValue');
  });
});

describe('http-rate metric names', () => {
  const rows = [
    {
      comment: 'the counter name after http-rate-',
      index: 0,
      counter,
      name: 's0-http-rate-nginx_vts_server_requests_total',
    },
    {
      comment: 'labels are not part of the name; the index keeps triggers apart',
      index: 2,
      counter: 'reqs{a="b"}',
      name: 's2-http-rate-reqs',
    },
    {
      comment: 'colons (recording-rule names) are normalized like KEDA',
      index: 1,
      counter: 'job:requests:rate5m',
      name: 's1-http-rate-job-requests-rate5m',
    },
    { comment: 'a name given as __name__', index: 0, counter: '{__name__="x.y"}', name: 's0-http-rate-x-y' },
  ];
  it.each(rows)('$comment', ({ index, counter: c, name }) => {
    expect(createHttpRateScaler(trigger({ ...viaUrl, counter: c }, index)).metricName).toBe(name);
  });
});

describe('http-rate window: the rate of summed counters', () => {
  // Each row: a window, reads (time in s, series, value), and the rate expected at the time of the last read.
  type Read = [t: number, series: string, value: number];
  const steady = (series: string, perSecond: number, from: number, to: number, start = 0): Read[] =>
    Array.from({ length: to - from + 1 }, (_, i) => [from + i, series, start + perSecond * i] as Read);
  const rows: { comment: string; windowS: number; reads: Read[]; now?: number; expected: number | undefined }[] = [
    { comment: 'first read: unknown, not zero', windowS: 60, reads: [[0, 'a', 100]], expected: undefined },
    {
      comment: 'two reads of a steady counter',
      windowS: 60,
      reads: [
        [0, 'a', 100],
        [1, 'a', 120],
      ],
      expected: 20,
    },
    {
      comment: 'a steady counter at 20/s over a full window',
      windowS: 60,
      reads: steady('a', 20, 0, 120),
      expected: 20,
    },
    { comment: 'an idle counter: a real zero', windowS: 60, reads: steady('a', 0, 0, 10, 500), expected: 0 },
    {
      comment: 'a reset counts the post-reset value as the increase (10 + 5 + 10 in 3 s)',
      windowS: 60,
      reads: [
        [0, 'a', 100],
        [1, 'a', 110],
        [2, 'a', 5],
        [3, 'a', 15],
      ],
      expected: 25 / 3,
    },
    {
      comment: 'a reset to zero',
      windowS: 60,
      reads: [
        [0, 'a', 100],
        [1, 'a', 0],
        [2, 'a', 10],
      ],
      expected: 5,
    },
    {
      comment: 'two endpoints are summed',
      windowS: 60,
      reads: [...steady('a', 10, 0, 30), ...steady('b', 5, 0, 30, 1e6)],
      expected: 15,
    },
    {
      comment: 'an endpoint disappearing keeps its increase while in the window (no drop, no negative)',
      windowS: 60,
      // a and b at 10/s for 30 s, then b is gone and a carries the 20/s alone: (600 + 300 + 900 − 300)… per 60 s
      reads: [...steady('a', 10, 0, 30), ...steady('b', 10, 0, 30), ...steady('a', 20, 30, 60, 300)],
      expected: (900 + 300) / 60,
    },
    {
      comment: 'an endpoint that disappeared leaves the sum once its reads leave the window',
      windowS: 60,
      reads: [...steady('a', 10, 0, 30), ...steady('b', 10, 0, 30), ...steady('a', 20, 30, 100, 300)],
      expected: 20,
    },
    {
      comment: 'a new endpoint with a large counter: its first value is a baseline, not a spike',
      windowS: 60,
      reads: [...steady('a', 10, 0, 30), [29, 'new', 5e9], [30, 'new', 5e9 + 10]],
      expected: (300 + 10) / 30,
    },
    {
      comment: 'a new endpoint seen once only adds nothing',
      windowS: 60,
      reads: [...steady('a', 10, 0, 30), [30, 'new', 5e9]],
      expected: 10,
    },
    {
      comment: 'traffic moving from one endpoint to another keeps its total',
      windowS: 60,
      reads: [...steady('old', 10, 0, 30), ...steady('new', 10, 31, 60, 7)],
      expected: (300 + 290) / 60,
    },
    {
      comment: 'window eviction: a past burst leaves the rate once it is older than the window',
      windowS: 60,
      reads: [...steady('a', 100, 0, 60), ...steady('a', 0, 61, 121, 6000 + 100)],
      expected: 0,
    },
    {
      comment: 'the window measures only its own span',
      windowS: 10,
      reads: [...steady('a', 100, 0, 50), ...steady('a', 2, 51, 70, 5000 + 2)],
      expected: 2,
    },
    {
      comment: 'a gap longer than the window leaves one read: unknown again',
      windowS: 10,
      reads: [...steady('a', 10, 0, 5), [100, 'a', 5000]],
      expected: undefined,
    },
    {
      comment: 'reads older than the window at query time are evicted: unknown',
      windowS: 10,
      reads: steady('a', 10, 0, 5),
      now: 20,
      expected: undefined,
    },
    {
      comment: 'irregular intervals: increase over elapsed time',
      windowS: 60,
      reads: [
        [0, 'a', 0],
        [0.5, 'a', 5],
        [3, 'a', 30],
        [4, 'a', 40],
      ],
      expected: 10,
    },
  ];
  it.each(rows)('$comment', ({ windowS, reads, now, expected }) => {
    const w = new RateWindow(windowS * 1000);
    for (const [t, series, value] of reads) w.record(series, t * 1000, value);
    const at = (now ?? Math.max(...reads.map(([t]) => t))) * 1000;
    const rate = w.rate(at);
    if (expected === undefined) expect(rate).toBeUndefined();
    else expect(rate).toBeCloseTo(expected, 9);
  });

  it('never goes negative or spikes under random endpoint churn and resets', () => {
    const w = new RateWindow(30_000);
    const counters = new Map<string, number>();
    let seed = 42;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let t = 0; t < 600; t++) {
      // Each second 1 to 4 endpoints (out of 6) are up; together they serve 30 requests/s.
      const up = ['a', 'b', 'c', 'd', 'e', 'f'].filter(() => random() < 0.5).slice(0, 4);
      if (up.length === 0) up.push('a');
      for (const ep of up) {
        let value = counters.get(ep) ?? Math.floor(random() * 1e6);
        if (random() < 0.02) value = 0; // restart
        value += 30 / up.length;
        counters.set(ep, value);
        w.record(ep, t * 1000, value);
      }
      const rate = w.rate(t * 1000);
      if (t > 0 && rate !== undefined) {
        expect(rate).toBeGreaterThanOrEqual(0);
        expect(rate).toBeLessThan(60);
      }
    }
  });

  it('bounds the samples per series; thinning keeps the rate exact', () => {
    const w = new RateWindow(3_600_000, 16);
    for (let t = 0; t <= 1000; t++) w.record('a', t * 1000, 7 * t);
    expect(w.pointsOf('a')).toBeLessThanOrEqual(16);
    expect(w.rate(1_000_000)).toBeCloseTo(7, 9);
  });

  it('drops series not seen for a window', () => {
    const w = new RateWindow(10_000);
    w.record('gone', 0, 1);
    w.record('gone', 1000, 2);
    w.record('kept', 5000, 1);
    w.evict(12_000);
    expect(w.has('gone')).toBe(false);
    expect(w.has('kept')).toBe(true);
    expect(w.size).toBe(1);
  });

  it('ignores a read that is not newer than the last one', () => {
    const w = new RateWindow(60_000);
    w.record('a', 1000, 10);
    w.record('a', 2000, 20);
    w.record('a', 1500, 0);
    expect(w.rate(2000)).toBeCloseTo(10, 9);
  });
});
