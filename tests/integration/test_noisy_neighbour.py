"""One organisation's black-hole sources cannot stall another's alerting: with two real
workers, while four sources of one organisation accept connections and never answer,
another organisation's rule is still evaluated at its slots."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from controlplane.alerting.models import AlertRule, RuleEvaluation
from controlplane.alerting.tasks import evaluate_due_rules
from controlplane.catalog.models import MetricSource, Organization
from tests.services import BlackHole, require_postgresql

pytestmark = pytest.mark.integration

WARM_UP = 6.0  # seconds: the black holes' first timeouts, before the breaker opens
MEASURED = 12.0  # seconds in which the quiet organisation's slots are counted
TICK = 0.25  # as beat ticks (twice a second in production)


def test_black_hole_sources_of_one_organisation_leave_anothers_rules_on_schedule(
    celery_workers,
):
    require_postgresql()
    noisy = Organization.objects.create(slug="noisy", name="Noisy")
    quiet = Organization.objects.create(slug="quiet", name="Quiet")
    holes = [BlackHole() for _ in range(4)]
    try:
        for n, hole in enumerate(holes):
            source = MetricSource.objects.create(
                organization=noisy, name=f"hole{n}", url=hole.url, timeout=30
            )
            AlertRule.objects.create(
                organization=noisy,
                key=f"stalled.{n}",
                name="stalled",
                source=source,
                expr="up",
                interval=timedelta(seconds=2),
            )
        watched = AlertRule.objects.create(
            organization=quiet,
            key="quiet.alerts",
            name="alerts",
            expr="alerts.firing",
            interval=timedelta(seconds=1),
        )
        celery_workers.start("one")
        celery_workers.start("two")

        slots: set = set()
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < WARM_UP + MEASURED:
            evaluate_due_rules()  # beat's tick: queues, never queries
            slot = RuleEvaluation.objects.get(rule=watched).slot_at
            if elapsed >= WARM_UP and slot is not None:
                slots.add(slot)
            time.sleep(TICK)
        asked = sum(hole.connections for hole in holes)
    finally:
        for hole in holes:
            hole.close()

    # Every slot would be MEASURED of them; a worker held by each black hole in turn
    # (the sources' 30 s cut to their rules' 2 s) would leave a fraction of that.
    assert len(slots) >= 0.5 * MEASURED, (
        f"the quiet organisation's rule served {len(slots)} of about {MEASURED:g} slots"
    )
    # Each black hole asked once, then probed one at a time for the organisation after
    # doubling backoffs: a handful, not one per source per interval (about 36).
    assert asked <= 12, f"the black holes were asked {asked} times"
