# shellcheck shell=bash
# shellcheck disable=SC2034 # its variables are used by the scripts that source it
# The one shared library of hack/*.sh; every script sources it first:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# It defines no commands of its own and starts nothing. It gives:
#   paths      HACK_DIR REPO_DIR, versions.env (the pinned versions), CACHE (build cache,
#              ${DRIFTLOOP_CACHE:-~/.cache/driftloop}), STATE/LOGS (the cluster's state dir),
#              K8S_DIR/K8S_BIN/K8S_STAMP (hack/build-k8s.sh's output), NODE_IP, CTRD_SOCK
#   messages   log MSG (stderr, "[<script> HH:MM:SS] MSG"), die MSG, usage (the script's header)
#   checks     need_root [WHY], need_cmd CMD WHY, ensure_packages DEBIAN-PACKAGE...
#   processes  lock FD FILE [SECS], spawn PIDFILE LOG CMD..., pidfile_pid PIDFILE [EXE-GLOB],
#              wait_until SECS INTERVAL CMD..., stop_pid PID SECS
#   Go         go_local ARGS... (go with the local toolchain only, niced)
# Callers keep `set -euo pipefail` themselves.

HACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "${HACK_DIR}/.." && pwd)"
# shellcheck source=versions.env
source "${HACK_DIR}/versions.env"
# A worktree testing its own images next to another's names them apart (the tests read
# the same variables: driftloop_testkit.driftloop.runtime_image).
RUNTIME_IMAGE="${DRIFTLOOP_RUNTIME_IMAGE:-${RUNTIME_IMAGE}}"
OPERATOR_IMAGE="${DRIFTLOOP_OPERATOR_IMAGE:-${OPERATOR_IMAGE}}"

CACHE="${DRIFTLOOP_CACHE:-$HOME/.cache/driftloop}"
STATE="${DRIFTLOOP_STATE:-/var/lib/driftloop-cluster}"
LOGS="${STATE}/logs"
# hack/build-k8s.sh builds the Kubernetes binaries and etcd here; the stamp marks a complete build.
K8S_DIR="${CACHE}/k8s-v${K8S_VERSION}"
K8S_BIN="${K8S_DIR}/bin"
K8S_STAMP="${K8S_DIR}/.complete-etcd-${ETCD_VERSION}"
# The pod bridge address (first host of POD_CIDR): node IP, API server address, and how pods
# reach servers on this host.
NODE_IP="${POD_CIDR%.*/*}.1"     # 10.88.0.0/16 -> 10.88.0.1
# The embedded cluster's containerd (hack/cluster.sh); NOT dockerd's own containerd. Its
# runtime state lives on a tmpfs-like path that vanishes on reboot.
CTRD_STATE="/run/driftloop-containerd"
CTRD_SOCK="${CTRD_STATE}/containerd.sock"
# The tag of log lines: the script's name (cluster, images, s3, ...).
LOG_TAG="$(basename "${BASH_SOURCE[-1]}" .sh)"

# ----------------------------------------------------------------------------- messages

log() { printf '[%s %(%H:%M:%S)T] %s\n' "${LOG_TAG}" -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# usage: print the calling script's header comment (its usage text) and exit 2.
usage() {
  awk 'NR == 1 { next } /^#/ { print; next } { exit }' "${BASH_SOURCE[-1]}" >&2
  exit 2
}

# ----------------------------------------------------------------------------- checks

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root${1:+ ($1)}"; }

need_cmd() { command -v "$1" >/dev/null || die "$2"; }

# ensure_packages PKG...: install the Debian packages that are missing (apt-get update only
# when something is).
ensure_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# ----------------------------------------------------------------------------- processes

# lock FD FILE [SECS]: hold an exclusive flock on FILE through file descriptor FD (8 or 9:
# spawn closes both, so no daemon keeps a lock) until the script exits. Waits for another
# holder, saying so, at most SECS seconds (default: as long as it takes).
lock() {
  local fd=$1 file=$2 secs=${3:-}
  mkdir -p "$(dirname "$file")"
  eval "exec ${fd}>\"\${file}\""
  flock -n "$fd" && return 0
  log "waiting for ${file}: another run holds it (a cold build takes minutes)"
  flock ${secs:+-w "$secs"} "$fd" || die "gave up waiting for ${file}"
}

# spawn PIDFILE LOG CMD...: start CMD as a daemon of its own (own session, so it survives the
# caller - pytest, make - and gets no terminal signals), output appended to LOG; its pid goes
# to PIDFILE ("-": not recorded). It inherits neither lock fd (see lock).
spawn() {
  local pidfile=$1 logfile=$2; shift 2
  setsid nohup "$@" >>"${logfile}" 2>&1 </dev/null 8>&- 9>&- &
  [[ ${pidfile} == - ]] || echo $! >"${pidfile}"
}

# pidfile_pid PIDFILE [EXE-GLOB]: print the pid in PIDFILE when that process is alive and its
# executable matches EXE-GLOB (a recycled pid is not ours); fail otherwise.
pidfile_pid() {
  local pidfile=$1 glob=${2:-*} pid exe
  [[ -f ${pidfile} ]] || return 1
  pid="$(cat "${pidfile}" 2>/dev/null)" || return 1
  [[ -n ${pid} && -d /proc/${pid} ]] || return 1
  exe="$(readlink "/proc/${pid}/exe" 2>/dev/null || true)"
  # shellcheck disable=SC2053 # a glob on purpose
  [[ ${exe% (deleted)} == ${glob} ]] || return 1
  echo "${pid}"
}

# wait_until SECS INTERVAL CMD...: run CMD every INTERVAL seconds until it succeeds (return 0)
# or SECS seconds have passed (return 1). CMD's output is the caller's; CMD may die itself.
wait_until() {
  local secs=$1 interval=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep "${interval}"
  done
}

pid_gone() { [[ ! -d /proc/$1 ]]; }

# stop_pid PID SECS: SIGTERM, then wait up to SECS seconds for the process to end; fails
# when it has not (the caller decides about SIGKILL).
stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  wait_until "$2" 0.2 pid_gone "$1"
}

# ----------------------------------------------------------------------------- Go

# go_local ARGS...: go with the local toolchain only (never download one: only the module
# proxy is reachable), module mode, static binaries, and niced for whoever shares the cores.
go_local() { GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0 nice -n 15 go "$@"; }

# go_install_once BIN PACKAGE@VERSION BUILDLOG: `go install` PACKAGE into BIN unless it is
# there (cached across runs); a temporary GOBIN, renamed when complete, so an interrupted
# build leaves no half binary. Concurrent callers wait on a lock beside BIN.
go_install_once() {
  local bin=$1 pkg=$2 buildlog=$3 name
  [[ -x "${bin}" ]] && return
  name="$(basename "${bin}")"
  need_cmd go "go is needed to build ${pkg}"
  lock 9 "$(dirname "${bin}")/.lock"
  [[ -x "${bin}" ]] && return
  mkdir -p "$(dirname "${buildlog}")"
  log "building ${pkg} from the Go module proxy (once; log ${buildlog})"
  local start=$SECONDS
  rm -rf "${bin}.tmp"
  if ! GOBIN="${bin}.tmp" GOFLAGS=-buildvcs=false go_local install -trimpath -ldflags '-s -w' \
    "${pkg}" >"${buildlog}" 2>&1; then
    tail -20 "${buildlog}" >&2
    die "${pkg} build failed"
  fi
  local built="${pkg%@*}"
  mv "${bin}.tmp/${built##*/}" "${bin}"
  rm -rf "${bin}.tmp"
  log "built ${name} in $((SECONDS - start))s"
}

# ----------------------------------------------------------------------------- host add-ons
# Cluster add-ons that run as host processes (hack/local-path.sh, hack/metrics-server.sh)
# act as a ServiceAccount through a kubeconfig holding its token Secret's token.

# sa_token_ready NS SA: the token Secret NS/SA-token has been filled in.
sa_token_ready() {
  local ns=$1 sa=$2
  [[ -n "$("${K8S_BIN}/kubectl" --kubeconfig "${STATE}/kubeconfig" -n "${ns}" get secret "${sa}-token" \
    -o jsonpath='{.data.token}' 2>/dev/null)" ]]
}

# write_sa_kubeconfig NS SA FILE: FILE holds a kubeconfig for NS/SA (its token Secret's
# token, the cluster CA). Succeeds when FILE changed (a new token: restart the process),
# fails when it was already up to date.
write_sa_kubeconfig() {
  local ns=$1 sa=$2 file=$3 token tmp="$3.tmp"
  token="$("${K8S_BIN}/kubectl" --kubeconfig "${STATE}/kubeconfig" -n "${ns}" get secret "${sa}-token" \
    -o jsonpath='{.data.token}' | base64 -d)"
  mkdir -p "$(dirname "${file}")"
  (
    umask 077
    cat >"${tmp}" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: driftloop
  cluster:
    server: https://${NODE_IP}:6443
    certificate-authority-data: $(base64 -w0 "${STATE}/pki/ca.crt")
users:
- name: ${sa}
  user: {token: ${token}}
contexts:
- name: driftloop
  context: {cluster: driftloop, user: ${sa}}
current-context: driftloop
KUBECONFIG
  )
  if cmp -s "${tmp}" "${file}"; then
    rm -f "${tmp}"
    return 1
  fi
  mv "${tmp}" "${file}"
}
