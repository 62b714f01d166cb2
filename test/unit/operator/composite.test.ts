// Proves parseComposite, spec.advanced.scalingModifiers as validation sees it: no modifiers (or an empty object) is no
// composite metric; the formula and target are required, the target a number > 0, activationTarget a number (default
// 0), metricType AverageValue by default; every name the formula uses must be the name of a trigger other than cpu
// and memory, and the error says which name and lists the usable ones. (The formula language itself:
// formula.test.ts.)
import { describe, expect, test } from 'vitest';
import { ValidationError } from '../../../src/errors.ts';
import { COMPOSITE_METRIC, RESOURCE_TRIGGER_TYPES, parseComposite } from '../../../src/operator/composite.ts';

interface Trigger {
  type: string;
  name?: string;
}

/** The part of a spec parseComposite reads. */
function spec(modifiers: Record<string, string> | undefined, triggers: Trigger[] = NAMED) {
  return {
    advanced: {
      restoreToOriginalReplicaCount: false,
      ...(modifiers === undefined ? {} : { scalingModifiers: modifiers }),
    },
    triggers: triggers.map((t) => ({ metadata: {}, useCachedMetrics: false, ...t })),
  } as unknown as Parameters<typeof parseComposite>[0];
}

const NAMED: Trigger[] = [
  { type: 'rabbitmq', name: 'queue' },
  { type: 'prometheus', name: 'lag' },
];

test('the composite metric name and the trigger types a formula cannot use', () => {
  expect(COMPOSITE_METRIC).toBe('composite-metric');
  expect(RESOURCE_TRIGGER_TYPES).toStrictEqual(['cpu', 'memory']);
});

describe('parseComposite: accepted', () => {
  const rows: {
    comment: string;
    modifiers: Record<string, string> | undefined;
    triggers?: Trigger[];
    want:
      | { target: number; activationTarget: number; metricType: 'AverageValue' | 'Value'; variables: string[] }
      | undefined;
  }[] = [
    { comment: 'no scalingModifiers: no composite metric', modifiers: undefined, want: undefined },
    { comment: 'an empty scalingModifiers object: ignored, as in KEDA', modifiers: {}, want: undefined },
    {
      comment: 'formula and target: activationTarget 0 and metricType AverageValue by default',
      modifiers: { formula: 'queue + lag', target: '5' },
      want: { target: 5, activationTarget: 0, metricType: 'AverageValue', variables: ['queue', 'lag'] },
    },
    {
      comment: 'metricType Value kept',
      modifiers: { formula: 'queue', target: '5', metricType: 'Value' },
      want: { target: 5, activationTarget: 0, metricType: 'Value', variables: ['queue'] },
    },
    {
      comment: 'activationTarget and a fractional target',
      modifiers: { formula: 'max(queue, lag)', target: '2.5', activationTarget: '1.5' },
      want: { target: 2.5, activationTarget: 1.5, metricType: 'AverageValue', variables: ['queue', 'lag'] },
    },
    {
      comment: 'an empty activationTarget reads as 0',
      modifiers: { formula: 'queue', target: '1', activationTarget: '' },
      want: { target: 1, activationTarget: 0, metricType: 'AverageValue', variables: ['queue'] },
    },
    {
      comment: 'a negative activationTarget (any number is allowed there)',
      modifiers: { formula: 'queue', target: '1', activationTarget: '-1' },
      want: { target: 1, activationTarget: -1, metricType: 'AverageValue', variables: ['queue'] },
    },
    {
      comment: 'numbers with surrounding spaces and exponents',
      modifiers: { formula: 'queue', target: ' 1e1 ', activationTarget: ' 0.5 ' },
      want: { target: 10, activationTarget: 0.5, metricType: 'AverageValue', variables: ['queue'] },
    },
    {
      comment: 'a formula of constants only needs no trigger',
      modifiers: { formula: '3', target: '1' },
      want: { target: 1, activationTarget: 0, metricType: 'AverageValue', variables: [] },
    },
    {
      comment: 'a formula using only some of the triggers',
      modifiers: { formula: 'lag ?? 0', target: '1' },
      want: { target: 1, activationTarget: 0, metricType: 'AverageValue', variables: ['lag'] },
    },
    {
      comment: 'cpu/memory triggers next to the named ones are fine as long as the formula does not use them',
      modifiers: { formula: 'queue * 2', target: '4' },
      triggers: [...NAMED, { type: 'cpu', name: 'cpu' }],
      want: { target: 4, activationTarget: 0, metricType: 'AverageValue', variables: ['queue'] },
    },
  ];
  test.each(rows)('$comment', ({ modifiers, triggers, want }) => {
    const composite = parseComposite(spec(modifiers, triggers));
    if (want === undefined) {
      expect(composite).toBeUndefined();
      return;
    }
    expect(composite).toMatchObject({
      target: want.target,
      activationTarget: want.activationTarget,
      metricType: want.metricType,
    });
    expect(composite?.formula.variables).toStrictEqual(want.variables);
    expect(composite?.formula.source).toBe(modifiers?.['formula']);
  });

  test('the parsed formula evaluates over the triggers by name', () => {
    const composite = parseComposite(spec({ formula: 'queue + lag / 2', target: '5' }));
    expect(composite?.formula.evaluate({ queue: 4, lag: 6 })).toStrictEqual({ kind: 'number', value: 7 });
  });
});

describe('parseComposite: rejected, naming the field', () => {
  const FIELD = 'spec.advanced.scalingModifiers';
  const rows: {
    comment: string;
    modifiers: Record<string, string>;
    triggers?: Trigger[];
    field: string;
    message: string;
  }[] = [
    {
      comment: 'target without a formula (KEDA: formula is mandatory)',
      modifiers: { target: '5' },
      field: `${FIELD}.formula`,
      message: 'is mandatory when scalingModifiers are set',
    },
    {
      comment: 'a blank formula',
      modifiers: { formula: '  ', target: '5' },
      field: `${FIELD}.formula`,
      message: 'is mandatory when scalingModifiers are set',
    },
    {
      comment: 'only activationTarget',
      modifiers: { activationTarget: '1' },
      field: `${FIELD}.formula`,
      message: 'is mandatory',
    },
    {
      comment: 'formula without a target (KEDA message)',
      modifiers: { formula: 'queue' },
      field: `${FIELD}.target`,
      message: 'formula is given but target is empty',
    },
    {
      comment: 'an empty target',
      modifiers: { formula: 'queue', target: '' },
      field: `${FIELD}.target`,
      message: 'formula is given but target is empty',
    },
    {
      comment: 'target 0',
      modifiers: { formula: 'queue', target: '0' },
      field: `${FIELD}.target`,
      message: 'must be a number greater than 0, got 0',
    },
    {
      comment: 'target negative',
      modifiers: { formula: 'queue', target: '-2' },
      field: `${FIELD}.target`,
      message: 'must be a number greater than 0, got -2',
    },
    {
      comment: 'target not a number',
      modifiers: { formula: 'queue', target: 'five' },
      field: `${FIELD}.target`,
      message: 'must be a number, got "five"',
    },
    {
      comment: 'target Infinity',
      modifiers: { formula: 'queue', target: 'Infinity' },
      field: `${FIELD}.target`,
      message: 'must be a number, got "Infinity"',
    },
    {
      comment: 'target in hex (plain decimal only, as trigger metadata numbers)',
      modifiers: { formula: 'queue', target: '0x10' },
      field: `${FIELD}.target`,
      message: 'must be a number, got "0x10"',
    },
    {
      comment: 'activationTarget not a number',
      modifiers: { formula: 'queue', target: '5', activationTarget: 'low' },
      field: `${FIELD}.activationTarget`,
      message: 'must be a number, got "low"',
    },
    {
      comment: 'activationTarget with a unit',
      modifiers: { formula: 'queue', target: '5', activationTarget: '10%' },
      field: `${FIELD}.activationTarget`,
      message: 'must be a number, got "10%"',
    },
    {
      comment: 'a formula that does not parse: the formula error, under .formula',
      modifiers: { formula: 'queue +', target: '5' },
      field: `${FIELD}.formula`,
      message: 'column',
    },
    {
      comment: 'an unknown name: named, with the names the formula can use',
      modifiers: { formula: 'queue + orders', target: '5' },
      field: `${FIELD}.formula`,
      message:
        '"orders" is not the name of a trigger (the formula can use: queue, lag; cpu and memory triggers are read by the HPA and cannot be used)',
    },
    {
      comment: 'the first unknown name is the one reported',
      modifiers: { formula: 'b + a', target: '5' },
      field: `${FIELD}.formula`,
      message: '"b" is not the name of a trigger (the formula can use: queue, lag;',
    },
    {
      comment: 'no named trigger at all',
      modifiers: { formula: 'queue', target: '5' },
      triggers: [{ type: 'rabbitmq' }, { type: 'prometheus', name: '' }],
      field: `${FIELD}.formula`,
      message: '"queue" is not the name of a trigger (the formula can use: no named trigger;',
    },
    {
      comment: 'a cpu trigger name cannot be used, and is not listed',
      modifiers: { formula: 'queue + load', target: '5' },
      triggers: [...NAMED, { type: 'cpu', name: 'load' }],
      field: `${FIELD}.formula`,
      message:
        '"load" is not the name of a trigger (the formula can use: queue, lag; cpu and memory triggers are read by the HPA and cannot be used)',
    },
    {
      comment: 'a memory trigger name cannot be used either',
      modifiers: { formula: 'mem', target: '5' },
      triggers: [{ type: 'memory', name: 'mem' }],
      field: `${FIELD}.formula`,
      message: '"mem" is not the name of a trigger (the formula can use: no named trigger;',
    },
    {
      comment: 'a trigger name with "-" reads as a subtraction: its first part is unknown',
      modifiers: { formula: 'my-queue', target: '5' },
      triggers: [{ type: 'rabbitmq', name: 'my-queue' }],
      field: `${FIELD}.formula`,
      message: '"my" is not the name of a trigger (the formula can use: my-queue;',
    },
  ];
  test.each(rows)('$comment', ({ modifiers, triggers, field, message }) => {
    let caught: unknown;
    try {
      parseComposite(spec(modifiers, triggers));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    const error = caught as ValidationError;
    expect(error.field).toBe(field);
    expect(error.message.startsWith(`${field}: `)).toBe(true);
    expect(error.message).toContain(message);
  });
});
