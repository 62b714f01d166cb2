/** What every benchmark on the real test environment does first: bring the environment up when it is not. */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { REPO_ROOT } from '../test/support/env.ts';

export function ensureEnvironment(): void {
  if (spawnSync('bash', ['scripts/env/status.sh'], { cwd: REPO_ROOT, stdio: 'ignore' }).status === 0) return;
  console.log('bench: the test environment is not up; starting it (scripts/env/up.sh)');
  if (spawnSync('bash', ['scripts/env/up.sh'], { cwd: REPO_ROOT, stdio: 'inherit' }).status !== 0) process.exit(1);
}

/**
 * The process users run, for benches that measure its footprint: `dist/main.js` built as the image builds it
 * (`npm run build`), with the NODE_OPTIONS of deploy/deployment.yaml. Running `src/main.ts` would add Node's type
 * stripping (about 30 MiB of RSS) that no deployment has.
 */
export function deployedProcess(): { entry: string; nodeOptions: string[] } {
  console.log('bench: building dist/ (npm run build), as the image does');
  const tsc = path.join(REPO_ROOT, 'node_modules', '.bin', 'tsc');
  if (spawnSync(tsc, ['-p', 'tsconfig.build.json'], { cwd: REPO_ROOT, stdio: 'inherit' }).status !== 0) process.exit(1);
  const nodeOptions = deploymentNodeOptions();
  return { entry: path.join(REPO_ROOT, 'dist', 'main.js'), nodeOptions };
}

/** NODE_OPTIONS of sluice's container in deploy/deployment.yaml, split into flags. */
function deploymentNodeOptions(): string[] {
  interface Container {
    env?: { name: string; value?: string }[];
  }
  const text = readFileSync(path.join(REPO_ROOT, 'deploy', 'deployment.yaml'), 'utf8');
  for (const document of parseAllDocuments(text)) {
    const object = document.toJS() as { kind?: string; spec?: { template?: { spec?: { containers?: Container[] } } } };
    if (object.kind !== 'Deployment') continue;
    for (const container of object.spec?.template?.spec?.containers ?? []) {
      const value = container.env?.find((e) => e.name === 'NODE_OPTIONS')?.value;
      if (value !== undefined) return value.trim().split(/\s+/);
    }
  }
  return [];
}

const CLK_TCK = 100;

/** CPU time (user + system, seconds) that process `pid` has used so far, from /proc. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** The options of the client-count benches (aggregated.ts, proxy.ts): how long, how many clients, how many rounds. */
export interface LoadOptions {
  readonly seconds: number;
  readonly clientCounts: readonly number[];
  readonly rounds: number;
  /** Where the results are written (JSON). */
  readonly json: string;
}

/** Reads `--seconds`, `--clients 1,16`, `--rounds`, `--json` from the command line, with the bench's defaults. */
export function loadOptions(defaults: { seconds: number; clients: string; rounds: number; name: string }): LoadOptions {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: String(defaults.seconds) },
      clients: { type: 'string', default: defaults.clients },
      rounds: { type: 'string', default: String(defaults.rounds) },
      json: { type: 'string', default: path.join(REPO_ROOT, 'bench', 'results', `${defaults.name}.json`) },
    },
  });
  return {
    seconds: Number(values.seconds),
    clientCounts: values.clients.split(',').map(Number),
    rounds: Number(values.rounds),
    json: values.json,
  };
}

/** The value at percentile `p` of ascending `sorted` latencies. */
export function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? Number.NaN;
}

/** Writes a bench's results as JSON (with the date) and says where. */
export function writeResults(file: string, results: object): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify({ date: new Date().toISOString(), ...results }, null, 2)}\n`);
  console.log(`\nwritten to ${file}`);
}

/** What `clients` loops sending one request after another for `seconds` measured. */
export interface ClientLoops {
  /** Milliseconds per request. */
  readonly latencies: readonly number[];
  readonly failures: number;
  /** Failed requests by status code. */
  readonly codes: Readonly<Record<string, number>>;
  readonly elapsedSeconds: number;
}

/**
 * Runs `clients` loops, each calling `get` (a request, resolving to its status code) one after another for `seconds`,
 * after one warm-up call per loop (it opens every connection and fills the caches along the way); `measuring` is
 * called between the two (e.g. to read CPU counters).
 */
export async function runClients(
  clients: number,
  seconds: number,
  get: () => Promise<number>,
  measuring: () => void = () => undefined,
): Promise<ClientLoops> {
  await Promise.all(Array.from({ length: clients }, () => get()));
  measuring();
  const latencies: number[] = [];
  const codes: Record<string, number> = {};
  let failures = 0;
  const until = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < until) {
        const t = performance.now();
        const code = await get();
        latencies.push(performance.now() - t);
        if (code !== 200) {
          failures++;
          codes[code] = (codes[code] ?? 0) + 1;
        }
      }
    }),
  );
  return { latencies, failures, codes, elapsedSeconds: (performance.now() - started) / 1000 };
}
