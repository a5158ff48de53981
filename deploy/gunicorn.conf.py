# gunicorn -c deploy/gunicorn.conf.py controlplane.wsgi
# With PROMETHEUS_MULTIPROC_DIR set, /metrics sums every worker; this hook tidies
# up after a worker that exits.
import os

from observability.gunicorn import child_exit  # noqa: F401

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
