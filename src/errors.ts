/**
 * Typed errors. Every error sluice raises on purpose is a SluiceError with a stable `name` and `code`,
 * and carries the underlying failure as `cause`. Messages never contain credentials.
 */
export class SluiceError extends Error {
  override name = 'SluiceError';
  readonly code: string;

  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/**
 * A ScaledObject (or trigger metadata) that can never work as written. `field` is the path of the offending field
 * (e.g. `spec.triggers[0].metadata.queueName`). Invalid objects get Ready=False and no HPA; they are not retried
 * until they change.
 */
export class ValidationError extends SluiceError {
  override name = 'ValidationError';
  readonly field: string;

  constructor(field: string, message: string, options?: ErrorOptions) {
    super('INVALID_SPEC', `${field}: ${message}`, options);
    this.field = field;
  }
}

/** Process configuration (flags, environment) is unusable. */
export class ConfigError extends SluiceError {
  override name = 'ConfigError';

  constructor(message: string, options?: ErrorOptions) {
    super('CONFIG_INVALID', message, options);
  }
}

/**
 * A trigger's value is unknown: its backend gave no usable answer for this read (a missing queue, an empty query
 * result, a malformed body). Never read as zero: the poller records the value as unknown. The backend itself answered,
 * so this does not count against the backend's circuit breaker.
 */
export class ScalerError extends SluiceError {
  override name = 'ScalerError';

  constructor(message: string, options?: ErrorOptions & { code?: string }) {
    super(options?.code ?? 'SCALER_FAILED', message, options);
  }
}

/**
 * The backend itself failed: it cannot be reached (refused, DNS, TLS, timeout), answered 5xx, or refused the
 * credentials. Counts against the backend's circuit breaker, which then stops every reader of that backend from
 * trying more than once per interval.
 */
export class BackendError extends ScalerError {
  override name = 'BackendError';

  constructor(message: string, options?: ErrorOptions) {
    super(message, { ...options, code: 'BACKEND_UNAVAILABLE' });
  }
}

/**
 * A message for logs and conditions: the error's message followed by its causes' (`a: b: c`), skipping a cause
 * whose message the previous one already contains.
 */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    const message =
      current instanceof Error ? current.message : typeof current === 'string' ? current : JSON.stringify(current);
    if (message !== '' && !parts.some((p) => p.includes(message))) parts.push(message);
    if (!(current instanceof Error)) break;
    current = current.cause;
  }
  return parts.join(': ');
}
