"""The SLO evaluator's metrics, declared next to the code that writes them.

Labels take values from small known sets, never SLO slugs: per-SLO numbers are the
exported recording rules' (`manage.py export_prometheus_rules`) and the API's.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

slo_evaluations = Counter(
    "controlplane_slo_evaluations_total",
    "SLO evaluations, by result (ok, source_error, error, retired).",
    ["result"],
)
slo_evaluation_duration = Histogram(
    "controlplane_slo_evaluation_duration_seconds",
    "Duration of one SLO evaluation, its queries included.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
