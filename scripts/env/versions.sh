# shellcheck shell=bash disable=SC2034 # (variables used by the scripts that source this file)
# The one place that names the versions the test environment builds and runs. Override with the environment
# variables (e.g. SLUICE_K8S_VERSION=1.35.4 npm test); supported Kubernetes releases: 1.35 to 1.37.
K8S_VERSION="${SLUICE_K8S_VERSION:-1.37.2}"
ETCD_VERSION="${SLUICE_ETCD_VERSION:-3.6.13}"
# The real second adapter behind proxy mode in test/integration/proxy-e2e.test.ts (build-prometheus-adapter.sh).
PROMETHEUS_ADAPTER_VERSION="${SLUICE_PROMETHEUS_ADAPTER_VERSION:-0.12.0}"
