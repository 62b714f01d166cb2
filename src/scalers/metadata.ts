/**
 * Declarative trigger-metadata parsing, KEDA's rules: every value is a string; it is trimmed and an empty string
 * counts as absent; the first source that has the parameter wins (trigger metadata, then TriggerAuthentication
 * parameters where allowed, then the scale target's environment variable named by `<param>FromEnv` where allowed);
 * then the default; else a missing required parameter is an error naming it.
 *
 * A scaler declares its parameters once as a `ParamSpec` record; `parseParams` returns a typed object.
 */
import { ValidationError } from '../errors.ts';
import type { TriggerInput } from './scaler.ts';

interface Common {
  /** Also read from the TriggerAuthentication parameters (after trigger metadata). */
  readonly fromAuth?: boolean;
  /** Also read from the scale target's environment variable named by metadata `<param>FromEnv` (last). */
  readonly fromEnv?: boolean;
  /**
   * `false`: never read from trigger metadata (KEDA's `order=authParams;resolvedEnv`, used for credentials). A value
   * there is an error naming the field, not silently ignored as in KEDA.
   */
  readonly fromMetadata?: false;
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
  /**
   * The trigger's HPA target: optional when the trigger feeds a scalingModifiers formula (the composite metric has
   * its own target), as KEDA allows; absent then, it reads as 1 and is not used.
   */
  readonly target?: true;
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
/**
 * A duration, parsed to milliseconds (KEDA's rule): a plain integer is milliseconds (`"1500"`), anything else is a Go
 * duration (`"300ms"`, `"1.5s"`, `"1m30s"`; units ns, us/µs, ms, s, m, h). Negative durations are rejected.
 */
/** The longest `timeout` a scaler accepts: one read must not hold a reader (and its backend's turn) for longer. */
export const MAX_TIMEOUT_MS = 60_000;

export interface DurationParam extends Common {
  readonly type: 'duration';
  /** In milliseconds. */
  readonly default?: number;
  readonly optional?: boolean;
  /** Smallest accepted value in milliseconds (inclusive). */
  readonly min?: number;
  /** Largest accepted value in milliseconds (inclusive). */
  readonly max?: number;
}
/**
 * A map written `k1=v1,k2=v2` (KEDA's map parameters, e.g. `customHeaders`): pairs separated by `,`, key and value by
 * the first `=` (so a value may contain `=`), both trimmed. A pair without `=`, an empty key or a repeated key is an
 * error. Values may not contain `,`.
 */
export interface MapParam extends Common {
  readonly type: 'map';
  readonly default?: Readonly<Record<string, string>>;
  readonly optional?: boolean;
  readonly secret?: boolean;
}
export type Param = StringParam | NumberParam | BooleanParam | EnumParam | DurationParam | MapParam;
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
        : P extends DurationParam
          ? number
          : P extends MapParam
            ? Readonly<Record<string, string>>
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
  /** The trigger feeds a scalingModifiers formula: its own target may be omitted. */
  readonly compositeSource?: boolean;
}

/**
 * The trimmed value of a parameter from the allowed sources, or undefined when absent or empty. A `<name>FromEnv`
 * that names a variable the container does not have is an error naming the field (KEDA reads it as empty).
 */
export function lookupParam(
  name: string,
  param: Pick<Common, 'fromAuth' | 'fromEnv' | 'fromMetadata'>,
  sources: ParamSources,
): string | undefined {
  const fromMetadata = sources.metadata[name]?.trim();
  if (fromMetadata && param.fromMetadata === false) {
    const where = param.fromEnv === true ? `a TriggerAuthentication or ${name}FromEnv` : 'a TriggerAuthentication';
    throw new ValidationError(`${sources.path}.${name}`, `must come from ${where}, not from trigger metadata`);
  }
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

/** A trigger's parameter sources, with errors reported under `spec.triggers[<index>].metadata`. */
export function triggerSources(
  trigger: Pick<TriggerInput, 'index' | 'metadata' | 'authParams' | 'resolvedEnv' | 'compositeSource'>,
): ParamSources {
  return {
    metadata: trigger.metadata,
    authParams: trigger.authParams,
    resolvedEnv: trigger.resolvedEnv,
    path: `spec.triggers[${trigger.index}].metadata`,
    compositeSource: trigger.compositeSource === true,
  };
}

/** What an omitted target reads as under scalingModifiers (never used: the composite metric has its own target). */
export const UNUSED_TARGET = 1;

export function parseParams<S extends ParamSpec>(spec: S, sources: ParamSources): Parsed<S> {
  const out: Record<string, unknown> = {};
  for (const [name, param] of Object.entries(spec)) {
    const raw = lookupParam(name, param, sources);
    if (raw === undefined && param.type === 'number' && param.target === true && sources.compositeSource === true) {
      out[name] = UNUSED_TARGET;
      continue;
    }
    try {
      out[name] = parseOne(name, param, raw, sources.path);
    } catch (err) {
      // A value from a TriggerAuthentication or the container's environment may be a secret: never quote it.
      if (err instanceof ValidationError && raw !== undefined && sources.metadata[name]?.trim() !== raw) {
        const reason = err.message.slice(err.field.length + 2).replaceAll(raw, '<value not shown>');
        throw new ValidationError(
          err.field,
          `${reason} (the value comes from a TriggerAuthentication or ${name}FromEnv)`,
        );
      }
      throw err;
    }
  }
  return out as Parsed<S>;
}

// ---------------------------------------------------------------------------------------------------------------
// address pinning (docs/security.md#credentials)

/** The credentials of KEDA's HTTP auth modes (http.ts parseHttpAuth): bearer, basic, apiKey, custom, tls. */
export const HTTP_AUTH_CREDENTIALS = [
  'bearerToken',
  'token',
  'username',
  'password',
  'apiKey',
  'customAuthHeader',
  'customAuthValue',
  'cert',
  'key',
] as const;

/** The parameters among `names` that the TriggerAuthentication supplies (non-empty), in `names`' order. */
export function credentialsFromAuth(sources: ParamSources, names: readonly string[]): string[] {
  return names.filter((name) => (sources.authParams[name]?.trim() ?? '') !== '');
}

export interface AddressPin {
  /**
   * `refused`: trigger metadata (and `<address>FromEnv`) may not give the address at all. `under`: metadata may give
   * a URL at or under the TriggerAuthentication's (same scheme, host and port; its path equal to, or below, the
   * TriggerAuthentication's), e.g. a metrics-api `url` with its own path and query.
   */
  readonly metadata: 'refused' | 'under';
  /** The TriggerAuthentication must give the address; else its absence means the scaler's default (AWS's endpoint). */
  readonly required: boolean;
  /** The trigger's `spec.triggers[i].authenticationRef`, for errors about what the TriggerAuthentication lacks. */
  readonly authRef: string;
}

/**
 * sluice's rule (not KEDA's, which lets trigger metadata override any address): the credentials a
 * TriggerAuthentication supplies (`credentials`, found with credentialsFromAuth) are sent only to the address that
 * TriggerAuthentication supplies too (`address`: `host`, `serverAddress`, `url`, `awsEndpoint`). Whoever may write a
 * ScaledObject that refers to a TriggerAuthentication can use its credentials, but not send them to a host of their
 * choosing. Throws ValidationError naming the field and the rule; does nothing when `credentials` is empty. Messages
 * quote no value (an address from a Secret may carry userinfo).
 */
export function pinAddress(
  sources: ParamSources,
  address: string,
  credentials: readonly string[],
  pin: AddressPin,
): void {
  if (credentials.length === 0) return;
  const supplies = `the TriggerAuthentication supplies credentials (${credentials.join(', ')})`;
  const howTo =
    `put ${address} in the TriggerAuthentication (secretTargetRef or configMapTargetRef with parameter ` +
    `"${address}")${pin.metadata === 'under' ? '; trigger metadata may then only narrow it (same scheme, host and port, at or under its path)' : ''}`;
  const rule = `sluice sends a TriggerAuthentication's credentials only to the ${address} it gives too`;
  const fromEnv = sources.metadata[`${address}FromEnv`]?.trim();
  if (fromEnv) {
    throw new ValidationError(
      `${sources.path}.${address}FromEnv`,
      `must not be set: ${supplies}, and ${rule}; ${howTo}`,
    );
  }
  const fromMetadata = sources.metadata[address]?.trim();
  const fromAuth = sources.authParams[address]?.trim();
  if (fromMetadata && pin.metadata === 'refused') {
    throw new ValidationError(
      `${sources.path}.${address}`,
      `must not be set in trigger metadata: ${supplies}, and ${rule}; ${howTo}`,
    );
  }
  if (!fromAuth) {
    if (fromMetadata) {
      throw new ValidationError(
        `${sources.path}.${address}`,
        `cannot be used: ${supplies} but no ${address}, and ${rule}; ${howTo}`,
      );
    }
    if (pin.required) {
      throw new ValidationError(pin.authRef, `${supplies} but no ${address}, and ${rule}; ${howTo}`);
    }
    return;
  }
  if (!fromMetadata) return;
  const base = URL.parse(fromAuth);
  if (base === null) {
    throw new ValidationError(pin.authRef, `the TriggerAuthentication's ${address} is not a valid URL`);
  }
  const url = URL.parse(fromMetadata);
  if (url === null) throw new ValidationError(`${sources.path}.${address}`, 'is not a valid URL');
  if (!isUnder(url, base)) {
    throw new ValidationError(
      `${sources.path}.${address}`,
      `must be at or under the TriggerAuthentication's ${address} (same scheme, host and port, and within its ` +
        `path, without percent-encoded "/", "\\" or "."): ${supplies}, and ${rule}`,
    );
  }
}

/**
 * `url` is `base` or below it: same scheme and host (WHATWG-normalized: lowercase, IDNA, default port dropped, dot
 * segments resolved), and a path that is `base`'s or continues it after a `/`. What continues it must not hold
 * percent-encoded `/`, `\` or `.`, which a proxy could decode into a way out (`/a/..%2Fb`).
 */
function isUnder(url: URL, base: URL): boolean {
  if (url.protocol !== base.protocol || url.host !== base.host) return false;
  if (url.pathname === base.pathname) return true;
  const prefix = base.pathname.endsWith('/') ? base.pathname : `${base.pathname}/`;
  if (!url.pathname.startsWith(prefix)) return false;
  return !/%(2f|5c|2e)/i.test(url.pathname.slice(prefix.length));
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
    case 'duration': {
      const ms = parseDurationMs(raw);
      if (ms === undefined) {
        throw new ValidationError(
          field,
          `"${raw}" is not a duration (use a Go duration such as "30s" or "1m30s", or whole milliseconds)`,
        );
      }
      if (ms < 0) throw new ValidationError(field, `must not be negative, got ${raw}`);
      if (param.min !== undefined && ms < param.min) {
        throw new ValidationError(field, `must be at least ${formatDurationMs(param.min)}, got ${raw}`);
      }
      if (param.max !== undefined && ms > param.max) {
        throw new ValidationError(field, `must be at most ${formatDurationMs(param.max)}, got ${raw}`);
      }
      // Timers take whole milliseconds (a fractional one makes Node throw at every read): round up.
      return Math.ceil(ms);
    }
    case 'map':
      return parseMap(raw, field);
  }
}

function parseMap(raw: string, field: string): Readonly<Record<string, string>> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  const pairs = raw.split(',');
  for (const [i, pair] of pairs.entries()) {
    const eq = pair.indexOf('=');
    const key = eq < 0 ? '' : pair.slice(0, eq).trim();
    if (key === '') {
      // The text may hold secrets (e.g. header values): name the position, never the contents.
      throw new ValidationError(field, `expected key=value pairs separated by commas (pair ${i + 1} is not)`);
    }
    if (Object.hasOwn(out, key)) throw new ValidationError(field, `key "${key}" is given twice`);
    out[key] = pair.slice(eq + 1).trim();
  }
  return out;
}

const DURATION_UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  '\u00b5s': 1e-3, // µ (micro sign)
  '\u03bcs': 1e-3, // μ (Greek mu)
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};
/** Go's largest time.Duration (2^63 − 1 ns, about 292 years), in milliseconds. */
const MAX_DURATION_MS = 9_223_372_036_854.775;
const DURATION_PART = /(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/y;

/**
 * KEDA's duration parameters: a plain integer is milliseconds; otherwise Go's time.ParseDuration syntax (a signed
 * sequence of decimal numbers with units, e.g. `1h2m3.5s`; `0` alone is zero). Returns milliseconds, or undefined
 * when `text` is neither.
 */
export function parseDurationMs(text: string): number | undefined {
  if (/^\d+$/.test(text)) {
    const ms = Number(text);
    return ms <= MAX_DURATION_MS ? ms : undefined;
  }
  let rest = text;
  let sign = 1;
  if (rest.startsWith('-') || rest.startsWith('+')) {
    if (rest.startsWith('-')) sign = -1;
    rest = rest.slice(1);
  }
  if (rest === '') return undefined;
  let total = 0;
  DURATION_PART.lastIndex = 0;
  while (DURATION_PART.lastIndex < rest.length) {
    const at = DURATION_PART.lastIndex;
    const match = DURATION_PART.exec(rest);
    if (!match || match.index !== at) return undefined;
    const [, amount = '', unit = ''] = match;
    total += Number(amount) * (DURATION_UNIT_MS[unit] ?? Number.NaN);
  }
  if (!(total <= MAX_DURATION_MS)) return undefined;
  // Whole nanoseconds, as Go keeps them (so "1.1s" is 1100 ms, not 1100.0000000000002).
  return (sign * Math.round(total * 1e6)) / 1e6;
}

/** Milliseconds as a short Go-style duration for messages: `1500` → `1.5s`, `60000` → `1m0s`, `250` → `250ms`. */
export function formatDurationMs(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = (ms % 60_000) / 1000;
  return `${h > 0 ? `${h}h` : ''}${h > 0 || m > 0 ? `${m}m` : ''}${s}s`;
}
