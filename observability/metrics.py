"""Every Prometheus metric the service exports, declared in one place.

A bounded context that needs a new metric adds it here, next to the others, so
names, labels and buckets are reviewed together and the dashboards and alert rules
in deploy/ have one list to check against. Declaring metrics elsewhere works
(they all land in prometheus_client's default registry) but is not our practice.

Rules for additions:
- Names follow Prometheus conventions: base units (seconds), counters end in
  ``_total``, our own metrics start with ``controlplane_``.
- Labels take values from a small, known set (route templates, job names,
  channel kinds); never ids, paths, emails or free text.
- Every Gauge names its ``multiprocess_mode``. Under PROMETHEUS_MULTIPROC_DIR each
  process writes its own file and /metrics merges them; the mode says how:
  ``mostrecent`` for a value that a periodic job sets (whichever process ran it
  last is right), ``max`` for timestamps, ``livesum`` for per-process counts that
  vanish with their process. Counters and histograms are summed across processes.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Short enough to show a 200 ms latency objective exactly (0.2 and 0.25).
HTTP_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2.5, 5, 10)
# Batch jobs run from well under a second (a sync with nothing to do) to an hour.
JOB_DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
EVALUATION_DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

http_server_request_duration_seconds = Histogram(
    "http_server_request_duration_seconds",
    "Duration of HTTP requests served, by method, route template and status code.",
    ["http_request_method", "http_route", "http_response_status_code"],
    buckets=HTTP_DURATION_BUCKETS,
)

controlplane_job_runs_total = Counter(
    "controlplane_job_runs_total",
    "Batch job runs, by job and result (success or failure).",
    ["job", "result"],
)
controlplane_job_run_duration_seconds = Histogram(
    "controlplane_job_run_duration_seconds",
    "Duration of batch job runs, successful or not.",
    ["job"],
    buckets=JOB_DURATION_BUCKETS,
)
controlplane_job_last_success_timestamp_seconds = Gauge(
    "controlplane_job_last_success_timestamp_seconds",
    "Unix time at which the job last finished successfully.",
    ["job"],
    multiprocess_mode="max",
)

controlplane_calendar_sync_delay_seconds = Gauge(
    "controlplane_calendar_sync_delay_seconds",
    "How far the on-call calendar lags behind its source, in seconds.",
    ["calendar"],
    multiprocess_mode="mostrecent",
)
controlplane_calendar_queue_backlog = Gauge(
    "controlplane_calendar_queue_backlog",
    "Calendars waiting to be synchronised.",
    multiprocess_mode="mostrecent",
)
controlplane_queue_backlog = Gauge(
    "controlplane_queue_backlog",
    "Messages waiting in a Celery queue.",
    ["queue"],
    multiprocess_mode="mostrecent",
)

controlplane_rule_evaluations_total = Counter(
    "controlplane_rule_evaluations_total",
    "Alert rule evaluations, by result.",
    ["result"],
)
controlplane_rule_evaluation_duration_seconds = Histogram(
    "controlplane_rule_evaluation_duration_seconds",
    "Duration of one alert rule evaluation.",
    buckets=EVALUATION_DURATION_BUCKETS,
)
controlplane_alerts_firing = Gauge(
    "controlplane_alerts_firing",
    "Alerts currently firing, by severity.",
    ["severity"],
    multiprocess_mode="mostrecent",
)

controlplane_notifications_total = Counter(
    "controlplane_notifications_total",
    "Notification deliveries, by channel kind and result.",
    ["channel_kind", "result"],
)
