#!/usr/bin/env bash
# A real S3-compatible object store (MinIO, built from the Go module proxy) for the
# S3 artifact mode of driftloop: tests, the demo and local experiments.
#
#   hack/s3.sh up      build once (cached), start if not running, create the bucket;
#                      prints the endpoint as the host sees it
#   hack/s3.sh down    stop it (the data stays in the state dir)
#   hack/s3.sh env     print `export ...` lines: endpoint (host and pod view), bucket, keys
#
# It listens on 0.0.0.0:$DRIFTLOOP_S3_PORT (19000), so the host reaches it at 127.0.0.1
# and the embedded cluster's pods at the pod bridge address (10.88.0.1, the node IP of
# hack/cluster.sh; pods may talk to the host, not beyond it).  The credentials are made
# at random on the first `up` and kept in the state dir (mode 600); nothing is committed.
# MinIO publishes no semver tags on the module proxy: versions.env pins a pseudo-version.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIR=$STATE/s3
BIN=$CACHE/minio-$MINIO_VERSION/minio
PORT=${DRIFTLOOP_S3_PORT:-19000}
BUCKET=${DRIFTLOOP_S3_BUCKET:-driftloop}
REGION=us-east-1
URL="http://127.0.0.1:$PORT"
# The address pods use: the bridge address hack/cluster.sh gives the node.
POD_URL="http://${NODE_IP}:$PORT"

# The recorded pid is alive and is the binary we started (not a recycled pid).
running() { pidfile_pid "$DIR/pid" "$BIN" >/dev/null; }
live() { curl -fsS --max-time 2 "$URL/minio/health/live" >/dev/null 2>&1; }
live_or_exited() {
  live && return 0
  running || { tail -20 "$LOGS/s3.log" >&2; die "MinIO exited; see $LOGS/s3.log"; }
  return 1
}

ensure_binary() {
  [[ -x $BIN ]] && return
  need_cmd go "go is needed to build MinIO ($MINIO_VERSION)"
  mkdir -p "$LOGS"
  log "building MinIO $MINIO_VERSION from the Go module proxy (once; 194 s measured cold on 2 cores; log $LOGS/s3-build.log)"
  local start=$SECONDS
  # A temporary GOBIN, renamed when complete: an interrupted build leaves no half binary.
  rm -rf "$BIN.tmp"
  if ! GOBIN="$BIN.tmp" GOFLAGS=-buildvcs=false go install "github.com/minio/minio@$MINIO_VERSION" \
    >"$LOGS/s3-build.log" 2>&1; then
    tail -20 "$LOGS/s3-build.log" >&2
    die "MinIO build failed"
  fi
  mkdir -p "$(dirname "$BIN")"
  mv "$BIN.tmp/minio" "$BIN"
  rm -rf "$BIN.tmp"
  log "built $BIN in $((SECONDS - start))s"
}

ensure_credentials() {
  mkdir -p "$DIR"
  if [[ ! -s $DIR/credentials.env ]]; then
    (
      umask 077
      printf 'AWS_ACCESS_KEY_ID=driftloop-%s\nAWS_SECRET_ACCESS_KEY=%s\n' \
        "$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')" \
        "$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')" >"$DIR/credentials.env.new"
      mv "$DIR/credentials.env.new" "$DIR/credentials.env"
    )
  fi
  # shellcheck source=/dev/null
  source "$DIR/credentials.env"
}

# s3 METHOD PATH: a SigV4-signed request (curl signs it; no S3 client needed).
s3() {
  curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -X "$1" \
    --aws-sigv4 "aws:amz:$REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    "$URL/$2"
}

ensure_bucket() {
  local code
  code=$(s3 HEAD "$BUCKET") || true
  case $code in
    200) return ;;
    404) ;;
    403) die "the server on :$PORT rejects our credentials ($DIR/credentials.env): is it someone else's?" ;;
    *) die "HEAD /$BUCKET answered $code" ;;
  esac
  code=$(s3 PUT "$BUCKET") || true
  [[ $code == 200 ]] || die "creating bucket $BUCKET answered $code"
  log "created bucket $BUCKET"
}

up() {
  # One `up` at a time (parallel test workers each ask for it).
  lock 9 "$STATE/s3.lock"
  ensure_binary
  ensure_credentials
  mkdir -p "$DIR/data" "$LOGS"
  if live; then
    log "reusing the server on :$PORT"
  else
    if running; then kill "$(cat "$DIR/pid")"; sleep 1; fi
    log "starting MinIO on 0.0.0.0:$PORT (data $DIR/data, log $LOGS/s3.log)"
    # A server of its own, not ended with the shell or test run that started it.
    # Credentials through the environment, not argv (visible in ps).
    MINIO_ROOT_USER=$AWS_ACCESS_KEY_ID MINIO_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY \
      MINIO_BROWSER=off MINIO_UPDATE=off MINIO_CALLHOME_ENABLE=off \
      spawn "$DIR/pid" "$LOGS/s3.log" "$BIN" server "$DIR/data" --address "0.0.0.0:$PORT" --quiet
    wait_until 60 0.5 live_or_exited ||
      { tail -20 "$LOGS/s3.log" >&2; die "MinIO did not become live; see $LOGS/s3.log"; }
  fi
  ensure_bucket
  echo "$URL"
}

down() {
  if running; then stop_pid "$(cat "$DIR/pid")" 10 || true; fi
  rm -f "$DIR/pid"
}

env_() {
  [[ -s $DIR/credentials.env ]] || die "no credentials yet: run '$0 up' first"
  ensure_credentials
  cat <<EOF
export AWS_ENDPOINT_URL=$URL
export AWS_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
export AWS_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export DRIFTLOOP_S3_BUCKET=$BUCKET
# the same server as the embedded cluster's pods reach it
export DRIFTLOOP_S3_POD_ENDPOINT=$POD_URL
EOF
}

case ${1:-} in
  up) up ;;
  down) down ;;
  env) env_ ;;
  *) usage ;;
esac
