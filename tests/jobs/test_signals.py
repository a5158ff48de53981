"""The jobs.* internal signals, the built-in rule etl.job.failure reading them (no
Prometheus), and the migration that brings the overdue check and the rule."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta

import pytest
from django.apps import apps as django_apps
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from controlplane.alerting import evaluation
from controlplane.alerting.builtin import BUILTIN_RULES
from controlplane.alerting.internal_signals import measure, registry
from controlplane.alerting.models import Alert, AlertRule
from controlplane.catalog.models import Organization
from controlplane.jobs import signals, tasks
from controlplane.jobs.models import JobRun
from controlplane.jobs.signals import Beginning, Standing
from runbooks.models import Runbook
from tests.factories import make_job

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TRACE_A, TRACE_B, TRACE_C = "a" * 32, "b" * 32, "c" * 32
migration = importlib.import_module("controlplane.jobs.migrations.0002_check_and_builtin_rule")


def standing(status="up", outcome="", kind="payroll", job="payroll-export", success=None):
    return Standing(job, kind, status, outcome, success)


@pytest.mark.parametrize(
    ("status", "last_outcome", "failed", "late", "trouble"),
    [
        ("new", "", False, False, ()),
        ("up", "success", False, False, ()),
        ("running", "success", False, False, ()),
        ("failed", "failure", True, False, signals.FAILED_OUTCOMES),
        ("failed", "timeout", True, False, signals.FAILED_OUTCOMES),
        # A failed job started again is still failed until a run succeeds.
        ("running", "failure", True, False, signals.FAILED_OUTCOMES),
        ("up", "too_fast", True, False, signals.FAILED_OUTCOMES),
        ("late", "missed", False, True, signals.LATE_OUTCOMES),
        # A failed job whose next run is missed: late comes first.
        ("late", "failure", True, True, signals.LATE_OUTCOMES),
        # A late job that started: running, no longer late.
        ("running", "missed", False, False, ()),
        # Paused: an operator said "do not tell me".
        ("paused", "failure", False, False, ()),
    ],
)
def test_failed_late_and_the_trouble_of_a_standing(status, last_outcome, failed, late, trouble):
    one = standing(status, last_outcome)

    assert signals.is_failed(one) is failed
    assert signals.is_late(one) is late
    assert signals.trouble(one) == trouble


def test_failed_and_late_give_every_monitor_a_series_and_age_only_those_that_succeeded():
    found = [
        standing("failed", "failure", job="payroll-export", success=NOW - timedelta(hours=26)),
        standing("late", "missed", kind="backup", job="nightly-backup"),
        standing("up", "success", kind="etl", job="etl-load", success=NOW - timedelta(seconds=90)),
    ]

    def values(series):
        return {(s.labels["job"], s.labels["kind"]): s.value for s in series}

    assert values(signals.failed_series(found)) == {
        ("payroll-export", "payroll"): 1.0,
        ("nightly-backup", "backup"): 0.0,
        ("etl-load", "etl"): 0.0,
    }
    assert values(signals.late_series(found)) == {
        ("payroll-export", "payroll"): 0.0,
        ("nightly-backup", "backup"): 1.0,
        ("etl-load", "etl"): 0.0,
    }
    assert values(signals.age_series(found, NOW)) == {
        ("payroll-export", "payroll"): 26 * 3600.0,
        ("etl-load", "etl"): 90.0,
    }


def test_the_business_signal_holds_only_troubled_etl_payroll_and_equipment_monitors():
    found = [
        standing("failed", "timeout", kind="payroll", job="payroll-export"),
        standing("late", "missed", kind="equipment", job="equipment-sync"),
        standing("failed", "failure", kind="etl", job="etl-load"),  # no run to tell how
        standing("failed", "failure", kind="backup", job="nightly-backup"),  # not paged
        standing("up", "success", kind="etl", job="etl-fine"),
        standing("paused", "failure", kind="payroll", job="payroll-paused"),
    ]
    beginnings = {
        "payroll-export": Beginning("failure", TRACE_A),  # began as a failure, then timed out
        "equipment-sync": Beginning("missed", TRACE_B),
        "nightly-backup": Beginning("failure", TRACE_C),
    }

    series = signals.business_series(found, beginnings)

    def labelled(job, kind, outcome, trace_id):
        return {"job": job, "kind": kind, "outcome": outcome, "trace_id": trace_id}

    assert [(dict(s.labels), s.value) for s in series] == [
        (labelled("equipment-sync", "equipment", "missed", TRACE_B), 1.0),
        (labelled("etl-load", "etl", "failure", ""), 1.0),
        (labelled("payroll-export", "payroll", "failure", TRACE_A), 1.0),
    ]


# --- on the database -----------------------------------------------------------------


def run(monitor, outcome: str, trace_id: str, minutes: int) -> JobRun:
    at = timezone.now() - timedelta(hours=2) + timedelta(minutes=minutes)
    return JobRun.objects.create(
        monitor=monitor,
        outcome=outcome,
        trace_id=trace_id,
        started_at=at,
        finished_at=at if outcome else None,
        created_at=at,
    )


@pytest.mark.django_db
def test_the_signals_read_one_organisations_monitors(org, other_org):
    now = timezone.now()
    payroll = make_job(
        org,
        "payroll-export",
        state={
            "status": "failed",
            "last_outcome": "failure",
            "last_success": now - timedelta(days=1),
            "trouble_outcome": "failure",
            "trouble_trace_id": TRACE_A,
        },
    )
    make_job(
        org, "nightly-backup", kind="backup", state={"status": "late", "last_outcome": "missed"}
    )
    make_job(org, "etl-load", kind="etl", state={"status": "up", "last_outcome": "success"})
    make_job(other_org, "payroll-export", state={"status": "failed", "last_outcome": "failure"})
    run(payroll, "success", "", 0)
    run(payroll, "failure", TRACE_A, 10)

    def values(name):
        return {s.labels["job"]: s.value for s in measure(name, org.pk)}

    assert values("jobs.failed") == {"payroll-export": 1, "nightly-backup": 0, "etl-load": 0}
    assert values("jobs.late") == {"payroll-export": 0, "nightly-backup": 1, "etl-load": 0}
    [age] = values("jobs.last_success_age_seconds").values()
    assert 86400 <= age < 86400 + 60
    [series] = measure("jobs.business_failure", org.pk)  # the backup is not paged
    assert dict(series.labels) == {
        "job": "payroll-export",
        "kind": "payroll",
        "outcome": "failure",
        "trace_id": TRACE_A,
    }
    assert {"jobs.failed", "jobs.late", "jobs.last_success_age_seconds"} <= registry.keys()


# --- the built-in rule ---------------------------------------------------------------


@pytest.mark.django_db
def test_every_organisation_gets_the_rule_linked_to_its_runbook_and_it_fires_and_resolves(db):
    Runbook.objects.create(
        slug="etl-job-failure", title="ETL job failure", summary="s", body="b", owner="sre"
    )
    org = Organization.objects.create(slug="new", name="New")
    rule = AlertRule.objects.get(organization=org, key="etl.job.failure")
    assert (rule.builtin, rule.source, rule.runbook.slug) == (True, None, "etl-job-failure")
    assert (rule.severity, rule.op, rule.threshold) == ("critical", "", None)
    assert rule.for_duration == timedelta(0)  # the job's grace is the wait
    rule.full_clean()  # an internal signal the rule validation knows

    job = make_job(
        org,
        "payroll-export",
        state={
            "status": "failed",
            "last_outcome": "failure",
            "trouble_outcome": "failure",
            "trouble_trace_id": TRACE_A,
        },
    )
    make_job(org, "nightly-backup", kind="backup", state={"status": "failed"})
    run(job, "failure", TRACE_A, 0)
    evaluation.evaluate([rule], timezone.now())

    alert = Alert.objects.get(rule=rule)
    assert alert.state == "firing"
    assert alert.labels == {
        "job": "payroll-export",
        "kind": "payroll",
        "outcome": "failure",
        "trace_id": TRACE_A,
    }
    assert alert.annotations["summary"] == (
        f"payroll job payroll-export: failure (trace {TRACE_A})"
    )
    assert "/jobs/payroll-export/" in alert.annotations["description"]

    # The job succeeds: the monitor is up, the alert resolves.
    run(job, "success", "", 30)
    job.state.status, job.state.last_outcome = "up", "success"
    job.state.save()
    evaluation.evaluate([rule], timezone.now() + timedelta(minutes=1))
    alert.refresh_from_db()
    assert alert.state == "resolved"


@pytest.mark.django_db
def test_a_migration_brings_the_check_on_beat_and_the_rule_to_existing_organisations(org):
    check = PeriodicTask.objects.get(task="jobs.check_job_monitors")
    assert (check.enabled, check.interval.every, check.interval.period) == (True, 30, "seconds")

    AlertRule.objects.filter(organization=org, key="etl.job.failure").delete()
    migration.seed_rule(django_apps, None)
    migration.seed_rule(django_apps, None)  # idempotent

    rule = AlertRule.objects.get(organization=org, key="etl.job.failure")
    rule.full_clean()
    # Frozen as the rule came: the same as the built-in one today.
    [spec] = [spec for spec in BUILTIN_RULES if spec["key"] == "etl.job.failure"]
    for field in ("name", "severity", "expr", "op", "threshold", "annotations"):
        assert getattr(rule, field) == spec[field], field


@pytest.mark.django_db
def test_beats_check_makes_a_missed_run_late_and_the_business_signal_reports_it(org):
    now = timezone.now()
    job = make_job(
        org,
        "equipment-sync",
        kind="equipment",
        state={
            "status": "up",
            "last_outcome": "success",
            "next_expected": now - timedelta(hours=1),
        },
    )

    checked = tasks.check_job_monitors.apply().get()

    assert (checked["missed"], checked["overdue"]) == (1, 1)
    assert JobRun.objects.get(monitor=job).outcome == "missed"
    [series] = measure("jobs.business_failure", org.pk)
    assert len(series.labels["trace_id"]) == 32
    assert dict(series.labels) == {
        "job": "equipment-sync",
        "kind": "equipment",
        "outcome": "missed",
        # No run to trace: the trace of beat's check that saw it.
        "trace_id": series.labels["trace_id"],
    }
    assert tasks.check_job_monitors.apply().get()["missed"] == 0  # recorded once
