#!/usr/bin/env bash
# The whole loop on embedded defaults: SQLite, a broker with no server, web + worker + beat,
# and a Prometheus scraping the control plane when the binary is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBUG="${DEBUG:-true}"
export SESSION_COOKIE_SECURE="${SESSION_COOKIE_SECURE:-false}"
export LOG_SPANS="${LOG_SPANS:-false}"
export PORT="${PORT:-8000}"
export PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
# The demo's source `self` is the Prometheus it starts on 127.0.0.1: allow loopback,
# which the source guard refuses by default.
export ALLOWED_SOURCE_NETWORKS="${ALLOWED_SOURCE_NETWORKS-127.0.0.0/8,::1/128}"
export PROMETHEUS_MULTIPROC_DIR="$PWD/var/metrics"
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
py=.venv/bin/python

pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "stopping the demo"
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

prometheus_url=""
if command -v prometheus >/dev/null; then
  mkdir -p var/prometheus
  sed "s/controlplane:8000/127.0.0.1:$PORT/" deploy/prometheus.yml > var/prometheus/prometheus.yml
  prometheus --config.file=var/prometheus/prometheus.yml --storage.tsdb.path=var/prometheus/data \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" >var/prometheus/prometheus.log 2>&1 &
  pids+=($!)
  prometheus_url="http://127.0.0.1:$PROMETHEUS_PORT"
  echo "Prometheus: $prometheus_url (scraping the control plane every 15 s)"
else
  echo "Prometheus is OFF: the binary is not installed (Debian package 'prometheus')."
  echo "  The built-in rule on an internal signal (source.down) still runs; api.5xx and"
  echo "  api.latency are created once the demo organisation has a metric source."
fi

$py manage.py migrate --noinput >/dev/null
$py manage.py sync_runbooks
$py manage.py seed_demo ${prometheus_url:+--prometheus-url "$prometheus_url"}

$py manage.py runserver --noreload "127.0.0.1:$PORT" &
pids+=($!)
.venv/bin/celery -A controlplane worker --loglevel=INFO --concurrency=2 &
pids+=($!)
.venv/bin/celery -A controlplane beat --loglevel=INFO &
pids+=($!)

echo "control plane: http://127.0.0.1:$PORT/  admin: /admin/  alerts: /alerts/  runbooks: /runbooks/"
echo "API docs: /api/v1/docs/  metrics: /metrics  worker check: /healthz?worker=1"
echo "press Ctrl-C to stop"
wait -n "${pids[@]}"
