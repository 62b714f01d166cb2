# shellcheck shell=bash disable=SC2034 # (variables used by the scripts that source this file)
# Shared by the scripts that build a tool from its Go module into the cache and print its path on stdout
# (build-helm.sh, build-prometheus-adapter.sh): the cache location, the Go settings, progress lines on stderr, and one
# build of a target at a time. Source it; it does nothing by itself.
CACHE="${SLUICE_CACHE:-$HOME/.cache/sluice}"

# Never download a toolchain; no cgo (static binaries); resolve modules as go.mod says.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
export GOPATH="${GOPATH:-$HOME/go}"

start=$(date +%s)
say() { printf '[build %4ss] %s\n' "$(($(date +%s) - start))" "$*" >&2; }

# Runs a long command while printing a heartbeat every 20 s, so a cold build shows progress; returns as soon as the
# command ends (it is polled every second).
with_progress() {
  local label=$1 i=0
  shift
  "$@" &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    i=$((i + 1))
    if ((i % 20 == 0)) && kill -0 "$pid" 2>/dev/null; then say "$label: still running"; fi
  done
  wait "$pid"
}

# lock_target NAME: one build of NAME at a time (two checkouts building at once wait for each other instead of
# building into the same directory): an flock on $CACHE/build/NAME.lock, released when the calling shell exits.
lock_target() {
  mkdir -p "$CACHE/build"
  local fd
  exec {fd}>"$CACHE/build/$1.lock"
  flock -n "$fd" || {
    say "$1: another build of it is running; waiting for it"
    flock "$fd"
  }
}
