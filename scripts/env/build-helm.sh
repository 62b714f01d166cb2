#!/usr/bin/env bash
# Builds helm from its Go module (helm.sh/helm/v4) into $SLUICE_CACHE/bin/helm-v<version>/helm (default
# $HOME/.cache/sluice) and prints that path on stdout (progress goes to stderr). A cache hit returns at once.
# Used by scripts/test.sh (helm lint) and test/integration/helm.test.ts (render, compare with deploy/, dry-run).
#
# `go install module/cmd@version` builds with helm's own go.mod (no wrapper module, no replace lines needed: helm has
# none), so the dependency versions are exactly those of the release. helm v4.3.2's go.mod says `go 1.26.0`, which the
# local toolchain satisfies (GOTOOLCHAIN=local: never download a toolchain).
set -euo pipefail

# The helm release the chart is tested with (override with SLUICE_HELM_VERSION; v4 only: the module path is v4).
HELM_VERSION="${SLUICE_HELM_VERSION:-4.3.2}"
# shellcheck source=scripts/env/go-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/go-build.sh"
HELM_BIN="$CACHE/bin/helm-v$HELM_VERSION"

if [ -x "$HELM_BIN/helm" ]; then
  say "helm v$HELM_VERSION: cached in $HELM_BIN"
  echo "$HELM_BIN/helm"
  exit 0
fi

command -v go >/dev/null || {
  echo "go is not installed: helm is built from its Go module (helm v$HELM_VERSION needs Go >= 1.26)" >&2
  exit 1
}

w="$CACHE/build/helm-v$HELM_VERSION"
rm -rf "$w" && mkdir -p "$w/bin"
say "helm v$HELM_VERSION: downloading modules and compiling (a few minutes on 2 cores)"
# internal/version.version defaults to the minor ("v4.3"); stamp the full version as helm's Makefile does for a tag.
ld="-s -w -X helm.sh/helm/v4/internal/version.version=v$HELM_VERSION"
(cd "$w" && GOBIN="$w/bin" with_progress "helm" go install -trimpath -ldflags "$ld" "helm.sh/helm/v4/cmd/helm@v$HELM_VERSION") >&2
"$w/bin/helm" version --short >/dev/null # a binary that does not run is no cache entry
mkdir -p "$HELM_BIN.tmp" && mv "$w/bin/helm" "$HELM_BIN.tmp/helm" && rm -rf "$HELM_BIN" && mv "$HELM_BIN.tmp" "$HELM_BIN"
# The Go build cache only helps a rebuild of the same version; keep the module cache, drop the wrapper directory.
rm -rf "$w"
rmdir "$CACHE/build" 2>/dev/null || true
say "helm v$HELM_VERSION: built into $HELM_BIN"
echo "$HELM_BIN/helm"
