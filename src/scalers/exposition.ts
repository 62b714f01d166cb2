/**
 * SHARED MODULE (used by the metrics-api scaler with `format: prometheus` and by the http-rate scaler): a small
 * parser for the Prometheus text exposition format and for instant-vector sample selectors. No I/O.
 *
 * - `parseExposition(text)` reads lines `name{label="value",...} value [timestamp]` (comments, `# HELP`, `# TYPE`,
 *   `# EOF` and blank lines skipped; OpenMetrics exemplars ` # {...} v` ignored; Prometheus 3 quoted names
 *   `{"my.metric",a="b"}` accepted). Values are Go floats incl. `NaN`, `+Inf`, `-Inf`. Any line it cannot read
 *   throws `ExpositionError` naming the line number: a malformed body is an error, never a partial read.
 * - `parseSelector(text, field)` reads `name`, `name{a="b",c!="d",e=~"x.*",f!~"y"}` or `{__name__="name",...}`;
 *   regular expressions are fully anchored as in PromQL. A syntax error is a ValidationError naming `field`.
 * - `selectSamples(samples, selector)` keeps the samples the selector matches. As in PromQL, a label the sample
 *   lacks matches as the empty string (`a=""` matches series without `a`; `a!=""` requires it).
 */
import { SluiceError, ValidationError } from '../errors.ts';

export interface ExpositionSample {
  readonly name: string;
  /** Label names to values (a null-prototype object; `__name__` is not included). */
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
  /** The optional timestamp (milliseconds since the epoch in the Prometheus text format). */
  readonly timestamp?: number;
}

export type MatchOp = '=' | '!=' | '=~' | '!~';

export interface LabelMatcher {
  readonly label: string;
  readonly op: MatchOp;
  readonly value: string;
}

export interface Selector {
  /** The metric name (from `name{...}` or a `__name__="..."` matcher); undefined when only matchers select. */
  readonly name: string | undefined;
  readonly matchers: readonly LabelMatcher[];
  /** The selector as written (trimmed), for messages. */
  readonly text: string;
}

/** The exposition text cannot be read. The message names the line, never its contents beyond the metric name. */
export class ExpositionError extends SluiceError {
  override name = 'ExpositionError';
  readonly line: number;

  constructor(line: number, message: string) {
    super('EXPOSITION_INVALID', `line ${line}: ${message}`);
    this.line = line;
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
        else this.fail(`invalid escape "\\${next}" in quoted string`);
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

/** Parses Prometheus text exposition. Throws ExpositionError on the first line it cannot read. */
export function parseExposition(text: string): ExpositionSample[] {
  const samples: ExpositionSample[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').replace(/\r$/, '');
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
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
        if (Object.hasOwn(labels, label)) fail(`label "${label}" is repeated`);
        labels[label] = value;
      },
    });
    const afterLabels = c.pos;
    c.skipSpaces();
    spaced = c.pos > afterLabels;
  }
  if (name === undefined || name === '') return fail('a sample has no metric name');
  if (!spaced || c.done) fail(`expected a space and a value after "${name}"`);
  const valueToken = c.token();
  const value = parseSampleValue(valueToken);
  if (value === undefined) return fail(`"${name}" has an invalid value "${valueToken}"`);
  c.skipSpaces();
  let timestamp: number | undefined;
  if (!c.done && c.peek() !== '#') {
    const tsToken = c.token();
    const ts = parseSampleValue(tsToken);
    if (ts === undefined || !Number.isFinite(ts)) fail(`"${name}" has an invalid timestamp "${tsToken}"`);
    timestamp = ts;
    c.skipSpaces();
  }
  // OpenMetrics exemplar (` # {trace_id="..."} 1.0 [ts]`): ignored. Anything else after the sample is an error.
  if (!c.done && c.peek() !== '#') fail(`unexpected text after the value of "${name}"`);
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
        if (op === '=~' || op === '!~') compileAnchored(value, fail);
        if (label === '__name__' && op === '=') setName(value);
        else matchers.push({ label, op, value });
      },
    });
  }
  c.skipSpaces();
  if (!c.done) fail(`unexpected text at column ${c.pos + 1}`);
  // PromQL's rule: without a metric name, at least one matcher must reject the empty value.
  if (name === undefined && matchers.every((m) => matches(m, ''))) {
    fail('give a metric name or at least one matcher that does not match the empty string');
  }
  if (name === '') fail('the metric name is empty');
  return { name, matchers, text: trimmed };
}

const regexCache = new Map<string, RegExp>();

function compileAnchored(source: string, fail: (message: string) => never): RegExp {
  const cached = regexCache.get(source);
  if (cached) return cached;
  let re: RegExp;
  try {
    re = new RegExp(`^(?:${source})$`, 's');
  } catch (err) {
    return fail(`invalid regular expression "${source}": ${err instanceof Error ? err.message : String(err)}`);
  }
  if (regexCache.size > 1000) regexCache.clear();
  regexCache.set(source, re);
  return re;
}

function matches(m: LabelMatcher, actual: string): boolean {
  switch (m.op) {
    case '=':
      return actual === m.value;
    case '!=':
      return actual !== m.value;
    case '=~':
    case '!~': {
      const re = compileAnchored(m.value, (message) => {
        throw new Error(message);
      });
      return re.test(actual) === (m.op === '=~');
    }
  }
}

/** The samples `selector` matches, in exposition order. */
export function selectSamples(samples: readonly ExpositionSample[], selector: Selector): ExpositionSample[] {
  return samples.filter(
    (s) =>
      (selector.name === undefined || s.name === selector.name) &&
      selector.matchers.every((m) =>
        matches(m, m.label === '__name__' ? s.name : Object.hasOwn(s.labels, m.label) ? (s.labels[m.label] ?? '') : ''),
      ),
  );
}
