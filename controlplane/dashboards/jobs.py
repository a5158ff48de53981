"""Monitored jobs, one or several at a time (the `job` variable, `<org>/<monitor>`): run
durations against their limits, outcomes, and the age of the last success against the
RPO; and the control plane's own beat jobs (observability.jobs)."""

from __future__ import annotations

from typing import Any

from controlplane.dashboards import grafana
from controlplane.dashboards.grafana import query

UID = "controlplane-jobs"
TITLE = "Jobs"
JOB = 'job=~"$job"'
DURATION = "controlplane_job_run_duration_seconds"


def build() -> dict[str, Any]:
    grid = grafana.Grid()
    board = grafana.new_dashboard(
        UID,
        TITLE,
        "Job monitors (payroll, equipment, ETL, backups): durations against their limits, "
        "outcomes, time since the last success against the RPO.",
    )
    board = board.with_variable(grafana.label_variable("job", "job", "controlplane_job_runs_total"))
    board = board.with_variable(
        grafana.custom_variable("span", "Durations over", ["1h", "6h", "1d", "7d"], "1d")
    )
    for annotation in grafana.annotations():
        board = board.annotation(annotation)

    board = board.with_panel(
        grid.place(
            grafana.series_panel(
                "Run duration against the limits",
                "Median and 95th percentile of run durations over the chosen span (runs "
                "that reported their start and finish), against the monitor's minimum and "
                "maximum duration.",
                [
                    query(
                        f"histogram_quantile(0.5, sum by (job, le) (increase({DURATION}_bucket"
                        f"{{{JOB}}}[$span])))",
                        "{{job}} p50",
                    ),
                    query(
                        f"histogram_quantile(0.95, sum by (job, le) (increase({DURATION}_bucket"
                        f"{{{JOB}}}[$span])))",
                        "{{job}} p95",
                    ),
                    query(
                        "max by (job) "
                        f'(controlplane_job_duration_limit_seconds{{{JOB},limit="min"}})',
                        "{{job}} minimum",
                    ),
                    query(
                        "max by (job) "
                        f'(controlplane_job_duration_limit_seconds{{{JOB},limit="max"}})',
                        "{{job}} maximum",
                    ),
                ],
                unit="s",
            ),
            width=24,
            height=9,
        )
    )
    board = board.with_panel(
        grid.place(
            grafana.series_panel(
                "Run outcomes",
                "Runs by outcome: success, failure, timeout, too_fast (under the minimum "
                "duration), missed (never started).",
                [
                    query(
                        "sum by (job, outcome) "
                        f"(increase(controlplane_job_runs_total{{{JOB}}}[$__rate_interval]))",
                        "{{job}} {{outcome}}",
                    )
                ],
                bars=True,
            )
        )
    )
    board = board.with_panel(
        grid.place(
            grafana.series_panel(
                "Time since the last success against the RPO",
                "Age of each job's last successful run, against the RPO of the SLO that "
                "reads the monitor (a backup older than its RPO is data at risk).",
                [
                    query(
                        "max by (job) (time() - "
                        f"controlplane_job_last_success_timestamp_seconds{{{JOB}}})",
                        "{{job}} since success",
                    ),
                    query(f"max by (job) (controlplane_job_rpo_seconds{{{JOB}}})", "{{job}} RPO"),
                ],
                unit="s",
            )
        )
    )
    board = board.with_panel(
        grid.place(
            grafana.series_panel(
                "Late monitors",
                "Monitors whose run is late now (beat's overdue check).",
                [query("max(controlplane_jobs_overdue)", "late")],
            )
        )
    )
    board = board.with_panel(
        grid.place(
            grafana.series_panel(
                "Control plane beat jobs",
                "The control plane's own periodic jobs (retention, synchronisation...): runs "
                "by result and time since each last succeeded.",
                [
                    query(
                        "sum by (job, result) (increase(job_runs_total[$__rate_interval]))",
                        "{{job}} {{result}}",
                    ),
                    query(
                        "max by (job) (time() - job_last_success_timestamp_seconds)",
                        "{{job}} since success (s)",
                    ),
                ],
            )
        )
    )
    return grafana.render(board)
