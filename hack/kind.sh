#!/usr/bin/env bash
# A kind cluster for people with Docker and internet access (the embedded cluster,
# hack/cluster.sh, is for machines without either). Same images, same tests:
#
#   hack/kind.sh up      create the kind cluster "driftloop" (pinned node image) and load images
#   hack/kind.sh load    (re)load the project's images into it
#   hack/kind.sh down    delete it
#
# Then: export KUBECONFIG=$(hack/kind.sh kubeconfig-path) and run the same pytest suites
# (set DRIFTLOOP_TEST_IMAGE to an image with python3, e.g. driftloop/base:bookworm or python:3.12-slim).
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CLUSTER=driftloop
KUBECONFIG_PATH="${DRIFTLOOP_KIND_KUBECONFIG:-$HOME/.kube/driftloop-kind}"
KIND="${KIND:-kind}"

ensure_kind() {
  command -v "$KIND" >/dev/null && return 0
  need_cmd go "install kind ${KIND_VERSION} (https://kind.sigs.k8s.io) or Go"
  log "installing kind ${KIND_VERSION} with go install"
  GOBIN="${HOME}/.local/bin" go install "sigs.k8s.io/kind@${KIND_VERSION}"
  KIND="${HOME}/.local/bin/kind"
}

exists() { "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; }

cmd_up() {
  ensure_kind
  if ! exists; then
    mkdir -p "$(dirname "$KUBECONFIG_PATH")"
    "$KIND" create cluster --name "$CLUSTER" --image "$KIND_NODE_IMAGE" --kubeconfig "$KUBECONFIG_PATH" --wait 120s
  fi
  cmd_load
  echo "export KUBECONFIG=${KUBECONFIG_PATH}"
}

cmd_load() {
  ensure_kind
  local img
  for img in "$BASE_IMAGE" "$RUNTIME_IMAGE" "$OPERATOR_IMAGE"; do
    if docker image inspect "$img" >/dev/null 2>&1; then
      "$KIND" load docker-image "$img" --name "$CLUSTER"
    else
      log "skipping $img (not built; see hack/images.sh build-all)"
    fi
  done
}

cmd_down() {
  ensure_kind
  if exists; then "$KIND" delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG_PATH"; fi
}

case "${1:-}" in
  up) cmd_up ;;
  load) cmd_load ;;
  down) cmd_down ;;
  kubeconfig-path) echo "$KUBECONFIG_PATH" ;;
  *) usage ;;
esac
