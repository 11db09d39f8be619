#!/usr/bin/env bash
# driftloop embedded Kubernetes cluster: a real single-node cluster on this machine,
# built from upstream Go modules (hack/build-k8s.sh) plus Debian's containerd, runc
# and CNI plugins. See docs/cluster.md for what it runs and its limits.
#
#   hack/cluster.sh up                 build (cached) + start everything, wait until Ready
#   hack/cluster.sh down               stop everything, remove pods/netns/iptables rules
#   hack/cluster.sh purge              down + remove the whole state dir (PKI, images)
#   hack/cluster.sh env                print `export KUBECONFIG=...` (and PATH for kubectl)
#   hack/cluster.sh status             show what runs
#   hack/cluster.sh load-image IMAGE   import a docker image into the node's containerd
#   hack/cluster.sh restart-apiserver [DOWN_SECS]
#                                      SIGKILL kube-apiserver, wait DOWN_SECS, start it again
#   hack/cluster.sh kubectl ARGS...    run our kubectl against the cluster
#
# Must run as root (containers, cgroups, iptables). Every step is idempotent.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN="${K8S_BIN}"
PKI="${STATE}/pki"
RUN="${STATE}/run"               # pid files
CFG="${STATE}/config"
KUBECONFIG_OUT="${STATE}/kubeconfig"
CTR=(ctr --address "${CTRD_SOCK}" -n k8s.io)
# The pod bridge. Its address (NODE_IP) doubles as the node IP and the API server's
# advertise address, so the cluster never depends on (or sends anything through) eth0.
BRIDGE=dl0
POD_PREFIX="${POD_CIDR#*/}"
API_PORT=6443
WAIT_SECS="${DRIFTLOOP_WAIT_SECS:-180}"

# ---------------------------------------------------------------------------
# host prerequisites
# ---------------------------------------------------------------------------
ensure_host_packages() {
  # docker.io + debootstrap are for hack/images.sh; installed here too so a fresh
  # machine needs one apt run. Debian's package starts nothing here (no systemd), and a
  # stray system containerd does not matter: ours has its own socket, root and state dirs.
  ensure_packages containerd runc containernetworking-plugins iptables conntrack socat openssl \
    curl iproute2 ethtool kmod util-linux procps docker.io debootstrap
}

ensure_binaries() {
  if [[ ! -f "${K8S_STAMP}" ]]; then
    log "Kubernetes v${K8S_VERSION} binaries not cached; building (cold: tens of minutes)"
    "${HACK_DIR}/build-k8s.sh"
  fi
}

ensure_sysctls() {
  # br_netfilter: bridged pod traffic must traverse iptables for kube-proxy's Service DNAT.
  [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] || modprobe br_netfilter 2>/dev/null || true
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 || log "warning: cannot set bridge-nf-call-iptables"
  # Forwarding between pods on the bridge after DNAT; outbound pod traffic is dropped below.
  sysctl -qw net.ipv4.ip_forward=1
}

# ---------------------------------------------------------------------------
# network: bridge, routes and the fence that keeps pod traffic on this machine
# ---------------------------------------------------------------------------
ensure_network() {
  if ! ip link show "${BRIDGE}" >/dev/null 2>&1; then
    ip link add "${BRIDGE}" type bridge
  fi
  ip addr replace "${NODE_IP}/${POD_PREFIX}" dev "${BRIDGE}"
  ip link set "${BRIDGE}" up
  # Service ClusterIPs are virtual (kube-proxy DNATs them). Route the whole range into
  # the bridge so that, should a rule be missing, a packet to a ClusterIP stays on this
  # machine instead of following the default route out of eth0.
  ip route replace "${SERVICE_CIDR}" dev "${BRIDGE}" src "${NODE_IP}"
  # Fence: pods may talk to each other (also via Services) and to this host (INPUT
  # chain, e.g. the API server); anything a pod would forward elsewhere is dropped.
  iptables -w -N DRIFTLOOP-FWD 2>/dev/null || iptables -w -F DRIFTLOOP-FWD
  iptables -w -A DRIFTLOOP-FWD -i "${BRIDGE}" -o "${BRIDGE}" -j ACCEPT
  iptables -w -A DRIFTLOOP-FWD -i "${BRIDGE}" -j DROP
  iptables -w -A DRIFTLOOP-FWD -o "${BRIDGE}" -j DROP
  iptables -w -C FORWARD -j DRIFTLOOP-FWD 2>/dev/null || iptables -w -I FORWARD 1 -j DRIFTLOOP-FWD
}

# purge_chains PREFIX: delete every rule jumping to a chain named PREFIX*, then those chains,
# in the IPv4 and IPv6 filter/nat/mangle tables. Nothing else is touched.
purge_chains() {
  local prefix=$1 ipt table rule chain
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for table in filter nat mangle; do
      "$ipt" -w -t "$table" -S >/dev/null 2>&1 || continue
      "$ipt" -w -t "$table" -S | awk -v p="$prefix" '$1 == "-A" && index($2, p) != 1 {
          for (i = 3; i <= NF; i++) if ($i == "-j" && index($(i+1), p) == 1) { print; break } }' |
        sed 's/^-A/-D/' | while read -r rule; do
          eval "$ipt -w -t $table $rule" 2>/dev/null || true
        done
      for chain in $("$ipt" -w -t "$table" -S | awk -v p="$prefix" '$1 == "-N" && index($2, p) == 1 {print $2}'); do
        "$ipt" -w -t "$table" -F "$chain" 2>/dev/null || true
      done
      for chain in $("$ipt" -w -t "$table" -S | awk -v p="$prefix" '$1 == "-N" && index($2, p) == 1 {print $2}'); do
        "$ipt" -w -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
}

cleanup_network() {
  iptables -w -D FORWARD -j DRIFTLOOP-FWD 2>/dev/null || true
  iptables -w -F DRIFTLOOP-FWD 2>/dev/null || true
  iptables -w -X DRIFTLOOP-FWD 2>/dev/null || true
  # kube-proxy removes its own KUBE-* chains.
  if [[ -x "${BIN}/kube-proxy" ]]; then "${BIN}/kube-proxy" --cleanup --proxy-mode=iptables >/dev/null 2>&1 || true; fi
  # Whatever kube-proxy left, the kubelet's own chains (KUBE-FIREWALL, KUBE-KUBELET-CANARY,
  # KUBE-IPTABLES-HINT) and the CNI portmap/bridge chains (CNI-*).
  purge_chains KUBE-
  purge_chains CNI-
  # Pod network namespaces made by containerd's CRI (named cni-<uuid>).
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^cni-/ {print $1}'); do
    ip netns delete "$ns" 2>/dev/null || true
  done
  ip route del "${SERVICE_CIDR}" dev "${BRIDGE}" 2>/dev/null || true
  ip link delete "${BRIDGE}" 2>/dev/null || true
  conntrack -D -s "${POD_CIDR}" >/dev/null 2>&1 || true
  conntrack -D -d "${POD_CIDR}" >/dev/null 2>&1 || true
}

# ---------------------------------------------------------------------------
# PKI (openssl): CA, serving and client certificates, service-account keys
# ---------------------------------------------------------------------------
# mkcert NAME CN [ORG] [SANS(comma list for subjectAltName)] [usage: client|server|both] [CA]
mkcert() {
  local name=$1 cn=$2 org=${3:-} sans=${4:-} usage=${5:-client} ca=${6:-ca}
  [[ -f "${PKI}/${name}.crt" ]] && return 0
  local subj="/CN=${cn}"
  [[ -n "$org" ]] && subj="/O=${org}${subj}"
  local eku="clientAuth"
  [[ $usage == server ]] && eku="serverAuth"
  [[ $usage == both ]] && eku="serverAuth,clientAuth"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=${eku}"
    [[ -n "$sans" ]] && echo "subjectAltName=${sans}"
  } > "${PKI}/${name}.ext"
  openssl genrsa -out "${PKI}/${name}.key" 2048 2>/dev/null
  openssl req -new -key "${PKI}/${name}.key" -subj "$subj" -out "${PKI}/${name}.csr" 2>/dev/null
  openssl x509 -req -in "${PKI}/${name}.csr" -CA "${PKI}/${ca}.crt" -CAkey "${PKI}/${ca}.key" \
    -CAcreateserial -days 3650 -sha256 -extfile "${PKI}/${name}.ext" -out "${PKI}/${name}.crt" 2>/dev/null
  rm -f "${PKI}/${name}.csr" "${PKI}/${name}.ext"
}

# mkca NAME CN: a self-signed CA (kept once made)
mkca() {
  local name=$1 cn=$2
  [[ -f "${PKI}/${name}.crt" ]] && return 0
  openssl genrsa -out "${PKI}/${name}.key" 2048 2>/dev/null
  openssl req -x509 -new -key "${PKI}/${name}.key" -subj "/CN=${cn}" -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "${PKI}/${name}.crt" 2>/dev/null
}

ensure_pki() {
  mkdir -p "${PKI}"
  chmod 700 "${PKI}"
  [[ -f "${PKI}/ca.crt" ]] || log "creating self-signed CAs and certificates in ${PKI}"
  mkca ca driftloop-ca
  # The aggregation layer's own CA (as kubeadm does): the API server proxies to aggregated
  # APIs (metrics-server) with front-proxy-client, and they trust only this CA for it.
  mkca front-proxy-ca driftloop-front-proxy-ca
  mkcert front-proxy-client front-proxy-client "" "" client front-proxy-ca
  local host; host="$(hostname)"
  mkcert apiserver kube-apiserver "" \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,DNS:${host},IP:127.0.0.1,IP:${KUBERNETES_SERVICE_IP},IP:${NODE_IP}" server
  mkcert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  mkcert admin kubernetes-admin system:masters
  mkcert controller-manager system:kube-controller-manager
  mkcert scheduler system:kube-scheduler
  mkcert kube-proxy system:kube-proxy
  mkcert kubelet-client "system:node:${NODE_NAME}" system:nodes
  mkcert kubelet "${NODE_NAME}" "" "DNS:${NODE_NAME},DNS:localhost,IP:127.0.0.1,IP:${NODE_IP}" server
  if [[ ! -f "${PKI}/sa.key" ]]; then
    openssl genrsa -out "${PKI}/sa.key" 2048 2>/dev/null
    openssl rsa -in "${PKI}/sa.key" -pubout -out "${PKI}/sa.pub" 2>/dev/null
  fi
}

# write_kubeconfig FILE CERTNAME [SERVER]
write_kubeconfig() {
  local file=$1 cert=$2 server=${3:-https://${NODE_IP}:${API_PORT}}
  local tmp="${file}.tmp"
  cat > "$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: driftloop
  cluster:
    server: ${server}
    certificate-authority-data: $(base64 -w0 "${PKI}/ca.crt")
users:
- name: ${cert}
  user:
    client-certificate-data: $(base64 -w0 "${PKI}/${cert}.crt")
    client-key-data: $(base64 -w0 "${PKI}/${cert}.key")
contexts:
- name: driftloop
  context: {cluster: driftloop, user: ${cert}}
current-context: driftloop
EOF
  chmod 600 "$tmp"
  if cmp -s "$tmp" "$file"; then rm -f "$tmp"; else mv "$tmp" "$file"; fi
}

# put FILE < content: replace FILE only when the content differs. kube-proxy exits when
# its config file is written to ("content of the proxy server's configuration file was
# updated"), so an idempotent `up` must not touch unchanged files.
put() {
  local file=$1 tmp
  tmp="$(mktemp "${file}.XXXXXX")"
  cat > "$tmp"
  if cmp -s "$tmp" "$file"; then rm -f "$tmp"; else chmod 0644 "$tmp"; mv "$tmp" "$file"; fi
}

# ---------------------------------------------------------------------------
# configuration files
# ---------------------------------------------------------------------------
write_configs() {
  mkdir -p "${CFG}" "${STATE}/cni/net.d" "${STATE}/cni/ipam"
  write_kubeconfig "${KUBECONFIG_OUT}" admin
  write_kubeconfig "${CFG}/controller-manager.kubeconfig" controller-manager
  write_kubeconfig "${CFG}/scheduler.kubeconfig" scheduler
  write_kubeconfig "${CFG}/kube-proxy.kubeconfig" kube-proxy
  write_kubeconfig "${CFG}/kubelet.kubeconfig" kubelet-client

  # Pod Security admission: cluster default enforces "baseline" and warns/audits
  # "restricted"; namespaces opt into "restricted" with the usual labels.
  put "${CFG}/admission.yaml" <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults: {enforce: baseline, enforce-version: latest, audit: restricted, audit-version: latest, warn: restricted, warn-version: latest}
    exemptions: {usernames: [], runtimeClasses: [], namespaces: [kube-system]}
EOF

  local snapshotter; snapshotter="$(pick_snapshotter)"
  echo "${snapshotter}" > "${CFG}/snapshotter"   # hack/images.sh imports with the same one
  put "${CFG}/containerd.toml" <<EOF
# driftloop node containerd: own socket/root/state, so it never collides with a
# system containerd or the one dockerd (hack/images.sh) manages.
version = 2
root = "${STATE}/containerd"
state = "${CTRD_STATE}"
[grpc]
  address = "${CTRD_SOCK}"
[plugins."io.containerd.grpc.v1.cri"]
  # Built locally from hack/pause (no registry is reachable).
  sandbox_image = "docker.io/${PAUSE_IMAGE}"
  enable_unprivileged_ports = false
  # Root here lacks CAP_SYS_RESOURCE, so no process may lower its oom_score_adj (runc
  # failed with "can't get final child's PID from pipe: EOF" when the CRI asked for -998
  # for sandboxes). Clamp every requested value to containerd's own (0), as rootless does.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "${snapshotter}"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${STATE}/cni/net.d"
EOF

  # Bridge + host-local IPAM + portmap. The bridge already exists (ensure_network);
  # no ipMasq: pods have no route off this machine (see DRIFTLOOP-FWD).
  put "${STATE}/cni/net.d/10-driftloop.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "driftloop",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "${BRIDGE}",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "${STATE}/cni/ipam",
        "ranges": [[{"subnet": "${POD_CIDR}", "gateway": "${NODE_IP}"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF

  put "${CFG}/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "${PKI}/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "${PKI}/kubelet.crt"
tlsPrivateKeyFile: "${PKI}/kubelet.key"
containerRuntimeEndpoint: "unix://${CTRD_SOCK}"
# This machine has cgroup v1 (tmpfs at /sys/fs/cgroup) and no systemd.
cgroupDriver: cgroupfs
failCgroupV1: false
# No swap here, but never refuse to start because of it.
failSwapOn: false
memorySwap: {swapBehavior: NoSwap}
clusterDomain: cluster.local
# No clusterDNS: no CoreDNS image is available offline (docs/cluster.md).
healthzBindAddress: 127.0.0.1
healthzPort: 10248
address: ${NODE_IP}
readOnlyPort: 0
rotateCertificates: false
serializeImagePulls: false
# Small, shared CI disks: don't evict early, and never garbage-collect images. Every
# image here was loaded from docker (no registry can give it back), so a removed image
# (the pause image above all) would leave pods stuck in ContainerCreating.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# Tests create and delete many pods: report status quickly.
nodeStatusUpdateFrequency: 4s
syncFrequency: 10s
fileCheckFrequency: 10s
staticPodPath: ""
maxPods: 110
hairpinMode: hairpin-veth
protectKernelDefaults: false
makeIPTablesUtilChains: true
EOF

  put "${CFG}/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: "${CFG}/kube-proxy.kubeconfig"}
hostnameOverride: ${NODE_NAME}
clusterCIDR: ${POD_CIDR}
bindAddress: ${NODE_IP}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave conntrack sysctls alone (may be read-only in a VM).
conntrack: {maxPerCore: 0, min: 0}
iptables: {localhostNodePorts: false, syncPeriod: 10s, minSyncPeriod: 0s}
nodePortAddresses: ["${NODE_IP}/32"]
EOF
}

# overlayfs when the kernel lets us mount it on the state dir's filesystem, else native.
pick_snapshotter() {
  if [[ -n "${DRIFTLOOP_SNAPSHOTTER:-}" ]]; then echo "${DRIFTLOOP_SNAPSHOTTER}"; return; fi
  local t; t="$(mktemp -d "${STATE}/.ovl-probe.XXXXXX")"
  mkdir -p "$t"/{l,u,w,m}
  if mount -t overlay overlay -o "lowerdir=$t/l,upperdir=$t/u,workdir=$t/w" "$t/m" 2>/dev/null; then
    umount "$t/m"; rm -rf "$t"; echo overlayfs
  else
    rm -rf "$t"; echo native
  fi
}

# ---------------------------------------------------------------------------
# process management: pid files + logs, identity-checked before any kill
# ---------------------------------------------------------------------------
pid_of() { # prints pid if the component's recorded process is alive and is the binary we started
  pidfile_pid "${RUN}/$1.pid" "*/$(cat "${RUN}/$1.exe" 2>/dev/null)"
}

start() { # start NAME BINARY ARGS...
  local name=$1 bin=$2; shift 2
  if pid_of "$name" >/dev/null; then log "$name already running"; return 0; fi
  log "starting $name"
  mkdir -p "${RUN}" "${LOGS}"
  basename "$bin" > "${RUN}/${name}.exe"
  spawn "${RUN}/${name}.pid" "${LOGS}/${name}.log" "$bin" "$@"
}

stop() { # stop NAME [timeout]
  local name=$1 timeout=${2:-20} pid
  pid="$(pid_of "$name")" || { rm -f "${RUN}/${name}.pid"; return 0; }
  log "stopping $name (pid $pid)"
  stop_pid "$pid" "$timeout" || { log "$name did not stop in ${timeout}s; SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; sleep 0.5; }
  rm -f "${RUN}/${name}.pid"
}

# up_or_exited DESCRIPTION COMPONENT COMMAND...: COMMAND succeeds (quietly); dies when
# COMPONENT exited.
up_or_exited() {
  local what=$1 comp=$2; shift 2
  "$@" >/dev/null 2>&1 && return 0
  if [[ -n "$comp" ]] && ! pid_of "$comp" >/dev/null; then
    tail -n 30 "${LOGS}/${comp}.log" >&2 || true
    die "$comp exited while waiting for $what (log: ${LOGS}/${comp}.log)"
  fi
  return 1
}

wait_for() { # wait_for DESCRIPTION COMPONENT COMMAND...
  local what=$1 comp=$2; shift 2
  if ! wait_until "${WAIT_SECS}" 0.5 up_or_exited "$what" "$comp" "$@"; then
    [[ -n "$comp" ]] && tail -n 30 "${LOGS}/${comp}.log" >&2
    die "timed out waiting for $what"
  fi
  log "$what: ok"
}

https_ok() { # https_ok URL  (authenticated as admin)
  curl -fsS --max-time 5 --cacert "${PKI}/ca.crt" --cert "${PKI}/admin.crt" --key "${PKI}/admin.key" "$1"
}
insecure_ok() { curl -fsSk --max-time 5 "$1"; }
http_ok() { curl -fsS --max-time 5 "$1"; }
proxy_ok() { http_ok http://127.0.0.1:10256/livez || http_ok http://127.0.0.1:10256/healthz; }

kc() { "${BIN}/kubectl" --kubeconfig "${KUBECONFIG_OUT}" "$@"; }

# ---------------------------------------------------------------------------
# the pause (sandbox) image, built from hack/pause and imported as a docker-archive
# ---------------------------------------------------------------------------
ensure_pause_image() {
  if "${CTR[@]}" images ls -q 2>/dev/null | grep -qx "docker.io/${PAUSE_IMAGE}"; then return 0; fi
  log "building sandbox image ${PAUSE_IMAGE} from hack/pause"
  local d; d="$(mktemp -d)"
  (cd "${HACK_DIR}/pause" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod \
     go build -trimpath -ldflags='-s -w' -o "$d/rootfs/pause" .)
  # One layer with /pause, owned by root, deterministic mtime.
  tar --numeric-owner --owner=0 --group=0 --mtime='2000-01-01' -C "$d/rootfs" -cf "$d/layer.tar" pause
  local diffid; diffid="sha256:$(sha256sum "$d/layer.tar" | cut -d' ' -f1)"
  mkdir -p "$d/img/layer"; mv "$d/layer.tar" "$d/img/layer/layer.tar"
  cat > "$d/img/config.json" <<EOF
{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/pause"],"User":"65535:65535"},"rootfs":{"type":"layers","diff_ids":["${diffid}"]},"history":[{"created_by":"driftloop hack/pause"}]}
EOF
  local cfgsha; cfgsha="$(sha256sum "$d/img/config.json" | cut -d' ' -f1)"
  mv "$d/img/config.json" "$d/img/${cfgsha}.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["layer/layer.tar"]}]\n' "$cfgsha" "${PAUSE_IMAGE}" > "$d/img/manifest.json"
  tar -C "$d/img" -cf "$d/pause.tar" .
  "${CTR[@]}" images import --snapshotter "$(cat "${CFG}/snapshotter")" "$d/pause.tar" >/dev/null
  # Don't let kubelet image GC remove the sandbox image.
  "${CTR[@]}" images label "docker.io/${PAUSE_IMAGE}" io.cri-containerd.pinned=pinned >/dev/null 2>&1 || true
  rm -rf "$d"
}

# ---------------------------------------------------------------------------
# up / down / status
# ---------------------------------------------------------------------------
cluster_ready() {
  pid_of etcd >/dev/null && pid_of kube-apiserver >/dev/null && pid_of kube-controller-manager >/dev/null &&
    pid_of kube-scheduler >/dev/null && pid_of containerd >/dev/null && pid_of kubelet >/dev/null &&
    pid_of kube-proxy >/dev/null && https_ok "https://${NODE_IP}:${API_PORT}/readyz" >/dev/null 2>&1 &&
    kc get node "${NODE_NAME}" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True
}

# The kube-apiserver, on the bridge address only (never on the machine's own interfaces);
# returns once /readyz answers. `up` and `restart-apiserver` share it.
start_apiserver() {
  start kube-apiserver "${BIN}/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:2379 \
    --bind-address="${NODE_IP}" --secure-port=${API_PORT} --advertise-address="${NODE_IP}" \
    --tls-cert-file="${PKI}/apiserver.crt" --tls-private-key-file="${PKI}/apiserver.key" \
    --client-ca-file="${PKI}/ca.crt" \
    --kubelet-client-certificate="${PKI}/apiserver-kubelet-client.crt" \
    --kubelet-client-key="${PKI}/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="${PKI}/ca.crt" --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="${PKI}/sa.pub" --service-account-signing-key-file="${PKI}/sa.key" \
    --api-audiences=https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range="${SERVICE_CIDR}" \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction \
    --admission-control-config-file="${CFG}/admission.yaml" \
    --requestheader-client-ca-file="${PKI}/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="${PKI}/front-proxy-client.crt" \
    --proxy-client-key-file="${PKI}/front-proxy-client.key" \
    --enable-aggregator-routing=true \
    --allow-privileged=true --profiling=false --v=1
  wait_for "kube-apiserver /readyz" kube-apiserver https_ok "https://${NODE_IP}:${API_PORT}/readyz"
}

cmd_up() {
  need_root "containers, cgroups, iptables"
  if [[ -f "${KUBECONFIG_OUT}" ]] && cluster_ready; then
    log "cluster already up"
    # Nothing can pull it back from a registry if it went missing (e.g. removed under
    # disk pressure): without it no pod starts.
    ensure_pause_image
    # A cluster started before the aggregation layer was configured: restart its API
    # server with the flags (metrics-server needs them).
    if ! tr '\0' ' ' <"/proc/$(pid_of kube-apiserver)/cmdline" | grep -q -- --proxy-client-cert-file; then
      log "restarting kube-apiserver with the aggregation layer's flags"
      ensure_pki
      stop kube-apiserver
      start_apiserver
    fi
    "${HACK_DIR}/local-path.sh" up
    "${HACK_DIR}/metrics-server.sh" up
    cmd_env
    return 0
  fi
  local t0=$SECONDS
  # Nothing of ours runs but an earlier run left state (a killed session, a crash, a
  # reboot): clean it up like `down` so this start is as fresh as the first one.
  local c any=""
  for c in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy; do
    pid_of "$c" >/dev/null && any=1
  done
  if [[ -z "$any" && ( -d "${STATE}/etcd" || -d "${RUN}" || -d "${CTRD_STATE}" ) ]]; then
    log "leftovers of an earlier run found: cleaning up first"
    cmd_down
  fi
  ensure_host_packages
  ensure_binaries
  mkdir -p "${STATE}" "${LOGS}" "${RUN}" "${STATE}/etcd" "${STATE}/kubelet"
  ensure_sysctls
  ensure_network
  ensure_pki
  write_configs

  # --- etcd (loopback only, plain HTTP: nothing but the API server talks to it) ---
  start etcd "${BIN}/etcd" --name driftloop --data-dir "${STATE}/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster driftloop=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
    --unsafe-no-fsync --snapshot-count 10000 --log-level warn
  wait_for "etcd healthy" etcd http_ok http://127.0.0.1:2381/health

  start_apiserver

  # --- controllers and scheduler (all default controllers; SA tokens need the key + root CA) ---
  start kube-controller-manager "${BIN}/kube-controller-manager" \
    --kubeconfig="${CFG}/controller-manager.kubeconfig" \
    --authentication-kubeconfig="${CFG}/controller-manager.kubeconfig" \
    --authorization-kubeconfig="${CFG}/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --controllers='*' \
    --use-service-account-credentials=true \
    --service-account-private-key-file="${PKI}/sa.key" --root-ca-file="${PKI}/ca.crt" \
    --cluster-signing-cert-file="${PKI}/ca.crt" --cluster-signing-key-file="${PKI}/ca.key" \
    --service-cluster-ip-range="${SERVICE_CIDR}" --allocate-node-cidrs=false \
    --profiling=false --v=1
  start kube-scheduler "${BIN}/kube-scheduler" \
    --kubeconfig="${CFG}/scheduler.kubeconfig" \
    --authentication-kubeconfig="${CFG}/scheduler.kubeconfig" \
    --authorization-kubeconfig="${CFG}/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --profiling=false --v=1

  # --- node: containerd, sandbox image, kubelet, kube-proxy ---
  mkdir -p "${CTRD_STATE}"
  start containerd /usr/bin/containerd --config "${CFG}/containerd.toml"
  wait_for "containerd" containerd ctr --address "${CTRD_SOCK}" version
  ensure_pause_image
  start kubelet "${BIN}/kubelet" --config="${CFG}/kubelet.yaml" \
    --kubeconfig="${CFG}/kubelet.kubeconfig" --root-dir="${STATE}/kubelet" \
    --cert-dir="${PKI}/kubelet-certs" \
    --hostname-override="${NODE_NAME}" --node-ip="${NODE_IP}" --v=1
  start kube-proxy "${BIN}/kube-proxy" --config="${CFG}/kube-proxy.yaml" --v=1

  wait_for "kube-controller-manager /healthz" kube-controller-manager insecure_ok https://127.0.0.1:10257/healthz
  wait_for "kube-scheduler /healthz" kube-scheduler insecure_ok https://127.0.0.1:10259/healthz
  wait_for "kubelet /healthz" kubelet http_ok http://127.0.0.1:10248/healthz
  wait_for "kube-proxy healthy" kube-proxy proxy_ok
  wait_for "node ${NODE_NAME} registered" kubelet kc get node "${NODE_NAME}"
  wait_for "node ${NODE_NAME} Ready" kubelet kc wait --for=condition=Ready "node/${NODE_NAME}" --timeout=5s
  wait_for "default ServiceAccount" kube-controller-manager kc -n default get serviceaccount default
  wait_for "kubernetes Service" kube-apiserver kc -n default get endpointslices -l kubernetes.io/service-name=kubernetes -o name
  # Dynamic volumes and the default StorageClass (a host process, like the components above).
  "${HACK_DIR}/local-path.sh" up
  # Resource metrics for HorizontalPodAutoscalers (the aggregated metrics.k8s.io API).
  "${HACK_DIR}/metrics-server.sh" up
  log "cluster up in $((SECONDS - t0))s"
  cmd_env
}

no_pods() {
  [[ -z "$(kc get pods -A -o name 2>/dev/null)" ]] && [[ -z "$("${CTR[@]}" tasks ls -q 2>/dev/null)" ]]
}

# Unmount everything mounted below DIR, deepest first (awk: no failing grep under pipefail).
unmount_under() {
  local m
  awk -v d="$1" 'index($2, d "/") == 1 || $2 == d {print $2}' /proc/self/mounts | sort -r |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

cmd_down() {
  need_root "containers, cgroups, iptables"
  log "stopping cluster (state: ${STATE})"
  "${HACK_DIR}/metrics-server.sh" down
  "${HACK_DIR}/local-path.sh" down
  # Stop what would recreate pods, then let the kubelet tear pods down through CRI
  # (which also runs CNI DEL: veths, IPAM leases, portmap rules).
  stop kube-controller-manager
  stop kube-scheduler
  if pid_of kubelet >/dev/null && pid_of kube-apiserver >/dev/null && [[ -f "${KUBECONFIG_OUT}" ]]; then
    kc delete pods --all-namespaces --all --grace-period=1 --wait=false >/dev/null 2>&1 || true
    wait_until 40 1 no_pods || true
  fi
  stop kubelet
  stop kube-proxy
  stop kube-apiserver
  stop etcd
  # Anything left in containerd (a pod the kubelet didn't finish): kill tasks, remove containers.
  if pid_of containerd >/dev/null; then
    local c
    for c in $("${CTR[@]}" tasks ls -q 2>/dev/null); do
      "${CTR[@]}" tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true
    done
    sleep 1
    for c in $("${CTR[@]}" tasks ls -q 2>/dev/null); do "${CTR[@]}" tasks delete -f "$c" >/dev/null 2>&1 || true; done
    for c in $("${CTR[@]}" containers ls -q 2>/dev/null); do "${CTR[@]}" containers delete "$c" >/dev/null 2>&1 || true; done
  fi
  stop containerd
  # containerd-shim processes of *our* containerd (identified by its socket address).
  local p
  for p in $(pgrep -f containerd-shim 2>/dev/null || true); do
    if tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -q -- "${CTRD_SOCK}"; then kill -KILL "$p" 2>/dev/null || true; fi
  done
  # Container processes that outlived their shim (e.g. after a killed session) are in our
  # kubelet's kubepods cgroups; kill exactly those, then remove the empty cgroups.
  local cg
  for cg in /sys/fs/cgroup/*/kubepods; do
    [[ -d "$cg" ]] || continue
    find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u | xargs -r kill -KILL 2>/dev/null || true
  done
  sleep 0.5
  for cg in /sys/fs/cgroup/*/kubepods; do
    if [[ -d "$cg" ]]; then find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
  done
  # Volume mounts the kubelet left (projected SA tokens are tmpfs), then runtime state.
  unmount_under "${STATE}/kubelet"
  unmount_under "${CTRD_STATE}"
  unmount_under "${STATE}/containerd"
  cleanup_network
  # A restart starts from an empty cluster; PKI and containerd's image store are kept (cache).
  # volumes/: host directories behind the tests' hostPath PersistentVolumes (tests/support)
  # and the local-path provisioner's volumes (hack/local-path.sh).
  rm -rf "${STATE}/etcd" "${STATE}/kubelet" "${STATE}/cni/ipam" "${STATE}/volumes" "${CTRD_STATE}" "${RUN}"
  log "cluster down"
}

cmd_purge() {
  cmd_down
  # containerd's snapshot dirs may still be mounted read-only by a dead shim: unmounted above.
  rm -rf "${STATE}"
  log "removed ${STATE}"
}

cmd_env() {
  echo "export KUBECONFIG=${KUBECONFIG_OUT}"
  echo "export PATH=${BIN}:\$PATH"
}

cmd_status() {
  local c pid
  for c in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy; do
    if pid="$(pid_of "$c")"; then printf '%-24s running (pid %s)\n' "$c" "$pid"; else printf '%-24s stopped\n' "$c"; fi
  done
  "${HACK_DIR}/local-path.sh" status
  "${HACK_DIR}/metrics-server.sh" status
  if [[ -f "${KUBECONFIG_OUT}" ]] && https_ok "https://${NODE_IP}:${API_PORT}/readyz" >/dev/null 2>&1; then
    kc get nodes -o wide || true
  fi
}

# restart-apiserver [DOWN_SECS]: SIGKILL the kube-apiserver (as a crash would: watches
# end without a goodbye), keep it down DOWN_SECS seconds, start it again with the same
# flags and wait until ready. Starts it when it is not running; everything else is left
# alone. For fault-injection tests (tests/faults).
cmd_restart_apiserver() {
  local down=${1:-0} pid
  [[ $down =~ ^[0-9]+$ ]] || die "usage: $0 restart-apiserver [DOWN_SECS]"
  if [[ ! -f "${KUBECONFIG_OUT}" ]] || ! pid_of etcd >/dev/null; then die "the cluster is not up; run '$0 up' first"; fi
  if pid="$(pid_of kube-apiserver)"; then
    log "killing kube-apiserver (pid $pid)"
    kill -KILL "$pid" 2>/dev/null || true
    wait_until 10 0.1 pid_gone "$pid" || die "kube-apiserver (pid $pid) survived SIGKILL"
    rm -f "${RUN}/kube-apiserver.pid"
  fi
  sleep "$down"
  start_apiserver
}

cmd_load_image() {
  need_root "containers, cgroups, iptables"
  [[ $# -ge 1 ]] || die "usage: $0 load-image IMAGE..."
  pid_of containerd >/dev/null || die "node containerd is not running; run '$0 up' first"
  "${HACK_DIR}/images.sh" load "$@"
}

# Serialise commands that change the cluster: two concurrent `up`s (pytest + make) must
# not both start etcd; the second waits and then finds everything running.
lock_state() {
  need_root "containers, cgroups, iptables"
  lock 8 "${STATE}/.lock" 3600
}

main() {
  local cmd=${1:-}
  shift || true
  case "$cmd" in up | down | purge | load-image | restart-apiserver) lock_state ;; esac
  case "$cmd" in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    purge) cmd_purge "$@" ;;
    env) cmd_env ;;
    status) cmd_status ;;
    load-image) cmd_load_image "$@" ;;
    restart-apiserver) cmd_restart_apiserver "$@" ;;
    kubectl) kc "$@" ;;
    build) "${HACK_DIR}/build-k8s.sh" ;;
    *) usage ;;
  esac
}

main "$@"
