"""Dashboards and targets to check: the shared ones and per-SLO dashboards of every
kind of SLO, with Grafana's variables replaced by sample values."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from controlplane.dashboards import export, grafana
from controlplane.slo.definition import Definition, Latency, Ratio, Rpo, Threshold, Window

AT = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
REQUESTS = "http_server_request_duration_seconds"
DEFINITIONS = [
    (
        "acme",
        Definition(
            slug="api-availability",
            name="API availability",
            indicator=Ratio(
                total=f"{REQUESTS}_count",
                bad=f'{REQUESTS}_count{{http_response_status_code=~"5.."}}',
            ),
            objective=99.9,
            window=Window.named("30d"),
            min_events=100,
        ),
    ),
    (
        "acme",
        Definition(
            slug="api-latency",
            name="API latency",
            indicator=Latency(REQUESTS, 0.2, "0.2", 'http_route="/api/v1/slos/"'),
            objective=95,
            window=Window.named("month", "Europe/Paris"),
            ticket=False,
        ),
    ),
    (
        "globex",
        Definition(
            slug="backup-age",
            name="Backup age",
            indicator=Threshold(
                "time() - controlplane_job_last_success_timestamp_seconds", "<", 86400
            ),
            objective=99,
            window=Window.named("week"),
            budgeting="timeslices",
            slice_length=timedelta(minutes=10),
            min_events=12,
        ),
    ),
    (
        "globex",
        Definition(
            slug="good-requests",
            name="Good requests by slices",
            indicator=Ratio(
                total=f"{REQUESTS}_count",
                good=f'{REQUESTS}_count{{http_response_status_code="200"}}',
            ),
            objective=99.5,
            window=Window.named("28d"),
            budgeting="timeslices",
            slice_target=0.99,
        ),
    ),
    (
        "globex",
        Definition(
            slug="backup-rpo",
            name="Backup RPO",
            indicator=Rpo(job="backup", target=timedelta(hours=24)),
            objective=99,
            window=Window.named("30d"),
            budgeting="timeslices",
        ),
    ),
]

# Grafana's variables and their sample values, longest names first.
VARIABLES = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "route": ".*",
    "job": ".*",
    "span": "1d",
    "slo": "api-availability",
    "organization": "acme",
    "window": "30d",
}


def substitute(expr: str) -> str:
    """The expression as Grafana sends it with the sample values; a variable the table
    does not know stays, so that Prometheus refuses it."""

    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        return VARIABLES.get(name, match.group(0))

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", value, expr)


def exported():
    return export.build_all(DEFINITIONS, AT, site_url="https://cp.example.com")


def prometheus_targets(dashboards) -> list[tuple[str, str, str]]:
    """(file, panel title or variable, PromQL) for every Prometheus query: panel targets
    and the selectors of label_values() variables."""
    found = []
    for name, doc in dashboards.items():
        for panel in grafana.panels(doc):
            for target in panel.get("targets", []):
                if target.get("datasource", {}).get("uid") == grafana.PROMETHEUS.uid:
                    found.append((name, panel["title"], target["expr"]))
        for variable in doc.get("templating", {}).get("list", []):
            if variable.get("type") != "query":
                continue
            matched = re.fullmatch(r"label_values\((.*), (\w+)\)", variable["query"])
            assert matched, f"{name}: variable {variable['name']}: {variable['query']}"
            found.append((name, f"variable {variable['name']}", matched.group(1)))
    return found
