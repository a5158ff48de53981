"""Job monitors' metrics, declared next to the code that writes them (runs.py for pings,
overdue.py for beat's check).

The `job` label is `<organisation>/<slug>` (`job_label`; slugs are unique within an
organisation only): one series per monitor (times 5 outcomes for the counter, times 15
for the histogram's buckets, sum and count), so a few hundred monitors stay within a few
thousand series.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

job_runs = Counter(
    "controlplane_job_runs_total",
    "Job runs recorded, by monitor and outcome (success, failure, timeout, too_fast, missed).",
    ["job", "outcome"],
)
job_run_duration = Histogram(
    "controlplane_job_run_duration_seconds",
    "Duration of the job runs that reported both their start and their finish.",
    ["job"],
    # Jobs last from seconds to days (the longest maximum duration is 7 days).
    buckets=(1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400, 259200, 604800),
)
job_last_success = Gauge(
    "controlplane_job_last_success_timestamp_seconds",
    "When each monitor's last successful run finished (Unix time).",
    ["job"],
    multiprocess_mode="max",
)
jobs_overdue = Gauge(
    "controlplane_jobs_overdue",
    "Monitors whose run is late (status late), set by beat's overdue check.",
    multiprocess_mode="mostrecent",
)


def job_label(monitor) -> str:
    """The `job` label: `<organisation>/<slug>`, as the on-call metrics name schedules
    (slugs are unique per organisation only). Select the monitor's organisation with it."""
    return f"{monitor.organization.slug}/{monitor.slug}"
