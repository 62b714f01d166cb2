import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../src/errors.ts';
import {
  MAX_TIMEOUT_MS,
  formatDurationMs,
  parseDurationMs,
  parseParams,
  type ParamSpec,
} from '../../../src/scalers/metadata.ts';
import { createScaler } from '../../../src/scalers/registry.ts';
import { expectValidationError, triggerInput } from '../../support/trigger.ts';

describe('parseDurationMs: KEDA durations (whole milliseconds or Go durations)', () => {
  const rows: { comment: string; text: string; ms: number | undefined }[] = [
    { comment: 'a plain integer is milliseconds', text: '1500', ms: 1500 },
    { comment: 'zero', text: '0', ms: 0 },
    { comment: 'seconds', text: '30s', ms: 30_000 },
    { comment: 'fractional seconds', text: '1.5s', ms: 1500 },
    { comment: 'no float noise', text: '1.1s', ms: 1100 },
    { comment: 'minutes and seconds', text: '1m30s', ms: 90_000 },
    { comment: 'hours, minutes, fractional seconds', text: '1h2m3.5s', ms: 3_723_500 },
    { comment: 'milliseconds unit', text: '300ms', ms: 300 },
    { comment: 'microseconds (us)', text: '1500us', ms: 1.5 },
    { comment: 'microseconds (micro sign)', text: '2\u00b5s', ms: 0.002 },
    { comment: 'microseconds (Greek mu)', text: '2\u03bcs', ms: 0.002 },
    { comment: 'nanoseconds', text: '1000000ns', ms: 1 },
    { comment: 'a leading dot', text: '.5s', ms: 500 },
    { comment: 'a trailing dot', text: '1.s', ms: 1000 },
    { comment: 'an explicit plus', text: '+5s', ms: 5000 },
    { comment: 'negative (callers reject it)', text: '-5s', ms: -5000 },
    { comment: 'a float without a unit', text: '1.5', ms: undefined },
    { comment: 'a negative integer without a unit', text: '-5', ms: undefined },
    { comment: 'an unknown unit', text: '1d', ms: undefined },
    { comment: 'upper-case unit', text: '5S', ms: undefined },
    { comment: 'a space inside', text: '1m 30s', ms: undefined },
    { comment: 'a unit alone', text: 's', ms: undefined },
    { comment: 'a sign alone', text: '-', ms: undefined },
    { comment: 'empty', text: '', ms: undefined },
    { comment: 'beyond Go’s largest duration', text: '9999999999999999999h', ms: undefined },
    { comment: 'an integer beyond Go’s largest duration', text: '99999999999999999999', ms: undefined },
  ];
  it.each(rows)('$comment: "$text"', ({ text, ms }) => {
    expect(parseDurationMs(text)).toBe(ms);
  });

  it('formats durations for messages as Go does', () => {
    expect([250, 1000, 1500, 60_000, 90_000, 3_600_000].map(formatDurationMs)).toEqual([
      '250ms',
      '1s',
      '1.5s',
      '1m0s',
      '1m30s',
      '1h0m0s',
    ]);
  });
});

describe('duration parameters', () => {
  const spec = {
    every: { type: 'duration', default: 30_000, min: 1000, max: 3_600_000 },
    grace: { type: 'duration', optional: true },
  } as const satisfies ParamSpec;
  const parse = (metadata: Record<string, string>) =>
    parseParams(spec, { metadata, authParams: {}, path: 'spec.triggers[0].metadata' });

  it('rounds up to whole milliseconds (timers take whole milliseconds)', () => {
    expect(parse({ grace: '1.5ms' })).toEqual({ every: 30_000, grace: 2 });
    expect(parse({ grace: '1ns' })).toEqual({ every: 30_000, grace: 1 });
    expect(parse({ every: '1000.2ms', grace: '0' })).toEqual({ every: 1001, grace: 0 });
  });

  it('parses, defaults and leaves optional ones undefined', () => {
    expect(parse({ every: '2m' })).toEqual({ every: 120_000, grace: undefined });
    expect(parse({})).toEqual({ every: 30_000, grace: undefined });
    expect(parse({ every: ' ', grace: '0' })).toEqual({ every: 30_000, grace: 0 });
  });

  const rejected = [
    { comment: 'not a duration', metadata: { every: 'soon' }, field: 'every', message: 'is not a duration' },
    { comment: 'negative', metadata: { grace: '-1s' }, field: 'grace', message: 'must not be negative' },
    { comment: 'below min', metadata: { every: '999ms' }, field: 'every', message: 'at least 1s' },
    { comment: 'above max', metadata: { every: '2h' }, field: 'every', message: 'at most 1h0m0s' },
  ];
  it.each(rejected)('rejects $comment, naming the field', ({ metadata, field, message }) => {
    expect(() => parse(metadata)).toThrow(ValidationError);
    expect(() => parse(metadata)).toThrow(`spec.triggers[0].metadata.${field}: `);
    expect(() => parse(metadata)).toThrow(message);
  });
});

describe('every scaler timeout is at most MAX_TIMEOUT_MS (60s)', () => {
  const triggers: { type: string; metadata: Record<string, string> }[] = [
    { type: 'prometheus', metadata: { serverAddress: 'http://p:9090', query: 'up', threshold: '1' } },
    { type: 'metrics-api', metadata: { url: 'http://m/stats', valueLocation: 'v', targetValue: '1' } },
    { type: 'rabbitmq', metadata: { host: 'http://u:p@r:15672/', queueName: 'q' } },
    { type: 'http-rate', metadata: { url: 'http://x/metrics', counter: 'requests_total', targetRate: '1' } },
  ];
  it.each(triggers)('$type: 60s is accepted, 60.001s is not', ({ type, metadata }) => {
    expect(MAX_TIMEOUT_MS).toBe(60_000);
    const build = (timeout: string) => createScaler(triggerInput({ type, metadata: { ...metadata, timeout } }));
    expect(() => build('60s')).not.toThrow();
    expect(expectValidationError(() => build('60001'), 'spec.triggers[0].metadata.timeout')).toContain('at most 1m0s');
  });
});
