#!/usr/bin/env bash
# Builds prometheus-adapter (the Go module sigs.k8s.io/prometheus-adapter, its cmd/adapter) into
# $SLUICE_CACHE/bin/prometheus-adapter-v<version>/adapter (default $HOME/.cache/sluice) and prints that path on stdout
# (progress goes to stderr). A cache hit returns at once. Used by the proxy-mode e2e test
# (test/integration/proxy-e2e.test.ts), where it is the real second adapter behind `sluice operator --proxy-to`.
#
# Why a wrapper module and not `go install sigs.k8s.io/prometheus-adapter/cmd/adapter@v0.12.0`: `go install` of a
# versioned package asks the module proxy for the module's version list (to load deprecations), and the proxy here
# refuses that list (403 "This module version is not available") while it serves the version itself. `go get -tool`
# of the exact version in a throwaway module resolves the same dependency versions (minimal version selection over
# the adapter's own go.mod, which has no replace lines) without asking for the list. The adapter's go.mod says
# `go 1.22.1`, which the local toolchain satisfies (GOTOOLCHAIN=local: never download a toolchain).
set -euo pipefail

# shellcheck source=scripts/env/versions.sh
source "$(dirname "${BASH_SOURCE[0]}")/versions.sh"
# shellcheck source=scripts/env/go-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-build.sh"
ADAPTER_BIN="$CACHE/bin/prometheus-adapter-v$PROMETHEUS_ADAPTER_VERSION"

cached() {
  [ -x "$ADAPTER_BIN/adapter" ] || return 1
  say "prometheus-adapter v$PROMETHEUS_ADAPTER_VERSION: cached in $ADAPTER_BIN"
  echo "$ADAPTER_BIN/adapter"
}

cached && exit 0
command -v go >/dev/null || {
  echo "go is not installed: prometheus-adapter is built from its Go module (Go >= 1.22)" >&2
  exit 1
}

lock_target "prometheus-adapter-v$PROMETHEUS_ADAPTER_VERSION"
cached && exit 0

w="$CACHE/build/prometheus-adapter-v$PROMETHEUS_ADAPTER_VERSION"
rm -rf "$w" && mkdir -p "$w/bin"
cd "$w"
say "prometheus-adapter v$PROMETHEUS_ADAPTER_VERSION: resolving modules"
go mod init local/adapterbuild >/dev/null 2>&1
with_progress "prometheus-adapter modules" \
  go get -tool "sigs.k8s.io/prometheus-adapter/cmd/adapter@v$PROMETHEUS_ADAPTER_VERSION" >"$w/get.log" 2>&1 ||
  {
    tail -20 "$w/get.log" >&2
    exit 1
  }
say "prometheus-adapter v$PROMETHEUS_ADAPTER_VERSION: compiling (about 2.5 minutes on 2 cores)"
with_progress "prometheus-adapter" go build -trimpath -ldflags "-s -w" -o "$w/bin/adapter" \
  sigs.k8s.io/prometheus-adapter/cmd/adapter >&2
# A binary that does not run is no cache entry (its --help exits 2, so look for one of its own flags).
help=$("$w/bin/adapter" --help 2>&1 || true)
[[ $help == *--prometheus-url* ]] || {
  echo "the built prometheus-adapter does not run: $w/bin/adapter --help" >&2
  exit 1
}
mkdir -p "$ADAPTER_BIN.tmp" && mv "$w/bin/adapter" "$ADAPTER_BIN.tmp/adapter" && rm -rf "$ADAPTER_BIN" &&
  mv "$ADAPTER_BIN.tmp" "$ADAPTER_BIN"
# The module and build caches stay (a rebuild is quick); the wrapper directory goes.
cd "$CACHE" && rm -rf "$w"
say "prometheus-adapter v$PROMETHEUS_ADAPTER_VERSION: built into $ADAPTER_BIN"
echo "$ADAPTER_BIN/adapter"
