"""Job monitors' metrics, declared next to the code that writes them (runs.py for pings,
overdue.py for beat's check).

The `job` label is `<organisation>/<slug>` (`job_label`; slugs are unique within an
organisation only): one series per monitor (times 5 outcomes for the counter, times 15
for the histogram's buckets, sum and count), so a few hundred monitors stay within a few
thousand series.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta

from prometheus_client import Counter, Gauge, Histogram

from controlplane.jobs.models import JobMonitor
from controlplane.slo.objectives import DEFAULT_TARGETS, RPO

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
job_duration_limit = Gauge(
    "controlplane_job_duration_limit_seconds",
    "Each monitor's configured minimum and maximum run duration (limit min or max); "
    "absent when the monitor has none. Set by beat's overdue check.",
    ["job", "limit"],
    multiprocess_mode="mostrecent",
)
job_rpo = Gauge(
    "controlplane_job_rpo_seconds",
    "The RPO of the enabled RPO SLOs that read each monitor (the strictest, when several "
    "do); absent when none does. Set by beat's overdue check.",
    ["job"],
    multiprocess_mode="mostrecent",
)

# The `limit` label of controlplane_job_duration_limit_seconds.
MIN = "min"
MAX = "max"

# (org slug, monitor slug, min_duration, max_duration), as the monitors query reads them.
MonitorLimits = tuple[str, str, timedelta | None, timedelta | None]
# (org slug, monitor slug, the SLO's recovery_target: None means the default RPO).
RpoTarget = tuple[str, str, timedelta | None]


def label(organization_slug: str, monitor_slug: str) -> str:
    """`job_label` from the two slugs, for code that reads them without the rows."""
    return f"{organization_slug}/{monitor_slug}"


def job_label(monitor) -> str:
    """The `job` label: `<organisation>/<slug>`, as the on-call metrics name schedules
    (slugs are unique per organisation only). Select the monitor's organisation with it."""
    return label(monitor.organization.slug, monitor.slug)


def limit_values(
    monitors: Iterable[MonitorLimits], rpos: Iterable[RpoTarget], default_rpo: timedelta
) -> tuple[dict[tuple[str, str], float], dict[str, float]]:
    """What the two limit gauges should hold: {(job, limit): seconds} and {job: seconds}.

    A monitor without a limit has no series for it; several RPO SLOs reading one monitor
    give the strictest (smallest) RPO, the one a dashboard's line must stay under.
    """
    durations: dict[tuple[str, str], float] = {}
    for organization, slug, least, most in monitors:
        job = label(organization, slug)
        for limit, value in ((MIN, least), (MAX, most)):
            if value is not None:
                durations[job, limit] = value.total_seconds()
    rpo: dict[str, float] = {}
    for organization, slug, target in rpos:
        job = label(organization, slug)
        seconds = (target or default_rpo).total_seconds()
        rpo[job] = min(seconds, rpo.get(job, seconds))
    return durations, rpo


def _publish(gauge: Gauge, values: Mapping[tuple[str, ...], float]) -> None:
    # Set first, then drop what is gone: a scrape in between sees every live series,
    # where clear() then set() would show it none for a moment. The series present are
    # read back from the gauge itself (its samples), not from a copy kept here.
    for labels, value in values.items():
        gauge.labels(*labels).set(value)
    (family,) = gauge.collect()
    for sample in family.samples:
        labels = tuple(sample.labels.values())  # in the order the gauge declares them
        if labels not in values:
            gauge.remove(*labels)


def refresh_limits() -> None:
    """Set the duration-limit and RPO gauges of every monitor: two queries, whatever the
    number of monitors and SLOs. Series of monitors deleted (or limits removed) since the
    last refresh go, in this process (under PROMETHEUS_MULTIPROC_DIR prometheus_client
    cannot remove a series from its files: it stays until the directory is emptied at
    the next start)."""
    monitors = JobMonitor.objects.values_list(
        "organization__slug", "slug", "min_duration", "max_duration"
    )
    # SLO.job is the backup monitor an RPO SLO reads (controlplane/slo/models.py); the
    # reverse relation spares this context an import of the SLO models.
    rpos = JobMonitor.objects.filter(slos__kind=RPO, slos__enabled=True).values_list(
        "organization__slug", "slug", "slos__recovery_target"
    )
    durations, rpo = limit_values(monitors, rpos, DEFAULT_TARGETS[RPO])
    _publish(job_duration_limit, durations)
    _publish(job_rpo, {(job,): seconds for job, seconds in rpo.items()})
