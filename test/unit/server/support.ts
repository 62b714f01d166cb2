/** Shared helpers for the server tests (not a test file itself). */
import type { FastifyBaseLogger } from 'fastify';

import type { Series } from '../../../src/metric-store.ts';

export interface LogRecord {
  readonly level: string;
  readonly args: readonly unknown[];
}

/** A FastifyBaseLogger that records every call, to assert what goes to the log (and what does not). */
export function captureLogger(records: LogRecord[] = []): FastifyBaseLogger & { records: LogRecord[] } {
  const at =
    (level: string) =>
    (...args: unknown[]): void => {
      records.push({ level, args });
    };
  const logger = {
    records,
    level: 'trace',
    fatal: at('fatal'),
    error: at('error'),
    warn: at('warn'),
    info: at('info'),
    debug: at('debug'),
    trace: at('trace'),
    silent: at('silent'),
    child: () => logger,
  };
  return logger as FastifyBaseLogger & { records: LogRecord[] };
}

export function series(overrides: Partial<Series> & Pick<Series, 'namespace' | 'metricName'>): Series {
  return {
    labels: {},
    value: 1,
    error: undefined,
    timestamp: new Date('2026-11-24T10:48:17.654Z'),
    owner: `${overrides.namespace}/so`,
    ...overrides,
  };
}
