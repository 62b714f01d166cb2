/**
 * A small structured logger: one JSON object per line on stdout (`level`, `time`, `msg`, fields), like fastify's
 * pino output, so both halves of the process log alike. Nothing here redacts: callers never pass credentials.
 */
export type Level = 'debug' | 'info' | 'warn' | 'error';
const order: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  (level: Level, message: string, fields?: Record<string, unknown>): void;
}

export function createLogger(options: { level: Level; component?: string; write?: (line: string) => void }): Logger {
  const write = options.write ?? ((line: string) => process.stdout.write(line));
  const min = order[options.level];
  return (level, message, fields) => {
    if (order[level] < min) return;
    const entry = { level, time: new Date().toISOString(), component: options.component, msg: message, ...fields };
    write(`${JSON.stringify(entry)}\n`);
  };
}
