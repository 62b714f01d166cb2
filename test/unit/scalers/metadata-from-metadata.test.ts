// metadata.ts `fromMetadata: false`: parameters that KEDA reads only from a TriggerAuthentication (or the environment).
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../src/errors.ts';
import { parseParams, type ParamSpec } from '../../../src/scalers/metadata.ts';

const spec = {
  password: { type: 'string', optional: true, fromAuth: true, fromEnv: true, fromMetadata: false },
  ca: { type: 'string', optional: true, fromAuth: true, fromMetadata: false },
} as const satisfies ParamSpec;
const path = 'spec.triggers[0].metadata';

describe('parseParams with fromMetadata: false', () => {
  const accepted = [
    { comment: 'from the TriggerAuthentication', metadata: {}, authParams: { password: 'p' }, expect: 'p' },
    {
      comment: 'from the environment',
      metadata: { passwordFromEnv: 'PW' },
      authParams: {},
      expect: 'from-env',
    },
    { comment: 'absent everywhere', metadata: {}, authParams: {}, expect: undefined },
    {
      comment: 'an empty metadata value counts as absent',
      metadata: { password: ' ' },
      authParams: {},
      expect: undefined,
    },
  ];
  it.each(accepted)('accepts: $comment', ({ metadata, authParams, expect: expected }) => {
    expect(parseParams(spec, { metadata, authParams, resolvedEnv: { PW: 'from-env' }, path }).password).toBe(expected);
  });

  const rejected = [
    {
      comment: 'a value in trigger metadata, even when the TriggerAuthentication has one',
      metadata: { password: 'in-plain-sight' },
      field: `${path}.password`,
      message: /must come from a TriggerAuthentication or passwordFromEnv, not from trigger metadata/,
    },
    {
      comment: 'without fromEnv the message names only the TriggerAuthentication',
      metadata: { ca: 'pem' },
      field: `${path}.ca`,
      message: /must come from a TriggerAuthentication, not from trigger metadata/,
    },
  ];
  it.each(rejected)('rejects: $comment', ({ metadata, field, message }) => {
    let caught: unknown;
    try {
      parseParams(spec, { metadata, authParams: { password: 'p' }, path });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    expect((caught as ValidationError).field).toBe(field);
    expect((caught as ValidationError).message).toMatch(message);
    expect((caught as ValidationError).message).not.toContain('in-plain-sight');
  });
});

describe('values from a TriggerAuthentication or the environment are never quoted in errors', () => {
  const spec = {
    port: { type: 'number', fromAuth: true, fromEnv: true },
    mode: { type: 'enum', values: ['a', 'b'], fromAuth: true, optional: true },
  } as const satisfies ParamSpec;
  const secret = 'hunter2-secret-value';
  const cases = [
    { comment: 'number from authParams', sources: { metadata: {}, authParams: { port: secret } } },
    {
      comment: 'number from the environment',
      sources: { metadata: { portFromEnv: 'PORT' }, authParams: {}, resolvedEnv: { PORT: secret } },
    },
    { comment: 'enum from authParams', sources: { metadata: { port: '1' }, authParams: { mode: secret } } },
  ];
  it.each(cases)('$comment', ({ sources }) => {
    let caught: unknown;
    try {
      parseParams(spec, { ...sources, path: 'spec.triggers[0].metadata' });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    expect((caught as Error).message).not.toContain(secret);
    expect((caught as Error).message).toMatch(/comes from a TriggerAuthentication/);
  });

  it('still quotes a bad value written in trigger metadata (it is not a secret there)', () => {
    expect(() => parseParams(spec, { metadata: { port: 'eighty' }, authParams: {}, path: 'p' })).toThrow(/"eighty"/);
  });
});
