"""The limits the Jobs dashboard draws against each monitor's runs: its minimum and maximum
duration (controlplane_job_duration_limit_seconds) and the RPO of the SLO that reads it
(controlplane_job_rpo_seconds), set by beat's overdue check from two queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from controlplane.catalog.actors import BEAT
from controlplane.jobs import metrics, overdue
from controlplane.slo.models import SLO, SLOEvaluation
from tests.factories import make_job

NOW = datetime(2026, 4, 1, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)


def limit(job: str, which: str) -> float | None:
    return REGISTRY.get_sample_value(
        "controlplane_job_duration_limit_seconds", {"job": job, "limit": which}
    )


def rpo(job: str) -> float | None:
    return REGISTRY.get_sample_value("controlplane_job_rpo_seconds", {"job": job})


def make_rpo_slo(org, monitor, slug: str = "backup-rpo", **fields) -> SLO:
    slo = SLO(
        organization=org,
        slug=slug,
        name=slug.replace("-", " ").capitalize(),
        kind=SLO.Kind.RPO,
        job=monitor,
        objective=99.0,
        budgeting=SLO.Budgeting.TIMESLICES,
        **fields,
    )
    slo.full_clean()
    slo.save()
    SLOEvaluation.objects.create(slo=slo)
    return slo


# The pure decision -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("monitors", "rpos", "durations", "targets"),
    [
        pytest.param([], [], {}, {}, id="nothing"),
        pytest.param([("a", "etl", None, None)], [], {}, {}, id="no limits, no series"),
        pytest.param(
            [("a", "etl", MINUTE, HOUR)],
            [],
            {("a/etl", "min"): 60.0, ("a/etl", "max"): 3600.0},
            {},
            id="both limits",
        ),
        pytest.param(
            [("a", "etl", None, 2 * HOUR), ("b", "etl", 30 * MINUTE, None)],
            [],
            {("a/etl", "max"): 7200.0, ("b/etl", "min"): 1800.0},
            {},
            id="one slug in two organisations, one limit each",
        ),
        pytest.param(
            [("a", "backup", None, None)],
            [("a", "backup", None)],
            {},
            {"a/backup": 86400.0},
            id="rpo without a target: the default",
        ),
        pytest.param(
            [("a", "backup", None, None)],
            [("a", "backup", 12 * HOUR), ("a", "backup", 6 * HOUR), ("a", "backup", None)],
            {},
            {"a/backup": 21600.0},
            id="several rpo slos: the strictest",
        ),
    ],
)
def test_limit_values(monitors, rpos, durations, targets):
    assert metrics.limit_values(monitors, rpos, DAY) == (durations, targets)


# Set by the overdue check ----------------------------------------------------------------


def test_the_check_publishes_the_configured_durations(org):
    etl = make_job(org, "nightly-etl", kind="etl", min_duration=5 * MINUTE, max_duration=2 * HOUR)
    capped = make_job(org, "payroll-export", max_duration=30 * MINUTE)
    bare = make_job(org, "equipment-sync", kind="equipment")

    overdue.check(NOW, BEAT)

    job = metrics.job_label(etl)
    assert (limit(job, "min"), limit(job, "max")) == (300.0, 7200.0)
    job = metrics.job_label(capped)
    assert (limit(job, "min"), limit(job, "max")) == (None, 1800.0)
    job = metrics.job_label(bare)
    assert (limit(job, "min"), limit(job, "max"), rpo(job)) == (None, None, None)


def test_the_rpo_comes_from_the_enabled_rpo_slos_reading_the_monitor(org, other_org):
    backup = make_job(org, "nightly-backup", kind="backup")
    defaulted = make_job(org, "weekly-backup", kind="backup")
    switched_off = make_job(org, "archive-backup", kind="backup")
    theirs = make_job(other_org, "nightly-backup", kind="backup")
    make_rpo_slo(org, backup, "backup-rpo", recovery_target=6 * HOUR)
    make_rpo_slo(org, backup, "backup-rpo-loose", recovery_target=12 * HOUR)
    make_rpo_slo(org, defaulted, "weekly-rpo")
    make_rpo_slo(org, switched_off, "archive-rpo", enabled=False)
    make_rpo_slo(other_org, theirs, "backup-rpo", recovery_target=2 * HOUR)

    overdue.check(NOW, BEAT)

    assert rpo(metrics.job_label(backup)) == 6 * 3600.0
    assert rpo(metrics.job_label(defaulted)) == 24 * 3600.0
    assert rpo(metrics.job_label(switched_off)) is None
    assert rpo(metrics.job_label(theirs)) == 2 * 3600.0


def test_series_go_with_their_monitor_or_limit_or_slo(org):
    gone = make_job(org, "nightly-etl", kind="etl", min_duration=MINUTE, max_duration=HOUR)
    edited = make_job(org, "payroll-export", min_duration=MINUTE, max_duration=HOUR)
    backup = make_job(org, "nightly-backup", kind="backup", max_duration=HOUR)
    slo = make_rpo_slo(org, backup)
    overdue.check(NOW, BEAT)
    assert limit(metrics.job_label(gone), "max") == 3600.0
    assert rpo(metrics.job_label(backup)) == 86400.0
    gone_label = metrics.job_label(gone)

    gone.delete()
    edited.min_duration = None
    edited.save()
    slo.delete()
    overdue.check(NOW + MINUTE, BEAT)

    assert (limit(gone_label, "min"), limit(gone_label, "max")) == (None, None)
    job = metrics.job_label(edited)
    assert (limit(job, "min"), limit(job, "max")) == (None, 3600.0)
    job = metrics.job_label(backup)
    assert (limit(job, "max"), rpo(job)) == (3600.0, None)


def test_the_refresh_costs_two_queries_whatever_the_number_of_monitors(
    org, django_assert_num_queries
):
    for number in range(6):
        monitor = make_job(
            org, f"backup-{number}", kind="backup", min_duration=MINUTE, max_duration=HOUR
        )
        make_rpo_slo(org, monitor, f"rpo-{number}", recovery_target=(number + 1) * HOUR)

    with django_assert_num_queries(2):
        metrics.refresh_limits()

    assert [rpo(f"{org.slug}/backup-{number}") for number in range(6)] == [
        (number + 1) * 3600.0 for number in range(6)
    ]
    assert limit(f"{org.slug}/backup-5", "min") == 60.0
