#!/usr/bin/env bash
# Helm for driftloop: the binary, built once from the Go module proxy, cached outside git.
# (The chart's CRD templates are generated with the other files: `make generate`.)
#
#   hack/helm.sh ensure          build helm ${HELM_VERSION} once (cached); print its path
#   hack/helm.sh path            print the path helm is (or will be) at
#   hack/helm.sh run ARGS...     run the cached helm (building it first when needed)
#
# Environment: DRIFTLOOP_CACHE (default ~/.cache/driftloop), GOPROXY.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# v3.20.x is built against the k8s.io v0.35 libraries, matching K8S_VERSION 1.35 (versions.env).
HELM_VERSION="${HELM_VERSION#v}"
HELM_DIR="${CACHE}/helm-v${HELM_VERSION}"
HELM_BIN="${HELM_DIR}/bin/helm"

cmd_ensure() {
  if [[ -x "${HELM_BIN}" ]] && "${HELM_BIN}" version --short 2>/dev/null | grep -q "^v${HELM_VERSION}"; then
    echo "${HELM_BIN}"
    return 0
  fi
  need_cmd go "Go is needed to build helm (go install helm.sh/helm/v3/cmd/helm)"
  # Serialise concurrent callers (parallel test sessions); the second one finds the binary.
  lock 9 "${HELM_DIR}/.lock"
  if [[ ! -x "${HELM_BIN}" ]]; then
    local minor
    minor="$(cut -d. -f2 <<<"${K8S_VERSION}")"
    local pkg=helm.sh/helm/v3
    # The same -X flags as helm's own Makefile: the version, and the Kubernetes version
    # `helm lint`/`helm template` assume when no cluster is asked (.Capabilities.KubeVersion).
    local ldflags="-s -w -X ${pkg}/internal/version.version=v${HELM_VERSION}"
    ldflags+=" -X ${pkg}/internal/version.gitTreeState=clean"
    ldflags+=" -X ${pkg}/pkg/lint/rules.k8sVersionMajor=1 -X ${pkg}/pkg/lint/rules.k8sVersionMinor=${minor}"
    ldflags+=" -X ${pkg}/pkg/chartutil.k8sVersionMajor=1 -X ${pkg}/pkg/chartutil.k8sVersionMinor=${minor}"
    log "building helm v${HELM_VERSION} from the Go module proxy (a few minutes, once) -> ${HELM_BIN}"
    GOBIN="${HELM_DIR}/bin.tmp" go_local install -trimpath -ldflags "${ldflags}" "${pkg}/cmd/helm@v${HELM_VERSION}" >&2
    mkdir -p "${HELM_DIR}/bin"
    mv "${HELM_DIR}/bin.tmp/helm" "${HELM_BIN}"
    rmdir "${HELM_DIR}/bin.tmp"
  fi
  "${HELM_BIN}" version --short >&2
  echo "${HELM_BIN}"
}

main() {
  local cmd=${1:-} bin
  shift || true
  case "$cmd" in
    ensure) cmd_ensure ;;
    path) echo "${HELM_BIN}" ;;
    run) bin="$(cmd_ensure)"; exec "${bin}" "$@" ;;
    *) usage ;;
  esac
}

main "$@"
