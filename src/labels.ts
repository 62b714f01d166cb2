/**
 * Kubernetes label selectors (apimachinery `pkg/labels/selector.go`): parsing the string form the HPA sends in
 * `?labelSelector=` and matching label sets against it. See docs/kubernetes-interfaces.md#label-selectors.
 *
 * Grammar: requirements joined by `,` (AND). Each is `key=value`, `key==value`, `key!=value`, `key in (v1,v2)`,
 * `key notin (v1,v2)`, `key` (exists), `!key` (does not exist), `key>n` or `key<n` (integers). Whitespace between
 * tokens is ignored. Keys are qualified names (`prefix/name`), values label values (possibly empty).
 */
import { SluiceError } from './errors.ts';

export type Operator = 'equals' | 'notequals' | 'in' | 'notin' | 'exists' | 'doesnotexist' | 'gt' | 'lt';

export interface Requirement {
  readonly key: string;
  readonly operator: Operator;
  /** Sorted and de-duplicated. One value for equals/notequals/gt/lt; none for exists/doesnotexist. */
  readonly values: readonly string[];
}

/** Requirements sorted by key; an empty list selects everything. */
export interface Selector {
  readonly requirements: readonly Requirement[];
}

/** A malformed selector. `position` is the 0-based offset in `selector` where the problem was found. */
export class LabelSelectorError extends SluiceError {
  override name = 'LabelSelectorError';
  readonly selector: string;
  readonly position: number;

  constructor(selector: string, position: number, message: string) {
    super(
      'INVALID_SELECTOR',
      `invalid label selector ${JSON.stringify(selector)}: at position ${position}: ${message}`,
    );
    this.selector = selector;
    this.position = position;
  }
}

type TokenKind = 'identifier' | 'in' | 'notin' | '!' | '=' | '==' | '!=' | '>' | '<' | '(' | ')' | ',' | 'end';

interface Token {
  readonly kind: TokenKind;
  readonly text: string;
  readonly position: number;
}

const WHITESPACE = new Set([' ', '\t', '\r', '\n']);
const SPECIAL = new Set(['!', '=', '>', '<', '(', ')', ',']);
const SYMBOLS: readonly TokenKind[] = ['!=', '==', '!', '=', '>', '<', '(', ')', ','];

function tokenize(input: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < input.length) {
    const ch = input.charAt(i);
    if (WHITESPACE.has(ch)) {
      i += 1;
      continue;
    }
    if (SPECIAL.has(ch)) {
      const kind = SYMBOLS.find((symbol) => input.startsWith(symbol, i)) ?? '!';
      tokens.push({ kind, text: kind, position: i });
      i += kind.length;
      continue;
    }
    const start = i;
    while (i < input.length && !WHITESPACE.has(input.charAt(i)) && !SPECIAL.has(input.charAt(i))) i += 1;
    const text = input.slice(start, i);
    tokens.push({ kind: 'identifier', text, position: start });
  }
  tokens.push({ kind: 'end', text: 'end of string', position: input.length });
  return tokens;
}

const NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Why `key` is not a qualified name, or undefined when it is one. */
function keyProblem(key: string): string | undefined {
  const parts = key.split('/');
  if (parts.length > 2) return `key ${JSON.stringify(key)} has more than one '/'`;
  const name = parts.length === 2 ? (parts[1] ?? '') : key;
  if (parts.length === 2) {
    const prefix = parts[0] ?? '';
    if (prefix.length === 0) return `key ${JSON.stringify(key)} has an empty prefix before '/'`;
    if (prefix.length > 253) return `key prefix ${JSON.stringify(prefix)} is longer than 253 characters`;
    if (!DNS1123_SUBDOMAIN.test(prefix)) {
      return `key prefix ${JSON.stringify(prefix)} must be a lowercase DNS subdomain (a-z, 0-9, '-', '.')`;
    }
  }
  if (name.length === 0) return `key ${JSON.stringify(key)} has an empty name`;
  if (name.length > 63) return `key name ${JSON.stringify(name)} is longer than 63 characters`;
  if (!NAME.test(name)) {
    return `key name ${JSON.stringify(name)} must consist of alphanumerics, '-', '_' or '.', and start and end with an alphanumeric`;
  }
  return undefined;
}

/** Why `value` is not a label value, or undefined when it is one. */
function valueProblem(value: string): string | undefined {
  if (value === '') return undefined;
  if (value.length > 63) return `value ${JSON.stringify(value)} is longer than 63 characters`;
  if (!NAME.test(value)) {
    return `value ${JSON.stringify(value)} must be empty or consist of alphanumerics, '-', '_' or '.', and start and end with an alphanumeric`;
  }
  return undefined;
}

const INTEGER = /^[+-]?\d+$/;

class Parser {
  readonly #input: string;
  readonly #tokens: Token[];
  #index = 0;

  constructor(input: string) {
    this.#input = input;
    this.#tokens = tokenize(input);
  }

  parse(): Requirement[] {
    const requirements: Requirement[] = [];
    if (this.#peek().kind === 'end') return requirements;
    for (;;) {
      requirements.push(this.#requirement());
      const next = this.#next();
      if (next.kind === 'end') return requirements;
      if (next.kind !== ',') this.#fail(next, `found '${next.text}', expected ',' or end of string`);
      const after = this.#peek();
      if (after.kind !== 'identifier' && after.kind !== '!') {
        this.#fail(after, `found '${after.text}', expected a key or '!' after ','`);
      }
    }
  }

  #requirement(): Requirement {
    let token = this.#next();
    const negated = token.kind === '!';
    if (negated) token = this.#next();
    // `in` / `notin` are only keywords after a key, so they may be keys themselves.
    if (!isWord(token)) this.#fail(token, `found '${token.text}', expected a key`);
    const key = token.text;
    const problem = keyProblem(key);
    if (problem !== undefined) this.#fail(token, problem);

    const following = this.#peek();
    if (negated || following.kind === 'end' || following.kind === ',') {
      return { key, operator: negated ? 'doesnotexist' : 'exists', values: [] };
    }

    const operator = this.#next();
    switch (operator.kind) {
      case '=':
      case '==':
        return { key, operator: 'equals', values: [this.#exactValue()] };
      case '!=':
        return { key, operator: 'notequals', values: [this.#exactValue()] };
      case 'identifier':
        if (operator.text === 'in' || operator.text === 'notin') {
          return { key, operator: operator.text, values: this.#valueSet() };
        }
        break;
      case '>':
      case '<': {
        const valueToken = this.#peek();
        const value = this.#exactValue();
        if (!INTEGER.test(value)) {
          this.#fail(valueToken, `value ${JSON.stringify(value)} for '${operator.kind}' must be an integer`);
        }
        return { key, operator: operator.kind === '>' ? 'gt' : 'lt', values: [value] };
      }
      default:
        break;
    }
    return this.#fail(
      operator,
      `found '${operator.text}' after key ${JSON.stringify(key)}, expected one of '=', '==', '!=', 'in', 'notin', '>', '<', ',' or end of string`,
    );
  }

  /** The value after `=`, `==`, `!=`, `>`, `<`; empty when the requirement ends right there (`key=`). */
  #exactValue(): string {
    const token = this.#peek();
    if (token.kind === 'end' || token.kind === ',') return '';
    this.#next();
    if (!isWord(token)) this.#fail(token, `found '${token.text}', expected a value`);
    this.#checkValue(token);
    return token.text;
  }

  /** `( v1, v2, … )`; `()` is the set holding the empty value, as upstream. */
  #valueSet(): string[] {
    const open = this.#next();
    if (open.kind !== '(') this.#fail(open, `found '${open.text}', expected '('`);
    const values = new Set<string>();
    let expectValue = true;
    for (;;) {
      const token = this.#next();
      if (token.kind === ')') {
        if (expectValue) values.add('');
        return [...values].sort();
      }
      if (token.kind === ',') {
        if (expectValue) values.add('');
        expectValue = true;
        continue;
      }
      if (isWord(token) && expectValue) {
        this.#checkValue(token);
        values.add(token.text);
        expectValue = false;
        continue;
      }
      const wanted = expectValue ? "a value, ',' or ')'" : "',' or ')'";
      this.#fail(token, `found '${token.text}', expected ${wanted}`);
    }
  }

  #checkValue(token: Token): void {
    const problem = valueProblem(token.text);
    if (problem !== undefined) this.#fail(token, problem);
  }

  #peek(): Token {
    return this.#tokens[this.#index] ?? { kind: 'end', text: 'end of string', position: this.#input.length };
  }

  #next(): Token {
    const token = this.#peek();
    if (this.#index < this.#tokens.length) this.#index += 1;
    return token;
  }

  #fail(token: Token, message: string): never {
    throw new LabelSelectorError(this.#input, token.position, message);
  }
}

function isWord(token: Token): boolean {
  return token.kind === 'identifier';
}

/**
 * Parses a selector string, e.g. `scaledobject.sluice.dev/name=my-so` or `env in (prod, staging),!canary`.
 * The empty string selects everything. Throws LabelSelectorError naming the offending part and its position.
 */
export function parseSelector(text: string): Selector {
  const requirements = new Parser(text).parse();
  // Stable sort by key, as upstream does, so the canonical string is deterministic.
  requirements.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { requirements };
}

/** Whether a label set satisfies every requirement of the selector. */
export function matches(selector: Selector, labels: Readonly<Record<string, string>>): boolean {
  return selector.requirements.every((requirement) => requirementMatches(requirement, labels));
}

function requirementMatches({ key, operator, values }: Requirement, labels: Readonly<Record<string, string>>): boolean {
  const has = Object.hasOwn(labels, key);
  const value = has ? labels[key] : undefined;
  switch (operator) {
    case 'exists':
      return has;
    case 'doesnotexist':
      return !has;
    case 'equals':
    case 'in':
      return value !== undefined && values.includes(value);
    case 'notequals':
    case 'notin':
      return value === undefined || !values.includes(value);
    case 'gt':
    case 'lt': {
      if (value === undefined || !INTEGER.test(value)) return false;
      const [bound] = values;
      if (bound === undefined) return false;
      const actual = BigInt(value);
      return operator === 'gt' ? actual > BigInt(bound) : actual < BigInt(bound);
    }
  }
}

/** The canonical string form (`a=b,c in (d,e),!f`); `""` for the empty selector. */
export function formatSelector(selector: Selector): string {
  return selector.requirements
    .map(({ key, operator, values }) => {
      switch (operator) {
        case 'exists':
          return key;
        case 'doesnotexist':
          return `!${key}`;
        case 'equals':
          return `${key}=${values[0] ?? ''}`;
        case 'notequals':
          return `${key}!=${values[0] ?? ''}`;
        case 'gt':
          return `${key}>${values[0] ?? ''}`;
        case 'lt':
          return `${key}<${values[0] ?? ''}`;
        case 'in':
        case 'notin':
          return `${key} ${operator} (${values.join(',')})`;
      }
    })
    .join(',');
}
