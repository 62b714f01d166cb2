/**
 * Backend SDKs and the certificate library are loaded by their first use, not at start (src/scalers/aws-sdk.ts,
 * src/scalers/rabbitmq-amqp.ts, src/pki.ts): a process with no SQS or AMQP trigger, or no certificate to make, never
 * holds them (about 2.3, 0.5 and 3 MiB of heap). A static import of one anywhere in what the process loads would bring
 * it back; this test finds it.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '../../src');

/** Every module of the long-running process: all of src/ but the entry point and the CLI's own commands. */
function processModules(): string[] {
  return readdirSync(SRC, { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts') && file !== 'main.ts' && !file.startsWith(`cli${path.sep}`))
    .map((file) => pathToFileURL(path.join(SRC, file)).href);
}

/** The package URLs a fresh Node loads when importing `modules`, recorded by a resolve hook. */
function loadedPackages(modules: string[]): string[] {
  const script = `
    import { registerHooks } from 'node:module';
    const seen = new Set();
    registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); seen.add(r.url); return r; } });
    for (const m of ${JSON.stringify(modules)}) await import(m);
    process.stdout.write(JSON.stringify([...seen].filter((u) => u.includes('/node_modules/'))));
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  return JSON.parse(out) as string[];
}

describe('what the process loads at start', () => {
  const loaded = loadedPackages(processModules());

  it('loads other packages (the hook sees them)', () => {
    expect(loaded.some((url) => url.includes('/node_modules/fastify/'))).toBe(true);
  });

  it.each(['@aws-sdk/client-sqs', '@aws-sdk/client-sts', 'amqplib', '@peculiar/x509', 'reflect-metadata'])(
    'does not load %s',
    (name) => {
      expect(loaded.filter((url) => url.includes(`/node_modules/${name}/`))).toEqual([]);
    },
  );
});
