"""Channels, policies and notifications in the admin: checked per kind, secrets
write-only, steps checked as an alert will run them, the ledger read-only."""

from __future__ import annotations

import json

import pytest

from controlplane.alerting import outbox
from controlplane.catalog.models import Role
from controlplane.paging import engine
from controlplane.paging.models import EscalationPolicy, Notification, NotificationChannel
from tests.factories import make_alert, make_channel, make_policy, make_rule

pytestmark = pytest.mark.django_db

CHANNELS = "/admin/paging/notificationchannel/"
POLICIES = "/admin/paging/escalationpolicy/"
ROUTING_KEY = "abcdefghijklmnopqrstuvwxyz012345"


@pytest.fixture
def manager(client, member, org):
    client.force_login(member(org, Role.MANAGER))
    return client


def add_channel(client, org, name: str, kind: str, config) -> object:
    text = config if isinstance(config, str) else json.dumps(config)
    return client.post(
        f"{CHANNELS}add/", {"organization": org.pk, "name": name, "kind": kind, "config_text": text}
    )


@pytest.mark.parametrize(
    ("kind", "config", "message"),
    [
        ("email", "{not json", "This is not JSON"),
        ("email", {"to": ["not an address"]}, "config.to"),
        ("slack", {"url": "https://evil.example/hooks/x"}, "config.url"),
        ("pagerduty", {"routing_key": "short"}, "config.routing_key"),
        ("webhook", {"url": "http://10.1.2.3/hook"}, "ALLOWED_PRIVATE_NETWORKS"),
        ("webhook", {"url": "https://ok.example/h", "surprise": 1}, "surprise"),
    ],
    ids=["not-json", "bad-address", "not-slack", "short-key", "private", "unknown-key"],
)
def test_a_bad_configuration_is_refused_naming_its_field(manager, org, kind, config, message):
    response = add_channel(manager, org, "bad", kind, config)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not NotificationChannel.objects.exists()


def test_a_secret_is_write_only_and_kept_when_the_form_is_saved_as_shown(manager, org):
    add_channel(manager, org, "pager", "pagerduty", {"routing_key": ROUTING_KEY})
    channel = NotificationChannel.objects.get(name="pager")

    page = manager.get(f"{CHANNELS}{channel.pk}/change/").content.decode()
    assert ROUTING_KEY not in page
    assert ROUTING_KEY not in manager.get(CHANNELS).content.decode()
    shown = json.loads(
        page.split('name="config_text"')[1]
        .split(">", 1)[1]
        .split("</textarea>")[0]
        .replace("&quot;", '"')
    )
    response = manager.post(
        f"{CHANNELS}{channel.pk}/change/",
        {
            "organization": org.pk,
            "name": "pager",
            "kind": "pagerduty",
            "config_text": json.dumps(shown),
        },
    )

    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.settings().routing_key == ROUTING_KEY


def test_a_policy_names_channels_of_its_own_organisation_only(manager, org, other_org):
    theirs = make_channel(other_org, "their-hook", "webhook", url="https://them.example/h")
    response = manager.post(
        f"{POLICIES}add/",
        {
            "organization": org.pk,
            "slug": "ops",
            "name": "Ops",
            "repeat": 0,
            "steps-TOTAL_FORMS": 1,
            "steps-INITIAL_FORMS": 0,
            "steps-0-position": 0,
            "steps-0-delay": "0",
            "steps-0-channels": [theirs.pk],
        },
    )

    assert response.status_code == 200
    assert not EscalationPolicy.objects.exists()


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({}, "A policy needs at least one step."),
        ({"steps-0-delay": "-00:05:00"}, "negative"),
        (
            {"steps-0-delay": "00:01:00", "steps-0-channels": []},
            "A step needs at least one channel or schedule",
        ),
    ],
    ids=["no-step", "negative-delay", "no-channel"],
)
def test_a_policy_an_alert_could_not_run_on_is_refused(manager, org, step, message):
    hook = make_channel(org, "hook", "webhook", url="https://ok.example/h")
    form = {
        "organization": org.pk,
        "slug": "ops",
        "name": "Ops",
        "repeat": 0,
        "steps-TOTAL_FORMS": 1 if step else 0,
        "steps-INITIAL_FORMS": 0,
    }
    if step:
        form.update({"steps-0-position": 0, "steps-0-delay": "0", "steps-0-channels": [hook.pk]})
        form.update(step)

    response = manager.post(f"{POLICIES}add/", form)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not EscalationPolicy.objects.exists()


def test_editing_a_policy_raises_its_version(manager, org):
    hook = make_channel(org, "hook", "webhook", url="https://ok.example/h")
    policy = make_policy(org, "ops", steps=[(0, [hook])])
    step = policy.steps.get()

    response = manager.post(
        f"{POLICIES}{policy.pk}/change/",
        {
            "organization": org.pk,
            "slug": "ops",
            "name": "Ops renamed",
            "repeat": 1,
            "steps-TOTAL_FORMS": 1,
            "steps-INITIAL_FORMS": 1,
            "steps-0-id": step.pk,
            "steps-0-policy": policy.pk,
            "steps-0-position": 0,
            "steps-0-delay": "00:01:00",
            "steps-0-channels": [hook.pk],
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    policy.refresh_from_db()
    assert (policy.name, policy.repeat, policy.version) == ("Ops renamed", 1, 2)


def test_a_test_notification_reaches_the_channel_marked_as_a_test(manager, org, webhook_receiver):
    channel = make_channel(org, "hook", "webhook", url=f"{webhook_receiver.url}/hook")

    manager.post(CHANNELS, {"action": "send_test_notification", "_selected_action": [channel.pk]})
    engine.deliver_due()

    [received] = webhook_receiver.requests
    assert received.valid, received.problems
    assert "Test notification" in received.raw.decode()
    row = Notification.objects.get()
    assert (row.event, row.state, row.is_test) == ("test", "sent", True)


def test_dead_notifications_can_be_retried_from_the_admin(manager, org, webhook_receiver):
    channel = make_channel(org, "hook", "webhook", url=f"{webhook_receiver.url}/hook")
    make_policy(org, "ops", steps=[(0, [channel])], is_default=True)
    webhook_receiver.answer_next(1, 410)
    make_alert(make_rule(org))
    outbox.drain()
    engine.deliver_due()
    row = Notification.objects.get()
    assert row.state == "dead"
    assert "FAILING" not in manager.get(CHANNELS).content.decode()

    manager.post(
        "/admin/paging/notification/", {"action": "retry_now", "_selected_action": [row.pk]}
    )
    engine.deliver_due()

    row.refresh_from_db()
    assert row.state == "sent"
    assert len(webhook_receiver.requests) == 2


def test_a_viewer_cannot_retry(client, member, org, webhook_receiver):
    channel = make_channel(org, "hook", "webhook", url=f"{webhook_receiver.url}/hook")
    row = Notification.objects.create(
        organization=org,
        channel=channel,
        channel_name="hook",
        channel_kind="webhook",
        event="test",
        state="dead",
    )
    client.force_login(member(org, Role.VIEWER))

    client.post(
        "/admin/paging/notification/", {"action": "retry_now", "_selected_action": [row.pk]}
    )

    row.refresh_from_db()
    assert row.state == "dead"


def test_a_second_default_policy_is_refused_with_a_clear_message(manager, org):
    hook = make_channel(org, "hook", "webhook", url="https://ok.example/h")
    make_policy(org, "first", steps=[(0, [hook])], is_default=True)

    response = manager.post(
        f"{POLICIES}add/",
        {
            "organization": org.pk,
            "slug": "second",
            "name": "Second",
            "is_default": "on",
            "repeat": 0,
            "steps-TOTAL_FORMS": 1,
            "steps-INITIAL_FORMS": 0,
            "steps-0-position": 0,
            "steps-0-delay": "0",
            "steps-0-channels": [hook.pk],
        },
    )

    assert response.status_code == 200
    assert "already this organisation&#x27;s default" in response.content.decode()
    assert not EscalationPolicy.objects.filter(slug="second").exists()
