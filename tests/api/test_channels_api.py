"""Notification channels through the API: checked per kind as the admin checks them,
secrets write-only, walls, conflicts, and a test notification delivered for real."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.utils import timezone

from controlplane.catalog.models import Role
from controlplane.paging import engine
from controlplane.paging.models import ChannelHealth, Notification, NotificationChannel
from tests.factories import make_channel, make_policy
from tests.paging.conftest import LOOPBACK
from tests.receivers import WebhookReceiver

pytestmark = pytest.mark.django_db

ROUTING_KEY = "R0uTiNgKeY0123456789abcdefABCDEF"  # 32 letters and digits
SLACK_PATH = "services/T0001/B0002/XXXXsecretpathXk9Q"
SLACK_URL = f"https://hooks.slack.com/{SLACK_PATH}"
SECRET = "webhook-signing-secret-0123"
API_KEY = "api-key-value-0123456789"
# What no answer may ever contain. The Slack URL's last 4 characters are shown on
# purpose (to tell two webhooks apart); the rest of its path is the credential.
SECRETS = (ROUTING_KEY, SLACK_PATH, "secretpath", SECRET, API_KEY)

EMAIL = {"name": "ops-mail", "kind": "email", "config": {"to": ["oncall@example.com"]}}
SLACK = {"name": "ops-slack", "kind": "slack", "config": {"url": SLACK_URL}}
PAGER = {"name": "ops-pager", "kind": "pagerduty", "config": {"routing_key": ROUTING_KEY}}
HOOK = {
    "name": "ops-hook",
    "kind": "webhook",
    "config": {
        "url": "https://hooks.example/alerts",
        "secret": SECRET,
        "headers": {"X-Api-Key": API_KEY},
    },
}


class Recording:
    """A client that keeps every answer, so a test can check all of them at once."""

    def __init__(self, client) -> None:
        self.client = client
        self.bodies: list[str] = []

    def __getattr__(self, method: str):
        call = getattr(self.client, method)

        def request(*args, **kwargs):
            response = call(*args, **kwargs)
            self.bodies.append(response.content.decode())
            return response

        return request

    def assert_no_secret_shown(self) -> None:
        for body in self.bodies:
            for secret in SECRETS:
                assert secret not in body, f"{secret!r} shown in {body}"


@pytest.fixture
def writer(api, write_token) -> Recording:
    return Recording(api(write_token))


@pytest.fixture
def webhook_receiver(settings) -> Iterator[WebhookReceiver]:
    """tests/paging/conftest.py's, for this directory: a receiver the guard lets us reach."""
    settings.ALLOWED_PRIVATE_NETWORKS = LOOPBACK
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def stored(name: str) -> dict:
    return NotificationChannel.objects.get(name=name).config


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        (EMAIL, {"to": ["oncall@example.com"]}),
        (SLACK, {"url": "https://hooks.slack.com/****Xk9Q"}),
        (
            PAGER,
            {"routing_key": "****CDEF", "url": "https://events.pagerduty.com/v2/enqueue"},
        ),
        (
            HOOK,
            {
                "url": "https://hooks.example/alerts",
                "secret_set": True,
                "headers": {"X-Api-Key": "****"},
            },
        ),
    ],
    ids=["email", "slack", "pagerduty", "webhook"],
)
def test_create_and_read_back_masked(writer, org, body, shown):
    created = writer.post("/api/v1/channels/", body, format="json")

    assert created.status_code == 201, created.json()
    read = writer.get(f"/api/v1/channels/{body['name']}/").json()
    listed = writer.get("/api/v1/channels/").json()["results"]
    for answer in (created.json(), read, *listed):
        assert answer["config"] == shown
        assert (answer["name"], answer["kind"]) == (body["name"], body["kind"])
        assert answer["failing"] is False
        assert answer["consecutive_failures"] == 0
        assert (answer["last_error"], answer["last_success_at"], answer["last_failure_at"]) == (
            "",
            None,
            None,
        )
        assert answer["created_at"]
        assert answer["updated_at"]
    assert NotificationChannel.objects.get(organization=org, name=body["name"]).settings()
    writer.assert_no_secret_shown()


def test_patch_keeps_secrets_left_out_or_sent_back_masked(writer):
    writer.post("/api/v1/channels/", HOOK, format="json")
    writer.post("/api/v1/channels/", PAGER, format="json")
    writer.post("/api/v1/channels/", SLACK, format="json")
    shown = writer.get("/api/v1/channels/ops-hook/").json()["config"]

    as_shown = writer.patch(
        "/api/v1/channels/ops-hook/",
        {"config": {**shown, "url": "https://hooks.example/v2"}},
        format="json",
    )
    pager_shown = writer.get("/api/v1/channels/ops-pager/").json()["config"]
    sent_back = writer.patch("/api/v1/channels/ops-pager/", {"config": pager_shown}, format="json")
    left_out = writer.patch(
        "/api/v1/channels/ops-hook/", {"config": {"headers": {"X-Api-Key": "****"}}}, format="json"
    )
    renamed = writer.patch("/api/v1/channels/ops-slack/", {"name": "ops-chat"}, format="json")

    assert as_shown.status_code == 200, as_shown.json()
    assert left_out.status_code == 200, left_out.json()
    assert stored("ops-hook") == {
        "url": "https://hooks.example/v2",
        "secret": SECRET,
        "headers": {"X-Api-Key": API_KEY},
    }
    assert sent_back.status_code == 200, sent_back.json()
    assert stored("ops-pager") == {
        "routing_key": ROUTING_KEY,
        "url": "https://events.pagerduty.com/v2/enqueue",
    }
    assert renamed.status_code == 200, renamed.json()
    assert stored("ops-chat") == {"url": SLACK_URL}
    writer.assert_no_secret_shown()


def test_a_kept_secret_does_not_follow_the_url_to_another_host(writer):
    writer.post("/api/v1/channels/", HOOK, format="json")

    refused = writer.patch(
        "/api/v1/channels/ops-hook/",
        {"config": {"url": "https://elsewhere.example/"}},
        format="json",
    )

    assert refused.status_code == 400
    errors = refused.json()["errors"]["config"]
    assert sorted(errors) == ["headers", "secret"]
    assert "config.secret: The secret goes only to the host" in refused.json()["detail"]
    assert stored("ops-hook")["url"] == "https://hooks.example/alerts"
    writer.assert_no_secret_shown()


def test_a_new_kind_needs_its_whole_configuration(writer):
    writer.post("/api/v1/channels/", HOOK, format="json")

    bare = writer.patch("/api/v1/channels/ops-hook/", {"kind": "email"}, format="json")
    wrong = writer.patch(
        "/api/v1/channels/ops-hook/", {"kind": "email", "config": {"url": "x"}}, format="json"
    )
    whole = writer.patch(
        "/api/v1/channels/ops-hook/",
        {"kind": "email", "config": {"to": ["ops@example.com"]}},
        format="json",
    )

    assert bare.status_code == 400
    assert "Changing the kind from webhook to email" in bare.json()["errors"]["config"][0]
    assert wrong.status_code == 400
    assert sorted(wrong.json()["errors"]["config"]) == ["to", "url"]
    assert whole.status_code == 200, whole.json()
    channel = NotificationChannel.objects.get(name="ops-hook")
    assert (channel.kind, channel.config) == ("email", {"to": ["ops@example.com"]})
    writer.assert_no_secret_shown()


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            {**EMAIL, "config": {"to": ["not an address"]}},
            "to",
            "'not an address' is not a valid email address.",
        ),
        (
            {**SLACK, "config": {"url": "https://evil.example/services/x"}},
            "url",
            "A Slack webhook URL starts with https://hooks.slack.com/; evil.example is not one "
            "of the hosts listed in SLACK_WEBHOOK_HOSTS.",
        ),
        (
            {**PAGER, "config": {"routing_key": "short"}},
            "routing_key",
            "A routing key is exactly 32 letters and digits; this one has 5 characters.",
        ),
        (
            {**HOOK, "config": {"url": "http://10.1.2.3/hook"}},
            "url",
            "10.1.2.3 is a private address; set ALLOWED_PRIVATE_NETWORKS to allow it",
        ),
        (
            {**HOOK, "config": {"url": "http://127.0.0.1:9/hook"}},
            "url",
            "127.0.0.1 is a loopback address; set ALLOWED_PRIVATE_NETWORKS to allow it",
        ),
        (
            {**HOOK, "config": {"url": "https://ok.example/h", "secret": "short"}},
            "secret",
            "A signing secret needs at least 16 characters.",
        ),
        (
            {**EMAIL, "config": {"to": ["a@example.com"], "cc": ["b@example.com"]}},
            "cc",
            "Unknown field: channels of kind email take to.",
        ),
    ],
    ids=["email", "not-slack", "key-length", "private", "loopback", "short-secret", "unknown"],
)
def test_bad_configurations_are_400_naming_the_field(writer, org, settings, body, field, message):
    settings.ALLOWED_PRIVATE_NETWORKS = []

    response = writer.post("/api/v1/channels/", body, format="json")

    assert response.status_code == 400, response.json()
    assert response.json()["errors"] == {"config": {field: [message]}}
    assert f"config.{field}: {message}" in response.json()["detail"]
    assert not NotificationChannel.objects.filter(organization=org).exists()


def test_a_private_webhook_url_is_refused_on_patch_too(writer, settings):
    settings.ALLOWED_PRIVATE_NETWORKS = []
    writer.post(
        "/api/v1/channels/", {**HOOK, "config": {"url": "https://ok.example/h"}}, format="json"
    )

    response = writer.patch(
        "/api/v1/channels/ops-hook/", {"config": {"url": "http://192.168.1.1/h"}}, format="json"
    )

    assert response.status_code == 400
    assert list(response.json()["errors"]["config"]) == ["url"]
    assert stored("ops-hook")["url"] == "https://ok.example/h"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**EMAIL, "config": ["oncall@example.com"]}, "config"),
        ({**EMAIL, "kind": "pigeon"}, "kind"),
        ({**EMAIL, "name": "Not A Slug"}, "name"),
        ({"name": "x", "kind": "email"}, "config"),
        ({**EMAIL, "colour": "red"}, "colour"),
    ],
)
def test_other_bad_input_is_400_naming_the_field(writer, org, body, field):
    response = writer.post("/api/v1/channels/", body, format="json")

    assert response.status_code == 400, response.json()
    assert list(response.json()["errors"]) == [field]
    assert not NotificationChannel.objects.filter(organization=org).exists()


def test_a_slack_compatible_host_needs_listing(writer, settings):
    body = {**SLACK, "config": {"url": "https://chat.example.com/hooks/abcdef123456"}}
    settings.SLACK_WEBHOOK_HOSTS = []
    assert writer.post("/api/v1/channels/", body, format="json").status_code == 400

    settings.SLACK_WEBHOOK_HOSTS = ["chat.example.com"]
    assert writer.post("/api/v1/channels/", body, format="json").status_code == 201


def test_duplicate_name_is_refused(writer, org):
    make_channel(org, "ops-mail", "email", to=["a@example.com"])

    response = writer.post("/api/v1/channels/", EMAIL, format="json")

    assert response.status_code == 400
    assert response.json()["errors"]["name"] == ["A channel named 'ops-mail' already exists."]


def test_another_organisations_channel_is_404_and_never_listed(api, write_token, other_org):
    make_channel(other_org, "theirs", "email", to=["them@example.com"])
    client = api(write_token)

    assert client.get("/api/v1/channels/").json()["results"] == []
    assert client.get("/api/v1/channels/theirs/").status_code == 404
    renamed = client.patch("/api/v1/channels/theirs/", {"name": "mine"}, format="json")
    assert renamed.status_code == 404
    assert client.post("/api/v1/channels/theirs/test/", {}, format="json").status_code == 404
    assert client.delete("/api/v1/channels/theirs/").status_code == 404
    assert NotificationChannel.objects.get(name="theirs").organization == other_org
    assert not Notification.objects.exists()


def test_read_token_cannot_write(api, read_token, org):
    make_channel(org, "ops-mail", "email", to=["a@example.com"])
    client = api(read_token)

    answers = [
        client.post("/api/v1/channels/", {**EMAIL, "name": "new"}, format="json"),
        client.patch("/api/v1/channels/ops-mail/", {"name": "renamed"}, format="json"),
        client.delete("/api/v1/channels/ops-mail/"),
        client.post("/api/v1/channels/ops-mail/test/", {}, format="json"),
    ]

    assert [a.status_code for a in answers] == [403, 403, 403, 403]
    assert "read-only" in answers[0].json()["detail"]
    assert list(NotificationChannel.objects.values_list("name", flat=True)) == ["ops-mail"]
    assert not Notification.objects.exists()
    assert client.get("/api/v1/channels/ops-mail/").status_code == 200


def test_put_is_not_offered(writer, org):
    make_channel(org, "ops-mail", "email", to=["a@example.com"])

    assert writer.put("/api/v1/channels/ops-mail/", EMAIL, format="json").status_code == 405


def test_deleting_a_channel_policies_notify_is_409_naming_them(writer, org):
    channel = make_channel(org, "ops-mail", "email", to=["a@example.com"])
    spare = make_channel(org, "spare", "email", to=["b@example.com"])
    make_policy(org, "night", steps=[(0, [channel])])
    make_policy(org, "day", steps=[(0, [spare]), (60, [channel, spare])])

    response = writer.delete("/api/v1/channels/ops-mail/")

    assert response.status_code == 409
    assert response.json()["policies"] == ["day", "night"]
    assert "day, night" in response.json()["detail"]
    assert NotificationChannel.objects.filter(pk=channel.pk).exists()


def test_deleting_an_unused_channel_keeps_its_ledger_rows(writer, org):
    channel = make_channel(org, "ops-mail", "email", to=["a@example.com"])
    engine.send_test([channel])

    response = writer.delete("/api/v1/channels/ops-mail/")

    assert response.status_code == 204
    assert not NotificationChannel.objects.filter(pk=channel.pk).exists()
    row = Notification.objects.get()
    assert (row.channel, row.channel_name, row.channel_kind) == (None, "ops-mail", "email")
    [listed] = writer.get("/api/v1/notifications/").json()["results"]
    assert listed["channel"] == "ops-mail"


def test_a_failing_channel_says_so(api, read_token, org):
    channel = make_channel(org, "ops-mail", "email", to=["a@example.com"])
    now = timezone.now()
    ChannelHealth.objects.create(
        channel=channel,
        consecutive_failures=3,
        last_failure_at=now,
        last_success_at=now - timezone.timedelta(hours=1),
        last_error="SMTP 550: mailbox unavailable",
    )

    [listed] = api(read_token).get("/api/v1/channels/").json()["results"]

    assert listed["failing"] is True
    assert listed["consecutive_failures"] == 3
    assert listed["last_error"] == "SMTP 550: mailbox unavailable"
    assert listed["last_failure_at"]
    assert listed["last_success_at"]


def test_the_list_costs_a_fixed_number_of_queries(
    api, read_token, org, django_assert_max_num_queries
):
    for number in range(12):
        channel = make_channel(org, f"hook-{number:02}", "webhook", url="https://h.example/x")
        if number % 2:
            ChannelHealth.objects.create(channel=channel, consecutive_failures=number)
    client = api(read_token)

    # The token, its last use, the count, the page (health joined): whatever the rows.
    with django_assert_max_num_queries(4):
        body = client.get("/api/v1/channels/").json()

    assert body["count"] == 12
    assert [c["consecutive_failures"] for c in body["results"][:4]] == [0, 1, 0, 3]


def test_a_test_notification_is_queued_and_delivered(writer, org, webhook_receiver):
    webhook_receiver.secret = SECRET
    created = writer.post(
        "/api/v1/channels/",
        {**HOOK, "config": {**HOOK["config"], "url": f"{webhook_receiver.url}/hook"}},
        format="json",
    )
    assert created.status_code == 201, created.json()

    queued = writer.post("/api/v1/channels/ops-hook/test/", {}, format="json")

    assert queued.status_code == 202, queued.json()
    body = queued.json()
    row = Notification.objects.get()
    assert (body["id"], body["state"], body["event"]) == (row.pk, "pending", "test")
    assert (body["channel"], body["channel_kind"], body["alert"], body["is_test"]) == (
        "ops-hook",
        "webhook",
        None,
        True,
    )

    assert engine.deliver_due() == {"sent": 1}

    [received] = webhook_receiver.requests
    assert received.valid, received.problems
    assert received.headers["X-Api-Key"] == API_KEY
    assert "Test notification" in received.raw.decode()
    [listed] = writer.get("/api/v1/notifications/?channel=ops-hook").json()["results"]
    assert (listed["id"], listed["state"], listed["attempts"]) == (row.pk, "sent", 1)
    assert listed["sent_at"]
    health = writer.get("/api/v1/channels/ops-hook/").json()
    assert (health["failing"], health["last_success_at"] is not None) == (False, True)
    writer.assert_no_secret_shown()


def test_an_unknown_field_in_a_test_request_is_refused(writer, org):
    make_channel(org, "ops-mail", "email", to=["a@example.com"])

    response = writer.post("/api/v1/channels/ops-mail/test/", {"urgent": True}, format="json")

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["urgent"]
    assert not Notification.objects.exists()


@pytest.mark.parametrize(("role", "status"), [(Role.MANAGER, 202), (Role.RESPONDER, 403)])
def test_a_managers_session_may_send_a_test(client, member, org, role, status):
    make_channel(org, "ops-mail", "email", to=["a@example.com"])
    client.force_login(member(org, role))

    response = client.post("/api/v1/channels/ops-mail/test/", {}, content_type="application/json")

    assert response.status_code == status
    assert Notification.objects.count() == (1 if status == 202 else 0)


def test_a_lone_surrogate_in_the_configuration_is_refused(writer, org):
    # JSON can spell one; PostgreSQL cannot store it (a 500 there, once).
    body = b'{"name": "x", "kind": "webhook", "config": {"url": "https://a.example/\\ud800"}}'

    response = writer.generic("POST", "/api/v1/channels/", body, content_type="application/json")

    assert response.status_code == 400
    assert list(response.json()["errors"]["config"]) == ["url"]
    assert not NotificationChannel.objects.filter(organization=org).exists()
