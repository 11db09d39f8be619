#!/usr/bin/env bash
# driftloop container images, built on this machine without any image registry.
#
#   hack/images.sh engine              start Debian's dockerd (vfs) in the background if needed
#   hack/images.sh engine-stop         stop that dockerd (images stay in /var/lib/docker)
#   hack/images.sh base                debootstrap bookworm + python3 -> driftloop/base:bookworm (cached)
#   hack/images.sh build NAME DIR [DOCKERFILE]
#                                      docker build DIR with BASE_IMAGE=driftloop/base:bookworm
#   hack/images.sh load IMAGE...       copy docker images into the embedded cluster's containerd
#   hack/images.sh build-all           base + driftloop/runtime:dev (+ driftloop/operator:dev), loaded
#                                      into the cluster when it runs, then tidy
#   hack/images.sh tidy                drop superseded images and old build cache (bounded disk use)
#
# Environment:
#   DRIFTLOOP_EXTRA_CA   a PEM bundle passed to builds as the BuildKit secret `extra_ca`
#                        (default: the host bundle /etc/ssl/certs/ca-certificates.crt, so
#                        pip inside a build trusts what the host trusts, e.g. a TLS proxy);
#                        "none" disables it.
#   DEBIAN_MIRROR        mirror for debootstrap (default: the host's apt mirror)
#   DRIFTLOOP_BUILD_CACHE  BuildKit cache kept by `tidy`, most recently used first (default 3GB)
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DOCKER_SOCK=/var/run/docker.sock
# Debian's docker CLI (20.10, same as the engine) has BuildKit built in; a newer CLI
# earlier in PATH (e.g. /usr/local/bin/docker 28.x) insists on the buildx plugin.
# Resolved in cmd_engine, after docker.io is installed (a fresh machine has only the other CLI).
DOCKER="${DOCKER:-}"

docker_up() { "${DOCKER}" info >/dev/null 2>&1; }

# The embedded cluster's containerd (CTRD_SOCK, hack/cluster.sh), not dockerd's own.
# A socket file outlives a killed containerd (a session or machine that stopped without
# `hack/cluster.sh down`), so ask the daemon itself rather than test for the file.
cluster_containerd_up() {
  [[ -S "${CTRD_SOCK}" ]] && timeout 10 ctr --address "${CTRD_SOCK}" version >/dev/null 2>&1
}

cmd_engine() {
  ensure_packages docker.io containerd runc
  if [[ -z "${DOCKER}" ]]; then
    DOCKER=docker
    [[ -x /usr/bin/docker ]] && DOCKER=/usr/bin/docker
  fi
  if docker_up; then return 0; fi
  mkdir -p "${LOGS}"
  log "starting dockerd (storage-driver vfs; log ${LOGS}/dockerd.log)"
  # vfs: works on any filesystem and inside this VM. No bridge/iptables: docker only
  # builds images here (builds use --network host), so it never touches the pod
  # network's iptables rules or the FORWARD policy. dockerd starts its own managed
  # containerd under /var/run/docker/containerd, separate from the cluster's.
  # dockerd writes its own pid file (/var/run/docker.pid, see cmd_engine_stop).
  spawn - "${LOGS}/dockerd.log" dockerd --storage-driver=vfs --iptables=false --ip-forward=false \
    --bridge=none --host "unix://${DOCKER_SOCK}"
  wait_until 60 0.5 docker_up && { log "dockerd ready"; return 0; }
  tail -n 30 "${LOGS}/dockerd.log" >&2
  die "dockerd did not become ready"
}

cmd_engine_stop() {
  # Only the dockerd we would have started: the one whose pid is in docker's pidfile.
  local pid
  pid="$(pidfile_pid /var/run/docker.pid '*/dockerd')" || { log "dockerd not running"; return 0; }
  log "stopping dockerd (pid $pid)"
  stop_pid "$pid" 20 || kill -KILL "$pid" 2>/dev/null || true
}

image_exists() { "${DOCKER}" image inspect "$1" >/dev/null 2>&1; }

debian_mirror() {
  if [[ -n "${DEBIAN_MIRROR:-}" ]]; then echo "${DEBIAN_MIRROR}"; return; fi
  local m
  m="$(grep -rhoE '(URIs:|^deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
        grep -oE 'https?://[^ ]+' | head -n1 || true)"
  echo "${m:-http://deb.debian.org/debian}"
}

cmd_base() {
  cmd_engine
  if image_exists "${BASE_IMAGE}"; then log "${BASE_IMAGE} exists"; return 0; fi
  local tarball="${CACHE}/base-${DEBIAN_SUITE}.tar"
  if [[ ! -f "${tarball}" ]]; then
    ensure_packages debootstrap
    local root; mkdir -p "${CACHE}"; root="$(mktemp -d "${CACHE}/.rootfs.XXXXXX")"
    log "debootstrap ${DEBIAN_SUITE} (minbase + python3) from $(debian_mirror)"
    nice debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      "${DEBIAN_SUITE}" "${root}" "$(debian_mirror)" >"${CACHE}/debootstrap.log" 2>&1 ||
      { tail -n 30 "${CACHE}/debootstrap.log" >&2; rm -rf "${root}"; die "debootstrap failed"; }
    # A conventional unprivileged user for Pod Security "restricted" (runAsUser 65532).
    grep -q '^nonroot:' "${root}/etc/passwd" || {
      echo 'nonroot:x:65532:65532:nonroot:/home/nonroot:/usr/sbin/nologin' >> "${root}/etc/passwd"
      echo 'nonroot:x:65532:' >> "${root}/etc/group"
      mkdir -p "${root}/home/nonroot" && chown 65532:65532 "${root}/home/nonroot"
    }
    # mktemp made the directory 0700; it becomes the image's "/", which must be 0755
    # or a non-root container user cannot reach anything.
    chmod 0755 "${root}"
    # Slim it: apt lists, caches, docs and man pages are not needed at run time.
    rm -rf "${root}"/var/lib/apt/lists/* "${root}"/var/cache/apt/*.bin "${root}"/var/cache/apt/archives/*.deb \
      "${root}"/usr/share/doc/* "${root}"/usr/share/man/* "${root}"/usr/share/info/* "${root}"/var/log/*.log
    tar --numeric-owner -C "${root}" -cf "${tarball}.tmp" .
    mv "${tarball}.tmp" "${tarball}"
    rm -rf "${root}"
  fi
  log "docker import ${tarball} -> ${BASE_IMAGE}"
  "${DOCKER}" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    "${tarball}" "${BASE_IMAGE}" >/dev/null
}

# Extra CA certificates for pip inside builds (a TLS-intercepting proxy, a private index).
# Passed the ways the Dockerfile accepts them:
#   RUN --mount=type=secret,id=extra_ca  -> --secret id=extra_ca,src=<bundle>  (a whole bundle)
#   ARG EXTRA_CA_CERT / ARG EXTRA_CA_PEM -> --build-arg with the PEM text of the *extra*
#                                            certificates only (an argument is limited to 128 KiB)
extra_ca_args() { # extra_ca_args DOCKERFILE  (prints NUL-separated docker build arguments)
  local dockerfile=$1 ca="${DRIFTLOOP_EXTRA_CA:-}"
  [[ "$ca" == none ]] && return 0
  local bundle="${ca:-/etc/ssl/certs/ca-certificates.crt}"
  if [[ -f "$bundle" ]] && grep -q 'id=extra_ca' "$dockerfile"; then
    printf '%s\0' --secret "id=extra_ca,src=${bundle}"
  fi
  local arg pem=""
  for arg in EXTRA_CA_CERT EXTRA_CA_PEM; do
    grep -qE "^[[:space:]]*ARG[[:space:]]+${arg}([=[:space:]]|$)" "$dockerfile" || continue
    if [[ -n "$ca" && -f "$ca" ]]; then
      pem="$(cat "$ca")"
    else  # the locally added CAs (update-ca-certificates' input), not the whole bundle
      pem="$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true)"
    fi
    if [[ -n "$pem" && ${#pem} -lt 120000 ]]; then
      printf '%s\0' --build-arg "${arg}=${pem}"
    fi
  done
}

cmd_build() { # build NAME DIR [DOCKERFILE]
  local name=$1 dir=$2 dockerfile=${3:-$2/Dockerfile}
  [[ -f "$dockerfile" ]] || die "no Dockerfile at $dockerfile"
  cmd_base
  local args=()
  # NUL-separated: a PEM build argument spans lines.
  mapfile -d '' -t args < <(extra_ca_args "$dockerfile")
  # A "# syntax=" directive makes BuildKit pull a frontend image from a registry, which
  # is unreachable here; the built-in frontend handles RUN --mount=type=secret itself.
  if head -n 5 "$dockerfile" | grep -qiE '^#[[:space:]]*syntax[[:space:]]*='; then
    local filtered; filtered="$(mktemp "${CACHE}/.Dockerfile.XXXXXX")"
    grep -viE '^#[[:space:]]*syntax[[:space:]]*=' "$dockerfile" > "$filtered"
    log "ignoring the '# syntax=' line of ${dockerfile} (no registry reachable)"
    dockerfile="$filtered"
  fi
  log "docker build ${name} from ${dir}"
  # BuildKit for --secret; host network because dockerd runs without a bridge
  # (build steps still only reach the package registries).
  DOCKER_BUILDKIT=1 nice "${DOCKER}" build --network host --progress plain \
    --build-arg "BASE_IMAGE=${BASE_IMAGE}" "${args[@]}" \
    -t "${name}" -f "${dockerfile}" "${dir}"
  [[ "$dockerfile" == "${CACHE}"/.Dockerfile.* ]] && rm -f "$dockerfile"
  return 0
}

cmd_tidy() {
  # dockerd runs with vfs, where every layer is a full copy of the image's filesystem:
  # each rebuild after a code change leaves a superseded image and cache records worth
  # gigabytes. Left alone they filled this machine's disk in one working day, and the
  # kubelet then evicted pods for disk pressure. Keep the newest cache (fast rebuilds)
  # and drop the rest.
  cmd_engine
  "${DOCKER}" image prune -f >/dev/null
  "${DOCKER}" builder prune -f --keep-storage "${DRIFTLOOP_BUILD_CACHE:-3GB}" >/dev/null
  log "tidied docker: $("${DOCKER}" system df --format '{{.Type}} {{.Size}}' | paste -sd ' ' -)"
}

cmd_load() { # load IMAGE...  (into the embedded cluster's containerd, namespace k8s.io)
  cmd_engine
  cluster_containerd_up || die "cluster containerd not running (${CTRD_SOCK}); run hack/cluster.sh up"
  local snap=overlayfs
  [[ -f "${STATE}/config/snapshotter" ]] && snap="$(cat "${STATE}/config/snapshotter")"
  local img ref id
  for img in "$@"; do
    id="$("${DOCKER}" image inspect -f '{{.Id}}' "$img")" || die "no docker image $img"
    ref="$img"
    [[ "$ref" == */*/* || "$ref" == *.*/* ]] || ref="docker.io/${ref}"
    [[ "$ref" == docker.io/* && "${ref#docker.io/}" != */* ]] && ref="docker.io/library/${ref#docker.io/}"
    # Skip when containerd already has this exact image (the docker image id is recorded as a label).
    if ctr --address "${CTRD_SOCK}" -n k8s.io images ls "name==${ref}" 2>/dev/null | grep -q "driftloop.image-id=${id}"; then
      log "${img} already loaded (${id:7:12})"
      continue
    fi
    log "loading ${img} (${id:7:12}) into the cluster"
    "${DOCKER}" save "$img" | ctr --address "${CTRD_SOCK}" -n k8s.io images import --snapshotter "${snap}" - >/dev/null
    ctr --address "${CTRD_SOCK}" -n k8s.io images label "${ref}" "driftloop.image-id=${id}" >/dev/null
  done
}

cmd_build_all() {
  cmd_base
  local built=("${BASE_IMAGE}") pair image dir
  for pair in "${RUNTIME_IMAGE}=serving-image" "${OPERATOR_IMAGE}=operator"; do
    image="${pair%=*}"
    dir="${pair##*=}"
    if [[ -f "${REPO_DIR}/${dir}/Dockerfile" ]]; then
      # Both install the repo's own package: the build context is the repo root when the
      # Dockerfile asks for it (it COPYs pyproject.toml), else the image's directory.
      local ctx="${REPO_DIR}/${dir}"
      grep -qE '^\s*COPY\s+.*pyproject\.toml' "${REPO_DIR}/${dir}/Dockerfile" && ctx="${REPO_DIR}"
      cmd_build "${image}" "${ctx}" "${REPO_DIR}/${dir}/Dockerfile"
      built+=("${image}")
    else
      log "${dir}/Dockerfile not present yet: skipping ${image}"
    fi
  done
  if cluster_containerd_up; then cmd_load "${built[@]}"; else log "cluster not running: images not loaded"; fi
  cmd_tidy
}

main() {
  need_root "dockerd, containerd"
  local cmd=${1:-}
  shift || true
  case "$cmd" in
    engine) cmd_engine ;;
    engine-stop) cmd_engine_stop ;;
    base) cmd_base ;;
    build) [[ $# -ge 2 ]] || die "usage: $0 build NAME DIR [DOCKERFILE]"; cmd_build "$@" ;;
    load) [[ $# -ge 1 ]] || die "usage: $0 load IMAGE..."; cmd_load "$@" ;;
    build-all) cmd_build_all ;;
    tidy) cmd_tidy ;;
    *) usage ;;
  esac
}

main "$@"
