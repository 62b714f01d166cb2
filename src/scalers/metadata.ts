/**
 * Declarative trigger-metadata parsing, KEDA's rules: every value is a string; it is trimmed and an empty string
 * counts as absent; the first source that has the parameter wins (trigger metadata, then TriggerAuthentication
 * parameters where allowed, then the scale target's environment variable named by `<param>FromEnv` where allowed);
 * then the default; else a missing required parameter is an error naming it.
 *
 * A scaler declares its parameters once as a `ParamSpec` record; `parseParams` returns a typed object.
 */
import { ValidationError } from '../errors.ts';

interface Common {
  /** Also read from the TriggerAuthentication parameters (after trigger metadata). */
  readonly fromAuth?: boolean;
  /** Also read from the scale target's environment variable named by metadata `<param>FromEnv` (last). */
  readonly fromEnv?: boolean;
  readonly description?: string;
}
export interface StringParam extends Common {
  readonly type: 'string';
  readonly default?: string;
  readonly optional?: boolean;
  readonly secret?: boolean;
}
export interface NumberParam extends Common {
  readonly type: 'number';
  readonly default?: number;
  readonly optional?: boolean;
  readonly min?: number;
  /** The value must be strictly greater than `min` (e.g. a target of 0 makes no sense). */
  readonly exclusiveMin?: boolean;
  readonly integer?: boolean;
}
export interface BooleanParam extends Common {
  readonly type: 'boolean';
  readonly default: boolean;
}
export interface EnumParam<V extends string = string> extends Common {
  readonly type: 'enum';
  readonly values: readonly V[];
  readonly default?: V;
  readonly optional?: boolean;
}
export type Param = StringParam | NumberParam | BooleanParam | EnumParam;
export type ParamSpec = Readonly<Record<string, Param>>;

type Present<P> = P extends { default: unknown } ? true : P extends { optional: true } ? false : true;
type ValueOf<P> = P extends StringParam
  ? string
  : P extends NumberParam
    ? number
    : P extends BooleanParam
      ? boolean
      : P extends EnumParam<infer V>
        ? V
        : never;
export type Parsed<S extends ParamSpec> = {
  readonly [K in keyof S]: Present<S[K]> extends true ? ValueOf<S[K]> : ValueOf<S[K]> | undefined;
};

export interface ParamSources {
  readonly metadata: Readonly<Record<string, string>>;
  readonly authParams: Readonly<Record<string, string>>;
  /** The scale target container's environment (see TriggerInput.resolvedEnv); omit when not resolved. */
  readonly resolvedEnv?: Readonly<Record<string, string>>;
  /** Field path prefix for errors, e.g. `spec.triggers[0].metadata`. */
  readonly path: string;
}

/**
 * The trimmed value of a parameter from the allowed sources, or undefined when absent or empty. A `<name>FromEnv`
 * that names a variable the container does not have is an error naming the field (KEDA reads it as empty).
 */
export function lookupParam(
  name: string,
  param: Pick<Common, 'fromAuth' | 'fromEnv'>,
  sources: ParamSources,
): string | undefined {
  const fromMetadata = sources.metadata[name]?.trim();
  if (fromMetadata) return fromMetadata;
  if (param.fromAuth === true) {
    const fromAuth = sources.authParams[name]?.trim();
    if (fromAuth) return fromAuth;
  }
  const envName = param.fromEnv === true ? sources.metadata[`${name}FromEnv`]?.trim() : undefined;
  if (envName) {
    const fromEnv = sources.resolvedEnv?.[envName]?.trim();
    if (fromEnv) return fromEnv;
    throw new ValidationError(
      `${sources.path}.${name}FromEnv`,
      `the scale target's container has no environment variable "${envName}" (or it is empty)`,
    );
  }
  return undefined;
}

export function parseParams<S extends ParamSpec>(spec: S, sources: ParamSources): Parsed<S> {
  const out: Record<string, unknown> = {};
  for (const [name, param] of Object.entries(spec)) {
    out[name] = parseOne(name, param, lookupParam(name, param, sources), sources.path);
  }
  return out as Parsed<S>;
}

function parseOne(name: string, param: Param, raw: string | undefined, path: string): unknown {
  const field = `${path}.${name}`;
  if (raw === undefined) {
    if (param.default !== undefined) return param.default;
    if (param.optional === true) return undefined;
    throw new ValidationError(field, `missing required parameter "${name}"`);
  }
  switch (param.type) {
    case 'string':
      return raw;
    case 'number': {
      // Number('') and Number(' ') are 0, and Number('0x10') is 16: accept plain decimal notation only.
      if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(raw)) {
        throw new ValidationError(field, `"${raw}" is not a number`);
      }
      const value = Number(raw);
      if (!Number.isFinite(value)) throw new ValidationError(field, `"${raw}" is not a finite number`);
      if (param.integer === true && !Number.isInteger(value)) {
        throw new ValidationError(field, `"${raw}" must be a whole number`);
      }
      if (param.min !== undefined) {
        const tooSmall = param.exclusiveMin === true ? value <= param.min : value < param.min;
        if (tooSmall) {
          throw new ValidationError(
            field,
            `must be ${param.exclusiveMin === true ? 'greater than' : 'at least'} ${param.min}, got ${raw}`,
          );
        }
      }
      return value;
    }
    case 'boolean': {
      // Go's strconv.ParseBool, which KEDA uses.
      if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(raw)) return true;
      if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(raw)) return false;
      throw new ValidationError(field, `"${raw}" is not a boolean (use "true" or "false")`);
    }
    case 'enum': {
      if (!param.values.includes(raw)) {
        throw new ValidationError(field, `"${raw}" must be one of ${param.values.join(', ')}`);
      }
      return raw;
    }
  }
}
