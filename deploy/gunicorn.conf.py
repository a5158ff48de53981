# gunicorn -c deploy/gunicorn.conf.py controlplane.wsgi
# With PROMETHEUS_MULTIPROC_DIR set, /metrics sums every worker; child_exit tidies up
# after a worker that exits. post_worker_init freezes the loaded application's objects
# out of garbage collection, which spares every full collection a walk through them
# (observability/gunicorn.py says why it matters).
import os

from observability.gunicorn import child_exit, post_worker_init  # noqa: F401

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# A request is killed after `timeout` seconds (the client gets a 502 from the proxy, the
# worker is replaced). Nothing we serve should come near it: a rule's PromQL check waits
# at most PROMQL_CHECK_SECONDS (3), the admin's "evaluate now" asks sources for 10 s at
# most (each query within those 3 s), /healthz never waits on a worker, and scheduled
# evaluation runs in Celery. 30 s leaves room for a slow database without hiding a hang.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
