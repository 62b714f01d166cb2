/**
 * The expression language of KEDA's `spec.advanced.scalingModifiers.formula`: a parser and an evaluator of the
 * project's own (no `eval`, no `Function`, no dependency). A formula is parsed once, at validation, into an AST that
 * is then evaluated on every poll with the triggers' values by trigger name.
 *
 * Why our own: KEDA (kedacore/keda `pkg/scaling/modifiers/formula.go`) compiles the formula with expr-lang
 * (github.com/expr-lang/expr) and runs it over a map of trigger name → value; a failed trigger's value is nil when
 * the fallback behavior is `scalingModifiers`. Users write formulas in the small arithmetic part of expr-lang, so
 * that part is what sluice implements, with the same syntax, precedence and results, and bounds that hostile input
 * cannot get around. Language: https://expr-lang.org/docs/language-definition (operators, literals, `min`, `max`,
 * `abs`, `ceil`, `floor`); precedence: expr-lang `parser/operator/operator.go` and `parser/parser.go` (the page has no
 * precedence table).
 *
 * Grammar (EBNF; whitespace is ` \t\n\r\v\f` and separates tokens):
 *
 *   formula     = expression ;
 *   expression  = or-expr [ "?" expression ":" expression ] ;          (* right-assoc: a ? b : c ? d : e *)
 *   or-expr     = and-expr { ( "||" | "or" ) and-expr } ;
 *   and-expr    = cmp-expr { ( "&&" | "and" ) cmp-expr } ;
 *   cmp-expr    = add-expr { ( "==" | "!=" | "<" | "<=" | ">" | ">=" ) add-expr } ;  (* a < b < c = a < b && b < c *)
 *   add-expr    = mul-expr { ( "+" | "-" ) mul-expr } ;
 *   mul-expr    = coalesce { ( "*" | "/" | "%" ) coalesce } ;
 *   coalesce    = unary { "??" unary } ;     (* an unparenthesised ?? chain cannot be another operator's left operand *)
 *   unary       = ( "!" | "not" ) mul-expr   (* !a * b = !(a * b); !a + b = (!a) + b *)
 *               | ( "-" | "+" ) coalesce     (* -a * b = (-a) * b; -a ?? b = -(a ?? b) *)
 *               | primary ;
 *   primary     = number | name | "nil" | "true" | "false" | call | "(" expression ")" ;
 *   call        = ( "min" | "max" | "abs" | "ceil" | "floor" ) "(" [ expression { "," expression } [ "," ] ] ")" ;
 *   name        = ( letter | "_" ) { letter | digit | "_" } ;            (* ASCII letters; not a keyword *)
 *   number      = ( digits [ "." [ digits ] ] | "." digits ) [ ( "e" | "E" ) [ "+" | "-" ] digits ] ;
 *   digits      = digit { [ "_" ] digit } ;
 *
 * Precedence, loosest first (expr-lang's numbers from `operator.go`): `?:` (only around a whole binary expression),
 * `|| or` 10, `&& and` 15, comparisons 20, `+ -` 30, prefix `! not` 50, `* / %` 60, prefix `- +` 90, `??` 500. So `??`
 * binds tighter than everything, comparisons included: `1 < a ?? 0` is `1 < (a ?? 0)`, and `a ?? 0 > 1` is refused,
 * as expr-lang refuses it ("Operator (>) and coalesce expressions (??) cannot be mixed"): write `(a ?? 0) > 1`.
 *
 * Semantics: every number is a float64. A trigger that failed is `nil`; `a ?? b` is `b` when `a` is nil; any other
 * operator on nil is an error ("invalid operation", as in expr-lang), so is an operator on the wrong type (`1 + true`,
 * `!1`, `1 ? 2 : 3`). `&&`, `||`, `??` and `?:` evaluate only what they need (`true || a` with `a` nil is true). `/`
 * is float division. `min`/`max` take one or more numbers, `abs`/`ceil`/`floor` exactly one. The formula's value must
 * be a finite number or nil; booleans, Inf and NaN are errors that name the subexpression (`a / 0`).
 *
 * Deliberate differences from expr-lang (it is a subset; anything not listed is refused at parse time, naming what):
 * - No strings, arrays, maps, member access, `in`, `..`, `|` (pipe), `**`/`^`, `let`, `if`, comments, predicates,
 *   `?.`, the `a ?: b` shorthand, `$env`, hex/octal/binary literals, and no builtin but the five above.
 * - Names are ASCII `[A-Za-z_][A-Za-z0-9_]*` (expr-lang also takes `$` and Unicode letters). KEDA trigger names may
 *   contain `-`, but expr-lang reads `my-trigger` as `my - trigger`: such triggers cannot be used in a formula (the
 *   unknown-name error says so).
 * - One number type (float64). expr-lang keeps integers apart (int64 arithmetic that wraps on overflow); sluice does
 *   float arithmetic throughout. Integer literals beyond int64 are refused, as in expr-lang.
 * - `%` takes integral operands and a non-zero divisor; it is the truncated remainder (Go's and JavaScript's). expr-lang
 *   releases differ here (older: integers only; newer: `math.Mod` for floats), so sluice keeps to what both accept.
 * - Division by zero and overflow give ±Inf in expr-lang; here any Inf or NaN is an error naming the subexpression,
 *   so a bad value never reaches the HPA.
 * - Type errors expr-lang's checker finds at compile time are found at parse time when an operand can never have the
 *   required type (`1 + true`, `nil * 2`, a boolean formula `a > 1`); the rest at evaluation. Unknown names are found
 *   at evaluation (the operator also checks `variables` against the trigger names at validation).
 * - A builtin's name used as a value (`min + 1`) is refused: in expr-lang it names the function, never a trigger.
 *
 * Bounds (hostile input never stalls or crashes the process): at most 4096 characters, nesting depth 64 (parentheses,
 * prefix operators, conditionals, calls; the parser counts its depth, so 100 000 `(` is an error, not a stack
 * overflow), 10 000 AST nodes; runs of one operator level become one n-ary node, so a long sum is evaluated in a
 * loop. Evaluation is O(AST size): the language has no loops. Errors quote at most ~40 characters of the formula.
 */
import { SluiceError } from '../errors.ts';

/**
 * A formula that cannot be parsed (code `INVALID_FORMULA`) or evaluated (code `FORMULA_EVALUATION`). `column` is the
 * 1-based position in the formula of the offending token or subexpression, when there is one.
 */
export class FormulaError extends SluiceError {
  override name = 'FormulaError';
  readonly column: number | undefined;

  constructor(code: 'INVALID_FORMULA' | 'FORMULA_EVALUATION', message: string, column: number | undefined) {
    super(code, message);
    this.column = column;
  }
}

export interface Formula {
  readonly source: string;
  /** Identifiers the formula references, in order of first appearance. */
  readonly variables: readonly string[];
  /** Evaluates with the given variable values (undefined or null = nil). Throws FormulaError. */
  evaluate(
    values: Readonly<Record<string, number | null | undefined>>,
  ): { kind: 'number'; value: number } | { kind: 'nil' };
}

export interface FormulaLimits {
  /** Characters (UTF-16 code units) in the formula. */
  readonly maxLength: number;
  /** Nesting of parentheses, prefix operators, conditionals and function calls. */
  readonly maxDepth: number;
  /** AST nodes: operands, operators, parentheses, calls. */
  readonly maxNodes: number;
}

export const FORMULA_LIMITS: FormulaLimits = Object.freeze({ maxLength: 4096, maxDepth: 64, maxNodes: 10_000 });

/** Parses `source`; throws FormulaError whose message names the column (1-based) and what was expected. */
export function parseFormula(source: string): Formula {
  return parseFormulaWithLimits(source, FORMULA_LIMITS);
}

/** parseFormula with other bounds: for tests and benchmarks that probe the bounds themselves. */
export function parseFormulaWithLimits(source: string, limits: FormulaLimits): Formula {
  if (source.length > limits.maxLength) {
    throw new FormulaError(
      'INVALID_FORMULA',
      `column ${limits.maxLength + 1}: the formula is ${source.length} characters long; the limit is ${limits.maxLength}`,
      limits.maxLength + 1,
    );
  }
  const tokens = lex(source);
  const parser = new Parser(source, tokens, limits);
  const root = parser.parse();
  const type = typeOf(root, source);
  if ((type & (NUM | NIL)) === 0) {
    fail(source, root.start, 'the formula gives a boolean, but it must give a number (e.g. write `a > 2 ? 1 : 0`)');
  }
  const variables = Object.freeze([...parser.variables]);
  const hyphenated = hyphenatedNames(source, tokens);
  return Object.freeze({
    source,
    variables,
    evaluate(values: Readonly<Record<string, number | null | undefined>>) {
      const value = new Evaluator(source, values, hyphenated).run(root);
      if (value === null) return { kind: 'nil' as const };
      if (typeof value === 'boolean') {
        throw evalError(root, `the formula gives a boolean (${String(value)}), but it must give a number`);
      }
      return { kind: 'number' as const, value: value === 0 ? 0 : value };
    },
  });
}

// ----------------------------------------------------------------------------------------------------------------
// Messages

const SUPPORTED =
  'numbers, trigger names, nil, true, false, + - * / %, == != < <= > >=, && || ! and or not, ??, ?:, ( ) and ' +
  'min, max, abs, ceil, floor';
const HYPHEN_HINT =
  'a trigger name containing "-" cannot be used in a formula (expr-lang reads `a-b` as `a - b`): rename the trigger';

/** At most `max` characters of `text`, whitespace runs as one space. */
function clip(text: string, max: number): string {
  const flat = text.slice(0, max * 2).replace(/\s+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** `text` in backquotes, at most 24 characters of it. */
function quote(text: string): string {
  return `\`${clip(text, 24)}\``;
}

/** The formula around `index`: at most 16 characters either side, JSON-quoted (control characters escaped). */
function near(source: string, index: number): string {
  const from = Math.max(0, index - 16);
  const to = Math.min(source.length, index + 16);
  return JSON.stringify(`${from > 0 ? '…' : ''}${source.slice(from, to)}${to < source.length ? '…' : ''}`);
}

function fail(source: string, index: number, message: string): never {
  const context = source.trim() === '' ? '' : ` (near ${near(source, index)})`;
  throw new FormulaError('INVALID_FORMULA', `column ${index + 1}: ${message}${context}`, index + 1);
}

function evalError(at: { readonly start: number }, message: string): FormulaError {
  return new FormulaError('FORMULA_EVALUATION', `column ${at.start + 1}: ${message}`, at.start + 1);
}

/** The source text of a node, at most 40 characters. */
function textOf(source: string, node: Span): string {
  return `\`${clip(source.slice(node.start, node.end), 40)}\``;
}

// ----------------------------------------------------------------------------------------------------------------
// Lexer

type TokenKind = 'number' | 'name' | 'op' | 'bad' | 'end';

interface Token {
  readonly kind: TokenKind;
  /** The token's text; for `op`, the operator as written (`and`, `&&`, …). */
  readonly text: string;
  readonly start: number;
  readonly end: number;
  /** The value of a `number` token. */
  readonly value: number;
  /** Why a `bad` token is not a token, reported when the parser reaches it (so `count([…])` names `count` first). */
  readonly error?: FormulaError;
}

const OPERATORS_2 = new Set(['??', '==', '!=', '<=', '>=', '&&', '||']);
const OPERATORS_1 = new Set(['+', '-', '*', '/', '%', '(', ')', ',', '?', ':', '<', '>', '!']);
const WORD_OPERATORS = new Set(['and', 'or', 'not']);
const UNSUPPORTED_2 = new Map([
  ['**', 'the power operator `**`'],
  ['//', 'a comment'],
  ['/*', 'a comment'],
  ['..', 'the range operator `..`'],
  ['?.', 'optional chaining `?.` (for a decimal after `?`, write `? 0.5`)'],
  ['::', '`::`'],
]);
const UNSUPPORTED_1 = new Map([
  ['^', 'the power operator `^`'],
  ['=', '`=` (to compare, write `==`)'],
  ['&', '`&` (logical and is `&&`)'],
  ['|', 'the pipe operator `|` (logical or is `||`)'],
  ['.', 'member access `.`'],
  ['[', 'an array or index `[`'],
  [']', 'an array or index `]`'],
  ['{', 'a map or predicate `{`'],
  ['}', 'a map or predicate `}`'],
  ['"', 'a string'],
  ["'", 'a string'],
  ['`', 'a string'],
  ['#', 'a predicate `#`'],
  [';', '`;` (`let` is not supported)'],
  ['$', '`$` (`$env` is not supported; names are ASCII letters, digits and `_`)'],
]);
const MAX_INT64 = 9223372036854775807n;

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';
const isNameStart = (c: string | undefined): boolean =>
  c !== undefined && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c === '_');
const isNamePart = (c: string | undefined): boolean => isNameStart(c) || isDigit(c);
const isSpace = (c: string): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\v' || c === '\f';

/** The tokens of `source`, ending with `end`; lexing stops at the first character that starts no token (`bad`). */
function lex(source: string): Token[] {
  const tokens: Token[] = [];
  try {
    lexInto(source, tokens);
  } catch (err) {
    if (!(err instanceof FormulaError) || err.column === undefined) throw err;
    tokens.push({ kind: 'bad', text: '', start: err.column - 1, end: err.column - 1, value: 0, error: err });
  }
  tokens.push({ kind: 'end', text: '', start: source.length, end: source.length, value: 0 });
  return tokens;
}

function lexInto(source: string, tokens: Token[]): void {
  const push = (kind: TokenKind, start: number, end: number, value = 0): void => {
    tokens.push({ kind, text: source.slice(start, end), start, end, value });
  };
  let i = 0;
  while (i < source.length) {
    const c = source.charAt(i);
    if (isSpace(c)) {
      i++;
    } else if (isDigit(c) || (c === '.' && isDigit(source[i + 1]))) {
      const token = lexNumber(source, i);
      tokens.push(token);
      i = token.end;
    } else if (isNameStart(c)) {
      let j = i + 1;
      while (isNamePart(source[j])) j++;
      const text = source.slice(i, j);
      push(WORD_OPERATORS.has(text) ? 'op' : 'name', i, j);
      i = j;
    } else {
      const two = source.slice(i, i + 2);
      const unsupported = UNSUPPORTED_2.get(two) ?? (OPERATORS_2.has(two) ? undefined : UNSUPPORTED_1.get(c));
      if (OPERATORS_2.has(two)) {
        push('op', i, i + 2);
        i += 2;
      } else if (unsupported !== undefined) {
        fail(source, i, `${unsupported} is not supported in sluice formulas (supported: ${SUPPORTED})`);
      } else if (OPERATORS_1.has(c)) {
        push('op', i, i + 1);
        i += 1;
      } else {
        const char = String.fromCodePoint(source.codePointAt(i) ?? 0);
        const code = `U+${(char.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
        fail(
          source,
          i,
          `unexpected character ${JSON.stringify(char)} (${code}); names are ASCII letters, digits and _`,
        );
      }
    }
  }
}

/** digit { [ "_" ] digit } from `i`; returns where the run ends (`i` when there is no digit). */
function scanDigits(source: string, i: number): number {
  if (!isDigit(source[i])) return i;
  let j = i + 1;
  for (;;) {
    if (isDigit(source[j])) j++;
    else if (source[j] === '_' && isDigit(source[j + 1])) j += 2;
    else return j;
  }
}

function lexNumber(source: string, start: number): Token {
  if (source[start] === '0' && /^[xXoObB]$/.test(source[start + 1] ?? '')) {
    fail(source, start, 'hexadecimal, octal and binary literals are not supported: write the number in decimal');
  }
  let i = scanDigits(source, start);
  let integer = true;
  if (source[i] === '.' && source[i + 1] !== '.') {
    integer = false;
    i = scanDigits(source, i + 1);
  }
  if (source[i] === 'e' || source[i] === 'E') {
    integer = false;
    let j = i + 1;
    if (source[j] === '+' || source[j] === '-') j++;
    const end = scanDigits(source, j);
    if (end === j) fail(source, start, `malformed number ${quote(source.slice(start, j))}: the exponent has no digits`);
    i = end;
  }
  if (isNamePart(source[i])) {
    const hint = source[start - 1] === '-' && isNamePart(source[start - 2]) ? `; ${HYPHEN_HINT}` : '';
    fail(source, i, `malformed number ${quote(source.slice(start, i + 1))}: a number cannot run into a letter${hint}`);
  }
  const text = source.slice(start, i).replaceAll('_', '');
  if (integer && BigInt(text) > MAX_INT64) {
    fail(source, start, `integer literal ${quote(text)} is larger than int64 (expr-lang's integers); write it as 1e19`);
  }
  const value = Number(text);
  if (!Number.isFinite(value)) fail(source, start, `number ${quote(text)} is too large for a float64`);
  return { kind: 'number', text: source.slice(start, i), start, end: i, value };
}

/**
 * For each name that is the head or a part of a hyphenated run written without spaces (`my-trigger`, `queue-2`), the
 * whole run: the trigger name the author probably meant.
 */
function hyphenatedNames(source: string, tokens: readonly Token[]): ReadonlyMap<string, string> {
  const runs = new Map<string, string>();
  for (let i = 0; i < tokens.length;) {
    const first = tokens[i];
    let j = i;
    if (first?.kind === 'name') {
      for (;;) {
        const minus = tokens[j + 1];
        const next = tokens[j + 2];
        const prev = tokens[j];
        if (minus?.text !== '-' || next === undefined || prev === undefined) break;
        if (prev.end !== minus.start || minus.end !== next.start) break;
        if (next.kind !== 'name' && next.kind !== 'number') break;
        j += 2;
      }
    }
    const last = tokens[j];
    if (j > i && first !== undefined && last !== undefined) {
      const run = source.slice(first.start, last.end);
      for (let k = i; k <= j; k += 2) {
        const part = tokens[k];
        if (part?.kind === 'name' && !runs.has(part.text)) runs.set(part.text, run);
      }
    }
    i = j + 1;
  }
  return runs;
}

// ----------------------------------------------------------------------------------------------------------------
// AST

interface Span {
  start: number;
  end: number;
}

type ArithOp = '+' | '-' | '*' | '/' | '%';
type CompareOp = '==' | '!=' | '<' | '<=' | '>' | '>=';
type LogicOp = '&&' | '||';
type FunctionName = 'min' | 'max' | 'abs' | 'ceil' | 'floor';

interface NumberNode extends Span {
  readonly kind: 'number';
  readonly value: number;
}
interface BoolNode extends Span {
  readonly kind: 'bool';
  readonly value: boolean;
}
interface NilNode extends Span {
  readonly kind: 'nil';
}
interface VarNode extends Span {
  readonly kind: 'var';
  readonly name: string;
}
interface ParenNode extends Span {
  readonly kind: 'paren';
  readonly inner: Node;
}
interface UnaryNode extends Span {
  readonly kind: 'unary';
  readonly op: '-' | '+' | '!';
  readonly opText: string;
  readonly operand: Node;
}
/** A run of one precedence level, left-associative: operands[0] ops[0] operands[1] ops[1] … */
interface ArithNode extends Span {
  readonly kind: 'arith';
  readonly prec: number;
  readonly operands: Node[];
  readonly ops: ArithOp[];
  readonly opStarts: number[];
}
interface LogicNode extends Span {
  readonly kind: 'logic';
  readonly prec: number;
  readonly op: LogicOp;
  readonly opText: string;
  readonly operands: Node[];
}
interface CoalesceNode extends Span {
  readonly kind: 'coalesce';
  readonly prec: number;
  readonly operands: Node[];
}
/** `a < b <= c`: `a < b && b <= c`, each operand evaluated once. */
interface CompareNode extends Span {
  readonly kind: 'compare';
  readonly operands: Node[];
  readonly ops: CompareOp[];
  readonly opStarts: number[];
}
interface CondNode extends Span {
  readonly kind: 'cond';
  readonly test: Node;
  readonly then: Node;
  readonly otherwise: Node;
}
interface CallNode extends Span {
  readonly kind: 'call';
  readonly fn: FunctionName;
  readonly args: Node[];
}
type Node =
  | NumberNode
  | BoolNode
  | NilNode
  | VarNode
  | ParenNode
  | UnaryNode
  | ArithNode
  | LogicNode
  | CoalesceNode
  | CompareNode
  | CondNode
  | CallNode;
type NaryNode = ArithNode | LogicNode | CoalesceNode;

// ----------------------------------------------------------------------------------------------------------------
// Parser: precedence climbing as expr-lang's parser.go does it, with a depth counter and n-ary runs.

type BinaryOp = ArithOp | CompareOp | LogicOp | '??';

const BINARY: ReadonlyMap<string, BinaryOp> = new Map<string, BinaryOp>([
  ['||', '||'],
  ['or', '||'],
  ['&&', '&&'],
  ['and', '&&'],
  ['==', '=='],
  ['!=', '!='],
  ['<', '<'],
  ['<=', '<='],
  ['>', '>'],
  ['>=', '>='],
  ['+', '+'],
  ['-', '-'],
  ['*', '*'],
  ['/', '/'],
  ['%', '%'],
  ['??', '??'],
]);
const PRECEDENCE: Readonly<Record<BinaryOp, number>> = {
  '||': 10,
  '&&': 15,
  '==': 20,
  '!=': 20,
  '<': 20,
  '<=': 20,
  '>': 20,
  '>=': 20,
  '+': 30,
  '-': 30,
  '*': 60,
  '/': 60,
  '%': 60,
  '??': 500,
};
const UNARY: ReadonlyMap<string, { readonly op: '-' | '+' | '!'; readonly prec: number }> = new Map([
  ['!', { op: '!', prec: 50 }],
  ['not', { op: '!', prec: 50 }],
  ['-', { op: '-', prec: 90 }],
  ['+', { op: '+', prec: 90 }],
] as const);
const isComparison = (op: BinaryOp): op is CompareOp => PRECEDENCE[op] === 20;

const FUNCTIONS: ReadonlyMap<string, { readonly fn: FunctionName; readonly min: number; readonly max: number }> =
  new Map([
    ['min', { fn: 'min', min: 1, max: Infinity }],
    ['max', { fn: 'max', min: 1, max: Infinity }],
    ['abs', { fn: 'abs', min: 1, max: 1 }],
    ['ceil', { fn: 'ceil', min: 1, max: 1 }],
    ['floor', { fn: 'floor', min: 1, max: 1 }],
  ] as const);
/** Words expr-lang's lexer reads as operators or keywords: never a trigger name there. */
const EXPR_KEYWORDS = new Set(['in', 'matches', 'contains', 'startsWith', 'endsWith', 'let', 'if', 'else']);
const EXPECTED_OPERAND =
  'an operand (a number, a trigger name, nil, true, false, a function call, `(`, or a prefix - + ! not)';

class Parser {
  readonly #source: string;
  readonly #tokens: readonly Token[];
  readonly #limits: FormulaLimits;
  #pos = 0;
  #depth = 0;
  #nodes = 0;
  readonly variables: string[] = [];
  readonly #seen = new Set<string>();

  constructor(source: string, tokens: readonly Token[], limits: FormulaLimits) {
    this.#source = source;
    this.#tokens = tokens;
    this.#limits = limits;
  }

  parse(): Node {
    if (this.#peek().kind === 'end') {
      fail(this.#source, 0, 'the formula is empty; expected an expression such as `trigger_a + trigger_b`');
    }
    const root = this.#expression(0);
    const next = this.#peek();
    if (next.kind !== 'end') {
      if (next.text === ')') fail(this.#source, next.start, 'this `)` has no matching `(`');
      this.#unexpected(next, 'an operator or the end of the formula');
    }
    return root;
  }

  #peek(): Token {
    // The last token is always `end`, and nothing moves past it.
    return this.#tokens[Math.min(this.#pos, this.#tokens.length - 1)] as Token;
  }

  #isOp(token: Token, text: string): boolean {
    return token.kind === 'op' && token.text === text;
  }

  #unexpected(token: Token, expected: string): never {
    if (token.error !== undefined) throw token.error;
    let found: string;
    if (token.kind === 'end') found = 'the end of the formula';
    else if (token.kind === 'number') found = `the number ${quote(token.text)}`;
    else if (token.kind === 'name' && EXPR_KEYWORDS.has(token.text)) {
      fail(
        this.#source,
        token.start,
        `\`${token.text}\` (an expr-lang operator or keyword) is not supported in sluice formulas`,
      );
    } else if (token.kind === 'name') found = `the name ${quote(token.text)}`;
    else found = quote(token.text);
    fail(this.#source, token.start, `expected ${expected}, found ${found}`);
  }

  #count(at: number): void {
    if (++this.#nodes > this.#limits.maxNodes) {
      fail(this.#source, at, `the formula has more than ${this.#limits.maxNodes} operands and operators`);
    }
  }

  #enter(token: Token): void {
    if (++this.#depth > this.#limits.maxDepth) {
      fail(
        this.#source,
        token.start,
        `the formula nests deeper than ${this.#limits.maxDepth} levels (parentheses, prefix operators, conditionals and calls)`,
      );
    }
  }

  #leave(): void {
    this.#depth--;
  }

  #expression(minPrec: number): Node {
    let left = this.#primary();
    let prevOp: BinaryOp | undefined;
    let run: NaryNode | undefined;
    for (;;) {
      const token = this.#peek();
      const op = token.kind === 'op' ? BINARY.get(token.text) : undefined;
      if (op === undefined) break;
      const prec = PRECEDENCE[op];
      if (prec < minPrec) break;
      if (prevOp === '??' && op !== '??') {
        fail(
          this.#source,
          token.start,
          `\`${token.text}\` cannot follow a \`??\` expression: expr-lang refuses to mix \`??\` with other operators; ` +
            `wrap the \`??\` part in parentheses, e.g. \`(a ?? 0) ${token.text} b\``,
        );
      }
      this.#pos++;
      this.#count(token.start);
      if (isComparison(op)) {
        left = this.#comparison(left, op, token);
        run = undefined;
      } else {
        const right = this.#expression(prec + 1);
        if (run !== undefined && left === run && run.prec === prec) {
          run.operands.push(right);
          if (run.kind === 'arith') {
            run.ops.push(op as ArithOp);
            run.opStarts.push(token.start);
          }
          run.end = right.end;
        } else {
          run = this.#nary(op, token, left, right);
          left = run;
        }
      }
      prevOp = op;
    }
    if (minPrec === 0 && this.#isOp(this.#peek(), '?')) left = this.#conditional(left);
    return left;
  }

  #nary(op: Exclude<BinaryOp, CompareOp>, token: Token, left: Node, right: Node): NaryNode {
    const span = { start: left.start, end: right.end, prec: PRECEDENCE[op], operands: [left, right] };
    if (op === '??') return { kind: 'coalesce', ...span };
    if (op === '&&' || op === '||') return { kind: 'logic', op, opText: token.text, ...span };
    return { kind: 'arith', ops: [op], opStarts: [token.start], ...span };
  }

  #comparison(left: Node, op: CompareOp, token: Token): CompareNode {
    const node: CompareNode = { kind: 'compare', operands: [left], ops: [], opStarts: [], start: left.start, end: 0 };
    let current: Token = token;
    let currentOp: CompareOp = op;
    for (;;) {
      const right = this.#expression(PRECEDENCE[currentOp] + 1);
      node.operands.push(right);
      node.ops.push(currentOp);
      node.opStarts.push(current.start);
      node.end = right.end;
      const next = this.#peek();
      const nextOp = next.kind === 'op' ? BINARY.get(next.text) : undefined;
      if (nextOp === undefined || !isComparison(nextOp)) return node;
      this.#pos++;
      this.#count(next.start);
      current = next;
      currentOp = nextOp;
    }
  }

  #conditional(test: Node): CondNode {
    const question = this.#peek();
    this.#pos++;
    this.#count(question.start);
    if (this.#isOp(this.#peek(), ':')) {
      this.#unexpected(this.#peek(), 'the value when true after `?` (the `a ?: b` shorthand is not supported)');
    }
    this.#enter(question);
    const then = this.#expression(0);
    const colon = this.#peek();
    if (!this.#isOp(colon, ':')) this.#unexpected(colon, `\`:\` for the \`?\` at column ${question.start + 1}`);
    this.#pos++;
    const otherwise = this.#expression(0);
    this.#leave();
    return { kind: 'cond', test, then, otherwise, start: test.start, end: otherwise.end };
  }

  #primary(): Node {
    const token = this.#peek();
    this.#count(token.start);
    if (token.kind === 'number') {
      this.#pos++;
      return { kind: 'number', value: token.value, start: token.start, end: token.end };
    }
    if (token.kind === 'name') return this.#name(token);
    const unary = token.kind === 'op' ? UNARY.get(token.text) : undefined;
    if (unary !== undefined) {
      this.#pos++;
      this.#enter(token);
      const operand = this.#expression(unary.prec);
      this.#leave();
      return { kind: 'unary', op: unary.op, opText: token.text, operand, start: token.start, end: operand.end };
    }
    if (this.#isOp(token, '(')) {
      this.#pos++;
      this.#enter(token);
      const inner = this.#expression(0);
      this.#leave();
      const close = this.#peek();
      if (!this.#isOp(close, ')')) this.#unexpected(close, `\`)\` to close the \`(\` at column ${token.start + 1}`);
      this.#pos++;
      return { kind: 'paren', inner, start: token.start, end: close.end };
    }
    this.#unexpected(token, EXPECTED_OPERAND);
  }

  #name(token: Token): Node {
    this.#pos++;
    const { start, end, text } = token;
    if (text === 'true' || text === 'false') return { kind: 'bool', value: text === 'true', start, end };
    if (text === 'nil') return { kind: 'nil', start, end };
    if (this.#isOp(this.#peek(), '(')) return this.#call(token);
    if (FUNCTIONS.has(text)) {
      fail(this.#source, start, `\`${text}\` is a function: call it, e.g. \`${text}(a, b)\``);
    }
    if (EXPR_KEYWORDS.has(text)) this.#unexpected(token, EXPECTED_OPERAND);
    if (!this.#seen.has(text)) {
      this.#seen.add(text);
      this.variables.push(text);
    }
    return { kind: 'var', name: text, start, end };
  }

  #call(name: Token): CallNode {
    const spec = FUNCTIONS.get(name.text);
    if (spec === undefined) {
      fail(
        this.#source,
        name.start,
        `unknown function ${quote(name.text)}: sluice formulas support only min, max, abs, ceil and floor`,
      );
    }
    const open = this.#peek();
    this.#pos++;
    this.#enter(open);
    const args: Node[] = [];
    for (;;) {
      if (this.#isOp(this.#peek(), ')')) break;
      if (args.length > 0) {
        const comma = this.#peek();
        if (!this.#isOp(comma, ',')) {
          this.#unexpected(comma, `\`,\` or \`)\` in the call to ${name.text}() at column ${name.start + 1}`);
        }
        this.#pos++;
        if (this.#isOp(this.#peek(), ')')) break;
      }
      args.push(this.#expression(0));
    }
    const close = this.#peek();
    this.#pos++;
    this.#leave();
    if (args.length < spec.min || args.length > spec.max) {
      const wanted = spec.max === spec.min ? `exactly ${spec.min} argument` : `at least ${spec.min} argument`;
      fail(this.#source, name.start, `${name.text}() takes ${wanted}, got ${args.length}`);
    }
    return { kind: 'call', fn: spec.fn, args, start: name.start, end: close.end };
  }
}

// ----------------------------------------------------------------------------------------------------------------
// Static types: what a node can evaluate to, as a set. An operator whose operand can never have the type it needs is
// an error at parse time, as expr-lang's checker makes it one at compile time.

const NUM = 1;
const BOOL = 2;
const NIL = 4;

function describeType(type: number): string {
  const parts = [type & NUM ? 'a number' : '', type & BOOL ? 'a boolean' : '', type & NIL ? 'nil' : ''];
  return parts.filter((p) => p !== '').join(' or ');
}

function need(source: string, operand: Node, type: number, want: number, what: string): void {
  if ((type & want) === 0) {
    fail(
      source,
      operand.start,
      `${what} needs ${describeType(want)}, but ${textOf(source, operand)} is ${describeType(type)}`,
    );
  }
}

function typeOf(node: Node, source: string): number {
  switch (node.kind) {
    case 'number':
      return NUM;
    case 'bool':
      return BOOL;
    case 'nil':
      return NIL;
    case 'var':
      return NUM | NIL;
    case 'paren':
      return typeOf(node.inner, source);
    case 'unary': {
      const want = node.op === '!' ? BOOL : NUM;
      need(source, node.operand, typeOf(node.operand, source), want, `\`${node.opText}\``);
      return want;
    }
    case 'arith':
      node.operands.forEach((operand, i) => {
        const op = node.ops[Math.max(0, i - 1)] ?? '+';
        need(source, operand, typeOf(operand, source), NUM, `\`${op}\``);
      });
      return NUM;
    case 'logic':
      for (const operand of node.operands) need(source, operand, typeOf(operand, source), BOOL, `\`${node.opText}\``);
      return BOOL;
    case 'compare': {
      const types = node.operands.map((operand) => typeOf(operand, source));
      node.ops.forEach((op, i) => {
        const [left, right] = [node.operands[i], node.operands[i + 1]] as [Node, Node];
        const [lt, rt] = [types[i] ?? 0, types[i + 1] ?? 0];
        if (op === '==' || op === '!=') {
          if ((lt & rt) === 0 && ((lt | rt) & NIL) === 0) {
            fail(
              source,
              node.opStarts[i] ?? node.start,
              `\`${op}\` compares ${describeType(lt)} with ${describeType(rt)}`,
            );
          }
        } else {
          need(source, left, lt, NUM, `\`${op}\``);
          need(source, right, rt, NUM, `\`${op}\``);
        }
      });
      return BOOL;
    }
    case 'coalesce': {
      let type = 0;
      node.operands.forEach((operand, i) => {
        const t = typeOf(operand, source);
        type = i === 0 ? t : type & NIL ? (type & ~NIL) | t : type;
      });
      return type;
    }
    case 'cond':
      need(source, node.test, typeOf(node.test, source), BOOL, 'the condition of `?:`');
      return typeOf(node.then, source) | typeOf(node.otherwise, source);
    case 'call':
      for (const arg of node.args) need(source, arg, typeOf(arg, source), NUM, `${node.fn}()`);
      return NUM;
  }
}

// ----------------------------------------------------------------------------------------------------------------
// Evaluator

type Value = number | boolean | null;

function describeValue(value: Value): string {
  if (value === null) return 'nil';
  return typeof value === 'boolean' ? `a boolean (${String(value)})` : 'a number';
}

function formatNonFinite(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  return value > 0 ? '+Inf' : '-Inf';
}

class Evaluator {
  readonly #source: string;
  readonly #values: Readonly<Record<string, number | null | undefined>>;
  readonly #hyphenated: ReadonlyMap<string, string>;

  constructor(
    source: string,
    values: Readonly<Record<string, number | null | undefined>>,
    hyphenated: ReadonlyMap<string, string>,
  ) {
    this.#source = source;
    this.#values = values;
    this.#hyphenated = hyphenated;
  }

  run(node: Node): Value {
    switch (node.kind) {
      case 'number':
      case 'bool':
        return node.value;
      case 'nil':
        return null;
      case 'var':
        return this.#variable(node);
      case 'paren':
        return this.run(node.inner);
      case 'unary': {
        const value = this.run(node.operand);
        if (node.op === '!') {
          if (typeof value !== 'boolean') throw this.#typeError(node, node.operand, value, 'a boolean');
          return !value;
        }
        if (typeof value !== 'number') throw this.#typeError(node, node.operand, value, 'a number');
        return node.op === '-' ? -value : value;
      }
      case 'arith':
        return this.#arith(node);
      case 'logic': {
        const stopOn = node.op === '||';
        for (const operand of node.operands) {
          const value = this.run(operand);
          if (typeof value !== 'boolean') throw this.#typeError(node, operand, value, 'a boolean');
          if (value === stopOn) return value;
        }
        return !stopOn;
      }
      case 'coalesce': {
        const last = node.operands.length - 1;
        for (let i = 0; i < last; i++) {
          const value = this.run(node.operands[i] as Node);
          if (value !== null) return value;
        }
        return this.run(node.operands[last] as Node);
      }
      case 'compare':
        return this.#compare(node);
      case 'cond': {
        const test = this.run(node.test);
        if (typeof test !== 'boolean') throw this.#typeError(node, node.test, test, 'a boolean');
        return this.run(test ? node.then : node.otherwise);
      }
      case 'call':
        return this.#call(node);
    }
  }

  #variable(node: VarNode): Value {
    if (!Object.hasOwn(this.#values, node.name)) {
      const run = this.#hyphenated.get(node.name);
      const hint =
        run === undefined
          ? ''
          : `; if you meant the trigger ${quote(run)}: ${HYPHEN_HINT} (e.g. ${quote(run.replaceAll('-', '_'))})`;
      throw evalError(node, `unknown name ${quote(node.name)}: no trigger of that name${hint}`);
    }
    const value: unknown = this.#values[node.name];
    if (value === undefined || value === null) return null;
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw evalError(
        node,
        `the value of ${quote(node.name)} is ${typeof value === 'number' ? formatNonFinite(value) : typeof value}, not a finite number`,
      );
    }
    return value;
  }

  /** "invalid operation" for an operand of the wrong type; a nil trigger gets the `??` hint. */
  #typeError(at: Span, operand: Node, value: Value, wanted: string): FormulaError {
    const hint =
      value === null && operand.kind === 'var'
        ? ` (a trigger that failed is nil: write \`(${clip(operand.name, 24)} ?? 0)\` to use 0 instead)`
        : '';
    return evalError(
      at,
      `invalid operation in ${textOf(this.#source, at)}: ${textOf(this.#source, operand)} is ${describeValue(value)}, ` +
        `not ${wanted}${hint}`,
    );
  }

  #number(at: Span, operand: Node): number {
    const value = this.run(operand);
    if (typeof value !== 'number') throw this.#typeError(at, operand, value, 'a number');
    return value;
  }

  #arith(node: ArithNode): number {
    let acc = this.#number(node, node.operands[0] as Node);
    for (let i = 0; i < node.ops.length; i++) {
      const operand = node.operands[i + 1] as Node;
      const op = node.ops[i] as ArithOp;
      const step = { start: node.start, end: operand.end };
      const right = this.#number(step, operand);
      let result: number;
      let reason = 'overflows a float64';
      switch (op) {
        case '+':
          result = acc + right;
          break;
        case '-':
          result = acc - right;
          break;
        case '*':
          result = acc * right;
          break;
        case '/':
          result = acc / right;
          if (right === 0) reason = 'division by zero';
          break;
        case '%':
          if (!Number.isInteger(acc) || !Number.isInteger(right)) {
            throw evalError(
              step,
              `\`%\` needs integers (as expr-lang's modulo), but ${textOf(this.#source, step)} is ${String(acc)} % ${String(right)}`,
            );
          }
          if (right === 0) throw evalError(step, `${textOf(this.#source, step)}: integer divide by zero`);
          result = (acc % right) + 0;
          break;
      }
      if (!Number.isFinite(result)) {
        throw evalError(
          step,
          `${textOf(this.#source, step)} is ${formatNonFinite(result)} (${reason}); the formula must give a finite number`,
        );
      }
      acc = result;
    }
    return acc;
  }

  #compare(node: CompareNode): boolean {
    let left = this.run(node.operands[0] as Node);
    for (let i = 0; i < node.ops.length; i++) {
      const op = node.ops[i] as CompareOp;
      const leftNode = node.operands[i] as Node;
      const rightNode = node.operands[i + 1] as Node;
      const right = this.run(rightNode);
      const step = { start: leftNode.start, end: rightNode.end };
      let holds: boolean;
      if (op === '==' || op === '!=') {
        if (left !== null && right !== null && typeof left !== typeof right) {
          throw evalError(
            step,
            `invalid operation in ${textOf(this.#source, step)}: \`${op}\` compares ${describeValue(left)} with ${describeValue(right)}`,
          );
        }
        holds = (left === right) === (op === '==');
      } else {
        if (typeof left !== 'number') throw this.#typeError(step, leftNode, left, 'a number');
        if (typeof right !== 'number') throw this.#typeError(step, rightNode, right, 'a number');
        holds = op === '<' ? left < right : op === '<=' ? left <= right : op === '>' ? left > right : left >= right;
      }
      if (!holds) return false;
      left = right;
    }
    return true;
  }

  #call(node: CallNode): number {
    const args = node.args.map((arg) => this.#number(node, arg));
    const [first = 0] = args;
    switch (node.fn) {
      case 'min':
        return args.reduce((a, b) => (b < a ? b : a));
      case 'max':
        return args.reduce((a, b) => (b > a ? b : a));
      case 'abs':
        return Math.abs(first);
      case 'ceil':
        return Math.ceil(first);
      case 'floor':
        return Math.floor(first);
    }
  }
}
