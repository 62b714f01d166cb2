#!/usr/bin/env bash
# Builds etcd, kube-apiserver and kube-controller-manager from Go modules into
# $SLUICE_CACHE/bin/<component>-<version>/ (default $HOME/.cache/sluice). A cache hit returns at once.
# Recipe: docs/kubernetes-interfaces.md#building-from-go-modules (wrapper module + replace lines for staging modules).
set -euo pipefail

# shellcheck source=scripts/env/versions.sh
source "$(dirname "${BASH_SOURCE[0]}")/versions.sh"
CACHE="${SLUICE_CACHE:-$HOME/.cache/sluice}"
K8S_BIN="$CACHE/bin/kubernetes-v$K8S_VERSION"
ETCD_BIN="$CACHE/bin/etcd-v$ETCD_VERSION"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
export GOPATH="${GOPATH:-$HOME/go}"

start=$(date +%s)
say() { printf '[build %4ss] %s\n' "$(( $(date +%s) - start ))" "$*"; }

# Runs a long command while printing a heartbeat every 20 s, so a cold build shows progress.
with_progress() {
  local label=$1; shift
  "$@" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 20 & wait $! || true
    kill -0 "$pid" 2>/dev/null && say "$label: still running"
  done
  wait "$pid"
}

command -v go >/dev/null || { echo "go is not installed: the control plane is built from Go modules (Go >= 1.24)" >&2; exit 1; }

# One build of a target at a time (two checkouts starting their environments at once wait for each other instead of
# building into, or deleting, the same working directory): an flock on <target>.lock, released when the shell exits.
lock_target() {
  mkdir -p "$CACHE/build"
  local fd
  exec {fd}>"$CACHE/build/$1.lock"
  flock -n "$fd" || { say "$1: another build of it is running; waiting for it"; flock "$fd"; }
}

build_etcd() {
  if [ -x "$ETCD_BIN/etcd" ]; then say "etcd v$ETCD_VERSION: cached in $ETCD_BIN"; return; fi
  lock_target "etcd-v$ETCD_VERSION"
  if [ -x "$ETCD_BIN/etcd" ]; then say "etcd v$ETCD_VERSION: built meanwhile into $ETCD_BIN"; return; fi
  local w="$CACHE/build/etcd-v$ETCD_VERSION"
  rm -rf "$w" && mkdir -p "$w" && cd "$w"
  say "etcd v$ETCD_VERSION: resolving modules"
  go mod init local/etcdbuild >/dev/null 2>&1
  go get -tool "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" >/dev/null 2>&1
  say "etcd v$ETCD_VERSION: compiling"
  with_progress "etcd" go build -trimpath -ldflags "-s -w" -o "$w/bin/etcd" go.etcd.io/etcd/server/v3
  mkdir -p "$ETCD_BIN.tmp" && mv "$w/bin/etcd" "$ETCD_BIN.tmp/etcd" && rm -rf "$ETCD_BIN" && mv "$ETCD_BIN.tmp" "$ETCD_BIN"
  cd "$CACHE" && rm -rf "$w"
  say "etcd v$ETCD_VERSION: built into $ETCD_BIN"
}

build_kube() {
  if [ -x "$K8S_BIN/kube-apiserver" ] && [ -x "$K8S_BIN/kube-controller-manager" ]; then
    say "kubernetes v$K8S_VERSION: cached in $K8S_BIN"; return
  fi
  lock_target "kubernetes-v$K8S_VERSION"
  if [ -x "$K8S_BIN/kube-apiserver" ] && [ -x "$K8S_BIN/kube-controller-manager" ]; then
    say "kubernetes v$K8S_VERSION: built meanwhile into $K8S_BIN"; return
  fi
  local w="$CACHE/build/kubernetes-v$K8S_VERSION" minor=${K8S_VERSION#1.}; minor=${minor%%.*}
  rm -rf "$w" && mkdir -p "$w" && cd "$w"
  say "kubernetes v$K8S_VERSION: resolving modules (k8s.io/kubernetes is one large download)"
  go mod init local/kbuild >/dev/null 2>&1
  local gomod mods
  gomod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  mods=$(sed -nE 's#^\s*(k8s\.io/[a-z0-9-]+) => \./staging/.*#\1#p' "$gomod" | sort -u)
  [ -n "$mods" ] || { echo "no staging modules found in $gomod" >&2; exit 1; }
  for m in $mods; do go mod edit "-replace=$m=$m@v0.${K8S_VERSION#1.}"; done
  with_progress "kubernetes modules" go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION" "k8s.io/kubernetes/cmd/kube-controller-manager@v$K8S_VERSION" >/dev/null 2>&1
  say "kubernetes v$K8S_VERSION: compiling kube-apiserver and kube-controller-manager (about 4 minutes on 2 cores)"
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION"
  with_progress "kubernetes" go build -trimpath -ldflags "$ld" -o "$w/bin/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
  mkdir -p "$K8S_BIN.tmp" && mv "$w/bin/kube-apiserver" "$w/bin/kube-controller-manager" "$K8S_BIN.tmp/" && rm -rf "$K8S_BIN" && mv "$K8S_BIN.tmp" "$K8S_BIN"
  cd "$CACHE" && rm -rf "$w"
  say "kubernetes v$K8S_VERSION: built into $K8S_BIN"
}

build_etcd
build_kube
# Each build drops its own wrapper directory when done (the module cache stays); never the whole build directory,
# where another checkout's build of another version may be running (one did delete a running 1.35 build that way).
say "done"
