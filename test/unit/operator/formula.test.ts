// Proves formula.ts: the subset of expr-lang that KEDA's scalingModifiers.formula is written in. Expected values are
// what expr-lang gives (precedence from its parser/operator/operator.go, float division, Go's truncated remainder),
// except where formula.ts documents a deliberate difference (Inf/NaN and booleans are errors, not values).
import { describe, expect, test } from 'vitest';
import { SluiceError } from '../../../src/errors.ts';
import { FORMULA_LIMITS, FormulaError, parseFormula, parseFormulaWithLimits } from '../../../src/operator/formula.ts';

type Values = Record<string, number | null | undefined>;

/** The formula's value: a number, or null for nil. */
function run(source: string, values: Values = {}): number | null {
  const result = parseFormula(source).evaluate(values);
  return result.kind === 'nil' ? null : result.value;
}

/** The FormulaError `fn` throws; fails the test if it throws anything else or nothing. */
function formulaError(fn: () => unknown): FormulaError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(FormulaError);
  return thrown as FormulaError;
}

const parseError = (source: string): FormulaError => formulaError(() => parseFormula(source));
const evalError = (source: string, values: Values = {}): FormulaError =>
  formulaError(() => parseFormula(source).evaluate(values));

describe('arithmetic and precedence (values expr-lang gives)', () => {
  const rows: { comment: string; source: string; values?: Values; want: number }[] = [
    { comment: '* before +', source: '2 + 3 * 4', want: 14 },
    { comment: 'parentheses first', source: '(2 + 3) * 4', want: 20 },
    { comment: '- is left-associative', source: '10 - 4 - 3', want: 3 },
    { comment: '+ and - share a level, left to right', source: '10 - 2 + 3', want: 11 },
    { comment: '/ is left-associative', source: '100 / 10 / 5', want: 2 },
    { comment: '* and % share a level, left to right', source: '2 * 3 % 4', want: 2 },
    { comment: '/ is float division even on integers', source: '7 / 2', want: 3.5 },
    { comment: 'mixed levels', source: '2 + 3 * 4 - 10 / 4', want: 11.5 },
    { comment: '% is the truncated remainder', source: '10 % 3', want: 1 },
    { comment: '% keeps the sign of the dividend (Go)', source: '-7 % 3', want: -1 },
    { comment: '% with a negative divisor (Go)', source: '7 % -3', want: 1 },
    { comment: '% on integral trigger values', source: 'a % 4', values: { a: 10 }, want: 2 },
    { comment: 'prefix - binds tighter than *', source: '-2 * 3', want: -6 },
    { comment: 'prefix - on a parenthesised sum', source: '-(2 + 3)', want: -5 },
    { comment: 'double negation', source: '- -2', want: 2 },
    { comment: 'prefix +', source: '+3 - +1', want: 2 },
    { comment: 'minus a negative', source: '2 - -3', want: 5 },
    { comment: 'exponent literal', source: '1e3 + 1', want: 1001 },
    { comment: 'negative exponent, capital E', source: '1.5E-3 * 1000', want: 1.5 },
    { comment: 'leading-dot and trailing-dot decimals', source: '.5 + 1.', want: 1.5 },
    { comment: 'digit separators (expr-lang accepts 1_000)', source: '1_000 + 1', want: 1001 },
    { comment: 'float64 arithmetic, as Go', source: '0.1 + 0.2', want: 0.30000000000000004 },
    { comment: 'leading zeros are decimal, not octal', source: '010 + 1', want: 11 },
    { comment: 'newlines and tabs are whitespace', source: 'a\n\t+ b', values: { a: 1, b: 2 }, want: 3 },
    { comment: 'trigger values', source: '(a + b) * c', values: { a: 1, b: 2, c: 3 }, want: 9 },
    { comment: 'the largest int64 literal', source: '9223372036854775807 / 1e18', want: 9.223372036854776 },
  ];
  test.each(rows)('$comment: $source', ({ source, values, want }) => {
    expect(run(source, values)).toBe(want);
  });

  test('-0 comes out as 0', () => {
    expect(Object.is(run('ceil(-0.5)'), 0)).toBe(true);
    expect(Object.is(run('-4 % 2'), 0)).toBe(true);
  });

  test('% on non-integers is an error (expr-lang: modulo takes integers)', () => {
    const err = evalError('a % 2', { a: 2.5 });
    expect(err.code).toBe('FORMULA_EVALUATION');
    expect(err.column).toBe(1);
    expect(err.message).toContain('`%` needs integers');
    expect(err.message).toContain('2.5 % 2');
    expect(evalError('7 % 1.5').message).toContain('needs integers');
  });

  test('% by zero is an error, as in Go', () => {
    expect(evalError('a % 0', { a: 3 }).message).toContain('integer divide by zero');
  });
});

describe('?? with nil (a failed trigger) and numbers', () => {
  const rows: { comment: string; source: string; values: Values; want: number | null }[] = [
    { comment: 'a failed trigger takes the default', source: 'a ?? 0', values: { a: null }, want: 0 },
    { comment: 'undefined is nil too', source: 'a ?? 7', values: { a: undefined }, want: 7 },
    { comment: 'a number is kept', source: 'a ?? 0', values: { a: 5 }, want: 5 },
    { comment: '0 is not nil', source: 'a ?? 9', values: { a: 0 }, want: 0 },
    { comment: 'chains: first non-nil', source: 'a ?? b ?? 3', values: { a: null, b: 2 }, want: 2 },
    { comment: 'chains: all nil but the last', source: 'a ?? b ?? 3', values: { a: null, b: null }, want: 3 },
    { comment: 'both nil: nil (KEDA then uses fallback)', source: 'a ?? b', values: { a: null, b: null }, want: null },
    { comment: '?? binds tighter than +: 1 + (a ?? 5)', source: '1 + a ?? 5', values: { a: null }, want: 6 },
    { comment: '?? binds tighter than *: 2 * (a ?? 5)', source: '2 * a ?? 5', values: { a: null }, want: 10 },
    {
      comment: '?? binds tighter than comparison: 1 < (a ?? 0)',
      source: '1 < a ?? 0 ? 1 : 2',
      values: { a: null },
      want: 2,
    },
    { comment: 'prefix - takes the ?? chain: -(a ?? 3)', source: '-a ?? 3', values: { a: null }, want: -3 },
    {
      comment: 'prefix ! takes the ?? chain: !(a ?? true)',
      source: '!a ?? true ? 1 : 2',
      values: { a: null },
      want: 2,
    },
    { comment: 'parenthesised ?? then +', source: '(a ?? 0) + (b ?? 0)', values: { a: null, b: 4 }, want: 4 },
    { comment: 'the right side is only read when needed', source: 'a ?? b', values: { a: 1, b: null }, want: 1 },
    {
      comment: 'the right side is not evaluated when the left is a number',
      source: 'a ?? (1 / b)',
      values: { a: 1, b: 0 },
      want: 1,
    },
    { comment: 'nil literal', source: 'nil ?? 4', values: {}, want: 4 },
    { comment: 'inside a function', source: 'max(a ?? 0, b ?? 0)', values: { a: null, b: 3 }, want: 3 },
  ];
  test.each(rows)('$comment: $source', ({ source, values, want }) => {
    expect(run(source, values)).toBe(want);
  });

  test('a ?? chain cannot be the left operand of another operator (expr-lang refuses the mix)', () => {
    for (const [source, column] of [
      ['a ?? 0 + 1', 8],
      ['a ?? 0 > 1', 8],
      ['a ?? b || c', 8],
      ['x + a ?? 0 * 2', 12],
    ] as const) {
      const err = parseError(source);
      expect(err.column, source).toBe(column);
      expect(err.message).toContain('cannot follow a `??` expression');
      expect(err.message).toContain('parentheses');
    }
  });

  test('arithmetic with nil is an error that suggests ??', () => {
    const err = evalError('a + b', { a: 1, b: null });
    expect(err.code).toBe('FORMULA_EVALUATION');
    expect(err.message).toContain('invalid operation');
    expect(err.message).toContain('`b` is nil');
    expect(err.message).toContain('(b ?? 0)');
  });

  test.each([
    { comment: 'unary minus', source: '-a' },
    { comment: 'comparison', source: 'a > 1 ? 1 : 0' },
    { comment: 'function argument', source: 'max(a, 1)' },
    { comment: 'divisor', source: '1 / a' },
  ])('nil in a $comment is an error: $source', ({ source }) => {
    expect(evalError(source, { a: null }).message).toContain('`a` is nil');
  });

  test('nil literal in arithmetic is refused at parse time', () => {
    const err = parseError('a + nil');
    expect(err.column).toBe(5);
    expect(err.message).toContain('`nil` is nil');
  });
});

describe('ternary', () => {
  const rows: { comment: string; source: string; values?: Values; want: number | null }[] = [
    { comment: 'true branch', source: 'a > 2 ? 10 : 20', values: { a: 3 }, want: 10 },
    { comment: 'false branch', source: 'a > 2 ? 10 : 20', values: { a: 2 }, want: 20 },
    { comment: 'right-associative: true ? 1 : (false ? 2 : 3)', source: 'true ? 1 : false ? 2 : 3', want: 1 },
    { comment: 'right-associative, else chain', source: 'false ? 1 : true ? 2 : 3', want: 2 },
    { comment: 'else-if chain, last', source: 'a > 5 ? 3 : a > 2 ? 2 : 1', values: { a: 0 }, want: 1 },
    { comment: 'nested in the true branch', source: 'a > 1 ? a > 2 ? 3 : 2 : 1', values: { a: 2 }, want: 2 },
    { comment: 'condition is the whole || expression', source: 'a > 5 || a < 1 ? 1 : 0', values: { a: 0 }, want: 1 },
    { comment: 'branches are whole expressions', source: 'true ? 1 + 2 : 3 * 4', want: 3 },
    { comment: 'parenthesised as an operand', source: '1 + (a > 0 ? 2 : 3) * 2', values: { a: 1 }, want: 5 },
    { comment: 'the untaken branch is not evaluated', source: 'a > 0 ? a : b / 0', values: { a: 1, b: 1 }, want: 1 },
    { comment: 'a branch may be nil', source: 'a > 0 ? a : nil', values: { a: 0 }, want: null },
  ];
  test.each(rows)('$comment: $source', ({ source, values, want }) => {
    expect(run(source, values)).toBe(want);
  });

  test('a number is not a condition (parse time when certain)', () => {
    const err = parseError('a ? 1 : 2');
    expect(err.column).toBe(1);
    expect(err.message).toContain('condition of `?:` needs a boolean');
  });

  test('a condition that turns out not boolean is an evaluation error', () => {
    const err = evalError('(a ?? true) ? 1 : 2', { a: 3 });
    expect(err.code).toBe('FORMULA_EVALUATION');
    expect(err.message).toContain('not a boolean');
  });
});

describe('comparisons and logical operators', () => {
  const rows: { comment: string; source: string; values?: Values; want: number }[] = [
    { comment: '==', source: 'a == 2 ? 1 : 0', values: { a: 2 }, want: 1 },
    { comment: '!=', source: 'a != 2 ? 1 : 0', values: { a: 2 }, want: 0 },
    { comment: '<', source: 'a < 2 ? 1 : 0', values: { a: 2 }, want: 0 },
    { comment: '<=', source: 'a <= 2 ? 1 : 0', values: { a: 2 }, want: 1 },
    { comment: '>', source: 'a > 2 ? 1 : 0', values: { a: 3 }, want: 1 },
    { comment: '>=', source: 'a >= 2 ? 1 : 0', values: { a: 1 }, want: 0 },
    { comment: 'comparison binds looser than +', source: 'a + 1 > 2 ? 1 : 0', values: { a: 2 }, want: 1 },
    { comment: 'chain: 1 < a < 3 is 1 < a && a < 3 (inside)', source: '1 < a < 3 ? 1 : 0', values: { a: 2 }, want: 1 },
    { comment: 'chain: outside', source: '1 < a < 3 ? 1 : 0', values: { a: 5 }, want: 0 },
    { comment: 'chain of ==', source: 'a == b == c ? 1 : 0', values: { a: 1, b: 1, c: 1 }, want: 1 },
    { comment: '== nil tells a failed trigger', source: 'a == nil ? 0 : a', values: { a: null }, want: 0 },
    { comment: '== nil on a number', source: 'a == nil ? 0 : a', values: { a: 4 }, want: 4 },
    { comment: '!= nil', source: 'a != nil ? a : 9', values: { a: null }, want: 9 },
    { comment: 'nil == nil', source: 'nil == nil ? 1 : 0', want: 1 },
    { comment: '&& binds tighter than ||', source: 'true || false && false ? 1 : 0', want: 1 },
    { comment: 'and / or words', source: 'a > 1 and b > 1 or false ? 1 : 0', values: { a: 2, b: 2 }, want: 1 },
    { comment: '! on a comparison', source: '!(a > 1) ? 1 : 0', values: { a: 0 }, want: 1 },
    { comment: 'not word', source: 'not (a > 1) ? 1 : 0', values: { a: 5 }, want: 0 },
    { comment: '! binds tighter than ==: (!false) == true', source: '!false == true ? 1 : 0', want: 1 },
    { comment: 'double !', source: '!!true ? 1 : 0', want: 1 },
    { comment: 'booleans compare with ==', source: '(a > 1) == (b > 1) ? 1 : 0', values: { a: 0, b: 0 }, want: 1 },
  ];
  test.each(rows)('$comment: $source', ({ source, values, want }) => {
    expect(run(source, values)).toBe(want);
  });

  const shortCircuit: { comment: string; source: string; want: number }[] = [
    { comment: 'true || x does not read x', source: 'true || a > 1 ? 1 : 0', want: 1 },
    { comment: 'false && x does not read x', source: 'false && a > 1 ? 1 : 0', want: 0 },
    { comment: 'or word short-circuits too', source: 'true or a > 1 ? 1 : 0', want: 1 },
    { comment: 'a chain of || stops at the first true', source: 'false || true || a > 1 ? 1 : 0', want: 1 },
    { comment: 'a comparison chain stops at the first false', source: '2 < 1 < a ? 1 : 0', want: 0 },
  ];
  test.each(shortCircuit)('short-circuit, with a nil: $comment', ({ source, want }) => {
    expect(run(source, { a: null })).toBe(want);
  });

  test('without short-circuit the nil is read: an error', () => {
    expect(evalError('false || a > 1 ? 1 : 0', { a: null }).message).toContain('`a` is nil');
    expect(evalError('true && a > 1 ? 1 : 0', { a: null }).message).toContain('`a` is nil');
  });

  test('operators on the wrong type are refused at parse time', () => {
    for (const [source, column, fragment] of [
      ['a && b ? 1 : 0', 1, '`&&` needs a boolean'],
      ['!a ? 1 : 0', 2, '`!` needs a boolean'],
      ['1 + true', 5, '`+` needs a number'],
      ['-true', 2, '`-` needs a number'],
      ['1 == true ? 1 : 0', 3, '`==` compares a number with a boolean'],
      ['true < 1 ? 1 : 0', 1, '`<` needs a number'],
      ['max(true, 1)', 5, 'max() needs a number'],
      // ! takes `true * 2` (precedence 50 < 60): the `*` is what fails, on `true`, not on `!true`.
      ['!true * 2 ? 1 : 0', 2, '`*` needs a number, but `true` is a boolean'],
    ] as const) {
      const err = parseError(source);
      expect(err.code, source).toBe('INVALID_FORMULA');
      expect(err.column, source).toBe(column);
      expect(err.message, source).toContain(fragment);
    }
  });
});

describe('functions', () => {
  const rows: { comment: string; source: string; values?: Values; want: number }[] = [
    { comment: 'min of two', source: 'min(a, b)', values: { a: 3, b: 2 }, want: 2 },
    { comment: 'max of three', source: 'max(a, b, 7)', values: { a: 3, b: 2 }, want: 7 },
    { comment: 'min of one', source: 'min(4)', want: 4 },
    { comment: 'negative numbers', source: 'min(-1, -5, 2)', want: -5 },
    { comment: 'trailing comma (expr-lang accepts it)', source: 'max(1, 2,)', want: 2 },
    { comment: 'abs', source: 'abs(-2.5)', want: 2.5 },
    { comment: 'ceil', source: 'ceil(1.2)', want: 2 },
    { comment: 'floor of a negative', source: 'floor(-1.2)', want: -2 },
    { comment: 'expressions as arguments', source: 'max(a + 1, a * 2)', values: { a: 3 }, want: 6 },
    { comment: 'nested calls', source: 'ceil(max(a, b) / 2)', values: { a: 3, b: 5 }, want: 3 },
  ];
  test.each(rows)('$comment: $source', ({ source, values, want }) => {
    expect(run(source, values)).toBe(want);
  });

  const arity: { comment: string; source: string; fragment: string }[] = [
    { comment: 'min without arguments', source: 'min()', fragment: 'min() takes at least 1 argument, got 0' },
    { comment: 'max without arguments', source: 'max( )', fragment: 'max() takes at least 1 argument, got 0' },
    { comment: 'abs of two', source: 'abs(1, 2)', fragment: 'abs() takes exactly 1 argument, got 2' },
    { comment: 'ceil of none', source: 'ceil()', fragment: 'ceil() takes exactly 1 argument, got 0' },
    { comment: 'floor of three', source: 'floor(1, 2, 3)', fragment: 'floor() takes exactly 1 argument, got 3' },
  ];
  test.each(arity)('arity: $comment', ({ source, fragment }) => {
    const err = parseError(` ${source}`);
    expect(err.column).toBe(2);
    expect(err.message).toContain(fragment);
  });

  test.each(['round(a)', 'count(a)', 'len(a)', 'my_function(a, b)', 'float(a)'])(
    'any other function is a parse error naming it and the supported ones: %s',
    (source) => {
      const err = parseError(`1 + ${source}`);
      expect(err.column).toBe(5);
      expect(err.message).toContain(`unknown function \`${source.slice(0, source.indexOf('('))}\``);
      expect(err.message).toContain('min, max, abs, ceil and floor');
    },
  );

  test('a function name is not a trigger name', () => {
    const err = parseError('min + 1');
    expect(err.column).toBe(1);
    expect(err.message).toContain('`min` is a function');
  });
});

describe('KEDA docs examples', () => {
  const rows: { comment: string; source: string; values: Values; want: number }[] = [
    { comment: 'sum', source: 'trig_one + trig_two', values: { trig_one: 3, trig_two: 4 }, want: 7 },
    { comment: 'average', source: '(trig_one + trig_two)/2', values: { trig_one: 3, trig_two: 4 }, want: 3.5 },
    {
      comment: 'conditional, taken',
      source: 'trig_one > 2 ? trig_one + trig_two : 1',
      values: { trig_one: 3, trig_two: 4 },
      want: 7,
    },
    {
      comment: 'conditional, not taken',
      source: 'trig_one > 2 ? trig_one + trig_two : 1',
      values: { trig_one: 2, trig_two: 4 },
      want: 1,
    },
    {
      comment: 'nested conditional (the float(...) example without float)',
      source: 'trig_one < 2 ? trig_one+trig_two >= 2 ? 5 : 10 : 0',
      values: { trig_one: 1, trig_two: 0 },
      want: 10,
    },
    {
      comment: 'KEDA fallback test: trigger1 ?? trigger2',
      source: 'trigger1 ?? trigger2',
      values: { trigger1: null, trigger2: 6 },
      want: 6,
    },
    {
      comment: 'KEDA fallback test: max',
      source: 'max(trigger_1, trigger_2)',
      values: { trigger_1: 1, trigger_2: 12 },
      want: 12,
    },
  ];
  test.each(rows)('$comment: $source', ({ source, values, want }) => {
    expect(run(source, values)).toBe(want);
  });

  test('count(...) is an unsupported function, named before the array syntax it uses', () => {
    const err = parseError('count([trig_one,trig_two,trig_three],{#>1}) > 1 ? 5 : 0');
    expect(err.column).toBe(1);
    expect(err.message).toContain('unknown function `count`');
  });

  test('float(...) is an unsupported function', () => {
    expect(parseError('float(trig_one < 2 ? trig_one+trig_two >= 2 ? 5 : 10 : 0)').message).toContain(
      'unknown function `float`',
    );
  });
});

describe('parse errors name the column and what was expected', () => {
  const rows: { comment: string; source: string; column: number; fragments: string[] }[] = [
    { comment: 'empty formula', source: '', column: 1, fragments: ['empty'] },
    { comment: 'blank formula', source: '   ', column: 1, fragments: ['empty'] },
    {
      comment: 'missing operand at the end',
      source: 'a +',
      column: 4,
      fragments: ['expected an operand', 'end of the formula'],
    },
    { comment: 'unexpected operator', source: 'a * / b', column: 5, fragments: ['expected an operand', 'found `/`'] },
    {
      comment: 'unclosed paren',
      source: '(a + b',
      column: 7,
      fragments: ['expected `)` to close the `(` at column 1'],
    },
    { comment: 'unclosed inner paren', source: '((a) + (b', column: 10, fragments: ['`(` at column 8'] },
    { comment: 'stray )', source: 'a + b)', column: 6, fragments: ['no matching `(`'] },
    {
      comment: 'trailing input',
      source: 'a b',
      column: 3,
      fragments: ['expected an operator or the end', 'the name `b`'],
    },
    { comment: 'trailing number', source: '(a) 2', column: 5, fragments: ['the number `2`'] },
    { comment: 'unknown function', source: 'a + foo(1)', column: 5, fragments: ['unknown function `foo`'] },
    {
      comment: 'missing comma',
      source: 'min(a b)',
      column: 7,
      fragments: ['expected `,` or `)` in the call to min()'],
    },
    { comment: 'unclosed call', source: 'max(a, ', column: 8, fragments: ['expected an operand'] },
    { comment: 'missing :', source: 'a > 1 ? 2', column: 10, fragments: ['expected `:` for the `?` at column 7'] },
    { comment: '?: shorthand', source: 'a > 1 ?: 2', column: 8, fragments: ['shorthand is not supported'] },
    { comment: 'a lone =', source: 'a = 1', column: 3, fragments: ['write `==`'] },
    { comment: 'a lone &', source: 'a > 1 & a < 2', column: 7, fragments: ['`&&`'] },
    { comment: 'pipe', source: 'a | b', column: 3, fragments: ['pipe'] },
    { comment: 'power **', source: 'a ** 2', column: 3, fragments: ['`**`', 'not supported'] },
    { comment: 'power ^', source: 'a ^ 2', column: 3, fragments: ['`^`', 'not supported'] },
    { comment: 'strings', source: 'a + "1"', column: 5, fragments: ['a string'] },
    { comment: 'member access', source: 'a.b', column: 2, fragments: ['member access'] },
    { comment: 'arrays', source: 'a[0]', column: 2, fragments: ['array'] },
    { comment: 'range', source: '1..3', column: 2, fragments: ['range'] },
    { comment: 'comment', source: 'a // note', column: 3, fragments: ['comment'] },
    { comment: 'expr-lang keyword', source: 'a in b', column: 3, fragments: ['`in`', 'not supported'] },
    { comment: '$env', source: '$env', column: 1, fragments: ['`$env` is not supported'] },
    { comment: 'non-ASCII character', source: 'a + é', column: 5, fragments: ['"é" (U+00E9)'] },
    { comment: 'number running into a letter', source: '2x', column: 2, fragments: ['malformed number'] },
    { comment: 'exponent without digits', source: 'a + 1e', column: 5, fragments: ['exponent has no digits'] },
    { comment: 'hex literal', source: '0x1F', column: 1, fragments: ['hexadecimal'] },
    { comment: 'number overflowing float64', source: 'a + 1e400', column: 5, fragments: ['too large for a float64'] },
    { comment: 'integer beyond int64', source: '9223372036854775808', column: 1, fragments: ['larger than int64'] },
    { comment: 'boolean formula', source: 'a > 1', column: 1, fragments: ['gives a boolean', 'must give a number'] },
    { comment: 'boolean literal formula', source: ' true', column: 2, fragments: ['gives a boolean'] },
  ];
  test.each(rows)('$comment: $source', ({ source, column, fragments }) => {
    const err = parseError(source);
    expect(err).toBeInstanceOf(SluiceError);
    expect(err.name).toBe('FormulaError');
    expect(err.code).toBe('INVALID_FORMULA');
    expect(err.column).toBe(column);
    expect(err.message.startsWith(`column ${column}: `)).toBe(true);
    for (const fragment of fragments) expect(err.message).toContain(fragment);
  });

  test('the message shows the formula around the column', () => {
    expect(parseError('(a + b').message).toContain('near "(a + b"');
  });

  test('a hyphenated trigger name that cannot lex gets the hint', () => {
    expect(parseError('queue-2nd + 1').message).toContain('cannot be used in a formula');
  });
});

describe('variables', () => {
  const rows: { comment: string; source: string; want: string[] }[] = [
    { comment: 'in order of first appearance, once', source: 'b + a * b - max(c, a)', want: ['b', 'a', 'c'] },
    { comment: 'nil, true, false and functions are not variables', source: 'nil ?? (true ? abs(x) : 1)', want: ['x'] },
    { comment: 'both branches count', source: 'a > 1 ? b : c', want: ['a', 'b', 'c'] },
    {
      comment: 'and / or / not are operators',
      source: 'a > 1 and not (b > 1) or c > 1 ? 1 : 0',
      want: ['a', 'b', 'c'],
    },
    { comment: 'a literal formula has none', source: '1 + 2', want: [] },
    { comment: 'names with digits and underscores', source: '_q1 + Queue_2', want: ['_q1', 'Queue_2'] },
    { comment: 'a hyphenated trigger name reads as two names', source: 'my-trigger', want: ['my', 'trigger'] },
  ];
  test.each(rows)('$comment: $source', ({ source, want }) => {
    const formula = parseFormula(source);
    expect(formula.variables).toEqual(want);
    expect(formula.source).toBe(source);
  });

  test('the formula object and its variables are frozen', () => {
    const formula = parseFormula('a + b');
    expect(Object.isFrozen(formula)).toBe(true);
    expect(Object.isFrozen(formula.variables)).toBe(true);
  });

  test('parsed once, evaluated many times with different values', () => {
    const formula = parseFormula('(a ?? 0) + 1');
    expect(formula.evaluate({ a: 1 })).toEqual({ kind: 'number', value: 2 });
    expect(formula.evaluate({ a: null })).toEqual({ kind: 'number', value: 1 });
    expect(formula.evaluate({ a: 41 })).toEqual({ kind: 'number', value: 42 });
  });
});

describe('results: a finite number or nil', () => {
  test('nil results', () => {
    expect(parseFormula('nil').evaluate({})).toEqual({ kind: 'nil' });
    expect(parseFormula('a').evaluate({ a: null })).toEqual({ kind: 'nil' });
    expect(parseFormula('a').evaluate({ a: undefined })).toEqual({ kind: 'nil' });
  });

  const infinite: { comment: string; source: string; values: Values; fragments: string[]; column: number }[] = [
    {
      comment: 'x / 0',
      source: 'a / 0',
      values: { a: 1 },
      fragments: ['`a / 0`', '+Inf', 'division by zero'],
      column: 1,
    },
    { comment: '-x / 0', source: '-a / 0', values: { a: 1 }, fragments: ['`-a / 0`', '-Inf'], column: 1 },
    { comment: '0 / 0', source: 'a / b', values: { a: 0, b: 0 }, fragments: ['`a / b`', 'NaN'], column: 1 },
    {
      comment: 'names the division, not the whole formula',
      source: '1 + a / b',
      values: { a: 1, b: 0 },
      fragments: ['`a / b` is +Inf'],
      column: 5,
    },
    {
      comment: 'overflow in *',
      source: 'a * a',
      values: { a: 1e200 },
      fragments: ['`a * a`', '+Inf', 'overflows a float64'],
      column: 1,
    },
    { comment: 'overflow in +', source: 'a + a', values: { a: 1.7e308 }, fragments: ['+Inf'], column: 1 },
    { comment: 'overflow of a literal product', source: '1e308 * 10', values: {}, fragments: ['+Inf'], column: 1 },
  ];
  test.each(infinite)('Inf/NaN is an error: $comment', ({ source, values, fragments, column }) => {
    const err = evalError(source, values);
    expect(err.code).toBe('FORMULA_EVALUATION');
    expect(err.column).toBe(column);
    for (const fragment of fragments) expect(err.message).toContain(fragment);
  });

  test('a trigger value that is not finite is refused', () => {
    expect(evalError('a + 1', { a: Infinity }).message).toContain('not a finite number');
    expect(evalError('a + 1', { a: NaN }).message).toContain('NaN');
  });

  test('a boolean result is an error: at parse time when certain', () => {
    for (const source of ['a > 1', 'true', 'a > 1 && b < 2', '!(a > 1)', 'a > 1 ? true : false']) {
      expect(parseError(source).message, source).toContain('gives a boolean');
    }
  });

  test('a boolean result is an error: at evaluation otherwise', () => {
    const formula = parseFormula('a > 1 ? true : 2');
    expect(formula.evaluate({ a: 0 })).toEqual({ kind: 'number', value: 2 });
    const err = formulaError(() => formula.evaluate({ a: 5 }));
    expect(err.code).toBe('FORMULA_EVALUATION');
    expect(err.message).toContain('gives a boolean (true)');
    expect(evalError('a ?? true', { a: null }).message).toContain('gives a boolean');
  });
});

describe('unknown names at evaluation', () => {
  test('a name without a value is an error naming it and its column', () => {
    const err = evalError('a + b', { a: 1 });
    expect(err.code).toBe('FORMULA_EVALUATION');
    expect(err.column).toBe(5);
    expect(err.message).toContain('unknown name `b`');
  });

  test.each(['constructor', 'toString', '__proto__', 'hasOwnProperty'])(
    'a name on Object.prototype is unknown, not inherited: %s',
    (name) => {
      expect(evalError(`${name} + 1`, {}).message).toContain(`unknown name \`${name}\``);
    },
  );

  test('a hyphenated trigger name gets the hint', () => {
    const err = evalError('my-trigger + 1', { 'my-trigger': 3 });
    expect(err.message).toContain('unknown name `my`');
    expect(err.message).toContain('if you meant the trigger `my-trigger`');
    expect(err.message).toContain('cannot be used in a formula');
    expect(err.message).toContain('`my_trigger`');
  });

  test('subtraction with spaces gets no hint', () => {
    expect(evalError('my - trigger', { trigger: 1 }).message).not.toContain('if you meant');
  });
});

describe('hostile input', () => {
  const big = { ...FORMULA_LIMITS, maxLength: 10_000_000 };

  test('100 000 `(` is a FormulaError (length), and with no length limit still one (depth), never a RangeError', () => {
    const deep = '('.repeat(100_000);
    const long = parseError(deep);
    expect(long.column).toBe(4097);
    expect(long.message).toContain('the limit is 4096');
    const err = formulaError(() => parseFormulaWithLimits(deep + 'a' + ')'.repeat(100_000), big));
    expect(err.column).toBe(65);
    expect(err.message).toContain('deeper than 64');
  });

  test.each([
    { comment: 'prefix -', open: '-', close: '', leaf: '1' },
    { comment: 'prefix !', open: '!', close: '', leaf: '(a > 1)' },
    { comment: 'calls', open: 'abs(', close: ')', leaf: '1' },
    { comment: 'conditionals', open: 'false ? 0 : ', close: '', leaf: '1' },
  ])('100 000 nested $comment: FormulaError, never a RangeError', ({ open, close, leaf }) => {
    const source = open.repeat(100_000) + leaf + close.repeat(100_000);
    expect(formulaError(() => parseFormulaWithLimits(source, big)).message).toContain('deeper than 64');
  });

  test('nesting depth 64 is allowed, 65 is not', () => {
    expect(run(`${'('.repeat(64)}1${')'.repeat(64)}`)).toBe(1);
    expect(run(`${'-'.repeat(64)}1`)).toBe(1);
    expect(run(`${'false ? 0 : '.repeat(64)}7`)).toBe(7);
    expect(parseError(`${'('.repeat(65)}1${')'.repeat(65)}`).column).toBe(65);
    expect(parseError(`${'-'.repeat(65)}1`).column).toBe(65);
  });

  test('4096 characters are allowed, 4097 are not', () => {
    const ok = `a${' '.repeat(4093)}+1`;
    expect(ok.length).toBe(4096);
    expect(run(ok, { a: 1 })).toBe(2);
    const err = parseError(`${ok} `);
    expect(err.column).toBe(4097);
    expect(err.message).toContain('4097 characters long; the limit is 4096');
  });

  test('1e400 is an error naming the column', () => {
    const err = parseError('a + 1e400');
    expect(err.column).toBe(5);
    expect(err.message).toContain('1e400');
  });

  test('a 10 000-term sum a+a+…: too long; past the length limit, too many nodes; past both, still evaluated', () => {
    const sum = Array.from({ length: 10_000 }, () => 'a').join('+');
    expect(parseError(sum).column).toBe(4097);
    const err = formulaError(() => parseFormulaWithLimits(sum, big));
    expect(err.message).toContain('more than 10000 operands and operators');
    const unbounded = { ...big, maxNodes: 10_000_000 };
    expect(parseFormulaWithLimits(sum, unbounded).evaluate({ a: 1 })).toEqual({ kind: 'number', value: 10_000 });
  });

  // The stack, not the clock, is what this proves: recursion per term would overflow it (timings belong in benchmarks).
  test('a 100 000-term sum evaluates in a loop (no recursion per term)', () => {
    const sum = Array.from({ length: 100_000 }, (_, i) => (i % 2 === 0 ? 'a' : '(b ?? 1)')).join(' - ');
    const formula = parseFormulaWithLimits(sum, { maxLength: 10_000_000, maxDepth: 64, maxNodes: 10_000_000 });
    expect(formula.evaluate({ a: 1, b: null })).toEqual({ kind: 'number', value: 1 - 99_999 });
  });

  test('the longest sum within the limits parses and evaluates', () => {
    const sum = Array.from({ length: 2048 }, () => '1').join('+');
    expect(sum.length).toBe(4095);
    expect(run(sum)).toBe(2048);
  });

  test('the node limit counts operands and operators', () => {
    const terms = (n: number): string => Array.from({ length: n }, () => 'a').join('+');
    expect(parseFormulaWithLimits(terms(5000), big).evaluate({ a: 1 })).toEqual({ kind: 'number', value: 5000 });
    expect(formulaError(() => parseFormulaWithLimits(terms(5001), big)).message).toContain('more than 10000');
  });

  test('very long identifiers: accepted, but never echoed in full', () => {
    const name = 'x'.repeat(4000);
    const formula = parseFormula(`${name} + 1`);
    expect(formula.variables).toEqual([name]);
    expect(formula.evaluate({ [name]: 1 })).toEqual({ kind: 'number', value: 2 });
    const errors = [
      evalError(`${name} + 1`, {}),
      evalError(`${name} + 1`, { [name]: null }),
      evalError(`(${name} + 1) / 0`, { [name]: 1 }),
      parseError(`${name} +`),
      parseError(`${name} ${name}`),
      parseError(`${name}(1)`),
      parseError(`1 + ${name} $`),
    ];
    for (const err of errors) {
      expect(err.message).not.toContain('x'.repeat(41));
      expect(err.message.length).toBeLessThan(400);
    }
  });

  test('control characters in the formula are escaped in messages', () => {
    const err = parseError('a +\u0007');
    expect(err.message).toContain('\\u0007');
    expect(err.message).not.toContain('\u0007');
  });
});
