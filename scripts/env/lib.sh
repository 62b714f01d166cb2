# shellcheck shell=bash disable=SC2034 # (variables used by the scripts that source this file)
# Shared by up.sh, down.sh and status.sh (source it; it does nothing by itself): paths, the port scheme, how each
# component is started and checked, and process bookkeeping.
#
# Port scheme: BASE + a fixed offset. BASE is $SLUICE_PORT_BASE or, by default, 20000 + 50 * (cksum of the checkout's
# absolute path mod 200), i.e. one of 20000, 20050, ..., 29950: two checkouts get different ports, and none of them is
# a usual port of a developer's own services (2379, 4369, 5672, 9090, 15672, 25672) or in the ephemeral range.
#   +0 etcd client          +1 etcd peer          +2 kube-apiserver     +3 kube-controller-manager
#   +4 AMQP                 +5 RabbitMQ mgmt API  +6 Erlang distribution +7 epmd (ERL_EPMD_PORT; never 4369)
#   +8 moto (SQS)           +9 Prometheus         +10 the metrics API of `sluice operator --local` (tests start it)
#   +11..+13 a spare RabbitMQ node (test/support/broker.ts)  +15 /metrics of that sluice (--metrics-port)
#   +24 the metrics API of a second sluice replica (leader-election tests)
#   +25 prometheus-adapter behind sluice's proxy mode (test/integration/proxy-e2e.test.ts, bench/proxy.ts)
# Everything listens on 127.0.0.1 only (epmd also on ::1, which it always adds).
#
# Every process started here carries SLUICE_ENV_ID=<id> in its environment, so down.sh can tell our processes (and
# their children, e.g. the epmd that RabbitMQ daemonises) from anyone else's without matching names.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
STATE="$REPO/.sluice-env"
RUN="$STATE/run"
LEASES="$STATE/leases" # one file per test run using the environment, named by its PID (test/integration/global-setup.ts)
LOGS="$STATE/logs"
PKI="$STATE/pki"
KUBECONFIG_FILE="$STATE/kubeconfig"
ENV_JSON="$STATE/env.json"
PROM_TARGETS="$STATE/prometheus/targets"
ENV_ID=$(printf '%s' "$REPO" | sha256sum | cut -c1-12)
SHM="/dev/shm/sluice-$ENV_ID" # tmpfs: etcd, RabbitMQ and Prometheus data (fsync is slow on these machines)
# A test's stand-in front-proxy material for kube-apiserver (see front_proxy_files below and up.sh's header).
FRONT_PROXY_OVERRIDE="$STATE/front-proxy-override"
CACHE="${SLUICE_CACHE:-$HOME/.cache/sluice}"

# shellcheck source=scripts/env/versions.sh
source "$(dirname "${BASH_SOURCE[0]}")/versions.sh"
ETCD_BIN="$CACHE/bin/etcd-v$ETCD_VERSION/etcd"
K8S_BIN="$CACHE/bin/kubernetes-v$K8S_VERSION"
MOTO_VERSION=5.2.5
MOTO_VENV="$CACHE/moto-$MOTO_VERSION"
RABBITMQ_LIB=/usr/lib/rabbitmq/bin # the unwrapped scripts: they do not su to the rabbitmq user
SQS_REGION=us-east-1

if [ -n "${SLUICE_PORT_BASE:-}" ]; then
  if ! [[ $SLUICE_PORT_BASE =~ ^[0-9]+$ ]] || ((SLUICE_PORT_BASE < 1024 || SLUICE_PORT_BASE > 65000)); then
    echo "SLUICE_PORT_BASE must be a number in 1024..65000, got '$SLUICE_PORT_BASE'" >&2
    exit 1
  fi
  BASE=$SLUICE_PORT_BASE
else
  BASE=$((20000 + 50 * ($(printf '%s' "$REPO" | cksum | cut -d' ' -f1) % 200)))
fi
P_ETCD=$BASE P_ETCD_PEER=$((BASE + 1)) P_KAS=$((BASE + 2)) P_KCM=$((BASE + 3))
P_AMQP=$((BASE + 4)) P_MGMT=$((BASE + 5)) P_DIST=$((BASE + 6)) P_EPMD=$((BASE + 7))
P_MOTO=$((BASE + 8)) P_PROM=$((BASE + 9)) P_SLUICE=$((BASE + 10))

# The server components; rabbitmq-beam and epmd are recorded too, as parts of rabbitmq.
COMPONENTS=(etcd kube-apiserver kube-controller-manager rabbitmq moto prometheus)

now_ms() { date +%s%3N; }
say() { printf '[env] %s\n' "$*"; }
die() { printf '[env] ERROR: %s\n' "$*" >&2; exit 1; }

# --- processes ---------------------------------------------------------------------------------------------------

read_pid() { cat "$RUN/$1.pid" 2>/dev/null || true; }

# alive PID: the process exists and is not a zombie (PID 1 here may be slow to reap orphans).
alive() {
  local stat
  [ -n "$1" ] && stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

# ours PID: alive and started by this environment (carries our SLUICE_ENV_ID).
ours() {
  alive "$1" && grep -qsxz "SLUICE_ENV_ID=$ENV_ID" "/proc/$1/environ"
}

# All live processes of this environment, except the calling shell.
our_pids() {
  local d p
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" != $$ ] && [ "$p" != "$BASHPID" ] && ours "$p" && echo "$p"
  done
  return 0
}

# stop_pid LABEL PID: SIGTERM, wait up to STOP_TIMEOUT seconds (default 20), then SIGKILL; prints what it stopped and
# how long it took.
stop_pid() {
  local label=$1 pid=$2 t0 i how=SIGTERM timeout=${STOP_TIMEOUT:-20}
  alive "$pid" || return 0
  t0=$(now_ms)
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < timeout * 10; i++)); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then
    how="SIGKILL after $timeout s"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
  fi
  alive "$pid" && die "could not stop $label (pid $pid)"
  say "stopped $label (pid $pid, $how) in $(($(now_ms) - t0)) ms"
}

# stop_component NAME: stops the recorded processes of one component (RabbitMQ: the beam.smp VM first, then its
# wrapper; its epmd only when NAME is epmd). Only processes that carry our marker are touched.
stop_component() {
  local name=$1 pid i
  if [ "$name" = rabbitmq ]; then
    pid=$(read_pid rabbitmq-beam)
    ours "$pid" || pid=$(pgrep -P "$(read_pid rabbitmq)" -x beam.smp 2>/dev/null || true)
    if ours "$pid"; then
      stop_pid rabbitmq-beam "$pid"
      # The wrapper exits by itself once its VM is gone; a SIGTERM would make it run `rabbitmqctl stop` first.
      pid=$(read_pid rabbitmq)
      for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
      alive "$pid" || say "rabbitmq wrapper (pid $pid) exited with its VM"
    fi
    rm -f "$RUN/rabbitmq-beam.pid"
  fi
  pid=$(read_pid "$name")
  # epmd without a pid file (up.sh died before recording it): the listener on our ERL_EPMD_PORT, if it is ours.
  [ "$name" != epmd ] || ours "$pid" || pid=$(listeners "$P_EPMD" | head -1)
  ours "$pid" && stop_pid "$name" "$pid"
  rm -f "$RUN/$name.pid" "$RUN/$name.spec"
}

# listeners PORT: PIDs of processes listening on TCP PORT (any address).
listeners() { ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u; }

# free_ports PORT...: a port held by a leftover process of ours is freed; held by anyone else, it is an error.
free_ports() {
  local port pid
  for port in "$@"; do
    for pid in $(listeners "$port"); do
      if ours "$pid"; then
        stop_pid "leftover $(cat "/proc/$pid/comm" 2>/dev/null) on port $port" "$pid"
      else
        die "port $port is in use by pid $pid ($(tr '\0' ' ' <"/proc/$pid/cmdline")); stop it or choose other ports with SLUICE_PORT_BASE=<n>"
      fi
    done
  done
}

# --- component definitions -----------------------------------------------------------------------------------------

# front_proxy_files sets FP_CA, FP_CERT and FP_KEY: kube-apiserver's --requestheader-client-ca-file and
# --proxy-client-cert-file/--proxy-client-key-file. Normally the environment's own ($PKI). While $FRONT_PROXY_OVERRIDE
# holds requestheader-client-ca.crt, proxy-client.crt, proxy-client.key and an `owner` file naming a live PID (the test
# rotating the front-proxy CA: test/integration/cert-rotation-e2e.test.ts), those files instead. Only the paths are
# part of kube-apiserver's spec, not the content: kube-apiserver reloads these files by itself when they change
# (kubernetes/apiserver pkg/server/dynamiccertificates), so rewriting them needs no restart, while creating or removing
# the override changes the flags and the next up.sh replaces kube-apiserver. An override whose owner died is ignored,
# so a killed test cannot leave it behind: the next up.sh (any test run's global setup) restores the defaults.
front_proxy_files() {
  local d=$FRONT_PROXY_OVERRIDE owner
  owner=$(cat "$d/owner" 2>/dev/null || true)
  if [[ $owner =~ ^[0-9]+$ ]] && alive "$owner" && [ -f "$d/requestheader-client-ca.crt" ] &&
    [ -f "$d/proxy-client.crt" ] && [ -f "$d/proxy-client.key" ]; then
    FP_CA="$d/requestheader-client-ca.crt" FP_CERT="$d/proxy-client.crt" FP_KEY="$d/proxy-client.key"
  else
    FP_CA="$PKI/front-proxy-ca.crt" FP_CERT="$PKI/front-proxy-client.crt" FP_KEY="$PKI/front-proxy-client.key"
  fi
}

# define NAME sets: CMD (argv), ENVS (extra environment), PORTS (ports that must be free before it starts), CONF
# (files whose content is part of its configuration), TIMEOUT (seconds to become ready). spec NAME turns that into
# one string; a running process whose recorded spec differs (flags, ports or config changed) is replaced, not reused.

define() {
  ENVS=() CONF=() PORTS=()
  case $1 in
    etcd)
      CMD=("$ETCD_BIN" --name sluice --data-dir "$SHM/etcd"
        --listen-client-urls "http://127.0.0.1:$P_ETCD" --advertise-client-urls "http://127.0.0.1:$P_ETCD"
        --listen-peer-urls "http://127.0.0.1:$P_ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$P_ETCD_PEER"
        --initial-cluster "sluice=http://127.0.0.1:$P_ETCD_PEER" --unsafe-no-fsync=true --log-level=warn)
      PORTS=("$P_ETCD" "$P_ETCD_PEER") TIMEOUT=30 ;;
    kube-apiserver)
      front_proxy_files
      CMD=("$K8S_BIN/kube-apiserver" --etcd-servers="http://127.0.0.1:$P_ETCD"
        --bind-address=127.0.0.1 --secure-port="$P_KAS" --advertise-address=127.0.0.1 --endpoint-reconciler-type=none
        --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" --client-ca-file="$PKI/ca.crt"
        --service-account-issuer=https://kubernetes.default.svc.cluster.local
        --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key"
        --service-cluster-ip-range=10.0.0.0/24 --authorization-mode=RBAC --disable-admission-plugins=ServiceAccount
        --requestheader-client-ca-file="$FP_CA" --requestheader-allowed-names=front-proxy-client
        --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group
        --requestheader-extra-headers-prefix=X-Remote-Extra-
        --proxy-client-cert-file="$FP_CERT" --proxy-client-key-file="$FP_KEY"
        --feature-gates=HPAConfigurableTolerance=true --v=2)
      PORTS=("$P_KAS") TIMEOUT=60 ;;
    kube-controller-manager)
      # shellcheck disable=SC2054 # the commas belong to --controllers
      CMD=("$K8S_BIN/kube-controller-manager" --kubeconfig="$KUBECONFIG_FILE"
        --authentication-kubeconfig="$KUBECONFIG_FILE" --authorization-kubeconfig="$KUBECONFIG_FILE"
        --bind-address=127.0.0.1 --secure-port="$P_KCM" --cert-dir="$STATE/kube-controller-manager"
        --leader-elect=false --use-service-account-credentials=false
        --controllers=horizontalpodautoscaling,deployment,replicaset,garbagecollector,namespace,serviceaccount
        --horizontal-pod-autoscaler-sync-period=1s --horizontal-pod-autoscaler-downscale-stabilization=5s
        --feature-gates=HPAConfigurableTolerance=true --v=2)
      CONF=("$KUBECONFIG_FILE") PORTS=("$P_KCM") TIMEOUT=30 ;;
    rabbitmq)
      # Self-contained (docs/kubernetes-interfaces.md#backends-beside-the-control-plane): all state under .sluice-env
      # and tmpfs, nothing in /etc or /var.
      ENVS=(HOME="$STATE/rabbitmq/home" RABBITMQ_NODENAME=rabbit@localhost
        RABBITMQ_CONF_ENV_FILE="$STATE/rabbitmq/rabbitmq-env.conf"
        RABBITMQ_CONFIG_FILE="$STATE/rabbitmq/rabbitmq.conf"
        RABBITMQ_ADVANCED_CONFIG_FILE="$STATE/rabbitmq/advanced.config"
        RABBITMQ_ENABLED_PLUGINS_FILE="$STATE/rabbitmq/enabled_plugins"
        RABBITMQ_MNESIA_BASE="$SHM/rabbitmq/mnesia" RABBITMQ_LOG_BASE="$LOGS" RABBITMQ_LOGS=-
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$P_AMQP" RABBITMQ_DIST_PORT="$P_DIST"
        ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT="$P_EPMD" ERL_CRASH_DUMP="$LOGS/erl_crash.dump"
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}")
      CMD=("$RABBITMQ_LIB/rabbitmq-server")
      CONF=("$STATE/rabbitmq/rabbitmq.conf" "$STATE/rabbitmq/advanced.config" "$STATE/rabbitmq/enabled_plugins")
      PORTS=("$P_AMQP" "$P_MGMT" "$P_DIST" "$P_EPMD") TIMEOUT=90 ;;
    moto)
      CMD=("$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$P_MOTO")
      PORTS=("$P_MOTO") TIMEOUT=30 ;;
    prometheus)
      CMD=(/usr/bin/prometheus --config.file="$STATE/prometheus/prometheus.yml" --storage.tsdb.path="$SHM/prometheus"
        --web.listen-address="127.0.0.1:$P_PROM")
      CONF=("$STATE/prometheus/prometheus.yml") PORTS=("$P_PROM") TIMEOUT=30 ;;
    *) die "unknown component $1" ;;
  esac
}

spec() {
  define "$1"
  printf '%q ' "${ENVS[@]}" "${CMD[@]}"
  [ ${#CONF[@]} -eq 0 ] || cat "${CONF[@]}" 2>/dev/null | sha256sum | cut -c1-16
}

# healthy NAME: one quick readiness probe of a component's network API.
healthy() {
  local out
  case $1 in
    etcd) out=$(curl -sf --max-time 2 "http://127.0.0.1:$P_ETCD/health") && [[ $out == *'"health":"true"'* ]] ;;
    kube-apiserver)
      curl -sf --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
        "https://127.0.0.1:$P_KAS/readyz" >/dev/null ;;
    kube-controller-manager) curl -sfk --max-time 2 "https://127.0.0.1:$P_KCM/healthz" >/dev/null ;;
    rabbitmq) # management API up and the AMQP listener open
      curl -sf --max-time 2 -u guest:guest "http://127.0.0.1:$P_MGMT/api/health/checks/port-listener/$P_AMQP" >/dev/null ;;
    moto) # moto routes by the service in the credential scope; without it a request is answered as S3
      out=$(curl -sf --max-time 2 -X POST -d '{}' -H 'Content-Type: application/x-amz-json-1.0' \
        -H 'X-Amz-Target: AmazonSQS.ListQueues' \
        -H "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/$SQS_REGION/sqs/aws4_request, SignedHeaders=host, Signature=0" \
        "http://127.0.0.1:$P_MOTO/") && [[ $out == '{'* ]] ;;
    prometheus) curl -sf --max-time 2 "http://127.0.0.1:$P_PROM/-/ready" >/dev/null ;;
  esac
}

# running NAME: the recorded process is ours, runs the current spec and answers its health check (three tries a
# second apart, so a busy machine does not get a healthy server replaced).
running() {
  local pid i
  pid=$(read_pid "$1")
  ours "$pid" && [ "$(spec "$1")" = "$(cat "$RUN/$1.spec" 2>/dev/null)" ] || return 1
  for i in 1 2 3; do
    healthy "$1" && return 0
    [ $i = 3 ] || sleep 1
  done
  return 1
}

# lease_holders: PIDs of the live test runs holding a lease on the environment; stale lease files are removed.
lease_holders() {
  local f
  for f in "$LEASES"/*; do
    [ -e "$f" ] || continue
    if alive "${f##*/}"; then echo "${f##*/}"; else rm -f "$f"; fi
  done
}
