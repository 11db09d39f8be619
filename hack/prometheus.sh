#!/usr/bin/env bash
# A real Prometheus (Debian's package) scraping the embedded cluster's pods.
#
#   hack/prometheus.sh up [KUBECONFIG]   install if missing, (re)write config, start; prints the URL
#   hack/prometheus.sh down              stop it
#   hack/prometheus.sh url               print the URL
#
# Debian builds Prometheus without kubernetes_sd_configs, so pods are discovered
# with file_sd_configs: a small loop (hack/prometheus-sd.py) lists running pods
# annotated prometheus.io/scrape=true - as driftloop's serving pods are - through
# the given kubeconfig every 2s and writes the target file.  Each target gets
# `namespace` and `pod` labels, as the Prometheus Operator adds them.  Scrape and
# evaluation interval: 2s, so the drift loop reacts in seconds in tests and the demo.
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DIR=$STATE/prometheus
PORT=${DRIFTLOOP_PROMETHEUS_PORT:-19090}
SCRAPE_INTERVAL=${DRIFTLOOP_SCRAPE_INTERVAL:-2s}
URL="http://127.0.0.1:$PORT"

running() { pidfile_pid "$DIR/${1:-pid}" >/dev/null; }  # running [PIDFILE-NAME]
ready() { curl -fsS "$URL/-/ready" >/dev/null 2>&1; }

install() {
  command -v prometheus >/dev/null && return
  ensure_packages prometheus
  # The package starts a service on :9090 where an init system exists; we run our own.
  if command -v systemctl >/dev/null && systemctl is-active -q prometheus 2>/dev/null; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
}

write_config() {
  local kubeconfig=$1
  mkdir -p "$DIR/data"
  cat >"$DIR/prometheus.yml.new" <<YAML
global:
  scrape_interval: $SCRAPE_INTERVAL
  scrape_timeout: $SCRAPE_INTERVAL
  evaluation_interval: $SCRAPE_INTERVAL
scrape_configs:
  - job_name: kubernetes-pods
    file_sd_configs:
      - files: [$DIR/targets.json]
        refresh_interval: 2s
YAML
  promtool check config "$DIR/prometheus.yml.new" >/dev/null
  mv "$DIR/prometheus.yml.new" "$DIR/prometheus.yml"
}

up() {
  local kubeconfig=${1:-${KUBECONFIG:-$STATE/kubeconfig}}
  # One `up` at a time (parallel test workers each ask for it): they share the config
  # file and the server.
  lock 9 "$DIR/.lock"
  install
  write_config "$(readlink -f "$kubeconfig")"
  [[ -f $DIR/targets.json ]] || echo '[]' >"$DIR/targets.json"
  if ! running sd.pid; then
    local kubectl=${DRIFTLOOP_KUBECTL:-$K8S_BIN/kubectl}
    : >"$DIR/sd.log"
    spawn "$DIR/sd.pid" "$DIR/sd.log" \
      python3 "$HACK_DIR/prometheus-sd.py" "$kubectl" "$(readlink -f "$kubeconfig")" "$DIR/targets.json"
  fi
  if ready; then
    # Whoever started it, reuse it: reload the (re)written config.
    curl -fsS -X POST "$URL/-/reload" >/dev/null
  else
    if running; then kill "$(cat "$DIR/pid")"; sleep 1; fi
    # A server of its own, not ended with the shell or test run that started it.
    : >"$DIR/prometheus.log"
    spawn "$DIR/pid" "$DIR/prometheus.log" prometheus --config.file="$DIR/prometheus.yml" \
      --storage.tsdb.path="$DIR/data" --storage.tsdb.retention.time=2h \
      --web.listen-address="0.0.0.0:$PORT" --web.enable-lifecycle
  fi
  if wait_until 30 0.5 ready; then echo "$URL"; return; fi
  tail -20 "$DIR/prometheus.log" >&2
  die "prometheus did not become ready; see $DIR/prometheus.log"
}

down() {
  if running sd.pid; then kill "$(cat "$DIR/sd.pid")"; fi
  rm -f "$DIR/sd.pid"
  if running; then stop_pid "$(cat "$DIR/pid")" 10 || true; fi
  rm -f "$DIR/pid"
}

case ${1:-} in
  up) shift; up "$@" ;;
  down) down ;;
  url) echo "$URL" ;;
  *) usage ;;
esac
