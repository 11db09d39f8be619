#!/usr/bin/env bash
# A real Prometheus (Debian's package) scraping the embedded cluster's pods.
#
#   hack/prometheus.sh up [KUBECONFIG]   install if missing, (re)write config, start; prints the URL
#   hack/prometheus.sh down              stop it
#   hack/prometheus.sh url               print the URL
#
# Pods are discovered with kubernetes_sd_configs (role: pod) through the given
# kubeconfig and kept when annotated prometheus.io/scrape=true - the annotations
# driftloop's serving pods carry.  Each target gets `namespace` and `pod` labels,
# as the Prometheus Operator adds them.  Scrape and evaluation interval: 2s, so
# the drift loop reacts in seconds in tests and the demo.
set -euo pipefail

STATE=${DRIFTLOOP_STATE:-/var/lib/driftloop-cluster}
DIR=$STATE/prometheus
PORT=${DRIFTLOOP_PROMETHEUS_PORT:-19090}
SCRAPE_INTERVAL=${DRIFTLOOP_SCRAPE_INTERVAL:-2s}
URL="http://127.0.0.1:$PORT"

running() { [[ -f $DIR/pid ]] && kill -0 "$(cat "$DIR/pid")" 2>/dev/null; }

install() {
  command -v prometheus >/dev/null && return
  echo "installing Debian's prometheus package" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
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
    kubernetes_sd_configs:
      - role: pod
        kubeconfig_file: $kubeconfig
    relabel_configs:
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
        action: keep
        regex: "true"
      - source_labels: [__meta_kubernetes_pod_phase]
        action: drop
        regex: (Succeeded|Failed)
      - source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
        regex: ([^:]+)(?::\d+)?;(\d+)
        replacement: \$1:\$2
        target_label: __address__
      - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path]
        regex: (.+)
        target_label: __metrics_path__
      - source_labels: [__meta_kubernetes_namespace]
        target_label: namespace
      - source_labels: [__meta_kubernetes_pod_name]
        target_label: pod
YAML
  promtool check config "$DIR/prometheus.yml.new" >/dev/null
  mv "$DIR/prometheus.yml.new" "$DIR/prometheus.yml"
}

up() {
  local kubeconfig=${1:-${KUBECONFIG:-$STATE/kubeconfig}}
  install
  write_config "$(readlink -f "$kubeconfig")"
  if running; then
    kill -HUP "$(cat "$DIR/pid")"  # reload the config
  else
    nohup prometheus --config.file="$DIR/prometheus.yml" --storage.tsdb.path="$DIR/data" \
      --storage.tsdb.retention.time=2h --web.listen-address="0.0.0.0:$PORT" \
      --web.enable-lifecycle >"$DIR/prometheus.log" 2>&1 &
    echo $! >"$DIR/pid"
  fi
  for _ in $(seq 1 60); do
    if curl -fsS "$URL/-/ready" >/dev/null 2>&1; then echo "$URL"; return; fi
    sleep 0.5
  done
  echo "prometheus did not become ready; see $DIR/prometheus.log" >&2
  tail -20 "$DIR/prometheus.log" >&2
  exit 1
}

down() {
  if running; then
    kill "$(cat "$DIR/pid")"
    for _ in $(seq 1 40); do running || break; sleep 0.25; done
  fi
  rm -f "$DIR/pid"
}

case ${1:-} in
  up) shift; up "$@" ;;
  down) down ;;
  url) echo "$URL" ;;
  *) echo "usage: $0 up [KUBECONFIG] | down | url" >&2; exit 2 ;;
esac
