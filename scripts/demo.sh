#!/usr/bin/env bash
# The whole loop on embedded defaults: SQLite, a broker with no server, web + worker + beat,
# a Prometheus scraping the control plane when the binary is installed, and the sinks the
# demo's notifications go to: a webhook sink printing what it receives, and email printed
# by the worker (Django's console backend).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBUG="${DEBUG:-true}"
export SESSION_COOKIE_SECURE="${SESSION_COOKIE_SECURE:-false}"
export LOG_SPANS="${LOG_SPANS:-false}"
export PORT="${PORT:-8000}"
export PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
export WEBHOOK_SINK_PORT="${WEBHOOK_SINK_PORT:-9099}"
# Links in notifications point at this server.
export SITE_URL="${SITE_URL:-http://127.0.0.1:$PORT}"
# The demo's source `self` is the Prometheus it starts on 127.0.0.1: allow loopback,
# which the source guard refuses by default.
export ALLOWED_SOURCE_NETWORKS="${ALLOWED_SOURCE_NETWORKS-127.0.0.0/8,::1/128}"
# The demo's webhook channel delivers to the sink on 127.0.0.1, which the webhook guard
# refuses by default: this demo allows that one address besides what was allowed already.
export ALLOWED_PRIVATE_NETWORKS="${ALLOWED_PRIVATE_NETWORKS:+$ALLOWED_PRIVATE_NETWORKS,}127.0.0.1/32"
export EMAIL_URL="${EMAIL_URL:-console:}"
var="${VAR_DIR:-var}"
mkdir -p "$var"
export PROMETHEUS_MULTIPROC_DIR="$(cd "$var" && pwd)/metrics"
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
  mkdir -p "$var/prometheus"
  # Every 5 s rather than 15: the drill's 5xx reach api.5xx sooner.
  sed -e "s/controlplane:8000/127.0.0.1:$PORT/" -e "s/scrape_interval: 15s/scrape_interval: 5s/" \
    deploy/prometheus.yml > "$var/prometheus/prometheus.yml"
  prometheus --config.file="$var/prometheus/prometheus.yml" \
    --storage.tsdb.path="$var/prometheus/data" \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" >"$var/prometheus/prometheus.log" 2>&1 &
  pids+=($!)
  prometheus_url="http://127.0.0.1:$PROMETHEUS_PORT"
  echo "Prometheus: $prometheus_url (scraping the control plane every 5 s)"
else
  echo "Prometheus is OFF: the binary is not installed (Debian package 'prometheus')."
  echo "  The built-in rule on an internal signal (source.down) still runs; api.5xx and"
  echo "  api.latency are created once the demo organisation has a metric source."
fi

$py manage.py migrate --noinput >/dev/null
$py manage.py sync_runbooks
$py manage.py seed_demo ${prometheus_url:+--prometheus-url "$prometheus_url"}
sink_url="http://127.0.0.1:$WEBHOOK_SINK_PORT/"
$py manage.py seed_demo_paging --sink-url "$sink_url"
# Two demo responders on a weekly rota (a generated ICS file): /oncall/ shows who is on
# call, and the demo policy's second step emails them a minute into an alert.
$py manage.py seed_demo_oncall
# The API's availability and latency SLOs, read from the demo's Prometheus: /slos/.
$py manage.py seed_demo_slos
# Grafana: the shared dashboards are committed under deploy/grafana/dashboards; this demo's
# SLOs get one dashboard each, written beside them under var/ (docs/observability/dashboards.md).
grafana_dashboards="$var/grafana/dashboards"
$py manage.py export_grafana_dashboards --org demo --out "$grafana_dashboards" >/dev/null \
  || echo "the per-SLO Grafana dashboards were not all written (see above)"

$py manage.py webhook_sink --port "$WEBHOOK_SINK_PORT" &
pids+=($!)
$py manage.py runserver --noreload "127.0.0.1:$PORT" &
pids+=($!)
.venv/bin/celery -A controlplane worker --loglevel=INFO --concurrency=2 &
pids+=($!)
.venv/bin/celery -A controlplane beat --loglevel=INFO &
pids+=($!)
# Simulated payroll, equipment, ETL and backup jobs reporting their runs through the ping
# endpoint (observability.jobs), the ETL load failing now and then: /jobs/. They stand for
# other services, so their own job metrics stay out of the control plane's /metrics.
env -u PROMETHEUS_MULTIPROC_DIR $py manage.py run_demo_jobs &
pids+=($!)

# The banners of web, worker and beat come first; what to open comes once all answer, so
# that it stays in view (a minute at most: then it is printed anyway).
for _ in $(seq 120); do
  kill -0 "${pids[@]}" 2>/dev/null || break  # one has stopped: `wait -n` below says so
  $py -c 'import sys, urllib.request as u; u.build_opener(u.ProxyHandler({})).open(sys.argv[1], timeout=1)' \
    "$SITE_URL/healthz?worker=1" 2>/dev/null && break
  sleep 0.5
done
echo
echo "control plane: $SITE_URL/  admin: /admin/  alerts: /alerts/  SLOs: /slos/  runbooks: /runbooks/  on call: /oncall/  jobs: /jobs/"
echo "API docs: /api/v1/docs/  metrics: /metrics  worker check: /healthz?worker=1"
echo "notifications: lines starting 'webhook sink' (the sink at $sink_url), email printed whole"
if [ -n "$prometheus_url" ]; then
  drill="DEBUG=true${VAR_DIR:+ VAR_DIR=$VAR_DIR} $py manage.py drill"
  [ "$SITE_URL" = "http://127.0.0.1:8000" ] || drill="$drill --url $SITE_URL"
  echo "drill: in another terminal, $drill"
  echo "  (3 minutes of real 500s and slow answers: api.5xx fires and its notifications print here"
  echo "  within a minute; the api-availability SLO burns on /slos/ and pages on its fast tier)"
else
  echo "drill (manage.py drill): it needs Prometheus, through which api.5xx reads the server's metrics"
fi
echo "overview: $SITE_URL/ (open alerts, SLOs worst first, late jobs, who is on call, failing deliveries)"
echo "knowledge base: $SITE_URL/docs/  (alert catalogue: /docs/observability/runbooks/)"
echo "Grafana: provisioning files in deploy/grafana/provisioning (data sources, dashboard provider),"
echo "  dashboards in deploy/grafana/dashboards, this demo's per-SLO ones in $grafana_dashboards."
echo "  Point a Grafana at them: mount deploy/grafana/provisioning at /etc/grafana/provisioning and"
echo "  the dashboards where controlplane.yaml says, with PROMETHEUS_URL=${prometheus_url:-http://127.0.0.1:$PROMETHEUS_PORT}"
echo "  CONTROLPLANE_URL=$SITE_URL CONTROLPLANE_TOKEN=<manage.py create_api_token --org demo --scope read>"
echo "  (docs/observability/dashboards.md, 'Provisioning')."
echo "press Ctrl-C to stop"
wait -n "${pids[@]}"
