#!/usr/bin/env bash
# Stops what up.sh started, by recorded PID, newest dependants first: kube-controller-manager, kube-apiserver, etcd,
# Prometheus, moto, RabbitMQ (its beam.smp VM, then the wrapper script, then the epmd it daemonised on our
# ERL_EPMD_PORT). Each gets SIGTERM, then SIGKILL after 20 s. Only processes carrying this checkout's SLUICE_ENV_ID
# are touched; a final sweep stops any leftover of ours whose PID was not recorded. Removes the tmpfs data (etcd,
# RabbitMQ, Prometheus) and env.json; keeps certificates, kubeconfig and logs.
# With --if-unused (the integration tests' teardown) it stops nothing while another test run holds a lease on the
# environment (a file in .sluice-env/leases named by that run's PID).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ -d "$STATE" ] || { say "nothing to stop ($STATE does not exist)"; exit 0; }
exec 9>"$STATE/lock"
flock -n 9 || { say "waiting for another up.sh/down.sh to finish ($STATE/lock)"; flock 9; }

if [ "${1:-}" = --if-unused ] && holders=$(lease_holders) && [ -n "$holders" ]; then
  say "still used by test runs with pids $(echo "$holders" | paste -sd' '); leaving it up"
  exit 0
fi

T0=$(now_ms)
rm -f "$ENV_JSON" # first, so nobody picks up an environment that is going away
for name in kube-controller-manager kube-apiserver etcd prometheus moto rabbitmq epmd; do stop_component "$name"; done
for pid in $(our_pids); do stop_pid "leftover $(cat "/proc/$pid/comm" 2>/dev/null)" "$pid"; done
rm -rf "$SHM" "$RUN"
say "environment down in $(($(now_ms) - T0)) ms"
