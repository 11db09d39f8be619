#!/usr/bin/env bash
# Dynamic volumes for the embedded cluster: Rancher's local-path provisioner (the one kind
# ships), built from the Go module proxy and run as a host process, plus the default
# StorageClass `local-path`. hack/cluster.sh runs `up` and `down`; see docs/cluster.md.
#
#   hack/local-path.sh up       build once (cached), apply its objects, start it if not running
#   hack/local-path.sh down     stop it (its PersistentVolumes' directories go with `cluster.sh down`)
#   hack/local-path.sh status   whether it runs
#   hack/local-path.sh build    build the binary only (cached); print its path
#
# Volumes are directories under ${STATE}/volumes/local-path; claims bind at once
# (Immediate) and may be ReadWriteOnce, ReadOnlyMany or ReadWriteMany (one node: its
# directory is a shared filesystem). Its identity is the ServiceAccount local-path-storage/local-path-provisioner with
# upstream's RBAC, through a kubeconfig holding that account's token; its helper pods
# (mkdir/rm of a volume's directory on the node) run in the namespace local-path-storage,
# which admits them at Pod Security level `privileged` (they mount a hostPath), with the
# node's own image ${BASE_IMAGE} (hack/images.sh loads it).
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN="${CACHE}/local-path-provisioner-v${LOCAL_PATH_VERSION}/local-path-provisioner"
NS=local-path-storage
SA=local-path-provisioner
RUN="${STATE}/run"
PIDFILE="${RUN}/local-path-provisioner.pid"
LOG="${LOGS}/local-path-provisioner.log"
# Its own kubeconfig (the ServiceAccount's token), next to the other components' ones.
KUBECONFIG_LP="${STATE}/config/local-path-provisioner.kubeconfig"
# Where volumes are made: under the state dir, so `cluster.sh down` removes them with the
# rest of the cluster's data.
VOLUMES="${STATE}/volumes/local-path"

kc() { "${K8S_BIN}/kubectl" --kubeconfig "${STATE}/kubeconfig" "$@"; }
running() { pidfile_pid "${PIDFILE}" "${BIN}" >/dev/null; }

ensure_binary() {
  go_install_once "${BIN}" "github.com/rancher/local-path-provisioner@v${LOCAL_PATH_VERSION}" \
    "${LOGS}/local-path-build.log"
}

# The objects of upstream's deploy/local-path-storage.yaml less its Deployment (this runs
# on the host), with our paths and image, a token Secret for the host process, and helper
# pods that ask for no more than a hostPath needs.
manifest() {
  cat <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: ${NS}
  labels:
    # Helper pods mount the node's volume directory (hostPath): only "privileged" admits that.
    pod-security.kubernetes.io/enforce: privileged
    pod-security.kubernetes.io/warn: privileged
    pod-security.kubernetes.io/audit: privileged
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: ${SA}, namespace: ${NS}}
automountServiceAccountToken: false
---
apiVersion: v1
kind: Secret
metadata:
  name: ${SA}-token
  namespace: ${NS}
  annotations: {kubernetes.io/service-account.name: ${SA}}
type: kubernetes.io/service-account-token
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: local-path-provisioner, namespace: ${NS}}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, patch, update, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: local-path-provisioner, namespace: ${NS}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: local-path-provisioner}
subjects: [{kind: ServiceAccount, name: ${SA}, namespace: ${NS}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: local-path-provisioner}
rules:
- apiGroups: [""]
  resources: [nodes, persistentvolumeclaims, configmaps, pods, pods/log]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [persistentvolumes]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [storage.k8s.io]
  resources: [storageclasses]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: local-path-provisioner}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: local-path-provisioner}
subjects: [{kind: ServiceAccount, name: ${SA}, namespace: ${NS}}]
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local-path
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: rancher.io/local-path
# Immediate: a claim binds when it is made, as "helm install --wait" expects of the chart's.
volumeBindingMode: Immediate
reclaimPolicy: Delete
---
apiVersion: v1
kind: ConfigMap
metadata: {name: local-path-config, namespace: ${NS}}
data:
  # One node: its directory is trivially shared by "all" nodes, so the shared-filesystem
  # mode applies: volumes need no selected node (Immediate binding) and may be
  # ReadWriteMany/ReadOnlyMany, and their PersistentVolumes carry no node affinity.
  config.json: |-
    {"sharedFileSystemPath": "${VOLUMES}", "cmdTimeoutSeconds": 60}
  setup: |-
    #!/bin/sh
    set -eu
    mkdir -m 0777 -p "\$VOL_DIR"
  teardown: |-
    #!/bin/sh
    set -eu
    rm -rf "\$VOL_DIR"
  helperPod.yaml: |-
    apiVersion: v1
    kind: Pod
    metadata:
      name: helper-pod
    spec:
      automountServiceAccountToken: false
      containers:
      - name: helper-pod
        image: docker.io/${BASE_IMAGE}
        imagePullPolicy: Never
        # root owns the node directory; it needs no capability but DAC_OVERRIDE, to remove
        # what pods running as other users wrote into a volume.
        securityContext:
          runAsUser: 0
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL], add: [DAC_OVERRIDE]}
          seccompProfile: {type: RuntimeDefault}
EOF
}

write_kubeconfig() {
  # A new token (the cluster was recreated): restart with it.
  if write_sa_kubeconfig "${NS}" "${SA}" "${KUBECONFIG_LP}" && running; then
    stop_pid "$(cat "${PIDFILE}")" 10 || true
  fi
}

# The process answers as its ServiceAccount: the token works and RBAC lets it list claims.
can_provision() {
  "${K8S_BIN}/kubectl" --kubeconfig "${KUBECONFIG_LP}" auth can-i create persistentvolumes >/dev/null 2>&1
}

cmd_up() {
  need_root "it writes the node's volume directories"
  ensure_binary
  mkdir -p "${VOLUMES}" "${RUN}" "${LOGS}" "$(dirname "${KUBECONFIG_LP}")"
  # A StorageClass's binding mode cannot change: replace one an earlier version made.
  local mode
  mode="$(kc get storageclass local-path -o jsonpath='{.volumeBindingMode}' 2>/dev/null || true)"
  if [[ -n "${mode}" && "${mode}" != Immediate ]]; then
    kc delete storageclass local-path >/dev/null
  fi
  manifest | kc apply -f - >/dev/null
  # It reads its ConfigMap once, at start: restart it when that changed.
  local applied
  applied="$(manifest | sha256sum | cut -d' ' -f1)"
  if running && [[ "$(cat "${RUN}/local-path.applied" 2>/dev/null)" != "${applied}" ]]; then
    log "configuration changed: restarting local-path-provisioner"
    stop_pid "$(cat "${PIDFILE}")" 10 || true
  fi
  echo "${applied}" >"${RUN}/local-path.applied"
  wait_until 60 0.5 sa_token_ready "${NS}" "${SA}" || die "the token Secret ${NS}/${SA}-token was not filled in"
  write_kubeconfig
  wait_until 30 0.5 can_provision || die "${NS}/${SA} may not create PersistentVolumes"
  if running; then
    log "local-path-provisioner already running"
    return 0
  fi
  log "starting local-path-provisioner (volumes in ${VOLUMES}, log ${LOG})"
  # Its own session (spawn): it outlives the shell or test run that started it.
  spawn "${PIDFILE}" "${LOG}" "${BIN}" start --kubeconfig "${KUBECONFIG_LP}" \
    --namespace "${NS}" --service-account-name "${SA}" --configmap-name local-path-config \
    --provisioner-name rancher.io/local-path --helper-image "docker.io/${BASE_IMAGE}"
  sleep 1
  running || { tail -20 "${LOG}" >&2; die "local-path-provisioner exited; see ${LOG}"; }
}

cmd_down() {
  if running; then stop_pid "$(cat "${PIDFILE}")" 10 || kill -KILL "$(cat "${PIDFILE}")" 2>/dev/null || true; fi
  rm -f "${PIDFILE}"
}

cmd_status() {
  local pid
  if pid="$(pidfile_pid "${PIDFILE}" "${BIN}")"; then
    printf '%-24s running (pid %s)\n' local-path-provisioner "${pid}"
  else
    printf '%-24s stopped\n' local-path-provisioner
  fi
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  build) ensure_binary && echo "${BIN}" ;;
  *) usage ;;
esac
