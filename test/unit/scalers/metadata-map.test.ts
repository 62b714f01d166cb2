// The `map` parameter type of src/scalers/metadata.ts (KEDA's `k1=v1,k2=v2` maps, e.g. customHeaders).
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../src/errors.ts';
import { parseParams } from '../../../src/scalers/metadata.ts';

const spec = { headers: { type: 'map', optional: true } } as const;
const parse = (value: string | undefined) =>
  parseParams(spec, {
    metadata: value === undefined ? {} : { headers: value },
    authParams: {},
    path: 'spec.triggers[0].metadata',
  }).headers;

describe('map parameters', () => {
  it.each([
    { comment: 'absent', value: undefined, expect: undefined },
    { comment: 'empty counts as absent', value: '  ', expect: undefined },
    { comment: 'KEDA row: two pairs', value: 'key1=value1,key2=value2', expect: { key1: 'value1', key2: 'value2' } },
    { comment: 'keys and values are trimmed', value: ' a = 1 , b=2 ', expect: { a: '1', b: '2' } },
    { comment: 'a value may contain "="', value: 'token=abc==,x=y', expect: { token: 'abc==', x: 'y' } },
    { comment: 'an empty value is kept', value: 'a=', expect: { a: '' } },
  ])('accepts: $comment', ({ value, expect: want }) => {
    const parsed = parse(value);
    if (want === undefined) expect(parsed).toBeUndefined();
    else expect({ ...parsed }).toEqual(want);
  });

  it.each([
    { comment: 'KEDA row: a pair without "="', value: 'key1=value1,key2' },
    { comment: 'an empty key', value: '=v' },
    { comment: 'a trailing comma', value: 'a=1,' },
    { comment: 'a repeated key', value: 'a=1,a=2' },
  ])('rejects: $comment', ({ value }) => {
    expect(() => parse(value)).toThrow(ValidationError);
    try {
      parse(value);
    } catch (err) {
      expect((err as ValidationError).field).toBe('spec.triggers[0].metadata.headers');
    }
  });

  it('does not quote the values (they may be secrets) in its error', () => {
    expect(() => parse('X-Token=s3cret,broken')).toThrow(/pair 2 is not/);
    expect(() => parse('X-Token=s3cret,broken')).not.toThrow(/s3cret/);
  });

  it('the result is a plain-data object: __proto__ is an ordinary key', () => {
    const parsed = parse('__proto__=x');
    expect(parsed?.['__proto__']).toBe('x');
    expect(Object.getPrototypeOf(parsed)).toBeNull();
  });
});
