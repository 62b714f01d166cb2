/**
 * TypeBox schema errors → a field path and a readable reason, shared by the parsers of the sluice resources
 * (scaled-object.ts, trigger-authentication.ts). A path names the field as a user writes it in YAML
 * (`spec.triggers[1].metadata["a.b"]`), using the value to tell list indices from map keys.
 */
import { ValidationError } from '../errors.ts';

/** One error of TypeBox's `Value.Errors`. */
export interface SchemaError {
  readonly keyword: string;
  readonly schemaPath: string;
  readonly instancePath: string;
  readonly params: object;
  readonly message: string;
}

export interface SchemaErrorOptions {
  /** The field named for an error at the root of the object (`ScaledObject`). */
  readonly root: string;
  /** The schema validated against: an unknown field's message then suggests the field most likely meant, or lists
   * the known ones. Without it the message is just `unknown field`. */
  readonly suggestFieldsFrom?: unknown;
  /** A string field given a number or a boolean says to quote the value in YAML. */
  readonly quoteHint?: boolean;
}

/** Throws a ValidationError for the first of `errors` that describeSchemaError describes. */
export function throwFirstSchemaError(
  errors: Iterable<SchemaError>,
  value: unknown,
  options: SchemaErrorOptions,
): void {
  for (const error of errors) {
    const problem = describeSchemaError(error, value, options);
    if (problem) throw new ValidationError(problem.field, problem.message);
  }
}

/** A field path and a reason for one schema error; undefined for errors another error of the same node explains. */
export function describeSchemaError(
  error: SchemaError,
  root: unknown,
  options: SchemaErrorOptions,
): { field: string; message: string } | undefined {
  const segments = pointerSegments(error.instancePath);
  const field = fieldPath(segments, root, options.root);
  const value = valueAt(segments, root);
  const params = error.params as Record<string, unknown>;
  const child = (key: string) => fieldPath([...segments, key], root, options.root);
  switch (error.keyword) {
    case 'boolean':
      // `additionalProperties: false` reports the property itself, then the 'additionalProperties' error: use that.
      return undefined;
    case 'required': {
      const missing = firstString(params['requiredProperties']) ?? '?';
      return { field: child(missing), message: 'is required' };
    }
    case 'additionalProperties': {
      const extra = firstString(params['additionalProperties']) ?? '?';
      if (options.suggestFieldsFrom === undefined) return { field: child(extra), message: 'unknown field' };
      const known = knownProperties(options.suggestFieldsFrom, error.schemaPath);
      const guess = closest(extra, known);
      const hint = guess === undefined ? `known fields: ${known.join(', ')}` : `did you mean "${guess}"?`;
      return { field: child(extra), message: `unknown field (${hint})` };
    }
    case 'type': {
      const expected = String(params['type']);
      const quote =
        options.quoteHint === true && expected === 'string' && (typeof value === 'number' || typeof value === 'boolean')
          ? `; quote it in YAML: "${String(value)}"`
          : '';
      return { field, message: `must be ${withArticle(expected)}, got ${describeValue(value)}${quote}` };
    }
    case 'enum': {
      const allowed = Array.isArray(params['allowedValues']) ? params['allowedValues'].map(String) : [];
      return { field, message: `must be one of ${allowed.join(', ')}; got ${describeValue(value)}` };
    }
    case 'minimum':
      return { field, message: `must be at least ${String(params['limit'])}, got ${describeNumber(value)}` };
    case 'maximum':
      return { field, message: `must be at most ${String(params['limit'])}, got ${describeNumber(value)}` };
    case 'minLength':
      return {
        field,
        message: params['limit'] === 1 ? 'must not be empty' : `must be at least ${String(params['limit'])} characters`,
      };
    case 'maxLength':
      return {
        field,
        message: `must be at most ${String(params['limit'])} characters, got ${typeof value === 'string' ? value.length : '?'}`,
      };
    case 'minItems':
      return { field, message: `must have at least ${String(params['limit'])} item(s)` };
    case 'pattern':
      // The only patterns in the schemas are DNS-1123 names.
      return {
        field,
        message: `${describeValue(value)} is not a valid name (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)`,
      };
    case 'format':
      return {
        field,
        message: `must be an RFC 3339 ${String(params['format'])} such as 2026-01-31T12:00:00Z, got ${describeValue(value)}`,
      };
    default:
      return { field, message: error.message };
  }
}

/** A JSON pointer's unescaped segments: `/a~1b/0` → `['a/b', '0']`. */
function pointerSegments(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** `['spec', 'triggers', '1', 'metadata', 'a.b']` → `spec.triggers[1].metadata["a.b"]`, using the value for arrays. */
function fieldPath(segments: readonly string[], root: unknown, rootName: string): string {
  let path = '';
  let current: unknown = root;
  for (const segment of segments) {
    if (Array.isArray(current)) {
      path += `[${segment}]`;
      current = current[Number(segment)];
      continue;
    }
    path += /^[A-Za-z_][A-Za-z0-9_]*$/.test(segment)
      ? `${path === '' ? '' : '.'}${segment}`
      : `[${JSON.stringify(segment)}]`;
    current = isPlainObject(current) ? current[segment] : undefined;
  }
  return path === '' ? rootName : path;
}

function valueAt(segments: readonly string[], root: unknown): unknown {
  let current: unknown = root;
  for (const segment of segments) {
    if (Array.isArray(current)) current = current[Number(segment)];
    else if (isPlainObject(current)) current = current[segment];
    else return undefined;
  }
  return current;
}

/** The property names of the object schema at a schema path such as `#/properties/spec/properties/triggers/items`. */
function knownProperties(schema: unknown, schemaPath: string): string[] {
  let node: unknown = schema;
  for (const segment of pointerSegments(schemaPath.replace(/^#/, ''))) {
    node = isPlainObject(node) ? node[segment] : undefined;
  }
  const properties = isPlainObject(node) ? node['properties'] : undefined;
  return isPlainObject(properties) ? Object.keys(properties) : [];
}

/**
 * The known field `name` most likely meant, if any: a small edit distance (`pollinginterval`, `scalingModifier`) or a
 * long common prefix (`minReplicas` for `minReplicaCount`), case-insensitive.
 */
function closest(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  const a = name.toLowerCase();
  for (const candidate of candidates) {
    const b = candidate.toLowerCase();
    const distance = editDistance(a, b);
    const plausible = distance <= Math.max(2, Math.floor(b.length / 4)) || commonPrefixLength(a, b) >= 6;
    if (plausible && distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function commonPrefixLength(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      row.push(Math.min((previous[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, substitution));
    }
    previous = row;
  }
  return previous[b.length] ?? 0;
}

function firstString(list: unknown): string | undefined {
  return Array.isArray(list) && typeof list[0] === 'string' ? list[0] : undefined;
}

function withArticle(type: string): string {
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

function describeNumber(value: unknown): string {
  return typeof value === 'number' ? String(value) : describeValue(value);
}

/** A value's description for messages. Strings are quoted: the resources name things, they hold no secrets. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return `"${value}"`;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return `${typeof value} ${value.toString()}`;
  }
  return typeof value;
}

/** A JSON object (not null, a list or a Date). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}
