"""Gunicorn server hooks: prometheus_client's multiprocess mode, and a cheaper
garbage collector once a worker has loaded the application.

Use them from a gunicorn config file::

    from observability.gunicorn import child_exit, post_worker_init  # noqa: F401
"""

import gc
import os
from typing import Any

from prometheus_client import multiprocess


def child_exit(server: Any, worker: Any) -> None:
    # Drops the dead worker's files for `live*` gauges; counters and histograms
    # keep its totals, so rates do not dip when a worker is recycled.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker: Any) -> None:
    freeze_loaded_heap()


def freeze_loaded_heap() -> None:
    """Leave the objects of the loaded application out of every later collection.

    A Django worker holds a few hundred thousand long-lived objects (modules, URL
    patterns, templates, settings), and each full collection walks them all. Objects
    that outlive a request (finished spans waiting in the batch processor for their
    export, connection state) push the collector into full collections often: under
    load that cost more than the spans themselves (bench/observability_overhead.py).
    Frozen objects are never collected, so the garbage of start-up is collected
    first. Any Django worker gains from this, instrumented or not.
    """
    gc.collect()
    gc.freeze()
