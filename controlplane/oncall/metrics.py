"""On-call's metrics, declared next to the code that writes them (synchronize.py).

The `schedule` label is `<organisation slug>/<schedule slug>`: one series per schedule,
a handful per organisation. Both gauges are set by beat's `calendar.synchronize` run
(`mostrecent` under PROMETHEUS_MULTIPROC_DIR).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

sync_delay = Gauge(
    "controlplane_calendar_sync_delay_seconds",
    "Age of each on-call schedule's last successful calendar synchronisation "
    "(since the schedule was made, when it never succeeded).",
    ["schedule"],
    multiprocess_mode="mostrecent",
)
sync_backlog = Gauge(
    "controlplane_calendar_sync_backlog",
    "On-call schedules due for synchronisation and not yet synchronised, failing ones included.",
    multiprocess_mode="mostrecent",
)
syncs = Counter(
    "controlplane_calendar_syncs_total",
    "Calendar synchronisations of a schedule, by outcome (ok; failed: the last good shifts kept).",
    ["outcome"],
)
