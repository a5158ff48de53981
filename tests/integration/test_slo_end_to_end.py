"""SLOs end to end: a real Celery worker and beat, a real Prometheus, a Slack receiver on
loopback. The SLO's data burns fast right now, beat's `slo.evaluate_due_slos` queues it,
the worker evaluates it at wall-clock time and opens its fast page alert, and the SLO's
escalation policy delivers it to Slack carrying the evaluation's trace id.

Beat evaluates at the current time, so the series are generated when the test starts:
a sample each minute from three days ago to a quarter of an hour ahead (samples ahead
of a query's time are simply not read), errors at 50 % over the last half hour and on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from controlplane.alerting.models import Alert
from controlplane.catalog.models import MetricSource
from controlplane.slo.models import SLOEvaluation
from tests import waiting
from tests.factories import make_channel, make_policy, make_slo
from tests.integration.conftest import schedule_ticks
from tests.integration.prometheus import PrometheusServer
from tests.services import require_postgresql
from tests.slo.series import Events, Grid, counter

pytestmark = pytest.mark.integration

PAGING_TICKS = (
    "alerting: dispatch alert events",
    "paging: escalate",
    "paging: deliver notifications",
)
SLO_TICK = "slo: evaluate due SLOs"


def burning_now(now: datetime):
    """1,000 requests a minute from three days ago, half of them failing from 30
    minutes ago until 15 minutes ahead: at 99 % the last hour burns at 25 and more, the
    SLO window at about 0.35 % errors (budget left, so the status is `breaching`)."""
    start, end = now - timedelta(days=3), now + timedelta(minutes=15)
    total = Events(start, end, per_minute=1_000)
    bad = Events(start, end).add(now - timedelta(minutes=30), end, per_minute=500)
    grid = Grid.between(start, end)
    return {
        **counter("checkout_requests_total", {"code": "200"}, total.minus(bad), grid),
        **counter("checkout_requests_total", {"code": "500"}, bad, grid),
    }


def seed_slo_tick() -> None:
    """The migration's tick, made to run every second (its 15 s would only slow the test)."""
    import importlib

    from django.apps import apps

    importlib.import_module("controlplane.slo.migrations.0002_schedule").seed(apps, None)
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period="seconds")
    PeriodicTask.objects.filter(name=SLO_TICK).update(
        interval=every_second, expire_seconds=None, enabled=True
    )


def test_a_fast_burn_is_evaluated_by_beat_and_pages_slack_with_its_trace_id(
    celery_workers, org, slack_receiver, tmp_path
):
    require_postgresql()  # the worker, beat and the test share the database at once
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    prometheus = PrometheusServer.backfilled(tmp_path, burning_now(now))
    try:
        source = MetricSource.objects.create(
            organization=org, name="prom", url=prometheus.url, timeout=10
        )
        slack = make_channel(org, "ops-slack", "slack", url=f"{slack_receiver.url}/hooks/slo")
        policy = make_policy(org, "checkout-on-call", steps=[(0, [slack])])
        slo = make_slo(
            org,
            "checkout-availability",
            source=source,
            bad='checkout_requests_total{code="500"}',
            total="checkout_requests_total",
            objective=99.0,
            escalation_policy=policy,
        )
        schedule_ticks(*PAGING_TICKS)
        seed_slo_tick()
        assert set(PeriodicTask.objects.filter(enabled=True).values_list("name", flat=True)) == {
            *PAGING_TICKS,
            SLO_TICK,
        }
        worker = celery_workers.start(
            "solo", {"ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8,::1/128"}, wait=False
        )
        beat = celery_workers.start_beat(wait=False)
        celery_workers.until_ready(worker, beat)
        log = celery_workers.log_of(worker)

        alert = waiting.until(
            lambda: Alert.objects.filter(slo=slo).first(),
            what="beat's SLO tick and the worker to open the SLO's page alert",
            process=worker,
            log=log,
        )
        evaluated = SLOEvaluation.objects.get(slo=slo)
        assert evaluated.status == "breaching", evaluated.last_error
        assert evaluated.evaluated_at >= now  # at wall-clock time, by beat's schedule
        assert alert.labels == {
            "slo": "checkout-availability",
            "severity": "page",
            "burn_tier": "fast",
            "long_window": "1h",
            "short_window": "5m",
        }
        assert alert.trace_id, "opened in the evaluation's trace"
        assert alert.trace_id == evaluated.trace_id

        [told] = waiting.until(
            lambda: [n for n in slack_receiver.delivered() if n.alert_id == alert.pk],
            what="the Slack receiver to be told of the SLO's page",
            process=worker,
            log=log,
        )
        assert (told.event, told.trace_id) == ("trigger", alert.trace_id)
        assert all(request.valid for request in slack_receiver.requests)
    finally:
        prometheus.stop()
