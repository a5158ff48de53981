"""The generic metrics of the observability package, and the rules for any metric.

The package is installed by services it knows nothing about, so it declares only
instruments that it writes itself, whatever the service: the HTTP server histogram
(observability.middleware) and the job-run instruments (observability.jobs), whose
names the service chooses with OBSERVABILITY["JOB_METRICS_NAMESPACE"]. A service's
own metrics (the control plane's ``controlplane_*``) are declared by the service, in
the bounded context that writes them and next to the code that does, when that code
lands: a family that nothing writes is a dashboard panel that never fills.

Rules for a metric, here or in a service:
- Names follow Prometheus conventions: base units (seconds), counters end in
  ``_total``, a service's own metrics start with its namespace (``controlplane_``).
- Labels take values from a small, known set (route templates, job names,
  channel kinds); never ids, paths, emails or free text.
- Every Gauge names its ``multiprocess_mode``. Under PROMETHEUS_MULTIPROC_DIR each
  process writes its own file and /metrics merges them; the mode says how:
  ``mostrecent`` for a value that a periodic job sets (whichever process ran it
  last is right), ``max`` for timestamps, ``livesum`` for per-process counts that
  vanish with their process. Counters and histograms are summed across processes.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.registry import Collector

# Short enough to show a 200 ms latency objective exactly (0.2 and 0.25).
HTTP_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2.5, 5, 10)
# Batch jobs run from well under a second (a sync with nothing to do) to an hour.
JOB_DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

http_server_request_duration_seconds = Histogram(
    "http_server_request_duration_seconds",
    "Duration of HTTP requests served, by method, route template and status code.",
    ["http_request_method", "http_route", "http_response_status_code"],
    buckets=HTTP_DURATION_BUCKETS,
)


class JobMetrics(NamedTuple):
    """The instruments observability.jobs writes for every run of a job."""

    runs: Counter
    duration: Histogram
    last_success: Gauge


# The `result` label of job_runs_total.
SUCCESS = "success"
FAILURE = "failure"


class JobInstruments(NamedTuple):
    """The labelled children one job writes, looked up once per job, not per run."""

    succeeded: Counter
    failed: Counter
    duration: Histogram
    last_success: Gauge

    def record(self, *, succeeded: bool, seconds: float) -> None:
        (self.succeeded if succeeded else self.failed).inc()
        self.duration.observe(seconds)
        if succeeded:
            self.last_success.set_to_current_time()


_job_metrics: dict[str, JobMetrics] = {}
_job_instruments: dict[tuple[str, str], JobInstruments] = {}
_job_metrics_lock = threading.Lock()


def job_metrics(namespace: str = "") -> JobMetrics:
    """The job-run instruments named under `namespace`: "" gives ``job_runs_total``,
    ``job_run_duration_seconds`` and ``job_last_success_timestamp_seconds``;
    "billing" gives ``billing_job_runs_total`` and so on.

    Declared at the first run rather than at import: the name comes from settings,
    and a process that runs no job then exports no job family at all.
    """
    found = _job_metrics.get(namespace)
    if found is not None:
        return found
    # A second registration of a name raises, so two threads' first runs must not race.
    with _job_metrics_lock:
        if namespace not in _job_metrics:
            _job_metrics[namespace] = JobMetrics(
                runs=Counter(
                    "job_runs_total",
                    "Batch job runs, by job and result (success or failure).",
                    ["job", "result"],
                    namespace=namespace,
                ),
                duration=Histogram(
                    "job_run_duration_seconds",
                    "Duration of batch job runs, successful or not.",
                    ["job"],
                    namespace=namespace,
                    buckets=JOB_DURATION_BUCKETS,
                ),
                last_success=Gauge(
                    "job_last_success_timestamp_seconds",
                    "Unix time at which the job last finished successfully.",
                    ["job"],
                    namespace=namespace,
                    multiprocess_mode="max",
                ),
            )
        return _job_metrics[namespace]


def job_instruments(namespace: str, job: str) -> JobInstruments:
    """The children of the job-run instruments under `namespace` for the job `job`.

    Job names are constants of the code, so the cache is as bounded as the series.
    """
    key = (namespace, job)
    found = _job_instruments.get(key)
    if found is None:
        family = job_metrics(namespace)
        found = _job_instruments[key] = JobInstruments(
            succeeded=family.runs.labels(job=job, result=SUCCESS),
            failed=family.runs.labels(job=job, result=FAILURE),
            duration=family.duration.labels(job=job),
            last_success=family.last_success.labels(job=job),
        )
    return found


# Collectors that compute their samples when /metrics is scraped (the Celery queue
# length): name -> collector. Registered on the default registry, and added by the
# /metrics view to the merged one under PROMETHEUS_MULTIPROC_DIR, whose files hold
# only what instruments wrote.
_live_collectors: dict[str, Collector] = {}
_live_collectors_lock = threading.Lock()


def register_live_collector(name: str, collector: Collector) -> None:
    """Export `collector` (one family, `name`) on /metrics in either mode; registering a
    name again replaces its collector."""
    with _live_collectors_lock:
        previous = _live_collectors.pop(name, None)
        if previous is not None:
            REGISTRY.unregister(previous)
        REGISTRY.register(collector)
        _live_collectors[name] = collector


def live_collectors() -> list[Collector]:
    """The collectors `register_live_collector` registered, for a registry of their own."""
    return list(_live_collectors.values())
