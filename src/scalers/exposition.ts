/**
 * SHARED MODULE (used by the metrics-api scaler with `format: prometheus` and by the http-rate scaler): a small
 * parser for the Prometheus text exposition format and for instant-vector sample selectors. No I/O.
 *
 * - `parseExposition(text)` reads lines `name{label="value",...} value [timestamp]` (comments, `# HELP`, `# TYPE`,
 *   `# EOF` and blank lines skipped; OpenMetrics exemplars ` # {...} v` ignored; Prometheus 3 quoted names
 *   `{"my.metric",a="b"}` accepted). Values are Go floats incl. `NaN`, `+Inf`, `-Inf`. Any line it cannot read
 *   throws `ExpositionError` naming the line number: a malformed body is an error, never a partial read. A body of
 *   more than MAX_SAMPLES samples is an ExpositionLimitError.
 * - `parseSelector(text, field)` reads `name`, `name{a="b",c!="d",e=~"x.*",f!~"y"}` or `{__name__="name",...}`;
 *   regular expressions are compiled there, once (see below). A syntax error is a ValidationError naming `field`.
 * - `selectSamples(samples, selector)` keeps the samples the selector matches. As in PromQL, a label the sample
 *   lacks matches as the empty string (`a=""` matches series without `a`; `a!=""` requires it).
 *
 * ## Regular expressions (`=~`, `!~`)
 *
 * The pattern comes from the ScaledObject and the label values from the user's own exporter, and everything runs on
 * the one event loop that serves every namespace, so matching must never backtrack: `^(?:(a+)+)$` against 26 `a`s
 * and a `!` took 343 ms in a JavaScript RegExp and doubled with each `a`. Patterns are therefore RE2, as in
 * Prometheus (which compiles `^(?s:<pattern>)$` with Go's regexp, prometheus/prometheus model/labels/regexp.go) and
 * KEDA: fully anchored, `.` matches `\n`, RE2 syntax (https://github.com/google/re2/wiki/Syntax). Lookahead,
 * lookbehind and backreferences do not exist in RE2: they are validation errors, as in Prometheus, so selectors that
 * work in PromQL work here and the other way round.
 *
 * The engine is re2js (pure JavaScript, a port of RE2/J: https://github.com/le0pard/re2js), chosen over the native
 * `re2` binding after measuring both on this project's machine (2 cores, Node 26; each in a scratch directory;
 * `npm run bench:patterns` repeats the re2js and RegExp numbers through this module):
 * - Installing: re2js 0.6 s, one package (0.9 MB), no install script. `re2` 1.27: no prebuilt binary comes from the
 *   npm registry (its install script fetches one from GitHub, unreachable here), so node-gyp compiled it: 88 s, 100 MB
 *   of node_modules, against the only headers on the machine, Debian's Node 20, and Node 26 then refused to load it
 *   (NODE_MODULE_VERSION 115, 147 required). No working install; its numbers below were taken under Node 20.
 * - Compiling a typical pattern: RegExp ≈ 2 µs, `re2` ≈ 10 µs, re2js ≈ 25 µs (compilePattern compiles twice, see
 *   there). Matching short, typical values (`2..` against `503`, `api-.*-prod` against `api-checkout-prod`): RegExp
 *   ≈ 20 ns, re2js ≈ 75 ns, `re2` ≈ 940 ns (each call crosses into C++ and converts the string).
 * - `(a+)+` against `a` × 4096 + `!`: `re2` ≈ 7 µs, re2js ≈ 45 µs on its DFA and ≈ 0.4 ms on its NFA (the path
 *   taken here for that length, below); a million `a`s: 3 ms, 11 ms and 130 ms: linear. RegExp: 26 `a`s ≈ 0.5 s,
 *   doubling with each `a`.
 * - Memory: 1 000 compiled, used typical patterns ≈ 8-12 MiB of heap with re2js.
 *
 * Linear is not free: RE2's cost is the pattern's program size × the value's length, and in JavaScript a pattern
 * whose lazy DFA keeps meeting new states (`[ab]*a[ab]{490}` against random `a`/`b`) costs up to ≈ 300 ns per
 * instruction and character (≈ 130 ms for one 4 KiB value), its NFA up to ≈ 40 ns. So, per selection:
 * - a pattern's program is at most MAX_PROGRAM_SIZE instructions and its text MAX_PATTERN_LENGTH characters
 *   (validation errors);
 * - a value is matched only if it has at most MAX_LABEL_VALUE_LENGTH characters and program size × (length + 1) is
 *   at most MAX_MATCH_COST (≈ 20 ms in the worst case measured); a longer value the regex would have to examine is a
 *   read error (ExpositionLimitError, a ScalerError), not a non-match: skipping a series silently could change a sum
 *   (http-rate) or which single series matches (metrics-api), and sluice never reads a partial answer as a value.
 *   Equality matchers are checked first, so `a="x"` keeps the regex away from other series' long values;
 * - a value costing more than DFA_MAX_COST runs on the NFA (re2js `matcher().matches()`), cheaper ones on the lazy
 *   DFA (`testExact`), fastest for typical values; re2js caps a pattern's DFA cache at 8 MiB;
 * - a selection that has spent MATCH_TIME_BUDGET_MS matching fails (ExpositionLimitError): with the per-value bound
 *   this keeps one read's stall under ≈ 70 ms however many samples the body holds.
 */
import { RE2JS, RE2JSException, RE2JSSyntaxException } from 're2js';
import { ScalerError, SluiceError, ValidationError } from '../errors.ts';

export interface ExpositionSample {
  readonly name: string;
  /** Label names to values (a null-prototype object; `__name__` is not included). */
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
  /** The optional timestamp (milliseconds since the epoch in the Prometheus text format). */
  readonly timestamp?: number;
}

export type MatchOp = '=' | '!=' | '=~' | '!~';

/** `=` and `!=` compare strings; `=~` and `!~` carry their pattern, compiled when the selector was parsed. */
export type LabelMatcher =
  | { readonly label: string; readonly op: '=' | '!='; readonly value: string }
  | { readonly label: string; readonly op: '=~' | '!~'; readonly value: string; readonly pattern: Re2Pattern };

export interface Selector {
  /** The metric name (from `name{...}` or a `__name__="..."` matcher); undefined when only matchers select. */
  readonly name: string | undefined;
  readonly matchers: readonly LabelMatcher[];
  /** The selector as written (trimmed), for messages. */
  readonly text: string;
}

/**
 * The exposition text cannot be read. The message names the line and what is wrong there in sluice's own words, never
 * any of its text (the server wrote it: a metric name or a label can carry what the server knows).
 */
export class ExpositionError extends SluiceError {
  override name = 'ExpositionError';
  readonly line: number;

  constructor(line: number, message: string) {
    super('EXPOSITION_INVALID', `line ${line}: ${message}`);
    this.line = line;
  }
}

/**
 * A body or a selection beyond one of the limits that keep one exporter from stalling or bloating the process
 * (MAX_SAMPLES, a pattern's maxValueLength, MATCH_TIME_BUDGET_MS). A ScalerError: the read fails, never a partial
 * answer. Messages name the selector and the label, never the server's text.
 */
export class ExpositionLimitError extends ScalerError {
  override name = 'ExpositionLimitError';

  constructor(message: string) {
    super(message, { code: 'EXPOSITION_LIMIT' });
  }
}

const NAME_START = /[a-zA-Z_:]/;
const NAME_CHAR = /[a-zA-Z0-9_:]/;
const LABEL_START = /[a-zA-Z_]/;
const LABEL_CHAR = /[a-zA-Z0-9_]/;
const FLOAT = /^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|0[xX][0-9a-fA-F]+)$/;

/** Go's strconv.ParseFloat as Prometheus uses it: decimal, hex integers, NaN and ±Inf (any case). */
export function parseSampleValue(token: string): number | undefined {
  const lower = token.toLowerCase();
  if (lower === 'nan' || lower === '+nan' || lower === '-nan') return NaN;
  if (lower === 'inf' || lower === '+inf' || lower === 'infinity' || lower === '+infinity') return Infinity;
  if (lower === '-inf' || lower === '-infinity') return -Infinity;
  if (!FLOAT.test(token)) return undefined;
  const value = Number(token.replace(/^\+/, ''));
  return Number.isNaN(value) ? undefined : value;
}

/** A cursor over one line (exposition) or one selector. */
class Cursor {
  pos = 0;
  readonly text: string;
  private readonly fail: (message: string) => never;

  constructor(text: string, fail: (message: string) => never) {
    this.text = text;
    this.fail = fail;
  }

  get done(): boolean {
    return this.pos >= this.text.length;
  }
  peek(): string {
    return this.text.charAt(this.pos);
  }
  skipSpaces(): void {
    while (this.peek() === ' ' || this.peek() === '\t') this.pos++;
  }
  expect(ch: string): void {
    if (this.peek() !== ch) this.fail(`expected "${ch}" at column ${this.pos + 1}`);
    this.pos++;
  }
  identifier(start: RegExp, rest: RegExp, what: string): string {
    const from = this.pos;
    if (!start.test(this.peek())) this.fail(`expected a ${what} at column ${this.pos + 1}`);
    this.pos++;
    while (!this.done && rest.test(this.peek())) this.pos++;
    return this.text.slice(from, this.pos);
  }
  /** A double-quoted string with the exposition escapes `\\`, `\"` and `\n` (selectors also accept `\t`, `'`). */
  quoted(): string {
    this.expect('"');
    let out = '';
    for (;;) {
      if (this.done) this.fail('unterminated quoted string');
      const ch = this.peek();
      this.pos++;
      if (ch === '"') return out;
      if (ch === '\\') {
        const next = this.peek();
        this.pos++;
        if (next === 'n') out += '\n';
        else if (next === 't') out += '\t';
        else if (next === '\\' || next === '"' || next === "'") out += next;
        else this.fail(`invalid escape in a quoted string at column ${this.pos}`);
      } else {
        out += ch;
      }
    }
  }
  token(): string {
    const from = this.pos;
    while (!this.done && this.peek() !== ' ' && this.peek() !== '\t') this.pos++;
    return this.text.slice(from, this.pos);
  }
}

/** What readLabelBlock does with the items of a `{...}` block. */
interface LabelBlockItems {
  /** Whether `ch` starts the operator after a label name (which tells a quoted label name from a quoted metric name). */
  startsOperator(ch: string): boolean;
  /** A quoted string alone: the metric name (Prometheus 3). */
  name(quoted: string): void;
  /** A label name, the cursor on its operator: reads the operator and the value. */
  label(label: string): void;
}

/**
 * Reads a `{...}` block at the cursor, which is on the `{`, through its `}`: comma-separated items, a trailing comma
 * allowed. Spaces are skipped around items and after a label name.
 */
function readLabelBlock(c: Cursor, items: LabelBlockItems): void {
  c.pos++;
  let first = true;
  for (;;) {
    c.skipSpaces();
    if (c.peek() === '}') {
      c.pos++;
      return;
    }
    if (!first) {
      c.expect(',');
      c.skipSpaces();
      if (c.peek() === '}') {
        c.pos++;
        return;
      }
    }
    first = false;
    // Prometheus 3: a quoted string alone is the metric name; a quoted string before the operator is a label name.
    let label: string;
    if (c.peek() === '"') {
      const quoted = c.quoted();
      c.skipSpaces();
      if (!items.startsOperator(c.peek())) {
        items.name(quoted);
        continue;
      }
      label = quoted;
    } else {
      label = c.identifier(LABEL_START, LABEL_CHAR, 'label name');
      c.skipSpaces();
    }
    items.label(label);
  }
}

/**
 * Samples read from one body at most: more is an ExpositionError. An exporter page is small (node_exporter ≈ 1 000
 * samples); the bodies' byte limits (4 MiB for metrics-api and http-rate) would otherwise allow millions of
 * tiny lines, each an object in the heap and a candidate for the selector's matchers.
 */
export const MAX_SAMPLES = 100_000;

/**
 * Parses Prometheus text exposition. Throws ExpositionError on the first line it cannot read, ExpositionLimitError
 * (its message starting with `where`, when given) beyond MAX_SAMPLES.
 */
export function parseExposition(text: string, where?: string): ExpositionSample[] {
  const samples: ExpositionSample[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').replace(/\r$/, '');
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    if (samples.length === MAX_SAMPLES) {
      throw new ExpositionLimitError(
        `${where === undefined ? '' : `${where}: `}the body has more than ${MAX_SAMPLES} samples, the most sluice ` +
          'reads from one body',
      );
    }
    samples.push(parseLine(line.replace(/^[ \t]+/, ''), i + 1));
  }
  return samples;
}

function parseLine(line: string, lineNo: number): ExpositionSample {
  const fail = (message: string): never => {
    throw new ExpositionError(lineNo, message);
  };
  const c = new Cursor(line, fail);
  let name: string | undefined;
  const labels: Record<string, string> = Object.create(null) as Record<string, string>;
  if (c.peek() !== '{') name = c.identifier(NAME_START, NAME_CHAR, 'metric name');
  const afterName = c.pos;
  c.skipSpaces();
  let spaced = c.pos > afterName;
  if (c.peek() === '{') {
    readLabelBlock(c, {
      startsOperator: (ch) => ch === '=',
      name: (quoted) => {
        if (name !== undefined) fail('a metric name is given twice');
        name = quoted;
      },
      label: (label) => {
        c.expect('=');
        c.skipSpaces();
        const value = c.quoted();
        if (Object.hasOwn(labels, label)) fail('a label is given twice in one sample');
        labels[label] = value;
      },
    });
    const afterLabels = c.pos;
    c.skipSpaces();
    spaced = c.pos > afterLabels;
  }
  if (name === undefined || name === '') return fail('a sample has no metric name');
  if (!spaced || c.done) fail('expected a space and a value after the metric name');
  const valueToken = c.token();
  const value = parseSampleValue(valueToken);
  if (value === undefined) return fail("a sample's value is not a number");
  c.skipSpaces();
  let timestamp: number | undefined;
  if (!c.done && c.peek() !== '#') {
    const tsToken = c.token();
    const ts = parseSampleValue(tsToken);
    if (ts === undefined || !Number.isFinite(ts)) fail("a sample's timestamp is not a number");
    timestamp = ts;
    c.skipSpaces();
  }
  // OpenMetrics exemplar (` # {trace_id="..."} 1.0 [ts]`): ignored. Anything else after the sample is an error.
  if (!c.done && c.peek() !== '#') fail("unexpected text after a sample's value");
  return timestamp === undefined ? { name, labels, value } : { name, labels, value, timestamp };
}

/**
 * Parses a sample selector such as `http_requests_total{code="200",method!="GET"}`. Throws ValidationError naming
 * `field` (the metadata parameter the selector came from).
 */
export function parseSelector(text: string, field: string): Selector {
  const trimmed = text.trim();
  const fail = (message: string): never => {
    throw new ValidationError(field, `invalid sample selector "${trimmed}": ${message}`);
  };
  const c = new Cursor(trimmed, fail);
  let name: string | undefined;
  const matchers: LabelMatcher[] = [];
  if (c.peek() !== '{') name = c.identifier(NAME_START, NAME_CHAR, 'metric name');
  c.skipSpaces();
  if (c.peek() === '{') {
    const setName = (value: string) => {
      if (name !== undefined) fail('the metric name is given twice');
      name = value;
    };
    readLabelBlock(c, {
      startsOperator: (ch) => ch === '=' || ch === '!',
      name: setName,
      label: (label) => {
        let op: MatchOp;
        if (c.text.startsWith('=~', c.pos)) op = '=~';
        else if (c.text.startsWith('!~', c.pos)) op = '!~';
        else if (c.text.startsWith('!=', c.pos)) op = '!=';
        else if (c.peek() === '=') op = '=';
        else return fail(`expected =, !=, =~ or !~ after label "${label}"`);
        c.pos += op.length;
        c.skipSpaces();
        const value = c.quoted();
        if (op === '=~' || op === '!~') {
          let pattern: Re2Pattern;
          try {
            pattern = compilePattern(value);
          } catch (cause) {
            if (!(cause instanceof PatternError)) throw cause;
            const message = `invalid sample selector "${trimmed}": label "${label}": ${cause.message}`;
            throw new ValidationError(field, message, { cause });
          }
          matchers.push({ label, op, value, pattern });
        } else if (label === '__name__' && op === '=') {
          setName(value);
        } else {
          matchers.push({ label, op, value });
        }
      },
    });
  }
  c.skipSpaces();
  if (!c.done) fail(`unexpected text at column ${c.pos + 1}`);
  // PromQL's rule: without a metric name, at least one matcher must reject the empty value.
  if (name === undefined && matchers.every((m) => accepts(m, ''))) {
    fail('give a metric name or at least one matcher that does not match the empty string');
  }
  if (name === '') fail('the metric name is empty');
  return { name, matchers, text: trimmed };
}

// ---------------------------------------------------------------------------------------------------------------
// Regular expressions (see the header for the engine and the numbers behind the limits).

/** Instructions in a pattern's RE2 program at most (a 20-name alternation has ≈ 200, `2..` has 5). */
export const MAX_PROGRAM_SIZE = 2048;
/** Characters in a pattern at most, checked before compiling. */
export const MAX_PATTERN_LENGTH = 16_384;
/** Characters (UTF-16 code units) of a label value (or metric name) a regular expression is matched against. */
export const MAX_LABEL_VALUE_LENGTH = 4096;
/** Program size × (value length + 1) of one match at most: every value up to 4096 characters for programs ≤ 127. */
export const MAX_MATCH_COST = 2 ** 19;
/** Matches up to this cost run on re2js' lazy DFA, costlier ones on its NFA (cheaper per character at worst). */
export const DFA_MAX_COST = 2 ** 14;
/** Time one selection may spend matching before it fails. */
export const MATCH_TIME_BUDGET_MS = 50;

/** A pattern RE2 cannot compile, or one beyond sluice's limits. The message is the reason, for a ValidationError. */
export class PatternError extends SluiceError {
  override name = 'PatternError';

  constructor(message: string, options?: ErrorOptions) {
    super('PATTERN_INVALID', message, options);
  }
}

/** A label-matcher regular expression compiled by RE2: fully anchored, `.` matches `\n`, linear time. */
export interface Re2Pattern {
  readonly source: string;
  /** RE2's program size in instructions: what one character of input costs to match, at worst. */
  readonly programSize: number;
  /** The longest value `matches` is used on by selectSamples (MAX_LABEL_VALUE_LENGTH, less for large programs). */
  readonly maxValueLength: number;
  /** Whether the whole of `value` matches. No length limit here: callers apply maxValueLength. */
  matches(value: string): boolean;
}

/** Constructs of other engines that RE2 lacks, by the text re2js reports as offending (fixed, linear patterns). */
const UNSUPPORTED: readonly { readonly opener: RegExp; readonly what: string }[] = [
  { opener: /^\(\?[=!]/, what: 'a lookahead' },
  { opener: /^\(\?<[=!]/, what: 'a lookbehind' },
  { opener: /^\\(?:[1-9]|k|g)/, what: 'a backreference' },
  { opener: /^\(\?>/, what: 'an atomic group' },
  { opener: /^[*+?}]\+/, what: 'a possessive quantifier' },
];

/**
 * Compiles a label matcher's pattern as Prometheus does (`^(?s:<pattern>)$`, the pattern alone must be valid).
 * Throws PatternError with RE2's reason.
 */
export function compilePattern(source: string): Re2Pattern {
  if (source.length > MAX_PATTERN_LENGTH) {
    throw new PatternError(
      `regular expression of ${source.length} characters, more than the ${MAX_PATTERN_LENGTH} sluice accepts`,
    );
  }
  let re: RE2JS;
  try {
    // First alone, as Prometheus parses it (the flag does not change what is valid; re2js would show it as a
    // "(?s)" prefix in its messages), then with `.` matching `\n`. No RE2JS.LOOKBEHINDS: that re2js extension is
    // not RE2, and Prometheus would reject what it accepts.
    RE2JS.compile(source);
    re = RE2JS.compile(source, RE2JS.DOTALL);
  } catch (cause) {
    if (!(cause instanceof RE2JSException)) throw cause;
    const snippet = cause instanceof RE2JSSyntaxException ? (cause.input ?? '') : '';
    const reason = cause.message.replace(/^error parsing regexp: /, '');
    for (const { opener, what } of UNSUPPORTED) {
      const found = opener.exec(snippet);
      if (found === null) continue;
      throw new PatternError(
        `"${source}" uses ${what} \`${found[0]}\`, which is not supported by RE2 (RE2: ${reason}; ` +
          'https://github.com/google/re2/wiki/Syntax; Prometheus uses the same syntax)',
        { cause },
      );
    }
    throw new PatternError(`"${source}" is not a valid RE2 regular expression: ${reason}`, { cause });
  }
  const programSize = re.programSize();
  if (programSize > MAX_PROGRAM_SIZE) {
    throw new PatternError(
      `"${source.length > 80 ? `${source.slice(0, 80)}…` : source}" compiles to an RE2 program of ${programSize} ` +
        `instructions, more than the ${MAX_PROGRAM_SIZE} sluice accepts (use a shorter pattern or several triggers)`,
    );
  }
  return {
    source,
    programSize,
    maxValueLength: Math.min(MAX_LABEL_VALUE_LENGTH, Math.floor(MAX_MATCH_COST / programSize) - 1),
    // testExact and matcher().matches() are both anchored at both ends (RE2's ANCHOR_BOTH).
    matches: (value) =>
      programSize * (value.length + 1) <= DFA_MAX_COST ? re.testExact(value) : re.matcher(value).matches(),
  };
}

export interface SelectOptions {
  /** What was read (a URL without credentials, an endpoint), to start limit errors' messages. */
  readonly where?: string;
  /** Default MATCH_TIME_BUDGET_MS. */
  readonly timeBudgetMs?: number;
  /** Milliseconds, monotonic (default performance.now); for tests. */
  readonly now?: () => number;
}

/** Whether `m` accepts `actual` (no limits: selectSamples checks them first; parseSelector asks about ""). */
function accepts(m: LabelMatcher, actual: string): boolean {
  switch (m.op) {
    case '=':
      return actual === m.value;
    case '!=':
      return actual !== m.value;
    case '=~':
      return m.pattern.matches(actual);
    case '!~':
      return !m.pattern.matches(actual);
  }
}

type RegexMatcher = Extract<LabelMatcher, { readonly pattern: Re2Pattern }>;

function isRegex(m: LabelMatcher): m is RegexMatcher {
  return m.op === '=~' || m.op === '!~';
}

function valueOf(sample: ExpositionSample, label: string): string {
  if (label === '__name__') return sample.name;
  return Object.hasOwn(sample.labels, label) ? (sample.labels[label] ?? '') : '';
}

/**
 * The samples `selector` matches, in exposition order. Equality matchers are checked before regular expressions.
 * Throws ExpositionLimitError when a regular expression would have to examine a value longer than its pattern's
 * maxValueLength, or when matching has taken more than the time budget.
 */
export function selectSamples(
  samples: readonly ExpositionSample[],
  selector: Selector,
  options: SelectOptions = {},
): ExpositionSample[] {
  const equality = selector.matchers.filter((m) => !isRegex(m));
  const regex = selector.matchers.filter(isRegex);
  const now = options.now ?? (() => performance.now());
  const budgetMs = options.timeBudgetMs ?? MATCH_TIME_BUDGET_MS;
  const prefix = options.where === undefined ? '' : `${options.where}: `;
  const started = regex.length === 0 ? 0 : now();
  const selected: ExpositionSample[] = [];
  for (let i = 0; i < samples.length; i++) {
    const sample = samples[i] as ExpositionSample;
    if (selector.name !== undefined && sample.name !== selector.name) continue;
    if (!equality.every((m) => accepts(m, valueOf(sample, m.label)))) continue;
    let keep = true;
    for (const m of regex) {
      const value = valueOf(sample, m.label);
      if (value.length > m.pattern.maxValueLength) {
        const what = m.label === '__name__' ? 'a metric name' : `label "${m.label}" of a series has a value that`;
        throw new ExpositionLimitError(
          `${prefix}${what} has ${value.length} characters; sluice matches ${m.label}${m.op}"…" of ` +
            `${selector.text} against at most ${m.pattern.maxValueLength} (so that one exporter cannot stall the ` +
            'process): exclude that series with an equality matcher, or shorten the value',
        );
      }
      keep = accepts(m, value);
      if (now() - started > budgetMs) {
        throw new ExpositionLimitError(
          `${prefix}matching ${selector.text} took more than ${budgetMs} ms (at sample ${i + 1} of ${samples.length}); ` +
            'sluice stops there so that one exporter cannot stall the process: narrow the selector with equality ' +
            "matchers, simplify its regular expressions, or trim the exporter's output",
        );
      }
      if (!keep) break;
    }
    if (keep) selected.push(sample);
  }
  return selected;
}
