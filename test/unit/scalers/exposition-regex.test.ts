// Label matchers' regular expressions: RE2 semantics (fully anchored, `.` matches `\n`, no lookaround or
// backreferences), linear-time matching of the classic catastrophic patterns, and the limits that keep one exporter
// from stalling the process (src/scalers/exposition.ts). Behaviour only: timings are in bench/patterns.ts.
import { describe, expect, it } from 'vitest';
import { ScalerError, ValidationError } from '../../../src/errors.ts';
import {
  DFA_MAX_COST,
  ExpositionLimitError,
  MATCH_TIME_BUDGET_MS,
  MAX_LABEL_VALUE_LENGTH,
  MAX_MATCH_COST,
  MAX_PATTERN_LENGTH,
  MAX_PROGRAM_SIZE,
  MAX_SAMPLES,
  PatternError,
  compilePattern,
  parseExposition,
  parseSelector,
  selectSamples,
} from '../../../src/scalers/exposition.ts';
import { parseMetricsApiConfig, valueFromExposition } from '../../../src/scalers/metrics-api.ts';
import { expectValidationError, triggerInput } from '../../support/trigger.ts';

const FIELD = 'spec.triggers[0].metadata.valueLocation';
const WHERE = 'http://exporter:9100/metrics';

describe('compilePattern: RE2 syntax, fully anchored as in PromQL', () => {
  const table: { pattern: string; yes: string[]; no: string[] }[] = [
    { pattern: '2..', yes: ['200', '299'], no: ['2000', 'x200', '20', ''] },
    { pattern: 'a|ab', yes: ['a', 'ab'], no: ['abb', 'b', ''] },
    { pattern: 'get|post', yes: ['get', 'post'], no: ['gets', 'xpost', 'GET'] },
    { pattern: '(?i)error|warn(ing)?', yes: ['ERROR', 'Warning', 'warn'], no: ['errors', 'warnings'] },
    { pattern: 'api-.*-prod', yes: ['api-checkout-prod', 'api--prod'], no: ['api-checkout-prod2', 'xapi-a-prod'] },
    { pattern: '.*', yes: ['', 'a\nb', 'anything'], no: [] },
    { pattern: 'a.b', yes: ['a\nb', 'axb'], no: ['ab'] },
    { pattern: '', yes: [''], no: ['a'] },
    { pattern: '^a$', yes: ['a'], no: ['aa'] },
    { pattern: '\\d+\\.\\d+', yes: ['1.5'], no: ['1.5x', '.5'] },
    { pattern: '[[:alpha:]]+', yes: ['abc'], no: ['ab1'] },
    { pattern: '\\pL+', yes: ['héllo', 'Ωμέγα'], no: ['h3llo'] },
    { pattern: '(?P<code>5)\\d\\d', yes: ['503'], no: ['403'] },
    { pattern: '\\Qa.b\\E', yes: ['a.b'], no: ['axb'] },
    { pattern: 'x*', yes: ['', 'xxx'], no: ['xy'] },
  ];
  it.each(table)('$pattern', ({ pattern, yes, no }) => {
    const compiled = compilePattern(pattern);
    for (const value of yes) expect(compiled.matches(value), `${pattern} ~ ${JSON.stringify(value)}`).toBe(true);
    for (const value of no) expect(compiled.matches(value), `${pattern} !~ ${JSON.stringify(value)}`).toBe(false);
  });

  it('agrees with itself on the lazy DFA (short values) and the NFA (long values)', () => {
    const p = compilePattern('[ab]*a[ab]{20}');
    const fill = 'b'.repeat(Math.ceil(DFA_MAX_COST / p.programSize));
    expect(p.programSize * 23).toBeLessThanOrEqual(DFA_MAX_COST); // the short values below take the DFA
    expect(p.programSize * (fill.length + 22)).toBeGreaterThan(DFA_MAX_COST); // the long ones the NFA
    for (const prefix of ['', fill]) {
      expect(p.matches(`${prefix}a${'b'.repeat(20)}`)).toBe(true);
      expect(p.matches(`${prefix}a${'b'.repeat(21)}`)).toBe(false);
      expect(p.matches(`${prefix}a${'b'.repeat(19)}`)).toBe(false);
    }
  });

  // Each of these backtracks exponentially (or polynomially) in a JavaScript RegExp on the input given.
  const catastrophic: { pattern: string; value: string; match: boolean }[] = [
    { pattern: '(a+)+', value: `${'a'.repeat(10_000)}!`, match: false },
    { pattern: '(a+)+', value: 'a'.repeat(10_000), match: true },
    { pattern: '(?:(a+)+)', value: `${'a'.repeat(10_000)}!`, match: false },
    { pattern: '(a|a)*', value: `${'a'.repeat(10_000)}!`, match: false },
    { pattern: '(a|aa)+', value: `${'a'.repeat(10_000)}!`, match: false },
    { pattern: '(a*)*b', value: 'a'.repeat(10_000), match: false },
    { pattern: '(x+x+)+y', value: 'x'.repeat(10_000), match: false },
    { pattern: '(.*a){12}', value: `${'a'.repeat(10_000)}!`, match: false },
    { pattern: '(\\w|\\d)+!', value: '1'.repeat(10_000), match: false },
    { pattern: '((((((a*)*)*)*)*)*)*c', value: 'a'.repeat(10_000), match: false },
  ];
  it.each(catastrophic)('$pattern against $value.length characters: $match', ({ pattern, value, match }) => {
    expect(compilePattern(pattern).matches(value)).toBe(match);
  });

  const invalid: { pattern: string; reason: string | RegExp }[] = [
    { pattern: '(', reason: '"(" is not a valid RE2 regular expression: missing closing ): `(`' },
    { pattern: 'a)|(b', reason: 'is not a valid RE2 regular expression: unexpected )' },
    { pattern: '*', reason: 'missing argument to repetition operator' },
    { pattern: 'a{1001}', reason: 'invalid repeat count' },
    { pattern: '[z-a]', reason: 'invalid character class range' },
    { pattern: '\\C', reason: 'invalid escape sequence' },
    { pattern: '(?=a)a', reason: 'uses a lookahead `(?=`, which is not supported by RE2' },
    { pattern: 'x(?!a)', reason: 'uses a lookahead `(?!`, which is not supported by RE2' },
    { pattern: '(?<=a)b', reason: 'uses a lookbehind `(?<=`, which is not supported by RE2' },
    { pattern: '(?<!a)b', reason: 'uses a lookbehind `(?<!`, which is not supported by RE2' },
    { pattern: '(a)\\1', reason: 'uses a backreference `\\1`, which is not supported by RE2' },
    { pattern: '(?<n>a)\\k<n>', reason: 'uses a backreference `\\k`, which is not supported by RE2' },
    { pattern: '(?>a+)b', reason: 'uses an atomic group `(?>`, which is not supported by RE2' },
    { pattern: 'a++', reason: 'uses a possessive quantifier `++`, which is not supported by RE2' },
    { pattern: 'x'.repeat(MAX_PROGRAM_SIZE), reason: `more than the ${MAX_PROGRAM_SIZE} sluice accepts` },
    { pattern: 'x'.repeat(MAX_PATTERN_LENGTH + 1), reason: `more than the ${MAX_PATTERN_LENGTH} sluice accepts` },
  ];
  it.each(invalid)('rejects $pattern', ({ pattern, reason }) => {
    expect(() => compilePattern(pattern)).toThrow(PatternError);
    expect(() => compilePattern(pattern)).toThrow(reason);
  });

  it('the value limit shrinks for large programs, so one match never costs more than MAX_MATCH_COST', () => {
    expect(compilePattern('2..').maxValueLength).toBe(MAX_LABEL_VALUE_LENGTH);
    const large = compilePattern('\\pL{0,1000}');
    expect(large.programSize).toBeGreaterThan(1000);
    expect(large.maxValueLength).toBeLessThan(MAX_LABEL_VALUE_LENGTH);
    expect(large.programSize * (large.maxValueLength + 1)).toBeLessThanOrEqual(MAX_MATCH_COST);
  });
});

describe('parseSelector: a pattern RE2 rejects is a ValidationError naming the field', () => {
  it.each([
    ['m{a=~"("}', 'label "a": "(" is not a valid RE2 regular expression: missing closing )'],
    ['m{a!~"(?=x)"}', 'label "a": "(?=x)" uses a lookahead `(?=`, which is not supported by RE2'],
    ['{__name__=~"(?<!x)y",a="b"}', 'label "__name__": "(?<!x)y" uses a lookbehind'],
  ])('%s', (selector, reason) => {
    let caught: unknown;
    try {
      parseSelector(selector, FIELD);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    expect((caught as ValidationError).field).toBe(FIELD);
    expect((caught as ValidationError).message).toContain(reason);
    expect((caught as ValidationError).cause).toBeInstanceOf(PatternError);
  });

  it('metrics-api: valueLocation with a backreference', () => {
    const message = expectValidationError(
      () =>
        parseMetricsApiConfig(
          triggerInput({
            type: 'metrics-api',
            metadata: {
              url: 'http://exporter:9100/metrics',
              format: 'prometheus',
              valueLocation: 'queue_depth{queue=~"(a)\\\\1"}', // PromQL string escapes: `\\1` is `\1`
              targetValue: '5',
            },
          }),
        ),
      FIELD,
    );
    expect(message).toContain('uses a backreference `\\1`, which is not supported by RE2');
  });
});

describe('selectSamples: limits', () => {
  const body = (...lines: string[]) => parseExposition(lines.join('\n'));

  it('the catastrophic selector selects correctly among values up to the limit', () => {
    const samples = body(
      `queue{name="${'a'.repeat(MAX_LABEL_VALUE_LENGTH - 1)}!"} 100`,
      `queue{name="${'a'.repeat(MAX_LABEL_VALUE_LENGTH)}"} 7`,
      'queue{name="b"} 3',
    );
    const selected = selectSamples(samples, parseSelector('queue{name=~"(a+)+"}', FIELD));
    expect(selected.map((s) => s.value)).toEqual([7]);
    const negated = selectSamples(samples, parseSelector('queue{name!~"(a+)+"}', FIELD));
    expect(negated.map((s) => s.value)).toEqual([100, 3]);
  });

  it.each(['=~', '!~'])('a longer value the pattern must examine (%s) fails the read, naming the label', (op) => {
    const long = `${'a'.repeat(MAX_LABEL_VALUE_LENGTH)}!`;
    const samples = body('queue{name="b"} 3', `queue{name="${long}"} 7`);
    let caught: unknown;
    try {
      selectSamples(samples, parseSelector(`queue{name${op}"(a+)+"}`, FIELD), { where: WHERE });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ExpositionLimitError);
    expect(caught).toBeInstanceOf(ScalerError);
    const message = (caught as Error).message;
    expect(message).toMatch(new RegExp(`^${WHERE}: label "name" of a series has a value that has 4097 characters`));
    expect(message).toContain(`against at most ${MAX_LABEL_VALUE_LENGTH}`);
    expect(message).not.toContain('aaaaaaaa'); // never the server's text
  });

  it('equality matchers come first: a long value in a series they exclude is never examined', () => {
    const long = 'a'.repeat(MAX_LABEL_VALUE_LENGTH * 4);
    const samples = body(`queue{vhost="other",name="${long}"} 1`, 'queue{vhost="prod",name="orders"} 2');
    const selected = selectSamples(samples, parseSelector('queue{name=~"ord.*",vhost="prod"}', FIELD));
    expect(selected.map((s) => s.value)).toEqual([2]);
    // Nor are series of other metrics.
    const other = body(`other{name="${long}"} 1`, 'queue{name="orders"} 2');
    expect(selectSamples(other, parseSelector('queue{name=~"ord.*"}', FIELD)).map((s) => s.value)).toEqual([2]);
  });

  it('a selection that has matched for longer than the budget fails', () => {
    const samples = body('queue{name="a"} 1', 'queue{name="b"} 2', 'queue{name="c"} 3', 'queue{name="d"} 4');
    let clock = 0;
    const now = () => (clock += MATCH_TIME_BUDGET_MS / 2.5); // 20 ms at every look: 60 > 50 after the third match
    const selector = parseSelector('queue{name=~"[a-z]"}', FIELD);
    expect(() => selectSamples(samples, selector, { where: WHERE, now })).toThrow(ExpositionLimitError);
    clock = 0;
    expect(() => selectSamples(samples, selector, { where: WHERE, now })).toThrow(
      `${WHERE}: matching queue{name=~"[a-z]"} took more than ${MATCH_TIME_BUDGET_MS} ms (at sample 3 of 4)`,
    );
    // Within budget: all four.
    expect(selectSamples(samples, selector, { now: () => 0 })).toHaveLength(4);
    // Without regular expressions the clock is never read.
    const never = () => {
      throw new Error('read the clock');
    };
    expect(selectSamples(samples, parseSelector('queue{name!="a"}', FIELD), { now: never })).toHaveLength(3);
  });
});

describe('parseExposition: at most MAX_SAMPLES samples', () => {
  it('reads MAX_SAMPLES, fails beyond', () => {
    const lines = Array.from({ length: MAX_SAMPLES }, (_, i) => `m{i="${i}"} 1`);
    expect(parseExposition(`# TYPE m gauge\n${lines.join('\n')}\n`)).toHaveLength(MAX_SAMPLES);
    lines.push('m{i="one too many"} 1');
    let caught: unknown;
    try {
      parseExposition(lines.join('\n'), WHERE);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ExpositionLimitError);
    expect((caught as Error).message).toBe(
      `${WHERE}: the body has more than ${MAX_SAMPLES} samples, the most sluice reads from one body`,
    );
  });
});

describe('metrics-api valueFromExposition with a catastrophic selector', () => {
  const selector = parseSelector('queue{name=~"(a+)+"}', FIELD);
  it('reads the one matching series', () => {
    const text = `queue{name="${'a'.repeat(4000)}!"} 100\nqueue{name="aaaa"} 7\n`;
    expect(valueFromExposition(text, selector, WHERE)).toBe(7);
  });
  it('a value beyond the limit is a read error naming the URL', () => {
    const text = `queue{name="${'a'.repeat(10_000)}!"} 100\nqueue{name="aaaa"} 7\n`;
    expect(() => valueFromExposition(text, selector, WHERE)).toThrow(ExpositionLimitError);
    expect(() => valueFromExposition(text, selector, WHERE)).toThrow(`${WHERE}: label "name" of a series`);
  });
});
