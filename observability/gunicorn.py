"""Gunicorn server hooks for prometheus_client's multiprocess mode.

Use them from a gunicorn config file::

    from observability.gunicorn import child_exit  # noqa: F401
"""

import os
from typing import Any

from prometheus_client import multiprocess


def child_exit(server: Any, worker: Any) -> None:
    # Drops the dead worker's files for `live*` gauges; counters and histograms
    # keep its totals, so rates do not dip when a worker is recycled.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
