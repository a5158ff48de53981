"""Acknowledges, resolves and re-applied policies in the audit trail: each written by
the alert lifecycle's one recorder, in the transaction of the change, naming its actor
(a person by pseudonym), its request and the alert; a one-click link as its recipient."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from rest_framework.test import APIClient

from controlplane.alerting import lifecycle, outbox
from controlplane.alerting.models import Alert, AlertEvent
from controlplane.audit import sealing
from controlplane.audit.models import AuditEvent, Pseudonym
from controlplane.catalog.actors import BEAT, Actor
from controlplane.catalog.models import ApiToken, MetricSource, Role
from controlplane.oncall.models import Responder, Shift
from controlplane.paging import links
from controlplane.paging.links import Action, Link
from controlplane.paging.models import (
    EscalationPolicy,
    EscalationStep,
    Notification,
)
from tests.factories import make_alert, make_channel, make_policy, make_rule, make_schedule
from tests.paging.test_alertmanager_intake import am_alert, am_payload
from tests.promql.fake import vector

pytestmark = pytest.mark.django_db

REQUEST_ID = "req-audit-ack-0001"


def trail(alert: Alert, action: str | None = None) -> list[AuditEvent]:
    events = AuditEvent.objects.filter(object_type="alerting.alert", object_id=str(alert.pk))
    if action:
        events = events.filter(action=action)
    return list(events.order_by("id"))


def pseudonym(user) -> str:
    return Pseudonym.objects.get(user=user).value


def as_json(event: AuditEvent) -> str:
    return json.dumps(
        {
            "actor": event.actor,
            "label": event.object_label,
            "diff": event.diff,
            "request_id": event.request_id,
        }
    )


@pytest.fixture
def rule(org):
    return make_rule(org, "queue.depth")


@pytest.fixture
def alert(rule):
    return make_alert(rule, "3f9a2b1c0d4e5f60718293a4")


# --- a person, a token ----------------------------------------------------------------


def test_an_acknowledge_on_the_alert_page_names_the_person_by_pseudonym_and_the_request(
    client, member, org, alert
):
    alice = member(org, Role.RESPONDER, username="alice")
    client.force_login(alice)

    response = client.post(
        f"/alerts/{alert.pk}/acknowledge/", {"note": "on it"}, HTTP_X_REQUEST_ID=REQUEST_ID
    )

    assert response.status_code == 302
    alert.refresh_from_db()
    [event] = trail(alert)
    assert event.action == "alert.acknowledged"
    assert (event.object_type, event.object_id) == ("alerting.alert", str(alert.pk))
    assert event.organization_id == org.pk
    assert event.chain == org.pk
    assert event.object_label == "queue.depth 3f9a2b1c0d4e…"
    assert event.actor == f"user:{pseudonym(alice)}"
    assert event.request_id == REQUEST_ID
    assert event.diff == {
        "state": {"from": "firing", "to": "acknowledged"},
        "acknowledged_at": {"from": None, "to": alert.acknowledged_at.isoformat()},
        "note": "on it",
    }
    # The timeline and the trail tell the same change; the trail names nobody by name.
    timeline = alert.events.get(kind=AlertEvent.Kind.ACKNOWLEDGED)
    assert timeline.actor == f"user:{alice.pk}"
    assert event.trace_id
    assert event.trace_id == timeline.trace_id
    assert "alice" not in as_json(event)
    sealing.seal(org.pk)
    event.refresh_from_db()
    assert event.seq, "sealed: its content is what its MAC says"


def test_the_api_names_a_person_and_a_token_as_themselves(api, member, org, alert, write_token):
    bob = member(org, Role.RESPONDER, username="bob")
    session = APIClient()
    session.force_login(bob)
    token = ApiToken.objects.get(scope=ApiToken.Scope.WRITE)

    acked = session.post(
        f"/api/v1/alerts/{alert.pk}/acknowledge/", {}, format="json", HTTP_X_REQUEST_ID=REQUEST_ID
    )
    resolved = api(write_token).post(
        f"/api/v1/alerts/{alert.pk}/resolve/",
        {"note": "fixed the queue"},
        format="json",
        HTTP_X_REQUEST_ID="req-audit-resolve-0002",
    )

    assert (acked.status_code, resolved.status_code) == (200, 200)
    alert.refresh_from_db()
    acknowledge, resolve = trail(alert)
    assert (acknowledge.action, acknowledge.actor, acknowledge.request_id) == (
        "alert.acknowledged",
        f"user:{pseudonym(bob)}",
        REQUEST_ID,
    )
    assert (resolve.action, resolve.actor, resolve.request_id) == (
        "alert.resolved",
        f"token:{token.pk}",
        "req-audit-resolve-0002",
    )
    assert resolve.diff == {
        "state": {"from": "acknowledged", "to": "resolved"},
        "resolved_at": {"from": None, "to": alert.resolved_at.isoformat()},
        "note": "fixed the queue",
    }
    # Refused (already resolved): nothing changed, nothing recorded.
    assert api(write_token).post(f"/api/v1/alerts/{alert.pk}/resolve/").status_code == 409
    assert len(trail(alert)) == 2


def test_a_long_note_is_summarised(alert):
    note = "x" * 2000

    lifecycle.acknowledge(alert, BEAT, note=note)

    [event] = trail(alert)
    assert event.diff["note"]["summary"] == "2,000 characters"
    assert note not in json.dumps(event.diff)


def test_an_acknowledge_rolled_back_with_its_transaction_leaves_no_event(alert):
    seen = []

    def acknowledge_then_fail() -> None:
        with transaction.atomic():
            lifecycle.acknowledge(alert, BEAT)
            seen.extend(trail(alert))
            raise RuntimeError("the request failed after acknowledging")

    with pytest.raises(RuntimeError):
        acknowledge_then_fail()

    assert [event.action for event in seen] == ["alert.acknowledged"]
    assert trail(alert) == []
    assert Alert.objects.get(pk=alert.pk).state == "firing"


# --- the system -------------------------------------------------------------------------


def test_a_resolve_by_the_evaluation_is_the_systems(org, fake):
    source = MetricSource.objects.create(organization=org, name="prom", url=fake.url, timeout=2)
    rule = make_rule(org, "queue.depth", source=source)
    fake.answer(200, vector({"metric": {"queue": "mail"}, "value": [1767225600, "5"]}))
    from controlplane.alerting import evaluation

    evaluation.evaluate_claimed([rule.pk])
    alert = Alert.objects.get(rule=rule)
    assert trail(alert) == [], "an opening by the system is the timeline's, not the trail's"
    fake.answer(200, vector())

    evaluation.evaluate_claimed([rule.pk])

    [event] = trail(alert)
    assert (event.action, event.actor) == ("alert.resolved", BEAT.spec)
    assert event.diff["state"] == {"from": "firing", "to": "resolved"}
    assert event.diff["note"] == "condition no longer true"
    assert event.request_id == ""


def test_a_resolve_from_alertmanager_is_the_integrations(api, org):
    from controlplane.paging.models import AlertmanagerIntegration
    from tests.factories import make_integration

    integration, key = make_integration(org, "prod-am")
    client = api()
    path = f"/api/v1/integrations/alertmanager/{key}/"
    firing = json.dumps(am_payload(am_alert())).encode()
    assert client.post(path, firing, content_type="application/json").status_code == 200
    alert = Alert.objects.get(alertmanager=integration)
    ended = (timezone.now() - timedelta(seconds=5)).isoformat().replace("+00:00", "Z")
    resolved = am_payload(am_alert("resolved", endsAt=ended), status="resolved")

    answer = client.post(path, json.dumps(resolved).encode(), content_type="application/json")

    assert answer.status_code == 200
    [event] = trail(alert)
    assert (event.action, event.actor) == ("alert.resolved", "system:alertmanager/prod-am")
    assert event.diff["note"] == "resolved in Alertmanager"
    assert AlertmanagerIntegration.objects.filter(pk=integration.pk).exists()


def test_disabling_a_rule_resolves_its_alerts_in_the_name_of_who_disabled_it(
    api, write_token, org, rule, alert
):
    token = ApiToken.objects.get(scope=ApiToken.Scope.WRITE)

    response = api(write_token).patch(
        f"/api/v1/rules/{rule.key}/",
        {"enabled": False},
        format="json",
        HTTP_X_REQUEST_ID="req-audit-disable-0003",
    )

    assert response.status_code == 200, response.json()
    [event] = trail(alert)
    assert (event.action, event.actor, event.request_id) == (
        "alert.resolved",
        f"token:{token.pk}",
        "req-audit-disable-0003",
    )
    assert event.diff["note"] == "rule disabled"


# --- openings ---------------------------------------------------------------------------


def test_a_test_fire_by_a_person_is_recorded_an_opening_by_the_system_is_not(
    client, member, org, rule
):
    manager = member(org, Role.MANAGER, username="carol")
    client.force_login(manager)
    make_alert(rule, "fp-real")

    response = client.post(
        "/admin/alerting/alertrule/", {"action": "test_fire", "_selected_action": [rule.pk]}
    )

    assert response.status_code == 302
    opened = AuditEvent.objects.filter(action="alert.opened")
    [event] = opened
    test_alert = Alert.objects.get(is_test=True)
    assert event.object_id == str(test_alert.pk)
    assert event.actor == f"user:{pseudonym(manager)}"
    assert event.diff["state"] == {"to": "firing"}
    assert event.diff["is_test"] == {"to": True}


# --- a re-applied policy ----------------------------------------------------------------


def test_re_applying_the_current_policy_records_both_versions(client, member, org):
    hook = make_channel(org, "ops-hook", "webhook", url="https://hooks.example/h")
    policy = make_policy(org, "ops", steps=[(0, [hook]), (timedelta(hours=1), [hook])])
    alert = make_alert(make_rule(org, escalation_policy=policy))
    outbox.drain()
    policy.steps.filter(position=1).update(delay=timedelta(0))
    EscalationPolicy.objects.filter(pk=policy.pk).update(version=F("version") + 1)
    dave = member(org, Role.RESPONDER, username="dave")
    client.force_login(dave)

    response = client.post(f"/alerts/{alert.pk}/reapply/", HTTP_X_REQUEST_ID=REQUEST_ID)

    assert response.status_code == 302
    [event] = trail(alert)
    assert event.action == "alert.policy_reapplied"
    assert event.actor == f"user:{pseudonym(dave)}"
    assert event.request_id == REQUEST_ID
    assert event.diff == {"policy_version": {"from": 1, "to": 2}, "note": "version 1 → 2"}


# --- the one-click link -----------------------------------------------------------------


def link_path(alert: Alert, row: Notification, action: Action = Action.ACKNOWLEDGE) -> str:
    token = links.issue(Link(alert.pk, row.pk, action, timezone.now()))
    return f"/alerts/{alert.pk}/respond/{token}/"


def test_a_link_to_a_shared_channel_is_recorded_as_the_link_naming_the_channel(client, org):
    hook = make_channel(
        org, "ops-hook", "webhook", url="https://hooks.example/h", secret="hook-secret-0451"
    )
    alert = make_alert(make_rule(org, escalation_policy=make_policy(org, steps=[(0, [hook])])))
    outbox.drain()
    row = Notification.objects.get(alert=alert)

    response = client.post(link_path(alert, row), HTTP_X_REQUEST_ID=REQUEST_ID)

    assert response.status_code == 200
    [event] = trail(alert)
    assert event.action == "alert.acknowledged"
    assert event.actor == f"link:{row.pk}.ops-hook"
    assert event.request_id == REQUEST_ID
    assert event.diff["notification"] == row.pk
    assert event.diff["via"] == "one-click link"
    assert event.diff["state"] == {"from": "firing", "to": "acknowledged"}
    assert "hook-secret-0451" not in as_json(event)
    assert "hooks.example" not in as_json(event)


@pytest.fixture
def paged_person(org, member):
    """An alert whose policy emails whoever is on call in `primary`: alice, now."""
    alice = member(org, Role.RESPONDER, username="alice")
    responder = Responder.objects.create(organization=org, user=alice)
    rota = make_schedule(org, "primary")
    now = timezone.now()
    Shift.objects.create(
        schedule=rota, responder=responder, start=now - timedelta(hours=1), end=now + timedelta(1)
    )
    hook = make_channel(org, "ops-hook", "webhook", url="https://hooks.example/h")
    policy = make_policy(org, "ops", steps=[(0, [hook])])
    EscalationStep.objects.get(policy=policy).schedules.set([rota])
    alert = make_alert(make_rule(org, escalation_policy=policy))
    outbox.drain()
    return alert, Notification.objects.get(alert=alert, responder=responder), alice


def test_a_link_emailed_to_a_person_on_call_is_recorded_as_that_person(client, paged_person):
    alert, row, alice = paged_person
    assert row.channel_name == "primary: alice"

    acked = client.post(link_path(alert, row), HTTP_X_REQUEST_ID=REQUEST_ID)
    resolved = client.post(link_path(alert, row, Action.RESOLVE))

    assert (acked.status_code, resolved.status_code) == (200, 200)
    acknowledge, resolve = trail(alert)
    for event in (acknowledge, resolve):
        assert event.actor == f"user:{pseudonym(alice)}"
        assert (event.diff["notification"], event.diff["via"]) == (row.pk, "one-click link")
        assert "alice" not in as_json(event)
    assert acknowledge.request_id == REQUEST_ID
    assert resolve.diff["state"] == {"from": "acknowledged", "to": "resolved"}
    # The alert and its timeline name her too, with the notification that reached her.
    alert.refresh_from_db()
    assert alert.acknowledged_by == alice
    timeline = alert.events.get(kind=AlertEvent.Kind.ACKNOWLEDGED)
    assert timeline.actor == f"user:{alice.pk}"
    assert timeline.details == {"via": "one-click link", "notification": row.pk}


def test_a_link_of_a_person_no_longer_a_responder_names_the_schedule_not_them(client, paged_person):
    alert, row, alice = paged_person
    Responder.objects.filter(user=alice).delete()

    assert client.post(link_path(alert, row)).status_code == 200

    [event] = trail(alert)
    assert event.actor == f"link:{row.pk}.primary"
    assert event.diff["notification"] == row.pk
    assert "alice" not in as_json(event)


# --- pure -------------------------------------------------------------------------------


def test_the_diff_of_a_resolve_says_whether_it_was_acknowledged_before():
    at = timezone.now()
    acked = Alert(state="resolved", acknowledged_at=at, resolved_at=at)
    never = Alert(state="resolved", resolved_at=at)

    assert lifecycle.audit_diff(acked, "resolved", "", {})["state"]["from"] == "acknowledged"
    assert lifecycle.audit_diff(never, "resolved", "", {})["state"]["from"] == "firing"


@pytest.mark.parametrize(
    ("kind", "actor", "action"),
    [
        ("opened", BEAT, None),
        ("opened", Actor.parse("user:7"), "alert.opened"),
        ("acknowledged", BEAT, "alert.acknowledged"),
        ("resolved", Actor.parse("link:3.ops"), "alert.resolved"),
        ("reapplied", BEAT, "alert.policy_reapplied"),
        ("silenced", Actor.parse("user:7"), None),
        ("unsilenced", BEAT, None),
        ("source_unknown", BEAT, None),
    ],
)
def test_which_timeline_events_the_trail_records(kind, actor, action):
    assert lifecycle.audit_action(kind, actor) == action
