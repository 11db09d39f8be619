#!/usr/bin/env bash
# Resource metrics for the embedded cluster: metrics-server, built from the Go module proxy
# and run as a host process (like hack/local-path.sh), serving the aggregated API
# metrics.k8s.io that the HorizontalPodAutoscaler controller and `kubectl top` read.
# hack/cluster.sh runs `up` and `down`; see docs/cluster.md.
#
#   hack/metrics-server.sh up       build once (cached), apply its objects, start it if not running
#   hack/metrics-server.sh down     stop it
#   hack/metrics-server.sh status   whether it runs
#   hack/metrics-server.sh build    build the binary only (cached); print its path
#
# The API server reaches it through the APIService v1beta1.metrics.k8s.io, the Service
# kube-system/metrics-server and an EndpointSlice naming the node's address (the process
# listens there, on METRICS_PORT). Its serving certificate is signed by the cluster CA (the
# APIService carries that CA, no insecureSkipTLSVerify); it verifies the kubelet's with the
# same CA. Its identity is the ServiceAccount kube-system/metrics-server with upstream's RBAC.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN="${CACHE}/metrics-server-v${METRICS_SERVER_VERSION}/metrics-server"
NS=kube-system
SA=metrics-server
METRICS_PORT=4443
RUN="${STATE}/run"
PKI="${STATE}/pki"
PIDFILE="${RUN}/metrics-server.pid"
LOG="${LOGS}/metrics-server.log"
KUBECONFIG_MS="${STATE}/config/metrics-server.kubeconfig"

kc() { "${K8S_BIN}/kubectl" --kubeconfig "${STATE}/kubeconfig" "$@"; }
running() { pidfile_pid "${PIDFILE}" "${BIN}" >/dev/null; }

ensure_binary() {
  go_install_once "${BIN}" "sigs.k8s.io/metrics-server/cmd/metrics-server@v${METRICS_SERVER_VERSION}" \
    "${LOGS}/metrics-server-build.log"
}

# Its serving certificate: the Service's DNS names (what the aggregator checks) and the
# node's address, signed by the cluster CA.
ensure_cert() {
  [[ -f "${PKI}/metrics-server.crt" ]] && return
  local ext="${PKI}/metrics-server.ext"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth"
    echo "subjectAltName=DNS:metrics-server.${NS}.svc,DNS:metrics-server.${NS}.svc.cluster.local,IP:${NODE_IP}"
  } >"${ext}"
  openssl genrsa -out "${PKI}/metrics-server.key" 2048 2>/dev/null
  openssl req -new -key "${PKI}/metrics-server.key" -subj "/CN=metrics-server.${NS}.svc" \
    -out "${PKI}/metrics-server.csr" 2>/dev/null
  openssl x509 -req -in "${PKI}/metrics-server.csr" -CA "${PKI}/ca.crt" -CAkey "${PKI}/ca.key" \
    -CAcreateserial -days 3650 -sha256 -extfile "${ext}" -out "${PKI}/metrics-server.crt" 2>/dev/null
  rm -f "${PKI}/metrics-server.csr" "${ext}"
}

# Upstream's components.yaml less its Deployment (this runs on the host), with a token
# Secret for the host process and an EndpointSlice in place of a pod selector.
manifest() {
  cat <<MANIFEST
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
kind: ClusterRole
metadata:
  name: system:aggregated-metrics-reader
  labels:
    rbac.authorization.k8s.io/aggregate-to-admin: "true"
    rbac.authorization.k8s.io/aggregate-to-edit: "true"
    rbac.authorization.k8s.io/aggregate-to-view: "true"
rules:
- apiGroups: [metrics.k8s.io]
  resources: [pods, nodes]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:metrics-server"}
rules:
- apiGroups: [""]
  resources: [nodes/metrics]
  verbs: [get]
- apiGroups: [""]
  resources: [pods, nodes]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:metrics-server"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:metrics-server"}
subjects: [{kind: ServiceAccount, name: ${SA}, namespace: ${NS}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "metrics-server:system:auth-delegator"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:auth-delegator"}
subjects: [{kind: ServiceAccount, name: ${SA}, namespace: ${NS}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: metrics-server-auth-reader, namespace: ${NS}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: extension-apiserver-authentication-reader}
subjects: [{kind: ServiceAccount, name: ${SA}, namespace: ${NS}}]
---
apiVersion: v1
kind: Service
metadata: {name: metrics-server, namespace: ${NS}}
spec:
  ports: [{name: https, port: 443, protocol: TCP, targetPort: ${METRICS_PORT}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: metrics-server-host
  namespace: ${NS}
  labels:
    kubernetes.io/service-name: metrics-server
    endpointslice.kubernetes.io/managed-by: driftloop.dev-hack
addressType: IPv4
ports: [{name: https, port: ${METRICS_PORT}, protocol: TCP}]
endpoints: [{addresses: ["${NODE_IP}"], conditions: {ready: true}}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
spec:
  group: metrics.k8s.io
  version: v1beta1
  groupPriorityMinimum: 100
  versionPriority: 100
  service: {name: metrics-server, namespace: ${NS}, port: 443}
  caBundle: $(base64 -w0 "${PKI}/ca.crt")
MANIFEST
}

# The aggregated API answers: the APIService is Available.
serving() {
  [[ "$(kc get apiservice v1beta1.metrics.k8s.io \
    -o jsonpath='{.status.conditions[?(@.type=="Available")].status}' 2>/dev/null)" == True ]]
}

cmd_up() {
  need_root "it reads the cluster's CA key"
  ensure_binary
  ensure_cert
  mkdir -p "${RUN}" "${LOGS}"
  manifest | kc apply -f - >/dev/null
  wait_until 60 0.5 sa_token_ready "${NS}" "${SA}" || die "the token Secret ${NS}/${SA}-token was not filled in"
  # A new token (the cluster was recreated): restart with it.
  if write_sa_kubeconfig "${NS}" "${SA}" "${KUBECONFIG_MS}" && running; then
    stop_pid "$(cat "${PIDFILE}")" 10 || true
  fi
  if ! running; then
    log "starting metrics-server on ${NODE_IP}:${METRICS_PORT} (log ${LOG})"
    spawn "${PIDFILE}" "${LOG}" "${BIN}" \
      --kubeconfig "${KUBECONFIG_MS}" \
      --authentication-kubeconfig "${KUBECONFIG_MS}" --authorization-kubeconfig "${KUBECONFIG_MS}" \
      --bind-address "${NODE_IP}" --secure-port "${METRICS_PORT}" \
      --tls-cert-file "${PKI}/metrics-server.crt" --tls-private-key-file "${PKI}/metrics-server.key" \
      --kubelet-certificate-authority "${PKI}/ca.crt" \
      --kubelet-preferred-address-types InternalIP --kubelet-use-node-status-port \
      --metric-resolution 15s
    sleep 1
    running || { tail -20 "${LOG}" >&2; die "metrics-server exited; see ${LOG}"; }
  fi
  wait_until 90 1 serving || { tail -20 "${LOG}" >&2; die "APIService v1beta1.metrics.k8s.io not Available; see ${LOG}"; }
  log "metrics-server serving metrics.k8s.io"
}

cmd_down() {
  if running; then stop_pid "$(cat "${PIDFILE}")" 10 || kill -KILL "$(cat "${PIDFILE}")" 2>/dev/null || true; fi
  rm -f "${PIDFILE}"
}

cmd_status() {
  local pid
  if pid="$(pidfile_pid "${PIDFILE}" "${BIN}")"; then
    printf '%-24s running (pid %s)\n' metrics-server "${pid}"
  else
    printf '%-24s stopped\n' metrics-server
  fi
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  build) ensure_binary && echo "${BIN}" ;;
  *) usage ;;
esac
