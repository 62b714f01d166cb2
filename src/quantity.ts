/**
 * Kubernetes Quantity (apimachinery `pkg/api/resource`): canonical formatting and parsing, with exact decimal
 * arithmetic (BigInt), never binary-float multiplication. See docs/kubernetes-interfaces.md#quantity.
 *
 * - `formatQuantity(value)` is what the external-metrics API serves: KEDA-compatible DecimalSI (the float is rounded
 *   to three decimals exactly as Go's `%.3f` does; NaN, ±Infinity and negatives become `"0"`).
 * - `formatDecimal(mantissa, exponent, format)` is the raw canonicalisation of an exact decimal.
 * - `parseQuantity(text)` reads `"1500m"`, `"1.5k"`, `"2Ki"`, `"1e3"` into a number.
 */
import { SluiceError } from './errors.ts';

/** An exact decimal: `mantissa × 10^exponent`. */
export interface Decimal {
  readonly mantissa: bigint;
  readonly exponent: number;
}

export type QuantityFormat = 'DecimalSI' | 'DecimalExponent' | 'BinarySI';

/** A string that is not a Quantity. `input` is the offending text. */
export class QuantityError extends SluiceError {
  override name = 'QuantityError';
  readonly input: string;

  constructor(input: string, message: string) {
    super('INVALID_QUANTITY', `invalid quantity ${JSON.stringify(input)}: ${message}`);
    this.input = input;
  }
}

const DECIMAL_SUFFIXES = new Map<number, string>([
  [-9, 'n'],
  [-6, 'u'],
  [-3, 'm'],
  [0, ''],
  [3, 'k'],
  [6, 'M'],
  [9, 'G'],
  [12, 'T'],
  [15, 'P'],
  [18, 'E'],
]);
const BINARY_SUFFIXES = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'] as const;
/** Quantities keep nano precision: finer digits are rounded up (away from zero), as ParseQuantity does. */
const MIN_EXPONENT = -9;
/** Beyond this a decimal exponent cannot come from a finite double; refuse rather than build huge BigInts. */
const MAX_PARSE_EXPONENT = 400;
/** No legitimate Quantity is this long; refuse before any BigInt work. */
const MAX_PARSE_LENGTH = 256;

const pow10 = (n: number): bigint => 10n ** BigInt(n);
const abs = (n: bigint): bigint => (n < 0n ? -n : n);

/** Rounds to nano precision, away from zero (inf.RoundUp), when the exponent is below −9. */
function roundToNano({ mantissa, exponent }: Decimal): Decimal {
  if (exponent >= MIN_EXPONENT || mantissa === 0n) return { mantissa, exponent };
  const drop = MIN_EXPONENT - exponent;
  // Fewer digits than places to drop: the value is a nonzero fraction of a nano, so it rounds up to one nano.
  // (Saves building 10^drop for absurd exponents.)
  if (drop > abs(mantissa).toString().length) return { mantissa: mantissa < 0n ? -1n : 1n, exponent: MIN_EXPONENT };
  const divisor = pow10(drop);
  const quotient = abs(mantissa) / divisor;
  const rounded = abs(mantissa) % divisor === 0n ? quotient : quotient + 1n;
  return { mantissa: mantissa < 0n ? -rounded : rounded, exponent: MIN_EXPONENT };
}

/** Moves factors of ten into the exponent, then lowers the exponent to a multiple of three. */
function canonicalBase10(decimal: Decimal): Decimal {
  let { mantissa, exponent } = roundToNano(decimal);
  while (mantissa % 10n === 0n) {
    mantissa /= 10n;
    exponent += 1;
  }
  const r = ((exponent % 3) + 3) % 3; // mathematical modulo, 0..2
  return { mantissa: mantissa * pow10(r), exponent: exponent - r };
}

function formatBase10(decimal: Decimal, format: 'DecimalSI' | 'DecimalExponent'): string {
  const { mantissa, exponent } = canonicalBase10(decimal);
  const suffix = format === 'DecimalSI' ? DECIMAL_SUFFIXES.get(exponent) : undefined;
  if (suffix !== undefined) return `${mantissa}${suffix}`;
  return exponent === 0 ? `${mantissa}` : `${mantissa}e${exponent}`;
}

/**
 * Canonical Quantity string of the exact decimal `mantissa × 10^exponent` (apimachinery `CanonicalizeBytes`).
 * DecimalSI: factors of ten move into the exponent, which is then lowered to a multiple of three and written as an SI
 * suffix (`e<exp>` above `E`). BinarySI: integers with |v| ≥ 1024 use the largest base-1024 suffix dividing them
 * exactly; everything else is written as DecimalSI.
 *
 * @example formatDecimal(15n, -1) === '1500m'; formatDecimal(1024n, 0, 'BinarySI') === '1Ki'
 */
export function formatDecimal(mantissa: bigint, exponent: number, format: QuantityFormat = 'DecimalSI'): string {
  if (!Number.isSafeInteger(exponent)) throw new RangeError(`exponent must be a safe integer, got ${exponent}`);
  if (mantissa === 0n) return '0';
  if (format !== 'BinarySI') return formatBase10({ mantissa, exponent }, format);

  const value = roundToNano({ mantissa, exponent });
  const integer = integerValue(value);
  if (integer === undefined || abs(integer) < 1024n) return formatBase10(value, 'DecimalSI');
  let n = integer;
  let power = 0;
  while (power < BINARY_SUFFIXES.length - 1 && n % 1024n === 0n) {
    n /= 1024n;
    power += 1;
  }
  return `${n}${BINARY_SUFFIXES[power] ?? ''}`;
}

/** The decimal as an integer, or undefined when it has a fractional part. */
function integerValue({ mantissa, exponent }: Decimal): bigint | undefined {
  if (exponent >= 0) return mantissa * pow10(exponent);
  const divisor = pow10(-exponent);
  return mantissa % divisor === 0n ? mantissa / divisor : undefined;
}

/** The exact decimal value of a finite double (every double is m × 2^e, hence m × 5^−e × 10^e when e < 0). */
export function exactDecimal(value: number): Decimal {
  if (!Number.isFinite(value)) throw new RangeError(`not a finite number: ${value}`);
  if (value === 0) return { mantissa: 0n, exponent: 0 };
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, value);
  const bits = view.getBigUint64(0);
  const negative = bits >> 63n === 1n;
  const biased = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & 0xfffffffffffffn;
  // Subnormals have no implicit leading one and the minimum exponent.
  let mantissa = biased === 0 ? fraction : fraction | (1n << 52n);
  const power2 = (biased === 0 ? 1 : biased) - 1075;
  let decimal: Decimal;
  if (power2 >= 0) {
    decimal = { mantissa: mantissa << BigInt(power2), exponent: 0 };
  } else {
    // Strip factors of two first so the decimal stays as short as possible.
    let shift = -power2;
    while (shift > 0 && (mantissa & 1n) === 0n) {
      mantissa >>= 1n;
      shift -= 1;
    }
    decimal = { mantissa: mantissa * 5n ** BigInt(shift), exponent: 0 - shift }; // `0 -` avoids -0
  }
  return negative ? { mantissa: -decimal.mantissa, exponent: decimal.exponent } : decimal;
}

/** Rounds an exact decimal to `digits` decimals, ties to even (Go's `strconv.FormatFloat(v, 'f', digits, 64)`). */
export function roundHalfEven(decimal: Decimal, digits: number): Decimal {
  const { mantissa, exponent } = decimal;
  if (exponent >= -digits) return { mantissa: mantissa * pow10(exponent + digits), exponent: 0 - digits };
  const divisor = pow10(-digits - exponent);
  const magnitude = abs(mantissa);
  let quotient = magnitude / divisor;
  const twiceRemainder = 2n * (magnitude % divisor);
  if (twiceRemainder > divisor || (twiceRemainder === divisor && quotient % 2n === 1n)) quotient += 1n;
  return { mantissa: mantissa < 0n ? -quotient : quotient, exponent: 0 - digits };
}

/**
 * The Quantity string KEDA serves for a metric value: the float rounded to three decimals (Go `%.3f`, exact, ties to
 * even), then canonical DecimalSI. NaN, ±Infinity and negative values become `"0"`.
 *
 * @example formatQuantity(1.5) === '1500m'; formatQuantity(2.007) === '2007m'; formatQuantity(3000) === '3k'
 */
export function formatQuantity(value: number): string {
  if (!Number.isFinite(value) || value <= 0) return '0';
  const { mantissa, exponent } = roundHalfEven(exactDecimal(value), 3);
  return formatDecimal(mantissa, exponent);
}

const QUANTITY = /^([+-]?)(\d*)(?:\.(\d*))?(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[numkMGTPE])?$/;
const DECIMAL_SUFFIX_EXPONENTS: Readonly<Record<string, number>> = {
  n: -9,
  u: -6,
  m: -3,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};

/**
 * Parses a Quantity string into an exact decimal, rounded up to nano precision like apimachinery's ParseQuantity.
 * Accepts an optional sign, digits with an optional fraction (`1.`, `.5`), and one suffix: binary SI (`Ki`…`Ei`),
 * decimal SI (`n u m k M G T P E`) or a decimal exponent (`e3`, `E-2`).
 */
export function parseQuantityDecimal(text: string): Decimal {
  if (text.length === 0) throw new QuantityError(text, 'empty string');
  if (text.length > MAX_PARSE_LENGTH) throw new QuantityError(text.slice(0, 32) + '…', 'too long');
  const match = QUANTITY.exec(text);
  if (!match) {
    throw new QuantityError(
      text,
      'expected <sign?><digits>[.<digits>]<suffix?> with a suffix among Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or e<exponent>',
    );
  }
  const [, sign = '', whole = '', fraction = '', suffix = ''] = match;
  if (whole.length === 0 && fraction.length === 0) throw new QuantityError(text, 'no digits');

  let mantissa = BigInt(`${whole}${fraction}` || '0');
  let exponent = 0 - fraction.length; // `0 -` avoids -0
  const binaryPower = BINARY_SUFFIXES.indexOf(suffix as (typeof BINARY_SUFFIXES)[number]);
  if (suffix !== '' && binaryPower > 0) {
    mantissa *= 1024n ** BigInt(binaryPower);
  } else if (suffix.length > 1) {
    // e<exponent> / E<exponent>
    const power = Number(suffix.slice(1));
    if (Math.abs(power) > MAX_PARSE_EXPONENT) throw new QuantityError(text, 'exponent out of range');
    exponent += power;
  } else if (suffix !== '') {
    exponent += DECIMAL_SUFFIX_EXPONENTS[suffix] ?? 0;
  }
  if (sign === '-') mantissa = -mantissa;
  return roundToNano({ mantissa, exponent });
}

/**
 * Parses a Quantity string (`"1500m"`, `"1.5k"`, `"2Ki"`, `"1e3"`) into a number (nearest double of the exact value,
 * after rounding up to nano precision). Throws QuantityError for anything else.
 */
export function parseQuantity(text: string): number {
  const { mantissa, exponent } = parseQuantityDecimal(text);
  if (mantissa === 0n) return 0;
  // The JS number parser rounds a decimal string correctly; no float multiplication involved.
  const value = Number(`${mantissa}e${exponent}`);
  if (!Number.isFinite(value)) throw new QuantityError(text, 'out of range for a number');
  return value;
}
