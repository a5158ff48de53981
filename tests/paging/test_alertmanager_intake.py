"""Alerts from Alertmanager through the API: the integration's key in the URL, or a write
token; payloads carried out through the alert lifecycle, escalated like our own alerts.

Payloads are written as Alertmanager 0.25 writes them; tests/integration/
test_alertmanager.py has a real Alertmanager send them."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from controlplane.alerting import outbox
from controlplane.alerting.models import Alert, AlertEvent
from controlplane.catalog.models import ApiToken
from controlplane.paging import alertmanager, engine
from controlplane.paging.models import AlertmanagerIntegration, IntegrationHealth, Notification
from tests.factories import (
    make_channel,
    make_integration,
    make_policy,
    make_runbook,
    make_silence,
)

pytestmark = pytest.mark.django_db

FP = "3a5f1c0e9b2d4a61"


def am_alert(status: str = "firing", fingerprint: str = FP, **fields) -> dict:
    started = timezone.now() - timedelta(minutes=1)
    alert = {
        "status": status,
        "labels": {"alertname": "HighLatency", "severity": "critical", "job": "api"},
        "annotations": {"summary": "p99 over 2s"},
        "startsAt": started.isoformat().replace("+00:00", "Z"),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": fingerprint,
    }
    alert.update(fields)
    return alert


def am_payload(*alerts: dict, **fields) -> dict:
    payload = {
        "version": "4",
        "groupKey": '{}:{alertname="HighLatency"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "controlplane",
        "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {"alertname": "HighLatency"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }
    payload.update(fields)
    return payload


@pytest.fixture
def client(api):
    client = api()
    client.raise_request_exception = False
    return client


@pytest.fixture
def integration(org):
    return make_integration(org, "prod-am")


def post(client, key: str, payload, **extra):
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.post(
        f"/api/v1/integrations/alertmanager/{key}/",
        data=data,
        content_type="application/json",
        **extra,
    )


def open_alerts():
    return Alert.objects.exclude(state=Alert.State.RESOLVED)


# --- the key in the URL ------------------------------------------------------------------


def test_a_firing_alert_opens_an_alert_that_escalates_like_our_own(client, org, integration):
    hook = make_channel(org, "ops-hook", "webhook", url="https://hooks.example/h")
    policy = make_policy(org, "am-policy", steps=[(0, [hook])])
    AlertmanagerIntegration.objects.filter(pk=integration[0].pk).update(escalation_policy=policy)

    response = post(client, integration[1], am_payload(am_alert()))

    assert response.status_code == 200, response.content
    assert response.json() == {
        "integration": "prod-am",
        "alerts": 1,
        "opened": 1,
        "updated": 0,
        "resolved": 0,
        "unchanged": 0,
        "truncated_alerts": 0,
    }
    [alert] = Alert.objects.all()
    assert alert.state == Alert.State.FIRING
    assert alert.fingerprint == f"am:{integration[0].pk}:{FP}"
    assert alert.alertmanager_id == integration[0].pk
    assert alert.rule_id is None
    assert alert.rule_key == "HighLatency"
    assert alert.severity == "critical"
    assert alert.labels == {"alertname": "HighLatency", "severity": "critical", "job": "api"}
    assert alert.annotations == {"summary": "p99 over 2s"}
    assert alert.actor == "system:alertmanager/prod-am"
    assert alert.audit["alertmanager"] == "prod-am"
    assert alert.trace_id  # the request's trace
    [opened] = alert.events.all()
    assert opened.kind == AlertEvent.Kind.OPENED
    assert opened.details["alertmanager"]["fingerprint"] == FP

    outbox.drain()

    [notification] = Notification.objects.all()
    assert (notification.alert_id, notification.channel_id) == (alert.pk, hook.pk)
    assert notification.event == "trigger"
    notice = engine.notice_for(notification)
    assert notice.rule_name == "HighLatency"
    assert notice.summary == "p99 over 2s"


def test_without_a_policy_of_its_own_the_organisations_default_escalates(client, org, integration):
    hook = make_channel(org, "ops-hook", "webhook", url="https://hooks.example/h")
    make_policy(org, "default", steps=[(0, [hook])], is_default=True)

    post(client, integration[1], am_payload(am_alert()))
    outbox.drain()

    assert Notification.objects.get().channel_id == hook.pk


def test_resolved_resolves_it_and_firing_again_opens_a_new_alert(client, integration):
    first = am_alert()
    post(client, integration[1], am_payload(first))
    ended = timezone.now().replace(microsecond=0)
    resolved = {**first, "status": "resolved", "endsAt": ended.isoformat()}

    response = post(client, integration[1], am_payload(resolved, status="resolved"))

    assert response.json()["resolved"] == 1
    [alert] = Alert.objects.all()
    assert alert.state == Alert.State.RESOLVED
    assert alert.resolved_at == ended
    assert alert.events.last().note == "resolved in Alertmanager"

    # The old firing notification again (a retry): the occurrence is over.
    assert post(client, integration[1], am_payload(first)).json()["unchanged"] == 1
    assert not open_alerts().exists()

    # A new occurrence: a new alert, the old one stays resolved.
    again = am_alert(startsAt=timezone.now().isoformat())
    assert post(client, integration[1], am_payload(again)).json()["opened"] == 1
    assert Alert.objects.count() == 2
    assert open_alerts().get().pk != alert.pk


def test_the_same_payload_twice_changes_nothing(client, integration):
    payload = am_payload(am_alert(), am_alert(fingerprint="b1"), am_alert("resolved", "c1"))
    post(client, integration[1], payload)
    before = list(Alert.objects.values().order_by("pk"))
    events = AlertEvent.objects.count()

    response = post(client, integration[1], payload)

    assert response.json()["unchanged"] == 3
    assert list(Alert.objects.values().order_by("pk")) == before
    assert AlertEvent.objects.count() == events


def test_what_alertmanager_now_says_updates_the_open_alert(client, integration):
    post(client, integration[1], am_payload(am_alert()))
    changed = am_alert(
        labels={"alertname": "HighLatency", "severity": "warning", "job": "api"},
        annotations={"summary": "p99 over 3s"},
    )

    response = post(client, integration[1], am_payload(changed))

    assert response.json()["updated"] == 1
    alert = Alert.objects.get()
    assert (alert.severity, alert.annotations["summary"]) == ("warning", "p99 over 3s")
    assert alert.events.count() == 1  # not a state change


def test_unknown_keys_are_accepted(client, integration):
    payload = am_payload(
        am_alert(notification_reason="new", fresh={"nested": [1]}), routeLabels={"a": "b"}
    )

    assert post(client, integration[1], payload).status_code == 200
    assert Alert.objects.count() == 1


def test_each_integration_keeps_its_own_alerts(client, org, integration):
    other = make_integration(org, "staging-am")
    post(client, integration[1], am_payload(am_alert()))
    post(client, other[1], am_payload(am_alert()))

    assert sorted(Alert.objects.values_list("alertmanager__slug", flat=True)) == [
        "prod-am",
        "staging-am",
    ]
    # A resolve from one leaves the other's open.
    post(client, other[1], am_payload(am_alert("resolved")))
    assert open_alerts().get().alertmanager_id == integration[0].pk


@pytest.mark.parametrize(
    "key", ["amk_not-a-key", "cpt_wrong-kind", "x", "amk_" + "a" * 300, "%E2%80%A6"]
)
def test_an_unknown_key_is_404_and_changes_nothing(client, integration, key):
    response = post(client, key, am_payload(am_alert()))

    assert response.status_code == 404
    assert "No Alertmanager integration has this key" in response.json()["detail"]
    assert not Alert.objects.exists()


def test_a_regenerated_key_replaces_the_old_one(client, integration):
    found, old = integration
    new = found.new_key()
    found.save(update_fields=["key_prefix", "key_digest"])

    assert post(client, old, am_payload(am_alert())).status_code == 404
    assert post(client, new, am_payload(am_alert())).status_code == 200


def test_the_key_route_takes_no_credentials_but_its_key(client, integration, other_org):
    """A token of another organisation beside the key changes nothing: the key decides."""
    token = ApiToken.issue(other_org, ApiToken.Scope.WRITE, "theirs")[1]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    assert post(client, integration[1], am_payload(am_alert())).status_code == 200
    assert Alert.objects.get().organization_id == integration[0].organization_id


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        (b"not json", "body", "not JSON"),
        (b"", "body", "empty"),
        (json.dumps(am_payload(am_alert(), version="3")).encode(), "version", 'expected "4"'),
        (json.dumps({"alerts": []}).encode(), "version", "missing"),
        (json.dumps(am_payload(alerts={"a": 1})).encode(), "alerts", "expected a list"),
        (
            json.dumps(am_payload({k: v for k, v in am_alert().items() if k != "fingerprint"})),
            "alerts[0].fingerprint",
            "missing",
        ),
        (json.dumps(am_payload(am_alert(startsAt="now"))).encode(), "alerts[0].startsAt", "RFC"),
    ],
)
def test_a_malformed_payload_is_a_400_naming_the_field(client, integration, body, field, says):
    body = body.encode() if isinstance(body, str) else body

    response = post(client, integration[1], body)

    assert response.status_code == 400
    answer = response.json()
    assert says in answer["errors"][field][0]
    assert answer["detail"].startswith(f"Invalid input. {field}: ")
    assert not Alert.objects.exists()
    health = IntegrationHealth.objects.get(integration=integration[0])
    assert health.refusing
    assert health.last_error.startswith(f"{field}: ")


def test_a_refused_payload_changes_nothing_of_the_others_in_it(client, integration):
    payload = am_payload(am_alert(), am_alert(fingerprint="b1", labels={"a": 1}))

    response = post(client, integration[1], payload)

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["alerts[1].labels"]
    assert not Alert.objects.exists()


def test_a_body_over_the_limit_is_413(client, integration):
    big = json.dumps(am_payload(am_alert(), junk="x" * alertmanager.MAX_BODY_BYTES)).encode()

    response = post(client, integration[1], big)

    assert response.status_code == 413
    assert "body" in response.json()["errors"]
    assert not Alert.objects.exists()


def test_too_many_alerts_are_413(client, integration):
    crowd = [am_alert(fingerprint=f"f{i}") for i in range(alertmanager.MOST_ALERTS + 1)]

    response = post(client, integration[1], am_payload(*crowd))

    assert response.status_code == 413
    assert "max_alerts" in response.json()["detail"]


def test_health_says_when_it_last_received(client, integration):
    post(client, integration[1], b"{")
    assert IntegrationHealth.objects.get().refusing

    post(client, integration[1], am_payload(am_alert()))

    health = IntegrationHealth.objects.get()
    assert not health.refusing
    assert health.last_received_at >= health.last_refused_at


# --- the runbook link ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotations", "labels", "link"),
    [
        ({"runbook_url": "https://wiki.example/high-latency"}, {}, "https://wiki.example/high-latency"),
        ({}, {"runbook": "api-latency"}, "http://cp.example/runbooks/api-latency/"),
        ({"runbook_url": "shared-db"}, {}, "http://cp.example/runbooks/shared-db/"),
        ({"runbook_url": "not-a-runbook-here"}, {}, ""),
        ({"runbook_url": "theirs"}, {}, ""),
    ],
)  # fmt: skip
def test_notifications_carry_the_runbook_link(
    client, org, other_org, integration, settings, annotations, labels, link
):
    settings.SITE_URL = "http://cp.example"
    make_runbook(org, "api-latency")
    make_runbook(None, "shared-db")
    make_runbook(other_org, "theirs")
    hook = make_channel(org, "ops-hook", "webhook", url="https://hooks.example/h")
    make_policy(org, "default", steps=[(0, [hook])], is_default=True)
    alert = am_alert(
        annotations={"summary": "s", **annotations},
        labels={"alertname": "HighLatency", **labels},
    )

    post(client, integration[1], am_payload(alert))
    outbox.drain()

    notice = engine.notice_for(Notification.objects.get())
    assert notice.runbook_url == link


# --- the write token -----------------------------------------------------------------------


def post_with_token(client, token: str | None, payload, query: str = ""):
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.post(
        f"/api/v1/integrations/alertmanager/{query}",
        data=json.dumps(payload),
        content_type="application/json",
    )


def test_a_write_token_posts_to_its_organisations_only_integration(
    client, integration, write_token
):
    response = post_with_token(client, write_token, am_payload(am_alert()))

    assert response.status_code == 200, response.content
    alert = Alert.objects.get()
    assert alert.alertmanager_id == integration[0].pk
    assert alert.actor.startswith("token:")


def test_several_integrations_are_told_apart_by_slug(client, org, integration, write_token):
    make_integration(org, "staging-am")

    unnamed = post_with_token(client, write_token, am_payload(am_alert()))
    assert unnamed.status_code == 400
    assert "?integration=<slug>" in unnamed.json()["errors"]["integration"][0]

    named = post_with_token(client, None, am_payload(am_alert()), "?integration=staging-am")
    assert named.status_code == 200
    assert Alert.objects.get().alertmanager.slug == "staging-am"

    missing = post_with_token(client, None, am_payload(am_alert()), "?integration=nope")
    assert missing.status_code == 404


def test_an_organisation_without_an_integration_is_told_to_add_one(client, write_token):
    response = post_with_token(client, write_token, am_payload(am_alert()))

    assert response.status_code == 404
    assert "add one in the admin" in response.json()["detail"]


def test_a_token_of_another_organisation_reaches_none_of_ours(client, integration, other_org):
    theirs = ApiToken.issue(other_org, ApiToken.Scope.WRITE, "theirs")[1]

    response = post_with_token(client, theirs, am_payload(am_alert()), "?integration=prod-am")

    assert response.status_code == 404
    assert not Alert.objects.exists()


def test_a_read_token_is_refused(client, integration, read_token):
    response = post_with_token(client, read_token, am_payload(am_alert()))

    assert response.status_code == 403
    assert "write scope" in response.json()["detail"]


def test_no_token_is_401(client, integration, member, org):
    assert post_with_token(client, None, am_payload(am_alert())).status_code == 401
    # A manager's session is not a way in either: Alertmanager posts with a token or a key.
    client.force_login(member(org, "manager"))
    assert post_with_token(client, None, am_payload(am_alert())).status_code == 401
    assert not Alert.objects.exists()


def test_a_malformed_payload_with_a_token_is_a_400_too(client, integration, write_token):
    response = post_with_token(client, write_token, am_payload(am_alert(), version="3"))

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["version"]


# --- around the alert ----------------------------------------------------------------------


def test_a_silence_holds_alertmanager_alerts_by_their_name(client, org, integration):
    make_silence(org, matchers=[{"name": "rule", "op": "=", "value": "HighLatency"}])

    post(client, integration[1], am_payload(am_alert()))

    assert Alert.objects.get().silenced_by is not None


def test_deleting_an_integration_resolves_its_open_alerts(client, integration):
    post(client, integration[1], am_payload(am_alert()))

    integration[0].delete()

    alert = Alert.objects.get()
    assert alert.state == Alert.State.RESOLVED
    assert alert.alertmanager_id is None
    assert "deleted" in alert.events.last().note


def test_deleting_the_organisation_takes_its_alerts_along(client, org, integration):
    post(client, integration[1], am_payload(am_alert()))

    org.delete()

    assert not Alert.objects.exists()
    assert not AlertEvent.objects.exists()


def test_a_policy_an_integration_names_is_not_deleted(api, org, write_token):
    hook = make_channel(org, "ops-hook", "webhook", url="https://hooks.example/h")
    policy = make_policy(org, "am-policy", steps=[(0, [hook])])
    make_integration(org, "prod-am", escalation_policy=policy)

    response = api(write_token).delete("/api/v1/escalation-policies/am-policy/")

    assert response.status_code == 409
    assert "1 Alertmanager integration(s): prod-am" in response.json()["detail"]
    assert response.json()["rules"] == []


def test_the_pages_show_an_alert_from_alertmanager(client, org, member, integration):
    post(client, integration[1], am_payload(am_alert()))
    alert = Alert.objects.get()
    client.force_login(member(org, "manager"))

    for path in (
        "/alerts/",
        f"/alerts/{alert.pk}/",
        "/admin/alerting/alert/",
        f"/admin/alerting/alert/{alert.pk}/change/",
        f"/api/v1/alerts/{alert.pk}/",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "HighLatency" in response.content.decode(), path
