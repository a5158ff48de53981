"""`audit.retention.job` reporting itself: each organisation's purge a run of its
built-in `audit-retention` monitor carrying the job's trace, one organisation's failure
recorded there while the others go on and the task fails, and the built-in rule
`audit.job.failure` firing for a failed run and for a missed one, linked to its runbook.

The purge itself is retention.py's (tests/audit/test_retention.py). Where a test needs
it to fail for one organisation, it wraps the real one and raises what a purge raises
when another purge holds the organisation's chain: on SQLite there is no second
connection to hold that lock, and the real lock is taken in the end-to-end test
(tests/integration/test_audit_retention_end_to_end.py).
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta

import pytest
from django.apps import apps as django_apps
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from prometheus_client import REGISTRY

from controlplane.alerting import evaluation
from controlplane.alerting.builtin import BUILTIN_RULES
from controlplane.alerting.internal_signals import Series, measure
from controlplane.alerting.models import Alert, AlertRule
from controlplane.audit import job, retention, tasks
from controlplane.catalog.models import Organization
from controlplane.jobs import schedule
from controlplane.jobs import tasks as job_tasks
from controlplane.jobs.models import JobMonitor, JobMonitorState, JobRun
from tests.factories import make_job, make_runbook
from tests.observability.conftest import _span_exporter, spans  # noqa: F401

pytestmark = pytest.mark.django_db

migration = importlib.import_module("controlplane.audit.migrations.0004_builtin_monitor_and_rule")
Outcome = JobRun.Outcome
Status = JobMonitorState.Status


def monitor_of(organization: Organization) -> JobMonitor:
    return JobMonitor.objects.get(organization=organization, slug="audit-retention")


def runs_of(organization: Organization) -> list[JobRun]:
    return list(JobRun.objects.filter(monitor=monitor_of(organization)).order_by("pk"))


def state_of(organization: Organization) -> JobMonitorState:
    return JobMonitorState.objects.get(monitor=monitor_of(organization))


def old_run(monitor: JobMonitor, days: int, outcome: str) -> JobRun:
    at = timezone.now() - timedelta(days=days)
    return JobRun.objects.create(
        monitor=monitor, created_at=at, started_at=at, finished_at=at, outcome=outcome
    )


def failing_for(monkeypatch, *failing: Organization | None) -> None:
    """The real purge, raising for `failing` what it raises when another purge holds
    the organisation's chain."""
    real = retention.purge

    def purge(organization, now, *args, **kwargs):
        if organization in failing:
            chain = organization.pk if organization is not None else 0
            raise retention.PurgeBusy(f"another purge of audit chain {chain} is running")
        return real(organization, now, *args, **kwargs)

    monkeypatch.setattr(retention, "purge", purge)


def hex_trace(span) -> str:
    return format(span.context.trace_id, "032x")


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def rule_of(organization: Organization, key: str) -> AlertRule:
    return AlertRule.objects.get(organization=organization, key=key)


# --- pure pieces ------------------------------------------------------------------------


def test_what_a_run_says_it_removed_and_why_it_failed():
    assert job.removed_note({"notifications": 3, "audit_events": 0, "job_runs": 12}) == (
        "audit_events: 0 removed\njob_runs: 12 removed\nnotifications: 3 removed\ntotal: 15 removed"
    )
    assert job.removed_note({}) == "Nothing is older than its retention."
    assert job.failure_note(retention.PurgeBusy("another purge of audit chain 7 is running")) == (
        "PurgeBusy: another purge of audit chain 7 is running"
    )


# --- the runs -----------------------------------------------------------------------------


def test_each_organisations_purge_is_a_successful_run_of_its_monitor_with_the_jobs_trace(
    org,
    other_org,
    spans,  # noqa: F811
):
    payroll = make_job(org, "payroll-export")
    old_run(payroll, 200, Outcome.SUCCESS)
    doomed = old_run(payroll, 150, Outcome.FAILURE)
    old_run(payroll, 1, Outcome.SUCCESS)
    before = timezone.now()

    answer = job.run()

    [job_span] = [s for s in spans.get_finished_spans() if s.name == "audit.retention.job"]
    trace = hex_trace(job_span)
    purges = {
        s.attributes.get("app.audit.organization"): s
        for s in spans.get_finished_spans()
        if s.name == "audit.retention.purge"
    }
    assert set(purges) == {"acme", "globex", None}  # None: the events of no organisation
    assert all(s.parent.span_id == job_span.context.span_id for s in purges.values())
    assert answer["trace_id"] == trace
    assert answer["failed"] == {}
    assert answer["removed"]["acme"]["job_runs"] == 1
    assert answer["removed"]["globex"]["job_runs"] == 0
    assert set(answer["removed"]) == {"acme", "globex", job.NO_ORGANIZATION}
    assert not JobRun.objects.filter(pk=doomed.pk).exists()

    for organization in (org, other_org):
        [run] = runs_of(organization)
        assert run.outcome == Outcome.SUCCESS
        assert (run.trace_id, run.span_id) == (
            trace,
            format(purges[organization.slug].context.span_id, "016x"),
        )
        assert before <= run.started_at <= run.finished_at <= timezone.now()
        assert run.duration == run.finished_at - run.started_at
        assert run.run_id is not None
        assert run.excerpt == job.removed_note(answer["removed"][organization.slug])
        state = state_of(organization)
        assert (state.status, state.last_outcome) == (Status.UP, Outcome.SUCCESS)
        assert state.next_expected == schedule.next_expected(
            monitor_of(organization), run.started_at
        )
        assert state.next_expected.astimezone(UTC).time().isoformat() == "03:30:00"
    assert "job_runs: 1 removed" in runs_of(org)[0].excerpt


def test_one_organisations_failure_is_recorded_there_the_others_go_on_and_the_task_fails(
    org, other_org, monkeypatch
):
    failing_for(monkeypatch, org)
    failures = sample("job_runs_total", job="audit.retention.job", result="failure")
    failed_runs = sample(
        "controlplane_job_runs_total", job="acme/audit-retention", outcome="failure"
    )

    result = tasks.retention.apply()

    assert result.failed()
    assert isinstance(result.result, job.RetentionFailed)
    assert str(result.result) == "the retention purge failed for 1 of them: acme"
    [failed] = runs_of(org)
    [succeeded] = runs_of(other_org)
    assert failed.outcome == Outcome.FAILURE
    assert failed.excerpt == f"PurgeBusy: another purge of audit chain {org.pk} is running"
    assert failed.finished_at is not None
    assert succeeded.outcome == Outcome.SUCCESS
    # One job, one trace: both organisations' runs carry it.
    assert len(failed.trace_id) == 32
    assert succeeded.trace_id == failed.trace_id
    state = state_of(org)
    assert (state.status, state.trouble_outcome, state.trouble_trace_id) == (
        Status.FAILED,
        Outcome.FAILURE,
        failed.trace_id,
    )
    assert state_of(other_org).status == Status.UP
    # Celery's failure, the job's metric and the monitor's.
    assert sample("job_runs_total", job="audit.retention.job", result="failure") == failures + 1
    assert sample("controlplane_job_runs_total", job="acme/audit-retention", outcome="failure") == (
        failed_runs + 1
    )
    assert measure("audit.job_failure", org.pk) == [
        Series({"job": "audit-retention", "outcome": "failure", "trace_id": failed.trace_id}, 1.0)
    ]
    assert measure("audit.job_failure", other_org.pk) == []


def test_the_events_of_no_organisation_failing_fail_the_task_not_an_organisations_run(
    org, monkeypatch
):
    failing_for(monkeypatch, None)

    with pytest.raises(job.RetentionFailed, match=r"1 of them: \(no organisation\)"):
        job.run()

    [run] = runs_of(org)
    assert run.outcome == Outcome.SUCCESS


def test_a_monitor_deleted_is_made_again_by_the_next_run_and_an_edited_one_is_kept(org, other_org):
    monitor_of(org).delete()
    edited = monitor_of(other_org)
    edited.grace = timedelta(hours=6)
    edited.save()

    job.run()

    assert monitor_of(org).grace == job.MONITOR["grace"]
    assert [run.outcome for run in runs_of(org)] == [Outcome.SUCCESS]
    assert monitor_of(other_org).grace == timedelta(hours=6)
    assert [run.outcome for run in runs_of(other_org)] == [Outcome.SUCCESS]


# --- the built-in monitor and rule --------------------------------------------------------


def test_a_new_organisation_gets_the_monitor_and_the_rule_linked_to_their_runbook():
    runbook = make_runbook(None, "audit-job-failure")
    before = timezone.now()

    organization = Organization.objects.create(slug="new", name="New")

    monitor = monitor_of(organization)
    monitor.full_clean()
    assert (monitor.kind, monitor.schedule_kind, monitor.cron, monitor.time_zone) == (
        "audit",
        "cron",
        "30 3 * * *",
        "UTC",
    )
    assert (monitor.grace, monitor.max_duration) == (timedelta(hours=3), timedelta(hours=2))
    assert monitor.runbook == runbook
    # Expected at the next 03:30 UTC: a night the job never runs is a missed run.
    state = state_of(organization)
    assert state.status == Status.NEW
    assert before < state.next_expected <= before + timedelta(days=1)
    assert state.next_expected.astimezone(UTC).time().isoformat() == "03:30:00"

    rule = rule_of(organization, "audit.job.failure")
    rule.full_clean()  # an internal signal the rule validation knows
    assert (rule.builtin, rule.source, rule.runbook) == (True, None, runbook)
    assert (rule.severity, rule.expr, rule.op, rule.threshold) == (
        "critical",
        "audit.job_failure",
        "",
        None,
    )


def test_the_monitor_expects_the_job_when_beat_runs_it():
    task = PeriodicTask.objects.get(task="audit.retention")
    crontab = task.crontab
    cron = " ".join(
        [
            crontab.minute,
            crontab.hour,
            crontab.day_of_month,
            crontab.month_of_year,
            crontab.day_of_week,
        ]
    )
    assert (cron, str(crontab.timezone)) == (job.MONITOR["cron"], job.MONITOR["time_zone"])
    assert (migration.MONITOR["cron"], migration.MONITOR["time_zone"]) == (cron, "UTC")


def test_the_migration_brings_the_monitor_and_the_rule_to_existing_organisations(org):
    runbook = make_runbook(None, "audit-job-failure")
    monitor_of(org).delete()
    rule_of(org, "audit.job.failure").delete()
    before = datetime.now(UTC)

    migration.seed(django_apps, None)
    migration.seed(django_apps, None)  # idempotent
    after = datetime.now(UTC)

    monitor = monitor_of(org)
    monitor.full_clean()
    for field, value in job.MONITOR.items():
        assert getattr(monitor, field) == value, field
    assert monitor.runbook == runbook
    expected = state_of(org).next_expected
    assert expected in {migration.first_run_after(before), migration.first_run_after(after)}
    assert expected.astimezone(UTC).time().isoformat() == "03:30:00"
    rule = rule_of(org, "audit.job.failure")
    rule.full_clean()
    assert rule.runbook == runbook
    # Frozen as the rule came: the same as the built-in one today.
    [spec] = [spec for spec in BUILTIN_RULES if spec["key"] == "audit.job.failure"]
    for field in ("name", "severity", "expr", "op", "threshold", "annotations"):
        assert getattr(rule, field) == spec[field], field
    assert (rule.builtin, rule.verification) == (True, AlertRule.Verification.INTERNAL)


def test_first_run_after_is_the_next_half_past_three_utc():
    assert migration.first_run_after(datetime(2026, 3, 1, 3, 29, tzinfo=UTC)) == datetime(
        2026, 3, 1, 3, 30, tzinfo=UTC
    )
    assert migration.first_run_after(datetime(2026, 3, 1, 3, 30, tzinfo=UTC)) == datetime(
        2026, 3, 2, 3, 30, tzinfo=UTC
    )


# --- the rule firing ----------------------------------------------------------------------


def test_a_failed_run_fires_audit_job_failure_linked_to_its_runbook_and_a_success_resolves(
    monkeypatch,
):
    make_runbook(None, "audit-job-failure")
    make_runbook(None, "etl-job-failure")
    organization = Organization.objects.create(slug="new", name="New")
    rule = rule_of(organization, "audit.job.failure")
    etl = rule_of(organization, "etl.job.failure")
    failing_for(monkeypatch, organization)

    with pytest.raises(job.RetentionFailed):
        job.run()
    [run] = runs_of(organization)
    evaluation.evaluate([rule, etl], timezone.now())

    [alert] = Alert.objects.filter(organization=organization)
    assert (alert.rule, alert.state, alert.severity) == (rule, Alert.State.FIRING, "critical")
    assert alert.labels == {
        "job": "audit-retention",
        "outcome": "failure",
        "trace_id": run.trace_id,
    }
    assert alert.annotations["summary"] == (
        f"audit job audit-retention: failure (trace {run.trace_id})"
    )
    assert "/jobs/audit-retention/" in alert.annotations["description"]
    assert alert.rule.runbook.slug == "audit-job-failure"

    # The next run succeeds: the monitor is up, the alert resolves.
    monkeypatch.undo()
    job.run()
    assert state_of(organization).status == Status.UP
    evaluation.evaluate([rule, etl], timezone.now() + timedelta(minutes=1))
    alert.refresh_from_db()
    assert alert.state == Alert.State.RESOLVED
    assert Alert.objects.filter(organization=organization).count() == 1


def test_a_missed_run_fires_audit_job_failure_and_not_etl_job_failure(org):
    rule, etl = rule_of(org, "audit.job.failure"), rule_of(org, "etl.job.failure")
    state = state_of(org)
    # The night's run was due at 03:30 and nothing started by the end of its grace.
    state.next_expected = timezone.now() - timedelta(hours=4)
    state.save()

    checked = job_tasks.check_job_monitors.apply().get()

    assert checked["missed"] == 1
    [missed] = runs_of(org)
    assert missed.outcome == Outcome.MISSED
    state = state_of(org)
    assert state.status == Status.LATE
    assert len(state.trouble_trace_id) == 32  # the trace of beat's check that saw it
    assert measure("jobs.business_failure", org.pk) == []
    evaluation.evaluate([rule, etl], timezone.now())
    [alert] = Alert.objects.filter(organization=org)
    assert alert.rule == rule
    assert alert.labels == {
        "job": "audit-retention",
        "outcome": "missed",
        "trace_id": state.trouble_trace_id,
    }


def test_etl_job_failure_never_reads_the_audit_kind(org):
    failed = {"status": Status.FAILED, "last_outcome": Outcome.FAILURE}
    make_job(org, "own-audit-export", kind="audit", state=failed)
    make_job(org, "payroll-export", state=failed)

    assert [s.labels["job"] for s in measure("jobs.business_failure", org.pk)] == ["payroll-export"]
    assert [s.labels["job"] for s in measure("audit.job_failure", org.pk)] == ["own-audit-export"]
