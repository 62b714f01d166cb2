#!/usr/bin/env bash
# Reports whether each component of the test environment runs (recorded PID alive, current flags/config) and answers
# its health check. Exit status 0 when all do and env.json exists, 1 otherwise. Changes nothing.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ -d "$STATE" ] || { say "no $STATE"; exit 1; }
# Shared lock: an up.sh or down.sh in progress finishes first, so its outcome is what gets reported.
exec 9>"$STATE/lock"
flock -s 9

ok=0
[ -f "$ENV_JSON" ] || { say "no $ENV_JSON"; ok=1; }
for name in "${COMPONENTS[@]}"; do
  if running "$name"; then say "$name: up (pid $(read_pid "$name"))"; else say "$name: DOWN"; ok=1; fi
done
exit $ok
