#!/usr/bin/env bash
# The whole loop on embedded defaults: SQLite, a broker with no server, web + worker + beat.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBUG="${DEBUG:-true}"
export SESSION_COOKIE_SECURE="${SESSION_COOKIE_SECURE:-false}"
export LOG_SPANS="${LOG_SPANS:-true}"
export PORT="${PORT:-8000}"
export PROMETHEUS_MULTIPROC_DIR="$PWD/var/metrics"
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
py=.venv/bin/python

$py manage.py migrate --noinput >/dev/null
$py manage.py seed_demo
for cmd in $($py manage.py help --commands); do
  # Later contexts add their seeding commands; run those that exist.
  case "$cmd" in sync_runbooks) $py manage.py sync_runbooks ;; esac
done

pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "stopping web, worker and beat"
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

$py manage.py runserver --noreload "127.0.0.1:$PORT" &
pids+=($!)
.venv/bin/celery -A controlplane worker --loglevel=INFO --concurrency=2 &
pids+=($!)
.venv/bin/celery -A controlplane beat --loglevel=INFO --schedule var/celerybeat-schedule &
pids+=($!)

echo "control plane: http://127.0.0.1:$PORT/  admin: /admin/  API docs: /api/v1/docs/  metrics: /metrics"
echo "press Ctrl-C to stop"
wait -n "${pids[@]}"
