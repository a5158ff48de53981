"""Reaching metric sources, and the one place their health is written.

Every context that reads a source (alerting today, SLOs next) asks `client_for`
for its client and reports what it learnt with `record_health`; both sit next to
`MetricSource` so those contexts depend on the catalog, never on each other.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

from django.db.models import Q

from controlplane.catalog import outbound
from controlplane.catalog.models import MetricSource, SourceHealth
from controlplane.promql.client import PrometheusClient, SourceError

logger = logging.getLogger(__name__)

# A healthy source is written at most this often: every worker reads the same few
# sources, and a write per query would make their health row the hottest in the database.
HEALTH_WRITE_INTERVAL = timedelta(seconds=30)


def client_for(source: MetricSource, guard: outbound.Outbound | None = None) -> PrometheusClient:
    """The source's client, reaching it through the outbound guard (policy SOURCES).

    Pass `guard` to share one pool of connections between clients.
    """
    headers = {"Authorization": source.auth_header} if source.auth_header else None
    return PrometheusClient(
        source.url,
        timeout=source.timeout,
        headers=headers,
        guard=guard or outbound.Outbound(outbound.SOURCES),
    )


def record_health(outcomes: Mapping[int, SourceError | str | None], now: datetime) -> None:
    """Record, per source id, None (it answered) or what stopped it: the error, or
    its message (the kind of failure is then logged as unknown).

    `failing_since` is set by the first failure only, so the `source.down` clock
    runs from when the source really started failing, whoever saves the source.
    Going down and coming back are logged once each, by whichever worker's write
    made the change, however many rules and workers saw it.
    """
    if not outcomes:
        return
    failing = dict(
        SourceHealth.objects.filter(source_id__in=list(outcomes)).values_list(
            "source_id", "failing_since"
        )
    )
    missing = [pk for pk in outcomes if pk not in failing]
    if missing:
        # ignore_conflicts: two workers may report a new source's first answer at once.
        SourceHealth.objects.bulk_create(
            [SourceHealth(source_id=pk) for pk in missing], ignore_conflicts=True
        )
    for source_id, problem in outcomes.items():
        health = SourceHealth.objects.filter(source_id=source_id)
        if problem is None:
            since = failing.get(source_id)
            # Compare-and-set on the failure read above: of the workers that saw the
            # source come back, one clears it, and logs it.
            if since is not None and health.filter(failing_since=since).update(
                failing_since=None, last_error="", last_success_at=now
            ):
                _log_recovered(source_id, now - since)
                continue
            health.filter(failing_since__isnull=True).filter(
                Q(last_success_at__isnull=True) | Q(last_success_at__lt=now - HEALTH_WRITE_INTERVAL)
            ).update(last_success_at=now)
        else:
            message = problem.message if isinstance(problem, SourceError) else problem
            kind = problem.kind if isinstance(problem, SourceError) else "unknown"
            went_down = health.filter(failing_since__isnull=True).update(failing_since=now)
            health.update(last_error=message)
            if went_down:
                _log_down(source_id, kind, message)


def _about(source_id: int) -> dict:
    """The log fields naming a source; read only when its health changes."""
    row = (
        MetricSource.objects.filter(pk=source_id)
        .values("name", "organization_id", "organization__slug")
        .first()
    )
    if row is None:  # deleted meanwhile
        return {"source_id": source_id}
    return {
        "source_id": source_id,
        "source": row["name"],
        "organization_id": row["organization_id"],
        "organization": row["organization__slug"],
    }


def _log_down(source_id: int, kind: str, message: str) -> None:
    about = _about(source_id)
    logger.warning(
        "metric source %s is down (%s)",
        about.get("source", source_id),
        kind,
        extra={**about, "error_kind": kind, "error": message},
    )


def _log_recovered(source_id: int, down_for: timedelta) -> None:
    about = _about(source_id)
    seconds = round(max(down_for.total_seconds(), 0.0), 3)
    logger.info(
        "metric source %s is back after %g s",
        about.get("source", source_id),
        seconds,
        extra={**about, "down_seconds": seconds},
    )


def failing_since(organization_id: int) -> list[tuple[str, datetime]]:
    """(source name, failing since) for each failing source of the organisation."""
    return list(
        SourceHealth.objects.filter(
            source__organization_id=organization_id, failing_since__isnull=False
        ).values_list("source__name", "failing_since")
    )
