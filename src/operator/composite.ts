/**
 * KEDA's `advanced.scalingModifiers` (docs/keda-compatibility.md#generated-hpa; kedacore/keda
 * `pkg/scaling/modifiers/formula.go`): the external triggers combine into one metric, `composite-metric`, the value of
 * `formula` over the triggers' values by trigger name. The HPA gets that one External metric (target `target`, type
 * `metricType`) instead of one per trigger; the object is active when the composite value is strictly above
 * `activationTarget` (default 0) and no trigger fails.
 *
 * Parsed once, at validation: the formula (formula.ts, no eval), the numbers, and that every name the formula uses is
 * a trigger's `name` (KEDA proves the same by running the formula with every named trigger at -1).
 */
import { ValidationError } from '../errors.ts';
import { FormulaError, parseFormula, type Formula } from './formula.ts';
import type { ScaledObjectSpec } from './scaled-object.ts';

export const COMPOSITE_METRIC = 'composite-metric';
const FIELD = 'spec.advanced.scalingModifiers';

export interface CompositeSpec {
  readonly formula: Formula;
  readonly target: number;
  readonly activationTarget: number;
  readonly metricType: 'AverageValue' | 'Value';
}

/** Trigger types the HPA reads itself (Resource metrics): never part of a formula. */
export const RESOURCE_TRIGGER_TYPES: readonly string[] = ['cpu', 'memory'];

/** The composite spec of `spec`, or undefined when it has no scalingModifiers. Throws ValidationError naming the field. */
export function parseComposite(spec: Pick<ScaledObjectSpec, 'advanced' | 'triggers'>): CompositeSpec | undefined {
  const modifiers = spec.advanced?.scalingModifiers;
  if (modifiers === undefined || Object.keys(modifiers).length === 0) return undefined;
  if (modifiers.formula === undefined || modifiers.formula.trim() === '') {
    throw new ValidationError(`${FIELD}.formula`, 'is mandatory when scalingModifiers are set');
  }
  if (modifiers.target === undefined || modifiers.target.trim() === '') {
    throw new ValidationError(`${FIELD}.target`, 'formula is given but target is empty');
  }
  const target = number(modifiers.target, `${FIELD}.target`);
  if (!(target > 0))
    throw new ValidationError(`${FIELD}.target`, `must be a number greater than 0, got ${modifiers.target}`);
  const activationTarget =
    modifiers.activationTarget === undefined || modifiers.activationTarget.trim() === ''
      ? 0
      : number(modifiers.activationTarget, `${FIELD}.activationTarget`);
  let formula: Formula;
  try {
    formula = parseFormula(modifiers.formula);
  } catch (err) {
    if (err instanceof FormulaError) throw new ValidationError(`${FIELD}.formula`, err.message, { cause: err });
    throw err;
  }
  const names = new Set(
    spec.triggers.flatMap((t) =>
      t.name !== undefined && t.name !== '' && !RESOURCE_TRIGGER_TYPES.includes(t.type) ? [t.name] : [],
    ),
  );
  for (const variable of formula.variables) {
    if (!names.has(variable)) {
      const hyphenated = [...names].some((name) => name.includes('-'));
      throw new ValidationError(
        `${FIELD}.formula`,
        `"${variable}" is not the name of a trigger (the formula can use: ${[...names].join(', ') || 'no named trigger'}; cpu and memory triggers are read by the HPA and cannot be used` +
          `${hyphenated ? '; a name with "-" reads as a subtraction in a formula: use letters, digits and _' : ''})`,
      );
    }
  }
  return { formula, target, activationTarget, metricType: modifiers.metricType ?? 'AverageValue' };
}

function number(text: string, field: string): number {
  // Plain decimal notation, as trigger metadata numbers (metadata.ts): Number() would also take '0x10', '0b1', '0o7'.
  const value = Number(text.trim());
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text.trim()) || !Number.isFinite(value)) {
    throw new ValidationError(field, `must be a number, got ${JSON.stringify(text.slice(0, 40))}`);
  }
  return value;
}
