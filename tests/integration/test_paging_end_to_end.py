"""Paging end to end: real Celery workers and a real beat on a Redis of the test's own,
real receivers on loopback (Slack, PagerDuty, a webhook, SMTP), and the faults that
must lose nothing and send nothing twice.

The happy path starts where an operator's day does: the control plane (gunicorn) answers
real 5xx, a real Prometheus scrapes its /metrics, the built-in `api.5xx` fires, and the
alert walks its policy: step 1 to Slack and email, step 2 to PagerDuty after its delay,
acknowledged (PagerDuty is told, step 3 never comes), resolved (PagerDuty, Slack and
email are told). How late beat's tick wrote step 2 is measured and printed.

Every fault test ends the same way: the ledger all `sent`, and every receiver holding
each (alert, event) exactly once, counted inside the messages (a bundle lists several),
only from requests it accepted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.utils import timezone

from controlplane.alerting import lifecycle
from controlplane.alerting.models import Alert, AlertEvent, AlertRule
from controlplane.catalog.actors import BEAT
from controlplane.catalog.models import ApiToken, Organization
from controlplane.paging.models import Escalation, Notification, NotificationChannel
from observability import tracing
from tests import services, waiting
from tests.factories import make_alert, make_channel, make_policy, make_rule, make_source
from tests.integration.conftest import ROOT, Workers, schedule_ticks
from tests.integration.prometheus import scrape_config, start_prometheus
from tests.receivers import HttpReceiver, Notified, SmtpReceiver, WebhookReceiver
from tests.services import free_port, require_postgresql

pytestmark = pytest.mark.integration

ALL_TICKS = (
    "alerting: evaluate due rules",
    "alerting: dispatch alert events",
    "paging: escalate",
    "paging: deliver notifications",
)
# The fault tests open alerts by hand: no rule is evaluated.
PAGING_TICKS = ALL_TICKS[1:]

STEP_2 = timedelta(seconds=4)
STEP_3 = timedelta(seconds=2)
# The doomed worker's lease: its rows go out again this long after it claimed them.
LEASE_SECONDS = 4
# Slack and PagerDuty answer 429 this many times in a row, asking for a second each.
STORM = 4


# --- the pieces ------------------------------------------------------------------------


@dataclass
class Paging:
    """An organisation's four channels, each aimed at its receiver on loopback."""

    org: Organization
    channels: dict[str, NotificationChannel]
    receivers: dict[str, HttpReceiver | SmtpReceiver]

    def delivered(self, kind: str) -> list[Notified]:
        return self.receivers[kind].delivered()

    def counted(self, kind: str) -> Counter:
        """How often each (alert, event) reached the channel's receiver."""
        return Counter((n.alert_id, n.event) for n in self.delivered(kind))

    def worker_env(self, **more: str) -> dict[str, str]:
        """What a worker needs to reach the receivers: loopback allowed, SMTP there."""
        smtp = self.receivers["email"]
        return {
            "ALLOWED_PRIVATE_NETWORKS": "127.0.0.0/8,::1/128",
            "EMAIL_URL": f"smtp://{smtp.host}:{smtp.port}",
            "DEFAULT_FROM_EMAIL": "controlplane@example.com",
            **more,
        }


@pytest.fixture
def paging(
    org, slack_receiver, pagerduty_receiver, webhook_receiver, smtp_receiver
) -> Iterator[Paging]:
    require_postgresql()  # workers, beat and the test share the database at once
    channels = {
        "slack": make_channel(org, "ops-slack", "slack", url=f"{slack_receiver.url}/hooks/e2e"),
        "email": make_channel(org, "ops-mail", "email", to=["oncall@example.com"]),
        "pagerduty": make_channel(
            org,
            "ops-pager",
            "pagerduty",
            routing_key="R" * 32,
            url=f"{pagerduty_receiver.url}/v2/enqueue",
        ),
        "webhook": make_channel(org, "ops-hook", "webhook", url=f"{webhook_receiver.url}/in"),
    }
    receivers = {
        "slack": slack_receiver,
        "email": smtp_receiver,
        "pagerduty": pagerduty_receiver,
        "webhook": webhook_receiver,
    }
    paging = Paging(org, channels, dict(receivers))
    yield paging
    # Receivers a test started in place of the fixtures' ones.
    for kind, receiver in paging.receivers.items():
        if receiver is not receivers[kind]:
            receiver.close()


def start(celery: Workers, paging: Paging, *names: str, **env: str) -> list[subprocess.Popen]:
    """Start the named workers and beat side by side; return the workers once all are up."""
    workers = [celery.start(name, paging.worker_env(**env), wait=False) for name in names]
    beat = celery.start_beat(wait=False)
    celery.until_ready(*workers, beat)
    return workers


def fault_rule(paging: Paging) -> AlertRule:
    """A rule whose policy tells every channel at once, and again when it resolves."""
    policy = make_policy(
        paging.org, "everyone", steps=[(0, list(paging.channels.values()))], notify_on_resolve=True
    )
    return make_rule(paging.org, "e2e.faults", escalation_policy=policy)


def open_alerts(rule: AlertRule, prefix: str, count: int) -> list[Alert]:
    """Alerts opened as an evaluation opens them: each in a span of its own, its trace."""
    alerts = []
    for n in range(count):
        with tracing.span("e2e.open_alert"):
            alerts.append(make_alert(rule, f"{prefix}-{n}", labels={"instance": f"{prefix}-{n}"}))
    return alerts


def ledger(org: Organization) -> list[Notification]:
    return list(Notification.objects.filter(organization=org).order_by("pk"))


def until_settled(
    paging: Paging, rows: int, what: str, process: subprocess.Popen | None = None, log=None
) -> list[Notification]:
    """Wait until the ledger holds `rows` rows, every one `sent`; fail at once on a
    row given up."""

    def settled() -> list[Notification]:
        found = ledger(paging.org)
        dead = [row for row in found if row.state == Notification.State.DEAD]
        assert not dead, f"gave up: {[(r.channel_kind, r.event, r.last_error) for r in dead]}"
        if len(found) == rows and all(row.state == Notification.State.SENT for row in found):
            return found
        states = Counter(f"{row.channel_kind} {row.event} {row.state}" for row in found)
        raise NotSettled(f"{len(found)} of {rows} rows: {dict(sorted(states.items()))}")

    return waiting.until(settled, what=what, process=process, log=log, retry_on=(NotSettled,))


class NotSettled(Exception):
    """The ledger is not there yet; says how far it got."""


def told(alerts: list[Alert], *events: str) -> Counter:
    """Each of `events` once for each alert: what a channel should have been told."""
    return Counter({(alert.pk, event): 1 for alert in alerts for event in events})


def assert_each_delivered_once(
    paging: Paging, alerts: list[Alert], expected_by_kind: dict[str, Counter]
) -> None:
    """The ledger holds what each channel should have been told, all sent; each
    receiver took exactly that, with the alert's trace id on every message that
    carries one (PagerDuty's acknowledge and resolve carry only the dedup_key)."""
    rows = ledger(paging.org)
    assert {row.state for row in rows} == {Notification.State.SENT}
    traces = {alert.pk: alert.trace_id for alert in alerts}
    assert all(traces.values()), "every alert was opened in a trace"
    for kind in paging.channels:
        expected = expected_by_kind[kind]
        written = Counter((row.alert_id, row.event) for row in rows if row.channel_kind == kind)
        assert written == expected, f"the ledger of {kind}"
        got = paging.counted(kind)
        assert got == expected, f"{kind} got {sorted(got.items())}"
        for notice in paging.delivered(kind):
            if notice.trace_id or kind != "pagerduty":
                assert notice.trace_id == traces[notice.alert_id], f"{kind}: {notice}"


def restarted(receiver: HttpReceiver) -> HttpReceiver:
    """A receiver of the same kind up again where `receiver` was."""
    if isinstance(receiver, WebhookReceiver):
        return WebhookReceiver(secret=receiver.secret, port=receiver.port)
    return type(receiver)(port=receiver.port)


# --- the happy path: real 5xx, the built-in rule, every step -----------------------------


@dataclass
class Web:
    url: str
    process: subprocess.Popen
    log: Path


@pytest.fixture
def web(celery_on_redis_server: Workers) -> Iterator[Web]:
    """The control plane under gunicorn (deploy/gunicorn.conf.py, one worker), on the
    test database and broker: its /metrics are what Prometheus scrapes."""
    port = free_port()
    log = services.run_dir() / "test-web-e2e.log"
    env = celery_on_redis_server.environment(
        {
            "BIND": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": "1",
            "SITE_URL": f"http://127.0.0.1:{port}",
        }
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(ROOT / "deploy" / "gunicorn.conf.py"),
                "controlplane.wsgi",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        waiting.until_serving(f"{url}/healthz", what="gunicorn", process=process, log=log)
        yield Web(url, process, log)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def scraping_prometheus(web: Web, tmp_path) -> Iterator[str]:
    """A real Prometheus scraping the web server's /metrics every second; its URL."""
    port = free_port()
    target = web.url.removeprefix("http://")
    process = start_prometheus(tmp_path / "prometheus", port, scrape_config(target))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_api_5xx_pages_each_step_until_acknowledged_then_resolves_everywhere(
    celery_on_redis_server, paging, web, scraping_prometheus
):
    org = paging.org
    # The organisation's first source seeds the built-in rules; api.5xx reads this
    # Prometheus, which scrapes the web server. `for` and the interval made tiny.
    make_source(org, scraping_prometheus)
    rule = AlertRule.objects.get(organization=org, key="api.5xx")
    ch = paging.channels
    rule.escalation_policy = make_policy(
        org,
        "api-on-call",
        steps=[
            (0, [ch["slack"], ch["email"]]),
            (STEP_2, [ch["pagerduty"]]),
            (STEP_3, [ch["webhook"]]),
        ],
        notify_on_resolve=True,
    )
    rule.for_duration = timedelta(seconds=1)
    rule.interval = timedelta(seconds=1)
    rule.save()
    # Only these ticks: beat's heartbeat is left off, so the worker health check
    # answers 503 (no worker ran it), the real 5xx of this test.
    schedule_ticks(*ALL_TICKS)
    [worker] = start(celery_on_redis_server, paging, "solo", SITE_URL=web.url)
    worker_log = celery_on_redis_server.log_of(worker)
    token = ApiToken.issue(org, ApiToken.Scope.WRITE, "responder")[1]
    responder = {"Authorization": f"Bearer {token}"}

    def failing_until_an_alert_opens() -> Alert | None:
        answer = requests.get(f"{web.url}/healthz?worker=1", timeout=waiting.REQUEST_TIMEOUT)
        assert answer.status_code == 503, answer.text
        return Alert.objects.filter(rule=rule).first()

    alert = waiting.until(
        failing_until_an_alert_opens,
        what="api.5xx to fire on the web server's 503s, scraped by Prometheus",
        process=worker,
        log=worker_log,
    )
    assert alert.trace_id, "opened in the evaluation's trace"

    def until_told(kind: str, event: str) -> None:
        waiting.until(
            lambda: paging.counted(kind)[(alert.pk, event)],
            what=f"the {kind} receiver to be told {event} of alert {alert.pk}",
            process=worker,
            log=worker_log,
        )

    until_told("slack", "trigger")
    until_told("email", "trigger")
    until_told("pagerduty", "trigger")
    escalation = Escalation.objects.get(alert=alert)
    opened_at = alert.events.get(kind=AlertEvent.Kind.OPENED).at
    step_2 = Notification.objects.get(alert=alert, channel=ch["pagerduty"], event="trigger")
    due = escalation.started_at + STEP_2
    late = (step_2.created_at - due).total_seconds()
    print(
        f"\nstep 2 due {due:%H:%M:%S.%f} (alert opened {(opened_at - due).total_seconds():+.3f} s"
        f" from then): written {late:.3f} s late, delivered to PagerDuty"
        f" {(step_2.sent_at - due).total_seconds():.3f} s after its time"
    )
    assert late >= 0, "written before its time"
    # Beat ticks every second; anything under a step's delay is acted on "in time" for
    # this bound, which stays true on a loaded machine. The printed figure is the measure.
    assert late < STEP_2.total_seconds()

    answer = requests.post(
        f"{web.url}/api/v1/alerts/{alert.pk}/acknowledge/",
        json={"note": "on it"},
        headers=responder,
        timeout=waiting.REQUEST_TIMEOUT,
    )
    assert answer.status_code == 200, answer.text
    until_told("pagerduty", "acknowledge")
    # Step 3 would have been due STEP_3 after step 2. Its time and two ticks pass first:
    # only then does its absence say the acknowledgement stopped it.
    step_3_due = due + STEP_3
    waiting.until(
        lambda: timezone.now() > step_3_due + timedelta(seconds=2),
        what="step 3's time and two escalation ticks to pass",
    )
    assert Escalation.objects.get(alert=alert).next_at is None

    answer = requests.post(
        f"{web.url}/api/v1/alerts/{alert.pk}/resolve/",
        json={"note": "fixed"},
        headers=responder,
        timeout=waiting.REQUEST_TIMEOUT,
    )
    assert answer.status_code == 200, answer.text
    until_settled(paging, 7, "the resolves to be sent", worker, worker_log)

    assert_each_delivered_once(
        paging,
        [alert],
        {
            "slack": told([alert], "trigger", "resolve"),
            "email": told([alert], "trigger", "resolve"),
            "pagerduty": told([alert], "trigger", "acknowledge", "resolve"),
            "webhook": Counter(),
        },
    )
    assert paging.receivers["webhook"].requests == [], "step 3 never came"
    pagerduty = paging.receivers["pagerduty"]
    assert all(r.valid for r in pagerduty.requests)
    assert [r.body["event_action"] for r in pagerduty.requests] == [
        "trigger",
        "acknowledge",
        "resolve",
    ]
    assert len({r.body["dedup_key"] for r in pagerduty.requests}) == 1, "one incident"
    assert all(r.valid for r in paging.receivers["slack"].requests)


# --- faults ---------------------------------------------------------------------------


def test_receivers_down_rate_limiting_or_refusing_get_each_notification_once(
    celery_on_redis_server, paging
):
    """Each receiver misbehaves its own way at once (one test: they share the wait for
    the first backoff): the webhook is down, then up again on its port; Slack and
    PagerDuty answer a storm of 429s asking for a second each; the SMTP server refuses
    the first message with a temporary 451."""
    rule = fault_rule(paging)
    down = paging.receivers["webhook"]
    down.close()  # nothing listens there now: connections are refused
    for kind in ("slack", "pagerduty"):
        paging.receivers[kind].answer_next(STORM, 429, b"rate_limited", {"Retry-After": "1"})
    paging.receivers["email"].refuse_next(1, 451)
    schedule_ticks(*PAGING_TICKS)
    [worker] = start(celery_on_redis_server, paging, "solo")
    log = celery_on_redis_server.log_of(worker)

    alerts = open_alerts(rule, "faults", 3)

    def refused() -> bool:
        rows = [r for r in ledger(paging.org) if r.channel_kind == "webhook"]
        return len(rows) == len(alerts) and all(
            r.state == Notification.State.FAILED and r.attempts == 1 for r in rows
        )

    waiting.until(refused, what="the webhook deliveries refused", process=worker, log=log)
    paging.receivers["webhook"] = restarted(down)

    until_settled(paging, 4 * len(alerts), "every notification through the faults", worker, log)

    assert_each_delivered_once(
        paging, alerts, dict.fromkeys(paging.channels, told(alerts, "trigger"))
    )
    assert down.requests == []
    for kind in ("slack", "pagerduty"):
        receiver = paging.receivers[kind]
        answered = [r.answered for r in receiver.requests]
        assert answered.count(429) == STORM, f"{kind}: {answered}"
        # A notification turned away is not sent again before its Retry-After.
        turned_away: dict[tuple, float] = {}
        for request in receiver.requests:
            for notice in receiver.notified(request):
                key = (notice.alert_id, notice.event)
                if key in turned_away:
                    assert request.at - turned_away.pop(key) >= 1.0, f"{kind}: {key} too soon"
                if request.answered == 429:
                    turned_away[key] = request.at


def test_a_worker_killed_mid_send_leaves_it_to_the_next_worker_once(celery_on_redis_server, paging):
    rule = fault_rule(paging)
    webhook = paging.receivers["webhook"]
    # The first webhook request is held unanswered: the worker is killed waiting on it.
    webhook.hang_next(1, seconds=waiting.DEADLINE * 5)
    schedule_ticks(*PAGING_TICKS)
    [doomed] = start(
        celery_on_redis_server, paging, "doomed", PAGING_LEASE_SECONDS=str(LEASE_SECONDS)
    )

    alerts = open_alerts(rule, "killed", 2)
    [held] = webhook.until_received(1)
    # The other channels are sent side by side with the held webhook: the kill lands
    # once they are recorded, while the webhook's send alone is under way. (A kill
    # between a receiver's answer and its commit repeats that message: the one window
    # at-least-once delivery leaves, which the webhook's notification_id lets a receiver
    # close.)
    waiting.until(
        lambda: (
            not any(
                r.state == Notification.State.SENDING
                for r in ledger(paging.org)
                if r.channel_kind != "webhook"
            )
        ),
        what="the round's sends besides the held webhook to be recorded",
    )
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait(30)
    caught = [r for r in ledger(paging.org) if r.channel_kind == "webhook"]
    assert any(r.state == Notification.State.SENDING for r in caught), "killed mid-send"

    survivor = celery_on_redis_server.start("survivor", paging.worker_env())
    log = celery_on_redis_server.log_of(survivor)
    until_settled(paging, 8, "the survivor to send what the killed worker held", survivor, log)

    assert_each_delivered_once(
        paging, alerts, dict.fromkeys(paging.channels, told(alerts, "trigger"))
    )
    # The receiver saw the killed attempt's bytes but never answered them: that exchange
    # never completed, and the one that did is the survivor's.
    assert held.answered is None
    again = [r for r in webhook.requests if r is not held]
    held_alerts = {n.alert_id for n in webhook.notified(held)}
    assert held_alerts <= {n.alert_id for r in again for n in webhook.notified(r)}
    for row in ledger(paging.org):
        if row.channel_kind == "webhook" and row.alert_id in held_alerts:
            assert row.attempts == 2, row


def test_two_workers_racing_on_the_same_rows_send_each_once(celery_on_redis_server, paging):
    rule = fault_rule(paging)
    webhook = paging.receivers["webhook"]
    # The first webhook message holds its worker until released: whatever becomes due
    # meanwhile is the other worker's, so both work the same ledger.
    webhook.hang_next(1, seconds=waiting.DEADLINE * 5)
    schedule_ticks(*PAGING_TICKS)
    workers = start(celery_on_redis_server, paging, "first", "second")

    early = open_alerts(rule, "early", 4)
    webhook.until_received(1)
    late = open_alerts(rule, "late", 4)

    def sent(alerts: list[Alert], rows: int) -> bool:
        found = Notification.objects.filter(alert__in=alerts)
        return found.count() == rows and not found.exclude(state="sent").exists()

    waiting.until(
        lambda: sent(late, 4 * len(late)),
        what="the free worker to send the later alerts' triggers",
        process=workers[0],
    )
    webhook.release()
    until_settled(paging, 4 * 8, "the held worker to finish its claim", workers[0])
    # Every alert resolved at once: both workers race for the resolves.
    alerts = early + late
    for alert in alerts:
        lifecycle.resolve(alert, actor=BEAT, note="condition no longer true")
    until_settled(paging, 4 * 8 * 2, "both workers to send the resolves", workers[0])

    expected = told(alerts, "trigger", "resolve")
    assert_each_delivered_once(paging, alerts, dict.fromkeys(paging.channels, expected))
    # Each worker logs every row it recorded sent.
    shares = [celery_on_redis_server.log_of(w).read_text().count("): sent") for w in workers]
    print(f"\nrows recorded sent by each worker: {shares}")
    assert sum(shares) == 64
    assert all(shares)


def test_redis_restarted_mid_run_loses_nothing(celery_on_redis_server, paging, redis_server):
    rule = fault_rule(paging)
    schedule_ticks(*PAGING_TICKS)
    [worker] = start(celery_on_redis_server, paging, "solo")
    log = celery_on_redis_server.log_of(worker)

    before = open_alerts(rule, "before", 2)
    redis_server.crash()  # whatever it held (queued ticks, nudges) is gone
    waiting.until_log_contains(log, "Connection to broker lost", what="the worker", process=worker)
    during = open_alerts(rule, "during", 2)  # their nudges find no broker
    redis_server.start()

    until_settled(paging, 16, "every notification once Redis is back", worker, log)
    alerts = before + during
    assert_each_delivered_once(
        paging, alerts, dict.fromkeys(paging.channels, told(alerts, "trigger"))
    )
