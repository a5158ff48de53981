#!/usr/bin/env bash
# Runs the suite. DATABASE_URL=postgres://... runs it on PostgreSQL; unset, on SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
export DJANGO_SETTINGS_MODULE=controlplane.settings
export DEBUG="${DEBUG:-false}"
export SECRET_KEY="${SECRET_KEY:-test-only-secret-key-not-for-production-use-000}"
export CELERY_BROKER_URL="${CELERY_BROKER_URL:-memory://}"
# Every Prometheus of the tests (fake and real) listens on loopback, which the source
# guard refuses unless allowed; tests of the refusal override the setting themselves.
export ALLOWED_SOURCE_NETWORKS="${ALLOWED_SOURCE_NETWORKS-127.0.0.0/8,::1/128}"
export PYTHONDONTWRITEBYTECODE=1
echo "database: ${DATABASE_URL:-SQLite under var/}  CI=${CI:-false}"
# Both checks of `make lint`: CI runs this script, so it refuses what `make lint` shows.
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# Two processes (pytest-xdist) by default; TEST_PROCESSES=0 runs in this one. Each
# process has its own test database, Redis databases and log directory (tests/services.py).
exec .venv/bin/pytest -n "${TEST_PROCESSES:-2}" "$@"
