// vitest globalSetup of the integration project: makes sure the local test environment (scripts/env/up.sh) is up
// and healthy before any test file runs. If this run had to bring it up from nothing, it stops it again afterwards,
// unless SLUICE_KEEP_ENV is set or another test run is still using it; an environment that was already there (even if
// it needed repair) is left running.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ENV_FILE, REPO_ROOT } from '../support/env.ts';

// Every run holds a lease (a file named by its PID) while it runs; `down.sh --if-unused` stops nothing while another
// live run holds one, so two runs sharing the checkout's environment do not pull it from under each other.
const lease = path.join(REPO_ROOT, '.sluice-env', 'leases', String(process.pid));

function run(args: string[], quiet = false): number | null {
  return spawnSync('bash', args, { cwd: REPO_ROOT, stdio: quiet ? 'ignore' : 'inherit' }).status;
}

export default function setup(): () => void {
  mkdirSync(path.dirname(lease), { recursive: true });
  writeFileSync(lease, '');
  const wasDown = !existsSync(ENV_FILE);
  let startedHere = false;
  if (run(['scripts/env/status.sh'], true) !== 0) {
    console.log('[global-setup] test environment not up or not healthy: running scripts/env/up.sh');
    // Inherited stdio: a cold start builds the control plane and installs packages, and shows its progress.
    const status = run(['scripts/env/up.sh']);
    if (status !== 0) {
      rmSync(lease, { force: true });
      throw new Error(`scripts/env/up.sh failed (exit ${status}); component logs are in .sluice-env/logs/`);
    }
    startedHere = wasDown;
  }
  return () => {
    rmSync(lease, { force: true });
    if (!startedHere || process.env['SLUICE_KEEP_ENV']) return;
    console.log('[global-setup] stopping the test environment this run started (set SLUICE_KEEP_ENV=1 to keep it)');
    run(['scripts/env/down.sh', '--if-unused']);
  };
}
