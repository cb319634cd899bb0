#!/usr/bin/env bash
# Install the pinned Helm into <repo>/tools/bin (git-ignored), built from source through
# the Go module proxy: these machines reach package registries only, never a release page.
# Skips the build when the pinned version is already there. Prints the binary's path.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.19.0}"
repo_root="$(cd "$(dirname "$0")/../.." && pwd)"
bin_dir="${repo_root}/tools/bin"
helm="${bin_dir}/helm"

if [[ -x "$helm" ]] && "$helm" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"; then
  echo "$helm"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "install-helm: Go is needed to build Helm ${HELM_VERSION} (apt-get install golang-go)" >&2
  exit 1
fi

mkdir -p "$bin_dir"
echo "install-helm: building helm ${HELM_VERSION} into ${bin_dir} (a few minutes the first time)" >&2
# -trimpath and no VCS stamping: the build does not depend on where the module cache is.
# The ldflags do what Helm's own Makefile does: set the version `helm version` reports and
# the default Kubernetes version (that of the client-go Helm is built with, 1.34 for
# v3.19), which `helm template` and `helm lint` assume when no --kube-version is given.
KUBE_MAJOR="${HELM_KUBE_MAJOR:-1}"
KUBE_MINOR="${HELM_KUBE_MINOR:-34}"
ldflags=(
  -s -w
  -X "helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
  -X "helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=${KUBE_MAJOR}"
  -X "helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${KUBE_MINOR}"
  -X "helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=${KUBE_MAJOR}"
  -X "helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${KUBE_MINOR}"
)
GOBIN="$bin_dir" GOFLAGS="${GOFLAGS:-} -buildvcs=false" CGO_ENABLED=0 \
  go install -trimpath -ldflags "${ldflags[*]}" "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}" >&2
echo "$helm"
