import { describe, expect, test } from 'vitest';
import { ValidationError } from '../../../src/errors.ts';
import {
  activeUnknown,
  equalConditions,
  fallbackExists,
  initialConditions,
  kubeTime,
  noFallbackFound,
  notPaused,
  partialTriggerError,
  scaledObjectCheckFailed,
  scaledObjectPaused,
  scaledObjectReady,
  scaledObjectUnpaused,
  scalerActive,
  scalerCooldown,
  scalerNotActive,
  setCondition,
  triggerError,
  type ConditionFields,
} from '../../../src/operator/conditions.ts';
import type { Condition } from '../../../src/operator/scaled-object.ts';

const T0 = new Date('2026-06-01T12:00:00.250Z');
const T1 = new Date('2026-06-01T12:05:00Z');

describe('condition builders (KEDA strings, docs/keda-compatibility.md#conditions-and-events)', () => {
  const rows: { comment: string; built: ConditionFields; expected: ConditionFields }[] = [
    {
      comment: 'Ready True ScaledObjectReady',
      built: scaledObjectReady(),
      expected: {
        type: 'Ready',
        status: 'True',
        reason: 'ScaledObjectReady',
        message: 'ScaledObject is defined correctly and is ready for scaling',
      },
    },
    {
      comment: 'Ready False ScaledObjectCheckFailed names the field of a ValidationError',
      built: scaledObjectCheckFailed(new ValidationError('spec.maxReplicaCount', 'must be at least 1, got 0')),
      expected: {
        type: 'Ready',
        status: 'False',
        reason: 'ScaledObjectCheckFailed',
        message: 'spec.maxReplicaCount: must be at least 1, got 0',
      },
    },
    {
      comment: 'Ready False ScaledObjectCheckFailed with a context, KEDA style <msg>: <err>',
      built: scaledObjectCheckFailed(
        new Error('connection refused'),
        'failed to ensure HPA is correctly created for ScaledObject',
      ),
      expected: {
        type: 'Ready',
        status: 'False',
        reason: 'ScaledObjectCheckFailed',
        message: 'failed to ensure HPA is correctly created for ScaledObject: connection refused',
      },
    },
    {
      comment: 'Ready False TriggerError',
      built: triggerError(),
      expected: {
        type: 'Ready',
        status: 'False',
        reason: 'TriggerError',
        message: 'Triggers defined in ScaledObject are not working correctly',
      },
    },
    {
      comment: 'Ready Unknown PartialTriggerError',
      built: partialTriggerError(),
      expected: {
        type: 'Ready',
        status: 'Unknown',
        reason: 'PartialTriggerError',
        message: 'Some triggers defined in ScaledObject are not working correctly',
      },
    },
    {
      comment: 'Active True ScalerActive',
      built: scalerActive(),
      expected: {
        type: 'Active',
        status: 'True',
        reason: 'ScalerActive',
        message: 'Scaling is performed because triggers are active',
      },
    },
    {
      comment: 'Active True ScalerActive, forced by annotation',
      built: scalerActive(true),
      expected: {
        type: 'Active',
        status: 'True',
        reason: 'ScalerActive',
        message: 'Scaling is performed because activation is being forced by annotation',
      },
    },
    {
      comment: 'Active False ScalerNotActive',
      built: scalerNotActive(),
      expected: {
        type: 'Active',
        status: 'False',
        reason: 'ScalerNotActive',
        message: 'Scaling is not performed because triggers are not active',
      },
    },
    {
      comment: 'Active False ScalerCooldown',
      built: scalerCooldown(),
      expected: {
        type: 'Active',
        status: 'False',
        reason: 'ScalerCooldown',
        message: 'Scaler cooling down because triggers are not active',
      },
    },
    {
      comment: 'Active Unknown UnknownState',
      built: activeUnknown(),
      expected: { type: 'Active', status: 'Unknown', reason: 'UnknownState', message: 'ScaledObject check failed' },
    },
    {
      comment: 'Fallback False NoFallbackFound',
      built: noFallbackFound(),
      expected: {
        type: 'Fallback',
        status: 'False',
        reason: 'NoFallbackFound',
        message: 'No fallbacks are active on this scaled object',
      },
    },
    {
      comment: 'Fallback True FallbackExists',
      built: fallbackExists(),
      expected: {
        type: 'Fallback',
        status: 'True',
        reason: 'FallbackExists',
        message: 'At least one trigger is falling back on this scaled object',
      },
    },
    {
      comment: 'Paused False as initialised: no reason, no message',
      built: notPaused(),
      expected: { type: 'Paused', status: 'False' },
    },
    {
      comment: 'Paused True ScaledObjectPaused',
      built: scaledObjectPaused(),
      expected: { type: 'Paused', status: 'True', reason: 'ScaledObjectPaused', message: 'ScaledObject is paused' },
    },
    {
      comment: 'Paused False ScaledObjectUnpaused',
      built: scaledObjectUnpaused(),
      expected: {
        type: 'Paused',
        status: 'False',
        reason: 'ScaledObjectUnpaused',
        message: 'pause annotation removed for ScaledObject',
      },
    },
  ];
  test.each(rows)('$comment', ({ built, expected }) => {
    expect(built).toStrictEqual(expected);
  });

  test('initial conditions: Ready, Active, Fallback Unknown; Paused False', () => {
    expect(initialConditions()).toStrictEqual([
      { type: 'Ready', status: 'Unknown' },
      { type: 'Active', status: 'Unknown' },
      { type: 'Fallback', status: 'Unknown' },
      { type: 'Paused', status: 'False' },
    ]);
  });
});

describe('kubeTime', () => {
  test('RFC 3339 in whole seconds, UTC', () => {
    expect(kubeTime(T0)).toBe('2026-06-01T12:00:00Z');
  });
});

describe('setCondition', () => {
  const stamped = (c: ConditionFields, at: string): Condition => ({ ...c, lastTransitionTime: at });
  const rows: {
    comment: string;
    before: Condition[] | undefined;
    next: ConditionFields;
    after: Condition[];
  }[] = [
    {
      comment: 'no conditions yet: appended with now',
      before: undefined,
      next: scaledObjectReady(),
      after: [stamped(scaledObjectReady(), '2026-06-01T12:05:00Z')],
    },
    {
      comment: 'new type: appended after the others, order kept',
      before: [stamped(scaledObjectReady(), '2026-01-01T00:00:00Z')],
      next: scalerActive(),
      after: [stamped(scaledObjectReady(), '2026-01-01T00:00:00Z'), stamped(scalerActive(), '2026-06-01T12:05:00Z')],
    },
    {
      comment: 'same status, same reason: lastTransitionTime kept',
      before: [stamped(scalerActive(), '2026-01-01T00:00:00Z')],
      next: scalerActive(),
      after: [stamped(scalerActive(), '2026-01-01T00:00:00Z')],
    },
    {
      comment: 'same status, new reason (NotActive → Cooldown): lastTransitionTime kept, reason and message updated',
      before: [stamped(scalerNotActive(), '2026-01-01T00:00:00Z')],
      next: scalerCooldown(),
      after: [stamped(scalerCooldown(), '2026-01-01T00:00:00Z')],
    },
    {
      comment: 'status changed: lastTransitionTime is now',
      before: [stamped(scaledObjectReady(), '2026-01-01T00:00:00Z'), stamped(scalerActive(), '2026-01-01T00:00:00Z')],
      next: scalerNotActive(),
      after: [stamped(scaledObjectReady(), '2026-01-01T00:00:00Z'), stamped(scalerNotActive(), '2026-06-01T12:05:00Z')],
    },
    {
      comment: 'same status but no lastTransitionTime yet (written by KEDA-style code): stamped now',
      before: [{ type: 'Paused', status: 'False' }],
      next: notPaused(),
      after: [stamped(notPaused(), '2026-06-01T12:05:00Z')],
    },
    {
      comment: 'a reason that disappears is dropped',
      before: [stamped(scaledObjectUnpaused(), '2026-01-01T00:00:00Z')],
      next: notPaused(),
      after: [stamped(notPaused(), '2026-01-01T00:00:00Z')],
    },
  ];
  test.each(rows)('$comment', ({ before, next, after }) => {
    const copy = structuredClone(before);
    expect(setCondition(before, next, T1)).toStrictEqual(after);
    expect(before).toStrictEqual(copy);
  });
});

describe('equalConditions', () => {
  const ready = { ...scaledObjectReady(), lastTransitionTime: '2026-01-01T00:00:00Z' };
  const active = { ...scalerActive(), lastTransitionTime: '2026-01-01T00:00:00Z' };
  const rows: { comment: string; a: Condition[] | undefined; b: Condition[] | undefined; equal: boolean }[] = [
    { comment: 'both missing', a: undefined, b: undefined, equal: true },
    { comment: 'missing and empty', a: undefined, b: [], equal: true },
    { comment: 'same list', a: [ready, active], b: [ready, active], equal: true },
    { comment: 'order does not matter', a: [ready, active], b: [active, ready], equal: true },
    {
      comment: 'missing reason equals empty reason',
      a: [{ type: 'Paused', status: 'False' }],
      b: [{ type: 'Paused', status: 'False', reason: '', message: '' }],
      equal: true,
    },
    { comment: 'one more condition', a: [ready], b: [ready, active], equal: false },
    { comment: 'different type', a: [ready], b: [active], equal: false },
    { comment: 'status differs', a: [ready], b: [{ ...ready, status: 'False' }], equal: false },
    { comment: 'reason differs', a: [ready], b: [{ ...ready, reason: 'Other' }], equal: false },
    { comment: 'message differs', a: [ready], b: [{ ...ready, message: 'other' }], equal: false },
    {
      comment: 'lastTransitionTime differs',
      a: [ready],
      b: [{ ...ready, lastTransitionTime: '2026-01-01T00:00:01Z' }],
      equal: false,
    },
    { comment: 'duplicates cannot hide a missing type', a: [ready, ready], b: [ready, active], equal: false },
  ];
  test.each(rows)('$comment', ({ a, b, equal }) => {
    expect(equalConditions(a, b)).toBe(equal);
    expect(equalConditions(b, a)).toBe(equal);
  });

  test('setCondition with an unchanged condition gives an equal list (no status write)', () => {
    const list = [ready, active];
    expect(equalConditions(list, setCondition(list, scalerActive(), T1))).toBe(true);
    expect(equalConditions(list, setCondition(list, scalerNotActive(), T1))).toBe(false);
  });
});
