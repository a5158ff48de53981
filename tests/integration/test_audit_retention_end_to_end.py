"""The audit retention job end to end: a real Celery worker and beat on a Redis of the
test's own, the built-in `audit.job.failure` on its internal signal (no Prometheus), and
real Slack, PagerDuty and SMTP receivers on loopback told through the organisation's
default policy.

Beat runs `audit.retention` (made to run every few seconds instead of nightly) while
the test holds what a second purge of acme's audit chain would hold: the purge's own
lock (retention._exclusive), taken by another connection. The worker's purge of acme
fails for real (PurgeBusy, its message the run's output), globex's goes through in the
same job, both runs carrying the job's trace; `audit.job.failure` fires once for acme,
linked to its runbook, and each receiver's message carries the job's trace id and is
checked against PROTOCOLS.md by the receiver. Once the lock is let go, the next run
succeeds, the alert resolves and the resolve is delivered.
"""

from __future__ import annotations

import importlib
import io
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from controlplane.alerting.models import Alert, AlertRule
from controlplane.audit import job, retention
from controlplane.catalog.models import Organization
from controlplane.jobs.models import JobMonitor, JobMonitorState, JobRun
from tests import waiting
from tests.factories import make_channel, make_policy
from tests.integration.conftest import schedule_ticks
from tests.services import require_postgresql

pytestmark = pytest.mark.integration

TICKS = (
    "alerting: evaluate due rules",
    "alerting: dispatch alert events",
    "paging: escalate",
    "paging: deliver notifications",
)
schedules = importlib.import_module("controlplane.audit.migrations.0003_schedules")
# How often beat runs the retention job here (nightly in production).
EVERY_SECONDS = 3
RUNBOOK_PATH = "/runbooks/audit-job-failure/"


@contextmanager
def purge_in_progress(organization: Organization) -> Iterator[None]:
    """What a purge of the organisation's audit chain holds while it runs, held by a
    thread on a database connection of its own until the block ends."""
    taken, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def hold() -> None:
        try:
            with retention._exclusive(organization.pk):
                taken.set()
                release.wait(timeout=10 * waiting.DEADLINE)
        except BaseException as error:  # reported by the test's thread
            failures.append(error)
            taken.set()
        finally:
            connection.close()

    holder = threading.Thread(target=hold, name="purge-in-progress", daemon=True)
    holder.start()
    taken.wait(timeout=waiting.DEADLINE)
    assert not failures, failures
    try:
        yield
    finally:
        release.set()
        holder.join(timeout=waiting.DEADLINE)
        assert not holder.is_alive(), "the lock holder did not let go"


@pytest.fixture
def organisations(transactional_db) -> tuple[Organization, Organization]:
    """acme and globex, made after the runbook pages are loaded (so their built-in rule
    and monitor link `audit-job-failure`, as in a deployment that synced them)."""
    require_postgresql()  # the worker, beat and the test share the database at once
    call_command("sync_runbooks", stdout=io.StringIO(), stderr=io.StringIO())
    acme = Organization.objects.create(slug="acme", name="Acme")
    globex = Organization.objects.create(slug="globex", name="Globex")
    return acme, globex


@pytest.fixture
def paged(organisations, slack_receiver, pagerduty_receiver, smtp_receiver):
    """acme's default policy telling Slack, email and PagerDuty at once, and again on
    resolve. Returns the receivers."""
    acme, _ = organisations
    channels = [
        make_channel(acme, "ops-slack", "slack", url=f"{slack_receiver.url}/hooks/e2e"),
        make_channel(acme, "ops-mail", "email", to=["oncall@example.com"]),
        make_channel(
            acme, "ops-pager", "pagerduty", routing_key="R" * 32, url=f"{pagerduty_receiver.url}/v2"
        ),
    ]
    make_policy(acme, "default", steps=[(0, channels)], is_default=True, notify_on_resolve=True)
    return {"slack": slack_receiver, "email": smtp_receiver, "pagerduty": pagerduty_receiver}


def built_in_rule(organization: Organization) -> AlertRule:
    # The organisation got the built-in rule when it was made; its clock made tiny.
    rule = AlertRule.objects.get(organization=organization, key="audit.job.failure")
    assert rule.runbook.slug == "audit-job-failure"
    assert (rule.escalation_policy, rule.for_duration) == (None, timedelta(0))
    rule.interval = timedelta(seconds=1)
    rule.save()
    return rule


def schedule_retention() -> None:
    """Beat's retention job as migration 0003 seeds it, run every few seconds; the
    sealing backstop stays off (only the named ticks and this run)."""
    schedules.seed(apps, None)  # the transactional flush emptied the table
    often, _ = IntervalSchedule.objects.get_or_create(every=EVERY_SECONDS, period="seconds")
    assert PeriodicTask.objects.filter(name=schedules.RETENTION).update(
        crontab=None, interval=often, enabled=True
    )
    PeriodicTask.objects.filter(name=schedules.SEAL).update(enabled=False)


def start(celery, receivers):
    """Beat with the alerting and paging ticks and the retention job, and one worker
    reaching the receivers; returns (worker, its log)."""
    schedule_ticks(*TICKS)
    schedule_retention()
    smtp = receivers["email"]
    worker = celery.start(
        "solo",
        {
            "ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8,::1/128",
            "EMAIL_URL": f"smtp://{smtp.host}:{smtp.port}",
            "DEFAULT_FROM_EMAIL": "controlplane@example.com",
        },
        wait=False,
    )
    beat = celery.start_beat(wait=False)
    celery.until_ready(worker, beat)
    return worker, celery.log_of(worker)


def told_by_each(receivers, alert: Alert, event: str, worker, log) -> dict[str, list]:
    def told(kind: str):
        return waiting.until(
            lambda: [
                n for n in receivers[kind].delivered() if (n.alert_id, n.event) == (alert.pk, event)
            ],
            what=f"the {kind} receiver to be told {event} of alert {alert.pk}",
            process=worker,
            log=log,
        )

    return {kind: told(kind) for kind in receivers}


def logged(log: Path, message: str) -> list[dict]:
    """The JSON log lines of a process saying `message`."""
    found = []
    for text in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(text)
        except ValueError:
            continue  # Celery's own lines before logging is set up
        if isinstance(entry, dict) and entry.get("message") == message:
            found.append(entry)
    return found


def runs(organization: Organization):
    return JobRun.objects.filter(
        monitor__organization=organization, monitor__slug=job.MONITOR_SLUG
    ).order_by("pk")


def test_a_failing_retention_job_pages_with_its_trace_and_its_next_success_resolves(
    celery_on_redis_server, organisations, paged
):
    acme, globex = organisations
    rule = built_in_rule(acme)
    monitor = JobMonitor.objects.get(organization=acme, slug=job.MONITOR_SLUG)
    assert (monitor.kind, monitor.runbook.slug) == ("audit", "audit-job-failure")

    with purge_in_progress(acme):
        worker, log = start(celery_on_redis_server, paged)

        failed = waiting.until(
            lambda: runs(acme).filter(outcome=JobRun.Outcome.FAILURE).first(),
            what="the retention job to record acme's purge failing",
            process=worker,
            log=log,
        )
        assert failed.excerpt == (
            f"PurgeBusy: another purge of audit chain {acme.pk} is running"
        ), failed.excerpt
        assert failed.started_at <= failed.finished_at
        # globex's purge went through in the same job: one job, one trace.
        same_job = waiting.until(
            lambda: runs(globex).filter(trace_id=failed.trace_id).exclude(outcome="").first(),
            what="globex's run in the job that failed for acme",
            process=worker,
            log=log,
        )
        assert same_job.outcome == JobRun.Outcome.SUCCESS
        assert len(failed.trace_id) == 32
        # The worker's log line of the failure is in the same trace, with the error.
        line = waiting.until(
            lambda: next(
                (
                    entry
                    for entry in logged(log, "audit retention of organisation acme failed")
                    if entry["trace_id"] == failed.trace_id
                ),
                None,
            ),
            what="the worker to log acme's failure in the job's trace",
            process=worker,
            log=log,
        )
        assert line["organization_id"] == str(acme.pk)
        assert "PurgeBusy: another purge of audit chain" in line["exception"]

        alert = waiting.until(
            lambda: Alert.objects.filter(rule=rule, state=Alert.State.FIRING).first(),
            what="audit.job.failure to fire on acme's failed run",
            process=worker,
            log=log,
        )
        state = JobMonitorState.objects.get(monitor=monitor)
        assert state.trouble_trace_id == runs(acme).first().trace_id == failed.trace_id
        assert alert.labels == {
            "job": "audit-retention",
            "outcome": "failure",
            "trace_id": failed.trace_id,
        }
        assert alert.annotations["summary"] == (
            f"audit job audit-retention: failure (trace {failed.trace_id})"
        )
        assert not Alert.objects.filter(organization=globex).exists()

        for kind, notices in told_by_each(paged, alert, "trigger", worker, log).items():
            assert len(notices) == 1, kind
            assert notices[0].trace_id == alert.trace_id, kind  # the evaluation's own trace

    # Each message carries the job's trace id and the runbook's link, in the formats
    # PROTOCOLS.md gives (each receiver checked every request it took).
    slack, pagerduty = paged["slack"].requests, paged["pagerduty"].requests
    mail = paged["email"].messages[0].message.as_string()
    for kind, text in (
        ("slack", slack[0].raw.decode()),
        ("pagerduty", pagerduty[0].raw.decode()),
        ("email", mail),
    ):
        assert failed.trace_id in text, kind
        assert RUNBOOK_PATH in text, kind
    assert all(request.valid for request in slack), [r.problems for r in slack]
    assert all(request.valid for request in pagerduty), [r.problems for r in pagerduty]
    assert paged["email"].messages[0].rcpt_tos == ["oncall@example.com"]

    # The lock let go: the next run succeeds, the alert resolves and each is told.
    waiting.until(
        lambda: runs(acme).filter(outcome=JobRun.Outcome.SUCCESS).exists(),
        what="a run of the retention job to succeed for acme",
        process=worker,
        log=log,
    )
    waiting.until(
        lambda: Alert.objects.filter(pk=alert.pk, state=Alert.State.RESOLVED).exists(),
        what="audit.job.failure to resolve once the retention job succeeds",
        process=worker,
        log=log,
    )
    for kind, notices in told_by_each(paged, alert, "resolve", worker, log).items():
        assert len(notices) == 1, kind
    # Failed runs after the first kept one alert: one trigger each, never a second page.
    for kind in paged:
        assert [n.event for n in paged[kind].delivered()].count("trigger") == 1, kind
    assert all(request.valid for request in paged["slack"].requests)
    assert all(request.valid for request in paged["pagerduty"].requests)
