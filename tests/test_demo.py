"""The demo's paging: the drill (real 500s and slow answers, DEBUG only), the webhook
sink it prints notifications with, seed_demo_paging's policy and channels, the console
email, and the whole loop: the server's metrics, scraped by a real Prometheus, fire the
built-in api.5xx, whose notifications reach the sink."""

from __future__ import annotations

import importlib
import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import clear_url_caches
from prometheus_client import REGISTRY

from controlplane import environment
from controlplane.alerting import evaluation, outbox
from controlplane.alerting.drill import SLOW_SECONDS
from controlplane.alerting.models import Alert, AlertRule
from controlplane.catalog.models import MetricSource, Organization
from controlplane.paging import engine
from controlplane.paging.channels import EmailConfig, WebhookConfig
from controlplane.paging.management.commands.webhook_sink import describe
from controlplane.paging.models import EscalationPolicy, Notification, NotificationChannel
from controlplane.paging.payloads import AlertNotice, email_message, webhook_body
from controlplane.paging.transports import Delivered, EmailTransport, WebhookTransport
from tests import waiting
from tests.services import free_port

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = ["127.0.0.0/8", "::1/128"]
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OPENED = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def notice(event: str = "trigger", **fields) -> AlertNotice:
    values = {
        "alert_id": 7,
        "rule_key": "api.5xx",
        "rule_name": "API answers 5xx to more than 1% of requests",
        "summary": "42% of API requests fail with 5xx",
        "severity": "critical",
        "event": event,
        "value": 0.42,
        "opened_at": OPENED,
        "fingerprint": "5d52eccfad771c2c",
        "organization": "demo",
        "trace_id": TRACE,
    }
    if event == "resolve":
        values["resolved_at"] = OPENED + timedelta(minutes=5)
    return AlertNotice(**{**values, **fields})


# --- the drill -------------------------------------------------------------------------


def _build_urls(settings, debug: bool) -> None:
    """controlplane.urls as a process started with DEBUG=`debug` builds it."""
    import controlplane.urls

    settings.DEBUG = debug
    importlib.reload(controlplane.urls)
    clear_url_caches()


@pytest.fixture
def urls_with_debug(settings) -> Iterator:
    """Build the URLs with DEBUG on or off: urls_with_debug(True); rebuilt as they were
    after the test."""
    was = settings.DEBUG
    yield lambda debug: _build_urls(settings, debug)
    _build_urls(settings, was)


def test_the_drill_refuses_to_run_without_debug(settings):
    settings.DEBUG = False

    with pytest.raises(CommandError, match="runs only with DEBUG on"):
        call_command("drill", url="http://127.0.0.1:9")


@pytest.mark.parametrize("path", ["/demo/drill/fail/", "/demo/drill/slow/"])
def test_the_drill_urls_are_not_routed_with_debug_off(client, urls_with_debug, path, db):
    urls_with_debug(False)

    assert client.get(path).status_code == 404


def duration_count(route: str, status: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "http_server_request_duration_seconds_count",
            {
                "http_request_method": "GET",
                "http_route": route,
                "http_response_status_code": status,
            },
        )
        or 0.0
    )


def test_with_debug_on_the_drill_answers_500_and_slowly_and_the_metrics_count_it(
    client, urls_with_debug
):
    urls_with_debug(True)
    failed = duration_count("demo/drill/fail/", "500")

    assert client.get("/demo/drill/fail/").status_code == 500
    started = time.monotonic()
    assert client.get("/demo/drill/slow/").status_code == 200

    assert time.monotonic() - started >= SLOW_SECONDS
    assert duration_count("demo/drill/fail/", "500") == failed + 1


def test_the_drill_says_when_nothing_answers(settings):
    settings.DEBUG = True

    with pytest.raises(CommandError, match="Nothing answers at http://127\\.0\\.0\\.1:"):
        call_command("drill", url=f"http://127.0.0.1:{free_port()}", minutes=0.01)


def test_the_drill_says_a_server_with_debug_off_does_not_route_it(
    live_server, urls_with_debug, settings
):
    urls_with_debug(False)
    settings.DEBUG = True  # the drill's own process; the server's URLs were built without

    with pytest.raises(CommandError, match="routes the drill only when it runs with DEBUG on"):
        call_command("drill", url=live_server.url, minutes=0.01)


# --- the webhook sink ------------------------------------------------------------------


class Sink:
    """`manage.py webhook_sink` in a process of its own, on a port it picks; `lines` is
    everything it printed so far."""

    def __init__(self, *arguments: str) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "webhook_sink", "--port", "0", *arguments],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        listening = self.until_printed("listening on ")
        self.url = listening.split("listening on ", 1)[1].strip()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def until_printed(self, text: str) -> str:
        return waiting.until(
            lambda: next((line for line in self.lines if text in line), None),
            what=f"the webhook sink to print {text!r}",
            process=self.process,
            log=lambda: "\n".join(self.lines),
        )

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def sink() -> Iterator[Sink]:
    started = Sink("-v", "2")
    yield started
    started.close()


def test_the_sink_describes_one_line_per_alert():
    body = webhook_body([notice(), notice("resolve", alert_id=8, rule_key="api.latency")])

    assert describe(body) == [
        f"trigger api.5xx (critical): 42% of API requests fail with 5xx | alert 7 | trace {TRACE}",
        "resolve api.latency (critical): 42% of API requests fail with 5xx | alert 8 "
        f"| trace {TRACE}",
    ]
    assert describe(webhook_body([notice("test", is_test=True)]))[0].startswith("[TEST] test ")
    assert describe({"text": "a Slack message"}) == [
        "a JSON body with no list of alerts: not a webhook of ours"
    ]


def test_the_sink_prints_the_webhooks_it_receives(sink, settings):
    settings.ALLOWED_PRIVATE_NETWORKS = LOOPBACK
    body = webhook_body([notice(), notice("resolve", alert_id=8)])

    outcome = WebhookTransport().deliver(WebhookConfig(url=sink.url), body)

    assert outcome == Delivered(200)
    line = sink.until_printed("trigger api.5xx")
    assert line.startswith("webhook sink ")
    assert line.endswith(f"| alert 7 | trace {TRACE}")
    assert sink.until_printed("resolve api.5xx").endswith(f"| alert 8 | trace {TRACE}")
    # -v 2: the trace header and the JSON as well.
    assert sink.until_printed("X-Trace-Id: ").endswith(TRACE)
    sink.until_printed('"version": "4"')

    garbage = requests.post(sink.url, data=b"\x00 not json", timeout=waiting.REQUEST_TIMEOUT)
    assert garbage.status_code == 400
    sink.until_printed("that is not JSON (10 bytes)")


# --- the console email -----------------------------------------------------------------


def test_console_email_prints_to_the_process_stdout_even_when_a_worker_took_sys_stdout(
    settings, capfd, monkeypatch
):
    monkeypatch.setenv("EMAIL_URL", "console:")
    settings.EMAIL_BACKEND = environment.email("EMAIL_URL")["EMAIL_BACKEND"]
    # What a Celery worker does to sys.stdout (worker_redirect_stdouts): a logger in its
    # place, which would cut the email into escaped log records.
    taken = io.StringIO()
    monkeypatch.setattr(sys, "stdout", taken)

    outcome = EmailTransport().deliver(
        EmailConfig(to=("oncall@example.com",)), email_message(notice())
    )

    assert outcome == Delivered(None)
    printed = capfd.readouterr().out
    assert f"X-Trace-Id: {TRACE}" in printed
    assert "To: oncall@example.com" in printed
    assert taken.getvalue() == ""


# --- seed_demo_paging ------------------------------------------------------------------


@pytest.fixture
def demo(db, settings) -> Organization:
    """The organisation seed_demo makes, with its Prometheus source (so api.5xx and
    api.latency exist), and loopback allowed as the demo script allows it."""
    settings.ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32"]
    organization = Organization.objects.create(slug="demo", name="Demo organisation")
    MetricSource.objects.create(organization=organization, name="self", url="http://prom:9090")
    return organization


def seed(sink_url: str = "http://127.0.0.1:9099/") -> str:
    out = io.StringIO()
    call_command("seed_demo_paging", sink_url=sink_url, stdout=out)
    return out.getvalue()


def test_seed_demo_paging_makes_a_default_policy_to_both_sinks_and_quick_rules(demo):
    said = seed()

    policy = EscalationPolicy.objects.get(organization=demo)
    assert policy.is_default
    assert policy.notify_on_resolve
    policy.check_snapshot()  # one an alert can run on
    [step] = policy.steps.all()
    assert step.delay == timedelta(0)
    assert {(c.name, c.kind) for c in step.channels.all()} == {
        ("demo-webhook-sink", "webhook"),
        ("demo-email", "email"),
    }
    webhook = NotificationChannel.objects.get(organization=demo, name="demo-webhook-sink")
    assert webhook.settings().url == "http://127.0.0.1:9099/"
    timings = {
        rule.key: (rule.interval, rule.for_duration)
        for rule in AlertRule.objects.filter(organization=demo, key__in=["api.5xx", "api.latency"])
    }
    quick = (timedelta(seconds=10), timedelta(seconds=15))
    assert timings == {"api.5xx": quick, "api.latency": quick}
    assert "(the organisation's default) notifies demo-webhook-sink" in said


def test_seed_demo_paging_again_changes_only_the_sink_url_and_leaves_edits_alone(demo):
    seed()
    policy = EscalationPolicy.objects.get(organization=demo)
    AlertRule.objects.filter(organization=demo, key="api.latency").update(
        for_duration=timedelta(minutes=1)
    )

    said = seed("http://127.0.0.1:9100/")
    seed("http://127.0.0.1:9100/")

    assert "kept as it is" in said
    assert list(EscalationPolicy.objects.filter(organization=demo)) == [policy]
    assert EscalationPolicy.objects.get(pk=policy.pk).version == policy.version
    assert NotificationChannel.objects.filter(organization=demo).count() == 2
    webhook = NotificationChannel.objects.get(organization=demo, name="demo-webhook-sink")
    assert webhook.settings().url == "http://127.0.0.1:9100/"
    latency = AlertRule.objects.get(organization=demo, key="api.latency")
    assert latency.for_duration == timedelta(minutes=1)


def test_seed_demo_paging_says_loopback_must_be_allowed_and_makes_nothing(demo, settings):
    settings.ALLOWED_PRIVATE_NETWORKS = []

    with pytest.raises(CommandError, match="ALLOWED_PRIVATE_NETWORKS"):
        seed()

    assert not NotificationChannel.objects.filter(organization=demo).exists()
    assert not EscalationPolicy.objects.filter(organization=demo).exists()


def test_seed_demo_paging_needs_the_demo_organisation(db):
    with pytest.raises(CommandError, match="run seed_demo first"):
        seed()


# --- the whole loop --------------------------------------------------------------------


@pytest.mark.integration
def test_the_drill_fires_api_5xx_from_the_servers_metrics_and_the_sink_prints_it(
    live_server, urls_with_debug, settings, sink, tmp_path, mailoutbox
):
    from tests.integration.prometheus import scrape_config, start_prometheus

    urls_with_debug(True)
    settings.ALLOWED_PRIVATE_NETWORKS = LOOPBACK
    prometheus_port = free_port()
    prometheus = start_prometheus(
        tmp_path / "prometheus",
        prometheus_port,
        scrape_config(live_server.url.removeprefix("http://")),
    )
    try:
        organization = Organization.objects.create(slug="demo", name="Demo organisation")
        MetricSource.objects.create(
            organization=organization, name="self", url=f"http://127.0.0.1:{prometheus_port}"
        )
        call_command("seed_demo_paging", sink_url=sink.url, stdout=io.StringIO())
        rule = AlertRule.objects.get(organization=organization, key="api.5xx")
        # Fired at its first breaching evaluation: the demo's 15 s `for` is the demo's.
        AlertRule.objects.filter(pk=rule.pk).update(for_duration=timedelta(0))

        # Prometheus takes some seconds to find its target; 500s made before its first
        # scrape would be no increase to rate().
        waiting.until(
            lambda: _query(prometheus_port, 'up{job="controlplane"} == 1'),
            what="Prometheus to scrape the live server",
            process=prometheus,
        )

        # Bursts of three seconds of real 500s and slow answers from the server Prometheus
        # scrapes every second, until the rule fires. rate() sees the 500s only between
        # two scrapes that both found the 5xx series; on a busy machine a scrape can miss
        # its one-second timeout, and a series first scraped after a single burst has
        # ended would never grow. Each burst goes on where the last left off, as the
        # demo's three-minute drill does.
        def fired() -> Alert | None:
            call_command("drill", url=live_server.url, minutes=0.05, rate=10, stdout=io.StringIO())
            evaluation.evaluate_claimed([rule.pk])
            return Alert.objects.filter(rule=rule).first()

        alert = waiting.until(fired, what="api.5xx to fire on the drill's 500s")
        outbox.drain()  # the paging consumer starts its escalation: step 1 is due now

        def delivered() -> bool:
            engine.deliver_due()
            return Notification.objects.filter(alert=alert, state="sent").count() == 2

        waiting.until(delivered, what="the trigger delivered to the webhook sink and by email")
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=20)

    line = sink.until_printed("trigger api.5xx (critical)")
    assert line.endswith(f"| alert {alert.pk} | trace {alert.trace_id}")
    sink.until_printed('"alertname": "api.5xx"')  # -v 2: the JSON too
    [email] = mailoutbox
    assert email.to == ["oncall@example.com"]
    assert email.extra_headers["X-Trace-Id"] == alert.trace_id


def _query(port: int, promql: str) -> list:
    answer = requests.get(
        f"http://127.0.0.1:{port}/api/v1/query",
        params={"query": promql},
        timeout=waiting.REQUEST_TIMEOUT,
    )
    return answer.json()["data"]["result"]
