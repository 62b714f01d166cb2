/** What every benchmark on the real test environment does first: bring the environment up when it is not. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { REPO_ROOT } from '../test/support/env.ts';

export function ensureEnvironment(): void {
  if (spawnSync('bash', ['scripts/env/status.sh'], { cwd: REPO_ROOT, stdio: 'ignore' }).status === 0) return;
  console.log('bench: the test environment is not up; starting it (scripts/env/up.sh)');
  if (spawnSync('bash', ['scripts/env/up.sh'], { cwd: REPO_ROOT, stdio: 'inherit' }).status !== 0) process.exit(1);
}

const CLK_TCK = 100;

/** CPU time (user + system, seconds) that process `pid` has used so far, from /proc. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}
