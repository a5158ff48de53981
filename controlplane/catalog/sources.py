"""Reaching metric sources, and the one place their health is written.

Every context that reads a source (alerting today, SLOs next) asks `client_for`
for its client and reports what it learnt with `record_health`; both sit next to
`MetricSource` so those contexts depend on the catalog, never on each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import requests
from django.db.models import Q

from controlplane.catalog.models import MetricSource, SourceHealth
from controlplane.promql.client import PrometheusClient

# A healthy source is written at most this often: every worker reads the same few
# sources, and a write per query would make their health row the hottest in the database.
HEALTH_WRITE_INTERVAL = timedelta(seconds=30)


def client_for(source: MetricSource, session: requests.Session | None = None) -> PrometheusClient:
    headers = {"Authorization": source.auth_header} if source.auth_header else None
    if session is None:
        session = requests.Session()
        # Sources are reached directly: proxy variables of the worker's environment
        # do not apply (and reading them costs a scan of the environment per query).
        session.trust_env = False
    return PrometheusClient(source.url, timeout=source.timeout, headers=headers, session=session)


def record_health(outcomes: Mapping[int, str | None], now: datetime) -> None:
    """Record, per source id, None (it answered) or the problem that stopped it.

    `failing_since` is set by the first failure only, so the `source.down` clock
    runs from when the source really started failing, whoever saves the source.
    """
    if not outcomes:
        return
    known = set(
        SourceHealth.objects.filter(source_id__in=list(outcomes)).values_list(
            "source_id", flat=True
        )
    )
    missing = [pk for pk in outcomes if pk not in known]
    if missing:
        # ignore_conflicts: two workers may report a new source's first answer at once.
        SourceHealth.objects.bulk_create(
            [SourceHealth(source_id=pk) for pk in missing], ignore_conflicts=True
        )
    for source_id, problem in outcomes.items():
        health = SourceHealth.objects.filter(source_id=source_id)
        if problem is None:
            health.filter(
                Q(failing_since__isnull=False)
                | Q(last_success_at__isnull=True)
                | Q(last_success_at__lt=now - HEALTH_WRITE_INTERVAL)
            ).update(failing_since=None, last_error="", last_success_at=now)
        else:
            health.filter(failing_since__isnull=True).update(failing_since=now)
            health.update(last_error=problem)


def failing_since(organization_id: int) -> list[tuple[str, datetime]]:
    """(source name, failing since) for each failing source of the organisation."""
    return list(
        SourceHealth.objects.filter(
            source__organization_id=organization_id, failing_since__isnull=False
        ).values_list("source__name", "failing_since")
    )
