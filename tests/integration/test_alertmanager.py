"""A real Alertmanager (Debian's `prometheus-alertmanager`) sends its webhook to a live
control plane: an alert pushed into Alertmanager opens ours, escalates, and resolves
when Alertmanager says it ended.

Alertmanager groups with tiny waits (group_wait and group_interval of 1 s), so each
notification goes out about a second after the alert changes; the waits below give it
the suite's generous deadline all the same.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from controlplane.alerting import outbox
from controlplane.alerting.models import Alert
from controlplane.catalog.models import ApiToken
from controlplane.paging.models import IntegrationHealth, Notification
from tests import services, waiting
from tests.factories import make_channel, make_integration, make_policy, make_runbook

pytestmark = pytest.mark.django_db(transaction=True)

CONFIG = """\
route:
  receiver: controlplane
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: controlplane
    webhook_configs:
      - url: {url}
        send_resolved: true
{extra}"""
# The other way in: a write token in the Authorization header.
WITH_TOKEN = """\
        http_config:
          authorization:
            credentials_file: {path}
"""


class Alertmanager:
    """`prometheus-alertmanager` on a free loopback port, alone (no cluster)."""

    def __init__(self, binary: str, directory: Path, webhook_url: str, extra: str = "") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "alertmanager.yml"
        config.write_text(CONFIG.format(url=webhook_url, extra=extra))
        self.log = directory / "alertmanager.log"
        self.url = f"http://127.0.0.1:{services.free_port()}"
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.path={directory / 'data'}",
                    f"--web.listen-address={self.url.removeprefix('http://')}",
                    "--cluster.listen-address=",
                    "--log.level=debug",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        waiting.until_serving(
            f"{self.url}/-/ready", what="Alertmanager", process=self.process, log=self.log
        )

    def push(self, labels: dict, annotations: dict, starts_at: datetime, ends_at=None) -> None:
        """What Prometheus does: post the alert to Alertmanager's API."""
        alert = {"labels": labels, "annotations": annotations, "startsAt": _rfc3339(starts_at)}
        if ends_at is not None:
            alert["endsAt"] = _rfc3339(ends_at)
        alert["generatorURL"] = "http://prometheus.example:9090/graph?g0.expr=up"
        response = requests.post(
            f"{self.url}/api/v2/alerts", json=[alert], timeout=waiting.REQUEST_TIMEOUT
        )
        assert response.status_code == 200, response.text

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def alertmanager_binary() -> str:
    return services.require_binary("prometheus-alertmanager", "prometheus-alertmanager")


@pytest.fixture
def setup(org, live_server, tmp_path, alertmanager_binary) -> Iterator[tuple]:
    hook = make_channel(org, "ops-hook", "webhook", url="https://hooks.example/h")
    policy = make_policy(org, "am-policy", steps=[(0, [hook])])
    make_runbook(org, "api-latency")
    integration, key = make_integration(org, "prod-am", escalation_policy=policy)
    url = f"{live_server.url}/api/v1/integrations/alertmanager/{key}/"
    manager = Alertmanager(alertmanager_binary, tmp_path / "alertmanager", url)
    try:
        yield manager, integration, hook
    finally:
        manager.close()


def test_an_alert_from_a_real_alertmanager_opens_escalates_and_resolves(setup):
    manager, integration, hook = setup
    labels = {"alertname": "HighLatency", "severity": "critical", "job": "api"}
    annotations = {"summary": "p99 over 2s", "description": "The API is slow."}
    started = datetime.now(UTC) - timedelta(seconds=30)

    manager.push({**labels, "runbook": "api-latency"}, annotations, started)

    def opened() -> Alert | None:
        return Alert.objects.filter(alertmanager=integration).first()

    alert = waiting.until(opened, what="the alert from Alertmanager", log=manager.log)
    assert alert.state == Alert.State.FIRING
    assert alert.rule_key == "HighLatency"
    assert alert.severity == "critical"
    assert alert.labels == {**labels, "runbook": "api-latency"}
    assert alert.annotations == annotations
    assert alert.runbook_url == "/runbooks/api-latency/"
    # Alertmanager keeps the start Prometheus gave (to the millisecond it writes).
    assert abs(alert.started_at - started) < timedelta(seconds=1)
    assert alert.fingerprint.startswith(f"am:{integration.pk}:")
    assert IntegrationHealth.objects.get(integration=integration).last_received_at

    # Escalated like our own: the outbox's paging consumer writes the policy's step.
    outbox.drain()
    [notification] = Notification.objects.filter(alert=alert)
    assert (notification.channel_id, notification.event) == (hook.pk, "trigger")

    # Prometheus says it ended: Alertmanager sends the resolve.
    ended = datetime.now(UTC) - timedelta(seconds=1)
    manager.push({**labels, "runbook": "api-latency"}, annotations, started, ended)

    def resolved() -> bool:
        alert.refresh_from_db()
        return alert.state == Alert.State.RESOLVED

    waiting.until(resolved, what="the resolve from Alertmanager", log=manager.log)
    assert alert.events.last().note == "resolved in Alertmanager"
    assert Alert.objects.filter(alertmanager=integration).count() == 1

    # It fires again: a new occurrence, a new alert; the first stays resolved.
    manager.push({**labels, "runbook": "api-latency"}, annotations, datetime.now(UTC))

    def fired_again() -> Alert | None:
        return Alert.objects.filter(alertmanager=integration).exclude(pk=alert.pk).first()

    again = waiting.until(fired_again, what="the alert firing again", log=manager.log)
    assert again.state == Alert.State.FIRING
    assert again.fingerprint == alert.fingerprint
    assert again.started_at > alert.resolved_at
    alert.refresh_from_db()
    assert alert.state == Alert.State.RESOLVED


def test_a_real_alertmanager_may_post_with_a_write_token(
    org, live_server, tmp_path, alertmanager_binary
):
    integration, _ = make_integration(org, "prod-am")
    make_integration(org, "staging-am")
    token, plaintext = ApiToken.issue(org, ApiToken.Scope.WRITE, "alertmanager")
    secret = tmp_path / "token"
    secret.write_text(plaintext)
    url = f"{live_server.url}/api/v1/integrations/alertmanager/?integration=prod-am"
    manager = Alertmanager(
        alertmanager_binary, tmp_path / "alertmanager", url, WITH_TOKEN.format(path=secret)
    )
    try:
        manager.push({"alertname": "DiskFull"}, {}, datetime.now(UTC))

        alert = waiting.until(
            lambda: Alert.objects.filter(alertmanager=integration).first(),
            what="the alert posted with a token",
            log=manager.log,
        )
    finally:
        manager.close()
    assert alert.actor == f"token:{token.pk}"
    assert (alert.rule_key, alert.severity) == ("DiskFull", "warning")
