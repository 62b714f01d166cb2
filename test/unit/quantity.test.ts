import { describe, expect, it } from 'vitest';

import {
  exactDecimal,
  formatDecimal,
  formatQuantity,
  parseQuantity,
  parseQuantityDecimal,
  QuantityError,
  roundHalfEven,
  type QuantityFormat,
} from '../../src/quantity.ts';

// docs/kubernetes-interfaces.md#quantity, raw algorithm on exact decimals (no KEDA three-decimal rounding, sign kept).
const canonicalVectors: {
  comment: string;
  mantissa: bigint;
  exponent: number;
  format?: QuantityFormat;
  want: string;
}[] = [
  { comment: 'zero', mantissa: 0n, exponent: 0, want: '0' },
  { comment: 'zero with an exponent', mantissa: 0n, exponent: -3, want: '0' },
  { comment: 'one', mantissa: 1n, exponent: 0, want: '1' },
  { comment: '1.5', mantissa: 15n, exponent: -1, want: '1500m' },
  { comment: '0.5', mantissa: 5n, exponent: -1, want: '500m' },
  { comment: '1.08 (upstream)', mantissa: 108n, exponent: -2, want: '1080m' },
  { comment: '0.001', mantissa: 1n, exponent: -3, want: '1m' },
  { comment: '0.0001: micro before KEDA rounding', mantissa: 1n, exponent: -4, want: '100u' },
  { comment: '-1.5: negative before KEDA clamping', mantissa: -15n, exponent: -1, want: '-1500m' },
  { comment: '1e-9 (upstream)', mantissa: 1n, exponent: -9, want: '1n' },
  { comment: '1.08e-6 (upstream)', mantissa: 108n, exponent: -8, want: '1080n' },
  { comment: '8e-8 (upstream)', mantissa: 8n, exponent: -8, want: '80n' },
  { comment: '57', mantissa: 57n, exponent: 0, want: '57' },
  { comment: '12', mantissa: 12n, exponent: 0, want: '12' },
  { comment: '1500 stays (not a multiple of 1000)', mantissa: 1500n, exponent: 0, want: '1500' },
  { comment: '1000', mantissa: 1000n, exponent: 0, want: '1k' },
  { comment: '3000 (upstream)', mantissa: 3n, exponent: 3, want: '3k' },
  { comment: '10000: exponent lowered to a multiple of 3', mantissa: 1n, exponent: 4, want: '10k' },
  { comment: '1e6', mantissa: 1n, exponent: 6, want: '1M' },
  { comment: '1234567', mantissa: 1234567n, exponent: 0, want: '1234567' },
  { comment: '300e6 (upstream)', mantissa: 300n, exponent: 6, want: '300M' },
  { comment: '1e12 (upstream)', mantissa: 1n, exponent: 12, want: '1T' },
  { comment: '1e15', mantissa: 1n, exponent: 15, want: '1P' },
  { comment: '1e18', mantissa: 1n, exponent: 18, want: '1E' },
  { comment: 'above E: decimal exponent', mantissa: 1n, exponent: 21, want: '1e21' },
  { comment: 'exponent 20 lowered to 18', mantissa: 1n, exponent: 20, want: '100E' },
  { comment: 'trailing zeros move into the exponent', mantissa: 1500000n, exponent: -3, want: '1500' },
  { comment: 'negative exponent remainder 2: ×10', mantissa: 1n, exponent: -1, want: '100m' },
  { comment: 'negative exponent remainder 1: ×100', mantissa: 1n, exponent: -2, want: '10m' },
  { comment: 'below nano: rounded up to 1n', mantissa: 1n, exponent: -10, want: '1n' },
  { comment: 'below nano, negative: rounded away from zero', mantissa: -15n, exponent: -10, want: '-2n' },
  { comment: 'DecimalExponent 1.5', mantissa: 15n, exponent: -1, format: 'DecimalExponent', want: '1500e-3' },
  { comment: 'DecimalExponent 1000', mantissa: 1n, exponent: 3, format: 'DecimalExponent', want: '1e3' },
  { comment: 'DecimalExponent 12', mantissa: 12n, exponent: 0, format: 'DecimalExponent', want: '12' },
  { comment: 'BinarySI 1024 (upstream)', mantissa: 1024n, exponent: 0, format: 'BinarySI', want: '1Ki' },
  { comment: 'BinarySI 1025 (upstream)', mantissa: 1025n, exponent: 0, format: 'BinarySI', want: '1025' },
  { comment: 'BinarySI 2 MiB', mantissa: 2097152n, exponent: 0, format: 'BinarySI', want: '2Mi' },
  { comment: 'BinarySI 1536 not a multiple of 1024', mantissa: 1536n, exponent: 0, format: 'BinarySI', want: '1536' },
  { comment: 'BinarySI small values as DecimalSI', mantissa: 1000n, exponent: 0, format: 'BinarySI', want: '1k' },
  { comment: 'BinarySI fractions as DecimalSI', mantissa: 10245n, exponent: -1, format: 'BinarySI', want: '1024500m' },
];

describe('formatDecimal', () => {
  it.each(canonicalVectors)('$comment', ({ mantissa, exponent, format, want }) => {
    expect(formatDecimal(mantissa, exponent, format)).toBe(want);
  });

  it('rounds an absurdly small value up to one nano without building huge powers', () => {
    expect(formatDecimal(123n, -1_000_000_000)).toBe('1n');
    expect(formatDecimal(-123n, -1_000_000_000)).toBe('-1n');
    expect(formatDecimal(123n, -12)).toBe('1n');
    expect(formatDecimal(1234n, -12)).toBe('2n');
  });

  it('rejects a non-integer exponent', () => {
    expect(() => formatDecimal(1n, 0.5)).toThrow(RangeError);
  });
});

// What the API serves: KEDA rounds to three decimals (Go %.3f: exact value, ties to even), clamps to >= 0.
const kedaVectors: { comment: string; value: number; want: string }[] = [
  { comment: 'zero', value: 0, want: '0' },
  { comment: 'negative zero', value: -0, want: '0' },
  { comment: 'one', value: 1, want: '1' },
  { comment: '1.5', value: 1.5, want: '1500m' },
  { comment: '0.5', value: 0.5, want: '500m' },
  { comment: '1.08', value: 1.08, want: '1080m' },
  { comment: '0.001', value: 0.001, want: '1m' },
  { comment: '0.0001 rounds to 0 (raw algorithm: 100u)', value: 0.0001, want: '0' },
  { comment: '1e-9 rounds to 0 (raw: 1n)', value: 1e-9, want: '0' },
  { comment: '8e-8 rounds to 0 (raw: 80n)', value: 8e-8, want: '0' },
  { comment: '1.08e-6 rounds to 0 (raw: 1080n)', value: 1.08e-6, want: '0' },
  { comment: '-1.5 is clamped (raw: -1500m)', value: -1.5, want: '0' },
  { comment: 'NaN', value: Number.NaN, want: '0' },
  { comment: '+Infinity', value: Number.POSITIVE_INFINITY, want: '0' },
  { comment: '-Infinity', value: Number.NEGATIVE_INFINITY, want: '0' },
  { comment: '57', value: 57, want: '57' },
  { comment: '12', value: 12, want: '12' },
  { comment: '1500', value: 1500, want: '1500' },
  { comment: '1000', value: 1000, want: '1k' },
  { comment: '3000', value: 3000, want: '3k' },
  { comment: '10000', value: 10000, want: '10k' },
  { comment: '1e6', value: 1e6, want: '1M' },
  { comment: '1234567', value: 1234567, want: '1234567' },
  { comment: '300e6', value: 300e6, want: '300M' },
  { comment: '1e12', value: 1e12, want: '1T' },
  { comment: '2.007: 2.007*1000 is 2007.0000000000002 in floats', value: 2.007, want: '2007m' },
  { comment: '2.01: 2.01*1000 is 2009.9999999999998 in floats', value: 2.01, want: '2010m' },
  { comment: '0.1 + 0.2', value: 0.1 + 0.2, want: '300m' },
  { comment: 'exact tie 0.0625 rounds to even (toFixed would say 0.063)', value: 0.0625, want: '62m' },
  { comment: 'exact tie 1.0625 rounds to even', value: 1.0625, want: '1062m' },
  { comment: 'exact tie 1.1875 rounds to even (up)', value: 1.1875, want: '1188m' },
  { comment: '0.0005 is slightly above the tie as a double', value: 0.0005, want: '1m' },
  { comment: '1.0005 is slightly below the tie as a double', value: 1.0005, want: '1' },
  { comment: '123.4565', value: 123.4565, want: '123457m' },
  { comment: 'beyond int64 (no overflow, keda#7441)', value: 1e20, want: '100E' },
  { comment: 'max safe integer', value: Number.MAX_SAFE_INTEGER, want: '9007199254740991' },
];

describe('formatQuantity (KEDA-compatible)', () => {
  it.each(kedaVectors)('$comment', ({ value, want }) => {
    expect(formatQuantity(value)).toBe(want);
  });
});

describe('exactDecimal', () => {
  const rows: { comment: string; value: number; mantissa: bigint; exponent: number }[] = [
    { comment: 'integer', value: 1500, mantissa: 1500n, exponent: 0 },
    { comment: 'power of two fraction', value: 0.0625, mantissa: 625n, exponent: -4 },
    { comment: 'negative', value: -0.5, mantissa: -5n, exponent: -1 },
    { comment: 'large power of two', value: 2 ** 60, mantissa: 1152921504606846976n, exponent: 0 },
    {
      comment: '0.1 is not exactly 0.1',
      value: 0.1,
      mantissa: 1000000000000000055511151231257827021181583404541015625n,
      exponent: -55,
    },
  ];
  it.each(rows)('$comment', ({ value, mantissa, exponent }) => {
    expect(exactDecimal(value)).toEqual({ mantissa, exponent });
  });

  it('handles subnormals', () => {
    const { mantissa, exponent } = exactDecimal(Number.MIN_VALUE);
    expect(exponent).toBe(-1074);
    expect(mantissa).toBe(5n ** 1074n);
  });

  it('rejects non-finite numbers', () => {
    expect(() => exactDecimal(Number.NaN)).toThrow(RangeError);
  });
});

describe('roundHalfEven', () => {
  const rows: { comment: string; mantissa: bigint; exponent: number; want: bigint }[] = [
    { comment: 'below half rounds down', mantissa: 10004n, exponent: -4, want: 1000n },
    { comment: 'above half rounds up', mantissa: 10006n, exponent: -4, want: 1001n },
    { comment: 'tie to even, down', mantissa: 10025n, exponent: -4, want: 1002n },
    { comment: 'tie to even, up', mantissa: 10035n, exponent: -4, want: 1004n },
    { comment: 'negative rounds symmetrically', mantissa: -10035n, exponent: -4, want: -1004n },
    { comment: 'coarser input is scaled up', mantissa: 15n, exponent: -1, want: 1500n },
  ];
  it.each(rows)('$comment', ({ mantissa, exponent, want }) => {
    expect(roundHalfEven({ mantissa, exponent }, 3)).toEqual({ mantissa: want, exponent: -3 });
  });
});

describe('parseQuantity', () => {
  const rows: { comment: string; text: string; want: number }[] = [
    { comment: 'plain integer', text: '57', want: 57 },
    { comment: 'zero', text: '0', want: 0 },
    { comment: 'milli', text: '1500m', want: 1.5 },
    { comment: 'kilo with a fraction', text: '1.5k', want: 1500 },
    { comment: 'binary Ki', text: '2Ki', want: 2048 },
    { comment: 'binary Mi with a fraction', text: '1.5Mi', want: 1572864 },
    { comment: 'binary Ei', text: '1Ei', want: 2 ** 60 },
    { comment: 'decimal exponent', text: '1e3', want: 1000 },
    { comment: 'upper-case exponent with sign', text: '15E-1', want: 1.5 },
    { comment: 'exa suffix, not an exponent', text: '2E', want: 2e18 },
    { comment: 'nano', text: '80n', want: 8e-8 },
    { comment: 'micro', text: '100u', want: 0.0001 },
    { comment: 'mega', text: '300M', want: 300e6 },
    { comment: 'negative', text: '-1500m', want: -1.5 },
    { comment: 'explicit plus', text: '+2', want: 2 },
    { comment: 'leading dot', text: '.5', want: 0.5 },
    { comment: 'trailing dot', text: '1.', want: 1 },
    { comment: 'leading zeros', text: '007', want: 7 },
    { comment: 'finer than nano rounds up', text: '1e-10', want: 1e-9 },
    { comment: 'exact decimal, not 0.1*3 in floats', text: '300m', want: 0.3 },
  ];
  it.each(rows)('$comment: $text', ({ text, want }) => {
    expect(parseQuantity(text)).toBe(want);
  });

  const bad: { comment: string; text: string; message: RegExp }[] = [
    { comment: 'empty', text: '', message: /empty string/ },
    { comment: 'letters', text: 'abc', message: /expected/ },
    { comment: 'unknown suffix', text: '5x', message: /expected/ },
    { comment: 'lower-case kibi', text: '1ki', message: /expected/ },
    { comment: 'exponent without digits', text: '1e', message: /expected/ },
    { comment: 'two suffixes', text: '1km', message: /expected/ },
    { comment: 'only a sign', text: '-', message: /no digits/ },
    { comment: 'only a dot', text: '.', message: /no digits/ },
    { comment: 'whitespace', text: ' 1', message: /expected/ },
    { comment: 'two dots', text: '1.2.3', message: /expected/ },
    { comment: 'huge exponent', text: '1e999999999', message: /exponent out of range/ },
    { comment: 'too large for a number', text: '1e400', message: /out of range for a number/ },
    { comment: 'absurdly long', text: '1'.repeat(300), message: /too long/ },
  ];
  it.each(bad)('rejects $comment', ({ text, message }) => {
    expect(() => parseQuantity(text)).toThrow(QuantityError);
    expect(() => parseQuantity(text)).toThrow(message);
  });

  it('names the input and a stable code', () => {
    const error = (() => {
      try {
        parseQuantity('12 apples');
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(QuantityError);
    expect(error).toMatchObject({ code: 'INVALID_QUANTITY', input: '12 apples' });
  });

  it('round-trips every canonical DecimalSI vector', () => {
    for (const { mantissa, exponent, format, want } of canonicalVectors) {
      if (format !== undefined && format !== 'DecimalSI') continue;
      const parsed = parseQuantityDecimal(want);
      expect(formatDecimal(parsed.mantissa, parsed.exponent), want).toBe(formatDecimal(mantissa, exponent));
    }
  });
});
