"""The alerting engine's metrics, declared next to the code that writes them.

Labels take values from small known sets (results, severities, kinds), never ids.
Under PROMETHEUS_MULTIPROC_DIR a gauge's `multiprocess_mode` says how processes
merge: `mostrecent` for a value one periodic task sets.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVALUATION_DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# How late an evaluation starts after its slot: well under a second when healthy.
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)

rule_evaluations = Counter(
    "controlplane_rule_evaluations_total",
    "Alert rule evaluations, by result (ok, source_error, bad_query, error).",
    ["result"],
)
rule_evaluation_duration = Histogram(
    "controlplane_rule_evaluation_duration_seconds",
    "Duration of one alert rule evaluation, its share of the query included.",
    buckets=EVALUATION_DURATION_BUCKETS,
)
rule_evaluation_lag = Histogram(
    "controlplane_rule_evaluation_lag_seconds",
    "How long after its scheduled slot a rule's evaluation started.",
    buckets=LAG_BUCKETS,
)
alerts_firing = Gauge(
    "controlplane_alerts_firing",
    "Alerts currently firing (not acknowledged, not test alerts), by severity.",
    ["severity"],
    multiprocess_mode="mostrecent",
)
alert_events_dispatched = Counter(
    "controlplane_alert_events_dispatched_total",
    "Alert timeline events taken from the outbox, by outcome (done, failed).",
    ["outcome"],
)
