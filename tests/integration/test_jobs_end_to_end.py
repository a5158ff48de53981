"""Job monitors end to end: a real Celery worker and beat on a Redis of the test's own,
the built-in `etl.job.failure` on its internal signal (no Prometheus), and real Slack,
PagerDuty and SMTP receivers on loopback told through the organisation's default
policy.

- A payroll job reports `/fail` through the ping endpoint, with the `traceparent` of
  its own trace; beat's alerting tick fires `etl.job.failure`, and each receiver's
  message carries the job run's trace id. Its next run succeeds: the alert resolves and
  the resolve is delivered.
- An equipment job misses its schedule: beat's `jobs.check_job_monitors` records the
  missed run and the monitor late, and the same rule pages.

The pings go through Django's test client, in this process (the real URL, middleware,
view and `record_ping`, on the database the worker reads), rather than a web server of
their own: tests/jobs/test_healthchecks_client.py speaks to one over HTTP. The clocks
are made tiny: the rule's interval, beat's overdue check (every second), the job's
grace (one second).
"""

from __future__ import annotations

import importlib
import re
from datetime import timedelta

import pytest
from django.apps import apps
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from controlplane.alerting.models import Alert, AlertRule
from controlplane.jobs.models import JobMonitor, JobMonitorState, JobRun
from tests import waiting
from tests.factories import make_channel, make_job, make_policy
from tests.integration.conftest import schedule_ticks
from tests.services import require_postgresql

pytestmark = pytest.mark.integration

TICKS = (
    "alerting: evaluate due rules",
    "alerting: dispatch alert events",
    "paging: escalate",
    "paging: deliver notifications",
)
migration = importlib.import_module("controlplane.jobs.migrations.0002_check_and_builtin_rule")
# The job's own trace, as observability.jobs (or any OpenTelemetry client) sends it.
JOB_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{JOB_TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def paged(org, slack_receiver, pagerduty_receiver, smtp_receiver):
    """The organisation's default policy telling Slack, email and PagerDuty at once, and
    again on resolve; the built-in rule evaluated every second. Returns the receivers."""
    require_postgresql()  # the worker, beat and the test share the database at once
    channels = [
        make_channel(org, "ops-slack", "slack", url=f"{slack_receiver.url}/hooks/e2e"),
        make_channel(org, "ops-mail", "email", to=["oncall@example.com"]),
        make_channel(
            org, "ops-pager", "pagerduty", routing_key="R" * 32, url=f"{pagerduty_receiver.url}/v2"
        ),
    ]
    make_policy(org, "default", steps=[(0, channels)], is_default=True, notify_on_resolve=True)
    cache.clear()  # the ping rate limit counts in this process's cache
    return {"slack": slack_receiver, "email": smtp_receiver, "pagerduty": pagerduty_receiver}


def built_in_rule(org) -> AlertRule:
    # The organisation got the built-in rule when it was made; its clock made tiny.
    rule = AlertRule.objects.get(organization=org, key="etl.job.failure")
    assert (rule.escalation_policy, rule.for_duration) == (None, timedelta(0))
    rule.interval = timedelta(seconds=1)
    rule.save()
    return rule


def start(celery, receivers, check_every_second: bool = False):
    """Beat with the alerting and paging ticks (and the overdue check, every second),
    and one worker reaching the receivers; returns (worker, its log)."""
    schedule_ticks(*TICKS)
    if check_every_second:
        migration.seed_check(apps, None)  # the transactional flush emptied the table
        every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period="seconds")
        PeriodicTask.objects.filter(name=migration.NAME).update(
            interval=every_second, expire_seconds=None, enabled=True
        )
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


def ping(job: JobMonitor, suffix: str = "", body: str = "", **headers: str) -> None:
    response = Client().post(
        f"/ping/{job.ping_key.key}/{job.slug}{suffix}", body, content_type="text/plain", **headers
    )
    assert response.status_code == 200, response.content


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


def test_a_payroll_fail_ping_pages_with_the_runs_trace_and_a_success_resolves(
    celery_on_redis_server, org, paged
):
    rule = built_in_rule(org)
    job = make_job(org, "payroll-export", kind="payroll")
    worker, log = start(celery_on_redis_server, paged)

    ping(job, "/fail", body="bank file rejected: IBAN checksum", HTTP_TRACEPARENT=TRACEPARENT)

    [run] = JobRun.objects.filter(monitor=job)
    assert (run.outcome, run.trace_id) == (JobRun.Outcome.FAILURE, JOB_TRACE_ID)
    alert = waiting.until(
        lambda: Alert.objects.filter(rule=rule, state=Alert.State.FIRING).first(),
        what="etl.job.failure to fire on the failed payroll run",
        process=worker,
        log=log,
    )
    assert alert.labels == {
        "job": "payroll-export",
        "kind": "payroll",
        "outcome": "failure",
        "trace_id": JOB_TRACE_ID,
    }
    assert alert.annotations["summary"] == (
        f"payroll job payroll-export: failure (trace {JOB_TRACE_ID})"
    )

    for kind, notices in told_by_each(paged, alert, "trigger", worker, log).items():
        assert len(notices) == 1, kind
        assert notices[0].trace_id == alert.trace_id, kind  # the evaluation's own trace
    # Each message carries the job run's trace id (the alert's label and summary).
    assert JOB_TRACE_ID in paged["slack"].requests[0].raw.decode()
    assert JOB_TRACE_ID in paged["pagerduty"].requests[0].raw.decode()
    assert JOB_TRACE_ID in paged["email"].messages[0].message.as_string()

    # The next run succeeds: the monitor is up, the alert resolves and each is told.
    ping(job, "/start")
    ping(job)
    assert JobMonitorState.objects.get(monitor=job).status == JobMonitorState.Status.UP
    waiting.until(
        lambda: Alert.objects.filter(pk=alert.pk, state=Alert.State.RESOLVED).exists(),
        what="etl.job.failure to resolve once the payroll job succeeds",
        process=worker,
        log=log,
    )
    for kind, notices in told_by_each(paged, alert, "resolve", worker, log).items():
        assert len(notices) == 1, kind


def test_a_job_missing_its_schedule_goes_late_on_beat_and_pages(celery_on_redis_server, org, paged):
    rule = built_in_rule(org)
    now = timezone.now()
    # Its run was due a few seconds ago, with a second's grace: the next check finds it.
    job = make_job(
        org,
        "equipment-sync",
        kind="equipment",
        cron="* * * * *",
        grace=timedelta(seconds=1),
        state={
            "status": JobMonitorState.Status.UP,
            "last_outcome": JobRun.Outcome.SUCCESS,
            "last_success": now - timedelta(seconds=65),
            "next_expected": now - timedelta(seconds=5),
        },
    )
    worker, log = start(celery_on_redis_server, paged, check_every_second=True)

    missed = waiting.until(
        lambda: JobRun.objects.filter(monitor=job, outcome=JobRun.Outcome.MISSED).first(),
        what="beat's overdue check to record the missed run",
        process=worker,
        log=log,
    )
    assert JobMonitorState.objects.get(monitor=job).status == JobMonitorState.Status.LATE
    alert = waiting.until(
        lambda: Alert.objects.filter(rule=rule, state=Alert.State.FIRING).first(),
        what="etl.job.failure to fire on the late equipment job",
        process=worker,
        log=log,
    )
    # A missed run has no trace of its own: the alert names the trace of beat's check
    # that saw it (kept on the monitor's state until a success).
    trace = JobMonitorState.objects.get(monitor=job).trouble_trace_id
    assert re.fullmatch(r"[0-9a-f]{32}", trace), trace
    assert not missed.trace_id
    assert alert.labels == {
        "job": "equipment-sync",
        "kind": "equipment",
        "outcome": "missed",
        "trace_id": trace,
    }
    assert alert.annotations["summary"].startswith("equipment job equipment-sync: missed")

    for kind, notices in told_by_each(paged, alert, "trigger", worker, log).items():
        assert len(notices) == 1, kind
    assert "equipment-sync" in paged["slack"].requests[0].raw.decode()
