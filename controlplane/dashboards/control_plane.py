"""The control plane's own health: its API, Celery, calendars, monitored jobs, rule
evaluations and notifications, read from the control plane's /metrics."""

from __future__ import annotations

from typing import Any

from controlplane.dashboards import grafana
from controlplane.dashboards.grafana import query

UID = "controlplane-overview"
TITLE = "Control plane"
HTTP = "http_server_request_duration_seconds"
ROUTE = 'http_route=~"$route"'
JOB = 'job=~"$job"'


def build() -> dict[str, Any]:
    grid = grafana.Grid()
    board = grafana.new_dashboard(
        UID,
        TITLE,
        "The control plane's API, queues, calendars, monitored jobs, rule evaluations "
        "and notifications. docs/observability/dashboards.md describes every panel.",
    )
    board = board.with_variable(grafana.label_variable("route", "http_route", f"{HTTP}_count"))
    board = board.with_variable(grafana.label_variable("job", "job", "controlplane_job_runs_total"))
    for annotation in grafana.annotations():
        board = board.annotation(annotation)

    board = board.with_row(grid.row("API"))
    board = board.with_panel(
        grid.place(
            grafana.series_panel(
                "API request rate by route",
                "Requests answered per second, by route template (pick the planning routes "
                "with the route variable).",
                [
                    query(
                        f"sum by (http_route) (rate({HTTP}_count{{{ROUTE}}}[$__rate_interval]))",
                        "{{http_route}}",
                    )
                ],
                unit="reqps",
            ),
            width=8,
        )
    )
    board = board.with_panel(
        grid.place(
            grafana.series_panel(
                "API 5xx ratio by route",
                "Share of requests answered with a server error (5xx), by route.",
                [
                    query(
                        f"sum by (http_route) (rate({HTTP}_count{{{ROUTE},"
                        f'http_response_status_code=~"5.."}}[$__rate_interval]))\n/\n'
                        f"sum by (http_route) (rate({HTTP}_count{{{ROUTE}}}[$__rate_interval]))",
                        "{{http_route}}",
                    )
                ],
                unit="percentunit",
                minimum=0,
            ),
            width=8,
        )
    )
    board = board.with_panel(
        grid.place(
            grafana.series_panel(
                "API p95 latency by route",
                "95th percentile of request duration, by route. Exemplars (the dots) carry "
                "the trace id of a request in the bucket: click one to open its trace.",
                [
                    query(
                        "histogram_quantile(0.95, sum by (http_route, le) "
                        f"(rate({HTTP}_bucket{{{ROUTE}}}[$__rate_interval])))",
                        "{{http_route}}",
                        exemplar=True,
                    )
                ],
                unit="s",
            ),
            width=8,
        )
    )

    board = board.with_row(grid.row("Queues and calendars"))
    board = board.with_panel(
        grid.place(
            grafana.series_panel(
                "Celery queue backlog",
                "Messages waiting in each Celery queue, read from the broker at scrape time.",
                [query("sum by (queue) (celery_queue_length)", "{{queue}}")],
            ),
            width=8,
        )
    )
    board = board.with_panel(
        grid.place(
            grafana.series_panel(
                "ICS sync delay per schedule",
                "Age of each on-call schedule's last good calendar synchronisation.",
                [
                    query(
                        "max by (schedule) (controlplane_calendar_sync_delay_seconds)",
                        "{{schedule}}",
                    )
                ],
                unit="s",
            ),
            width=8,
        )
    )
    board = board.with_panel(
        grid.place(
            grafana.series_panel(
                "Calendar synchronisations",
                "Schedules due and not yet synchronised (backlog), and synchronisations "
                "by outcome.",
                [
                    query("max(controlplane_calendar_sync_backlog)", "backlog"),
                    query(
                        "sum by (outcome) "
                        "(increase(controlplane_calendar_syncs_total[$__rate_interval]))",
                        "{{outcome}}",
                    ),
                ],
            ),
            width=8,
        )
    )

    board = board.with_row(grid.row("Monitored jobs"))
    board = board.with_panel(
        grid.place(
            grafana.series_panel(
                "Job runs by job and outcome",
                "Runs recorded by the job monitors (payroll, equipment, ETL, backup...), by "
                "outcome.",
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
                "Job failures by job",
                "Runs that failed, timed out, finished too fast or were missed, by job; "
                "late monitors now (overdue).",
                [
                    query(
                        "sum by (job) (increase(controlplane_job_runs_total"
                        f'{{{JOB},outcome!="success"}}[$__rate_interval]))',
                        "{{job}}",
                    ),
                    query("max(controlplane_jobs_overdue)", "overdue monitors"),
                ],
                bars=True,
            )
        )
    )

    board = board.with_row(grid.row("Alerting and paging"))
    board = board.with_panel(
        grid.place(
            grafana.series_panel(
                "Rule evaluations by result",
                "Alert rule evaluations per second, by result (ok, source_error, bad_query, "
                "error).",
                [
                    query(
                        "sum by (result) "
                        "(rate(controlplane_rule_evaluations_total[$__rate_interval]))",
                        "{{result}}",
                    )
                ],
                unit="ops",
            ),
            width=8,
        )
    )
    board = board.with_panel(
        grid.place(
            grafana.series_panel(
                "Alerts firing by severity",
                "Alerts firing now, not acknowledged, by severity.",
                [query("sum by (severity) (controlplane_alerts_firing)", "{{severity}}")],
            ),
            width=8,
        )
    )
    board = board.with_panel(
        grid.place(
            grafana.series_panel(
                "Notification queue",
                "Notifications not yet delivered, by state.",
                [query("sum by (state) (controlplane_notification_queue_depth)", "{{state}}")],
            ),
            width=8,
        )
    )
    board = board.with_panel(
        grid.place(
            grafana.series_panel(
                "Notifications by channel kind and outcome",
                "Notification attempts by channel kind and outcome (sent, retry, dead).",
                [
                    query(
                        "sum by (channel_kind, outcome) "
                        "(increase(controlplane_notifications_total[$__rate_interval]))",
                        "{{channel_kind}} {{outcome}}",
                    )
                ],
                bars=True,
            )
        )
    )
    board = board.with_panel(
        grid.place(
            grafana.series_panel(
                "Notification delivery latency p95",
                "95th percentile from an alert's opening to the delivery of a trigger "
                "notification about it.",
                [
                    query(
                        "histogram_quantile(0.95, sum by (le) "
                        "(rate(controlplane_notification_delivery_seconds_bucket"
                        "[$__rate_interval])))",
                        "p95",
                    )
                ],
                unit="s",
            )
        )
    )
    return grafana.render(board)
