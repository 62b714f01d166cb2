#!/usr/bin/env bash
# Starts sluice's local test environment, or reuses what already runs: etcd + kube-apiserver + kube-controller-manager
# (built from Go modules by build-k8s.sh), RabbitMQ with the management plugin, moto (SQS) and Prometheus, all on
# 127.0.0.1. Idempotent: a component whose recorded process is alive, runs the current flags/config and answers its
# health check is kept; anything else is stopped and started again. Writes .sluice-env/env.json for the tests
# (test/support/env.ts reads it). Ports, state layout and process bookkeeping: lib.sh. Stop with down.sh.
#
# Prometheus scrapes whatever the JSON files in .sluice-env/prometheus/targets/*.json list (file_sd_configs, re-read
# within ~1 s, every second): a test adds a target by writing e.g. [{"targets":["127.0.0.1:9464"],"labels":{"job":"x"}}]
# there (write a temporary name and rename it, so Prometheus never reads half a file). New targets are scraped ~5 s
# later (the scrape manager applies target changes on a 5 s tick).
#
# Front-proxy override (for test/integration/cert-rotation-e2e.test.ts only): a test that writes
# .sluice-env/front-proxy-override/{requestheader-client-ca.crt,proxy-client.crt,proxy-client.key,owner} (owner: its
# PID) and runs up.sh gets kube-apiserver restarted with those as --requestheader-client-ca-file and
# --proxy-client-cert-file/--proxy-client-key-file (kube-controller-manager is restarted with it); rewriting the files
# later needs no restart (kube-apiserver reloads them). Removing the directory and running up.sh again restores the
# environment's own files; so does any up.sh after the owner has exited. A file, not an environment variable: every
# up.sh/status.sh (other test runs' global setup too) must agree on kube-apiserver's flags, or one would "repair" the
# other's kube-apiserver. The override is in lib.sh (front_proxy_files); env.json keeps naming the environment's own
# front-proxy files. The test runs up.sh with SLUICE_ENV_KEEP_ENV_JSON=1 (see launch below).
#
# Environment: SLUICE_PORT_BASE (ports, see lib.sh), SLUICE_CACHE (default ~/.cache/sluice: binaries and the moto
# virtualenv), SLUICE_PYTHON (interpreter for that virtualenv, default python3), SLUICE_K8S_VERSION and
# SLUICE_ETCD_VERSION (as in build-k8s.sh).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

T0=$(now_ms)
mkdir -p "$RUN" "$LOGS" "$LOGS/rabbitmq-http" "$STATE/rabbitmq/home" "$PROM_TARGETS" "$SHM"
# One up/down at a time per checkout. fd 9 is closed for the servers we start, so they do not inherit the lock.
exec 9>"$STATE/lock"
flock -n 9 || { say "waiting for another up.sh/down.sh to finish ($STATE/lock)"; flock 9; }

say "state $STATE, tmpfs $SHM, port base $BASE"

# --- installs (each is a no-op when already done) ------------------------------------------------------------------

bash "$REPO/scripts/env/build-k8s.sh"

missing=()
for p in rabbitmq-server prometheus; do
  [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == *'ok installed' ]] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "Debian packages missing: ${missing[*]}; run as root or: apt-get install --no-install-recommends ${missing[*]}"
  say "installing ${missing[*]} from Debian"
  t=$(now_ms)
  # 9>&-: whatever dpkg might start must not inherit the lock
  apt-get update -qq 9>&-
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$LOGS/apt.log" 2>&1 9>&- ||
    { tail -20 "$LOGS/apt.log" >&2; die "apt-get install failed; see $LOGS/apt.log"; }
  say "installed ${missing[*]} in $(($(now_ms) - t)) ms"
fi

if [ ! -f "$MOTO_VENV/.installed" ]; then
  say "installing moto[server]==$MOTO_VERSION into $MOTO_VENV (once, about 30 s)"
  t=$(now_ms)
  rm -rf "$MOTO_VENV"
  "${SLUICE_PYTHON:-python3}" -m venv "$MOTO_VENV"
  "$MOTO_VENV/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
  touch "$MOTO_VENV/.installed" # a venv cannot be moved into place, so this marks it complete
  say "installed moto in $(($(now_ms) - t)) ms"
fi

# --- certificates (docs/kubernetes-interfaces.md#certificates), generated once ----------------------------------------

# new_ca NAME CN
new_ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 3650 -subj "/CN=$2" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign,digitalSignature \
    -keyout "$1.key" -out "$1.crt" 2>/dev/null
}
# new_cert NAME CA SUBJECT EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES]
new_cert() {
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "$3" \
    -keyout "$1.key" -out "$1.csr" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -set_serial "0x$(openssl rand -hex 16)" -days 3650 \
    -sha256 -out "$1.crt" -extfile <(
      printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n'
      printf 'extendedKeyUsage=%s\n' "$4"
      [ -z "${5:-}" ] || printf 'subjectAltName=%s\n' "$5"
    ) 2>/dev/null
  rm "$1.csr"
}
if [ ! -f "$PKI/.complete" ]; then
  t=$(now_ms)
  rm -rf "$PKI" && mkdir -p "$PKI"
  (
    cd "$PKI"
    new_ca ca sluice-ca
    new_ca front-proxy-ca sluice-front-proxy-ca
    new_cert apiserver ca /CN=kube-apiserver serverAuth IP:127.0.0.1,DNS:localhost
    new_cert admin ca /O=system:masters/CN=admin clientAuth
    new_cert front-proxy-client front-proxy-ca /CN=front-proxy-client clientAuth
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    chmod 600 ./*.key
    touch .complete
  )
  say "certificates generated in $PKI in $(($(now_ms) - t)) ms"
fi

# --- configuration files (rewritten every run; identical content keeps running servers) -----------------------------

b64() { base64 -w0 <"$1"; }
cat >"$KUBECONFIG_FILE.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: sluice
    cluster:
      server: https://127.0.0.1:$P_KAS
      certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
  - name: admin
    user:
      client-certificate-data: $(b64 "$PKI/admin.crt")
      client-key-data: $(b64 "$PKI/admin.key")
contexts:
  - name: sluice
    context: { cluster: sluice, user: admin }
current-context: sluice
EOF
chmod 600 "$KUBECONFIG_FILE.tmp" && mv "$KUBECONFIG_FILE.tmp" "$KUBECONFIG_FILE"

: >"$STATE/rabbitmq/rabbitmq-env.conf" # empty: keeps /etc/rabbitmq/rabbitmq-env.conf out
echo '[rabbitmq_management].' >"$STATE/rabbitmq/enabled_plugins"
cat >"$STATE/rabbitmq/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$P_AMQP
management.tcp.ip = 127.0.0.1
management.tcp.port = $P_MGMT
# With advanced.config, the management API shows a change within ~1 s (default ~5 s).
collect_statistics_interval = 250
# An access log of the management API: tests count from the broker's side what sluice asks it.
management.http_log_dir = $LOGS/rabbitmq-http
EOF
cat >"$STATE/rabbitmq/advanced.config" <<'EOF'
[{rabbitmq_management_agent, [{sample_retention_policies, [{global, [{605,1},{3660,60},{29400,600},{86400,1800}]}, {basic, [{605,1},{3600,60}]}, {detailed, [{605,1}]}]}]}].
EOF
cat >"$STATE/prometheus/prometheus.yml" <<EOF
global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }
scrape_configs:
  # Targets come from the files tests write into $PROM_TARGETS (see up.sh's header).
  - job_name: sluice-test
    file_sd_configs:
      - files: ['$PROM_TARGETS/*.json']
        refresh_interval: 1s
EOF

# --- servers ------------------------------------------------------------------------------------------------------

declare -A LAUNCHED=() # component -> launch time (ms)
declare -A READY=()    # component -> "reused" or ms from launch to ready
# The control plane is a chain: kube-apiserver starts once etcd is ready, kube-controller-manager once kube-apiserver
# is; a new etcd gets a new kube-apiserver, and a new kube-apiserver a new kube-controller-manager (their watches and
# caches would be stale).
declare -A NEEDS=([kube-apiserver]=etcd [kube-controller-manager]=kube-apiserver)

# launch NAME: starts a component detached (own session, stdin closed, output to its log, our marker in its
# environment) and records its PID and spec.
launch() {
  # env.json describes the old processes; it is rewritten once everything is ready. SLUICE_ENV_KEEP_ENV_JSON=1 keeps
  # it meanwhile, for a replacement that changes no port or path (the front-proxy override): a test run starting
  # during it then does not take the environment for one it brought up from nothing (test/integration/global-setup.ts)
  # and stop it when it ends.
  [ -n "${SLUICE_ENV_KEEP_ENV_JSON:-}" ] || rm -f "$ENV_JSON"
  define "$1"
  free_ports "${PORTS[@]}"
  (cd "$STATE" && exec env "${ENVS[@]}" SLUICE_ENV_ID="$ENV_ID" setsid "${CMD[@]}" </dev/null >"$LOGS/$1.log" 2>&1 9>&-) &
  echo $! >"$RUN/$1.pid"
  spec "$1" >"$RUN/$1.spec"
  LAUNCHED[$1]=$(now_ms)
}

# ensure NAME [restart]: reuse the component if it is running and healthy (and no restart is asked for), else replace
# it. What is replaced is stale, so it gets less time to shut down cleanly (e.g. a kube-apiserver whose etcd went away
# does not finish its graceful shutdown).
STOP_TIMEOUT=5
ensure() {
  if [ -z "${2:-}" ] && running "$1"; then
    READY[$1]=reused
    say "$1: reused (pid $(read_pid "$1"))"
    return
  fi
  stop_component "$1"
  launch "$1"
}

# ready NAME: whether a launched component answers its health check yet; dies, showing the end of its log, if it
# exited or ran out of time.
ready() {
  local name=$1 pid
  define "$name"
  pid=$(read_pid "$name")
  if healthy "$name"; then
    READY[$name]=$(($(now_ms) - ${LAUNCHED[$name]}))
    say "$name: ready in ${READY[$name]} ms (pid $pid)"
    return 0
  fi
  if ! alive "$pid"; then
    tail -25 "$LOGS/$name.log" >&2
    die "$name exited during start-up; full log: $LOGS/$name.log"
  fi
  if (($(now_ms) - ${LAUNCHED[$name]} > TIMEOUT * 1000)); then
    tail -25 "$LOGS/$name.log" >&2
    die "$name not ready after $TIMEOUT s (pid $pid); full log: $LOGS/$name.log"
  fi
  return 1
}

# Everything without a dependency starts at once; then one loop polls whatever is starting (so each start time is
# measured when it happens) and starts each control-plane component as soon as the one it needs is ready.
for name in "${COMPONENTS[@]}"; do [ -n "${NEEDS[$name]:-}" ] || ensure "$name"; done
while [ ${#READY[@]} -lt ${#COMPONENTS[@]} ]; do
  for name in "${COMPONENTS[@]}"; do
    if [ -n "${READY[$name]:-}" ]; then
      continue
    elif [ -n "${LAUNCHED[$name]:-}" ]; then
      ready "$name" || true
    elif [ -n "${READY[${NEEDS[$name]}]:-}" ]; then
      ensure "$name" ${LAUNCHED[${NEEDS[$name]}]:+restart}
    fi
  done
  [ ${#READY[@]} -eq ${#COMPONENTS[@]} ] || sleep 0.1
done

# RabbitMQ's wrapper script runs the beam.smp VM as a child, and the VM daemonises epmd on our ERL_EPMD_PORT.
beam=$(pgrep -P "$(read_pid rabbitmq)" -x beam.smp) || die "no beam.smp child of the RabbitMQ wrapper"
echo "$beam" >"$RUN/rabbitmq-beam.pid"
epmd=$(listeners "$P_EPMD" | head -1)
ours "$epmd" || die "no epmd of ours listens on port $P_EPMD"
echo "$epmd" >"$RUN/epmd.pid"

pids=""
for name in "${COMPONENTS[@]}" rabbitmq-beam epmd; do pids+="${pids:+, }\"$name\": $(read_pid "$name")"; done
cat >"$ENV_JSON.tmp" <<EOF
{
  "id": "$ENV_ID",
  "stateDir": "$STATE",
  "logsDir": "$LOGS",
  "kubeconfig": "$KUBECONFIG_FILE",
  "apiserver": "https://127.0.0.1:$P_KAS",
  "pki": {
    "caCert": "$PKI/ca.crt",
    "caKey": "$PKI/ca.key",
    "adminCert": "$PKI/admin.crt",
    "adminKey": "$PKI/admin.key",
    "frontProxyCaCert": "$PKI/front-proxy-ca.crt",
    "frontProxyClientCert": "$PKI/front-proxy-client.crt",
    "frontProxyClientKey": "$PKI/front-proxy-client.key"
  },
  "rabbitmq": {
    "amqpUrl": "amqp://guest:guest@127.0.0.1:$P_AMQP",
    "managementUrl": "http://guest:guest@127.0.0.1:$P_MGMT"
  },
  "sqs": {
    "endpoint": "http://127.0.0.1:$P_MOTO",
    "region": "$SQS_REGION",
    "accessKeyId": "test",
    "secretAccessKey": "test"
  },
  "prometheus": {
    "url": "http://127.0.0.1:$P_PROM",
    "targetsDir": "$PROM_TARGETS"
  },
  "sluice": { "port": $P_SLUICE },
  "ports": {
    "etcdClient": $P_ETCD, "etcdPeer": $P_ETCD_PEER, "kubeApiserver": $P_KAS, "kubeControllerManager": $P_KCM,
    "amqp": $P_AMQP, "rabbitmqManagement": $P_MGMT, "erlangDistribution": $P_DIST, "epmd": $P_EPMD,
    "moto": $P_MOTO, "prometheus": $P_PROM, "sluice": $P_SLUICE
  },
  "pids": { $pids }
}
EOF
mv "$ENV_JSON.tmp" "$ENV_JSON"

say "environment up in $(($(now_ms) - T0)) ms; kubeconfig $KUBECONFIG_FILE; details $ENV_JSON"
