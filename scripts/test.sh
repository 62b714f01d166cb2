#!/usr/bin/env bash
# `npm test`: every check CI runs, in order, failing fast. Lint, format, type-check, CRD freshness and unit tests
# need nothing but node_modules; the image test builds the image with podman (installed from Debian when missing); the
# integration tests' global setup then brings the real environment up (installing RabbitMQ, Prometheus and moto and
# building the control plane when missing; see README).
set -euo pipefail
cd "$(dirname "$0")/.."

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
step() { printf '\n==> %s\n' "$*"; }

step "lint (eslint)"
eslint .
step "format (prettier --check)"
prettier --check .
step "type-check (tsc)"
tsc -p tsconfig.json
step "CRDs are up to date with the TypeBox schema"
node scripts/gen-crds.ts --check
step "Helm chart: CRDs identical to crds/ (npm run chart:crds), helm lint (helm built from its Go module, cached)"
diff -r crds charts/sluice/crds
helm=$(bash scripts/env/build-helm.sh)
"$helm" lint --strict charts/sluice

status=0
step "unit tests"
vitest run --project unit --reporter=default --reporter=json --outputFile.json="$results/unit.json" || status=$?
if [ "$status" -eq 0 ]; then
  step "image: built from the Dockerfile (scripts/image.sh; podman from Debian, cached by source hash) and run read-only as uid 1000"
  vitest run --project image --reporter=default --reporter=json --outputFile.json="$results/image.json" || status=$?
fi
if [ "$status" -eq 0 ]; then
  step "integration tests (real control plane, RabbitMQ, SQS, Prometheus)"
  vitest run --project integration --reporter=default --reporter=json --outputFile.json="$results/integration.json" || status=$?
fi

# One closing line for CI, summed over both runs.
node -e '
  const fs = require("node:fs"), path = require("node:path");
  let passed = 0, failed = 0, skipped = 0;
  for (const f of fs.readdirSync(process.argv[1])) {
    const r = JSON.parse(fs.readFileSync(path.join(process.argv[1], f), "utf8"));
    passed += r.numPassedTests; failed += r.numFailedTests; skipped += r.numPendingTests + r.numTodoTests;
  }
  console.log(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
' "$results"
exit "$status"
